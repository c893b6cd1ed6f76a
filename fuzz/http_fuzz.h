/* http_fuzz.h: what the HTTP fuzz targets share: http_parser callbacks that
 * glue the head's pieces with ms_http_head_append, as sidecar/http/http_conn.c
 * and http_exchange.c do (the parser's data points at a struct whose first
 * member is the ms_http_head), and feeding bytes at fuzzer-chosen split
 * points. */
#ifndef MS_FUZZ_HTTP_FUZZ_H
#define MS_FUZZ_HTTP_FUZZ_H

#include <stdio.h>
#include <string.h>

#include <http_parser.h>

#include "fuzz/fuzz_util.h"
#include "sidecar/http/http_head.h"

static inline int fuzz_http_on_message_begin(http_parser *p) {
  ms_http_head_reset(p->data);
  return 0;
}
static inline int fuzz_http_on_url(http_parser *p, const char *at, size_t len) {
  return ms_http_head_append(p->data, MS_HTTP_URL, at, len);
}
static inline int fuzz_http_on_status(http_parser *p, const char *at, size_t len) {
  return ms_http_head_append(p->data, MS_HTTP_STATUS, at, len);
}
static inline int fuzz_http_on_field(http_parser *p, const char *at, size_t len) {
  return ms_http_head_append(p->data, MS_HTTP_FIELD, at, len);
}
static inline int fuzz_http_on_value(http_parser *p, const char *at, size_t len) {
  return ms_http_head_append(p->data, MS_HTTP_VALUE, at, len);
}

/* fuzz_http_feed passes `in` to the parser in pieces until it is used up,
 * the parser stops with an error (returned: HPE_OK when all was parsed) or
 * an upgrade hands the rest to a tunnel. Every piece is parsed whole. */
static inline enum http_errno fuzz_http_feed(http_parser *parser,
                                             const http_parser_settings *settings, fuzz_input *in,
                                             fuzz_splitter *splitter) {
  while (in->len > 0) {
    size_t piece = fuzz_next_piece(splitter, in->len);
    size_t n = http_parser_execute(parser, settings, (const char *)in->data, piece);
    enum http_errno error = HTTP_PARSER_ERRNO(parser);
    if (error != HPE_OK) return error;
    if (parser->upgrade) return HPE_OK; /* the rest is the tunnel's, not HTTP */
    FUZZ_CHECK(n == piece);
    in->data += piece;
    in->len -= piece;
  }
  return HPE_OK;
}

/* What a rewritten head reads back as. The parser's data points here, so
 * `head` (glued by the fuzz_http_on_* callbacks) comes first. */
typedef struct fuzz_readback {
  ms_http_head head;
  bool complete;
  bool chunked;
  unsigned status;
  uint64_t content_length;
} fuzz_readback;

static inline int fuzz_readback_on_headers_complete(http_parser *p) {
  fuzz_readback *rb = p->data;
  rb->complete = true;
  rb->chunked = (p->flags & F_CHUNKED) != 0;
  rb->status = p->status_code;
  rb->content_length = p->content_length;
  return 1; /* the head is all there is */
}

/* fuzz_readback_head parses `out` (a head the proxy wrote) as one whole
 * request or response head of `type` into `rb` (zeroed first; the caller
 * cleans up rb->head); aborts, printing the head, when it is not exactly
 * one complete head. */
static inline void fuzz_readback_head(const ms_http_out *out, enum http_parser_type type,
                                      fuzz_readback *rb) {
  static const http_parser_settings settings = {
      .on_url = fuzz_http_on_url,
      .on_header_field = fuzz_http_on_field,
      .on_header_value = fuzz_http_on_value,
      .on_headers_complete = fuzz_readback_on_headers_complete,
  };
  FUZZ_CHECK(!out->failed);
  memset(rb, 0, sizeof(*rb));
  http_parser parser;
  http_parser_init(&parser, type);
  parser.data = rb;
  size_t n = http_parser_execute(&parser, &settings, out->data, out->len);
  if (!rb->complete) {
    fprintf(stderr, "the rewritten head does not parse (%s):\n%.*s\n",
            http_errno_name(HTTP_PARSER_ERRNO(&parser)), (int)out->len, out->data);
    FUZZ_CHECK(rb->complete);
  }
  FUZZ_CHECK(n == out->len); /* nothing after the head: no second message */
}

#endif
