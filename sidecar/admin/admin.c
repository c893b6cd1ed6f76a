/* admin.c: the admin endpoint's HTTP/1.1 server on the main loop.
 *
 * One ms_admin owns the listener; one connection object per client embeds
 * its socket and its idle timer and is freed when both have closed. Requests
 * are parsed by http_parser and answered one at a time: when a request is
 * complete the parser is paused and reading stops until its response is
 * written, then any pipelined bytes already read are parsed. What to answer
 * is decided in admin_route.c and admin_json.c.
 *
 * Against a browser on the same machine: a request whose Host is not a
 * loopback name or the admin address (DNS rebinding: a page of
 * evil.example whose name now resolves to 127.0.0.1) is answered 421 and
 * nothing else; a request other than GET or HEAD whose Origin is not local
 * (a cross-site form or fetch) is answered 403. Against slow clients: each
 * request must arrive whole within REQUEST_TIMEOUT_MS of the previous
 * response (or of the accept), whatever trickles in meanwhile; and when
 * every slot is taken, a new connection evicts the oldest one still
 * waiting for its request, so that /ready keeps answering. Each of these
 * counts in the main thread's counters (ms_server_main_stats: the admin
 * endpoint runs on the main thread): admin_cx_evicted, admin_cx_timeout,
 * admin_rq_refused. */
#include <errno.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/admin/admin.h"
#include "sidecar/admin/admin_json.h"
#include "common/log.h"

#define MAX_CONNECTIONS 64       /* more evict the oldest connection still reading */
#define REQUEST_TIMEOUT_MS 10000 /* for a whole request, from the end of the last response */
#define MAX_NAME_BYTES 256       /* a Host or Origin value kept for the check */
#define READ_BUFFER_BYTES 16384

typedef struct admin_connection admin_connection;

struct ms_admin {
  uv_tcp_t listener;
  uv_loop_t *loop;
  ms_server *server;
  char own_host[80];       /* the admin address's host, IPv6 in brackets */
  ms_log_limit evict_log;  /* connections closed to make room: a line a second */
  bool closing;            /* ms_admin_close was called */
  bool listener_closed;    /* the listener's close callback ran */
  size_t connection_count; /* connections whose memory is not freed yet */
  admin_connection *connections;
};

/* A connection's life: it reads and parses until a request is complete,
 * writes the response with reading stopped, then reads again or closes. */
typedef enum connection_state {
  CONNECTION_READING,
  CONNECTION_RESPONDING,
  CONNECTION_CLOSING, /* uv_close called; freed when both handles closed */
} connection_state;

struct admin_connection {
  uv_tcp_t tcp;
  uv_timer_t request_timer; /* the whole request must come within REQUEST_TIMEOUT_MS */
  int open_handles;
  ms_admin *admin;
  admin_connection *next;
  admin_connection *prev;
  connection_state state;

  http_parser parser;
  ms_admin_request request; /* its caps; refusal_status 400 too for a second Host */
  /* The header being read, and the two values the checks need (each with
   * its length; longer than MAX_NAME_BYTES: too long, never allowed). */
  char field[16];
  size_t field_len;
  bool in_value; /* the last callback was a value: the next field is new */
  char host[MAX_NAME_BYTES], origin[MAX_NAME_BYTES];
  size_t host_len, origin_len; /* SIZE_MAX: absent */

  char buffer[READ_BUFFER_BYTES]; /* bytes read; [start, start+len) not parsed yet */
  size_t start;
  size_t len;

  uv_write_t write_req; /* the response being written */
  char head[512];
  ms_admin_response response;
  bool keep_alive; /* read the next request once the response is written */
};

static void connection_parse(admin_connection *conn);

/* ---- lifetime ------------------------------------------------------------- */

static void admin_maybe_free(ms_admin *admin) {
  if (admin->closing && admin->listener_closed && admin->connection_count == 0) free(admin);
}

static void on_connection_handle_closed(uv_handle_t *handle) {
  admin_connection *conn = handle->data;
  if (--conn->open_handles > 0) return;
  ms_admin *admin = conn->admin;
  if (conn->prev) {
    conn->prev->next = conn->next;
  } else {
    admin->connections = conn->next;
  }
  if (conn->next) conn->next->prev = conn->prev;
  admin->connection_count--;
  ms_admin_response_cleanup(&conn->response);
  free(conn);
  admin_maybe_free(admin);
}

/* connection_close closes both handles; the memory goes in the last close
 * callback. A pending write completes first with UV_ECANCELED. Safe to call
 * twice. */
static void connection_close(admin_connection *conn) {
  if (conn->state == CONNECTION_CLOSING) return;
  conn->state = CONNECTION_CLOSING;
  uv_close((uv_handle_t *)&conn->tcp, on_connection_handle_closed);
  uv_close((uv_handle_t *)&conn->request_timer, on_connection_handle_closed);
}

/* admin_stats returns the counters the endpoint counts its caps in: the
 * main thread's, whose loop it runs on. */
static ms_stats *admin_stats(const ms_admin *admin) {
  return ms_server_main_stats(admin->server);
}

static void on_request_timeout(uv_timer_t *timer) {
  admin_connection *conn = timer->data;
  MS_STAT_ADD(admin_stats(conn->admin), admin_cx_timeout, 1);
  connection_close(conn);
}

/* restart_request_timer gives the next request REQUEST_TIMEOUT_MS to arrive
 * whole: it runs from the accept or the end of a response, not from the last
 * byte, so that a byte now and then does not keep a slot. */
static void restart_request_timer(admin_connection *conn) {
  uv_timer_start(&conn->request_timer, on_request_timeout, REQUEST_TIMEOUT_MS, 0);
}

/* ---- writing a response --------------------------------------------------- */

static void on_alloc(uv_handle_t *handle, size_t suggested_size, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status) {
  admin_connection *conn = req->data;
  ms_server *server = conn->admin->server;
  bool shutdown = conn->response.shutdown;
  uint32_t drain_ms = conn->response.drain_ms;
  ms_admin_response_cleanup(&conn->response);
  memset(&conn->response, 0, sizeof(conn->response));

  if (status < 0 || !conn->keep_alive || conn->state == CONNECTION_CLOSING) {
    connection_close(conn);
  } else {
    conn->state = CONNECTION_READING;
    restart_request_timer(conn);
    http_parser_pause(&conn->parser, 0);
    connection_parse(conn); /* requests that arrived with the last one */
    if (conn->state == CONNECTION_READING &&
        uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) != 0) {
      connection_close(conn);
    }
  }
  /* Last: the server may close the admin endpoint, this connection included. */
  if (shutdown) ms_server_shutdown(server, drain_ms);
}

/* connection_send writes conn->response (its body left out for HEAD) and
 * stops reading until it is written. `allow` is the Allow header of a 405,
 * or NULL. */
static void connection_send(admin_connection *conn, bool head_only, const char *allow) {
  const ms_admin_response *response = &conn->response;
  char allow_header[64] = "";
  if (allow) snprintf(allow_header, sizeof(allow_header), "Allow: %s\r\n", allow);
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
  unsigned int nbufs = head_only || response->body_len == 0 ? 1 : 2;

  uv_read_stop((uv_stream_t *)&conn->tcp);
  conn->state = CONNECTION_RESPONDING;
  conn->write_req.data = conn;
  if (uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, bufs, nbufs, on_write) != 0) {
    connection_close(conn);
  }
}

/* connection_refuse answers a request that could not be parsed, or that was
 * too large, and closes the connection after the response. */
static void connection_refuse(admin_connection *conn, int status) {
  MS_STAT_ADD(admin_stats(conn->admin), admin_rq_refused, 1);
  conn->keep_alive = false;
  if (ms_admin_respond_error(status, ms_admin_status_message(status), NULL, &conn->response) != 0) {
    connection_close(conn);
    return;
  }
  connection_send(conn, false, NULL);
}

/* host_allowed: `name` (`len` bytes) is a loopback name or the admin
 * address's host, with or without ":port". */
static bool host_allowed(const ms_admin *admin, const char *name, size_t len) {
  size_t host_len = 0;
  if (len > 0 && name[0] == '[') {
    const char *close = memchr(name, ']', len);
    if (close == NULL) return false;
    host_len = (size_t)(close - name) + 1;
  } else {
    while (host_len < len && name[host_len] != ':')
      host_len++;
  }
  if (host_len < len) { /* ":port" */
    if (name[host_len] != ':' || host_len + 1 == len || len - host_len > 6) return false;
    for (size_t i = host_len + 1; i < len; i++)
      if (name[i] < '0' || name[i] > '9') return false;
  }
  const char *allowed[] = {"localhost", "127.0.0.1", "[::1]", admin->own_host};
  for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
    if (host_len > 0 && strlen(allowed[i]) == host_len &&
        strncasecmp(allowed[i], name, host_len) == 0)
      return true;
  return false;
}

/* origin_allowed: an Origin ("http://host:port") naming an allowed host. */
static bool origin_allowed(const ms_admin *admin, const char *origin, size_t len) {
  static const char *const schemes[] = {"http://", "https://"};
  for (size_t i = 0; i < 2; i++) {
    size_t n = strlen(schemes[i]);
    if (len > n && strncasecmp(origin, schemes[i], n) == 0)
      return host_allowed(admin, origin + n, len - n);
  }
  return false; /* "null", another scheme, or too long */
}

/* request_refusal returns the status refusing the request just parsed for
 * where it comes from (421: a foreign Host; 403: a foreign page that would
 * change something), or 0. A request without Host (HTTP/1.0 tools) is not a
 * browser's and passes. */
static int request_refusal(const admin_connection *conn) {
  if (conn->host_len != SIZE_MAX && !host_allowed(conn->admin, conn->host, conn->host_len))
    return 421;
  enum http_method method = (enum http_method)conn->parser.method;
  if (method != HTTP_GET && method != HTTP_HEAD && conn->origin_len != SIZE_MAX &&
      !origin_allowed(conn->admin, conn->origin, conn->origin_len))
    return 403;
  return 0;
}

/* connection_respond answers the request the parser just completed. */
static void connection_respond(admin_connection *conn) {
  ms_admin *admin = conn->admin;
  int refusal = request_refusal(conn);
  if (refusal != 0) {
    connection_refuse(conn, refusal);
    return;
  }
  ms_admin_target target;
  if (ms_admin_route_match((enum http_method)conn->parser.method, conn->request.url,
                           conn->request.url_len, &target) != 0) {
    connection_refuse(conn, 400);
    return;
  }
  if (ms_admin_respond(admin->server, &target, uv_now(admin->loop), &conn->response) != 0) {
    connection_close(conn); /* out of memory */
    return;
  }
  /* A route's own refusal: a /stats filter or format it cannot take. */
  if (conn->response.status == 400) MS_STAT_ADD(admin_stats(admin), admin_rq_refused, 1);
  conn->keep_alive = http_should_keep_alive(&conn->parser) && !conn->parser.upgrade &&
                     !conn->response.shutdown && !admin->closing;
  connection_send(conn, target.head, target.method_allowed ? NULL : target.allow);
}

/* ---- parsing -------------------------------------------------------------- */

static admin_connection *parser_connection(http_parser *parser) {
  return parser->data;
}

static int on_message_begin(http_parser *parser) {
  admin_connection *conn = parser_connection(parser);
  ms_admin_request_reset(&conn->request);
  conn->field_len = 0;
  conn->in_value = false;
  conn->host_len = conn->origin_len = SIZE_MAX;
  return 0;
}

static int on_url(http_parser *parser, const char *at, size_t len) {
  return ms_admin_request_add_url(&parser_connection(parser)->request, at, len);
}

static int on_header_field(http_parser *parser, const char *at, size_t len) {
  admin_connection *conn = parser_connection(parser);
  if (conn->in_value) conn->field_len = 0; /* a new header */
  conn->in_value = false;
  size_t room = sizeof(conn->field) - conn->field_len;
  memcpy(conn->field + conn->field_len, at, len < room ? len : room);
  conn->field_len += len < room ? len : room;
  return ms_admin_request_count_head(&conn->request, len);
}

/* keep_value appends to one of the kept values; past MAX_NAME_BYTES the
 * length says "too long" (one more than fits), which no check allows. */
static void keep_value(char *value, size_t *value_len, bool first, const char *at, size_t len) {
  if (first) *value_len = 0;
  if (*value_len > MAX_NAME_BYTES) return;
  if (len > MAX_NAME_BYTES - *value_len) {
    *value_len = MAX_NAME_BYTES + 1;
    return;
  }
  memcpy(value + *value_len, at, len);
  *value_len += len;
}

static bool field_is(const admin_connection *conn, const char *name) {
  return conn->field_len == strlen(name) && strncasecmp(conn->field, name, conn->field_len) == 0;
}

static int on_header_value(http_parser *parser, const char *at, size_t len) {
  admin_connection *conn = parser_connection(parser);
  bool first = !conn->in_value;
  conn->in_value = true;
  if (field_is(conn, "host")) {
    /* A second Host is a request to refuse (RFC 9112 3.2). */
    if (first && conn->host_len != SIZE_MAX) conn->request.refusal_status = 400;
    keep_value(conn->host, &conn->host_len, first, at, len);
  } else if (field_is(conn, "origin")) {
    keep_value(conn->origin, &conn->origin_len, first, at, len);
  }
  if (conn->request.refusal_status) return -EINVAL;
  return ms_admin_request_count_head(&conn->request, len);
}

static int on_headers_complete(http_parser *parser) {
  return ms_admin_request_check_length(&parser_connection(parser)->request, parser);
}

static int on_body(http_parser *parser, const char *at, size_t len) {
  return ms_admin_request_count_body(&parser_connection(parser)->request, len);
}

static int on_message_complete(http_parser *parser) {
  http_parser_pause(parser, 1); /* one request at a time */
  connection_respond(parser_connection(parser));
  return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* connection_parse feeds the unparsed bytes to the parser until they run out
 * or a request is complete (the parser pauses while it is answered). */
static void connection_parse(admin_connection *conn) {
  while (conn->state == CONNECTION_READING && conn->len > 0) {
    size_t parsed =
        http_parser_execute(&conn->parser, &parser_settings, conn->buffer + conn->start, conn->len);
    conn->start += parsed;
    conn->len -= parsed;
    enum http_errno error = HTTP_PARSER_ERRNO(&conn->parser);
    if (error == HPE_PAUSED) break; /* answering; the rest waits in the buffer */
    if (error != HPE_OK || parsed == 0) {
      if (conn->state == CONNECTION_READING) {
        connection_refuse(conn, conn->request.refusal_status ? conn->request.refusal_status : 400);
      }
      return;
    }
  }
  if (conn->len == 0) conn->start = 0;
}

/* ---- reading -------------------------------------------------------------- */

static void on_alloc(uv_handle_t *handle, size_t suggested_size, uv_buf_t *buf) {
  admin_connection *conn = handle->data;
  size_t used = conn->start + conn->len;
  *buf = uv_buf_init(conn->buffer + used, (unsigned int)(sizeof(conn->buffer) - used));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  admin_connection *conn = stream->data;
  if (nread == 0) return;
  if (nread < 0) { /* UV_EOF, a reset, or UV_ENOBUFS */
    connection_close(conn);
    return;
  }
  conn->len += (size_t)nread;
  connection_parse(conn);
}

/* ---- accepting ------------------------------------------------------------ */

/* make_room closes the oldest connection still waiting for (the rest of) a
 * request when MAX_CONNECTIONS are open besides `newest`: slow or idle
 * clients cannot keep /ready from being answered. Returns false when every
 * other connection is answering (then `newest` is the one to go). */
static bool make_room(ms_admin *admin, admin_connection *newest) {
  size_t open = 0;
  admin_connection *oldest_reading = NULL;
  for (admin_connection *c = admin->connections; c; c = c->next) {
    if (c == newest || c->state == CONNECTION_CLOSING) continue;
    open++;
    if (c->state == CONNECTION_READING) oldest_reading = c; /* the list is newest first */
  }
  if (open < MAX_CONNECTIONS) return true;
  MS_STAT_ADD(admin_stats(admin), admin_cx_evicted, 1); /* the oldest waiting, else `newest` */
  if (oldest_reading == NULL) return false;
  connection_close(oldest_reading);
  uint64_t count = ms_log_limit_tick(&admin->evict_log, uv_now(admin->loop), 1000);
  if (count > 0)
    ms_log(MS_LOG_WARN,
           "admin: %d connections open; closed the oldest one waiting for a request to take a "
           "new one (%llu time%s since the last line)",
           MAX_CONNECTIONS, (unsigned long long)count, ms_plural(count));
  return true;
}

static void on_connection(uv_stream_t *listener, int status) {
  ms_admin *admin = listener->data;
  if (status < 0 || admin->closing) return;
  admin_connection *conn = calloc(1, sizeof(*conn));
  if (!conn) return;
  if (uv_tcp_init(admin->loop, &conn->tcp) != 0) {
    free(conn);
    return;
  }
  uv_timer_init(admin->loop, &conn->request_timer); /* cannot fail */
  conn->tcp.data = conn;
  conn->request_timer.data = conn;
  conn->open_handles = 2;
  conn->admin = admin;
  conn->next = admin->connections;
  if (conn->next) conn->next->prev = conn;
  admin->connections = conn;
  admin->connection_count++;
  http_parser_init(&conn->parser, HTTP_REQUEST);
  conn->parser.data = conn;

  if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0 || !make_room(admin, conn) ||
      uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) != 0) {
    connection_close(conn);
    return;
  }
  restart_request_timer(conn);
}

static void on_listener_closed(uv_handle_t *handle) {
  ms_admin *admin = handle->data;
  admin->listener_closed = true;
  admin_maybe_free(admin);
}

/* resolve_address fills `out` with the address to listen on: the literal
 * when there is one, else the first address the name resolves to. */
static int resolve_address(uv_loop_t *loop, const ms_address *address,
                           struct sockaddr_storage *out) {
  if (address->host_is_ip) {
    memcpy(out, &address->sockaddr, sizeof(*out));
    return 0;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  char port[8];
  snprintf(port, sizeof(port), "%u", (unsigned)address->port);
  uv_getaddrinfo_t req;
  int rc = uv_getaddrinfo(loop, &req, NULL, address->host, port, &hints); /* synchronous */
  if (rc != 0) return rc;
  memcpy(out, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
  uv_freeaddrinfo(req.addrinfo);
  return 0;
}

int ms_admin_start(uv_loop_t *loop, const ms_address *address, ms_server *server, ms_admin **out) {
  struct sockaddr_storage sockaddr;
  memset(&sockaddr, 0, sizeof(sockaddr));
  int rc = resolve_address(loop, address, &sockaddr);
  if (rc != 0) return rc;

  ms_admin *admin = calloc(1, sizeof(*admin));
  if (!admin) return UV_ENOMEM;
  admin->loop = loop;
  admin->server = server;
  bool ipv6 = strchr(address->host, ':') != NULL;
  snprintf(admin->own_host, sizeof(admin->own_host), ipv6 ? "[%s]" : "%s", address->host);
  rc = uv_tcp_init(loop, &admin->listener);
  if (rc != 0) {
    free(admin);
    return rc;
  }
  admin->listener.data = admin;
  rc = uv_tcp_bind(&admin->listener, (const struct sockaddr *)&sockaddr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&admin->listener, 128, on_connection);
  if (rc != 0) {
    ms_admin_close(admin); /* freed in the close callback */
    return rc;
  }
  *out = admin;
  return 0;
}

void ms_admin_close(ms_admin *admin) {
  if (!admin || admin->closing) return;
  admin->closing = true;
  uv_close((uv_handle_t *)&admin->listener, on_listener_closed);
  for (admin_connection *conn = admin->connections; conn; conn = conn->next) {
    connection_close(conn);
  }
}
