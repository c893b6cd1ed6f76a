/* http_chunked_fuzz.c: message bodies re-framed by the proxy, both ways. A
 * request body from the client (sidecar/http/http_conn.c, rq_on_body) and a
 * response body from the upstream (sidecar/http/http_exchange.c, rs_on_body)
 * arrive chunked, with a Content-Length, or (a response) until close, split
 * anywhere; http_parser decodes them and the proxy writes them on re-chunked
 * (ms_http_out_add_chunk per piece, MS_HTTP_LAST_CHUNK at the end) or as
 * they are, framed as ms_http_request_framing / ms_http_response_decide
 * chose, behind the head ms_http_write_request /
 * ms_http_write_planned_response wrote.
 *
 * The property checked: the stream the proxy writes reads back with
 * http_parser as exactly one message whose body is byte for byte the body
 * decoded from the input, complete when the input's was.
 *
 * Input: a byte of choices (bit 0: a response, else a request; bit 1: an
 * HTTP/1.0 client), two bytes seeding the split points, then the message. */
#include <http_parser.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz/http_fuzz.h"

typedef struct reframe_state {
  ms_http_head head; /* first: the callbacks of http_fuzz.h */
  bool response;
  http_parser request; /* a response's: what the request said (GET, its version) */
  ms_http_framing framing;
  bool started, done, refused;
  ms_http_out out;  /* what the proxy writes */
  ms_http_out body; /* the body as decoded */
} reframe_state;

/* The proxy's own rules (sidecar/http/http_head.h): a request as
 * rq_on_headers_complete and ms_http_start_exchange take it (a tunnel is
 * not a body: refused here), a response as rs_on_headers_complete. */
static int on_headers_complete(http_parser *p) {
  reframe_state *state = p->data;
  if (!state->response) {
    ms_http_request_edits edits;
    state->framing = ms_http_request_framing(p);
    state->refused = ms_http_request_check(p, &state->head) != MS_HTTP_REQUEST_PROXY ||
                     p->upgrade ||
                     ms_http_request_plan(p, state->framing, 0, &edits) != MS_HTTP_REQUEST_PROXY;
    if (state->refused) return -1;
    ms_http_write_request(&state->out, &state->head, &edits);
    state->started = true;
    return 0;
  }
  ms_http_response_plan plan;
  ms_http_response_decide(p, &state->head, &state->request, false, &plan);
  if (plan.kind != MS_HTTP_RESPONSE_FINAL && plan.kind != MS_HTTP_RESPONSE_INTERIM) {
    state->refused = true; /* refused, or a tunnel */
    return -1;
  }
  ms_http_write_planned_response(&state->out, &state->head, &plan);
  if (plan.kind == MS_HTTP_RESPONSE_FINAL) { /* else interim: the final one follows */
    state->framing = plan.framing;
    state->started = true;
  }
  return plan.bodiless ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  reframe_state *state = p->data;
  ms_http_out_add(&state->body, at, len);
  if (state->framing == MS_HTTP_FRAMING_CHUNKED)
    ms_http_out_add_chunk(&state->out, at, len);
  else
    ms_http_out_add(&state->out, at, len);
  return 0;
}

static int on_message_complete(http_parser *p) {
  reframe_state *state = p->data;
  if (!state->started) return 0; /* an interim response */
  state->done = true;
  if (state->framing == MS_HTTP_FRAMING_CHUNKED)
    ms_http_out_add(&state->out, MS_HTTP_LAST_CHUNK, sizeof(MS_HTTP_LAST_CHUNK) - 1);
  return -1; /* one message: the proxy pauses here */
}

static const http_parser_settings settings = {
    .on_message_begin = fuzz_http_on_message_begin,
    .on_url = fuzz_http_on_url,
    .on_status = fuzz_http_on_status,
    .on_header_field = fuzz_http_on_field,
    .on_header_value = fuzz_http_on_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Reading the proxy's stream back. */
typedef struct readback {
  ms_http_out body;
  bool final_head, complete;
  int messages;
} readback;

static int rb_on_headers_complete(http_parser *p) {
  readback *rb = p->data;
  if (p->type == HTTP_RESPONSE && p->status_code >= 100 && p->status_code < 200) return 0;
  rb->final_head = true;
  return 0;
}
static int rb_on_body(http_parser *p, const char *at, size_t len) {
  ms_http_out_add(&((readback *)p->data)->body, at, len);
  return 0;
}
static int rb_on_message_complete(http_parser *p) {
  readback *rb = p->data;
  if (rb->final_head) {
    rb->complete = true;
    rb->messages++;
  }
  return 0;
}
static const http_parser_settings readback_settings = {
    .on_headers_complete = rb_on_headers_complete,
    .on_body = rb_on_body,
    .on_message_complete = rb_on_message_complete};

static void check_readback(const reframe_state *state) {
  FUZZ_CHECK(!state->out.failed && !state->body.failed);
  readback rb = {0};
  http_parser parser;
  http_parser_init(&parser, state->response ? HTTP_RESPONSE : HTTP_REQUEST);
  parser.data = &rb;
  size_t n = http_parser_execute(&parser, &readback_settings, state->out.data, state->out.len);
  if (state->done || state->framing == MS_HTTP_FRAMING_UNTIL_CLOSE)
    http_parser_execute(&parser, &readback_settings, NULL, 0); /* the connection closes */
  if (HTTP_PARSER_ERRNO(&parser) != HPE_OK || n != state->out.len) {
    fprintf(stderr, "the re-framed message does not parse (%s) at %zu of %zu:\n%.*s\n",
            http_errno_name(HTTP_PARSER_ERRNO(&parser)), n, state->out.len, (int)state->out.len,
            state->out.data);
    FUZZ_CHECK(0);
  }
  FUZZ_CHECK(rb.final_head);
  FUZZ_CHECK(rb.messages <= 1);
  if (state->done) FUZZ_CHECK(rb.complete);
  FUZZ_CHECK(rb.body.len == state->body.len);
  FUZZ_CHECK(rb.body.len == 0 || memcmp(rb.body.data, state->body.data, rb.body.len) == 0);
  ms_http_out_cleanup(&rb.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size};
  uint8_t choices = fuzz_take_byte(&in);
  reframe_state state = {.response = choices & 1};
  http_parser_init(&state.request, HTTP_REQUEST);
  state.request.method = HTTP_GET;
  state.request.http_major = 1;
  state.request.http_minor = choices & 2 ? 0 : 1;
  fuzz_splitter splitter = fuzz_splitter_from(&in);
  http_parser parser;
  http_parser_init(&parser, state.response ? HTTP_RESPONSE : HTTP_REQUEST);
  parser.data = &state;
  bool failed = false;
  while (in.len > 0 && !state.done) {
    size_t piece = fuzz_next_piece(&splitter, in.len);
    size_t n = http_parser_execute(&parser, &settings, (const char *)in.data, piece);
    if (HTTP_PARSER_ERRNO(&parser) != HPE_OK) {
      failed = !state.done;
      break;
    }
    FUZZ_CHECK(n == piece);
    in.data += piece;
    in.len -= piece;
  }
  /* A response until close ends when the upstream closes. */
  if (!failed && !state.done && state.framing == MS_HTTP_FRAMING_UNTIL_CLOSE) {
    http_parser_execute(&parser, &settings, NULL, 0);
    failed = HTTP_PARSER_ERRNO(&parser) != HPE_OK && !state.done;
  }
  /* A message cut short is cut short for the next hop too; what was passed
   * on must still read back as far as it went. */
  if (state.started && !state.refused &&
      (!failed || state.framing != MS_HTTP_FRAMING_UNTIL_CLOSE) &&
      (state.done || state.framing == MS_HTTP_FRAMING_UNTIL_CLOSE))
    check_readback(&state);
  ms_http_head_cleanup(&state.head);
  ms_http_out_cleanup(&state.out);
  ms_http_out_cleanup(&state.body);
  return 0;
}
