/* manifest.c: YAML and JSON streams of Kubernetes objects in and out
 * (manifest.h). YAML goes through libyaml's event API, one pass with an
 * explicit stack (no recursion on the input's nesting), scalars resolved
 * as sigs.k8s.io/yaml (go-yaml v2, YAML 1.1) resolves them. */
#include "inject/manifest.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "common/err.h"
#include "common/log.h"

/* ---- Scalars ---- */

typedef enum resolved {
  RESOLVED_STRING,
  RESOLVED_NULL,
  RESOLVED_TRUE,
  RESOLVED_FALSE,
  RESOLVED_NUMBER,   /* canonical decimal text in the caller's buffer */
  RESOLVED_NOT_JSON, /* .inf, .nan, the merge key "<<" */
} resolved;

static bool one_of(const char *text, const char *const *list) {
  for (; *list; list++)
    if (strcmp(text, *list) == 0) return true;
  return false;
}

/* format_double writes the shortest text that reads back as `value`. */
static void format_double(double value, char *out, size_t out_len) {
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(out, out_len, "%.*g", digits, value);
    if (strtod(out, NULL) == value) return;
  }
}

/* float_syntax: go-yaml's yamlStyleFloat,
 * ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static bool float_syntax(const char *s) {
  if (*s == '-' || *s == '+') s++;
  size_t digits = strspn(s, "0123456789");
  s += digits;
  if (*s == '.') {
    s++;
    size_t fraction = strspn(s, "0123456789");
    if (digits == 0 && fraction == 0) return false;
    s += fraction;
  } else if (digits == 0) {
    return false;
  }
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '-' || *s == '+') s++;
    size_t exponent = strspn(s, "0123456789");
    if (exponent == 0) return false;
    s += exponent;
  }
  return *s == '\0';
}

/* integer_value parses `s` (underscores removed) as Go's
 * strconv.ParseInt/ParseUint with base 0 and go-yaml's 0b forms do. */
static bool integer_value(const char *s, bool *out_negative, unsigned long long *out_value) {
  bool negative = false;
  if (*s == '-' || *s == '+') negative = *s++ == '-';
  int base = 10;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
    base = 16, s += 2;
  else if (s[0] == '0' && (s[1] == 'o' || s[1] == 'O'))
    base = 8, s += 2;
  else if (s[0] == '0' && (s[1] == 'b' || s[1] == 'B'))
    base = 2, s += 2;
  else if (s[0] == '0' && s[1] != '\0')
    base = 8, s += 1;
  static const char *const digit_sets[] = {
      [2] = "01", [8] = "01234567", [10] = "0123456789", [16] = "0123456789abcdefABCDEF"};
  if (*s == '\0' || strspn(s, digit_sets[base]) != strlen(s)) return false;
  errno = 0;
  unsigned long long value = strtoull(s, NULL, base);
  if (errno == ERANGE) return false;
  if (negative && value > 9223372036854775808ull) return false;
  *out_negative = negative && value != 0;
  *out_value = value;
  return true;
}

/* resolve_plain: what a plain scalar `text` is; numbers also written in
 * canonical form into `number` (at least 64 bytes). */
static resolved resolve_plain(const char *text, char *number, size_t number_len) {
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
  static const char *const truths[] = {"y",    "Y",    "yes", "Yes", "YES", "true",
                                       "True", "TRUE", "on",  "On",  "ON",  NULL};
  static const char *const falsehoods[] = {"n",     "N",     "no",  "No",  "NO",  "false",
                                           "False", "FALSE", "off", "Off", "OFF", NULL};
  static const char *const not_json[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                         "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
                                         ".NaN",  ".NAN",  "<<",    NULL};
  /* Most scalars are words longer than any in the tables below (a quarter
   * of mtls-inject's time went to comparing them). */
  char first = text[0] == '-' || text[0] == '+' ? text[1] : text[0];
  bool numeric = (first >= '0' && first <= '9') || first == '.';
  if (!numeric && strnlen(text, 7) > 6) return RESOLVED_STRING;
  if (one_of(text, nulls)) return RESOLVED_NULL;
  if (one_of(text, truths)) return RESOLVED_TRUE;
  if (one_of(text, falsehoods)) return RESOLVED_FALSE;
  if (one_of(text, not_json)) return RESOLVED_NOT_JSON;
  if (!numeric) return RESOLVED_STRING;
  char plain[64];
  size_t n = 0;
  for (const char *c = text; *c; c++) {
    if (*c == '_') continue;
    if (n + 1 >= sizeof(plain)) return RESOLVED_STRING;
    plain[n++] = *c;
  }
  plain[n] = '\0';
  bool negative;
  unsigned long long value;
  if (integer_value(plain, &negative, &value)) {
    snprintf(number, number_len, "%s%llu", negative ? "-" : "", value);
    return RESOLVED_NUMBER;
  }
  if (float_syntax(plain)) {
    double d = strtod(plain, NULL);
    if (isinf(d) || isnan(d)) return RESOLVED_NOT_JSON;
    format_double(d, number, number_len);
    return RESOLVED_NUMBER;
  }
  return RESOLVED_STRING;
}

/* ---- Keys given twice ---- */

static int compare_keys(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* duplicate_key returns a key `object` has twice, or NULL. Sorting makes it
 * O(n log n) whatever the number of keys. Sets *out_failed when memory ran
 * out. */
static const char *duplicate_key(const cJSON *object, bool *out_failed) {
  size_t count = 0;
  for (const cJSON *item = object->child; item; item = item->next)
    count++;
  if (count < 2) return NULL;
  const char **keys = malloc(count * sizeof(*keys));
  if (keys == NULL) {
    *out_failed = true;
    return NULL;
  }
  size_t n = 0;
  for (const cJSON *item = object->child; item; item = item->next)
    keys[n++] = item->string ? item->string : "";
  qsort(keys, count, sizeof(*keys), compare_keys);
  const char *found = NULL;
  for (size_t i = 1; i < count && found == NULL; i++)
    if (strcmp(keys[i - 1], keys[i]) == 0) found = keys[i];
  free(keys);
  return found;
}

/* json_duplicates walks a parsed JSON document (cJSON's own nesting limit
 * bounds the recursion). */
static const char *json_duplicates(const cJSON *node, bool *out_failed) {
  if (cJSON_IsObject(node)) {
    const char *found = duplicate_key(node, out_failed);
    if (found || *out_failed) return found;
  }
  if (cJSON_IsObject(node) || cJSON_IsArray(node))
    for (const cJSON *item = node->child; item; item = item->next) {
      const char *found = json_duplicates(item, out_failed);
      if (found || *out_failed) return found;
    }
  return NULL;
}

/* ---- The manifest ---- */

static int manifest_push(ms_manifest *manifest, cJSON *document, size_t line) {
  size_t count = manifest->count + 1;
  if ((count & (count - 1)) == 0 || manifest->documents == NULL) {
    size_t capacity = count < 16 ? 16 : count * 2;
    cJSON **documents = realloc(manifest->documents, capacity * sizeof(*documents));
    if (documents == NULL) return -1;
    manifest->documents = documents;
    size_t *lines = realloc(manifest->lines, capacity * sizeof(*lines));
    if (lines == NULL) return -1;
    manifest->lines = lines;
  }
  manifest->documents[manifest->count] = document;
  manifest->lines[manifest->count] = line;
  manifest->count = count;
  return 0;
}

void ms_manifest_cleanup(ms_manifest *manifest) {
  for (size_t i = 0; i < manifest->count; i++)
    cJSON_Delete(manifest->documents[i]);
  free(manifest->documents);
  free(manifest->lines);
  manifest->documents = NULL;
  manifest->lines = NULL;
  manifest->count = 0;
}

static size_t line_of(const char *text, size_t offset, size_t *out_column) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset; i++) {
    if (text[i] == '\n')
      line++, column = 1;
    else
      column++;
  }
  *out_column = column;
  return line;
}

static int parse_json(const char *text, size_t len, ms_manifest *out, char *err, size_t err_len) {
  size_t offset = 0;
  for (;;) {
    while (offset < len && strchr(" \t\r\n", text[offset]) != NULL && text[offset] != '\0')
      offset++;
    if (offset == len) return 0;
    size_t column, line = line_of(text, offset, &column);
    const char *end = NULL;
    cJSON *document = cJSON_ParseWithLengthOpts(text + offset, len - offset, &end, false);
    if (document == NULL) {
      size_t at = end != NULL && end >= text && end <= text + len ? (size_t)(end - text) : offset;
      size_t error_line = line_of(text, at, &column);
      ms_err_set(err, err_len, "JSON document %zu: line %zu, column %zu: not valid JSON",
                 out->count + 1, error_line, column);
      return -1;
    }
    offset = (size_t)(end - text);
    if (!cJSON_IsObject(document)) {
      ms_err_set(err, err_len, "JSON document %zu (line %zu) is not an object", out->count + 1,
                 line);
      cJSON_Delete(document);
      return -1;
    }
    bool failed = false;
    char escaped[MS_LOG_ESCAPED_LEN];
    const char *duplicate = json_duplicates(document, &failed);
    if (duplicate != NULL || failed) {
      if (failed)
        ms_err_set(err, err_len, "out of memory");
      else
        ms_err_set(err, err_len,
                   "JSON document %zu (line %zu): key \"%s\" appears twice in one object",
                   out->count + 1, line, ms_log_escape(duplicate, 128, escaped, sizeof(escaped)));
      cJSON_Delete(document);
      return -1;
    }
    if (manifest_push(out, document, line) != 0) {
      ms_err_set(err, err_len, "out of memory");
      cJSON_Delete(document);
      return -1;
    }
  }
}

/* ---- YAML in ---- */

typedef struct anchor {
  char *name;
  const cJSON *node; /* in the document being built */
  size_t nodes;      /* how many nodes a copy makes */
} anchor;

typedef struct frame {
  cJSON *node;       /* an object or array, attached to its parent */
  char *key;         /* an object's key waiting for its value */
  char *anchor;      /* the collection's anchor, registered at its end */
  size_t first_node; /* the reader's node count at its start */
  size_t line;
} frame;

typedef struct yaml_reader {
  frame stack[MS_MANIFEST_MAX_DEPTH];
  size_t depth;
  cJSON *root;
  size_t nodes;
  anchor *anchors;
  size_t anchor_count, anchor_capacity;
  char *err;
  size_t err_len;
} yaml_reader;

static void reader_reset(yaml_reader *reader) {
  for (size_t i = 0; i < reader->depth; i++) {
    free(reader->stack[i].key);
    free(reader->stack[i].anchor);
  }
  reader->depth = 0;
  cJSON_Delete(reader->root);
  reader->root = NULL;
  reader->nodes = 0;
  for (size_t i = 0; i < reader->anchor_count; i++)
    free(reader->anchors[i].name);
  reader->anchor_count = 0;
}

static int add_anchor(yaml_reader *reader, const char *name, const cJSON *node, size_t nodes) {
  if (reader->anchor_count == reader->anchor_capacity) {
    size_t capacity = reader->anchor_capacity ? reader->anchor_capacity * 2 : 8;
    anchor *anchors = realloc(reader->anchors, capacity * sizeof(*anchors));
    if (anchors == NULL) return -1;
    reader->anchors = anchors;
    reader->anchor_capacity = capacity;
  }
  char *copy = strdup(name);
  if (copy == NULL) return -1;
  reader->anchors[reader->anchor_count++] = (anchor){copy, node, nodes};
  return 0;
}

/* count_node counts `nodes` more, refusing past the cap. */
static int count_nodes(yaml_reader *reader, size_t nodes, size_t line) {
  if (nodes > MS_MANIFEST_MAX_NODES - reader->nodes) {
    ms_err_set(reader->err, reader->err_len,
               "line %zu: the document has more than %d nodes (aliases counted as what they copy)",
               line, MS_MANIFEST_MAX_NODES);
    return -1;
  }
  reader->nodes += nodes;
  return 0;
}

/* attach puts `node` where the stack says (taking it); a key of a mapping
 * must be a scalar, which the caller handles before. */
static int attach(yaml_reader *reader, cJSON *node, size_t line) {
  if (reader->depth == 0) {
    reader->root = node;
    return 0;
  }
  frame *top = &reader->stack[reader->depth - 1];
  if (cJSON_IsArray(top->node)) {
    cJSON_AddItemToArray(top->node, node);
    return 0;
  }
  if (top->key == NULL) {
    ms_err_set(reader->err, reader->err_len,
               "line %zu: a key that is a mapping or a list (a JSON key is a string)", line);
    cJSON_Delete(node);
    return -1;
  }
  bool ok = cJSON_AddItemToObject(top->node, top->key, node);
  free(top->key);
  top->key = NULL;
  if (!ok) {
    cJSON_Delete(node);
    ms_err_set(reader->err, reader->err_len, "out of memory");
    return -1;
  }
  return 0;
}

static bool expects_key(const yaml_reader *reader) {
  return reader->depth > 0 && cJSON_IsObject(reader->stack[reader->depth - 1].node) &&
         reader->stack[reader->depth - 1].key == NULL;
}

static int on_scalar(yaml_reader *reader, const yaml_event_t *event) {
  size_t line = event->start_mark.line + 1;
  const char *text = (const char *)event->data.scalar.value;
  if (strlen(text) != event->data.scalar.length) {
    ms_err_set(reader->err, reader->err_len, "line %zu: a scalar holds a NUL character", line);
    return -1;
  }
  bool plain = event->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  const char *tag = (const char *)event->data.scalar.tag;
  bool string_tag = tag != NULL && (strcmp(tag, YAML_STR_TAG) == 0 || strcmp(tag, "!") == 0);
  if (count_nodes(reader, 1, line) != 0) return -1;
  if (expects_key(reader)) {
    if (plain && strcmp(text, "<<") == 0) {
      ms_err_set(reader->err, reader->err_len,
                 "line %zu: merge keys (<<) are not supported: write the keys out", line);
      return -1;
    }
    frame *top = &reader->stack[reader->depth - 1];
    top->key = strdup(text);
    if (top->key == NULL) {
      ms_err_set(reader->err, reader->err_len, "out of memory");
      return -1;
    }
    return 0;
  }
  char number[64];
  resolved kind =
      plain && !string_tag ? resolve_plain(text, number, sizeof(number)) : RESOLVED_STRING;
  cJSON *node = NULL;
  switch (kind) {
    case RESOLVED_STRING:
      node = cJSON_CreateString(text);
      break;
    case RESOLVED_NULL:
      node = cJSON_CreateNull();
      break;
    case RESOLVED_TRUE:
      node = cJSON_CreateTrue();
      break;
    case RESOLVED_FALSE:
      node = cJSON_CreateFalse();
      break;
    case RESOLVED_NUMBER:
      node = cJSON_CreateRaw(number);
      break;
    case RESOLVED_NOT_JSON:
      ms_err_set(reader->err, reader->err_len,
                 "line %zu: \"%.32s\" has no JSON form (quote it if it is a string)", line, text);
      return -1;
  }
  if (node == NULL) {
    ms_err_set(reader->err, reader->err_len, "out of memory");
    return -1;
  }
  if (attach(reader, node, line) != 0) return -1;
  if (event->data.scalar.anchor != NULL &&
      add_anchor(reader, (const char *)event->data.scalar.anchor, node, 1) != 0) {
    ms_err_set(reader->err, reader->err_len, "out of memory");
    return -1;
  }
  return 0;
}

static int on_alias(yaml_reader *reader, const yaml_event_t *event) {
  size_t line = event->start_mark.line + 1;
  const char *name = (const char *)event->data.alias.anchor;
  const anchor *found = NULL;
  for (size_t i = reader->anchor_count; i > 0 && found == NULL; i--)
    if (strcmp(reader->anchors[i - 1].name, name) == 0) found = &reader->anchors[i - 1];
  if (found == NULL) {
    char escaped[MS_LOG_ESCAPED_LEN];
    ms_err_set(reader->err, reader->err_len, "line %zu: alias *%s names no anchor before it", line,
               ms_log_escape(name, 64, escaped, sizeof(escaped)));
    return -1;
  }
  if (expects_key(reader)) {
    if (!cJSON_IsString(found->node)) {
      ms_err_set(reader->err, reader->err_len, "line %zu: an alias as a key must name a string",
                 line);
      return -1;
    }
    if (count_nodes(reader, 1, line) != 0) return -1;
    frame *top = &reader->stack[reader->depth - 1];
    top->key = strdup(found->node->valuestring);
    if (top->key == NULL) {
      ms_err_set(reader->err, reader->err_len, "out of memory");
      return -1;
    }
    return 0;
  }
  if (count_nodes(reader, found->nodes, line) != 0) return -1;
  cJSON *copy = cJSON_Duplicate(found->node, true);
  if (copy == NULL) {
    ms_err_set(reader->err, reader->err_len, "out of memory");
    return -1;
  }
  return attach(reader, copy, line);
}

static int on_collection_start(yaml_reader *reader, const yaml_event_t *event, bool mapping) {
  size_t line = event->start_mark.line + 1;
  if (reader->depth == MS_MANIFEST_MAX_DEPTH) {
    ms_err_set(reader->err, reader->err_len, "line %zu: nested deeper than %d levels", line,
               MS_MANIFEST_MAX_DEPTH);
    return -1;
  }
  if (count_nodes(reader, 1, line) != 0) return -1;
  if (expects_key(reader)) {
    ms_err_set(reader->err, reader->err_len,
               "line %zu: a key that is a mapping or a list (a JSON key is a string)", line);
    return -1;
  }
  cJSON *node = mapping ? cJSON_CreateObject() : cJSON_CreateArray();
  const yaml_char_t *anchor_name =
      mapping ? event->data.mapping_start.anchor : event->data.sequence_start.anchor;
  char *anchor_copy = anchor_name ? strdup((const char *)anchor_name) : NULL;
  if (node == NULL || (anchor_name != NULL && anchor_copy == NULL)) {
    cJSON_Delete(node);
    free(anchor_copy);
    ms_err_set(reader->err, reader->err_len, "out of memory");
    return -1;
  }
  if (attach(reader, node, line) != 0) {
    free(anchor_copy);
    return -1;
  }
  reader->stack[reader->depth++] =
      (frame){.node = node, .anchor = anchor_copy, .first_node = reader->nodes, .line = line};
  return 0;
}

static int on_collection_end(yaml_reader *reader) {
  frame *top = &reader->stack[reader->depth - 1];
  if (cJSON_IsObject(top->node)) {
    bool failed = false;
    char escaped[MS_LOG_ESCAPED_LEN];
    const char *duplicate = duplicate_key(top->node, &failed);
    if (duplicate != NULL || failed) {
      if (failed)
        ms_err_set(reader->err, reader->err_len, "out of memory");
      else
        ms_err_set(reader->err, reader->err_len,
                   "line %zu: key \"%s\" appears twice in one mapping", top->line,
                   ms_log_escape(duplicate, 128, escaped, sizeof(escaped)));
      return -1;
    }
  }
  int rc = 0;
  if (top->anchor != NULL &&
      add_anchor(reader, top->anchor, top->node, reader->nodes - top->first_node + 1) != 0) {
    ms_err_set(reader->err, reader->err_len, "out of memory");
    rc = -1;
  }
  free(top->anchor);
  free(top->key);
  reader->depth--;
  return rc;
}

static int parse_yaml(const char *text, size_t len, ms_manifest *out, char *err, size_t err_len) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) {
    ms_err_set(err, err_len, "out of memory");
    return -1;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  yaml_reader *reader = calloc(1, sizeof(*reader));
  if (reader == NULL) {
    yaml_parser_delete(&parser);
    ms_err_set(err, err_len, "out of memory");
    return -1;
  }
  reader->err = err;
  reader->err_len = err_len;
  size_t document_line = 1;
  int rc = 0;
  bool done = false;
  while (!done && rc == 0) {
    yaml_event_t event;
    if (!yaml_parser_parse(&parser, &event)) {
      if (parser.error == YAML_MEMORY_ERROR) {
        ms_err_set(err, err_len, "out of memory");
      } else if (parser.error == YAML_READER_ERROR) { /* no mark: an offset */
        size_t column, line = line_of(text, parser.problem_offset, &column);
        ms_err_set(err, err_len, "line %zu, column %zu: %s", line, column,
                   parser.problem ? parser.problem : "not UTF-8 text");
      } else
        ms_err_set(err, err_len, "line %zu, column %zu: %s%s%s", parser.problem_mark.line + 1,
                   parser.problem_mark.column + 1, parser.problem ? parser.problem : "not YAML",
                   parser.context ? " " : "", parser.context ? parser.context : "");
      rc = -1;
      break;
    }
    switch (event.type) {
      case YAML_STREAM_END_EVENT:
        done = true;
        break;
      case YAML_DOCUMENT_START_EVENT:
        document_line = event.start_mark.line + 1;
        break;
      case YAML_DOCUMENT_END_EVENT:
        if (reader->root != NULL && !cJSON_IsNull(reader->root)) {
          if (!cJSON_IsObject(reader->root)) {
            ms_err_set(err, err_len,
                       "the document at line %zu is not a Kubernetes object (a mapping)",
                       document_line);
            rc = -1;
          } else if (manifest_push(out, reader->root, document_line) != 0) {
            ms_err_set(err, err_len, "out of memory");
            rc = -1;
          } else {
            reader->root = NULL;
          }
        }
        reader_reset(reader);
        break;
      case YAML_SCALAR_EVENT:
        rc = on_scalar(reader, &event);
        break;
      case YAML_ALIAS_EVENT:
        rc = on_alias(reader, &event);
        break;
      case YAML_SEQUENCE_START_EVENT:
        rc = on_collection_start(reader, &event, false);
        break;
      case YAML_MAPPING_START_EVENT:
        rc = on_collection_start(reader, &event, true);
        break;
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        rc = on_collection_end(reader);
        break;
      default:
        break;
    }
    yaml_event_delete(&event);
  }
  reader_reset(reader);
  free(reader->anchors);
  free(reader);
  yaml_parser_delete(&parser);
  return rc;
}

int ms_manifest_parse(const char *text, size_t len, ms_manifest *out, char *err, size_t err_len) {
  *out = (ms_manifest){0};
  size_t first = 0;
  while (first < len &&
         (text[first] == ' ' || text[first] == '\t' || text[first] == '\r' || text[first] == '\n'))
    first++;
  out->format = first < len && (text[first] == '{' || text[first] == '[') ? MS_MANIFEST_JSON
                                                                          : MS_MANIFEST_YAML;
  int rc = out->format == MS_MANIFEST_JSON ? parse_json(text, len, out, err, err_len)
                                           : parse_yaml(text, len, out, err, err_len);
  if (rc != 0) {
    ms_manifest_format format = out->format;
    ms_manifest_cleanup(out);
    out->format = format;
  }
  return rc;
}

/* ---- Out ---- */

typedef struct text_buffer {
  char *data;
  size_t len, capacity;
  bool failed;
} text_buffer;

static void buffer_append(text_buffer *buffer, const void *bytes, size_t len) {
  if (buffer->failed) return;
  if (buffer->len + len + 1 > buffer->capacity) {
    size_t capacity = buffer->capacity ? buffer->capacity : 4096;
    while (capacity < buffer->len + len + 1)
      capacity *= 2;
    char *data = realloc(buffer->data, capacity);
    if (data == NULL) {
      buffer->failed = true;
      return;
    }
    buffer->data = data;
    buffer->capacity = capacity;
  }
  memcpy(buffer->data + buffer->len, bytes, len);
  buffer->len += len;
  buffer->data[buffer->len] = '\0';
}

static int yaml_write_handler(void *data, unsigned char *bytes, size_t size) {
  text_buffer *buffer = data;
  buffer_append(buffer, bytes, size);
  return !buffer->failed;
}

static int emit_scalar(yaml_emitter_t *emitter, const char *text, yaml_scalar_style_t style) {
  yaml_event_t event;
  if (!yaml_scalar_event_initialize(&event, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), 1,
                                    1, style))
    return -1;
  return yaml_emitter_emit(emitter, &event) ? 0 : -1;
}

/* emit_string writes `text` plain when it reads back as the same string,
 * as a literal block when it has lines, double-quoted otherwise (libyaml
 * moves to a quoted style by itself where plain cannot be written). */
static int emit_string(yaml_emitter_t *emitter, const char *text) {
  char number[64];
  yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
  if (strchr(text, '\n') != NULL)
    style = YAML_LITERAL_SCALAR_STYLE;
  else if (resolve_plain(text, number, sizeof(number)) != RESOLVED_STRING)
    style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  return emit_scalar(emitter, text, style);
}

/* emit_node: documents come from this file's readers or from inject.c, so
 * the recursion is bounded by MS_MANIFEST_MAX_DEPTH (YAML) plus the few
 * levels injection adds. */
static int emit_node(yaml_emitter_t *emitter, const cJSON *node) {
  yaml_event_t event;
  if (cJSON_IsObject(node) || cJSON_IsArray(node)) {
    bool mapping = cJSON_IsObject(node);
    int ok = mapping ? yaml_mapping_start_event_initialize(&event, NULL, NULL, 1,
                                                           YAML_BLOCK_MAPPING_STYLE)
                     : yaml_sequence_start_event_initialize(&event, NULL, NULL, 1,
                                                            YAML_BLOCK_SEQUENCE_STYLE);
    if (!ok || !yaml_emitter_emit(emitter, &event)) return -1;
    for (const cJSON *item = node->child; item; item = item->next) {
      if (mapping && emit_string(emitter, item->string ? item->string : "") != 0) return -1;
      if (emit_node(emitter, item) != 0) return -1;
    }
    ok = mapping ? yaml_mapping_end_event_initialize(&event)
                 : yaml_sequence_end_event_initialize(&event);
    return ok && yaml_emitter_emit(emitter, &event) ? 0 : -1;
  }
  if (cJSON_IsString(node)) return emit_string(emitter, node->valuestring);
  if (cJSON_IsRaw(node)) return emit_scalar(emitter, node->valuestring, YAML_PLAIN_SCALAR_STYLE);
  if (cJSON_IsNumber(node)) {
    char number[64];
    format_double(node->valuedouble, number, sizeof(number));
    return emit_scalar(emitter, number, YAML_PLAIN_SCALAR_STYLE);
  }
  return emit_scalar(emitter,
                     cJSON_IsTrue(node)    ? "true"
                     : cJSON_IsFalse(node) ? "false"
                                           : "null",
                     YAML_PLAIN_SCALAR_STYLE);
}

static int write_yaml(const ms_manifest *manifest, text_buffer *buffer, char *err, size_t err_len) {
  yaml_emitter_t emitter;
  if (!yaml_emitter_initialize(&emitter)) {
    ms_err_set(err, err_len, "out of memory");
    return -1;
  }
  yaml_emitter_set_output(&emitter, yaml_write_handler, buffer);
  yaml_emitter_set_unicode(&emitter, 1);
  yaml_emitter_set_indent(&emitter, 2);
  yaml_emitter_set_width(&emitter, -1);
  yaml_event_t event;
  int rc = yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING) &&
                   yaml_emitter_emit(&emitter, &event)
               ? 0
               : -1;
  for (size_t i = 0; i < manifest->count && rc == 0; i++) {
    rc = yaml_document_start_event_initialize(&event, NULL, NULL, NULL, i == 0) &&
                 yaml_emitter_emit(&emitter, &event)
             ? 0
             : -1;
    if (rc == 0) rc = emit_node(&emitter, manifest->documents[i]);
    if (rc == 0)
      rc = yaml_document_end_event_initialize(&event, 1) && yaml_emitter_emit(&emitter, &event)
               ? 0
               : -1;
  }
  if (rc == 0)
    rc = yaml_stream_end_event_initialize(&event) && yaml_emitter_emit(&emitter, &event) &&
                 yaml_emitter_flush(&emitter)
             ? 0
             : -1;
  if (rc != 0)
    ms_err_set(err, err_len, "cannot write YAML: %s",
               buffer->failed    ? "out of memory"
               : emitter.problem ? emitter.problem
                                 : "emitter error");
  yaml_emitter_delete(&emitter);
  return rc;
}

char *ms_manifest_write(const ms_manifest *manifest, size_t *out_len, char *err, size_t err_len) {
  text_buffer buffer = {0};
  buffer_append(&buffer, "", 0);
  int rc = 0;
  if (manifest->format == MS_MANIFEST_YAML) {
    rc = write_yaml(manifest, &buffer, err, err_len);
  } else {
    for (size_t i = 0; i < manifest->count && rc == 0; i++) {
      char *text = cJSON_Print(manifest->documents[i]);
      if (text == NULL) {
        rc = -1;
        break;
      }
      buffer_append(&buffer, text, strlen(text));
      buffer_append(&buffer, "\n", 1);
      free(text);
    }
    if (rc != 0 || buffer.failed) ms_err_set(err, err_len, "out of memory");
  }
  if (rc != 0 || buffer.failed) {
    free(buffer.data);
    return NULL;
  }
  *out_len = buffer.len;
  return buffer.data;
}
