/* grpc_server.c: a gRPC server: a listening socket and its TLS + HTTP/2
 * connections; the calls on them are grpc_server_call.c's.
 *
 * Limits (grpc.h, ms_grpc_server_options): connections in total and per IP
 * are checked right after accept and a refused socket is closed at once;
 * streams per connection are nghttp2's SETTINGS_MAX_CONCURRENT_STREAMS;
 * each connection counts the bytes of its unfinished messages (its calls'
 * deframers) and of its queued responses (its calls' send queues), and is
 * shed past either bound. When accept fails for lack of descriptors or
 * memory, the listening socket is left unwatched for a while (a
 * level-triggered poll on it would spin). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/log.h"
#include "common/net.h"
#include "xds/grpc/grpc_server_internal.h"

#define ACCEPTS_PER_EVENT 64
#define DEFAULT_MAX_CONCURRENT_STREAMS 100
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define DEFAULT_MAX_CONNECTIONS 10000
#define DEFAULT_MAX_CONNECTIONS_PER_PEER 256
#define DEFAULT_MAX_BUFFERED_BYTES ((size_t)16 << 20)
#define DEFAULT_MAX_QUEUED_BYTES ((size_t)16 << 20)
#define ACCEPT_PAUSE_MIN_MS 100
#define ACCEPT_PAUSE_MAX_MS 1000
#define LOG_INTERVAL_MS 1000
#define GOAWAY_GRACE_MS 1000

/* ---- connections ---------------------------------------------------------- */

static void maybe_free_server(ms_grpc_server *server) {
  if (!server->closing || server->open > 0) return;
  for (size_t i = 0; i < PEER_TABLE_SIZE; i++) {
    while (server->peers[i] != NULL) {
      peer_count *next = server->peers[i]->next;
      free(server->peers[i]);
      server->peers[i] = next;
    }
  }
  nghttp2_session_callbacks_del(server->h2_callbacks);
  SSL_CTX_free(server->ssl_ctx);
  free(server);
}

static void on_conn_open(ms_grpc_io *io) {
  server_conn *conn = (server_conn *)io;
  uv_timer_stop(&io->timer);
  conn->peer.certificate = SSL_get_peer_certificate(io->ssl);
  if (conn->peer.certificate != NULL &&
      ms_cert_info_init(&conn->peer.certificate_info, conn->peer.certificate) != 0)
    memset(&conn->peer.certificate_info, 0, sizeof(conn->peer.certificate_info));
}

static void on_conn_error(ms_grpc_io *io, const char *reason) {
  server_conn *conn = (server_conn *)io;
  ms_grpc_server *server = conn->server;
  ms_grpc_server_conn_cancel_calls(conn);
  if (!server->closing && server->callbacks.on_connection_closed)
    server->callbacks.on_connection_closed(server, &conn->peer, reason, server->arg);
}

static void peer_release(ms_grpc_server *server, peer_count *peer);

static void on_conn_closed(ms_grpc_io *io) {
  server_conn *conn = (server_conn *)io;
  ms_grpc_server *server = conn->server;
  ms_grpc_server_conn_free_calls(conn);
  if (conn->peer_count != NULL) peer_release(server, conn->peer_count);
  server->stats.connections--;
  X509_free(conn->peer.certificate);
  ms_cert_info_cleanup(&conn->peer.certificate_info);
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    server->conns = conn->next;
  if (conn->next) conn->next->prev = conn->prev;
  free(conn);
  server->open--;
  maybe_free_server(server);
}

static const ms_grpc_io_callbacks conn_io_callbacks = {
    .on_open = on_conn_open,
    .on_error = on_conn_error,
    .on_closed = on_conn_closed,
};

static void on_handshake_timeout(uv_timer_t *timer) {
  server_conn *conn = timer->data;
  char reason[160];
  snprintf(reason, sizeof(reason), "no TLS handshake from %s within %u ms", conn->peer.address,
           conn->server->handshake_timeout_ms);
  ms_grpc_io_fail(&conn->io, reason);
}

static void on_shed_timer(uv_timer_t *timer) {
  server_conn *conn = timer->data;
  ms_grpc_io_fail(&conn->io, conn->shed_reason);
}

/* ms_grpc_server_conn_shed (grpc_server_internal.h): the grace period is
 * GOAWAY_GRACE_MS. */
void ms_grpc_server_conn_shed(server_conn *conn, bool goaway, const char *format, ...) {
  if (conn->shedding) return;
  conn->shedding = true;
  va_list args;
  va_start(args, format);
  vsnprintf(conn->shed_reason, sizeof(conn->shed_reason), format, args);
  va_end(args);
  ms_grpc_server *server = conn->server;
  uint64_t count = ms_log_limit_tick(&server->shed_log, uv_now(server->loop), LOG_INTERVAL_MS);
  if (count > 0)
    ms_log(MS_LOG_WARN, "grpc: closing a connection over a limit (%llu since the last line): %s",
           (unsigned long long)count, conn->shed_reason);
  uv_timer_stop(&conn->io.timer);
  if (goaway) {
    ms_grpc_server_conn_cancel_calls(conn);
    /* session_done reports this reason once the GOAWAY is out. */
    size_t n = strlen(conn->shed_reason);
    if (n >= sizeof(conn->io.nghttp2_error)) n = sizeof(conn->io.nghttp2_error) - 1;
    memcpy(conn->io.nghttp2_error, conn->shed_reason, n);
    conn->io.nghttp2_error[n] = '\0';
    nghttp2_session_terminate_session(conn->io.session, NGHTTP2_ENHANCE_YOUR_CALM);
    ms_grpc_io_schedule_flush(&conn->io);
  }
  uv_timer_start(&conn->io.timer, on_shed_timer, goaway ? GOAWAY_GRACE_MS : 0, 0);
}

static void conn_start(ms_grpc_server *server, int fd, peer_count *peer) {
  server_conn *conn = calloc(1, sizeof(*conn));
  SSL *ssl = conn != NULL ? SSL_new(server->ssl_ctx) : NULL;
  nghttp2_session *session = NULL;
  if (ssl != NULL) {
    SSL_set_accept_state(ssl);
    /* Idle connections are most of a control plane's: drop the handshake
     * configuration once it is done. */
    SSL_set_shed_handshake_config(ssl, 1);
    if (nghttp2_session_server_new(&session, server->h2_callbacks, conn) != 0) session = NULL;
  }
  if (session != NULL &&
      ms_grpc_h2_settings(session, true, server->stats.max_concurrent_streams) != 0) {
    nghttp2_session_del(session);
    session = NULL;
  }
  if (session == NULL) {
    ERR_clear_error();
    SSL_free(ssl);
    free(conn);
    close(fd);
    peer_release(server, peer);
    return;
  }
  conn->server = server;
  conn->peer_count = peer;
  server->stats.connections++;
  server->stats.connections_accepted++;
  ms_grpc_io_init(&conn->io, server->loop, ssl, session, &conn_io_callbacks);
  conn->next = server->conns;
  if (server->conns) server->conns->prev = conn;
  server->conns = conn;
  server->open++;
  struct sockaddr_storage address;
  socklen_t length = sizeof(address);
  if (getpeername(fd, (struct sockaddr *)&address, &length) == 0)
    ms_net_format((struct sockaddr *)&address, conn->peer.address, sizeof(conn->peer.address));
  uv_timer_start(&conn->io.timer, on_handshake_timeout, server->handshake_timeout_ms, 0);
  ms_grpc_io_accept(&conn->io, fd);
}

/* ---- accepting ------------------------------------------------------------ */

/* peer_key: the address's IP in 16 bytes (an IPv4 address in the first 4). */
static int peer_key(const struct sockaddr_storage *address, uint8_t ip[16]) {
  memset(ip, 0, 16);
  if (address->ss_family == AF_INET6) {
    memcpy(ip, &((const struct sockaddr_in6 *)address)->sin6_addr, 16);
    return AF_INET6;
  }
  memcpy(ip, &((const struct sockaddr_in *)address)->sin_addr, 4);
  return AF_INET;
}

static size_t peer_bucket(int family, const uint8_t ip[16]) {
  uint64_t h = 1469598103934665603ULL ^ (uint64_t)family; /* FNV-1a */
  for (int i = 0; i < 16; i++) {
    h ^= ip[i];
    h *= 1099511628211ULL;
  }
  return (size_t)(h % PEER_TABLE_SIZE);
}

/* peer_acquire counts one more connection from `address`. Returns its
 * entry, or NULL when the address is at its limit or memory ran out. */
static peer_count *peer_acquire(ms_grpc_server *server, const struct sockaddr_storage *address) {
  uint8_t ip[16];
  int family = peer_key(address, ip);
  size_t bucket = peer_bucket(family, ip);
  peer_count *peer = server->peers[bucket];
  while (peer != NULL && (peer->family != family || memcmp(peer->ip, ip, 16) != 0))
    peer = peer->next;
  if (peer == NULL) {
    if ((peer = calloc(1, sizeof(*peer))) == NULL) return NULL;
    peer->family = family;
    memcpy(peer->ip, ip, 16);
    peer->next = server->peers[bucket];
    server->peers[bucket] = peer;
  }
  if (peer->connections >= server->stats.max_connections_per_peer) return NULL;
  peer->connections++;
  return peer;
}

static void peer_release(ms_grpc_server *server, peer_count *peer) {
  if (--peer->connections > 0) return;
  peer_count **link = &server->peers[peer_bucket(peer->family, peer->ip)];
  while (*link != peer)
    link = &(*link)->next;
  *link = peer->next;
  free(peer);
}

static void on_listen_event(uv_poll_t *poll, int status, int events);

static void on_accept_timer(uv_timer_t *timer) {
  ms_grpc_server *server = timer->data;
  if (server->closing) return;
  server->stats.accepting = true;
  uv_poll_start(&server->listen_poll, UV_READABLE, on_listen_event);
}

/* pause_accepting stops watching the listening socket after accept failed
 * for lack of descriptors or memory: the pending connection stays in the
 * backlog and a level-triggered poll would report it again at once. */
static void pause_accepting(ms_grpc_server *server, int error) {
  server->stats.accept_failures++;
  server->stats.accepting = false;
  uv_poll_stop(&server->listen_poll);
  server->accept_pause_ms = server->accept_pause_ms == 0 ? ACCEPT_PAUSE_MIN_MS
                            : server->accept_pause_ms * 2 > ACCEPT_PAUSE_MAX_MS
                                ? ACCEPT_PAUSE_MAX_MS
                                : server->accept_pause_ms * 2;
  uv_timer_start(&server->accept_timer, on_accept_timer, server->accept_pause_ms, 0);
  uint64_t count = ms_log_limit_tick(&server->accept_log, uv_now(server->loop), LOG_INTERVAL_MS);
  if (count > 0)
    ms_log(MS_LOG_WARN,
           "grpc: accepting a connection failed (%llu time%s since the last line): %s; pausing "
           "accepts for %u ms (%zu connection%s open)",
           (unsigned long long)count, ms_plural(count), strerror(error), server->accept_pause_ms,
           server->stats.connections, ms_plural(server->stats.connections));
}

/* refuse closes an accepted socket over a connection limit. */
static void refuse(ms_grpc_server *server, int fd, const struct sockaddr_storage *address,
                   bool per_peer) {
  close(fd);
  if (per_peer)
    server->stats.connections_refused_per_peer++;
  else
    server->stats.connections_refused++;
  uint64_t count = ms_log_limit_tick(&server->refuse_log, uv_now(server->loop), LOG_INTERVAL_MS);
  if (count > 0) {
    char text[64];
    ms_net_format((const struct sockaddr *)address, text, sizeof(text));
    ms_log(MS_LOG_WARN,
           "grpc: refused a connection from %s (%llu refused since the last line): over the "
           "limit of %u %s",
           text, (unsigned long long)count,
           per_peer ? server->stats.max_connections_per_peer : server->stats.max_connections,
           per_peer ? "connections per IP address" : "connections");
  }
}

static void on_listen_event(uv_poll_t *poll, int status, int events) {
  ms_grpc_server *server = poll->data;
  for (int i = 0; i < ACCEPTS_PER_EVENT && !server->closing; i++) {
    struct sockaddr_storage address;
    socklen_t length = sizeof(address);
    memset(&address, 0, sizeof(address));
    int fd =
        accept4(server->fd, (struct sockaddr *)&address, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        pause_accepting(server, errno);
      return; /* EAGAIN, ECONNABORTED and the like: the next event */
    }
    server->accept_pause_ms = 0;
    if (server->stats.connections >= server->stats.max_connections) {
      refuse(server, fd, &address, false);
      continue;
    }
    peer_count *peer = peer_acquire(server, &address);
    if (peer == NULL) {
      refuse(server, fd, &address, true);
      continue;
    }
    conn_start(server, fd, peer);
  }
}

/* ---- the server ----------------------------------------------------------- */

static int select_alpn(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in,
                       unsigned in_len, void *arg) {
  for (unsigned i = 0; i < in_len;) {
    uint8_t len = in[i];
    if (i + 1 + len > in_len) break;
    if (len == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *out_len = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1u + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
}

/* Parses "1.2.3.4:port" or "[v6]:port" (port 0: any free one). Returns 0 or
 * UV_EINVAL. */
static int parse_listen_address(const char *text, struct sockaddr_storage *out) {
  const char *colon = strrchr(text, ':');
  if (colon == NULL || colon[1] == '\0') return UV_EINVAL;
  char *end = NULL;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (*end != '\0' || port > 65535) return UV_EINVAL;
  char host[64];
  size_t host_len = (size_t)(colon - text);
  if (text[0] == '[') {
    if (host_len < 2 || colon[-1] != ']' || host_len - 2 >= sizeof(host)) return UV_EINVAL;
    memcpy(host, text + 1, host_len - 2);
    host[host_len - 2] = '\0';
    return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out);
  }
  if (host_len >= sizeof(host)) return UV_EINVAL;
  memcpy(host, text, host_len);
  host[host_len] = '\0';
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out);
}

/* Opens the listening socket. Returns the descriptor or a negative errno. */
static int listen_on(const struct sockaddr_storage *address, uint16_t *out_port) {
  int fd = socket(address->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t address_len =
      address->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  struct sockaddr_storage bound;
  socklen_t length = sizeof(bound);
  if (bind(fd, (const struct sockaddr *)address, address_len) != 0 || listen(fd, 4096) != 0 ||
      getsockname(fd, (struct sockaddr *)&bound, &length) != 0) {
    int error = -errno;
    close(fd);
    return error;
  }
  *out_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
  return fd;
}

int ms_grpc_server_new(uv_loop_t *loop, const ms_grpc_server_options *options,
                       const ms_grpc_server_callbacks *callbacks, void *arg,
                       ms_grpc_server **out_server) {
  if (options == NULL || options->address == NULL || options->ssl_ctx == NULL ||
      callbacks == NULL || callbacks->on_call == NULL)
    return UV_EINVAL;
  struct sockaddr_storage address;
  memset(&address, 0, sizeof(address));
  if (parse_listen_address(options->address, &address) != 0) return UV_EINVAL;
  ms_grpc_server *server = calloc(1, sizeof(*server));
  if (server == NULL || (server->h2_callbacks = ms_grpc_server_h2_callbacks_new()) == NULL) {
    free(server);
    return UV_ENOMEM;
  }
  int fd = listen_on(&address, &server->port);
  int rc = fd < 0 ? fd : uv_poll_init(loop, &server->listen_poll, fd);
  if (rc != 0) {
    if (fd >= 0) close(fd);
    nghttp2_session_callbacks_del(server->h2_callbacks);
    free(server);
    return rc;
  }
  server->loop = loop;
  server->fd = fd;
  server->listen_poll.data = server;
  server->callbacks = *callbacks;
  server->arg = arg;
  ms_grpc_server_stats *limits = &server->stats;
#define OR_DEFAULT(value, fallback) ((value) ? (value) : (fallback))
  limits->max_message_bytes =
      OR_DEFAULT(options->max_message_bytes, MS_GRPC_DEFAULT_MAX_MESSAGE_BYTES);
  limits->max_concurrent_streams =
      OR_DEFAULT(options->max_concurrent_streams, DEFAULT_MAX_CONCURRENT_STREAMS);
  limits->max_connections = OR_DEFAULT(options->max_connections, DEFAULT_MAX_CONNECTIONS);
  limits->max_connections_per_peer =
      OR_DEFAULT(options->max_connections_per_peer, DEFAULT_MAX_CONNECTIONS_PER_PEER);
  limits->max_buffered_bytes = OR_DEFAULT(options->max_buffered_bytes, DEFAULT_MAX_BUFFERED_BYTES);
  limits->max_queued_bytes = OR_DEFAULT(options->max_queued_bytes, DEFAULT_MAX_QUEUED_BYTES);
  server->handshake_timeout_ms =
      OR_DEFAULT(options->handshake_timeout_ms, DEFAULT_HANDSHAKE_TIMEOUT_MS);
#undef OR_DEFAULT
  limits->accepting = true;
  uv_timer_init(loop, &server->accept_timer);
  server->accept_timer.data = server;
  SSL_CTX_up_ref(options->ssl_ctx);
  server->ssl_ctx = options->ssl_ctx;
  SSL_CTX_set_alpn_select_cb(server->ssl_ctx, select_alpn, NULL);
  server->open = 2; /* listen_poll, accept_timer */
  uv_poll_start(&server->listen_poll, UV_READABLE, on_listen_event);
  *out_server = server;
  return 0;
}

void ms_grpc_server_set_ssl_ctx(ms_grpc_server *server, SSL_CTX *ssl_ctx) {
  SSL_CTX_up_ref(ssl_ctx);
  SSL_CTX_set_alpn_select_cb(ssl_ctx, select_alpn, NULL);
  SSL_CTX_free(server->ssl_ctx); /* each SSL of an open connection holds its own */
  server->ssl_ctx = ssl_ctx;
}

uint16_t ms_grpc_server_port(const ms_grpc_server *server) {
  return server->port;
}

void ms_grpc_server_get_stats(const ms_grpc_server *server, ms_grpc_server_stats *out) {
  *out = server->stats;
  out->buffered_bytes = out->queued_bytes = 0;
  for (const server_conn *conn = server->conns; conn != NULL; conn = conn->next) {
    out->buffered_bytes += conn->buffered;
    out->queued_bytes += conn->queued;
  }
}

static void on_listen_closed(uv_handle_t *handle) {
  ms_grpc_server *server = handle->data;
  close(server->fd);
  server->open--;
  maybe_free_server(server);
}

static void on_accept_timer_closed(uv_handle_t *handle) {
  ms_grpc_server *server = handle->data;
  server->open--;
  maybe_free_server(server);
}

void ms_grpc_server_close(ms_grpc_server *server) {
  if (server == NULL || server->closing) return;
  server->closing = true;
  uv_close((uv_handle_t *)&server->listen_poll, on_listen_closed);
  uv_close((uv_handle_t *)&server->accept_timer, on_accept_timer_closed);
  for (server_conn *conn = server->conns; conn != NULL; conn = conn->next) {
    ms_grpc_server_conn_cancel_calls(conn);
    ms_grpc_io_close(&conn->io);
  }
}
