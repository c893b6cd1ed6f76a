#include "sidecar/event/worker.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

#define MS_ACCEPTS_PER_WAKEUP 64
#define ACCEPT_PAUSE_MIN_MS 100
#define ACCEPT_PAUSE_MAX_MS 1000
#define LOG_INTERVAL_MS 1000

static void follow_listeners(ms_worker *worker);

/* The layers above follow the snapshot first (take_snapshot); when they
 * cannot, the worker keeps the one it has. */
static int adopt_snapshot(ms_worker *worker, ms_snapshot *snapshot) {
  if (worker->protocols->take_snapshot(worker, snapshot) != 0) return -1;
  ms_snapshot_free(worker->snapshot);
  worker->snapshot = snapshot;
  follow_listeners(worker);
  return 0;
}

/* ---- accepting ------------------------------------------------------------ */

/* schedule_resume sets the worker's accept timer for the earliest paused
 * listen socket, or stops it when none is paused. */
static void on_accept_timer(uv_timer_t *timer);

static void schedule_resume(ms_worker *worker) {
  uint64_t earliest = UINT64_MAX;
  for (const ms_listen_socket *l = worker->listen_sockets; l; l = l->next)
    if (l->paused && l->resume_ms < earliest) earliest = l->resume_ms;
  if (earliest == UINT64_MAX) {
    uv_timer_stop(&worker->accept_timer);
    return;
  }
  uint64_t now = uv_now(&worker->loop);
  uv_timer_start(&worker->accept_timer, on_accept_timer, earliest > now ? earliest - now : 0, 0);
}

/* on_accept_timer resumes the paused listen sockets whose pause is over:
 * each is posted, since edge-triggered readiness will not report the
 * connections that waited in its backlog. */
static void on_accept_timer(uv_timer_t *timer) {
  ms_worker *worker = timer->data;
  uint64_t now = uv_now(&worker->loop);
  for (ms_listen_socket *l = worker->listen_sockets; l; l = l->next) {
    if (l->paused && l->resume_ms <= now) {
      l->paused = false;
      ms_events_post(&worker->events, &l->source);
    }
  }
  schedule_resume(worker);
}

/* pause_accepting stops accepting on `listener` after accept(2) failed for
 * lack of descriptors or memory (`error`): the connection stays in the
 * backlog, and trying again at once would fail again, as fast as the CPU
 * allows. The pause doubles from ACCEPT_PAUSE_MIN_MS to ACCEPT_PAUSE_MAX_MS
 * while the failures go on; the log says so once a second. */
static void pause_accepting(ms_listen_socket *listener, int error) {
  ms_worker *worker = listener->worker;
  MS_LISTENER_STAT_ADD(worker, listener->sockets, downstream_cx_accept_fail, 1);
  uint32_t pause = listener->pause_ms * 2;
  if (pause < ACCEPT_PAUSE_MIN_MS) pause = ACCEPT_PAUSE_MIN_MS;
  if (pause > ACCEPT_PAUSE_MAX_MS) pause = ACCEPT_PAUSE_MAX_MS;
  listener->pause_ms = pause;
  listener->paused = true;
  uint64_t now = uv_now(&worker->loop);
  listener->resume_ms = now + pause;
  schedule_resume(worker);
  uint64_t count = ms_log_limit_tick(&worker->accept_log, now, LOG_INTERVAL_MS);
  long long open = (long long)atomic_load(&worker->connection_count);
  if (count > 0)
    ms_log(MS_LOG_WARN,
           "worker %u: accept failed on listener %s (%llu time%s since the last line): %s; "
           "pausing accepts for %u ms (%lld connection%s open in this worker)",
           worker->index, listener->sockets->name, (unsigned long long)count, ms_plural(count),
           strerror(error), pause, open, ms_plural((unsigned long long)open));
}

/* refuse closes an accepted socket over its listener's max_connections. */
static void refuse(ms_listen_socket *listener, int fd, uint32_t max_connections) {
  ms_worker *worker = listener->worker;
  /* Counted first: whoever sees the close may look at /stats at once. */
  MS_LISTENER_STAT_ADD(worker, listener->sockets, downstream_cx_overflow, 1);
  close(fd);
  uint64_t count = ms_log_limit_tick(&worker->overflow_log, uv_now(&worker->loop), LOG_INTERVAL_MS);
  if (count > 0)
    ms_log(MS_LOG_WARN,
           "worker %u: refused a connection on listener %s (%llu refused since the last line): "
           "over its max_connections of %u",
           worker->index, listener->sockets->name, (unsigned long long)count, max_connections);
}

/* Edge-triggered: accept until EAGAIN, or post the rest for the next turn
 * so that one busy listener does not hold up the connections. */
static void on_accept(ms_event_source *source, uint32_t events) {
  ms_listen_socket *listener = source->data;
  ms_worker *worker = listener->worker;
  if (listener->paused) return; /* the accept timer posts it */
  for (int i = 0; i < MS_ACCEPTS_PER_WAKEUP; i++) {
    int fd = accept4(listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        pause_accepting(listener, errno);
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        uint64_t count =
            ms_log_limit_tick(&worker->accept_log, uv_now(&worker->loop), LOG_INTERVAL_MS);
        if (count > 0)
          ms_log(MS_LOG_WARN,
                 "worker %u: accept failed on listener %s (%llu time%s since the last line): %s",
                 worker->index, listener->sockets->name, (unsigned long long)count,
                 ms_plural(count), strerror(errno));
      }
      return;
    }
    listener->pause_ms = 0;
    const ms_listener *in_snapshot = ms_snapshot_find_listener(worker->snapshot, listener->sockets);
    if (in_snapshot &&
        atomic_load_explicit(&listener->sockets->connections, memory_order_relaxed) >=
            in_snapshot->config->max_connections) {
      refuse(listener, fd, in_snapshot->config->max_connections);
      continue;
    }
    if (in_snapshot && in_snapshot->config->protocol == MS_PROTOCOL_HTTP)
      worker->protocols->accept_http(worker, fd, listener->sockets);
    else
      worker->protocols->accept_l4(worker, fd, listener->sockets);
  }
  ms_events_post(&worker->events, &listener->source);
}

/* Never called during a batch of events (snapshots are taken up in the
 * wake-up callback, between batches): the memory can go at once. */
static void close_listen_socket(ms_worker *worker, ms_listen_socket *listener) {
  for (ms_listen_socket **p = &worker->listen_sockets; *p; p = &(*p)->next) {
    if (*p == listener) {
      *p = listener->next;
      break;
    }
  }
  ms_events_unpost(&worker->events, &listener->source);
  if (listener->paused) schedule_resume(worker);
  close(listener->fd);
  ms_listener_sockets_free(listener->sockets);
  free(listener);
}

static int open_listen_socket(ms_worker *worker, ms_listener_sockets *sockets) {
  int fd = ms_listener_sockets_take(sockets, worker->index);
  if (fd < 0) return 0;
  ms_listen_socket *listener = calloc(1, sizeof(*listener));
  if (listener == NULL) {
    close(fd);
    return UV_ENOMEM;
  }
  ms_event_source_init(&listener->source, on_accept, listener);
  int rc = ms_events_add(&worker->events, fd, &listener->source);
  if (rc != 0) {
    free(listener);
    close(fd);
    return rc;
  }
  listener->worker = worker;
  listener->sockets = ms_listener_sockets_up_ref(sockets);
  listener->fd = fd;
  listener->next = worker->listen_sockets;
  worker->listen_sockets = listener;
  return 0;
}

static bool has_listen_socket(const ms_worker *worker, const ms_listener_sockets *sockets) {
  for (const ms_listen_socket *l = worker->listen_sockets; l; l = l->next)
    if (l->sockets == sockets) return true;
  return false;
}

/* Accept on exactly the listeners of the worker's snapshot. */
static void follow_listeners(ms_worker *worker) {
  if (!worker->accepting) return;
  ms_listen_socket *next;
  for (ms_listen_socket *l = worker->listen_sockets; l; l = next) {
    next = l->next;
    if (!ms_snapshot_find_listener(worker->snapshot, l->sockets)) close_listen_socket(worker, l);
  }
  for (size_t i = 0; i < worker->snapshot->listener_count; i++) {
    ms_listener_sockets *sockets = worker->snapshot->listeners[i].sockets;
    if (has_listen_socket(worker, sockets)) continue;
    int rc = open_listen_socket(worker, sockets);
    if (rc != 0)
      ms_log(MS_LOG_ERROR, "worker %u: cannot accept on listener %s: %s", worker->index,
             sockets->name, uv_strerror(rc));
  }
}

static void stop_accepting(ms_worker *worker) {
  worker->accepting = false;
  while (worker->listen_sockets)
    close_listen_socket(worker, worker->listen_sockets);
  uv_timer_stop(&worker->accept_timer);
}

bool ms_worker_is_current(ms_worker *worker) {
  /* The worker swaps NULL in and adopts the snapshot in one callback, before
   * any connection of its loop sees the new one. */
  return atomic_load(&worker->next_snapshot) == NULL;
}

static void on_wakeup(uv_async_t *async) {
  ms_worker *worker = async->data;
  ms_snapshot *next = atomic_exchange(&worker->next_snapshot, NULL);
  if (next != NULL && adopt_snapshot(worker, next) != 0) {
    ms_log(MS_LOG_ERROR, "worker %u: out of memory taking up snapshot %llu; keeping %llu",
           worker->index, (unsigned long long)next->version,
           (unsigned long long)worker->snapshot->version);
    ms_snapshot_free(next);
  }
  if (atomic_load(&worker->drain_requested) && !worker->draining) {
    worker->draining = true;
    stop_accepting(worker);
    ms_client_link *next;
    for (ms_client_link *link = worker->clients; link; link = next) {
      next = link->next; /* draining may close it */
      if (link->drain) link->drain(link);
    }
  }
  if (atomic_load(&worker->stop_requested)) {
    stop_accepting(worker);
    while (worker->clients)
      worker->clients->close(worker->clients);
    worker->protocols->stop(worker);
    uv_close((uv_handle_t *)&worker->accept_timer, NULL);
    uv_close((uv_handle_t *)&worker->wakeup, NULL);
  }
}

int ms_worker_client_open(ms_worker *worker, ms_client_link *link, int fd, ms_event_source *source,
                          const ms_listener_sockets *sockets) {
  int rc = ms_events_add(&worker->events, fd, source);
  if (rc != 0) {
    ms_log(MS_LOG_ERROR, "cannot take a connection (%s); closing it", strerror(-rc));
    close(fd);
    return -1;
  }
  link->prev = NULL;
  link->next = worker->clients;
  if (worker->clients) worker->clients->prev = link;
  worker->clients = link;
  /* The count and the reference are bookkeeping, not a change of the
   * listener: `sockets` is const to the connections. */
  link->listener = ms_listener_sockets_up_ref((ms_listener_sockets *)sockets);
  atomic_fetch_add_explicit(&link->listener->connections, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&worker->connection_count, 1, memory_order_relaxed);
  MS_LISTENER_STAT_ADD(worker, sockets, downstream_cx_total, 1);
  MS_LISTENER_STAT_ADD(worker, sockets, downstream_cx_active, 1);
  return 0;
}

void ms_worker_client_close(ms_worker *worker, ms_client_link *link) {
  if (link->prev)
    link->prev->next = link->next;
  else
    worker->clients = link->next;
  if (link->next) link->next->prev = link->prev;
  atomic_fetch_sub_explicit(&link->listener->connections, 1, memory_order_relaxed);
  MS_LISTENER_STAT_ADD(worker, link->listener, downstream_cx_active, -1);
  ms_listener_sockets_free(link->listener);
  link->listener = NULL;
  atomic_fetch_sub_explicit(&worker->connection_count, 1, memory_order_relaxed);
}

int ms_worker_init(ms_worker *worker, uint32_t index, ms_snapshot *snapshot,
                   const ms_worker_protocols *protocols) {
  memset(worker, 0, sizeof(*worker));
  worker->index = index;
  worker->protocols = protocols;
  worker->accepting = true;
  atomic_init(&worker->next_snapshot, NULL);
  worker->events.epfd = -1;
  int rc = uv_loop_init(&worker->loop);
  if (rc != 0) return rc;
  rc = ms_events_init(&worker->events);
  if (rc != 0) return rc;
  rc = uv_async_init(&worker->loop, &worker->wakeup, on_wakeup);
  if (rc != 0) return rc;
  worker->wakeup.data = worker;
  uv_timer_init(&worker->loop, &worker->accept_timer); /* cannot fail */
  worker->accept_timer.data = worker;
  worker->scratch = malloc(MS_WORKER_SCRATCH);
  worker->tls_scratch = malloc(sizeof(ms_tls_io_scratch));
  worker->sessions = ms_session_cache_new(1024);
  if (!worker->scratch || !worker->tls_scratch || !worker->sessions ||
      adopt_snapshot(worker, ms_snapshot_up_ref(snapshot)) != 0)
    return UV_ENOMEM;
  return 0;
}

static void run(void *arg) {
  ms_worker *worker = arg;
  ms_events_run(&worker->events, &worker->loop);
}

int ms_worker_start(ms_worker *worker) {
  return uv_thread_create(&worker->thread, run, worker);
}

void ms_worker_publish(ms_worker *worker, ms_snapshot *snapshot) {
  ms_snapshot *unread = atomic_exchange(&worker->next_snapshot, ms_snapshot_up_ref(snapshot));
  ms_snapshot_free(unread);
  uv_async_send(&worker->wakeup);
}

void ms_worker_drain(ms_worker *worker) {
  atomic_store(&worker->drain_requested, true);
  uv_async_send(&worker->wakeup);
}

void ms_worker_stop(ms_worker *worker) {
  atomic_store(&worker->stop_requested, true);
  uv_async_send(&worker->wakeup);
}

void ms_worker_join(ms_worker *worker) {
  uv_thread_join(&worker->thread);
  uv_loop_close(&worker->loop);
  ms_events_cleanup(&worker->events);
  ms_snapshot_free(atomic_exchange(&worker->next_snapshot, NULL));
  ms_snapshot_free(worker->snapshot);
  worker->snapshot = NULL;
  ms_session_cache_free(worker->sessions);
  free(worker->scratch);
  free(worker->tls_scratch);
}
