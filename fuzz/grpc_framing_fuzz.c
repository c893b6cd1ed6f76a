/* grpc_framing_fuzz.c: gRPC's length-prefixed messages reassembled from
 * DATA frames split anywhere (ms_grpc_deframer_feed, xds/grpc/grpc_framing.c),
 * with a per-message limit, a deframer's bytes counted in a shared counter
 * as a server connection counts them, and the grpc-message percent-decoding
 * of a trailer (ms_grpc_message_decode) and encoding.
 *
 * The property checked: the messages delivered are exactly those a plain
 * reading of the whole input finds (flag byte 0, 4-byte big-endian length,
 * that many bytes), in order, until the first one over the limit or
 * compressed, which is refused with the matching error; the shared counter
 * returns to zero once the deframer is cleaned up.
 *
 * Input: a byte choosing the limit, two bytes seeding the split points, the
 * stream. */
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "xds/grpc/grpc_internal.h"

typedef struct expectation {
  const uint8_t *stream;
  size_t stream_len;
  size_t offset; /* of the next message's prefix in `stream` */
  size_t delivered;
} expectation;

static bool on_message(void *arg, const uint8_t *bytes, size_t len) {
  expectation *expect = arg;
  FUZZ_CHECK(expect->offset + MS_GRPC_PREFIX_LEN + len <= expect->stream_len);
  const uint8_t *prefix = expect->stream + expect->offset;
  FUZZ_CHECK(prefix[0] == 0);
  size_t want =
      (size_t)prefix[1] << 24 | (size_t)prefix[2] << 16 | (size_t)prefix[3] << 8 | prefix[4];
  FUZZ_CHECK(len == want);
  FUZZ_CHECK(len == 0 || memcmp(bytes, prefix + MS_GRPC_PREFIX_LEN, len) == 0);
  expect->offset += MS_GRPC_PREFIX_LEN + len;
  expect->delivered++;
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size};
  static const size_t limits[] = {0, 1, 5, 16, 100, 4096, 4 << 20};
  size_t limit = limits[fuzz_take_byte(&in) % (sizeof(limits) / sizeof(limits[0]))];
  fuzz_splitter splitter = fuzz_splitter_from(&in);
  expectation expect = {in.data, in.len, 0, 0};
  size_t accounted = 0;
  ms_grpc_deframer deframer = {.accounted = &accounted};
  int rc = 0;
  size_t at = 0;
  while (at < in.len) {
    size_t piece = fuzz_next_piece(&splitter, in.len - at);
    rc = ms_grpc_deframer_feed(&deframer, in.data + at, piece, limit, on_message, &expect);
    FUZZ_CHECK(rc == 0 || rc == MS_GRPC_E_TOO_LARGE || rc == MS_GRPC_E_COMPRESSED);
    if (rc != 0) break;
    at += piece;
  }
  /* What a plain reading says about the first message not delivered. */
  size_t rest = in.len - expect.offset;
  const uint8_t *next = in.data + expect.offset;
  if (rc == MS_GRPC_E_COMPRESSED) {
    FUZZ_CHECK(rest >= 1 && next[0] != 0);
  } else if (rc == MS_GRPC_E_TOO_LARGE) {
    FUZZ_CHECK(rest >= MS_GRPC_PREFIX_LEN);
    size_t want = (size_t)next[1] << 24 | (size_t)next[2] << 16 | (size_t)next[3] << 8 | next[4];
    FUZZ_CHECK(want > limit);
  } else {
    /* Everything consumed: what is left is one unfinished message. */
    FUZZ_CHECK(ms_grpc_deframer_partial(&deframer) == (rest > 0));
  }
  ms_grpc_deframer_cleanup(&deframer);
  FUZZ_CHECK(accounted == 0);

  /* The same bytes as a grpc-message trailer: decoded, encoded, decoded. */
  char *text = ms_grpc_message_decode(data, size);
  if (text != NULL) {
    char *encoded = ms_grpc_message_encode(text);
    if (encoded != NULL) {
      char *again = ms_grpc_message_decode((const uint8_t *)encoded, strlen(encoded));
      FUZZ_CHECK(again != NULL && strcmp(again, text) == 0);
      free(again);
      free(encoded);
    }
    free(text);
  }
  return 0;
}
