/* grpc_framing_test.c: the message prefix both ways, reassembly however the
 * bytes are cut, the size limit, the compressed flag, grpc-message
 * encoding. */
#include <stdlib.h>
#include <string.h>

#include "xds/grpc/grpc_internal.h"
#include "xds/grpc/grpc_test_util.h"

typedef struct received {
  int count;
  size_t bytes;
  uint8_t last[64];
  size_t last_len;
  int stop_after;
} received;

static bool on_message(void *arg, const uint8_t *bytes, size_t len) {
  received *r = arg;
  r->count++;
  r->bytes += len;
  r->last_len = len < sizeof(r->last) ? len : sizeof(r->last);
  memcpy(r->last, bytes, r->last_len);
  return r->stop_after == 0 || r->count < r->stop_after;
}

/* Frames `count` messages with the send queue and reads them back out. */
static size_t frame_all(const char *const *messages, size_t count, uint8_t *out, size_t cap) {
  ms_grpc_send_queue queue = {0};
  for (size_t i = 0; i < count; i++)
    CHECK(ms_grpc_send_queue_push(&queue, (const uint8_t *)messages[i], strlen(messages[i])) == 0);
  size_t total = 0;
  uint32_t flags = 0;
  for (;;) {
    ssize_t n = ms_grpc_send_queue_read(&queue, out + total, 7, false, &flags); /* odd chunks */
    if (n == NGHTTP2_ERR_DEFERRED) break;
    CHECK(n > 0);
    total += (size_t)n;
    CHECK(total <= cap);
  }
  CHECK(queue.bytes == 0 && queue.head == NULL);
  flags = 0;
  CHECK(ms_grpc_send_queue_read(&queue, out, 7, true, &flags) == 0);
  CHECK(flags & NGHTTP2_DATA_FLAG_EOF);
  return total;
}

static void test_round_trip_any_cut(void) {
  const char *messages[] = {"", "a", "hello world", "", "0123456789abcdef0123456789"};
  uint8_t wire[256];
  size_t len = frame_all(messages, 5, wire, sizeof(wire));
  CHECK(len == 5 * 5 + 0 + 1 + 11 + 0 + 26);
  CHECK(wire[0] == 0 && wire[4] == 0 && wire[5] == 0 && wire[9] == 1 && wire[10] == 'a');
  /* Every chunk size from 1 byte to all at once. */
  for (size_t chunk = 1; chunk <= len; chunk++) {
    ms_grpc_deframer deframer = {0};
    received r = {0};
    for (size_t at = 0; at < len; at += chunk) {
      size_t n = len - at < chunk ? len - at : chunk;
      CHECK(ms_grpc_deframer_feed(&deframer, wire + at, n, 100, on_message, &r) == 0);
    }
    CHECK(r.count == 5);
    CHECK(r.bytes == 38);
    CHECK(r.last_len == 26 && memcmp(r.last, messages[4], 26) == 0);
    CHECK(!ms_grpc_deframer_partial(&deframer));
    ms_grpc_deframer_cleanup(&deframer);
  }
  /* A cut mid-message is partial. */
  ms_grpc_deframer deframer = {0};
  received r = {0};
  CHECK(ms_grpc_deframer_feed(&deframer, wire, 8, 100, on_message, &r) == 0);
  CHECK(ms_grpc_deframer_partial(&deframer));
  ms_grpc_deframer_cleanup(&deframer);
  /* on_message can stop the feed. */
  memset(&deframer, 0, sizeof(deframer));
  r = (received){.stop_after = 2};
  CHECK(ms_grpc_deframer_feed(&deframer, wire, len, 100, on_message, &r) == 1);
  CHECK(r.count == 2);
  ms_grpc_deframer_cleanup(&deframer);
}

static void test_limits(void) {
  uint8_t prefix[5] = {0, 0, 0, 0x10, 0x01}; /* 4097 bytes */
  ms_grpc_deframer deframer = {0};
  received r = {0};
  CHECK(ms_grpc_deframer_feed(&deframer, prefix, 5, 4096, on_message, &r) == MS_GRPC_E_TOO_LARGE);
  ms_grpc_deframer_cleanup(&deframer);
  /* At the limit is fine, and memory grows only with what arrives. */
  memset(&deframer, 0, sizeof(deframer));
  CHECK(ms_grpc_deframer_feed(&deframer, prefix, 5, 4097, on_message, &r) == 0);
  uint8_t some[100] = {0};
  CHECK(ms_grpc_deframer_feed(&deframer, some, sizeof(some), 4097, on_message, &r) == 0);
  CHECK(deframer.capacity < 4097);
  ms_grpc_deframer_cleanup(&deframer);
  /* Announcing 4 GiB with a 4 MiB limit. */
  uint8_t huge[5] = {0, 0xff, 0xff, 0xff, 0xff};
  memset(&deframer, 0, sizeof(deframer));
  CHECK(ms_grpc_deframer_feed(&deframer, huge, 5, MS_GRPC_DEFAULT_MAX_MESSAGE_BYTES, on_message,
                              &r) == MS_GRPC_E_TOO_LARGE);
  ms_grpc_deframer_cleanup(&deframer);
  uint8_t compressed[6] = {1, 0, 0, 0, 1, 'z'};
  memset(&deframer, 0, sizeof(deframer));
  CHECK(ms_grpc_deframer_feed(&deframer, compressed, 6, 100, on_message, &r) ==
        MS_GRPC_E_COMPRESSED);
  ms_grpc_deframer_cleanup(&deframer);
  /* A flag byte gRPC does not define (only 0 and 1 are) is refused too. */
  uint8_t undefined_flag[6] = {0x32, 0, 0, 0, 1, 'z'};
  memset(&deframer, 0, sizeof(deframer));
  CHECK(ms_grpc_deframer_feed(&deframer, undefined_flag, 6, 100, on_message, &r) ==
        MS_GRPC_E_COMPRESSED);
  ms_grpc_deframer_cleanup(&deframer);
  CHECK(r.count == 0);
}

static void test_message_encoding(void) {
  char *encoded = ms_grpc_message_encode("caf\xc3\xa9 50% off\n");
  CHECK(strcmp(encoded, "caf%C3%A9 50%25 off%0A") == 0);
  char *decoded = ms_grpc_message_decode((const uint8_t *)encoded, strlen(encoded));
  CHECK(strcmp(decoded, "caf\xc3\xa9 50% off\n") == 0);
  free(encoded);
  free(decoded);
  decoded = ms_grpc_message_decode((const uint8_t *)"100%", 4); /* stray % kept */
  CHECK(strcmp(decoded, "100%") == 0);
  free(decoded);
  CHECK(strcmp(ms_grpc_status_name(MS_GRPC_RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED") == 0);
  CHECK(strcmp(ms_grpc_status_name(16), "UNAUTHENTICATED") == 0);
  CHECK(strcmp(ms_grpc_status_name(99), "UNKNOWN") == 0);
  CHECK(ms_grpc_status_from_http(404) == MS_GRPC_UNIMPLEMENTED);
  CHECK(ms_grpc_status_from_http(503) == MS_GRPC_UNAVAILABLE);
  CHECK(ms_grpc_status_from_h2_error(NGHTTP2_CANCEL) == MS_GRPC_CANCELLED);
}

int main(void) {
  test_round_trip_any_cut();
  test_limits();
  test_message_encoding();
  return grpc_test_finish("grpc_framing_test");
}
