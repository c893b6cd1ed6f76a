/* https_get.h: one HTTPS GET on a libuv loop, for the small documents a
 * control plane fetches (the Kubernetes API server's JSON Web Key Set; a
 * status page or a webhook could use it too).
 *
 * HTTP/1.1 with `Connection: close`, one request per connection; the server
 * is verified with the caller's SSL_CTX and its host name (or IP literal)
 * from the URL. The whole fetch (resolving, connecting, the handshake, the
 * response) is bounded by one timeout, the body by a size. Everything runs
 * on the loop's thread. */
#ifndef MS_HTTPS_GET_H
#define MS_HTTPS_GET_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#define MS_HTTPS_GET_DEFAULT_MAX_BODY (1 << 20)
#define MS_HTTPS_GET_DEFAULT_TIMEOUT_MS 10000

typedef struct ms_https_get ms_https_get;

typedef struct ms_https_get_request {
  const char *url;           /* "https://host[:port]/path[?query]"; copied */
  SSL_CTX *ssl_ctx;          /* a client context that verifies (ms_client_ctx_load); up-ref'd */
  const char *authorization; /* the Authorization header's value, or NULL; copied, and
                                wiped from memory when the fetch is freed */
  const char *accept;        /* the Accept header; NULL: any type */
  size_t max_body_bytes;     /* a longer body fails the fetch; 0: 1 MiB */
  uint64_t timeout_ms;       /* the whole fetch; 0: 10 s */
} ms_https_get_request;

typedef struct ms_https_get_result {
  const char *error; /* NULL when a whole response arrived (whatever its status), else why not */
  int status;        /* the HTTP status; 0 when no response head arrived */
  const char *body;  /* NUL-terminated; borrowed for the callback's duration */
  size_t body_len;
} ms_https_get_result;

typedef void (*ms_https_get_cb)(const ms_https_get_result *result, void *arg);

/* ms_https_get_start begins fetching request->url and returns at once.
 * Returns 0 and sets *out_get, or -1 with `err` (a URL that is not
 * https://host..., out of memory). `cb` then runs exactly once, from the
 * loop (never from inside this call), unless the fetch is cancelled first;
 * *out_get is invalid once `cb` has run. The fetch's memory is freed by the
 * loop after `cb` (or the cancel). */
int ms_https_get_start(uv_loop_t *loop, const ms_https_get_request *request, ms_https_get_cb cb,
                       void *arg, ms_https_get **out_get, char *err, size_t err_len);

/* ms_https_get_cancel abandons a fetch whose callback has not run: it will
 * not run. Accepts NULL. */
void ms_https_get_cancel(ms_https_get *get);

#endif
