/* http_head.h: the head of an HTTP/1.1 message (request line or status
 * line, and headers), collected from http_parser's callbacks, and written
 * out again with a proxy's changes.
 *
 * http_parser hands over the start line and each header name and value in
 * pieces (a read may end in the middle of one); ms_http_head_append glues
 * them into one buffer, and the headers are kept as offsets into it. A head
 * is reused from message to message; its memory is freed by
 * ms_http_head_cleanup. Not thread-safe; each one belongs to one exchange. */
#ifndef MS_HTTP_HEAD_H
#define MS_HTTP_HEAD_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ms_http_slice {
  uint32_t offset, len; /* in ms_http_head.buf */
} ms_http_slice;

typedef struct ms_http_header {
  ms_http_slice name, value;
} ms_http_header;

typedef enum ms_http_piece {
  MS_HTTP_URL,
  MS_HTTP_STATUS,
  MS_HTTP_FIELD,
  MS_HTTP_VALUE,
} ms_http_piece;

typedef struct ms_http_head {
  char *buf;
  size_t len, capacity;
  ms_http_slice target; /* request: the URL as sent; response: the reason phrase */
  ms_http_header *headers;
  size_t header_count, header_capacity;
  ms_http_piece last; /* what the previous piece was, to glue or start anew */
  bool started;       /* a piece came since the reset */
} ms_http_head;

/* ms_http_head_reset forgets the last message, keeping the memory. */
void ms_http_head_reset(ms_http_head *head);

void ms_http_head_cleanup(ms_http_head *head);

/* ms_http_head_append adds a piece from http_parser. Returns 0, or -1 when
 * memory ran out. */
int ms_http_head_append(ms_http_head *head, ms_http_piece piece, const char *at, size_t len);

/* ms_http_head_get returns header `name`'s first value (case-insensitive),
 * or NULL; *len is its length. */
const char *ms_http_head_get(const ms_http_head *head, const char *name, size_t *len);

/* ms_http_head_names_valid: every header name is a token (RFC 9110 5.6.2).
 * http_parser lets a space through ("Content-Length : 5"), which RFC 9112
 * 5.1 says a server must refuse: another hop may read that header as
 * Content-Length and frame the message differently (request smuggling). */
bool ms_http_head_names_valid(const ms_http_head *head);

/* ms_http_head_to_origin_form turns a request head whose target is in
 * absolute form ("GET http://api.shop:8080/orders?id=7 HTTP/1.1") into the
 * origin form an origin server expects ("/orders?id=7"), with Host set to
 * the target's authority ("api.shop:8080"), which RFC 9112 3.2.2 says wins
 * over the Host header; routes then see what the upstream will. Origin
 * form and "*" are left as they are. Returns 0, or -1 when the target is
 * not a URL with a scheme and a host, or memory ran out. */
int ms_http_head_to_origin_form(ms_http_head *head);

/* ms_http_slice_is: `slice` equals `text`, case-insensitively. */
bool ms_http_slice_is(const ms_http_head *head, ms_http_slice slice, const char *text);

/* A growing output buffer. */
typedef struct ms_http_out {
  char *data;
  size_t len, capacity;
  bool failed; /* memory ran out on the way */
} ms_http_out;

/* ms_http_out_add appends `len` bytes; ms_http_out_addf appends formatted
 * text, whatever its length. When memory runs out, `failed` is set and
 * nothing more is added. */
void ms_http_out_add(ms_http_out *out, const char *data, size_t len);
void ms_http_out_addf(ms_http_out *out, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
void ms_http_out_cleanup(ms_http_out *out);

/* What a proxied request carries beyond the client's head. */
typedef struct ms_http_request_edits {
  const char *method;        /* http_method_str of the request */
  const char *host;          /* the Host to send (cluster's host_header), or NULL: the client's */
  const char *forwarded_for; /* the client's address to append to X-Forwarded-For, or NULL */
  bool chunked;              /* the body is sent chunked */
  uint64_t content_length;   /* else this Content-Length, when has_content_length */
  bool has_content_length;
  bool upgrade; /* keep the client's Upgrade header: a tunnel is asked for */
} ms_http_request_edits;

/* ms_http_write_request writes the request line and headers for the
 * upstream: hop-by-hop headers dropped (RFC 9110 7.6.1: Connection,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
 * and every header Connection names; one pass, however many headers), Host set, X-Forwarded-For
 * appended and X-Forwarded-Proto set when forwarded_for is given, the body framing of `edits`, and
 * "Connection: keep-alive" (or "upgrade"). */
void ms_http_write_request(ms_http_out *out, const ms_http_head *head,
                           const ms_http_request_edits *edits);

/* ms_http_write_response writes the status line and headers for the
 * client: hop-by-hop headers dropped, then the framing given (chunked,
 * Content-Length, or neither), and Connection: close when `close`. With
 * `upgrade` (a 101), Connection: upgrade and the upstream's Upgrade header. */
void ms_http_write_response(ms_http_out *out, const ms_http_head *head, unsigned status,
                            bool chunked, bool has_content_length, uint64_t content_length,
                            bool close, bool upgrade);

/* ---- the proxy's decisions ----------------------------------------------
 *
 * Pure functions of what http_parser and the head say: no connection, no
 * socket, no worker. sidecar/http/http_conn.c and http_exchange.c act on what
 * they return, and the fuzz targets (fuzz/http_*_fuzz.c) check the same
 * calls, so that a rule changed here is the rule fuzzed. */

/* How a message's body goes to the next hop. */
typedef enum ms_http_framing {
  MS_HTTP_FRAMING_NONE,        /* no body */
  MS_HTTP_FRAMING_LENGTH,      /* Content-Length: the bytes as they come */
  MS_HTTP_FRAMING_CHUNKED,     /* re-chunked (ms_http_out_add_chunk) */
  MS_HTTP_FRAMING_UNTIL_CLOSE, /* a response that ends when the connection does */
} ms_http_framing;

/* What the proxy does with a request head, or why it answers it itself. */
typedef enum ms_http_request_verdict {
  MS_HTTP_REQUEST_PROXY,           /* route it and send it upstream */
  MS_HTTP_REQUEST_BAD_HEADER_NAME, /* 400: a name that is not a token */
  MS_HTTP_REQUEST_HOST_TWICE,      /* 400: more than one Host */
  MS_HTTP_REQUEST_NO_HOST,         /* 400: HTTP/1.1 without Host */
  MS_HTTP_REQUEST_BAD_TARGET,      /* 400: neither a path nor an absolute URL */
  MS_HTTP_REQUEST_BODY_TOO_LARGE,  /* 413: over max_request_body_bytes */
  MS_HTTP_REQUEST_CONNECT,         /* 405: CONNECT is not proxied */
  MS_HTTP_REQUEST_HEAD_TIMEOUT,    /* 408: not whole within request_headers_timeout_ms */
} ms_http_request_verdict;

/* ms_http_request_verdict_answer returns the status the sidecar answers
 * `verdict` with (400, 405, 408, 413), and sets *out_phrase to its reason phrase
 * and *out_body to the sentence its body says (static strings); for
 * MS_HTTP_REQUEST_PROXY it returns 0 and sets both to NULL. */
unsigned ms_http_request_verdict_answer(ms_http_request_verdict verdict, const char **out_phrase,
                                        const char **out_body);

/* ms_http_request_check decides whether the request head `head` that
 * `parser` has just completed (on_headers_complete) can be proxied: header
 * names are tokens, one Host (and one at all in HTTP/1.1; RFC 9112 3.2 and
 * 5.1 say a server must refuse these with 400), and a target in absolute
 * form is turned into the origin form (ms_http_head_to_origin_form, which
 * edits `head`; CONNECT's authority form is left alone). Returns
 * MS_HTTP_REQUEST_PROXY, or the 400 verdict saying why not. */
ms_http_request_verdict ms_http_request_check(const http_parser *parser, ms_http_head *head);

/* ms_http_request_framing returns how the body of the request `parser`
 * has the head of goes upstream: chunked when it came chunked, its
 * Content-Length when that is above 0, else none. */
ms_http_framing ms_http_request_framing(const http_parser *parser);

/* ms_http_request_plan decides what the exchange of a checked request does
 * before it is routed: a Content-Length body over `max_body_bytes` (0: no
 * limit) is answered 413, CONNECT 405; otherwise it fills *out_edits with
 * the method, the body's `framing` and the Upgrade to keep, host and
 * forwarded_for left NULL for the caller (they come from the route and the
 * client's address). Returns MS_HTTP_REQUEST_PROXY (*out_edits filled) or
 * the verdict to answer (*out_edits untouched). */
ms_http_request_verdict ms_http_request_plan(const http_parser *parser, ms_http_framing framing,
                                             uint64_t max_body_bytes,
                                             ms_http_request_edits *out_edits);

/* What a response head is to the proxy. */
typedef enum ms_http_response_kind {
  MS_HTTP_RESPONSE_FINAL,           /* passed on; its body follows as `framing` says */
  MS_HTTP_RESPONSE_INTERIM,         /* a 1xx but 101: passed on; the final one follows */
  MS_HTTP_RESPONSE_UPGRADE,         /* a 101 the request asked for: passed on, then a tunnel */
  MS_HTTP_RESPONSE_BAD_HEADER_NAME, /* refused (502): a header name that is not a token */
  MS_HTTP_RESPONSE_UPGRADE_UNASKED, /* refused (502): a 101 to a request without Upgrade */
} ms_http_response_kind;

/* How a response head goes on to the client. */
typedef struct ms_http_response_plan {
  ms_http_response_kind kind;
  const char *refused;     /* MS_HTTP_RESPONSE_BAD_HEADER_NAME: why (static), else NULL */
  ms_http_framing framing; /* the body's, for the client (NONE but for a FINAL with a body) */
  bool bodiless;           /* the message ends at its head (RFC 9112 6.3): HEAD, 1xx, 204, 304 */
  bool upstream_in_doubt;  /* a 1xx or 204 announced a body: the upstream is never pooled */
  /* What ms_http_write_planned_response writes. */
  unsigned status;
  bool has_content_length; /* Content-Length sent: LENGTH framing, or the answer to a HEAD */
  uint64_t content_length;
  bool close; /* "Connection: close": `close` was asked, or the body ends with the connection */
} ms_http_response_plan;

/* ms_http_response_decide decides what the proxy does with the response
 * head `head` that `parser` has just completed, answering the request that
 * `request` parsed (its method, version and Upgrade). `close` says the
 * client's connection closes after this response (the client asked, or
 * the sidecar drains). Final responses: no body for HEAD, 204 and 304; the
 * upstream's Content-Length when it has one and is not chunked; else
 * chunked for an HTTP/1.1 client, or until close. Fills *out (never
 * fails; a refusal is a kind). */
void ms_http_response_decide(const http_parser *parser, const ms_http_head *head,
                             const http_parser *request, bool close, ms_http_response_plan *out);

/* ms_http_write_planned_response writes `head` for the client as `plan`
 * says (ms_http_write_response with its status, framing and Connection;
 * the Upgrade header for a 101). */
void ms_http_write_planned_response(ms_http_out *out, const ms_http_head *head,
                                    const ms_http_response_plan *plan);

/* ms_http_chunk_line writes the size line of a chunk of `len` bytes
 * ("%zx\r\n") into `line` and returns its length. */
#define MS_HTTP_CHUNK_LINE_MAX 24
size_t ms_http_chunk_line(size_t len, char line[MS_HTTP_CHUNK_LINE_MAX]);

/* ms_http_out_add_chunk appends `len` (> 0) bytes as one chunk: the size
 * line, the bytes, CRLF. MS_HTTP_LAST_CHUNK ends a chunked body. */
void ms_http_out_add_chunk(ms_http_out *out, const char *data, size_t len);
#define MS_HTTP_LAST_CHUNK "0\r\n\r\n"

#endif
