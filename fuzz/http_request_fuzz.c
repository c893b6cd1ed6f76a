/* http_request_fuzz.c: a client's request head, as the sidecar's HTTP
 * listener reads it (sidecar/http/http_conn.c) and rewrites it for the upstream
 * (sidecar/http/http_exchange.c): http_parser fed at fuzzer-chosen split points,
 * the pieces glued by ms_http_head_append, the proxy's decisions
 * (ms_http_request_check: the refusals of RFC 9112 and the origin form;
 * ms_http_request_plan: CONNECT, the framing, the edits), and
 * ms_http_write_request with the Host a cluster may ask for.
 *
 * The property checked beyond memory safety: what goes upstream is one
 * well-formed request head that http_parser reads back with the framing the
 * proxy chose (chunked, or exactly its Content-Length, or none) and the Host
 * it meant: a rewrite never opens a way to smuggle a second request.
 *
 * Input: a byte of edit choices, two bytes seeding the split points, then
 * the bytes the client sent. */
#include <http_parser.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz/http_fuzz.h"

typedef struct request_state {
  ms_http_head head; /* first: the callbacks of http_fuzz.h */
  uint8_t choices;
  int heads; /* request heads rewritten */
} request_state;

/* check_rewrite: the head the upstream would get reads back as one request
 * with the framing and Host the proxy chose. */
static void check_rewrite(const ms_http_out *out, const ms_http_request_edits *edits) {
  fuzz_readback rb;
  fuzz_readback_head(out, HTTP_REQUEST, &rb);
  FUZZ_CHECK(rb.chunked == edits->chunked);
  if (edits->chunked)
    FUZZ_CHECK(rb.content_length == UINT64_MAX);
  else if (edits->has_content_length)
    FUZZ_CHECK(rb.content_length == edits->content_length);
  else
    FUZZ_CHECK(rb.content_length == UINT64_MAX);
  size_t hosts = 0, host_len = 0;
  for (size_t i = 0; i < rb.head.header_count; i++)
    if (ms_http_slice_is(&rb.head, rb.head.headers[i].name, "host")) hosts++;
  FUZZ_CHECK(hosts <= 1);
  const char *host = ms_http_head_get(&rb.head, "host", &host_len);
  if (edits->host)
    FUZZ_CHECK(host && host_len == strlen(edits->host) && memcmp(host, edits->host, host_len) == 0);
  FUZZ_CHECK(ms_http_head_names_valid(&rb.head));
  ms_http_head_cleanup(&rb.head);
}

/* The proxy's own rules: ms_http_request_check, _framing and _plan, as
 * http_conn.c's rq_on_headers_complete and http_exchange.c's
 * ms_http_start_exchange call them; the route's Host and the client's
 * address are the fuzzer's choice. */
static int on_headers_complete(http_parser *p) {
  request_state *state = p->data;
  if (ms_http_request_check(p, &state->head) != MS_HTTP_REQUEST_PROXY) return -1; /* 400 */
  ms_http_request_edits edits;
  if (ms_http_request_plan(p, ms_http_request_framing(p), 0, &edits) != MS_HTTP_REQUEST_PROXY)
    return -1; /* 405 */
  edits.host = state->choices & 1 ? "orders.internal:8443" : NULL;
  edits.forwarded_for = state->choices & 2 ? "10.1.2.3" : NULL;
  ms_http_out out = {0};
  ms_http_write_request(&out, &state->head, &edits);
  check_rewrite(&out, &edits);
  ms_http_out_cleanup(&out);
  state->heads++;
  return 1; /* skip the body: http_chunked_fuzz reads bodies */
}

static const http_parser_settings settings = {
    .on_message_begin = fuzz_http_on_message_begin,
    .on_url = fuzz_http_on_url,
    .on_header_field = fuzz_http_on_field,
    .on_header_value = fuzz_http_on_value,
    .on_headers_complete = on_headers_complete,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size};
  request_state state = {.choices = fuzz_take_byte(&in)};
  fuzz_splitter splitter = fuzz_splitter_from(&in);
  http_parser parser;
  http_parser_init(&parser, HTTP_REQUEST);
  parser.data = &state;
  fuzz_http_feed(&parser, &settings, &in, &splitter);
  ms_http_head_cleanup(&state.head);
  return 0;
}
