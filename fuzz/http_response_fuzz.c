/* http_response_fuzz.c: an upstream's response head, as the sidecar reads it
 * and rewrites it for the client (sidecar/http_exchange.c): http_parser fed
 * at fuzzer-chosen split points, the pieces glued by ms_http_head_append,
 * the header names checked, interim (1xx) answers passed on, the framing
 * chosen for the client (none for HEAD, 204 and 304; the Content-Length;
 * chunked for an HTTP/1.1 client; else until close), and
 * ms_http_write_response.
 *
 * The property checked beyond memory safety: each head written for the
 * client reads back with http_parser as one response with the same status
 * and the framing the proxy chose, and nothing after it.
 *
 * Input: a byte of choices about the request it answers (HEAD, an HTTP/1.0
 * client, keep-alive), two bytes seeding the split points, then the bytes
 * the upstream sent. */
#include <http_parser.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz/http_fuzz.h"

typedef struct response_state {
  ms_http_head head; /* first: the callbacks of http_fuzz.h */
  bool head_request, client_11, keep_alive;
  bool final_seen;
} response_state;

typedef struct readback {
  bool complete, chunked;
  unsigned status;
  uint64_t content_length;
} readback;

static int rb_on_headers_complete(http_parser *p) {
  readback *rb = p->data;
  rb->complete = true;
  rb->chunked = (p->flags & F_CHUNKED) != 0;
  rb->status = p->status_code;
  rb->content_length = p->content_length;
  return 1;
}
static const http_parser_settings readback_settings = {.on_headers_complete =
                                                           rb_on_headers_complete};

static void check_rewrite(const ms_http_out *out, unsigned status, bool chunked, bool has_length,
                          uint64_t length) {
  FUZZ_CHECK(!out->failed);
  readback rb = {0};
  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  parser.data = &rb;
  size_t n = http_parser_execute(&parser, &readback_settings, out->data, out->len);
  if (!rb.complete) {
    fprintf(stderr, "the rewritten head does not parse (%s):\n%.*s\n",
            http_errno_name(HTTP_PARSER_ERRNO(&parser)), (int)out->len, out->data);
    FUZZ_CHECK(rb.complete);
  }
  FUZZ_CHECK(n == out->len);
  FUZZ_CHECK(rb.status == status);
  FUZZ_CHECK(rb.chunked == chunked);
  if (!chunked && has_length) FUZZ_CHECK(rb.content_length == length);
  if (!has_length) FUZZ_CHECK(rb.content_length == UINT64_MAX);
}

/* As http_exchange.c's rs_on_headers_complete. */
static int on_headers_complete(http_parser *p) {
  response_state *state = p->data;
  ms_http_head *head = &state->head;
  if (!ms_http_head_names_valid(head)) return -1;
  unsigned status = p->status_code;
  ms_http_out out = {0};
  if (status == 101) {
    ms_http_write_response(&out, head, status, false, false, 0, false, true);
    check_rewrite(&out, status, false, false, 0);
    ms_http_out_cleanup(&out);
    return -1; /* a tunnel from here on */
  }
  if (status >= 100 && status < 200) {
    ms_http_write_response(&out, head, status, false, false, 0, false, false);
    check_rewrite(&out, status, false, false, 0);
    ms_http_out_cleanup(&out);
    return 0;
  }
  bool has_length = p->content_length != UINT64_MAX;
  bool chunked = false, length = false, close = !state->keep_alive;
  if (state->head_request || status == 204 || status == 304) {
  } else if (!(p->flags & F_CHUNKED) && has_length) {
    length = true;
  } else if (state->client_11) {
    chunked = true;
  } else {
    close = true; /* until close */
  }
  bool send_length = length || (state->head_request && has_length);
  ms_http_write_response(&out, head, status, chunked, send_length, p->content_length, close, false);
  check_rewrite(&out, status, chunked, send_length, p->content_length);
  ms_http_out_cleanup(&out);
  state->final_seen = true;
  return state->head_request ? 1 : 0;
}

static int on_message_complete(http_parser *p) {
  response_state *state = p->data;
  return state->final_seen ? -1 : 0; /* one exchange: stop after the final response */
}

static const http_parser_settings settings = {
    .on_message_begin = fuzz_http_on_message_begin,
    .on_status = fuzz_http_on_status,
    .on_header_field = fuzz_http_on_field,
    .on_header_value = fuzz_http_on_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size};
  uint8_t choices = fuzz_take_byte(&in);
  response_state state = {
      .head_request = choices & 1, .client_11 = !(choices & 2), .keep_alive = !(choices & 4)};
  fuzz_splitter splitter = fuzz_splitter_from(&in);
  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  parser.data = &state;
  fuzz_http_feed(&parser, &settings, &in, &splitter);
  ms_http_head_cleanup(&state.head);
  return 0;
}
