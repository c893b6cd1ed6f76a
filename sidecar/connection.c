#include "sidecar/connection.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "sidecar/log.h"
#include "sidecar/net.h"
#include "sidecar/tls_io.h"

#define MS_READS_PER_EVENT 16

typedef enum ms_conn_state {
  MS_CONN_CONNECTING,
  MS_CONN_HANDSHAKING,
  MS_CONN_PROXYING,
  MS_CONN_CLOSING,
} ms_conn_state;

/* Plaintext from the upstream that the client could not take yet: at most
 * one read's worth; while it is not empty the upstream is not read
 * (back-pressure). Allocated only while in use, so an idle connection holds
 * no buffer. The other direction's pending bytes are sealed ones, in the
 * connection's ms_tls_io. */
typedef struct pending {
  char *data;
  size_t len;
  size_t offset;
} pending;

struct ms_conn {
  ms_worker *worker;
  ms_conn *prev, *next;
  ms_conn_state state;
  ms_snapshot *snapshot;       /* reference held */
  const ms_listener *listener; /* in `snapshot` */
  const ms_cluster *cluster;   /* in `snapshot` */

  int client_fd;
  uv_poll_t client_poll;
  int client_events;
  int upstream_fd;
  uv_poll_t upstream_poll;
  int upstream_events;
  bool upstream_poll_open;
  uv_timer_t timer; /* connect, handshake or idle timeout */
  int open_handles;

  size_t endpoint_index;
  bool endpoint_counted; /* holds one of the endpoint's active_connections */
  uint64_t tried;        /* endpoints tried, bit per index */
  uint32_t attempts;
  char endpoint_address[64]; /* the socket address dialled */

  ms_tls_context *tls; /* reference held, counted in active_connections */
  SSL *ssl;
  ms_tls_io io; /* the upstream socket under BoringSSL */
  uint64_t session_key;
  bool sni_sent;

  pending to_client;
  bool client_eof;        /* the client sent FIN */
  bool upstream_eof;      /* close_notify or FIN from the upstream */
  bool client_shut;       /* we sent FIN to the client */
  bool close_notify_sent; /* SSL_shutdown ran: close_notify is out or queued */
  bool upstream_shut;     /* close_notify is out and so is our FIN */
  bool client_spoke;      /* the client's bytes (or FIN) went upstream */
  bool upstream_spoke;    /* the upstream sent application data */
  uint64_t last_activity;
};

static void on_client_event(uv_poll_t *poll, int status, int events);
static void on_upstream_event(uv_poll_t *poll, int status, int events);
static void on_timer(uv_timer_t *timer);
static void attempt_next(ms_conn *conn);

/* ---- helpers ------------------------------------------------------------ */

static const ms_listener_config *listener_of(const ms_conn *conn) {
  return conn->listener->config;
}

static const char *endpoint_text(const ms_conn *conn) {
  return conn->cluster->endpoints[conn->endpoint_index].config->address.text;
}

static ms_endpoint_state *endpoint_state(const ms_conn *conn) {
  return conn->cluster->endpoints[conn->endpoint_index].state;
}

static void set_events(uv_poll_t *poll, int *current, int wanted, uv_poll_cb callback) {
  if (wanted == *current) return;
  *current = wanted;
  if (wanted == 0)
    uv_poll_stop(poll);
  else
    uv_poll_start(poll, wanted, callback);
}

static int pending_store(pending *p, const char *data, size_t len) {
  p->data = malloc(len);
  if (p->data == NULL) return -1;
  memcpy(p->data, data, len);
  p->len = len;
  p->offset = 0;
  return 0;
}

static void pending_clear(pending *p) {
  free(p->data);
  memset(p, 0, sizeof(*p));
}

static void release_endpoint(ms_conn *conn) {
  if (!conn->endpoint_counted) return;
  conn->endpoint_counted = false;
  atomic_fetch_sub_explicit(&endpoint_state(conn)->active_connections, 1, memory_order_relaxed);
}

static void release_tls(ms_conn *conn) {
  if (conn->ssl) {
    SSL_free(conn->ssl); /* and its BIO */
    conn->ssl = NULL;
  }
  ms_tls_io_cleanup(&conn->io);
  if (conn->tls) {
    atomic_fetch_sub_explicit(&conn->tls->active_connections, 1, memory_order_relaxed);
    ms_tls_context_free(conn->tls);
    conn->tls = NULL;
  }
}

/* ---- closing ------------------------------------------------------------ */

static void conn_free(ms_conn *conn) {
  if (conn->client_fd >= 0) close(conn->client_fd);
  if (conn->upstream_fd >= 0) close(conn->upstream_fd);
  release_tls(conn);
  release_endpoint(conn);
  pending_clear(&conn->to_client);
  ms_snapshot_free(conn->snapshot);
  free(conn);
}

static void on_handle_closed(uv_handle_t *handle) {
  ms_conn *conn = handle->data;
  if (--conn->open_handles == 0) conn_free(conn);
}

void ms_conn_close(ms_conn *conn) {
  if (conn->state == MS_CONN_CLOSING) return;
  conn->state = MS_CONN_CLOSING;
  ms_worker *worker = conn->worker;
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    worker->connections = conn->next;
  if (conn->next) conn->next->prev = conn->prev;
  atomic_fetch_sub_explicit(&worker->connection_count, 1, memory_order_relaxed);
  MS_STAT_ADD(&worker->stats, downstream_cx_active, -1);
  uv_close((uv_handle_t *)&conn->client_poll, on_handle_closed);
  uv_close((uv_handle_t *)&conn->timer, on_handle_closed);
  if (conn->upstream_poll_open && !uv_is_closing((uv_handle_t *)&conn->upstream_poll))
    uv_close((uv_handle_t *)&conn->upstream_poll, on_handle_closed);
}

/* ---- start and endpoint attempts ---------------------------------------- */

void ms_conn_start(ms_worker *worker, int fd, const ms_listener_sockets *sockets) {
  ms_conn *conn = calloc(1, sizeof(*conn));
  if (conn == NULL || uv_poll_init(&worker->loop, &conn->client_poll, fd) != 0) {
    ms_log(MS_LOG_ERROR, "out of memory accepting a connection; closing it");
    free(conn);
    close(fd);
    return;
  }
  conn->worker = worker;
  conn->client_fd = fd;
  conn->upstream_fd = -1;
  conn->snapshot = ms_snapshot_up_ref(worker->snapshot);
  conn->listener = ms_snapshot_find_listener(conn->snapshot, sockets);
  conn->client_poll.data = conn;
  uv_timer_init(&worker->loop, &conn->timer);
  conn->timer.data = conn;
  conn->open_handles = 2;
  conn->state = MS_CONN_CONNECTING;
  conn->next = worker->connections;
  if (worker->connections) worker->connections->prev = conn;
  worker->connections = conn;
  atomic_fetch_add_explicit(&worker->connection_count, 1, memory_order_relaxed);
  MS_STAT_ADD(&worker->stats, downstream_cx_total, 1);
  MS_STAT_ADD(&worker->stats, downstream_cx_active, 1);
  /* Until the upstream is ready, only watch for the client leaving. */
  set_events(&conn->client_poll, &conn->client_events, UV_DISCONNECT, on_client_event);
  attempt_next(conn);
}

static void give_up(ms_conn *conn, const char *why) {
  MS_STAT_ADD(&conn->worker->stats, downstream_cx_no_endpoint, 1);
  ms_log(MS_LOG_WARN, "connection closed: listener=%s cluster=%s: %s", listener_of(conn)->name,
         conn->cluster->config->name, why);
  ms_conn_close(conn);
}

static void on_upstream_closed_for_retry(uv_handle_t *handle) {
  ms_conn *conn = handle->data;
  conn->upstream_poll_open = false;
  close(conn->upstream_fd);
  conn->upstream_fd = -1;
  if (--conn->open_handles == 0) {
    conn_free(conn);
    return;
  }
  if (conn->state != MS_CONN_CLOSING) attempt_next(conn);
}

/* Counts a failed connect or handshake against the endpoint, which may eject it. */
static void record_endpoint_failure(ms_conn *conn, bool handshake, const char *message) {
  ms_endpoint_state *state = endpoint_state(conn);
  atomic_fetch_add_explicit(handshake ? &state->handshake_failures : &state->connect_failures, 1,
                            memory_order_relaxed);
  ms_endpoint_state_set_error(state, message);
  uint32_t ejected_ms = ms_endpoint_record_failure(conn->cluster, conn->endpoint_index,
                                                   (int64_t)uv_now(&conn->worker->loop));
  if (ejected_ms)
    ms_log(MS_LOG_WARN,
           "endpoint ejected: cluster=%s endpoint=%s for %u ms after %u failures in a row",
           conn->cluster->config->name, endpoint_text(conn), ejected_ms,
           conn->cluster->config->outlier_detection.consecutive_failures);
}

/* A connect or handshake failed: count it against the endpoint, then try
 * another endpoint once the upstream socket's handle has closed. */
static void attempt_failed(ms_conn *conn, bool handshake, const char *message) {
  record_endpoint_failure(conn, handshake, message);
  release_tls(conn);
  release_endpoint(conn);
  uv_timer_stop(&conn->timer);
  conn->upstream_events = 0;
  set_events(&conn->client_poll, &conn->client_events, UV_DISCONNECT, on_client_event);
  conn->state = MS_CONN_CONNECTING;
  if (conn->attempts < conn->cluster->config->max_connect_attempts)
    MS_STAT_ADD(&conn->worker->stats, upstream_cx_retry, 1);
  uv_close((uv_handle_t *)&conn->upstream_poll, on_upstream_closed_for_retry);
}

static void connect_failed(ms_conn *conn, int error) {
  char message[256];
  snprintf(message, sizeof(message), "connect failed: %s", strerror(-error));
  MS_STAT_ADD(&conn->worker->stats, upstream_cx_connect_fail, 1);
  ms_log(MS_LOG_WARN, "connect failed: cluster=%s endpoint=%s address=%s: %s",
         conn->cluster->config->name, endpoint_text(conn), conn->endpoint_address,
         strerror(-error));
  attempt_failed(conn, false, message);
}

static void attempt_next(ms_conn *conn) {
  ms_worker *worker = conn->worker;
  /* Nothing has reached any upstream yet: a retry may as well use the
   * newest snapshot, if the listener is still in it. */
  if (conn->snapshot != worker->snapshot) {
    const ms_listener *listener =
        ms_snapshot_find_listener(worker->snapshot, conn->listener->sockets);
    if (listener == NULL) {
      ms_log(MS_LOG_INFO, "connection closed: listener=%s was removed", listener_of(conn)->name);
      ms_conn_close(conn);
      return;
    }
    ms_snapshot_free(conn->snapshot);
    conn->snapshot = ms_snapshot_up_ref(worker->snapshot);
    conn->listener = listener;
  }
  conn->cluster = &conn->snapshot->clusters[listener_of(conn)->cluster_index];
  const ms_cluster *cluster = conn->cluster;
  if (cluster->tls == NULL) {
    give_up(conn, "the cluster has no usable TLS context (see /clusters)");
    return;
  }
  if (conn->attempts >= cluster->config->max_connect_attempts) {
    char why[96];
    snprintf(why, sizeof(why), "no endpoint left after %u attempts", conn->attempts);
    give_up(conn, why);
    return;
  }
  size_t index = ms_balancer_pick(&worker->balancers[cluster->index], cluster, conn->tried,
                                  (int64_t)uv_now(&worker->loop));
  if (index == MS_NO_ENDPOINT) {
    give_up(conn, conn->attempts ? "no endpoint left to try" : "no endpoint available");
    return;
  }
  conn->attempts++;
  if (index < 64) conn->tried |= 1ULL << index;
  conn->endpoint_index = index;
  const ms_endpoint *endpoint = &cluster->endpoints[index];
  const struct sockaddr *address =
      (const struct sockaddr *)&endpoint->addrs[worker->address_cursor++ % endpoint->addr_count];
  ms_net_format(address, conn->endpoint_address, sizeof(conn->endpoint_address));

  atomic_fetch_add_explicit(&endpoint->state->active_connections, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&endpoint->state->total_connections, 1, memory_order_relaxed);
  conn->endpoint_counted = true;
  MS_STAT_ADD(&worker->stats, upstream_cx_total, 1);

  int fd = ms_net_connect(address);
  if (fd >= 0 && uv_poll_init(&worker->loop, &conn->upstream_poll, fd) != 0) {
    close(fd);
    fd = -ENOMEM;
  }
  if (fd < 0) {
    /* No handle to close: record the failure and go straight on. */
    char message[256];
    snprintf(message, sizeof(message), "connect failed: %s", strerror(-fd));
    MS_STAT_ADD(&worker->stats, upstream_cx_connect_fail, 1);
    ms_log(MS_LOG_WARN, "connect failed: cluster=%s endpoint=%s address=%s: %s",
           cluster->config->name, endpoint->config->address.text, conn->endpoint_address,
           strerror(-fd));
    record_endpoint_failure(conn, false, message);
    release_endpoint(conn);
    attempt_next(conn);
    return;
  }
  conn->upstream_fd = fd;
  conn->upstream_poll.data = conn;
  conn->upstream_poll_open = true;
  conn->open_handles++;
  conn->upstream_events = 0;
  set_events(&conn->upstream_poll, &conn->upstream_events, UV_WRITABLE, on_upstream_event);
  uv_timer_start(&conn->timer, on_timer, cluster->config->connect_timeout_ms, 0);
}

/* ---- TLS handshake ------------------------------------------------------ */

static void start_proxying(ms_conn *conn);
static void do_handshake(ms_conn *conn);
static void update_polls(ms_conn *conn);

static void fail_relay(ms_conn *conn, const char *what) {
  ERR_clear_error();
  ms_log(MS_LOG_DEBUG, "connection closed: cluster=%s endpoint=%s: %s", conn->cluster->config->name,
         endpoint_text(conn), what);
  ms_conn_close(conn);
}

/* Every event ends here: what is left in the worker's scratch buffers moves
 * to the heap, and the polls follow the state. */
static void finish_event(ms_conn *conn) {
  if (ms_tls_io_park(&conn->io) != 0) {
    fail_relay(conn, "out of memory");
    return;
  }
  update_polls(conn);
}

static void start_tls(ms_conn *conn) {
  const ms_cluster *cluster = conn->cluster;
  size_t index = conn->endpoint_index;
  conn->tls = ms_tls_context_up_ref(cluster->tls);
  atomic_fetch_add_explicit(&conn->tls->active_connections, 1, memory_order_relaxed);
  ms_tls_io_init(&conn->io, conn->upstream_fd, conn->worker->tls_scratch);
  conn->io.drained = true; /* nothing can arrive before our ClientHello */
  conn->ssl = SSL_new(conn->tls->ssl_ctx);
  BIO *bio = conn->ssl ? ms_tls_io_bio_new(&conn->io) : NULL;
  if (bio == NULL) {
    ERR_clear_error();
    attempt_failed(conn, true, "out of memory starting TLS");
    return;
  }
  SSL_set_bio(conn->ssl, bio, bio);
  SSL_set_connect_state(conn->ssl);
  SSL_set_app_data(conn->ssl, conn);
  /* Free the handshake-only configuration once it is done: idle connections
   * are most of a sidecar's connections, so their size matters. */
  SSL_set_shed_handshake_config(conn->ssl, 1);
  const char *server_name = cluster->server_names[index];
  conn->sni_sent = server_name != NULL;
  if (server_name) SSL_set_tlsext_host_name(conn->ssl, server_name);
  if (ms_ssl_set_peer_check(conn->ssl, &cluster->peer_checks[index]) != 0) {
    attempt_failed(conn, true, "out of memory starting TLS");
    return;
  }
  if (cluster->config->tls.settings.session_reuse) {
    conn->session_key = ms_session_cache_key(conn->tls->generation, cluster->config->name,
                                             conn->endpoint_address, server_name);
    SSL_SESSION *session = ms_session_cache_take(conn->worker->sessions, conn->session_key);
    if (session) {
      SSL_set_session(conn->ssl, session);
      SSL_SESSION_free(session);
    }
  }
  conn->state = MS_CONN_HANDSHAKING;
  uv_timer_start(&conn->timer, on_timer, cluster->config->handshake_timeout_ms, 0);
  do_handshake(conn);
}

static void handshake_failed(ms_conn *conn, ms_tls_failure failure, const char *description) {
  ms_worker *worker = conn->worker;
  ms_tls_io_flush(&conn->io); /* our alert, if there is one: best effort */
  MS_STAT_ADD(&worker->stats, ssl_connection_error, 1);
  MS_STAT_ADD(&worker->stats, handshake_failure[failure], 1);
  const char *sni = conn->cluster->server_names[conn->endpoint_index];
  char line[640];
  snprintf(line, sizeof(line), "handshake failed: cluster=%s endpoint=%s sni=%s reason=%s: %s",
           conn->cluster->config->name, endpoint_text(conn), sni ? sni : "none",
           ms_tls_failure_name(failure), description);
  ms_log(MS_LOG_ERROR, "%s", line);
  const char *message = line + strlen("handshake failed: ");
  if (conn->client_spoke) {
    /* TLS 1.3: the upstream refused us (say, our certificate) after our side
     * of the handshake was done, and the client's bytes already went out:
     * too late for another endpoint. */
    record_endpoint_failure(conn, true, message);
    ms_conn_close(conn);
    return;
  }
  attempt_failed(conn, true, message);
}

static void describe_and_fail(ms_conn *conn, int ssl_error) {
  char description[480];
  ms_tls_failure failure = ms_tls_describe_failure(conn->ssl, ssl_error, conn->sni_sent,
                                                   description, sizeof(description));
  handshake_failed(conn, failure, description);
}

static void do_handshake(ms_conn *conn) {
  int rc = SSL_do_handshake(conn->ssl);
  int error = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(conn->ssl, rc);
  if (error != SSL_ERROR_NONE && error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
    describe_and_fail(conn, error);
    return;
  }
  if (ms_tls_io_flush(&conn->io) < 0) {
    char description[160];
    snprintf(description, sizeof(description), "sending to the upstream failed: %s",
             strerror(conn->io.error));
    ERR_clear_error();
    handshake_failed(conn, MS_TLS_FAILURE_CONNECTION_CLOSED, description);
    return;
  }
  if (rc == 1) {
    start_proxying(conn);
    return;
  }
  if (ms_tls_io_park(&conn->io) != 0) {
    attempt_failed(conn, true, "out of memory");
    return;
  }
  int events = error == SSL_ERROR_WANT_READ ? UV_READABLE : UV_WRITABLE;
  if (ms_tls_io_pending_out(&conn->io)) events |= UV_WRITABLE;
  set_events(&conn->upstream_poll, &conn->upstream_events, events, on_upstream_event);
}

int ms_conn_on_new_session(SSL *ssl, SSL_SESSION *session) {
  ms_conn *conn = SSL_get_app_data(ssl);
  if (conn == NULL || conn->session_key == 0) return 0;
  ms_session_cache_put(conn->worker->sessions, conn->session_key, session);
  return 1;
}

/* ---- relaying ----------------------------------------------------------- */

static void update_polls(ms_conn *conn) {
  int client = 0, upstream = 0;
  /* Back-pressure: the client is not read while sealed bytes wait for the
   * upstream, and the upstream is not read while plaintext waits for the
   * client. */
  if (!conn->client_eof && !ms_tls_io_pending_out(&conn->io)) client |= UV_READABLE;
  if (conn->to_client.len) client |= UV_WRITABLE;
  if (!conn->upstream_eof && conn->to_client.len == 0) upstream |= UV_READABLE;
  if (ms_tls_io_pending_out(&conn->io)) upstream |= UV_WRITABLE;
  set_events(&conn->client_poll, &conn->client_events, client, on_client_event);
  set_events(&conn->upstream_poll, &conn->upstream_events, upstream, on_upstream_event);
}

static bool finished(const ms_conn *conn) {
  return conn->client_eof && conn->upstream_shut && conn->upstream_eof && conn->client_shut &&
         conn->to_client.len == 0;
}

static void end_event(ms_conn *conn) {
  if (finished(conn))
    ms_conn_close(conn);
  else
    finish_event(conn);
}

/* Writes what BoringSSL sealed; once all of it is out after close_notify,
 * sends FIN. Returns 1 when everything is out, 0 when the socket is full,
 * -1 when the connection was closed. */
static int flush_to_upstream(ms_conn *conn) {
  int rc = ms_tls_io_flush(&conn->io);
  if (rc < 0) {
    fail_relay(conn, "writing to the upstream failed");
    return -1;
  }
  if (rc == 1 && conn->close_notify_sent && !conn->upstream_shut) {
    conn->upstream_shut = true;
    shutdown(conn->upstream_fd, SHUT_WR);
  }
  return rc;
}

static void client_to_upstream(ms_conn *conn) {
  ms_worker *worker = conn->worker;
  int flushed = flush_to_upstream(conn);
  if (flushed < 0) return;
  for (int i = 0; flushed == 1 && !conn->client_eof && i < MS_READS_PER_EVENT; i++) {
    ssize_t n = read(conn->client_fd, worker->scratch, MS_WORKER_SCRATCH);
    if (n > 0) {
      conn->last_activity = uv_now(&worker->loop);
      conn->client_spoke = true;
      MS_STAT_ADD(&worker->stats, bytes_sent_upstream, n);
      if (SSL_write(conn->ssl, worker->scratch, (int)n) != n) {
        fail_relay(conn, "sealing for the upstream failed");
        return;
      }
      if ((flushed = flush_to_upstream(conn)) < 0) return;
      if (n < MS_WORKER_SCRATCH) break; /* the client is drained for now */
      continue;
    }
    if (n == 0) {
      conn->client_eof = true;
      conn->client_spoke = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else {
      fail_relay(conn, "reading from the client failed");
      return;
    }
  }
  if (conn->client_eof && !conn->close_notify_sent) {
    conn->close_notify_sent = true;
    SSL_shutdown(conn->ssl); /* queues close_notify in the BIO */
    ERR_clear_error();
    if (flush_to_upstream(conn) < 0) return;
  }
  end_event(conn);
}

/* Writes what is pending for the client. Returns 1 when it is all through,
 * 0 when the socket is full, -1 when the connection was closed. */
static int flush_to_client(ms_conn *conn) {
  pending *p = &conn->to_client;
  while (p->len) {
    ssize_t n = write(conn->client_fd, p->data + p->offset, p->len - p->offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      fail_relay(conn, "writing to the client failed");
      return -1;
    }
    p->offset += (size_t)n;
    if (p->offset == p->len) pending_clear(p);
  }
  return 1;
}

/* Hands `len` bytes of plaintext to the client; what it cannot take now is
 * kept. Returns false when the connection was closed. */
static bool send_to_client(ms_conn *conn, const char *data, size_t len) {
  ssize_t n;
  do
    n = write(conn->client_fd, data, len);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      fail_relay(conn, "writing to the client failed");
      return false;
    }
    n = 0;
  }
  if ((size_t)n < len && pending_store(&conn->to_client, data + n, len - (size_t)n) != 0) {
    fail_relay(conn, "out of memory");
    return false;
  }
  return true;
}

/* Opens as many records as fit in the worker's scratch buffer (the
 * read-ahead makes that one read(2) for several records), then writes them
 * to the client at once. */
static void upstream_to_client(ms_conn *conn) {
  ms_worker *worker = conn->worker;
  if (flush_to_client(conn) <= 0) {
    if (conn->state == MS_CONN_PROXYING) finish_event(conn);
    return;
  }
  for (int rounds = 0; !conn->upstream_eof && conn->to_client.len == 0; rounds++) {
    size_t got = 0;
    int error = SSL_ERROR_NONE;
    while (got < MS_WORKER_SCRATCH) {
      int rc = SSL_read(conn->ssl, worker->scratch + got, (int)(MS_WORKER_SCRATCH - got));
      if (rc <= 0) {
        error = SSL_get_error(conn->ssl, rc);
        break;
      }
      got += (size_t)rc;
    }
    if (got) {
      conn->last_activity = uv_now(&worker->loop);
      conn->upstream_spoke = true;
      MS_STAT_ADD(&worker->stats, bytes_received_upstream, got);
      if (!send_to_client(conn, worker->scratch, got)) return;
    }
    /* Reading may have produced something to send (a key update's answer). */
    if (flush_to_upstream(conn) < 0) return;
    if (error == SSL_ERROR_NONE) {
      /* The buffer filled. Yield after a while, but only with nothing left
       * in our own buffers: the kernel's poll cannot see those. */
      if (rounds >= MS_READS_PER_EVENT && !ms_tls_io_buffered_in(&conn->io) &&
          SSL_pending(conn->ssl) == 0)
        break;
      continue;
    }
    if (error == SSL_ERROR_WANT_READ) break;
    if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && conn->io.eof)) {
      /* close_notify, or a FIN without one: either way the upstream is done. */
      ERR_clear_error();
      conn->upstream_eof = true;
      MS_STAT_ADD(&worker->stats, upstream_cx_destroy_remote, error != SSL_ERROR_ZERO_RETURN);
      break;
    }
    if (!conn->upstream_spoke && error == SSL_ERROR_SSL) {
      /* An alert before any data: the upstream refused the handshake after
       * our side of it completed (TLS 1.3 checks client certificates then). */
      describe_and_fail(conn, error);
      return;
    }
    fail_relay(conn, "reading from the upstream failed");
    return;
  }
  if (conn->upstream_eof && conn->to_client.len == 0 && !conn->client_shut) {
    conn->client_shut = true;
    /* When everything else is done, closing sends the FIN anyway. */
    if (!finished(conn)) shutdown(conn->client_fd, SHUT_WR);
  }
  end_event(conn);
}

static void start_proxying(ms_conn *conn) {
  ms_worker *worker = conn->worker;
  MS_STAT_ADD(&worker->stats, ssl_handshake, 1);
  if (SSL_session_reused(conn->ssl))
    MS_STAT_ADD(&worker->stats, ssl_session_reused, 1);
  else
    MS_STAT_ADD(&worker->stats, ssl_handshake_full, 1);
  ms_endpoint_record_success(endpoint_state(conn));
  conn->state = MS_CONN_PROXYING;
  conn->last_activity = uv_now(&worker->loop);
  uv_timer_stop(&conn->timer);
  uint32_t idle_ms = listener_of(conn)->idle_timeout_ms;
  if (idle_ms) uv_timer_start(&conn->timer, on_timer, idle_ms, 0);
  /* The upstream may have sent data along with its last handshake flight,
   * and the client may have spoken while we were connecting. */
  upstream_to_client(conn);
  if (conn->state == MS_CONN_PROXYING) client_to_upstream(conn);
}

/* ---- events ------------------------------------------------------------- */

/* Before PROXYING the client is watched only for hanging up. A client that
 * left without sending a byte has nothing for the upstream: stop connecting
 * to it. One that sent data and then half-closed is served as usual. */
static void client_event_early(ms_conn *conn, int status) {
  char byte;
  ssize_t n = status < 0 ? -1 : recv(conn->client_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0 || (n < 0 && status == 0 && (errno == EAGAIN || errno == EINTR))) {
    set_events(&conn->client_poll, &conn->client_events, 0, NULL);
    return;
  }
  ms_log(MS_LOG_DEBUG,
         "connection closed: listener=%s: the client left before the upstream was ready",
         listener_of(conn)->name);
  ms_conn_close(conn);
}

static void on_client_event(uv_poll_t *poll, int status, int events) {
  ms_conn *conn = poll->data;
  if (conn->state == MS_CONN_CONNECTING || conn->state == MS_CONN_HANDSHAKING) {
    client_event_early(conn, status);
    return;
  }
  if (conn->state != MS_CONN_PROXYING) return;
  if (status < 0) {
    fail_relay(conn, uv_strerror(status));
    return;
  }
  if (events & UV_WRITABLE) upstream_to_client(conn);
  if (conn->state == MS_CONN_PROXYING && (events & UV_READABLE)) client_to_upstream(conn);
}

static void on_upstream_event(uv_poll_t *poll, int status, int events) {
  ms_conn *conn = poll->data;
  switch (conn->state) {
    case MS_CONN_CONNECTING: {
      int error = status < 0 ? status : ms_net_socket_error(conn->upstream_fd);
      if (error != 0)
        connect_failed(conn, error);
      else
        start_tls(conn);
      return;
    }
    case MS_CONN_HANDSHAKING:
      if (status < 0) {
        /* libuv stopped the handle on POLLERR (say, a reset): read again to
         * learn what happened. */
        conn->upstream_events = 0;
        ms_tls_io_readable(&conn->io);
      }
      if (events & UV_READABLE) ms_tls_io_readable(&conn->io);
      do_handshake(conn);
      return;
    case MS_CONN_PROXYING:
      if (status < 0) {
        fail_relay(conn, uv_strerror(status));
        return;
      }
      if (events & UV_READABLE) ms_tls_io_readable(&conn->io);
      if (events & UV_WRITABLE) {
        client_to_upstream(conn);
        if (conn->state != MS_CONN_PROXYING) return;
      }
      if (events & UV_READABLE) upstream_to_client(conn);
      return;
    case MS_CONN_CLOSING:
      return;
  }
}

static void on_timer(uv_timer_t *timer) {
  ms_conn *conn = timer->data;
  ms_worker *worker = conn->worker;
  switch (conn->state) {
    case MS_CONN_CONNECTING:
      MS_STAT_ADD(&worker->stats, upstream_cx_connect_timeout, 1);
      connect_failed(conn, -ETIMEDOUT);
      return;
    case MS_CONN_HANDSHAKING: {
      char description[160];
      ERR_clear_error();
      snprintf(description, sizeof(description), "no answer within handshake_timeout_ms (%u ms)",
               conn->cluster->config->handshake_timeout_ms);
      handshake_failed(conn, MS_TLS_FAILURE_TIMEOUT, description);
      return;
    }
    case MS_CONN_PROXYING: {
      uint64_t idle_ms = listener_of(conn)->idle_timeout_ms;
      uint64_t idle_for = uv_now(&worker->loop) - conn->last_activity;
      if (idle_for < idle_ms) {
        uv_timer_start(&conn->timer, on_timer, idle_ms - idle_for, 0);
        return;
      }
      MS_STAT_ADD(&worker->stats, downstream_cx_idle_timeout, 1);
      fail_relay(conn, "idle timeout");
      return;
    }
    case MS_CONN_CLOSING:
      return;
  }
}
