#include "sidecar/upstream/upstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/log.h"
#include "common/net.h"

static void on_event(ms_event_source *source, uint32_t events);
static void on_timer(uv_timer_t *timer);

const char *ms_upstream_endpoint(const ms_upstream *upstream) {
  return upstream->cluster->endpoints[upstream->endpoint_index].config->address.text;
}

ms_endpoint_state *ms_upstream_endpoint_state(const ms_upstream *upstream) {
  return upstream->cluster->endpoints[upstream->endpoint_index].state;
}

static void release_endpoint(ms_upstream *upstream) {
  if (!upstream->endpoint_counted) return;
  upstream->endpoint_counted = false;
  atomic_fetch_sub_explicit(&ms_upstream_endpoint_state(upstream)->active_connections, 1,
                            memory_order_relaxed);
}

static void release_tls(ms_upstream *upstream) {
  if (upstream->ssl) {
    SSL_free(upstream->ssl); /* and its BIO */
    upstream->ssl = NULL;
  }
  ms_tls_io_cleanup(&upstream->io);
  if (upstream->tls) {
    atomic_fetch_sub_explicit(&upstream->tls->active_connections, 1, memory_order_relaxed);
    ms_tls_context_free(upstream->tls);
    upstream->tls = NULL;
  }
}

static void on_timer_closed(uv_handle_t *handle) {
  ms_upstream *upstream = handle->data;
  ms_snapshot_free(upstream->snapshot);
  free(upstream);
}

void ms_upstream_close(ms_upstream *upstream) {
  if (upstream == NULL || upstream->state == MS_UPSTREAM_CLOSED) return;
  upstream->state = MS_UPSTREAM_CLOSED;
  release_tls(upstream);
  release_endpoint(upstream);
  /* Closing the descriptor takes it out of the epoll set; an event fetched
   * for it before finds CLOSED, and the memory outlives the batch. */
  close(upstream->fd);
  upstream->fd = -1;
  uv_close((uv_handle_t *)&upstream->timer, on_timer_closed);
}

void ms_upstream_abort(ms_upstream *upstream) {
  if (upstream == NULL || upstream->state == MS_UPSTREAM_CLOSED) return;
  ms_net_reset_on_close(upstream->fd);
  ms_upstream_close(upstream);
}

/* Counts a failed connect or handshake against the endpoint, which may
 * eject it. */
static void record_failure_at(ms_worker *worker, const ms_cluster *cluster, size_t index,
                              bool handshake, const char *message) {
  ms_endpoint_state *state = cluster->endpoints[index].state;
  atomic_fetch_add_explicit(handshake ? &state->handshake_failures : &state->connect_failures, 1,
                            memory_order_relaxed);
  ms_endpoint_state_set_error(state, message);
  uint32_t ejected_ms = ms_endpoint_record_failure(cluster, index, (int64_t)uv_now(&worker->loop));
  if (ejected_ms)
    ms_log(MS_LOG_WARN,
           "endpoint ejected: cluster=%s endpoint=%s for %u ms after %u failure%s in a row",
           cluster->config->name, cluster->endpoints[index].config->address.text, ejected_ms,
           cluster->config->outlier_detection.consecutive_failures,
           ms_plural(cluster->config->outlier_detection.consecutive_failures));
}

static void record_failure(ms_upstream *upstream, bool handshake, const char *message) {
  record_failure_at(upstream->worker, upstream->cluster, upstream->endpoint_index, handshake,
                    message);
}

static void connect_failed_message(const ms_cluster *cluster, size_t index, const char *address,
                                   int error, char *message, size_t message_len) {
  snprintf(message, message_len, "connect failed: cluster=%s endpoint=%s address=%s: %s",
           cluster->config->name, cluster->endpoints[index].config->address.text, address,
           strerror(-error));
  ms_log(MS_LOG_WARN, "%s", message);
}

static void fail(ms_upstream *upstream, bool handshake, const char *message) {
  record_failure(upstream, handshake, message);
  upstream->callbacks->on_failed(upstream, message);
}

static void connect_failed(ms_upstream *upstream, int error) {
  char message[MS_UPSTREAM_MESSAGE_LEN];
  MS_STAT_ADD(&upstream->worker->stats, upstream_cx_connect_fail, 1);
  connect_failed_message(upstream->cluster, upstream->endpoint_index, upstream->address, error,
                         message, sizeof(message));
  fail(upstream, false, message);
}

static void handshake_failed(ms_upstream *upstream, ms_tls_failure failure, const char *description,
                             char *line, size_t line_len) {
  ms_worker *worker = upstream->worker;
  ms_tls_io_flush(&upstream->io); /* our alert, if there is one: best effort */
  MS_STAT_ADD(&worker->stats, ssl_connection_error, 1);
  MS_STAT_ADD(&worker->stats, handshake_failure[failure], 1);
  const char *sni = upstream->cluster->server_names[upstream->endpoint_index];
  snprintf(line, line_len, "handshake failed: cluster=%s endpoint=%s sni=%s reason=%s: %s",
           upstream->cluster->config->name, ms_upstream_endpoint(upstream), sni ? sni : "none",
           ms_tls_failure_name(failure), description);
  ms_log(MS_LOG_ERROR, "%s", line);
  record_failure(upstream, true, line);
}

static void handshake_failed_now(ms_upstream *upstream, ms_tls_failure failure,
                                 const char *description) {
  char line[MS_UPSTREAM_MESSAGE_LEN];
  handshake_failed(upstream, failure, description, line, sizeof(line));
  upstream->callbacks->on_failed(upstream, line);
}

static ms_tls_failure describe(ms_upstream *upstream, int ssl_error, char *description,
                               size_t description_len) {
  return ms_tls_describe_failure_seen(upstream->ssl, ssl_error, upstream->sni_sent,
                                      upstream->io.first, upstream->io.first_len, description,
                                      description_len);
}

static void describe_and_fail(ms_upstream *upstream, int ssl_error) {
  char description[480];
  ms_tls_failure failure = describe(upstream, ssl_error, description, sizeof(description));
  handshake_failed_now(upstream, failure, description);
}

void ms_upstream_fail_late(ms_upstream *upstream, int ssl_error, char *message,
                           size_t message_len) {
  char description[480];
  ms_tls_failure failure = describe(upstream, ssl_error, description, sizeof(description));
  handshake_failed(upstream, failure, description, message, message_len);
}

ms_upstream *ms_upstream_open(ms_worker *worker, ms_snapshot *snapshot, const ms_cluster *cluster,
                              size_t endpoint_index, const ms_upstream_callbacks *callbacks,
                              void *owner, char *message, size_t message_len) {
  const ms_endpoint *endpoint = &cluster->endpoints[endpoint_index];
  const struct sockaddr_storage *peer =
      &endpoint->addrs[worker->address_cursor++ % endpoint->addr_count];
  const struct sockaddr *address = (const struct sockaddr *)peer;
  char text[64];
  ms_net_format(address, text, sizeof(text));
  atomic_fetch_add_explicit(&endpoint->state->total_connections, 1, memory_order_relaxed);
  MS_STAT_ADD(&worker->stats, upstream_cx_total, 1);

  ms_upstream *upstream = calloc(1, sizeof(*upstream));
  int fd = upstream ? ms_net_connect(address) : -ENOMEM;
  if (fd >= 0) {
    ms_event_source_init(&upstream->source, on_event, upstream);
    int rc = ms_events_add(&worker->events, fd, &upstream->source);
    if (rc != 0) {
      close(fd);
      fd = rc;
    }
  }
  if (fd < 0) {
    free(upstream);
    MS_STAT_ADD(&worker->stats, upstream_cx_connect_fail, 1);
    connect_failed_message(cluster, endpoint_index, text, fd, message, message_len);
    record_failure_at(worker, cluster, endpoint_index, false, message);
    return NULL;
  }
  upstream->state = MS_UPSTREAM_CONNECTING;
  upstream->worker = worker;
  upstream->snapshot = ms_snapshot_up_ref(snapshot);
  upstream->cluster = cluster;
  upstream->endpoint_index = endpoint_index;
  memcpy(upstream->address, text, sizeof(text));
  upstream->peer = *peer;
  upstream->fd = fd;
  upstream->callbacks = callbacks;
  upstream->owner = owner;
  upstream->opened_ms = uv_now(&worker->loop);
  atomic_fetch_add_explicit(&endpoint->state->active_connections, 1, memory_order_relaxed);
  upstream->endpoint_counted = true;
  uv_timer_init(&worker->loop, &upstream->timer);
  upstream->timer.data = upstream;
  uv_timer_start(&upstream->timer, on_timer, cluster->config->connect_timeout_ms, 0);
  return upstream;
}

/* ---- TLS handshake ------------------------------------------------------ */

static void do_handshake(ms_upstream *upstream) {
  int rc = SSL_do_handshake(upstream->ssl);
  int error = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(upstream->ssl, rc);
  if (error != SSL_ERROR_NONE && error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
    describe_and_fail(upstream, error);
    return;
  }
  /* Done: the Finished waits for the owner's first bytes (on_ready). */
  if (rc != 1 && ms_tls_io_flush(&upstream->io) < 0) {
    char description[160];
    snprintf(description, sizeof(description), "sending to the upstream failed: %s",
             strerror(upstream->io.error));
    ERR_clear_error();
    handshake_failed_now(upstream, MS_TLS_FAILURE_CONNECTION_CLOSED, description);
    return;
  }
  if (rc != 1) {
    /* Waiting for the upstream: its socket's next event comes back here. */
    if (ms_tls_io_park(&upstream->io) != 0) fail(upstream, true, "out of memory");
    return;
  }
  ms_worker *worker = upstream->worker;
  ms_endpoint_state *state = ms_upstream_endpoint_state(upstream);
  MS_STAT_ADD(&worker->stats, ssl_handshake, 1);
  MS_ENDPOINT_STAT_ADD(upstream, handshakes, 1);
  if (SSL_session_reused(upstream->ssl)) {
    MS_STAT_ADD(&worker->stats, ssl_session_reused, 1);
    MS_ENDPOINT_STAT_ADD(upstream, sessions_reused, 1);
  } else {
    MS_STAT_ADD(&worker->stats, ssl_handshake_full, 1);
  }
  ms_endpoint_record_success(state);
  uv_timer_stop(&upstream->timer);
  upstream->state = MS_UPSTREAM_READY;
  upstream->callbacks->on_ready(upstream);
}

/* The connect finished; `events` is what the socket reported with it (the
 * upstream may already have hung up). */
static void start_tls(ms_upstream *upstream, uint32_t events) {
  const ms_cluster *cluster = upstream->cluster;
  size_t index = upstream->endpoint_index;
  upstream->tls = ms_tls_context_up_ref(cluster->tls);
  atomic_fetch_add_explicit(&upstream->tls->active_connections, 1, memory_order_relaxed);
  ms_tls_io_init(&upstream->io, upstream->fd, upstream->worker->tls_scratch);
  upstream->io.drained = true; /* nothing but a hang-up can come before our ClientHello */
  if (events & (MS_EVENT_HUP | MS_EVENT_ERROR)) ms_tls_io_readable(&upstream->io, true);
  upstream->ssl = SSL_new(upstream->tls->ssl_ctx);
  BIO *bio = upstream->ssl ? ms_tls_io_bio_new(&upstream->io) : NULL;
  if (bio == NULL) {
    ERR_clear_error();
    fail(upstream, true, "out of memory starting TLS");
    return;
  }
  SSL_set_bio(upstream->ssl, bio, bio);
  SSL_set_connect_state(upstream->ssl);
  SSL_set_app_data(upstream->ssl, upstream);
  /* Free the handshake-only configuration once it is done: idle connections
   * are most of a sidecar's connections, so their size matters. */
  SSL_set_shed_handshake_config(upstream->ssl, 1);
  const char *server_name = cluster->server_names[index];
  upstream->sni_sent = server_name != NULL;
  if (server_name) SSL_set_tlsext_host_name(upstream->ssl, server_name);
  if (ms_ssl_set_peer_check(upstream->ssl, &cluster->peer_checks[index]) != 0) {
    fail(upstream, true, "out of memory starting TLS");
    return;
  }
  if (cluster->config->tls.settings.session_reuse) {
    upstream->session_key = ms_session_cache_key(upstream->tls->generation, cluster->config->name,
                                                 upstream->address, server_name);
    SSL_SESSION *session = ms_session_cache_take(upstream->worker->sessions, upstream->session_key);
    if (session) {
      SSL_set_session(upstream->ssl, session);
      SSL_SESSION_free(session);
    }
  }
  upstream->state = MS_UPSTREAM_HANDSHAKING;
  uv_timer_start(&upstream->timer, on_timer, cluster->config->handshake_timeout_ms, 0);
  do_handshake(upstream);
}

int ms_upstream_on_new_session(SSL *ssl, SSL_SESSION *session) {
  ms_upstream *upstream = SSL_get_app_data(ssl);
  if (upstream == NULL || upstream->session_key == 0) return 0;
  ms_session_cache_put(upstream->worker->sessions, upstream->session_key, session);
  return 1;
}

/* ---- ready ---------------------------------------------------------------- */

int ms_upstream_flush(ms_upstream *upstream) {
  int rc = ms_tls_io_flush(&upstream->io);
  if (rc == 1 && upstream->close_notify_sent && !upstream->shut) {
    upstream->shut = true;
    /* After the upstream's own FIN (read, or reported by the socket) the
     * connection closes next and close() sends ours; a shutdown() then
     * often meets the upstream's reset. */
    if (!upstream->io.eof && !upstream->io.hup) shutdown(upstream->fd, SHUT_WR);
  }
  return rc;
}

void ms_upstream_shutdown(ms_upstream *upstream) {
  if (upstream->close_notify_sent) return;
  upstream->close_notify_sent = true;
  SSL_shutdown(upstream->ssl); /* queues close_notify in the BIO */
  ERR_clear_error();
}

/* ---- events --------------------------------------------------------------- */

static void on_event(ms_event_source *source, uint32_t events) {
  ms_upstream *upstream = source->data;
  bool hup = events & (MS_EVENT_HUP | MS_EVENT_ERROR);
  switch (upstream->state) {
    case MS_UPSTREAM_CONNECTING: {
      int error = hup ? ms_net_socket_error(upstream->fd) : 0;
      if (error != 0)
        connect_failed(upstream, error);
      else if (events & (MS_EVENT_WRITE | MS_EVENT_HUP))
        start_tls(upstream, events);
      return;
    }
    case MS_UPSTREAM_HANDSHAKING:
      if (events & (MS_EVENT_READ | MS_EVENT_HUP | MS_EVENT_ERROR))
        ms_tls_io_readable(&upstream->io, hup);
      do_handshake(upstream);
      return;
    case MS_UPSTREAM_READY:
      if (events & (MS_EVENT_READ | MS_EVENT_HUP | MS_EVENT_ERROR))
        ms_tls_io_readable(&upstream->io, hup);
      upstream->callbacks->on_event(upstream, events);
      return;
    case MS_UPSTREAM_CLOSED:
      return;
  }
}

static void on_timer(uv_timer_t *timer) {
  ms_upstream *upstream = timer->data;
  switch (upstream->state) {
    case MS_UPSTREAM_CONNECTING:
      MS_STAT_ADD(&upstream->worker->stats, upstream_cx_connect_timeout, 1);
      MS_ENDPOINT_STAT_ADD(upstream, connect_timeouts, 1);
      connect_failed(upstream, -ETIMEDOUT);
      return;
    case MS_UPSTREAM_HANDSHAKING: {
      char description[160];
      ERR_clear_error();
      snprintf(description, sizeof(description), "no answer within handshake_timeout_ms (%u ms)",
               upstream->cluster->config->handshake_timeout_ms);
      handshake_failed_now(upstream, MS_TLS_FAILURE_TIMEOUT, description);
      return;
    }
    case MS_UPSTREAM_READY:
      if (upstream->callbacks->on_timeout) upstream->callbacks->on_timeout(upstream);
      return;
    case MS_UPSTREAM_CLOSED:
      return;
  }
}

void ms_upstream_set_timeout(ms_upstream *upstream, uint64_t ms) {
  if (ms)
    uv_timer_start(&upstream->timer, on_timer, ms, 0);
  else
    uv_timer_stop(&upstream->timer);
}

/* ---- per worker ------------------------------------------------------------ */

static void free_balancers(ms_worker *worker) {
  for (size_t i = 0; i < worker->balancer_count; i++)
    ms_balancer_cleanup(&worker->balancers[i]);
  free(worker->balancers);
  worker->balancers = NULL;
  worker->balancer_count = 0;
}

int ms_upstream_worker_take_snapshot(ms_worker *worker, const ms_snapshot *snapshot) {
  bool same_shape = worker->balancers && worker->balancer_count == snapshot->cluster_count;
  for (size_t i = 0; same_shape && i < snapshot->cluster_count; i++)
    same_shape = worker->balancers[i].endpoint_count == snapshot->clusters[i].endpoint_count;
  if (same_shape) return 0;
  ms_balancer *balancers =
      calloc(snapshot->cluster_count ? snapshot->cluster_count : 1, sizeof(*balancers));
  if (balancers == NULL) return -1;
  for (size_t i = 0; i < snapshot->cluster_count; i++) {
    if (ms_balancer_init(&balancers[i], &snapshot->clusters[i],
                         (uint64_t)worker->index * 7919 + i + 1) != 0) {
      for (size_t j = 0; j < i; j++)
        ms_balancer_cleanup(&balancers[j]);
      free(balancers);
      return -1;
    }
  }
  free_balancers(worker);
  worker->balancers = balancers;
  worker->balancer_count = snapshot->cluster_count;
  return 0;
}

void ms_upstream_worker_stop(ms_worker *worker) {
  free_balancers(worker);
}

size_t ms_upstream_pick(ms_worker *worker, const ms_cluster *cluster, uint64_t tried) {
  int64_t now_ms = (int64_t)uv_now(&worker->loop);
  if (cluster->index < worker->balancer_count &&
      worker->balancers[cluster->index].endpoint_count == cluster->endpoint_count)
    return ms_balancer_pick(&worker->balancers[cluster->index], cluster, tried, now_ms);
  /* The cluster is from an older snapshot than the worker's balancers (an
   * HTTP request retried after the worker took up a new one, with other
   * clusters or endpoints): a balancer of its own for this one pick. */
  ms_balancer once;
  if (ms_balancer_init(&once, cluster, (uint64_t)worker->index * 7919 + tried + 1) != 0)
    return MS_NO_ENDPOINT;
  size_t index = ms_balancer_pick(&once, cluster, tried, now_ms);
  ms_balancer_cleanup(&once);
  return index;
}
