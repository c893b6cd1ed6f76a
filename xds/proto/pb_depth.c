/* pb_depth.c: the nesting guard of pb_depth.h. One loop over the bytes with
 * an explicit stack of (descriptor, end) per open submessage: no recursion,
 * so the guard's own stack use does not depend on the input. */
#include "xds/proto/pb_depth.h"

#include <stdbool.h>
#include <stdio.h>

#define MAX_VARINT_BYTES 10

typedef struct level {
  const ProtobufCMessageDescriptor *descriptor;
  size_t end; /* offset just past this message's bytes */
} level;

const char *ms_pb_check_describe(ms_pb_check check) {
  switch (check) {
    case MS_PB_OK:
      return "ok";
    case MS_PB_TOO_DEEP:
      return "message nests deeper than 64 levels";
    case MS_PB_MALFORMED:
      return "malformed protobuf (a bad varint, tag, length or wire type)";
  }
  return "unknown";
}

/* read_varint reads a varint at *pos, before `end`. Returns false when it is
 * truncated or longer than 10 bytes. */
static bool read_varint(const uint8_t *bytes, size_t *pos, size_t end, uint64_t *out) {
  uint64_t value = 0;
  for (unsigned i = 0; i < MAX_VARINT_BYTES; i++) {
    if (*pos >= end) return false;
    uint8_t byte = bytes[(*pos)++];
    value |= (uint64_t)(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      *out = value;
      return true;
    }
  }
  return false;
}

ms_pb_check ms_pb_check_depth(const ProtobufCMessageDescriptor *descriptor, const uint8_t *bytes,
                              size_t len) {
  level stack[MS_PB_MAX_DEPTH];
  size_t depth = 0; /* index of the open message in `stack` */
  stack[0] = (level){descriptor, len};
  size_t pos = 0;
  for (;;) {
    if (pos == stack[depth].end) {
      if (depth == 0) return MS_PB_OK;
      depth--;
      continue;
    }
    size_t end = stack[depth].end;
    uint64_t tag, length;
    if (!read_varint(bytes, &pos, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX)
      return MS_PB_MALFORMED;
    switch (tag & 7) {
      case 0: /* varint */
        if (!read_varint(bytes, &pos, end, &length)) return MS_PB_MALFORMED;
        break;
      case 1: /* 64-bit */
        if (end - pos < 8) return MS_PB_MALFORMED;
        pos += 8;
        break;
      case 5: /* 32-bit */
        if (end - pos < 4) return MS_PB_MALFORMED;
        pos += 4;
        break;
      case 2: { /* length-delimited */
        if (!read_varint(bytes, &pos, end, &length) || length > end - pos) return MS_PB_MALFORMED;
        const ProtobufCFieldDescriptor *field =
            stack[depth].descriptor != NULL ? protobuf_c_message_descriptor_get_field(
                                                  stack[depth].descriptor, (unsigned)(tag >> 3))
                                            : NULL;
        if (field == NULL || field->type != PROTOBUF_C_TYPE_MESSAGE) {
          pos += (size_t)length; /* bytes, string, packed scalars, unknown */
          break;
        }
        if (depth + 1 >= MS_PB_MAX_DEPTH) return MS_PB_TOO_DEEP;
        stack[++depth] = (level){field->descriptor, pos + (size_t)length};
        break;
      }
      default: /* groups (protobuf-c refuses them too), 6 and 7 */
        return MS_PB_MALFORMED;
    }
  }
}

ProtobufCMessage *ms_pb_unpack_guarded(const ProtobufCMessageDescriptor *descriptor,
                                       const uint8_t *bytes, size_t len, char *err,
                                       size_t err_len) {
  ms_pb_check check = ms_pb_check_depth(descriptor, bytes, len);
  ProtobufCMessage *message =
      check == MS_PB_OK ? protobuf_c_message_unpack(descriptor, NULL, len, bytes) : NULL;
  if (message != NULL || err_len == 0) return message;
  if (check == MS_PB_TOO_DEEP)
    snprintf(err, err_len, "%s: %s", descriptor->name, ms_pb_check_describe(check));
  else
    snprintf(err, err_len, "%zu bytes that are not a valid %s message", len, descriptor->name);
  return NULL;
}
