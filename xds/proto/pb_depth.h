/* pb_depth.h: a guard before protobuf-c's unpack of bytes from outside.
 *
 * protobuf-c decodes a submessage by recursing, once per level, so a few
 * hundred kilobytes of nested google.protobuf.Struct/ListValue/Value (about
 * 30,000 levels) exhaust the stack. ms_pb_check_depth walks the wire format
 * first, iteratively, with the message's descriptor: it descends only into
 * fields the descriptor declares as messages (bytes and strings that happen
 * to look like nesting are skipped, and so are unknown fields, which
 * protobuf-c keeps as opaque bytes), and refuses input that nests deeper
 * than MS_PB_MAX_DEPTH or whose varints, tags or lengths are malformed. It
 * allocates nothing and costs one pass over the bytes.
 *
 * ms_pb_unpack_guarded is the one way to unpack outside bytes: xds-server's
 * DiscoveryRequests, the ADS client's DiscoveryResponses and each resource
 * (and Any inside one) the sidecar decodes. */
#ifndef MS_XDS_PB_DEPTH_H
#define MS_XDS_PB_DEPTH_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* The deepest nesting accepted: the outermost message is level 1, a message
 * inside it level 2, and so on. Envoy's resources need about 12 levels;
 * Envoy itself refuses beyond 100. */
#define MS_PB_MAX_DEPTH 64

typedef enum ms_pb_check {
  MS_PB_OK = 0,
  MS_PB_TOO_DEEP,  /* "message nests deeper than 64 levels" */
  MS_PB_MALFORMED, /* a varint over 10 bytes, a truncated field, a length past
                      the end of its message, field number 0, a group or an
                      unknown wire type */
} ms_pb_check;

/* ms_pb_check_describe returns a sentence for `check` (static). */
const char *ms_pb_check_describe(ms_pb_check check);

/* ms_pb_check_depth walks `len` bytes as a message of `descriptor` and returns
 * MS_PB_OK, MS_PB_TOO_DEEP or MS_PB_MALFORMED. Nothing is allocated; the
 * bytes are only read. Passing the check does not mean that protobuf-c will
 * accept the bytes (a string that is not UTF-8, say), only that it will not
 * recurse deeper than MS_PB_MAX_DEPTH on them. */
ms_pb_check ms_pb_check_depth(const ProtobufCMessageDescriptor *descriptor, const uint8_t *bytes,
                              size_t len);

/* ms_pb_unpack_guarded checks `bytes` with ms_pb_check_depth and, if they pass,
 * unpacks them with protobuf_c_message_unpack (default allocator). Returns the
 * message (the caller frees it with protobuf_c_message_free_unpacked or the
 * type's __free_unpacked), or NULL with one line in `err` (when err_len > 0):
 * "<full message name>: message nests deeper than 64 levels" or "N bytes that
 * are not a valid <full message name> message". */
ProtobufCMessage *ms_pb_unpack_guarded(const ProtobufCMessageDescriptor *descriptor,
                                       const uint8_t *bytes, size_t len, char *err, size_t err_len);

#endif
