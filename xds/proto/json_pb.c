/* json_pb.c: see json_pb.h. One recursive walk over the JSON, guided by the
 * descriptor: parse_message for objects (with the well-known types' special
 * forms first), parse_field for one member, parse_scalar for one value.
 * Messages are built with malloc exactly as protobuf-c's unpacker builds
 * them, so protobuf_c_message_free_unpacked(message, NULL) frees a finished
 * one and a half-built one alike: a repeated field's count only ever covers
 * elements already filled in. */
#include "xds/proto/json_pb.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

#define MAX_DEPTH 64
#define MAX_PATH 512

typedef struct parser {
  ms_json_pb_resolver resolver;
  char *err;
  size_t err_len;
  int depth;
} parser;

/* fail writes "PATH: what" into the parser's error buffer; returns -1. */
__attribute__((format(printf, 3, 4))) static int fail(parser *p, const char *path,
                                                      const char *format, ...) {
  size_t used = 0;
  if (p->err_len == 0) return -1;
  if (path != NULL && path[0] != '\0') {
    int n = snprintf(p->err, p->err_len, "%s: ", path);
    used = n < 0 ? 0 : (size_t)n < p->err_len ? (size_t)n : p->err_len - 1;
  }
  va_list args;
  va_start(args, format);
  vsnprintf(p->err + used, p->err_len - used, format, args);
  va_end(args);
  return -1;
}

/* join_path writes PATH.NAME (or NAME at the top) into `out`. */
static void join_path(char *out, const char *path, const char *name) {
  if (path[0] == '\0')
    snprintf(out, MAX_PATH, "%s", name);
  else
    snprintf(out, MAX_PATH, "%s.%s", path, name);
}

/* index_path writes PATH[INDEX] into `out`. */
static void index_path(char *out, const char *path, int index) {
  snprintf(out, MAX_PATH, "%s[%d]", path, index);
}

/* full_name returns a descriptor's name without protobuf-c's leading dot. */
static const char *full_name(const ProtobufCMessageDescriptor *descriptor) {
  return descriptor->name[0] == '.' ? descriptor->name + 1 : descriptor->name;
}

static const char *enum_full_name(const ProtobufCEnumDescriptor *descriptor) {
  return descriptor->name[0] == '.' ? descriptor->name + 1 : descriptor->name;
}

/* describe_json names a JSON value's kind for error messages. */
static const char *describe_json(const cJSON *json) {
  if (cJSON_IsObject(json)) return "an object";
  if (cJSON_IsArray(json)) return "an array";
  if (cJSON_IsString(json)) return "a string";
  if (cJSON_IsNumber(json)) return "a number";
  if (cJSON_IsBool(json)) return "a boolean";
  if (cJSON_IsNull(json)) return "null";
  return "an unknown value";
}

static ProtobufCMessage *message_new(const ProtobufCMessageDescriptor *descriptor) {
  ProtobufCMessage *message = malloc(descriptor->sizeof_message);
  if (message != NULL) descriptor->message_init(message);
  return message;
}

/* element_size is the size of one value of `type` in a repeated field. */
static size_t element_size(ProtobufCType type) {
  switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
      return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return 8;
    case PROTOBUF_C_TYPE_FLOAT:
      return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
      return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
      return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
      return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
      return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
      return sizeof(ProtobufCMessage *);
  }
  return 0;
}

static int parse_message(parser *p, const cJSON *json, const char *path, ProtobufCMessage *message);

/* ---- scalars ---------------------------------------------------------------- */

/* parse_integer reads an integral number or a decimal string within
 * [min, max] (as signed) or [0, umax] (unsigned). */
static int parse_signed(parser *p, const cJSON *json, const char *path, int64_t min, int64_t max,
                        int64_t *out) {
  if (cJSON_IsNumber(json)) {
    double value = json->valuedouble;
    if (value != floor(value) || value < (double)min || value > (double)max)
      return fail(p, path, "%.17g is not an integer in [%lld, %lld]", value, (long long)min,
                  (long long)max);
    *out = (int64_t)value;
    return 0;
  }
  if (cJSON_IsString(json)) {
    errno = 0;
    char *end = NULL;
    long long value = strtoll(json->valuestring, &end, 10);
    if (json->valuestring[0] == '\0' || *end != '\0' || errno != 0 || value < min || value > max)
      return fail(p, path, "\"%s\" is not an integer in [%lld, %lld]", json->valuestring,
                  (long long)min, (long long)max);
    *out = value;
    return 0;
  }
  return fail(p, path, "expected an integer, got %s", describe_json(json));
}

static int parse_unsigned(parser *p, const cJSON *json, const char *path, uint64_t max,
                          uint64_t *out) {
  if (cJSON_IsNumber(json)) {
    double value = json->valuedouble;
    if (value != floor(value) || value < 0 || value > (double)max)
      return fail(p, path, "%.17g is not an integer in [0, %llu]", value, (unsigned long long)max);
    *out = (uint64_t)value;
    return 0;
  }
  if (cJSON_IsString(json)) {
    errno = 0;
    char *end = NULL;
    const char *text = json->valuestring;
    unsigned long long value = strtoull(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || value > max)
      return fail(p, path, "\"%s\" is not an integer in [0, %llu]", text, (unsigned long long)max);
    *out = value;
    return 0;
  }
  return fail(p, path, "expected an integer, got %s", describe_json(json));
}

static int parse_double(parser *p, const cJSON *json, const char *path, double *out) {
  if (cJSON_IsNumber(json)) {
    *out = json->valuedouble;
    return 0;
  }
  if (cJSON_IsString(json)) {
    if (strcmp(json->valuestring, "NaN") == 0) {
      *out = NAN;
      return 0;
    }
    if (strcmp(json->valuestring, "Infinity") == 0 || strcmp(json->valuestring, "-Infinity") == 0) {
      *out = json->valuestring[0] == '-' ? -INFINITY : INFINITY;
      return 0;
    }
    char *end = NULL;
    double value = strtod(json->valuestring, &end);
    if (json->valuestring[0] != '\0' && *end == '\0') {
      *out = value;
      return 0;
    }
  }
  return fail(p, path, "expected a number, got %s", describe_json(json));
}

/* parse_base64 decodes standard or URL-safe base64, padded or not. */
static int parse_base64(parser *p, const cJSON *json, const char *path, ProtobufCBinaryData *out) {
  if (!cJSON_IsString(json))
    return fail(p, path, "expected base64 bytes (a string), got %s", describe_json(json));
  size_t len = strlen(json->valuestring);
  char *text = malloc(len + 4);
  if (text == NULL) return fail(p, path, "out of memory");
  for (size_t i = 0; i < len; i++) {
    char c = json->valuestring[i];
    text[i] = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  while (len % 4 != 0)
    text[len++] = '=';
  size_t max = 0;
  uint8_t *data = NULL;
  if (EVP_DecodedLength(&max, len)) data = malloc(max + 1);
  size_t decoded = 0;
  if (data == NULL || !EVP_DecodeBase64(data, &decoded, max, (const uint8_t *)text, len)) {
    free(text);
    free(data);
    return fail(p, path, "not valid base64");
  }
  free(text);
  out->data = data;
  out->len = decoded;
  return 0;
}

static int parse_enum(parser *p, const cJSON *json, const char *path,
                      const ProtobufCEnumDescriptor *descriptor, int32_t *out) {
  if (cJSON_IsString(json)) {
    const ProtobufCEnumValue *value =
        protobuf_c_enum_descriptor_get_value_by_name(descriptor, json->valuestring);
    if (value == NULL)
      return fail(p, path, "\"%s\" is not a value of %s", json->valuestring,
                  enum_full_name(descriptor));
    *out = value->value;
    return 0;
  }
  if (cJSON_IsNumber(json)) {
    int64_t number;
    if (parse_signed(p, json, path, INT32_MIN, INT32_MAX, &number) != 0) return -1;
    *out = (int32_t)number;
    return 0;
  }
  return fail(p, path, "expected a value name of %s, got %s", enum_full_name(descriptor),
              describe_json(json));
}

/* parse_value stores one JSON value of `field`'s type at `slot` (the field
 * itself, or one element of a repeated field). */
static int parse_value(parser *p, const ProtobufCFieldDescriptor *field, const cJSON *json,
                       const char *path, void *slot) {
  int64_t s;
  uint64_t u;
  double d;
  switch (field->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      if (parse_signed(p, json, path, INT32_MIN, INT32_MAX, &s) != 0) return -1;
      *(int32_t *)slot = (int32_t)s;
      return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      if (parse_signed(p, json, path, INT64_MIN, INT64_MAX, &s) != 0) return -1;
      *(int64_t *)slot = s;
      return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      if (parse_unsigned(p, json, path, UINT32_MAX, &u) != 0) return -1;
      *(uint32_t *)slot = (uint32_t)u;
      return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      if (parse_unsigned(p, json, path, UINT64_MAX, &u) != 0) return -1;
      *(uint64_t *)slot = u;
      return 0;
    case PROTOBUF_C_TYPE_FLOAT:
      if (parse_double(p, json, path, &d) != 0) return -1;
      *(float *)slot = (float)d;
      return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
      if (parse_double(p, json, path, &d) != 0) return -1;
      *(double *)slot = d;
      return 0;
    case PROTOBUF_C_TYPE_BOOL:
      if (!cJSON_IsBool(json))
        return fail(p, path, "expected true or false, got %s", describe_json(json));
      *(protobuf_c_boolean *)slot = cJSON_IsTrue(json);
      return 0;
    case PROTOBUF_C_TYPE_ENUM:
      return parse_enum(p, json, path, field->descriptor, (int32_t *)slot);
    case PROTOBUF_C_TYPE_STRING: {
      if (!cJSON_IsString(json))
        return fail(p, path, "expected a string, got %s", describe_json(json));
      char *copy = strdup(json->valuestring);
      if (copy == NULL) return fail(p, path, "out of memory");
      *(char **)slot = copy;
      return 0;
    }
    case PROTOBUF_C_TYPE_BYTES:
      return parse_base64(p, json, path, (ProtobufCBinaryData *)slot);
    case PROTOBUF_C_TYPE_MESSAGE: {
      ProtobufCMessage *sub = message_new(field->descriptor);
      if (sub == NULL) return fail(p, path, "out of memory");
      if (parse_message(p, json, path, sub) != 0) {
        protobuf_c_message_free_unpacked(sub, NULL);
        return -1;
      }
      *(ProtobufCMessage **)slot = sub;
      return 0;
    }
  }
  return fail(p, path, "unsupported field type");
}

/* ---- fields ----------------------------------------------------------------- */

/* find_field looks a member's name up as the proto name, then as
 * lowerCamelCase (turned back into snake_case). */
static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *descriptor,
                                                  const char *name) {
  const ProtobufCFieldDescriptor *field =
      protobuf_c_message_descriptor_get_field_by_name(descriptor, name);
  if (field != NULL || strchr(name, '_') != NULL) return field;
  char snake[256];
  size_t len = 0;
  for (const char *c = name; *c != '\0' && len + 2 < sizeof(snake); c++) {
    if (*c >= 'A' && *c <= 'Z') {
      snake[len++] = '_';
      snake[len++] = (char)(*c - 'A' + 'a');
    } else {
      snake[len++] = *c;
    }
  }
  snake[len] = '\0';
  return protobuf_c_message_descriptor_get_field_by_name(descriptor, snake);
}

/* is_map_entry: protobuf-c keeps no map_entry option, so a map is a repeated
 * message field whose type is NAME.XxxEntry with exactly `key` and `value`. */
static bool is_map_entry(const ProtobufCFieldDescriptor *field) {
  if (field->label != PROTOBUF_C_LABEL_REPEATED || field->type != PROTOBUF_C_TYPE_MESSAGE)
    return false;
  const ProtobufCMessageDescriptor *entry = field->descriptor;
  size_t len = strlen(entry->short_name);
  return len > 5 && strcmp(entry->short_name + len - 5, "Entry") == 0 && entry->n_fields == 2 &&
         strcmp(entry->fields[0].name, "key") == 0 && strcmp(entry->fields[1].name, "value") == 0;
}

/* parse_map fills a map field from a JSON object: one entry per member. */
static int parse_map(parser *p, const ProtobufCFieldDescriptor *field, const cJSON *json,
                     const char *path, ProtobufCMessage *message) {
  if (!cJSON_IsObject(json))
    return fail(p, path, "expected an object (a map), got %s", describe_json(json));
  size_t *count = (size_t *)((char *)message + field->quantifier_offset);
  ProtobufCMessage ***array = (ProtobufCMessage ***)((char *)message + field->offset);
  int n = cJSON_GetArraySize(json);
  if (n == 0) return 0;
  *array = calloc((size_t)n, sizeof(ProtobufCMessage *));
  if (*array == NULL) return fail(p, path, "out of memory");
  const ProtobufCMessageDescriptor *entry_descriptor = field->descriptor;
  const cJSON *member;
  cJSON_ArrayForEach(member, json) {
    char member_path[MAX_PATH];
    join_path(member_path, path, member->string);
    ProtobufCMessage *entry = message_new(entry_descriptor);
    if (entry == NULL) return fail(p, path, "out of memory");
    (*array)[(*count)++] = entry;
    const ProtobufCFieldDescriptor *key = &entry_descriptor->fields[0];
    const ProtobufCFieldDescriptor *value = &entry_descriptor->fields[1];
    /* A key is a string in JSON; integer keys parse from it as decimal. */
    cJSON *key_json = cJSON_CreateString(member->string);
    if (key_json == NULL) return fail(p, path, "out of memory");
    int rc = parse_value(p, key, key_json, member_path, (char *)entry + key->offset);
    cJSON_Delete(key_json);
    if (rc != 0) return -1;
    if (cJSON_IsNull(member) && value->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    if (parse_value(p, value, member, member_path, (char *)entry + value->offset) != 0) return -1;
  }
  return 0;
}

/* parse_repeated fills a repeated field from a JSON array. */
static int parse_repeated(parser *p, const ProtobufCFieldDescriptor *field, const cJSON *json,
                          const char *path, ProtobufCMessage *message) {
  if (is_map_entry(field)) return parse_map(p, field, json, path, message);
  if (!cJSON_IsArray(json)) return fail(p, path, "expected an array, got %s", describe_json(json));
  size_t *count = (size_t *)((char *)message + field->quantifier_offset);
  void **array = (void **)((char *)message + field->offset);
  if (*count != 0) return fail(p, path, "set twice");
  int n = cJSON_GetArraySize(json);
  if (n == 0) return 0;
  size_t size = element_size(field->type);
  *array = calloc((size_t)n, size);
  if (*array == NULL) return fail(p, path, "out of memory");
  int index = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, json) {
    char item_path[MAX_PATH];
    index_path(item_path, path, index++);
    if (cJSON_IsNull(item) && field->descriptor != &google__protobuf__value__descriptor)
      return fail(p, item_path, "null is not allowed in a list");
    if (parse_value(p, field, item, item_path, (char *)*array + *count * size) != 0) return -1;
    (*count)++;
  }
  return 0;
}

/* oneof_sibling returns the name of the member of `field`'s oneof already
 * set, or NULL. */
static const char *oneof_sibling(const ProtobufCMessageDescriptor *descriptor,
                                 const ProtobufCFieldDescriptor *field,
                                 const ProtobufCMessage *message) {
  uint32_t set = *(const uint32_t *)((const char *)message + field->quantifier_offset);
  if (set == 0) return NULL;
  const ProtobufCFieldDescriptor *other = protobuf_c_message_descriptor_get_field(descriptor, set);
  return other != NULL ? other->name : "another field";
}

/* parse_field sets one field of `message` from a non-null JSON value. */
static int parse_field(parser *p, const ProtobufCMessageDescriptor *descriptor,
                       const ProtobufCFieldDescriptor *field, const cJSON *json, const char *path,
                       ProtobufCMessage *message) {
  if (field->label == PROTOBUF_C_LABEL_REPEATED)
    return parse_repeated(p, field, json, path, message);
  void *slot = (char *)message + field->offset;
  if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    const char *sibling = oneof_sibling(descriptor, field, message);
    if (sibling != NULL)
      return fail(p, path, "\"%s\" and \"%s\" are members of one oneof: set only one", sibling,
                  field->name);
  } else if (field->type == PROTOBUF_C_TYPE_MESSAGE && *(ProtobufCMessage **)slot != NULL) {
    return fail(p, path, "set twice");
  }
  if (parse_value(p, field, json, path, slot) != 0) return -1;
  if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    *(uint32_t *)((char *)message + field->quantifier_offset) = field->id;
  else if (field->label == PROTOBUF_C_LABEL_OPTIONAL && field->quantifier_offset != 0 &&
           field->type != PROTOBUF_C_TYPE_MESSAGE && field->type != PROTOBUF_C_TYPE_STRING)
    *(protobuf_c_boolean *)((char *)message + field->quantifier_offset) = 1;
  return 0;
}

/* parse_fields sets `message`'s fields from a JSON object's members, skipping
 * "@type" when `in_any`. */
static int parse_fields(parser *p, const cJSON *json, const char *path, ProtobufCMessage *message,
                        bool in_any) {
  const ProtobufCMessageDescriptor *descriptor = message->descriptor;
  if (!cJSON_IsObject(json))
    return fail(p, path, "expected an object (%s), got %s", full_name(descriptor),
                describe_json(json));
  /* A field named twice (the same key, or its snake_case and lowerCamelCase
   * spellings) is an error, as in protobuf's own JSON parser: the second
   * value would silently replace the first. */
  bool *seen = calloc(descriptor->n_fields > 0 ? descriptor->n_fields : 1, sizeof(bool));
  if (seen == NULL) return fail(p, path, "out of memory");
  int rc = 0;
  const cJSON *member;
  cJSON_ArrayForEach(member, json) {
    if (in_any && strcmp(member->string, "@type") == 0) continue;
    char member_path[MAX_PATH];
    join_path(member_path, path, member->string);
    const ProtobufCFieldDescriptor *field = find_field(descriptor, member->string);
    if (field == NULL) {
      rc = fail(p, member_path, "no field \"%s\" in %s", member->string, full_name(descriptor));
      break;
    }
    size_t index = (size_t)(field - descriptor->fields);
    if (seen[index]) {
      rc = fail(p, member_path, "\"%s\" is set twice", field->name);
      break;
    }
    seen[index] = true;
    if (cJSON_IsNull(member)) continue;
    if ((rc = parse_field(p, descriptor, field, member, member_path, message)) != 0) break;
  }
  free(seen);
  return rc != 0 ? -1 : 0;
}

/* ---- well-known types ------------------------------------------------------- */

/* parse_duration reads "1.5s", "-2s", "0.000000001s". */
static int parse_duration(parser *p, const cJSON *json, const char *path,
                          Google__Protobuf__Duration *out) {
  const char *text = cJSON_IsString(json) ? json->valuestring : NULL;
  const char *c = text;
  bool negative = false;
  int64_t seconds = 0;
  int32_t nanos = 0;
  if (c == NULL) goto bad;
  if (*c == '-') {
    negative = true;
    c++;
  }
  if (*c < '0' || *c > '9') goto bad;
  for (; *c >= '0' && *c <= '9'; c++) {
    if (seconds > 315576000000LL) goto bad; /* the proto's limit, 10,000 years */
    seconds = seconds * 10 + (*c - '0');
  }
  if (*c == '.') {
    c++;
    int digits = 0;
    for (; *c >= '0' && *c <= '9'; c++, digits++) {
      if (digits == 9) goto bad;
      nanos = nanos * 10 + (*c - '0');
    }
    if (digits == 0) goto bad;
    for (; digits < 9; digits++)
      nanos *= 10;
  }
  if (c[0] != 's' || c[1] != '\0' || seconds > 315576000000LL) goto bad;
  out->seconds = negative ? -seconds : seconds;
  out->nanos = negative ? -nanos : nanos;
  return 0;
bad:
  if (text != NULL)
    return fail(p, path, "\"%s\" is not a duration (like \"5s\" or \"0.25s\")", text);
  return fail(p, path, "expected a duration string (like \"5s\" or \"0.25s\"), got %s",
              describe_json(json));
}

/* parse_struct_value sets a google.protobuf.Value from any JSON. */
static int parse_struct_value(parser *p, const cJSON *json, const char *path,
                              Google__Protobuf__Value *out) {
  if (cJSON_IsNull(json)) {
    out->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
    out->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
    return 0;
  }
  const char *name = cJSON_IsNumber(json)   ? "number_value"
                     : cJSON_IsString(json) ? "string_value"
                     : cJSON_IsBool(json)   ? "bool_value"
                     : cJSON_IsObject(json) ? "struct_value"
                     : cJSON_IsArray(json)  ? "list_value"
                                            : NULL;
  if (name == NULL) return fail(p, path, "unsupported JSON value");
  const ProtobufCFieldDescriptor *field = find_field(out->base.descriptor, name);
  return parse_field(p, out->base.descriptor, field, json, path, &out->base);
}

static int parse_any(parser *p, const cJSON *json, const char *path, Google__Protobuf__Any *out);

/* parse_message fills `message` (initialized, empty) from `json`. */
static int parse_message(parser *p, const cJSON *json, const char *path,
                         ProtobufCMessage *message) {
  const ProtobufCMessageDescriptor *descriptor = message->descriptor;
  const char *name = full_name(descriptor);
  if (++p->depth > MAX_DEPTH) return fail(p, path, "nested too deeply");
  int rc;
  if (descriptor == &google__protobuf__any__descriptor) {
    rc = parse_any(p, json, path, (Google__Protobuf__Any *)message);
  } else if (descriptor == &google__protobuf__duration__descriptor) {
    rc = parse_duration(p, json, path, (Google__Protobuf__Duration *)message);
  } else if (descriptor == &google__protobuf__value__descriptor) {
    rc = parse_struct_value(p, json, path, (Google__Protobuf__Value *)message);
  } else if (descriptor == &google__protobuf__struct__descriptor ||
             descriptor == &google__protobuf__list_value__descriptor) {
    /* Struct is its map `fields`, ListValue its list `values`. */
    rc = parse_field(p, descriptor, &descriptor->fields[0], json, path, message);
  } else if (strncmp(name, "google.protobuf.", 16) == 0 && strstr(name, "Value") != NULL &&
             descriptor->n_fields == 1 && strcmp(descriptor->fields[0].name, "value") == 0) {
    rc = parse_value(p, &descriptor->fields[0], json, path,
                     (char *)message + descriptor->fields[0].offset);
  } else if (descriptor == &google__protobuf__timestamp__descriptor ||
             strcmp(name, "google.protobuf.FieldMask") == 0) {
    rc = fail(p, path, "%s is not supported", name);
  } else {
    rc = parse_fields(p, json, path, message, false);
  }
  p->depth--;
  return rc;
}

/* has_special_json: well-known types whose JSON is not an object of fields
 * and go under "value" inside an Any. */
static bool has_special_json(const ProtobufCMessageDescriptor *descriptor) {
  const char *name = full_name(descriptor);
  return strncmp(name, "google.protobuf.", 16) == 0 &&
         descriptor != &google__protobuf__empty__descriptor;
}

/* parse_typed reads the message an Any's "@type" names from `json`. */
static int parse_typed(parser *p, const cJSON *json, const char *path,
                       ProtobufCMessage **out_message) {
  if (!cJSON_IsObject(json))
    return fail(p, path, "expected an object with \"@type\", got %s", describe_json(json));
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(json, "@type");
  if (!cJSON_IsString(type)) return fail(p, path, "\"@type\" (a type URL) is missing");
  const ProtobufCMessageDescriptor *descriptor = p->resolver(type->valuestring);
  if (descriptor == NULL) {
    char type_path[MAX_PATH];
    join_path(type_path, path, "@type");
    return fail(p, type_path, "unknown type \"%s\"", type->valuestring);
  }
  ProtobufCMessage *message = message_new(descriptor);
  if (message == NULL) return fail(p, path, "out of memory");
  int rc;
  if (has_special_json(descriptor)) {
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(json, "value");
    char value_path[MAX_PATH];
    join_path(value_path, path, "value");
    rc = value == NULL ? fail(p, path, "\"value\" is missing (%s in an Any)", full_name(descriptor))
                       : parse_message(p, value, value_path, message);
  } else {
    rc = parse_fields(p, json, path, message, true);
  }
  if (rc != 0) {
    protobuf_c_message_free_unpacked(message, NULL);
    return -1;
  }
  *out_message = message;
  return 0;
}

static int parse_any(parser *p, const cJSON *json, const char *path, Google__Protobuf__Any *out) {
  ProtobufCMessage *message = NULL;
  if (parse_typed(p, json, path, &message) != 0) return -1;
  size_t len = protobuf_c_message_get_packed_size(message);
  uint8_t *bytes = malloc(len > 0 ? len : 1);
  char *type_url = strdup(cJSON_GetObjectItemCaseSensitive(json, "@type")->valuestring);
  if (bytes == NULL || type_url == NULL) {
    free(bytes);
    free(type_url);
    protobuf_c_message_free_unpacked(message, NULL);
    return fail(p, path, "out of memory");
  }
  protobuf_c_message_pack(message, bytes);
  protobuf_c_message_free_unpacked(message, NULL);
  out->type_url = type_url;
  out->value.data = bytes;
  out->value.len = len;
  return 0;
}

/* ---- the resolver and the entry points -------------------------------------- */

/* The roots of the types we know; everything their fields reach is known. */
static const ProtobufCMessageDescriptor *const known_roots[] = {
    &envoy__config__cluster__v3__cluster__descriptor,
    &envoy__config__endpoint__v3__cluster_load_assignment__descriptor,
    &envoy__config__listener__v3__listener__descriptor,
    &envoy__extensions__filters__http__router__v3__router__descriptor,
    &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor,
    &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__secret__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor,
    &envoy__service__discovery__v3__discovery_request__descriptor,
    &envoy__service__discovery__v3__discovery_response__descriptor,
    &google__protobuf__any__descriptor,
    &google__protobuf__duration__descriptor,
    &google__protobuf__empty__descriptor,
    &google__protobuf__struct__descriptor,
    &google__protobuf__timestamp__descriptor,
    &google__protobuf__double_value__descriptor,
    &google__protobuf__float_value__descriptor,
    &google__protobuf__int64_value__descriptor,
    &google__protobuf__uint64_value__descriptor,
    &google__protobuf__int32_value__descriptor,
    &google__protobuf__uint32_value__descriptor,
    &google__protobuf__bool_value__descriptor,
    &google__protobuf__string_value__descriptor,
    &google__protobuf__bytes_value__descriptor,
};

/* find_descriptor searches `descriptor` and what its fields reach for the
 * message called `name`; `depth` bounds the walk (the schema has cycles). */
static const ProtobufCMessageDescriptor *find_descriptor(
    const ProtobufCMessageDescriptor *descriptor, const char *name, int depth) {
  if (strcmp(full_name(descriptor), name) == 0) return descriptor;
  if (depth == 0) return NULL;
  for (unsigned i = 0; i < descriptor->n_fields; i++) {
    const ProtobufCFieldDescriptor *field = &descriptor->fields[i];
    if (field->type != PROTOBUF_C_TYPE_MESSAGE || field->descriptor == descriptor) continue;
    const ProtobufCMessageDescriptor *found = find_descriptor(field->descriptor, name, depth - 1);
    if (found != NULL) return found;
  }
  return NULL;
}

const ProtobufCMessageDescriptor *ms_json_pb_envoy_resolver(const char *type_url) {
  const char *slash = strrchr(type_url, '/');
  const char *name = slash != NULL ? slash + 1 : type_url;
  for (size_t i = 0; i < sizeof(known_roots) / sizeof(known_roots[0]); i++) {
    const ProtobufCMessageDescriptor *found = find_descriptor(known_roots[i], name, 8);
    if (found != NULL) return found;
  }
  return NULL;
}

int ms_json_pb_parse(const cJSON *json, const ProtobufCMessageDescriptor *descriptor,
                     const char *path, ms_json_pb_resolver resolver, ProtobufCMessage **out_message,
                     char *err, size_t err_len) {
  parser p = {.resolver = resolver != NULL ? resolver : ms_json_pb_envoy_resolver,
              .err = err,
              .err_len = err_len};
  ProtobufCMessage *message = message_new(descriptor);
  if (message == NULL) return fail(&p, path, "out of memory");
  if (parse_message(&p, json, path != NULL ? path : "", message) != 0) {
    protobuf_c_message_free_unpacked(message, NULL);
    return -1;
  }
  *out_message = message;
  return 0;
}

int ms_json_pb_parse_any(const cJSON *json, const char *path, ms_json_pb_resolver resolver,
                         ProtobufCMessage **out_message, char *err, size_t err_len) {
  parser p = {.resolver = resolver != NULL ? resolver : ms_json_pb_envoy_resolver,
              .err = err,
              .err_len = err_len};
  return parse_typed(&p, json, path != NULL ? path : "", out_message);
}
