/* http_response_fuzz.c: an upstream's response head, as the sidecar reads it
 * and rewrites it for the client (sidecar/http/http_exchange.c): http_parser fed
 * at fuzzer-chosen split points, the pieces glued by ms_http_head_append,
 * and the proxy's decision (ms_http_response_decide: the header names
 * checked, interim (1xx) answers passed on, a 101 only when asked for, the
 * framing chosen for the client), written by
 * ms_http_write_planned_response.
 *
 * The property checked beyond memory safety: each head written for the
 * client reads back with http_parser as one response with the same status
 * and the framing the proxy chose, and nothing after it.
 *
 * Input: a byte of choices about the request it answers (HEAD, an HTTP/1.0
 * client, keep-alive, no Upgrade asked for), two bytes seeding the split points, then the bytes
 * the upstream sent. */
#include <http_parser.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz/http_fuzz.h"

typedef struct response_state {
  ms_http_head head;   /* first: the callbacks of http_fuzz.h */
  http_parser request; /* what the request said: method, version, Upgrade */
  bool keep_alive;
  bool final_seen;
} response_state;

/* check_rewrite: the head the client would get reads back as one response
 * with the status and framing of the plan. */
static void check_rewrite(const ms_http_out *out, const ms_http_response_plan *plan) {
  fuzz_readback rb;
  fuzz_readback_head(out, HTTP_RESPONSE, &rb);
  ms_http_head_cleanup(&rb.head);
  bool chunked = plan->framing == MS_HTTP_FRAMING_CHUNKED;
  FUZZ_CHECK(rb.status == plan->status);
  FUZZ_CHECK(rb.chunked == chunked);
  if (!chunked && plan->has_content_length) FUZZ_CHECK(rb.content_length == plan->content_length);
  if (!plan->has_content_length) FUZZ_CHECK(rb.content_length == UINT64_MAX);
}

/* The proxy's own rules: ms_http_response_decide, as http_exchange.c's
 * rs_on_headers_complete calls it, and the head it writes. */
static int on_headers_complete(http_parser *p) {
  response_state *state = p->data;
  ms_http_response_plan plan;
  ms_http_response_decide(p, &state->head, &state->request, !state->keep_alive, &plan);
  if (plan.kind == MS_HTTP_RESPONSE_BAD_HEADER_NAME ||
      plan.kind == MS_HTTP_RESPONSE_UPGRADE_UNASKED)
    return -1; /* 502 */
  ms_http_out out = {0};
  ms_http_write_planned_response(&out, &state->head, &plan);
  check_rewrite(&out, &plan);
  ms_http_out_cleanup(&out);
  if (plan.kind == MS_HTTP_RESPONSE_UPGRADE) return -1; /* a tunnel from here on */
  if (plan.kind == MS_HTTP_RESPONSE_FINAL) state->final_seen = true;
  return plan.bodiless ? 1 : 0;
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
  response_state state = {.keep_alive = !(choices & 4)};
  http_parser_init(&state.request, HTTP_REQUEST);
  state.request.method = choices & 1 ? HTTP_HEAD : HTTP_GET;
  state.request.http_major = 1;
  state.request.http_minor = choices & 2 ? 0 : 1;
  state.request.upgrade = !(choices & 8);
  fuzz_splitter splitter = fuzz_splitter_from(&in);
  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  parser.data = &state;
  fuzz_http_feed(&parser, &settings, &in, &splitter);
  ms_http_head_cleanup(&state.head);
  return 0;
}
