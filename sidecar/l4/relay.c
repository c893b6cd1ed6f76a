#include "sidecar/l4/relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "sidecar/event/events.h"
#include "common/log.h"
#include "common/net.h"
#include "sidecar/event/tls_to_plaintext.h"
#include "sidecar/upstream/upstream.h"

#define MS_READS_PER_EVENT 16

typedef enum ms_conn_state {
  MS_CONN_CONNECTING, /* the upstream connects or shakes hands */
  MS_CONN_PROXYING,
  MS_CONN_CLOSING,
} ms_conn_state;

/* Plaintext from the upstream that the client could not take yet: at most
 * one read's worth; while it is not empty the upstream is not read
 * (back-pressure). Allocated only while in use, so an idle connection holds
 * no buffer. The other direction's pending bytes are sealed ones, in the
 * upstream's ms_tls_io. */
typedef struct pending {
  char *data;
  size_t len;
  size_t offset;
} pending;

struct ms_conn {
  ms_client_link link; /* first: the worker's list of clients */
  ms_worker *worker;
  ms_conn_state state;
  ms_snapshot *snapshot;       /* reference held */
  const ms_listener *listener; /* in `snapshot` */
  const ms_cluster *cluster;   /* in `snapshot` */

  int client_fd;
  ms_event_source client_source; /* added once, edge-triggered */
  ms_event_source task;          /* posted: a retry, or a relay that yielded */
  bool client_readable;          /* not known to be drained */
  bool client_hup;               /* the client hung up: read on to its FIN */
  uv_timer_t timer;              /* idle timeout; its close frees the connection */

  ms_upstream *upstream; /* NULL between attempts */
  uint64_t tried;        /* endpoints tried, bit per index */
  uint32_t attempts;

  pending to_client;
  bool client_eof;     /* the client sent FIN */
  bool upstream_eof;   /* close_notify or FIN from the upstream */
  bool client_shut;    /* we sent FIN to the client */
  bool client_spoke;   /* the client's bytes (or FIN) went upstream */
  bool upstream_spoke; /* the upstream sent application data */
  uint64_t last_activity;
};

static void on_client_event(ms_event_source *source, uint32_t events);
static void on_task(ms_event_source *source, uint32_t events);
static void on_timer(uv_timer_t *timer);
static void attempt_next(ms_conn *conn);
static void attempt_failed(ms_conn *conn);

static const ms_upstream_callbacks upstream_callbacks;

/* ---- helpers ------------------------------------------------------------ */

static const ms_listener_config *listener_of(const ms_conn *conn) {
  return conn->listener->config;
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

/* ---- closing ------------------------------------------------------------ */

static void on_timer_closed(uv_handle_t *handle) {
  ms_conn *conn = handle->data;
  if (conn->client_fd >= 0) close(conn->client_fd);
  pending_clear(&conn->to_client);
  ms_snapshot_free(conn->snapshot);
  free(conn);
}

void ms_conn_close(ms_conn *conn) {
  if (conn->state == MS_CONN_CLOSING) return;
  conn->state = MS_CONN_CLOSING;
  ms_worker *worker = conn->worker;
  ms_worker_client_close(worker, &conn->link);
  ms_events_unpost(&worker->events, &conn->task);
  ms_upstream_close(conn->upstream);
  conn->upstream = NULL;
  /* The client socket stays open until the timer's close callback, after
   * the batch of events under way: events for it find CLOSING and return. */
  uv_close((uv_handle_t *)&conn->timer, on_timer_closed);
}

static void close_link(ms_client_link *link) {
  ms_conn_close((ms_conn *)link);
}

/* ---- start and endpoint attempts ---------------------------------------- */

void ms_conn_start(ms_worker *worker, int fd, const ms_listener_sockets *sockets) {
  ms_conn *conn = calloc(1, sizeof(*conn));
  if (conn == NULL) {
    ms_log(MS_LOG_ERROR, "out of memory taking a connection; closing it");
    close(fd);
    return;
  }
  ms_event_source_init(&conn->client_source, on_client_event, conn);
  ms_event_source_init(&conn->task, on_task, conn);
  conn->link.close = close_link;
  if (ms_worker_client_open(worker, &conn->link, fd, &conn->client_source, sockets) != 0) {
    free(conn);
    return;
  }
  conn->worker = worker;
  conn->client_fd = fd;
  conn->snapshot = ms_snapshot_up_ref(worker->snapshot);
  conn->listener = ms_snapshot_find_listener(conn->snapshot, sockets);
  uv_timer_init(&worker->loop, &conn->timer);
  conn->timer.data = conn;
  conn->state = MS_CONN_CONNECTING;
  attempt_next(conn);
}

static void give_up(ms_conn *conn, const char *why) {
  MS_LISTENER_STAT_ADD(conn->worker, conn->link.listener, downstream_cx_no_endpoint, 1);
  ms_log(MS_LOG_WARN, "connection closed: listener=%s cluster=%s: %s", listener_of(conn)->name,
         conn->cluster->config->name, why);
  ms_conn_close(conn);
}

/* The attempt failed (already logged and counted against the endpoint).
 * When nothing of the client's reached the upstream, another endpoint is
 * tried on the next turn of the loop, after the events under way. */
static void attempt_failed(ms_conn *conn) {
  ms_upstream_close(conn->upstream);
  conn->upstream = NULL;
  if (conn->client_spoke) {
    /* TLS 1.3: the upstream refused us (say, our certificate) after our side
     * of the handshake was done, and the client's bytes already went out:
     * too late for another endpoint. Those bytes are lost: an abort. */
    ms_net_reset_on_close(conn->client_fd);
    ms_conn_close(conn);
    return;
  }
  conn->state = MS_CONN_CONNECTING;
  uv_timer_stop(&conn->timer);
  if (conn->attempts < conn->cluster->config->max_connect_attempts)
    MS_STAT_ADD(&conn->worker->stats, upstream_cx_retry, 1);
  ms_events_post(&conn->worker->events, &conn->task);
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
  for (;;) {
    if (cluster->tls == NULL) {
      give_up(conn, "the cluster has no usable TLS context (see /clusters)");
      return;
    }
    if (conn->attempts >= cluster->config->max_connect_attempts) {
      char why[96];
      snprintf(why, sizeof(why), "no endpoint left after %u attempt%s", conn->attempts,
               ms_plural(conn->attempts));
      give_up(conn, why);
      return;
    }
    size_t index = ms_upstream_pick(worker, cluster, conn->tried);
    if (index == MS_NO_ENDPOINT) {
      give_up(conn, conn->attempts ? "no endpoint left to try" : "no endpoint available");
      return;
    }
    conn->attempts++;
    if (index < 64) conn->tried |= 1ULL << index;
    char message[320];
    conn->upstream = ms_upstream_open(worker, conn->snapshot, cluster, index, &upstream_callbacks,
                                      conn, message, sizeof(message));
    if (conn->upstream != NULL) return;
    /* The connect failed at once: go straight on to another endpoint. */
  }
}

/* How a relay that cannot go on ends. An abort by one peer travels as an
 * abort: the other side is reset at once, as Envoy's TCP proxy does
 * (detect_and_raise_rst_tcp_connection), and what was still on its way to
 * it is dropped: plaintext the client had not taken yet, and what the
 * kernel had not sent. A FIN without close_notify is not an abort (it ends
 * the upstream's direction, as nginx and Envoy take it); see
 * docs/architecture.md, "A connection". */
typedef enum ms_relay_end {
  MS_RELAY_CLOSE,            /* our own end (idle timeout, no memory): FIN both ways */
  MS_RELAY_UPSTREAM_ABORTED, /* a socket error or a TLS failure in the stream: RST the client */
  MS_RELAY_CLIENT_ABORTED,   /* a socket error: RST the upstream, without close_notify */
} ms_relay_end;

/* `error` is the errno that ended it, or 0. */
static void fail_relay(ms_conn *conn, ms_relay_end end, int error, const char *what) {
  ERR_clear_error();
  ms_log(MS_LOG_DEBUG, "connection %s: cluster=%s endpoint=%s: %s%s%s",
         end == MS_RELAY_CLOSE ? "closed" : "reset", conn->cluster->config->name,
         ms_upstream_endpoint(conn->upstream), what, error ? ": " : "",
         error ? strerror(error) : "");
  switch (end) {
    case MS_RELAY_CLOSE:
      break;
    case MS_RELAY_UPSTREAM_ABORTED:
      MS_STAT_ADD(&conn->worker->stats, upstream_cx_destroy_remote, 1);
      MS_ENDPOINT_STAT_ADD(conn->upstream, destroy_remote, 1);
      ms_net_reset_on_close(conn->client_fd); /* closed after the batch of events */
      break;
    case MS_RELAY_CLIENT_ABORTED:
      MS_LISTENER_STAT_ADD(conn->worker, conn->link.listener, downstream_cx_reset, 1);
      ms_upstream_abort(conn->upstream);
      conn->upstream = NULL;
      break;
  }
  ms_conn_close(conn);
}

/* Every event ends here: what is left in the worker's scratch buffers moves
 * to the heap. */
static void finish_event(ms_conn *conn) {
  if (ms_tls_io_park(&conn->upstream->io) != 0)
    fail_relay(conn, MS_RELAY_CLOSE, 0, "out of memory");
}

/* ---- relaying ----------------------------------------------------------- */

/* Relaying is driven by edges: each socket reports a change once, and the
 * connection remembers what may still be read (client_readable, and the
 * upstream's io.drained). Back-pressure needs no change of interest: the
 * client is not read while sealed bytes wait for the upstream, nor the
 * upstream while plaintext waits for the client; the writable edge of the
 * full socket brings the connection back. A direction that yields for
 * fairness before its socket said EAGAIN posts the connection's task. */

static bool finished(const ms_conn *conn) {
  return conn->client_eof && conn->upstream->shut && conn->upstream_eof && conn->client_shut &&
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
  int rc = ms_upstream_flush(conn->upstream);
  if (rc < 0)
    fail_relay(conn, MS_RELAY_UPSTREAM_ABORTED, conn->upstream->io.error,
               "writing to the upstream failed");
  return rc;
}

/* Up to this much sealed output waits for the client's next read, so that
 * both go out in one write: our handshake's last flight and the client's
 * first bytes, on a new connection. */
#define COALESCE_MAX 4096

static void client_to_upstream(ms_conn *conn) {
  ms_worker *worker = conn->worker;
  size_t pending = ms_tls_io_pending_bytes(&conn->upstream->io);
  bool owed = pending > 0 && pending <= COALESCE_MAX && conn->client_readable && !conn->client_eof;
  int flushed = owed ? 1 : flush_to_upstream(conn);
  if (flushed < 0) return;
  int reads = 0;
  while (flushed == 1 && !conn->client_eof && conn->client_readable) {
    if (reads++ == MS_READS_PER_EVENT) {
      ms_events_post(&worker->events, &conn->task); /* more later: let others run */
      break;
    }
    ssize_t n = read(conn->client_fd, worker->scratch, MS_WORKER_SCRATCH);
    if (n > 0) {
      conn->last_activity = uv_now(&worker->loop);
      if (!conn->client_spoke) /* L4 relays bytes as they are: say it, relay it */
        ms_tls_to_plaintext_check(worker, conn->link.listener, worker->scratch, (size_t)n,
                                  "relayed as bytes");
      conn->client_spoke = true;
      MS_STAT_ADD(&worker->stats, bytes_sent_upstream, n);
      if (SSL_write(conn->upstream->ssl, worker->scratch, (int)n) != n) {
        fail_relay(conn, MS_RELAY_CLOSE, 0, "sealing for the upstream failed");
        return;
      }
      owed = false;
      if ((flushed = flush_to_upstream(conn)) < 0) return;
      /* A short read drained the socket for now, unless its FIN is next. */
      if (n < MS_WORKER_SCRATCH && !conn->client_hup) conn->client_readable = false;
      continue;
    }
    if (n == 0) {
      conn->client_eof = true;
      conn->client_spoke = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      conn->client_readable = false;
    } else {
      fail_relay(conn, MS_RELAY_CLIENT_ABORTED, errno, "reading from the client failed");
      return;
    }
  }
  if (owed && flush_to_upstream(conn) < 0) return; /* the client had nothing after all */
  if (conn->client_eof && !conn->upstream->close_notify_sent) {
    ms_upstream_shutdown(conn->upstream);
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
      fail_relay(conn, MS_RELAY_CLIENT_ABORTED, errno, "writing to the client failed");
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
      fail_relay(conn, MS_RELAY_CLIENT_ABORTED, errno, "writing to the client failed");
      return false;
    }
    n = 0;
  }
  if ((size_t)n < len && pending_store(&conn->to_client, data + n, len - (size_t)n) != 0) {
    fail_relay(conn, MS_RELAY_CLOSE, 0, "out of memory");
    return false;
  }
  return true;
}

/* Opens as many records as fit in the worker's scratch buffer (the
 * read-ahead makes that one read(2) for several records), then writes them
 * to the client at once. */
static void upstream_to_client(ms_conn *conn) {
  ms_worker *worker = conn->worker;
  SSL *ssl = conn->upstream->ssl;
  if (flush_to_client(conn) <= 0) {
    if (conn->state == MS_CONN_PROXYING) finish_event(conn);
    return;
  }
  for (int rounds = 0; !conn->upstream_eof && conn->to_client.len == 0; rounds++) {
    size_t got = 0, sealed = ms_tls_io_pending_bytes(&conn->upstream->io);
    int error = SSL_ERROR_NONE;
    while (got < MS_WORKER_SCRATCH) {
      int rc = SSL_read(ssl, worker->scratch + got, (int)(MS_WORKER_SCRATCH - got));
      if (rc <= 0) {
        error = SSL_get_error(ssl, rc);
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
    /* Reading may have produced something to send (a key update's answer);
     * what was sealed before is client_to_upstream's to send. */
    if (ms_tls_io_pending_bytes(&conn->upstream->io) > sealed && flush_to_upstream(conn) < 0)
      return;
    if (error == SSL_ERROR_NONE) {
      /* The buffer filled. Yield after a while; the task brings us back. */
      if (rounds >= MS_READS_PER_EVENT) {
        ms_events_post(&worker->events, &conn->task);
        break;
      }
      continue;
    }
    if (error == SSL_ERROR_WANT_READ) break;
    if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && conn->upstream->io.eof)) {
      /* close_notify, or a FIN without one: either way the upstream is done. */
      ERR_clear_error();
      conn->upstream_eof = true;
      MS_STAT_ADD(&worker->stats, upstream_cx_destroy_remote, error != SSL_ERROR_ZERO_RETURN);
      MS_ENDPOINT_STAT_ADD(conn->upstream, destroy_remote, error != SSL_ERROR_ZERO_RETURN);
      break;
    }
    if (!conn->upstream_spoke && error == SSL_ERROR_SSL) {
      /* An alert before any data: the upstream refused the handshake after
       * our side of it completed (TLS 1.3 checks client certificates then). */
      char message[640];
      ms_upstream_fail_late(conn->upstream, error, message, sizeof(message));
      attempt_failed(conn);
      return;
    }
    /* A reset or another socket error, or a TLS failure inside the stream
     * (an alert, a record that does not open): the stream is broken. */
    fail_relay(conn, MS_RELAY_UPSTREAM_ABORTED, conn->upstream->io.error,
               "reading from the upstream failed");
    return;
  }
  if (conn->upstream_eof && conn->to_client.len == 0 && !conn->client_shut) {
    conn->client_shut = true;
    /* When everything else is done, closing sends the FIN anyway. */
    if (!finished(conn)) shutdown(conn->client_fd, SHUT_WR);
  }
  end_event(conn);
}

static void relay(ms_conn *conn) {
  upstream_to_client(conn);
  if (conn->state == MS_CONN_PROXYING) client_to_upstream(conn);
}

/* ---- upstream callbacks --------------------------------------------------- */

static void on_upstream_ready(ms_upstream *upstream) {
  ms_conn *conn = upstream->owner;
  conn->state = MS_CONN_PROXYING;
  conn->last_activity = uv_now(&conn->worker->loop);
  uint32_t idle_ms = listener_of(conn)->idle_timeout_ms;
  if (idle_ms) uv_timer_start(&conn->timer, on_timer, idle_ms, 0);
  /* The upstream may have sent data along with its last handshake flight,
   * and the client may have spoken while we were connecting. */
  relay(conn);
}

static void on_upstream_failed(ms_upstream *upstream, const char *message) {
  attempt_failed(upstream->owner);
}

static void on_upstream_event(ms_upstream *upstream, uint32_t events) {
  ms_conn *conn = upstream->owner;
  if (conn->state == MS_CONN_PROXYING) relay(conn);
}

static const ms_upstream_callbacks upstream_callbacks = {
    .on_ready = on_upstream_ready,
    .on_failed = on_upstream_failed,
    .on_event = on_upstream_event,
};

/* ---- client events -------------------------------------------------------- */

/* Before PROXYING, the client matters only if it hangs up. One that left
 * without sending a byte has nothing for the upstream: stop connecting to
 * it. One that sent data and then half-closed is served as usual. */
static void client_event_early(ms_conn *conn) {
  char byte;
  ssize_t n = recv(conn->client_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) return;
  ms_log(MS_LOG_DEBUG,
         "connection closed: listener=%s: the client left before the upstream was ready",
         listener_of(conn)->name);
  ms_conn_close(conn);
}

static void on_client_event(ms_event_source *source, uint32_t events) {
  ms_conn *conn = source->data;
  if (events & (MS_EVENT_READ | MS_EVENT_HUP | MS_EVENT_ERROR)) conn->client_readable = true;
  if (events & (MS_EVENT_HUP | MS_EVENT_ERROR)) conn->client_hup = true;
  switch (conn->state) {
    case MS_CONN_CONNECTING:
      if (events & (MS_EVENT_HUP | MS_EVENT_ERROR)) client_event_early(conn);
      return;
    case MS_CONN_PROXYING:
      relay(conn);
      return;
    case MS_CONN_CLOSING:
      return;
  }
}

/* A posted turn: the retry after a failed attempt, or a relay that yielded. */
static void on_task(ms_event_source *source, uint32_t events) {
  ms_conn *conn = source->data;
  if (conn->state == MS_CONN_CONNECTING && conn->upstream == NULL)
    attempt_next(conn);
  else if (conn->state == MS_CONN_PROXYING)
    relay(conn);
}

static void on_timer(uv_timer_t *timer) {
  ms_conn *conn = timer->data;
  if (conn->state != MS_CONN_PROXYING) return;
  ms_worker *worker = conn->worker;
  uint64_t idle_ms = listener_of(conn)->idle_timeout_ms;
  uint64_t idle_for = uv_now(&worker->loop) - conn->last_activity;
  if (idle_for < idle_ms) {
    uv_timer_start(&conn->timer, on_timer, idle_ms - idle_for, 0);
    return;
  }
  MS_LISTENER_STAT_ADD(worker, conn->link.listener, downstream_cx_idle_timeout, 1);
  fail_relay(conn, MS_RELAY_CLOSE, 0, "idle timeout");
}
