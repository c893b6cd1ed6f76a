/* https_get.c: one HTTPS GET (https_get.h). A fetch goes through visible
 * states, one function each: resolving (uv_getaddrinfo), connecting (each
 * address in turn), handshaking and receiving (BoringSSL over two memory
 * BIOs, the TCP bytes moved by libuv), then done. The response is parsed
 * with http_parser. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/mem.h>

#include "certs/certs.h"
#include "xds-server/https_get.h"

typedef enum fetch_state {
  FETCH_RESOLVING,
  FETCH_CONNECTING,
  FETCH_HANDSHAKING,
  FETCH_RECEIVING,
  FETCH_DONE,
} fetch_state;

static const char *const state_names[] = {"resolving", "connecting", "in the TLS handshake",
                                          "waiting for the response", "done"};

struct ms_https_get {
  uv_loop_t *loop;
  fetch_state state;
  ms_https_get_cb cb;
  void *arg;
  bool cancelled;
  int open_handles; /* the timer, and the socket once made */
  bool resolving;   /* the getaddrinfo request is out */
  uv_timer_t timer;
  uv_tcp_t tcp;
  bool tcp_open;
  uv_getaddrinfo_t resolve;
  struct addrinfo *addresses, *next_address;
  int connect_error;
  uv_connect_t connect;
  char host[256]; /* without brackets */
  char port[8];
  char where[300]; /* "host:port" for messages */
  ms_peer_check check;
  SSL_CTX *ssl_ctx;
  SSL *ssl;
  BIO *network_in, *network_out; /* owned by ssl */
  char *request;
  size_t request_len;
  size_t max_body;
  uint64_t timeout_ms;
  http_parser parser;
  bool complete;
  bool too_large;
  char *body;
  size_t body_len, body_capacity;
};

typedef struct write_req {
  uv_write_t req;
  char bytes[];
} write_req;

/* ---- the end -------------------------------------------------------------------- */

static void maybe_free(ms_https_get *get) {
  if (get->state != FETCH_DONE || get->open_handles > 0 || get->resolving) return;
  if (get->addresses != NULL) uv_freeaddrinfo(get->addresses);
  SSL_free(get->ssl);
  SSL_CTX_free(get->ssl_ctx);
  if (get->request != NULL) OPENSSL_cleanse(get->request, get->request_len);
  free(get->request);
  free(get->body);
  free(get);
}

static void on_handle_closed(uv_handle_t *handle) {
  ms_https_get *get = handle->data;
  get->open_handles--;
  maybe_free(get);
}

/* stop closes everything; the memory goes when the last handle is closed. */
static void stop(ms_https_get *get) {
  if (get->state == FETCH_DONE) return;
  get->state = FETCH_DONE;
  if (get->resolving) uv_cancel((uv_req_t *)&get->resolve);
  uv_close((uv_handle_t *)&get->timer, on_handle_closed);
  if (get->tcp_open) uv_close((uv_handle_t *)&get->tcp, on_handle_closed);
}

static void finish(ms_https_get *get, const char *error) {
  if (get->state == FETCH_DONE) return;
  ms_https_get_result result = {
      .error = error,
      .status = get->parser.status_code,
      .body = get->body != NULL ? get->body : "",
      .body_len = get->body_len,
  };
  if (get->state < FETCH_RECEIVING) result.status = 0;
  stop(get);
  if (!get->cancelled) get->cb(&result, get->arg);
}

static void failf(ms_https_get *get, const char *format, const char *detail) {
  char error[1024];
  snprintf(error, sizeof(error), format, get->where, detail);
  finish(get, error);
}

void ms_https_get_cancel(ms_https_get *get) {
  if (get == NULL) return;
  get->cancelled = true;
  stop(get);
}

static void on_timeout(uv_timer_t *timer) {
  ms_https_get *get = timer->data;
  char error[512];
  snprintf(error, sizeof(error), "%s: no answer within %.0f s (%s)", get->where,
           (double)get->timeout_ms / 1000, state_names[get->state]);
  finish(get, error);
}

/* ---- the response ---------------------------------------------------------------- */

static int on_body(http_parser *parser, const char *at, size_t len) {
  ms_https_get *get = parser->data;
  if (get->body_len + len > get->max_body) {
    get->too_large = true;
    return -1;
  }
  if (get->body_len + len + 1 > get->body_capacity) {
    size_t capacity = get->body_capacity > 0 ? get->body_capacity : 16384;
    while (capacity < get->body_len + len + 1)
      capacity *= 2;
    char *grown = realloc(get->body, capacity);
    if (grown == NULL) return -1;
    get->body = grown;
    get->body_capacity = capacity;
  }
  memcpy(get->body + get->body_len, at, len);
  get->body_len += len;
  get->body[get->body_len] = '\0';
  return 0;
}

static int on_message_complete(http_parser *parser) {
  ms_https_get *get = parser->data;
  get->complete = true;
  http_parser_pause(parser, 1);
  return 0;
}

static const http_parser_settings parser_settings = {
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* parse feeds response bytes (len 0: the end of the stream) and finishes
 * the fetch when the response is whole or broken. */
static void parse(ms_https_get *get, const char *bytes, size_t len) {
  size_t parsed = http_parser_execute(&get->parser, &parser_settings, bytes, len);
  if (get->complete) {
    finish(get, NULL);
  } else if (get->too_large) {
    char limit[32];
    snprintf(limit, sizeof(limit), "%zu", get->max_body);
    failf(get, "%s: the response body is larger than %s bytes", limit);
  } else if (HTTP_PARSER_ERRNO(&get->parser) != HPE_OK || parsed != len) {
    failf(get, "%s: the response is not HTTP/1.1: %s",
          http_errno_description(HTTP_PARSER_ERRNO(&get->parser)));
  } else if (len == 0) {
    failf(get, "%s: the connection closed before the whole response%s",
          get->parser.status_code != 0 ? " body arrived" : " head arrived");
  }
}

/* ---- TLS ------------------------------------------------------------------------ */

static void on_written(uv_write_t *req, int status) {
  free(req);
}

/* flush sends what BoringSSL wrote into its network BIO. */
static void flush(ms_https_get *get) {
  size_t pending = BIO_pending(get->network_out);
  if (pending == 0 || get->state == FETCH_DONE) return;
  write_req *w = malloc(sizeof(*w) + pending);
  if (w == NULL) {
    failf(get, "%s: out of memory%s", "");
    return;
  }
  BIO_read(get->network_out, w->bytes, (int)pending);
  uv_buf_t buf = uv_buf_init(w->bytes, (unsigned)pending);
  int rc = uv_write(&w->req, (uv_stream_t *)&get->tcp, &buf, 1, on_written);
  if (rc != 0) {
    free(w);
    failf(get, "%s: sending failed: %s", uv_strerror(rc));
  }
}

static void handshake_failed(ms_https_get *get, int ssl_error) {
  char reason[512];
  ms_tls_describe_failure(get->ssl, ssl_error, get->check.host != NULL, reason, sizeof(reason));
  failf(get, "%s: the TLS handshake failed: %s", reason);
}

/* receive reads the plaintext there is and parses it. */
static void receive(ms_https_get *get) {
  char plain[16384];
  while (get->state == FETCH_RECEIVING) {
    int n = SSL_read(get->ssl, plain, sizeof(plain));
    if (n > 0) {
      parse(get, plain, (size_t)n);
      continue;
    }
    int ssl_error = SSL_get_error(get->ssl, n);
    if (ssl_error == SSL_ERROR_ZERO_RETURN) {
      parse(get, NULL, 0);
    } else if (ssl_error != SSL_ERROR_WANT_READ) {
      char reason[256] = "unknown error";
      ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
      ERR_clear_error();
      failf(get, "%s: reading the response failed: %s", reason);
    }
    return;
  }
}

static void handshake(ms_https_get *get) {
  int rc = SSL_do_handshake(get->ssl);
  if (rc != 1) {
    int ssl_error = SSL_get_error(get->ssl, rc);
    if (ssl_error == SSL_ERROR_WANT_READ) return;
    handshake_failed(get, ssl_error);
    return;
  }
  get->state = FETCH_RECEIVING;
  /* A memory BIO takes everything at once. */
  SSL_write(get->ssl, get->request, (int)get->request_len);
  receive(get);
}

/* pump advances the state machine after bytes arrived, then sends what TLS
 * produced. */
static void pump(ms_https_get *get) {
  if (get->state == FETCH_HANDSHAKING) handshake(get);
  if (get->state == FETCH_RECEIVING) receive(get);
  flush(get);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  static char buffer[65536]; /* one loop thread; consumed before the next read */
  *buf = uv_buf_init(buffer, sizeof(buffer));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  ms_https_get *get = stream->data;
  if (nread == 0 || get->state == FETCH_DONE) return;
  if (nread == UV_EOF && get->state == FETCH_RECEIVING) {
    parse(get, NULL, 0); /* closed without close_notify: the parser decides */
    return;
  }
  if (nread < 0) {
    if (get->state == FETCH_HANDSHAKING)
      handshake_failed(get, SSL_ERROR_SYSCALL);
    else
      failf(get, "%s: the connection failed: %s", uv_strerror((int)nread));
    return;
  }
  BIO_write(get->network_in, buf->base, (int)nread);
  pump(get);
}

/* ---- connecting ------------------------------------------------------------------ */

static void connect_next(ms_https_get *get);

static int start_tls(ms_https_get *get) {
  get->ssl = SSL_new(get->ssl_ctx);
  get->network_in = BIO_new(BIO_s_mem());
  get->network_out = BIO_new(BIO_s_mem());
  if (get->ssl == NULL || get->network_in == NULL || get->network_out == NULL) {
    BIO_free(get->network_in);
    BIO_free(get->network_out);
    return -1;
  }
  SSL_set_bio(get->ssl, get->network_in, get->network_out);
  SSL_set_connect_state(get->ssl);
  unsigned char addr[16];
  bool is_ip =
      inet_pton(AF_INET, get->host, addr) == 1 || inet_pton(AF_INET6, get->host, addr) == 1;
  if (!is_ip && !SSL_set_tlsext_host_name(get->ssl, get->host)) return -1;
  return ms_ssl_set_peer_check(get->ssl, &get->check);
}

/* on_failed_socket_closed: the socket of an address that refused is closed;
 * its handle can serve the next address. */
static void on_failed_socket_closed(uv_handle_t *handle) {
  ms_https_get *get = handle->data;
  get->open_handles--;
  if (get->state == FETCH_DONE)
    maybe_free(get);
  else
    connect_next(get);
}

static void connect_failed(ms_https_get *get, int error) {
  get->connect_error = error;
  get->tcp_open = false;
  uv_close((uv_handle_t *)&get->tcp, on_failed_socket_closed);
}

static void on_connected(uv_connect_t *req, int status) {
  ms_https_get *get = req->data;
  if (get->state == FETCH_DONE) return;
  if (status != 0) {
    connect_failed(get, status);
    return;
  }
  get->state = FETCH_HANDSHAKING;
  if (start_tls(get) != 0) {
    ERR_clear_error();
    failf(get, "%s: out of memory%s", "");
    return;
  }
  int rc = uv_read_start((uv_stream_t *)&get->tcp, on_alloc, on_read);
  if (rc != 0) {
    failf(get, "%s: the connection failed: %s", uv_strerror(rc));
    return;
  }
  pump(get);
}

/* connect_next dials the next address (each in turn until one answers). */
static void connect_next(ms_https_get *get) {
  struct addrinfo *address = get->next_address;
  if (address == NULL) {
    failf(get, "%s: cannot connect: %s",
          get->connect_error != 0 ? uv_strerror(get->connect_error) : "no address");
    return;
  }
  get->next_address = address->ai_next;
  uv_tcp_init(get->loop, &get->tcp);
  get->tcp.data = get;
  get->tcp_open = true;
  get->open_handles++;
  get->connect.data = get;
  int rc = uv_tcp_connect(&get->connect, &get->tcp, address->ai_addr, on_connected);
  if (rc != 0) connect_failed(get, rc);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *addresses) {
  ms_https_get *get = req->data;
  get->resolving = false;
  get->addresses = addresses;
  if (get->state == FETCH_DONE) {
    maybe_free(get);
    return;
  }
  if (status != 0) {
    failf(get, "%s: cannot resolve the host: %s", uv_strerror(status));
    return;
  }
  get->state = FETCH_CONNECTING;
  get->next_address = addresses;
  connect_next(get);
}

/* ---- starting --------------------------------------------------------------------- */

/* parse_url splits an https URL into the fetch's host, port and the
 * request's target. */
static int parse_url(ms_https_get *get, const char *url, char *target, size_t target_len, char *err,
                     size_t err_len) {
  struct http_parser_url parts;
  http_parser_url_init(&parts);
  size_t len = strlen(url);
  if (http_parser_parse_url(url, len, 0, &parts) != 0 || !(parts.field_set & (1 << UF_SCHEMA)) ||
      !(parts.field_set & (1 << UF_HOST))) {
    snprintf(err, err_len, "%s is not a URL like https://host:port/path", url);
    return -1;
  }
#define FIELD(f) (int)parts.field_data[f].len, url + parts.field_data[f].off
  if (parts.field_data[UF_SCHEMA].len != 5 ||
      strncasecmp(url + parts.field_data[UF_SCHEMA].off, "https", 5) != 0) {
    snprintf(err, err_len, "%s: only https:// URLs are fetched", url);
    return -1;
  }
  if (parts.field_set & (1 << UF_USERINFO)) {
    snprintf(err, err_len, "%s: a URL with user information is not supported", url);
    return -1;
  }
  if (parts.field_data[UF_HOST].len >= sizeof(get->host)) {
    snprintf(err, err_len, "%s: the host name is too long", url);
    return -1;
  }
  snprintf(get->host, sizeof(get->host), "%.*s", FIELD(UF_HOST));
  snprintf(get->port, sizeof(get->port), "%u",
           (parts.field_set & (1 << UF_PORT)) ? parts.port : 443u);
  bool v6 = strchr(get->host, ':') != NULL;
  snprintf(get->where, sizeof(get->where), "%s%s%s:%s", v6 ? "[" : "", get->host, v6 ? "]" : "",
           get->port);
  bool has_path = (parts.field_set & (1 << UF_PATH)) != 0;
  bool has_query = (parts.field_set & (1 << UF_QUERY)) != 0;
  int n =
      snprintf(target, target_len, "%.*s%s%.*s", has_path ? (int)parts.field_data[UF_PATH].len : 1,
               has_path ? url + parts.field_data[UF_PATH].off : "/", has_query ? "?" : "",
               has_query ? (int)parts.field_data[UF_QUERY].len : 0,
               has_query ? url + parts.field_data[UF_QUERY].off : "");
#undef FIELD
  if (n < 0 || (size_t)n >= target_len) {
    snprintf(err, err_len, "%s: the URL is too long", url);
    return -1;
  }
  return 0;
}

static int build_request(ms_https_get *get, const ms_https_get_request *request,
                         const char *target) {
  const char *authorization = request->authorization;
  const char *format =
      "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: %s\r\nUser-Agent: xds-server\r\n"
      "Connection: close\r\n%s%s%s\r\n";
  const char *accept = request->accept != NULL ? request->accept : "*/*";
  int len = snprintf(
      NULL, 0, format, target, get->where, accept, authorization != NULL ? "Authorization: " : "",
      authorization != NULL ? authorization : "", authorization != NULL ? "\r\n" : "");
  if (len < 0 || (get->request = malloc((size_t)len + 1)) == NULL) return -1;
  get->request_len = (size_t)len;
  snprintf(get->request, (size_t)len + 1, format, target, get->where, accept,
           authorization != NULL ? "Authorization: " : "",
           authorization != NULL ? authorization : "", authorization != NULL ? "\r\n" : "");
  return 0;
}

int ms_https_get_start(uv_loop_t *loop, const ms_https_get_request *request, ms_https_get_cb cb,
                       void *arg, ms_https_get **out_get, char *err, size_t err_len) {
  ms_https_get *get = calloc(1, sizeof(*get));
  char target[2048];
  if (get == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  if (parse_url(get, request->url, target, sizeof(target), err, err_len) != 0) {
    free(get);
    return -1;
  }
  if (request->authorization != NULL && strpbrk(request->authorization, "\r\n") != NULL) {
    snprintf(err, err_len, "the authorization header holds a line break");
    free(get);
    return -1;
  }
  if (build_request(get, request, target) != 0) {
    free(get);
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  get->loop = loop;
  get->cb = cb;
  get->arg = arg;
  get->check.host = get->host;
  get->max_body =
      request->max_body_bytes > 0 ? request->max_body_bytes : MS_HTTPS_GET_DEFAULT_MAX_BODY;
  get->timeout_ms = request->timeout_ms > 0 ? request->timeout_ms : MS_HTTPS_GET_DEFAULT_TIMEOUT_MS;
  SSL_CTX_up_ref(request->ssl_ctx);
  get->ssl_ctx = request->ssl_ctx;
  http_parser_init(&get->parser, HTTP_RESPONSE);
  get->parser.data = get;
  get->state = FETCH_RESOLVING;
  uv_timer_init(loop, &get->timer);
  get->timer.data = get;
  get->open_handles = 1;
  uv_timer_start(&get->timer, on_timeout, get->timeout_ms, 0);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  get->resolve.data = get;
  get->resolving = true;
  int rc = uv_getaddrinfo(loop, &get->resolve, on_resolved, get->host, get->port, &hints);
  if (rc != 0) {
    get->resolving = false;
    get->cancelled = true;
    stop(get);
    snprintf(err, err_len, "cannot resolve %s: %s", get->host, uv_strerror(rc));
    return -1;
  }
  *out_get = get;
  return 0;
}
