/* server_status.c: xds-server's status endpoint, plain HTTP/1.1 on loopback:
 * GET /status answers the JSON document of ms_xds_server_status_json (like
 * `istioctl proxy-status`: every connected node, its types' ACKed and sent
 * versions, its last NACK, its certificate; the CA; the files and their
 * errors). One request per connection (Connection: close), parsed with
 * http_parser; connections are closed when the server closes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <http_parser.h>

#include "certs/certs.h"
#include "common/log.h"
#include "common/time.h"
#include "xds-server/server_internal.h"

#define MAX_REQUEST_BYTES 16384
#define MAX_CONNECTIONS 32
#define IDLE_TIMEOUT_MS 10000

typedef struct status_connection status_connection;

struct xds_status_server {
  uv_tcp_t listener;
  ms_xds_server *server; /* NULL once closing */
  int open_handles;      /* the listener and each connection */
  status_connection *connections;
  size_t connection_count;
};

struct status_connection {
  uv_tcp_t tcp;
  uv_timer_t timer;
  int open_handles;
  xds_status_server *status;
  status_connection *next, *prev;
  http_parser parser;
  char url[1024];
  size_t url_len;
  size_t bytes;
  bool complete, responding, closing;
  uv_write_t write_req;
  char *response;
};

/* ---- the document ------------------------------------------------------------ */

/* add_limits: each limit of the gRPC server with its value, what is in use
 * and how often it refused (ms_grpc_server_stats). */
static void add_limit(cJSON *limits, const char *name, double value, double in_use,
                      const char *refused_key, double refused) {
  cJSON *limit = cJSON_AddObjectToObject(limits, name);
  cJSON_AddNumberToObject(limit, "limit", value);
  if (in_use >= 0) cJSON_AddNumberToObject(limit, "in_use", in_use);
  cJSON_AddNumberToObject(limit, refused_key, refused);
}

static void add_limits(ms_xds_server *server, cJSON *limits) {
  if (server->grpc == NULL) return;
  ms_grpc_server_stats s;
  ms_grpc_server_get_stats(server->grpc, &s);
  add_limit(limits, "connections", s.max_connections, (double)s.connections, "refused",
            (double)s.connections_refused);
  add_limit(limits, "connections_per_peer", s.max_connections_per_peer, -1, "refused",
            (double)s.connections_refused_per_peer);
  add_limit(limits, "streams_per_connection", s.max_concurrent_streams, -1, "refused",
            (double)s.streams_refused);
  add_limit(limits, "request_bytes", (double)s.max_message_bytes, -1, "refused",
            (double)s.messages_too_large);
  add_limit(limits, "buffered_bytes_per_connection", (double)s.max_buffered_bytes,
            (double)s.buffered_bytes, "connections_closed", (double)s.closed_over_buffered);
  add_limit(limits, "queued_bytes_per_connection", (double)s.max_queued_bytes,
            (double)s.queued_bytes, "connections_closed", (double)s.closed_over_queued);
  cJSON_AddNumberToObject(limits, "connections_accepted", (double)s.connections_accepted);
  cJSON_AddNumberToObject(limits, "accept_failures", (double)s.accept_failures);
  cJSON_AddBoolToObject(limits, "accepting", s.accepting);
  cJSON_AddNumberToObject(limits, "requests_refused", (double)server->requests_refused);
}

char *ms_xds_server_status_json(ms_xds_server *server) {
  cJSON *root = cJSON_CreateObject();
  if (root == NULL) return NULL;
  char when[32];
  cJSON *about = cJSON_AddObjectToObject(root, "server");
  cJSON_AddStringToObject(about, "listen", server->options.listen_address);
  cJSON_AddNumberToObject(about, "port", server->port);
  ms_time_rfc3339(server->started_at_ms / 1000, when, sizeof(when));
  cJSON_AddStringToObject(about, "started_at", when);
  cJSON_AddStringToObject(about, "trust_domain", server->trust_domain);
  cJSON_AddNumberToObject(about, "cert_ttl_seconds", (double)server->cert_ttl_seconds);
  cJSON_AddNumberToObject(about, "ca_overlap_seconds", (double)server->options.ca_overlap_seconds);
  cJSON_AddNumberToObject(about, "streams", (double)server->stream_count);
  cJSON_AddNumberToObject(about, "nodes", (double)server->node_count);
  add_limits(server, cJSON_AddObjectToObject(root, "limits"));
  xds_ca_status(&server->ca, cJSON_AddObjectToObject(root, "ca"));
  cJSON *token_keys = cJSON_AddObjectToObject(root, "token_keys");
  if (server->has_jwks)
    xds_jwks_status(&server->jwks, token_keys);
  else
    cJSON_AddBoolToObject(token_keys, "loaded", false);
  xds_csr_status(server, cJSON_AddObjectToObject(root, "ca_api"));
  if (server->has_files) {
    xds_files_status(&server->files, root);
  } else {
    cJSON_AddArrayToObject(root, "files");
    cJSON_AddArrayToObject(root, "file_errors");
  }
  cJSON *nodes = cJSON_AddArrayToObject(root, "nodes");
  for (const xds_stream *s = server->streams; s != NULL; s = s->next) {
    cJSON *item = cJSON_CreateObject();
    xds_stream_status(s, item);
    cJSON_AddItemToArray(nodes, item);
  }
  char *text = cJSON_Print(root);
  cJSON_Delete(root);
  return text;
}

/* ---- connections ---------------------------------------------------------------- */

static void status_maybe_free(xds_status_server *status) {
  if (status->server == NULL && status->open_handles == 0) free(status);
}

static void on_connection_handle_closed(uv_handle_t *handle) {
  status_connection *conn = handle->data;
  if (--conn->open_handles > 0) return;
  xds_status_server *status = conn->status;
  free(conn->response);
  free(conn);
  status->open_handles--;
  status_maybe_free(status);
}

static void connection_close(status_connection *conn) {
  if (conn->closing) return;
  conn->closing = true;
  xds_status_server *status = conn->status;
  if (conn->prev != NULL)
    conn->prev->next = conn->next;
  else
    status->connections = conn->next;
  if (conn->next != NULL) conn->next->prev = conn->prev;
  status->connection_count--;
  uv_close((uv_handle_t *)&conn->tcp, on_connection_handle_closed);
  uv_close((uv_handle_t *)&conn->timer, on_connection_handle_closed);
}

static void on_written(uv_write_t *req, int status) {
  connection_close(req->data);
}

static void respond(status_connection *conn, int code, const char *reason, const char *type,
                    const char *body) {
  size_t body_len = strlen(body);
  size_t len = body_len + 256;
  conn->response = malloc(len);
  if (conn->response == NULL) {
    connection_close(conn);
    return;
  }
  int head = snprintf(conn->response, len,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      code, reason, type, body_len);
  memcpy(conn->response + head, body, body_len);
  uv_buf_t buf = uv_buf_init(conn->response, (unsigned)(head + body_len));
  conn->responding = true;
  conn->write_req.data = conn;
  uv_read_stop((uv_stream_t *)&conn->tcp);
  if (uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, &buf, 1, on_written) != 0)
    connection_close(conn);
}

static void answer(status_connection *conn) {
  ms_xds_server *server = conn->status->server;
  char path[1024];
  snprintf(path, sizeof(path), "%.*s", (int)strcspn(conn->url, "?"), conn->url);
  if (conn->parser.method != HTTP_GET) {
    respond(conn, 405, "Method Not Allowed", "application/json",
            "{\"error\": \"only GET is served\"}\n");
  } else if (strcmp(path, "/status") == 0 && server != NULL) {
    char *json = ms_xds_server_status_json(server);
    if (json == NULL) {
      respond(conn, 500, "Internal Server Error", "application/json",
              "{\"error\": \"out of memory\"}\n");
      return;
    }
    respond(conn, 200, "OK", "application/json", json);
    free(json);
  } else {
    respond(conn, 404, "Not Found", "application/json",
            "{\"error\": \"not found; try GET /status\"}\n");
  }
}

static int on_url(http_parser *parser, const char *at, size_t len) {
  status_connection *conn = parser->data;
  if (conn->url_len + len >= sizeof(conn->url)) return -1;
  memcpy(conn->url + conn->url_len, at, len);
  conn->url_len += len;
  conn->url[conn->url_len] = '\0';
  return 0;
}

static int on_message_complete(http_parser *parser) {
  status_connection *conn = parser->data;
  conn->complete = true;
  http_parser_pause(parser, 1);
  return 0;
}

static const http_parser_settings parser_settings = {
    .on_url = on_url,
    .on_message_complete = on_message_complete,
};

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  static char buffer[4096]; /* one loop thread; consumed before the next read */
  *buf = uv_buf_init(buffer, sizeof(buffer));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  status_connection *conn = stream->data;
  if (nread == 0 || conn->responding || conn->closing) return;
  if (nread < 0) {
    connection_close(conn);
    return;
  }
  conn->bytes += (size_t)nread;
  size_t parsed = http_parser_execute(&conn->parser, &parser_settings, buf->base, (size_t)nread);
  if (conn->complete) {
    answer(conn);
  } else if (parsed != (size_t)nread || conn->bytes > MAX_REQUEST_BYTES ||
             HTTP_PARSER_ERRNO(&conn->parser) != HPE_OK) {
    respond(conn, 400, "Bad Request", "application/json", "{\"error\": \"bad request\"}\n");
  }
}

static void on_timeout(uv_timer_t *timer) {
  connection_close(timer->data);
}

static void on_connection(uv_stream_t *listener, int rc) {
  xds_status_server *status = listener->data;
  if (rc < 0 || status->server == NULL) return;
  status_connection *conn = calloc(1, sizeof(*conn));
  if (conn == NULL) return;
  conn->status = status;
  uv_tcp_init(listener->loop, &conn->tcp);
  uv_timer_init(listener->loop, &conn->timer);
  conn->tcp.data = conn->timer.data = conn;
  conn->open_handles = 2;
  status->open_handles++;
  conn->next = status->connections;
  if (status->connections != NULL) status->connections->prev = conn;
  status->connections = conn;
  status->connection_count++;
  http_parser_init(&conn->parser, HTTP_REQUEST);
  conn->parser.data = conn;
  if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0 ||
      status->connection_count > MAX_CONNECTIONS ||
      uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) != 0) {
    connection_close(conn);
    return;
  }
  uv_timer_start(&conn->timer, on_timeout, IDLE_TIMEOUT_MS, 0);
}

static void on_listener_closed(uv_handle_t *handle) {
  xds_status_server *status = handle->data;
  status->open_handles--;
  status_maybe_free(status);
}

/* parse_ip_port reads "1.2.3.4:port" or "[v6]:port" (port 0: any free one). */
static int parse_ip_port(const char *text, struct sockaddr_storage *out) {
  const char *colon = strrchr(text, ':');
  if (colon == NULL || colon == text) return -1;
  char *end = NULL;
  long port = strtol(colon + 1, &end, 10);
  if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535) return -1;
  char host[64];
  size_t len = (size_t)(colon - text);
  if (text[0] == '[' && len >= 2 && text[len - 1] == ']') {
    snprintf(host, sizeof(host), "%.*s", (int)(len - 2), text + 1);
    return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0 ? 0 : -1;
  }
  snprintf(host, sizeof(host), "%.*s", (int)len, text);
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0 ? 0 : -1;
}

int xds_status_start(ms_xds_server *server, const char *address, xds_status_server **out,
                     uint16_t *out_port, char *err, size_t err_len) {
  struct sockaddr_storage addr;
  if (parse_ip_port(address, &addr) != 0) {
    snprintf(err, err_len, "--status-address %s: expected IP:port, like 127.0.0.1:18001", address);
    return -1;
  }
  xds_status_server *status = calloc(1, sizeof(*status));
  if (status == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  status->server = server;
  uv_tcp_init(server->loop, &status->listener);
  status->listener.data = status;
  status->open_handles = 1;
  int rc = uv_tcp_bind(&status->listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&status->listener, 64, on_connection);
  if (rc != 0) {
    snprintf(err, err_len, "cannot listen on %s (--status-address): %s", address, uv_strerror(rc));
    status->server = NULL;
    uv_close((uv_handle_t *)&status->listener, on_listener_closed);
    return -1;
  }
  struct sockaddr_storage bound;
  int len = sizeof(bound);
  uv_tcp_getsockname(&status->listener, (struct sockaddr *)&bound, &len);
  *out_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
  *out = status;
  return 0;
}

void xds_status_close(xds_status_server *status) {
  if (status == NULL) return;
  status->server = NULL;
  while (status->connections != NULL)
    connection_close(status->connections);
  uv_close((uv_handle_t *)&status->listener, on_listener_closed);
}
