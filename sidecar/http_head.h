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

#endif
