/* resources_common.c: what the decoders share (resources_internal.h): error
 * messages with the resource's name and the field's path, durations, socket
 * addresses, DataSources, ConfigSources; and the decoding of any resource
 * from a google.protobuf.Any (resources.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>

#include "common/log.h"
#include "xds/proto/pb_depth.h"
#include "xds/proto/type_urls.h"
#include "xds/resources/resources_internal.h"

/* ---- messages ---------------------------------------------------------------- */

void ms_xds_escape(const char *text, char *out, size_t out_len) {
  ms_log_escape(text, SIZE_MAX, out, out_len);
}

void ms_xds_decoder_init(ms_xds_decoder *decoder, const char *kind, char *err, size_t err_len) {
  memset(decoder, 0, sizeof(*decoder));
  decoder->err = err;
  decoder->err_len = err_len;
  decoder->kind = kind;
}

int ms_xds_decoder_set_name(ms_xds_decoder *decoder, const char *name) {
  if (name == NULL || name[0] == '\0') {
    return ms_xds_fail_field(decoder, "name", "must not be empty");
  }
  char escaped[sizeof(decoder->name) - 2]; /* room for the quotes */
  ms_xds_escape(name, escaped, sizeof(escaped));
  snprintf(decoder->name, sizeof(decoder->name), "\"%s\"", escaped);
  return 0;
}

size_t ms_xds_push(ms_xds_decoder *decoder, const char *field) {
  size_t saved = decoder->path_len;
  int n = snprintf(decoder->path + saved, sizeof(decoder->path) - saved, "%s%s",
                   saved > 0 ? "." : "", field);
  if (n > 0) decoder->path_len += (size_t)n;
  if (decoder->path_len >= sizeof(decoder->path)) decoder->path_len = sizeof(decoder->path) - 1;
  return saved;
}

size_t ms_xds_push_index(ms_xds_decoder *decoder, size_t index) {
  size_t saved = decoder->path_len;
  int n = snprintf(decoder->path + saved, sizeof(decoder->path) - saved, "[%zu]", index);
  if (n > 0) decoder->path_len += (size_t)n;
  if (decoder->path_len >= sizeof(decoder->path)) decoder->path_len = sizeof(decoder->path) - 1;
  return saved;
}

void ms_xds_pop(ms_xds_decoder *decoder, size_t saved) {
  decoder->path_len = saved;
  decoder->path[saved] = '\0';
}

static int vfail(ms_xds_decoder *decoder, const char *format, va_list args) {
  if (decoder->err == NULL || decoder->err_len == 0) return -1;
  char message[512];
  vsnprintf(message, sizeof(message), format, args);
  const char *field = decoder->path_len > 0 ? decoder->path : NULL;
  if (decoder->name[0] == '\0' && field == NULL) {
    snprintf(decoder->err, decoder->err_len, "%s: %s", decoder->kind, message);
  } else if (decoder->name[0] == '\0') {
    snprintf(decoder->err, decoder->err_len, "%s: %s: %s", decoder->kind, field, message);
  } else if (field == NULL) {
    snprintf(decoder->err, decoder->err_len, "%s %s: %s", decoder->kind, decoder->name, message);
  } else {
    snprintf(decoder->err, decoder->err_len, "%s %s: %s: %s", decoder->kind, decoder->name, field,
             message);
  }
  return -1;
}

int ms_xds_fail(ms_xds_decoder *decoder, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vfail(decoder, format, args);
  va_end(args);
  return -1;
}

int ms_xds_fail_field(ms_xds_decoder *decoder, const char *field, const char *format, ...) {
  size_t saved = ms_xds_push(decoder, field);
  va_list args;
  va_start(args, format);
  vfail(decoder, format, args);
  va_end(args);
  ms_xds_pop(decoder, saved);
  return -1;
}

int ms_xds_out_of_memory(ms_xds_decoder *decoder) {
  return ms_xds_fail(decoder, "out of memory");
}

void *ms_xds_unpack(ms_xds_decoder *decoder, const ProtobufCMessageDescriptor *descriptor,
                    const uint8_t *bytes, size_t len) {
  char why[MS_XDS_ESCAPED_LEN + 64];
  ProtobufCMessage *message = ms_pb_unpack_guarded(descriptor, bytes, len, why, sizeof(why));
  if (message == NULL) ms_xds_fail(decoder, "%s", why);
  return message;
}

bool ms_xds_has_unknown_field(const ProtobufCMessage *message, uint32_t number) {
  for (size_t i = 0; i < message->n_unknown_fields; i++) {
    if (message->unknown_fields[i].tag == number) return true;
  }
  return false;
}

int ms_xds_refuse_unknown_fields(ms_xds_decoder *decoder, const ProtobufCMessage *message,
                                 const ms_xds_refused_field *fields, size_t count) {
  for (size_t i = 0; i < count; i++) {
    if (ms_xds_has_unknown_field(message, fields[i].number)) {
      return ms_xds_fail_field(decoder, fields[i].name, "%s", fields[i].reason);
    }
  }
  return 0;
}

const char *ms_xds_type_name(const char *type_url) {
  const char *slash = strrchr(type_url, '/');
  return slash != NULL ? slash + 1 : type_url;
}

/* ---- strings ------------------------------------------------------------------ */

int ms_xds_strdup(ms_xds_decoder *decoder, const char *text, bool empty_is_null, char **out) {
  *out = NULL;
  if (text == NULL || (empty_is_null && text[0] == '\0')) return 0;
  *out = strdup(text);
  return *out != NULL ? 0 : ms_xds_out_of_memory(decoder);
}

int ms_xds_join(ms_xds_decoder *decoder, char *const *strings, size_t count, char separator,
                char **out) {
  *out = NULL;
  if (count == 0) return 0;
  size_t size = 1;
  for (size_t i = 0; i < count; i++)
    size += strlen(strings[i]) + 1;
  char *joined = malloc(size);
  if (joined == NULL) return ms_xds_out_of_memory(decoder);
  size_t used = 0;
  for (size_t i = 0; i < count; i++) {
    if (i > 0) joined[used++] = separator;
    size_t length = strlen(strings[i]);
    memcpy(joined + used, strings[i], length);
    used += length;
  }
  joined[used] = '\0';
  *out = joined;
  return 0;
}

void ms_xds_strings_free(char **strings, size_t count) {
  if (strings == NULL) return;
  for (size_t i = 0; i < count; i++)
    free(strings[i]);
  free(strings);
}

/* ---- durations and addresses ----------------------------------------------------- */

int ms_xds_duration_ms(ms_xds_decoder *decoder, const Duration *duration, uint32_t absent,
                       bool positive, uint32_t *out_ms) {
  if (duration == NULL) {
    *out_ms = absent;
    return 0;
  }
  if (duration->seconds < 0 || duration->nanos < 0 || duration->nanos >= 1000000000) {
    return ms_xds_fail(decoder, "%" PRId64 "s %" PRId32 "ns is not a valid non-negative duration",
                       duration->seconds, duration->nanos);
  }
  if (positive && duration->seconds == 0 && duration->nanos == 0) {
    return ms_xds_fail(decoder, "must be greater than 0");
  }
  /* Rounded up, so that a positive duration never becomes 0 ms (off). */
  uint64_t ms = (uint64_t)(duration->nanos + 999999) / 1000000;
  if ((uint64_t)duration->seconds >= UINT32_MAX / 1000) {
    ms = UINT32_MAX;
  } else {
    ms += (uint64_t)duration->seconds * 1000;
    if (ms > UINT32_MAX) ms = UINT32_MAX;
  }
  *out_ms = (uint32_t)ms;
  return 0;
}

int ms_xds_socket_address(ms_xds_decoder *decoder, const Address *address, ms_address *out) {
  if (address == NULL) return ms_xds_fail(decoder, "required");
  if (address->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS) {
    return ms_xds_fail(decoder,
                       "must be a socket_address (pipe and internal addresses are not "
                       "supported)");
  }
  size_t saved = ms_xds_push(decoder, "socket_address");
  const SocketAddress *socket = address->socket_address;
  int rc = -1;
  if (socket->protocol != ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PROTOCOL__TCP) {
    ms_xds_fail_field(decoder, "protocol", "only TCP is supported");
  } else if (socket->port_specifier_case ==
             ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_NAMED_PORT) {
    ms_xds_fail_field(decoder, "named_port", "not supported; use port_value");
  } else if (socket->port_value < 1 || socket->port_value > 65535) {
    ms_xds_fail_field(decoder, "port_value", "%" PRIu32 " is out of range 1..65535",
                      socket->port_value);
  } else if (socket->address == NULL || socket->address[0] == '\0') {
    ms_xds_fail_field(decoder, "address", "must not be empty");
  } else {
    char text[320];
    bool v6 = strchr(socket->address, ':') != NULL;
    snprintf(text, sizeof(text), "%s%.260s%s:%" PRIu32, v6 ? "[" : "", socket->address,
             v6 ? "]" : "", socket->port_value);
    char reason[256];
    if (ms_address_parse(text, out, reason, sizeof(reason)) != 0) {
      ms_xds_fail(decoder, "%s", reason);
    } else {
      rc = 0;
    }
  }
  ms_xds_pop(decoder, saved);
  return rc;
}

/* ---- DataSource and ConfigSource ------------------------------------------------- */

int ms_xds_data_source_decode(ms_xds_decoder *decoder, const DataSource *source,
                              ms_xds_data_source *out) {
  memset(out, 0, sizeof(*out));
  if (source == NULL) return 0;
  const char *data = NULL;
  size_t len = 0;
  switch (source->specifier_case) {
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME:
      if (source->filename[0] == '\0') {
        return ms_xds_fail_field(decoder, "filename", "must not be empty");
      }
      out->filename = strdup(source->filename);
      if (out->filename == NULL) return ms_xds_out_of_memory(decoder);
      out->kind = MS_XDS_DATA_FILENAME;
      return 0;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
      data = (const char *)source->inline_bytes.data;
      len = source->inline_bytes.len;
      break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
      data = source->inline_string;
      len = strlen(source->inline_string);
      break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE:
      return ms_xds_fail(decoder,
                         "environment_variable is not supported; use inline_bytes, "
                         "inline_string or filename");
    default:
      return ms_xds_fail(decoder, "set inline_bytes, inline_string or filename");
  }
  out->bytes = malloc(len + 1);
  if (out->bytes == NULL) return ms_xds_out_of_memory(decoder);
  if (len > 0) memcpy(out->bytes, data, len);
  out->bytes[len] = '\0';
  out->len = len;
  out->kind = MS_XDS_DATA_INLINE;
  return 0;
}

void ms_xds_data_source_cleanup(ms_xds_data_source *source) {
  if (source->bytes != NULL) {
    OPENSSL_cleanse(source->bytes, source->len);
    free(source->bytes);
  }
  free(source->filename);
  memset(source, 0, sizeof(*source));
}

int ms_xds_config_source_check(ms_xds_decoder *decoder, const ConfigSource *source) {
  if (source == NULL) return 0;
  switch (source->config_source_specifier_case) {
    case ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS:
    case ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_SELF:
      return 0;
    default:
      return ms_xds_fail(decoder,
                         "only ads (or self) is supported: this sidecar receives every "
                         "resource over its one ADS stream");
  }
}

/* ---- any resource ------------------------------------------------------------------ */

static const struct kind_info {
  const char *type_url;
  const char *name;
} kinds[] = {
    [MS_XDS_KIND_CLUSTER] = {MS_XDS_TYPE_URL_CLUSTER, "cluster"},
    [MS_XDS_KIND_ENDPOINTS] = {MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT, "endpoints"},
    [MS_XDS_KIND_SECRET] = {MS_XDS_TYPE_URL_SECRET, "secret"},
    [MS_XDS_KIND_LISTENER] = {MS_XDS_TYPE_URL_LISTENER, "listener"},
};

int ms_xds_kind_from_type_url(const char *type_url, ms_xds_kind *out_kind) {
  if (type_url == NULL) return -1;
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    if (strcmp(type_url, kinds[i].type_url) == 0) {
      *out_kind = (ms_xds_kind)i;
      return 0;
    }
  }
  return -1;
}

const char *ms_xds_kind_type_url(ms_xds_kind kind) {
  return kinds[kind].type_url;
}

const char *ms_xds_kind_name(ms_xds_kind kind) {
  return kinds[kind].name;
}

int ms_xds_resource_decode_any(const Google__Protobuf__Any *any, const char *expected_type_url,
                               ms_xds_resource *out, char *err, size_t err_len) {
  ms_xds_kind kind;
  if (ms_xds_kind_from_type_url(expected_type_url, &kind) != 0) {
    snprintf(err, err_len, "resource: type %s is not one this sidecar decodes",
             expected_type_url != NULL ? expected_type_url : "(none)");
    return -1;
  }
  const char *type_url = any->type_url != NULL ? any->type_url : "";
  if (strcmp(type_url, expected_type_url) != 0) {
    char escaped[MS_XDS_ESCAPED_LEN];
    ms_xds_escape(type_url, escaped, sizeof(escaped));
    snprintf(err, err_len, "%s: type_url: expected %s, got %s", kinds[kind].name, expected_type_url,
             escaped[0] != '\0' ? escaped : "nothing");
    return -1;
  }
  return ms_xds_resource_decode(kind, any->value.data, any->value.len, out, err, err_len);
}

int ms_xds_resource_decode(ms_xds_kind kind, const uint8_t *bytes, size_t len, ms_xds_resource *out,
                           char *err, size_t err_len) {
  ms_xds_resource resource;
  memset(&resource, 0, sizeof(resource));
  resource.kind = kind;
  int rc = -1;
  switch (kind) {
    case MS_XDS_KIND_CLUSTER:
      rc = ms_xds_cluster_decode(bytes, len, &resource.as.cluster, err, err_len);
      break;
    case MS_XDS_KIND_ENDPOINTS:
      rc = ms_xds_endpoints_decode(bytes, len, &resource.as.endpoints, err, err_len);
      break;
    case MS_XDS_KIND_SECRET:
      rc = ms_xds_secret_decode(bytes, len, &resource.as.secret, err, err_len);
      break;
    case MS_XDS_KIND_LISTENER:
      rc = ms_xds_listener_decode(bytes, len, &resource.as.listener, err, err_len);
      break;
  }
  if (rc != 0) return -1;
  *out = resource;
  return 0;
}

const char *ms_xds_resource_name(const ms_xds_resource *resource) {
  switch (resource->kind) {
    case MS_XDS_KIND_CLUSTER:
      return resource->as.cluster.name;
    case MS_XDS_KIND_ENDPOINTS:
      return resource->as.endpoints.cluster_name;
    case MS_XDS_KIND_SECRET:
      return resource->as.secret.name;
    case MS_XDS_KIND_LISTENER:
      return resource->as.listener.name;
  }
  return NULL;
}

void ms_xds_resource_cleanup(ms_xds_resource *resource) {
  switch (resource->kind) {
    case MS_XDS_KIND_CLUSTER:
      ms_xds_cluster_cleanup(&resource->as.cluster);
      break;
    case MS_XDS_KIND_ENDPOINTS:
      ms_xds_endpoints_cleanup(&resource->as.endpoints);
      break;
    case MS_XDS_KIND_SECRET:
      ms_xds_secret_cleanup(&resource->as.secret);
      break;
    case MS_XDS_KIND_LISTENER:
      ms_xds_listener_cleanup(&resource->as.listener);
      break;
  }
}
