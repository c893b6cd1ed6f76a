/* grpc_status.c: status names, the grpc-message encoding and the statuses
 * synthesized from HTTP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/grpc/grpc_internal.h"

static const char *const status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *ms_grpc_status_name(int status) {
  if (status < 0 || status >= (int)(sizeof(status_names) / sizeof(status_names[0])))
    return "UNKNOWN";
  return status_names[status];
}

/* gRPC's PROTOCOL-HTTP2.md: grpc-message is percent-encoded UTF-8; every byte
 * outside 0x20..0x7E, and '%', is written as %XX. */
static bool needs_escape(unsigned char c) {
  return c < 0x20 || c > 0x7e || c == '%';
}

char *ms_grpc_message_encode(const char *text) {
  size_t len = 0;
  for (const unsigned char *c = (const unsigned char *)text; *c; c++)
    len += needs_escape(*c) ? 3 : 1;
  char *out = malloc(len + 1);
  if (out == NULL) return NULL;
  char *w = out;
  for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
    if (needs_escape(*c)) {
      snprintf(w, 4, "%%%02X", *c);
      w += 3;
    } else {
      *w++ = (char)*c;
    }
  }
  *w = '\0';
  return out;
}

static int hex_value(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char *ms_grpc_message_decode(const uint8_t *value, size_t len) {
  char *out = malloc(len + 1);
  if (out == NULL) return NULL;
  size_t w = 0;
  for (size_t i = 0; i < len; i++) {
    int high, low;
    if (value[i] == '%' && i + 2 < len && (high = hex_value(value[i + 1])) >= 0 &&
        (low = hex_value(value[i + 2])) >= 0) {
      out[w++] = (char)(high << 4 | low);
      i += 2;
    } else {
      out[w++] = (char)value[i]; /* a stray '%' is kept as written */
    }
  }
  out[w] = '\0';
  return out;
}

int ms_grpc_status_from_http(int http_status) {
  switch (http_status) {
    case 400:
      return MS_GRPC_INTERNAL;
    case 401:
      return MS_GRPC_UNAUTHENTICATED;
    case 403:
      return MS_GRPC_PERMISSION_DENIED;
    case 404:
      return MS_GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return MS_GRPC_UNAVAILABLE;
    default:
      return MS_GRPC_UNKNOWN;
  }
}

int ms_grpc_status_from_h2_error(uint32_t error_code) {
  switch (error_code) {
    case NGHTTP2_CANCEL:
      return MS_GRPC_CANCELLED;
    case NGHTTP2_REFUSED_STREAM:
      return MS_GRPC_UNAVAILABLE;
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return MS_GRPC_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
      return MS_GRPC_PERMISSION_DENIED;
    default:
      return MS_GRPC_INTERNAL;
  }
}
