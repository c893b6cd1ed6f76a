/* http_server.h: one small HTTP/1.1 server on a libuv loop, for the pages
 * operators and probes read (the sidecar's admin endpoint, xds-server's
 * status page) and for xds-server's admission webhook, which the Kubernetes
 * API server calls over HTTPS. Not a proxy: a request is read whole (its
 * body counted and dropped, or kept for an owner that asks: keep_body),
 * answered by the owner's handler, and written; then the next one.
 *
 * HTTPS (ms_http_server_set_ssl_ctx, the glue in http_server_tls.c): TLS
 * over the libuv stream through memory BIOs, ALPN offering http/1.1 only.
 * The handshake counts against the request timeout; a handshake that fails
 * (plaintext HTTP or garbage sent to the TLS port, a client that refuses
 * the certificate) closes that socket only, and is counted
 * (MS_HTTP_EVENT_TLS_FAILED). The context can be replaced at run time: new
 * connections take the new one, open ones keep theirs.
 *
 * Against slow or greedy clients, with a cap each (ms_http_server_limits):
 * the first request must arrive whole within request_timeout_ms of the
 * accept (the handshake included), whatever trickles in meanwhile; after a
 * response a keep-alive connection may stay idle idle_timeout_ms, and the
 * next request has request_timeout_ms from its first byte; the request
 * target, the head and the body are capped (414, 431, 413); when every slot
 * is taken a new connection evicts the oldest one still waiting for its
 * request, so that a probe keeps being answered. Each of these is reported
 * to the owner (ms_http_server_handler.count) to count in its statistics.
 *
 * Requests are parsed by ms_http_reader (also fed directly by the fuzz
 * target): http_parser with the caps, keeping the three headers the owners
 * check (Host, Origin, Content-Type) and, with keep_body, the body. Runs on
 * one loop's thread. */
#ifndef MS_HTTP_SERVER_H
#define MS_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <http_parser.h>
#include <openssl/ssl.h>
#include <uv.h>

#define MS_HTTP_MAX_URL 2048 /* a longer request target is refused (414) */
#define MS_HTTP_MAX_NAME 256 /* a longer Host or Origin is kept as "too long" */

/* The caps; a zero field takes the default in brackets. */
typedef struct ms_http_server_limits {
  size_t max_connections;      /* [64] more evict the oldest one waiting for a request */
  uint64_t request_timeout_ms; /* [10000] for a whole request */
  uint64_t idle_timeout_ms;    /* [request_timeout_ms] a keep-alive connection between requests */
  size_t max_head_bytes;       /* [8192] request line and headers, else 431 */
  size_t max_body_bytes;       /* [65536] a body is read (dropped or kept); more is 413 */
} ms_http_server_limits;

/* The default of max_body_bytes. */
#define MS_HTTP_DEFAULT_MAX_BODY_BYTES 65536

/* One request, read whole. */
typedef struct ms_http_request {
  enum http_method method;
  char url[MS_HTTP_MAX_URL]; /* the request target, not NUL-terminated */
  size_t url_len;
  /* Host and Origin as sent. *_len is SIZE_MAX when the header is absent
   * and MS_HTTP_MAX_NAME + 1 when it was too long to keep (then the value
   * holds nothing usable). */
  char host[MS_HTTP_MAX_NAME], origin[MS_HTTP_MAX_NAME];
  size_t host_len, origin_len;
  /* Content-Type as sent, the same way. */
  char content_type[MS_HTTP_MAX_NAME];
  size_t content_type_len;
  /* The body, when the reader keeps it (keep_body): borrowed from the
   * reader until ms_http_reader_next; NULL (and 0) otherwise. */
  const char *body;
  size_t body_len;
  bool keep_alive; /* the client asked to keep the connection (and no upgrade) */
} ms_http_request;

/* ---- reading a request (no sockets) ---------------------------------------- */

typedef enum ms_http_read_state {
  MS_HTTP_READ_MORE = 0, /* every byte taken; the request is not whole yet */
  MS_HTTP_READ_COMPLETE, /* reader->request is whole; the bytes after it wait */
  MS_HTTP_READ_REFUSED,  /* answer reader->refusal_status and close */
} ms_http_read_state;

typedef struct ms_http_reader {
  http_parser parser;
  ms_http_server_limits limits;
  ms_http_request request;
  size_t head_bytes, body_bytes;
  int refusal_status; /* 400, 413, 414, 431 (or 503: no memory for the body) once refused */
  char field[16];     /* the header name being read (enough for "content-type") */
  size_t field_len;
  bool in_value; /* the last piece was a value: the next name is a new header */
  bool complete;
  /* Keep the body (set after ms_http_reader_init): it is copied into
   * `body`, grown up to limits.max_body_bytes; memory running out refuses
   * the request with 503. Off: counted and dropped, nothing allocated. */
  bool keep_body;
  char *body;
  size_t body_capacity;
} ms_http_reader;

/* ms_http_reader_init prepares `reader` with `limits` (NULL: the defaults). */
void ms_http_reader_init(ms_http_reader *reader, const ms_http_server_limits *limits);

/* ms_http_reader_cleanup frees the kept body's memory (nothing to free
 * without keep_body). */
void ms_http_reader_cleanup(ms_http_reader *reader);

/* ms_http_reader_feed parses up to `len` bytes and sets *consumed to the
 * bytes taken. On MS_HTTP_READ_COMPLETE the reader stops right after the
 * request: answer it, call ms_http_reader_next, and feed the rest. A second
 * Host header, a parse error or a cap refuses the request (the status says
 * which). */
ms_http_read_state ms_http_reader_feed(ms_http_reader *reader, const char *data, size_t len,
                                       size_t *consumed);

/* ms_http_reader_next makes the reader ready for the next request on the
 * same connection. */
void ms_http_reader_next(ms_http_reader *reader);

/* ---- the server ----------------------------------------------------------------- */

/* A response, filled by the handler; the server frees `body` (malloc'd)
 * once written. */
typedef struct ms_http_response {
  int status;               /* 200, 404, ... */
  const char *content_type; /* static string */
  char *body;
  size_t body_len;
  const char *allow; /* the Allow header of a 405, or NULL */
  bool head_only;    /* HEAD: the head without the body */
  bool close;        /* close the connection after this response */
  /* Called once the response is written (or failed to be), last: it may
   * close the server. NULL: nothing. */
  void (*after)(void *arg);
  void *after_arg;
} ms_http_response;

/* ms_http_response_copy sets `out`'s status and content type, and its body
 * to a copy of the string `body`, for handlers whose answer is a fixed
 * sentence. Returns 0, or -ENOMEM (nothing allocated). */
int ms_http_response_copy(ms_http_response *out, int status, const char *content_type,
                          const char *body);

/* What the server reports to its owner. */
typedef enum ms_http_server_event {
  MS_HTTP_EVENT_EVICTED,    /* a connection closed to make room (or the new one, none waiting) */
  MS_HTTP_EVENT_TIMEOUT,    /* a request did not arrive whole in time */
  MS_HTTP_EVENT_IDLE,       /* a keep-alive connection closed after idle_timeout_ms */
  MS_HTTP_EVENT_REFUSED,    /* a request refused by the reader (400, 413, 414, 431, 503) */
  MS_HTTP_EVENT_TLS_FAILED, /* a TLS handshake or record failed: that socket closed */
} ms_http_server_event;

typedef struct ms_http_server_handler {
  /* respond fills *out (zeroed) for `request`. `now_ms` is the loop's time.
   * Returns 0, or a negative errno (-ENOMEM: memory ran out); then the
   * connection closes without an answer. */
  int (*respond)(void *arg, const ms_http_request *request, uint64_t now_ms, ms_http_response *out);
  /* refuse fills *out for a request the reader refused with `status`.
   * Returns 0 or a negative errno like respond. */
  int (*refuse)(void *arg, int status, ms_http_response *out);
  /* count is told of each event; NULL: not counted. */
  void (*count)(void *arg, ms_http_server_event event);
  void *arg;
  const char *name; /* for log lines, e.g. "admin" */
  bool keep_body;   /* hand request bodies to respond (ms_http_request.body) */
} ms_http_server_handler;

typedef struct ms_http_server ms_http_server;

/* ms_http_server_start listens on `address` (port 0: any free one) and
 * serves requests with `handler` (copied) under `limits` (NULL: the
 * defaults). Returns 0 and sets *out, or a negative libuv error (e.g.
 * UV_EADDRINUSE). */
int ms_http_server_start(uv_loop_t *loop, const struct sockaddr *address,
                         const ms_http_server_limits *limits, const ms_http_server_handler *handler,
                         ms_http_server **out);

/* ms_http_server_set_ssl_ctx makes the server speak HTTPS with `ctx` (a
 * server context with its certificate and key) from the next accepted
 * connection on; connections already open keep the context they started
 * with. The server takes a reference (the caller keeps its own) and
 * installs an ALPN callback on `ctx` that selects http/1.1 only (a client
 * offering ALPN without it is refused). Call it before the loop runs for a
 * server that must never speak plaintext. */
void ms_http_server_set_ssl_ctx(ms_http_server *server, SSL_CTX *ctx);

/* ms_http_server_port returns the port the server listens on. */
uint16_t ms_http_server_port(const ms_http_server *server);

/* ms_http_server_close closes the listener and every connection; the
 * memory is freed in the close callbacks, after which no handler function
 * is called. Accepts NULL. */
void ms_http_server_close(ms_http_server *server);

#endif
