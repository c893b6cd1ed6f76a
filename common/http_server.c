/* http_server.c: the HTTP/1.1 server of http_server.h.
 *
 * One ms_http_server owns the listener; one connection object per client
 * embeds its socket and its request timer and is freed when both have
 * closed. A connection reads and parses until a request is whole, then
 * writes the response with reading stopped, then parses what arrived
 * meanwhile or reads again. Over HTTPS (http_server_tls.c) the bytes read
 * go through TLS first (connection_pump) and every write is TLS's output. */
#include "common/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/http_server_tls.h"
#include "common/log.h"

#define READ_BUFFER_BYTES 16384

/* ---- the reader --------------------------------------------------------------- */

static ms_http_reader *parser_reader(http_parser *parser) {
  return parser->data;
}

static int refuse(ms_http_reader *reader, int status) {
  reader->refusal_status = status;
  return -1;
}

static int count_head(ms_http_reader *reader, size_t len) {
  reader->head_bytes += len;
  return reader->head_bytes <= reader->limits.max_head_bytes ? 0 : refuse(reader, 431);
}

static int on_message_begin(http_parser *parser) {
  ms_http_reader *reader = parser_reader(parser);
  reader->request.url_len = 0;
  reader->request.host_len = reader->request.origin_len = SIZE_MAX;
  reader->request.content_type_len = SIZE_MAX;
  reader->request.body = NULL;
  reader->request.body_len = 0;
  reader->request.keep_alive = false;
  reader->head_bytes = reader->body_bytes = 0;
  reader->field_len = 0;
  reader->in_value = false;
  return 0;
}

static int on_url(http_parser *parser, const char *at, size_t len) {
  ms_http_reader *reader = parser_reader(parser);
  ms_http_request *request = &reader->request;
  if (len > sizeof(request->url) - request->url_len) return refuse(reader, 414);
  memcpy(request->url + request->url_len, at, len);
  request->url_len += len;
  return count_head(reader, len);
}

static int on_header_field(http_parser *parser, const char *at, size_t len) {
  ms_http_reader *reader = parser_reader(parser);
  if (reader->in_value) reader->field_len = 0; /* a new header */
  reader->in_value = false;
  size_t room = sizeof(reader->field) - reader->field_len;
  size_t kept = len < room ? len : room;
  memcpy(reader->field + reader->field_len, at, kept);
  reader->field_len += kept;
  return count_head(reader, len);
}

/* keep_value appends to one of the kept values; past MS_HTTP_MAX_NAME the
 * length says "too long" (one more than fits). */
static void keep_value(char *value, size_t *value_len, bool first, const char *at, size_t len) {
  if (first) *value_len = 0;
  if (*value_len > MS_HTTP_MAX_NAME) return;
  if (len > MS_HTTP_MAX_NAME - *value_len) {
    *value_len = MS_HTTP_MAX_NAME + 1;
    return;
  }
  memcpy(value + *value_len, at, len);
  *value_len += len;
}

static bool field_is(const ms_http_reader *reader, const char *name) {
  return reader->field_len == strlen(name) &&
         strncasecmp(reader->field, name, reader->field_len) == 0;
}

static int on_header_value(http_parser *parser, const char *at, size_t len) {
  ms_http_reader *reader = parser_reader(parser);
  ms_http_request *request = &reader->request;
  bool first = !reader->in_value;
  reader->in_value = true;
  if (field_is(reader, "host")) {
    /* A second Host is a request to refuse (RFC 9112 3.2). */
    if (first && request->host_len != SIZE_MAX) return refuse(reader, 400);
    keep_value(request->host, &request->host_len, first, at, len);
  } else if (field_is(reader, "origin")) {
    keep_value(request->origin, &request->origin_len, first, at, len);
  } else if (field_is(reader, "content-type")) {
    keep_value(request->content_type, &request->content_type_len, first, at, len);
  }
  return count_head(reader, len);
}

static int on_headers_complete(http_parser *parser) {
  ms_http_reader *reader = parser_reader(parser);
  if ((parser->flags & F_CONTENTLENGTH) && parser->content_length > reader->limits.max_body_bytes)
    return refuse(reader, 413);
  return 0;
}

/* keep_body appends to the kept body, growing it (by doubling, up to the
 * cap, which the caller checked). */
static int keep_body(ms_http_reader *reader, const char *at, size_t len) {
  size_t used = reader->request.body_len;
  if (used + len > reader->body_capacity) {
    size_t capacity = reader->body_capacity > 0 ? reader->body_capacity : 4096;
    while (capacity < used + len)
      capacity *= 2;
    if (capacity > reader->limits.max_body_bytes) capacity = reader->limits.max_body_bytes;
    char *grown = realloc(reader->body, capacity);
    if (grown == NULL) return refuse(reader, 503);
    reader->body = grown;
    reader->body_capacity = capacity;
  }
  memcpy(reader->body + used, at, len);
  reader->request.body_len = used + len;
  reader->request.body = reader->body;
  return 0;
}

static int on_body(http_parser *parser, const char *at, size_t len) {
  ms_http_reader *reader = parser_reader(parser);
  reader->body_bytes += len;
  if (reader->body_bytes > reader->limits.max_body_bytes) return refuse(reader, 413);
  return reader->keep_body ? keep_body(reader, at, len) : 0;
}

static int on_message_complete(http_parser *parser) {
  ms_http_reader *reader = parser_reader(parser);
  reader->request.method = (enum http_method)parser->method;
  reader->request.keep_alive = http_should_keep_alive(parser) && !parser->upgrade;
  reader->complete = true;
  http_parser_pause(parser, 1); /* one request at a time */
  return 0;
}

static const http_parser_settings reader_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static size_t or_default(size_t value, size_t fallback) {
  return value != 0 ? value : fallback;
}

/* with_defaults returns `limits` (NULL: none given) with each zero field
 * at its default. */
static ms_http_server_limits with_defaults(const ms_http_server_limits *limits) {
  ms_http_server_limits given = limits != NULL ? *limits : (ms_http_server_limits){0};
  return (ms_http_server_limits){
      .max_connections = or_default(given.max_connections, 64),
      .request_timeout_ms = or_default(given.request_timeout_ms, 10000),
      .idle_timeout_ms =
          or_default(given.idle_timeout_ms, or_default(given.request_timeout_ms, 10000)),
      .max_head_bytes = or_default(given.max_head_bytes, 8192),
      .max_body_bytes = or_default(given.max_body_bytes, MS_HTTP_DEFAULT_MAX_BODY_BYTES),
  };
}

void ms_http_reader_init(ms_http_reader *reader, const ms_http_server_limits *limits) {
  memset(reader, 0, sizeof(*reader));
  reader->limits = with_defaults(limits);
  http_parser_init(&reader->parser, HTTP_REQUEST);
  reader->parser.data = reader;
  reader->request.host_len = reader->request.origin_len = SIZE_MAX;
  reader->request.content_type_len = SIZE_MAX;
}

void ms_http_reader_cleanup(ms_http_reader *reader) {
  free(reader->body);
  reader->body = NULL;
  reader->body_capacity = 0;
  reader->request.body = NULL;
  reader->request.body_len = 0;
}

ms_http_read_state ms_http_reader_feed(ms_http_reader *reader, const char *data, size_t len,
                                       size_t *consumed) {
  *consumed = 0;
  if (reader->refusal_status != 0) return MS_HTTP_READ_REFUSED;
  if (reader->complete) return MS_HTTP_READ_COMPLETE;
  if (len == 0) return MS_HTTP_READ_MORE; /* http_parser would take 0 bytes as the end */
  size_t parsed = http_parser_execute(&reader->parser, &reader_settings, data, len);
  *consumed = parsed;
  if (reader->complete) return MS_HTTP_READ_COMPLETE;
  if (HTTP_PARSER_ERRNO(&reader->parser) != HPE_OK || parsed != len) {
    if (reader->refusal_status == 0) reader->refusal_status = 400;
    return MS_HTTP_READ_REFUSED;
  }
  return MS_HTTP_READ_MORE;
}

void ms_http_reader_next(ms_http_reader *reader) {
  /* A big body's memory is not kept for an idle connection. */
  if (reader->body_capacity > MS_HTTP_DEFAULT_MAX_BODY_BYTES) ms_http_reader_cleanup(reader);
  reader->complete = false;
  http_parser_pause(&reader->parser, 0);
}

/* ---- the server ----------------------------------------------------------------- */

int ms_http_response_copy(ms_http_response *out, int status, const char *content_type,
                          const char *body) {
  size_t len = strlen(body);
  char *copy = malloc(len + 1);
  if (copy == NULL) return -ENOMEM;
  memcpy(copy, body, len + 1);
  out->status = status;
  out->content_type = content_type;
  out->body = copy;
  out->body_len = len;
  return 0;
}

typedef struct connection connection;

struct ms_http_server {
  uv_tcp_t listener;
  uv_loop_t *loop;
  ms_http_server_limits limits;
  ms_http_server_handler handler;
  SSL_CTX *ssl_ctx;        /* new connections speak TLS with it; NULL: plaintext */
  ms_log_limit evict_log;  /* connections closed to make room: a line a second */
  ms_log_limit tls_log;    /* failed handshakes: a line a second */
  bool closing;            /* ms_http_server_close was called */
  bool listener_closed;    /* the listener's close callback ran */
  size_t connection_count; /* connections whose memory is not freed yet */
  connection *connections; /* newest first */
};

/* A connection's life: it reads and parses until a request is complete,
 * writes the response with reading stopped, then reads again or closes. */
typedef enum connection_state {
  CONNECTION_READING,
  CONNECTION_RESPONDING,
  CONNECTION_CLOSING, /* uv_close called; freed when both handles closed */
} connection_state;

struct connection {
  uv_tcp_t tcp;
  uv_timer_t request_timer; /* the whole request must come within request_timeout_ms */
  int open_handles;
  ms_http_server *server;
  connection *next, *prev;
  connection_state state;
  ms_http_reader reader;
  http_tls *tls;                  /* NULL: plaintext */
  char *tls_out;                  /* the response's ciphertext being written */
  char buffer[READ_BUFFER_BYTES]; /* bytes read (over TLS: decrypted); [start, start+len) not
                                     parsed yet */
  size_t start, len;
  uv_write_t write_req; /* the response being written */
  char head[512];
  ms_http_response response;
  bool keep_alive; /* read the next request once the response is written */
  bool idle;       /* between two requests: the timer runs idle_timeout_ms */
};

static void connection_parse(connection *conn);
static void connection_pump(connection *conn);
static void on_alloc(uv_handle_t *handle, size_t suggested_size, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void count(ms_http_server *server, ms_http_server_event event) {
  if (server->handler.count != NULL) server->handler.count(server->handler.arg, event);
}

static void server_maybe_free(ms_http_server *server) {
  if (!server->closing || !server->listener_closed || server->connection_count > 0) return;
  SSL_CTX_free(server->ssl_ctx);
  free(server);
}

static void on_connection_handle_closed(uv_handle_t *handle) {
  connection *conn = handle->data;
  if (--conn->open_handles > 0) return;
  ms_http_server *server = conn->server;
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    server->connections = conn->next;
  if (conn->next) conn->next->prev = conn->prev;
  server->connection_count--;
  free(conn->response.body);
  free(conn->tls_out);
  http_tls_free(conn->tls);
  ms_http_reader_cleanup(&conn->reader);
  free(conn);
  server_maybe_free(server);
}

/* connection_close closes both handles; the memory goes in the last close
 * callback. A pending write completes first with UV_ECANCELED. Safe to call
 * twice. */
static void connection_close(connection *conn) {
  if (conn->state == CONNECTION_CLOSING) return;
  conn->state = CONNECTION_CLOSING;
  uv_close((uv_handle_t *)&conn->tcp, on_connection_handle_closed);
  uv_close((uv_handle_t *)&conn->request_timer, on_connection_handle_closed);
}

static void on_request_timeout(uv_timer_t *timer) {
  connection *conn = timer->data;
  count(conn->server, conn->idle ? MS_HTTP_EVENT_IDLE : MS_HTTP_EVENT_TIMEOUT);
  connection_close(conn);
}

/* restart_request_timer gives the next request request_timeout_ms to arrive
 * whole: it runs from the accept or the request's first byte, not from the
 * last byte, so that a byte now and then does not keep a slot. */
static void restart_request_timer(connection *conn) {
  conn->idle = false;
  uv_timer_start(&conn->request_timer, on_request_timeout, conn->server->limits.request_timeout_ms,
                 0);
}

/* start_idle_timer lets a keep-alive connection wait idle_timeout_ms for
 * its next request. */
static void start_idle_timer(connection *conn) {
  conn->idle = true;
  uv_timer_start(&conn->request_timer, on_request_timeout, conn->server->limits.idle_timeout_ms, 0);
}

/* request_started: bytes of a request came; an idle connection's request
 * now has request_timeout_ms. */
static void request_started(connection *conn) {
  if (conn->idle) restart_request_timer(conn);
}

static void on_write(uv_write_t *req, int status) {
  connection *conn = req->data;
  void (*after)(void *) = conn->response.after;
  void *after_arg = conn->response.after_arg;
  free(conn->response.body);
  memset(&conn->response, 0, sizeof(conn->response));
  free(conn->tls_out);
  conn->tls_out = NULL;

  if (status < 0 || !conn->keep_alive || conn->state == CONNECTION_CLOSING) {
    connection_close(conn);
  } else {
    conn->state = CONNECTION_READING;
    if (conn->len > 0) /* the next request came with the last one */
      restart_request_timer(conn);
    else
      start_idle_timer(conn);
    ms_http_reader_next(&conn->reader);
    connection_pump(conn); /* requests that arrived with the last one */
    if (conn->state == CONNECTION_READING &&
        uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) != 0)
      connection_close(conn);
  }
  /* Last: the owner may close the server, this connection included. */
  if (after != NULL) after(after_arg);
}

/* connection_send writes conn->response and stops reading until it is
 * written. */
static void connection_send(connection *conn) {
  const ms_http_response *response = &conn->response;
  char allow_header[64] = "";
  if (response->allow)
    snprintf(allow_header, sizeof(allow_header), "Allow: %s\r\n", response->allow);
  int head_len = snprintf(conn->head, sizeof(conn->head),
                          "HTTP/1.1 %d %s\r\n"
                          "Content-Type: %s\r\n"
                          "Content-Length: %zu\r\n"
                          "Cache-Control: no-cache, max-age=0\r\n"
                          "X-Content-Type-Options: nosniff\r\n"
                          "%s"
                          "Connection: %s\r\n"
                          "\r\n",
                          response->status, http_status_str((enum http_status)response->status),
                          response->content_type, response->body_len, allow_header,
                          conn->keep_alive ? "keep-alive" : "close");
  uv_buf_t bufs[2] = {uv_buf_init(conn->head, (unsigned int)head_len),
                      uv_buf_init(response->body, (unsigned int)response->body_len)};
  unsigned int nbufs = response->head_only || response->body_len == 0 ? 1 : 2;

  uv_read_stop((uv_stream_t *)&conn->tcp);
  conn->state = CONNECTION_RESPONDING;
  conn->write_req.data = conn;
  int rc = 0;
  if (conn->tls != NULL) { /* one write of the records of the head and body */
    size_t cipher_len = 0;
    for (unsigned int i = 0; i < nbufs && rc == 0; i++)
      rc = http_tls_write(conn->tls, bufs[i].base, bufs[i].len);
    if (rc == 0) rc = http_tls_take_output(conn->tls, &conn->tls_out, &cipher_len) == 0 ? 0 : -1;
    bufs[0] = uv_buf_init(conn->tls_out, (unsigned int)cipher_len);
    nbufs = 1;
  }
  if (rc != 0 ||
      uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, bufs, nbufs, on_write) != 0) {
    void (*after)(void *) = conn->response.after;
    conn->response.after = NULL;
    connection_close(conn);
    if (after != NULL) after(conn->response.after_arg); /* the memory goes in a callback */
  }
}

/* connection_refuse answers a request the reader refused and closes the
 * connection after the response. */
static void connection_refuse(connection *conn, int status) {
  ms_http_server *server = conn->server;
  count(server, MS_HTTP_EVENT_REFUSED);
  conn->keep_alive = false;
  memset(&conn->response, 0, sizeof(conn->response));
  if (server->handler.refuse(server->handler.arg, status, &conn->response) != 0) {
    connection_close(conn);
    return;
  }
  connection_send(conn);
}

/* connection_respond answers the request the reader just completed. */
static void connection_respond(connection *conn) {
  ms_http_server *server = conn->server;
  memset(&conn->response, 0, sizeof(conn->response));
  if (server->handler.respond(server->handler.arg, &conn->reader.request, uv_now(server->loop),
                              &conn->response) != 0) {
    connection_close(conn); /* out of memory */
    return;
  }
  conn->keep_alive = conn->reader.request.keep_alive && !conn->response.close && !server->closing;
  connection_send(conn);
}

/* connection_parse feeds the unparsed bytes to the reader until they run
 * out or a request is complete (its answer is written before the rest is
 * parsed). */
static void connection_parse(connection *conn) {
  while (conn->state == CONNECTION_READING && conn->len > 0) {
    size_t consumed = 0;
    ms_http_read_state state =
        ms_http_reader_feed(&conn->reader, conn->buffer + conn->start, conn->len, &consumed);
    conn->start += consumed;
    conn->len -= consumed;
    if (state == MS_HTTP_READ_COMPLETE) {
      connection_respond(conn);
      break;
    }
    if (state == MS_HTTP_READ_REFUSED) {
      connection_refuse(conn, conn->reader.refusal_status);
      return;
    }
  }
  if (conn->len == 0) conn->start = 0;
}

/* ---- TLS (http_server_tls.c) -------------------------------------------------- */

/* A write of what TLS produced outside a response (handshake messages);
 * freed when written. */
typedef struct tls_write {
  uv_write_t req;
  connection *conn;
  char *data;
} tls_write;

static void on_tls_written(uv_write_t *req, int status) {
  tls_write *write = (tls_write *)req;
  if (status < 0) connection_close(write->conn); /* runs before the close callbacks */
  free(write->data);
  free(write);
}

/* tls_send_output writes what TLS has to send, if anything. */
static void tls_send_output(connection *conn) {
  char *data = NULL;
  size_t len = 0;
  tls_write *write = NULL;
  if (http_tls_take_output(conn->tls, &data, &len) != 0 ||
      (data != NULL && (write = malloc(sizeof(*write))) == NULL)) {
    free(data);
    connection_close(conn);
    return;
  }
  if (data == NULL) return;
  write->conn = conn;
  write->data = data;
  uv_buf_t buf = uv_buf_init(data, (unsigned int)len);
  if (uv_write(&write->req, (uv_stream_t *)&conn->tcp, &buf, 1, on_tls_written) != 0) {
    free(data);
    free(write);
    connection_close(conn);
  }
}

/* tls_failed closes a connection whose TLS failed, with a line a second. */
static void tls_failed(connection *conn, const char *why) {
  ms_http_server *server = conn->server;
  bool established = http_tls_established(conn->tls);
  count(server, MS_HTTP_EVENT_TLS_FAILED);
  uint64_t times = ms_log_limit_tick(&server->tls_log, uv_now(server->loop), 1000);
  if (times > 0)
    ms_log(MS_LOG_WARN,
           "%s: a TLS %s failed (%s); that connection is closed (%llu time%s since "
           "the last line)",
           server->handler.name, established ? "connection" : "handshake", why,
           (unsigned long long)times, ms_plural(times));
  connection_close(conn);
}

/* connection_pump parses what is buffered; over TLS, it first decrypts
 * what TLS holds, as much as the buffer takes, until a request is whole
 * or TLS needs more from the socket, and sends what TLS has to send. */
static void connection_pump(connection *conn) {
  if (conn->tls == NULL) {
    connection_parse(conn);
    return;
  }
  while (conn->state == CONNECTION_READING) {
    if (conn->len == 0) conn->start = 0;
    size_t used = conn->start + conn->len;
    char why[128];
    ssize_t n = http_tls_read(conn->tls, conn->buffer + used, sizeof(conn->buffer) - used, why,
                              sizeof(why));
    if (n == HTTP_TLS_FAILED) {
      tls_send_output(conn); /* the alert, if any */
      tls_failed(conn, why);
      return;
    }
    if (n == HTTP_TLS_CLOSED) {
      connection_close(conn);
      return;
    }
    if (n == 0) break;
    request_started(conn);
    conn->len += (size_t)n;
    connection_parse(conn);
  }
  if (conn->state == CONNECTION_READING) tls_send_output(conn);
}

void ms_http_server_set_ssl_ctx(ms_http_server *server, SSL_CTX *ctx) {
  SSL_CTX_up_ref(ctx);
  http_tls_install_alpn(ctx);
  SSL_CTX_free(server->ssl_ctx); /* each open connection's SSL holds its own */
  server->ssl_ctx = ctx;
}

/* ---- reading ------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *handle, size_t suggested_size, uv_buf_t *buf) {
  connection *conn = handle->data;
  (void)suggested_size;
  if (conn->tls != NULL) {
    size_t len = 0;
    char *cipher = http_tls_read_buffer(conn->tls, &len);
    *buf = uv_buf_init(cipher, (unsigned int)len);
    return;
  }
  size_t used = conn->start + conn->len;
  *buf = uv_buf_init(conn->buffer + used, (unsigned int)(sizeof(conn->buffer) - used));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  connection *conn = stream->data;
  if (nread == 0) return;
  if (nread < 0) { /* UV_EOF, a reset, or UV_ENOBUFS */
    connection_close(conn);
    return;
  }
  if (conn->tls != NULL) {
    if (http_tls_receive(conn->tls, buf->base, (size_t)nread) != 0) {
      connection_close(conn); /* out of memory */
      return;
    }
    connection_pump(conn);
    return;
  }
  request_started(conn);
  conn->len += (size_t)nread;
  connection_parse(conn);
}

/* make_room closes the oldest connection still waiting for (the rest of) a
 * request when max_connections are open besides `newest`: slow or idle
 * clients cannot keep a probe from being answered. Returns false when every
 * other connection is answering (then `newest` is the one to go). */
static bool make_room(ms_http_server *server, connection *newest) {
  size_t open = 0;
  connection *oldest_reading = NULL;
  for (connection *c = server->connections; c; c = c->next) {
    if (c == newest || c->state == CONNECTION_CLOSING) continue;
    open++;
    if (c->state == CONNECTION_READING) oldest_reading = c; /* the list is newest first */
  }
  if (open < server->limits.max_connections) return true;
  count(server, MS_HTTP_EVENT_EVICTED); /* the oldest waiting, else `newest` */
  if (oldest_reading == NULL) return false;
  connection_close(oldest_reading);
  uint64_t times = ms_log_limit_tick(&server->evict_log, uv_now(server->loop), 1000);
  if (times > 0)
    ms_log(MS_LOG_WARN,
           "%s: %zu connections open; closed the oldest one waiting for a request to take a "
           "new one (%llu time%s since the last line)",
           server->handler.name, server->limits.max_connections, (unsigned long long)times,
           ms_plural(times));
  return true;
}

static void on_connection(uv_stream_t *listener, int status) {
  ms_http_server *server = listener->data;
  if (status < 0 || server->closing) return;
  connection *conn = calloc(1, sizeof(*conn));
  if (!conn) return;
  if (uv_tcp_init(server->loop, &conn->tcp) != 0) {
    free(conn);
    return;
  }
  uv_timer_init(server->loop, &conn->request_timer); /* cannot fail */
  conn->tcp.data = conn;
  conn->request_timer.data = conn;
  conn->open_handles = 2;
  conn->server = server;
  conn->next = server->connections;
  if (conn->next) conn->next->prev = conn;
  server->connections = conn;
  server->connection_count++;
  ms_http_reader_init(&conn->reader, &server->limits);
  conn->reader.keep_body = server->handler.keep_body;
  if (server->ssl_ctx != NULL) conn->tls = http_tls_new(server->ssl_ctx);

  if ((server->ssl_ctx != NULL && conn->tls == NULL) ||
      uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0 || !make_room(server, conn) ||
      uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) != 0) {
    connection_close(conn);
    return;
  }
  restart_request_timer(conn);
}

static void on_listener_closed(uv_handle_t *handle) {
  ms_http_server *server = handle->data;
  server->listener_closed = true;
  server_maybe_free(server);
}

int ms_http_server_start(uv_loop_t *loop, const struct sockaddr *address,
                         const ms_http_server_limits *limits, const ms_http_server_handler *handler,
                         ms_http_server **out) {
  ms_http_server *server = calloc(1, sizeof(*server));
  if (!server) return UV_ENOMEM;
  server->loop = loop;
  server->handler = *handler;
  if (server->handler.name == NULL) server->handler.name = "http";
  server->limits = with_defaults(limits);
  int rc = uv_tcp_init(loop, &server->listener);
  if (rc != 0) {
    free(server);
    return rc;
  }
  server->listener.data = server;
  rc = uv_tcp_bind(&server->listener, address, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&server->listener, 128, on_connection);
  if (rc != 0) {
    ms_http_server_close(server); /* freed in the close callback */
    return rc;
  }
  *out = server;
  return 0;
}

uint16_t ms_http_server_port(const ms_http_server *server) {
  struct sockaddr_storage bound;
  int len = sizeof(bound);
  if (uv_tcp_getsockname(&server->listener, (struct sockaddr *)&bound, &len) != 0) return 0;
  return ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                           : ((struct sockaddr_in *)&bound)->sin_port);
}

void ms_http_server_close(ms_http_server *server) {
  if (!server || server->closing) return;
  server->closing = true;
  uv_close((uv_handle_t *)&server->listener, on_listener_closed);
  for (connection *conn = server->connections; conn; conn = conn->next)
    connection_close(conn);
}
