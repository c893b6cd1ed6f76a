/* pb_depth_test.c: the nesting guard (pb_depth.h) on google.protobuf.Value,
 * ListValue and Struct, which nest without end: exactly at the bound and one
 * past it, 30,000 levels in a DiscoveryRequest's node.metadata, the same
 * bytes in a bytes field and in an unknown field (skipped), and malformed
 * input (truncations, long varints, field 0, groups, lengths past their
 * message). */
#include <stdlib.h>
#include <string.h>

#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "tests/lib/test_check.h"
#include "xds/proto/pb_depth.h"

/* A buffer filled from its end, so that each wrap prepends. */
typedef struct wire {
  uint8_t *data;
  size_t capacity, start;
} wire;

static void wire_init(wire *w, size_t capacity) {
  w->data = malloc(capacity);
  CHECK(w->data != NULL);
  w->capacity = w->start = capacity;
}

static void prepend(wire *w, const uint8_t *bytes, size_t len) {
  CHECK(w->start >= len);
  w->start -= len;
  memcpy(w->data + w->start, bytes, len);
}

static void prepend_varint(wire *w, uint64_t value) {
  uint8_t buf[10];
  size_t n = 0;
  do {
    buf[n++] = (uint8_t)(value & 0x7f) | (value > 0x7f ? 0x80 : 0);
    value >>= 7;
  } while (value != 0);
  prepend(w, buf, n);
}

static size_t wire_len(const wire *w) {
  return w->capacity - w->start;
}

static const uint8_t *wire_bytes(const wire *w) {
  return w->data + w->start;
}

/* wrap makes everything so far the length-delimited field `number`. */
static void wrap(wire *w, uint32_t number) {
  prepend_varint(w, wire_len(w));
  prepend_varint(w, (uint64_t)number << 3 | 2);
}

/* nested_value builds a google.protobuf.Value `levels` deep: Value { list_value
 * { values { ... { null_value } } } }, each Value and ListValue a level. */
static void nested_value(wire *w, size_t levels) {
  static const uint8_t null_value[] = {0x08, 0x00};
  wire_init(w, levels * 8 + 16);
  prepend(w, null_value, sizeof(null_value));
  for (size_t level = 1; level < levels; level++)
    wrap(w, level % 2 == 1 ? 1 /* ListValue.values */ : 6 /* Value.list_value */);
}

static ms_pb_check check_value(size_t levels) {
  wire w;
  nested_value(&w, levels);
  ms_pb_check check = ms_pb_check_depth(levels % 2 == 1 ? &google__protobuf__value__descriptor
                                                        : &google__protobuf__list_value__descriptor,
                                        wire_bytes(&w), wire_len(&w));
  free(w.data);
  return check;
}

static void test_bound(void) {
  CHECK_INT(check_value(1), MS_PB_OK);
  CHECK_INT(check_value(63), MS_PB_OK);
  CHECK_INT(check_value(MS_PB_MAX_DEPTH), MS_PB_OK);
  CHECK_INT(check_value(MS_PB_MAX_DEPTH + 1), MS_PB_TOO_DEEP);
  CHECK_INT(check_value(MS_PB_MAX_DEPTH + 2), MS_PB_TOO_DEEP);

  /* At the bound, protobuf-c decodes it. */
  wire w;
  nested_value(&w, MS_PB_MAX_DEPTH - 1); /* odd: a Value */
  char err[200] = "";
  ProtobufCMessage *message = ms_pb_unpack_guarded(&google__protobuf__value__descriptor,
                                                   wire_bytes(&w), wire_len(&w), err, sizeof(err));
  CHECK(message != NULL);
  protobuf_c_message_free_unpacked(message, NULL);
  free(w.data);
}

/* A DiscoveryRequest whose node.metadata holds `inner` as field `number` of
 * a Struct's first entry: Struct { fields { key "k" value <inner> } }. */
static void request_with_metadata(wire *w) {
  wrap(w, 2);                                  /* FieldsEntry.value */
  static const uint8_t key[] = {0x0a, 1, 'k'}; /* FieldsEntry.key */
  prepend(w, key, sizeof(key));
  wrap(w, 1); /* Struct.fields */
  wrap(w, 3); /* Node.metadata */
  static const uint8_t id[] = {0x0a, 2, 'n', '1'};
  prepend(w, id, sizeof(id));
  wrap(w, 2); /* DiscoveryRequest.node */
}

static void test_deep_request(void) {
  wire w;
  nested_value(&w, 30001); /* odd: a Value, for FieldsEntry.value */
  request_with_metadata(&w);
  CHECK(wire_len(&w) > 100000);
  const ProtobufCMessageDescriptor *descriptor =
      &envoy__service__discovery__v3__discovery_request__descriptor;
  CHECK_INT(ms_pb_check_depth(descriptor, wire_bytes(&w), wire_len(&w)), MS_PB_TOO_DEEP);
  char err[200] = "";
  CHECK(ms_pb_unpack_guarded(descriptor, wire_bytes(&w), wire_len(&w), err, sizeof(err)) == NULL);
  CHECK_STR(err,
            "envoy.service.discovery.v3.DiscoveryRequest: message nests deeper than 64 levels");
  free(w.data);

  /* A shallow one passes and decodes. */
  nested_value(&w, 3);
  request_with_metadata(&w);
  ProtobufCMessage *message =
      ms_pb_unpack_guarded(descriptor, wire_bytes(&w), wire_len(&w), err, sizeof(err));
  CHECK(message != NULL);
  Envoy__Service__Discovery__V3__DiscoveryRequest *request = (void *)message;
  CHECK_STR(request->node->id, "n1");
  protobuf_c_message_free_unpacked(message, NULL);
  free(w.data);
}

/* The same bytes where they are not messages: Any.value (bytes) and an
 * unknown field. Neither is walked, and protobuf-c does not recurse there. */
static void test_bytes_and_unknown_fields(void) {
  wire w;
  nested_value(&w, 30000);
  wrap(&w, 2); /* Any.value */
  static const uint8_t type_url[] = {0x0a, 1, 'x'};
  prepend(&w, type_url, sizeof(type_url));
  char err[200] = "";
  ProtobufCMessage *message = ms_pb_unpack_guarded(&google__protobuf__any__descriptor,
                                                   wire_bytes(&w), wire_len(&w), err, sizeof(err));
  CHECK(message != NULL);
  protobuf_c_message_free_unpacked(message, NULL);
  free(w.data);

  nested_value(&w, 30000);
  wrap(&w, 99); /* not a field of DiscoveryRequest */
  const ProtobufCMessageDescriptor *descriptor =
      &envoy__service__discovery__v3__discovery_request__descriptor;
  CHECK_INT(ms_pb_check_depth(descriptor, wire_bytes(&w), wire_len(&w)), MS_PB_OK);
  message = ms_pb_unpack_guarded(descriptor, wire_bytes(&w), wire_len(&w), err, sizeof(err));
  CHECK(message != NULL);
  CHECK_INT(message->n_unknown_fields, 1);
  protobuf_c_message_free_unpacked(message, NULL);
  free(w.data);
}

static ms_pb_check check_request(const uint8_t *bytes, size_t len) {
  return ms_pb_check_depth(&envoy__service__discovery__v3__discovery_request__descriptor, bytes,
                           len);
}

static void test_malformed(void) {
  /* version_info "v1", node { id "n" }. */
  static const uint8_t good[] = {0x0a, 2, 'v', '1', 0x12, 3, 0x0a, 1, 'n'};
  CHECK_INT(check_request(good, sizeof(good)), MS_PB_OK);
  CHECK_INT(check_request(good, 0), MS_PB_OK);
  /* Cut inside a length-delimited field: its length runs past the end. */
  for (size_t cut = 1; cut < sizeof(good); cut++)
    CHECK_INT(check_request(good, cut), cut == 4 ? MS_PB_OK : MS_PB_MALFORMED);

  static const uint8_t long_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  CHECK_INT(check_request(long_varint, sizeof(long_varint)), MS_PB_MALFORMED);
  static const uint8_t ten_byte_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                            0xff, 0xff, 0xff, 0xff, 0x01};
  CHECK_INT(check_request(ten_byte_varint, sizeof(ten_byte_varint)), MS_PB_OK);
  static const uint8_t field_zero[] = {0x02, 0x00};
  CHECK_INT(check_request(field_zero, sizeof(field_zero)), MS_PB_MALFORMED);
  static const uint8_t group[] = {0x0b, 0x0c};
  CHECK_INT(check_request(group, sizeof(group)), MS_PB_MALFORMED);
  static const uint8_t wire_type_7[] = {0x0f};
  CHECK_INT(check_request(wire_type_7, sizeof(wire_type_7)), MS_PB_MALFORMED);
  static const uint8_t short_fixed64[] = {0x09, 1, 2, 3};
  CHECK_INT(check_request(short_fixed64, sizeof(short_fixed64)), MS_PB_MALFORMED);
  /* node's length (3) fits the input, but its id's length (9) runs past
   * node's end, though not past the input's. */
  static const uint8_t past_parent[] = {0x12, 3, 0x0a, 9, 'n', 'o', 'd', 'e', 'n', 'a', 'm', 'e'};
  CHECK_INT(check_request(past_parent, sizeof(past_parent)), MS_PB_MALFORMED);
  /* A huge length. */
  static const uint8_t huge[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
  CHECK_INT(check_request(huge, sizeof(huge)), MS_PB_MALFORMED);

  char err[200] = "";
  CHECK(ms_pb_unpack_guarded(&envoy__service__discovery__v3__discovery_request__descriptor, group,
                             sizeof(group), err, sizeof(err)) == NULL);
  CHECK_STR(err,
            "2 bytes that are not a valid envoy.service.discovery.v3.DiscoveryRequest message");
}

int main(void) {
  test_bound();
  test_deep_request();
  test_bytes_and_unknown_fields();
  test_malformed();
  printf("pb_depth_test: ok\n");
  return 0;
}
