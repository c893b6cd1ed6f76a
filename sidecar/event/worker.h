/* worker.h: a data-plane thread. Each worker runs its own libuv loop,
 * accepts on its own SO_REUSEPORT sockets, and runs the connections it
 * accepted from start to end. It learns of a new snapshot through
 * uv_async_send and takes it up between events; connections keep the
 * snapshot they started with.
 *
 * The worker knows no protocol: what it does with an accepted client, and
 * what the layers above keep per worker, come from the table of functions
 * the server hands it (ms_worker_protocols), so that the event layer
 * includes neither the L4 relay, nor the HTTP proxy, nor the upstream code.
 * Private to the sidecar's data plane: the server, the L4 relay, the HTTP
 * proxy and the upstream code include it. */
#ifndef MS_WORKER_H
#define MS_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/log.h"
#include "sidecar/event/events.h"
#include "sidecar/event/snapshot.h"
#include "sidecar/event/stats.h"
#include "sidecar/tls/session_cache.h"
#include "sidecar/tls/tls_io.h"

#define MS_WORKER_SCRATCH (256 * 1024)

typedef struct ms_worker ms_worker;

/* What the layers above keep per worker; the worker holds the pointers for
 * them and never looks inside (their types are theirs). */
struct ms_balancer;    /* upstream/balancer.h */
struct ms_http_worker; /* http/http_internal.h */

/* What a worker runs above its events, handed to ms_worker_init by the
 * server (as ms_server_source hands the server what the control plane
 * does). The table outlives the worker. Each function runs on the worker's
 * thread, except take_snapshot during ms_worker_init. */
typedef struct ms_worker_protocols {
  /* accept_l4 takes over the accepted client socket `fd` (non-blocking) of
   * the L4 listener using `sockets` (relay.h: ms_conn_start); accept_http
   * the same for an HTTP listener (http_conn.h: ms_http_conn_start). On
   * failure they close `fd`. */
  void (*accept_l4)(ms_worker *worker, int fd, const ms_listener_sockets *sockets);
  void (*accept_http)(ms_worker *worker, int fd, const ms_listener_sockets *sockets);
  /* take_snapshot: the worker is taking up `snapshot` (not yet
   * worker->snapshot): what the layers above keep per cluster follows it
   * (the balancers, upstream.h). Returns 0, or -1 when memory ran out:
   * the worker then keeps the snapshot it has, and so must the hook. */
  int (*take_snapshot)(ms_worker *worker, const ms_snapshot *snapshot);
  /* stop: the worker stops, every client connection closed; the layers
   * above close and free what they keep per worker (the idle upstreams,
   * the access log files, the balancers). Called once. */
  void (*stop)(ms_worker *worker);
} ms_worker_protocols;

/* What every client connection (L4 or HTTP) has first: its place in the
 * worker's list of clients, and how to close it when the worker stops. */
typedef struct ms_client_link {
  struct ms_client_link *prev, *next;
  void (*close)(struct ms_client_link *link);
  /* When the worker starts draining: an HTTP connection closes once idle
   * (NULL: the connection ends when its peers end it). */
  void (*drain)(struct ms_client_link *link);
  ms_listener_sockets *listener; /* counted in its `connections`; reference held */
} ms_client_link;

/* One listener's socket in this worker. When accept(2) fails for lack of
 * descriptors or memory the socket is paused: not accepted on until
 * `resume_ms` (worker's loop time), the pause doubling from 100 ms to 1 s
 * while the failures go on. */
typedef struct ms_listen_socket {
  ms_worker *worker;
  ms_listener_sockets *sockets; /* reference held: identifies the listener across snapshots */
  int fd;                       /* this worker's descriptor, taken from `sockets` */
  ms_event_source source;       /* in the worker's event set */
  bool paused;                  /* accept failed: wait for the worker's accept_timer */
  uint64_t resume_ms;           /* when paused: accept again at this loop time */
  uint32_t pause_ms;            /* the last pause; 0 after an accept succeeds */
  struct ms_listen_socket *next;
} ms_listen_socket;

struct ms_worker {
  uint32_t index;
  const ms_worker_protocols *protocols;
  uv_loop_t loop;
  ms_events events; /* the proxied sockets, nested in `loop` */
  uv_thread_t thread;
  uv_async_t wakeup;
  _Atomic(ms_snapshot *) next_snapshot; /* published by the main thread */
  atomic_bool drain_requested;          /* stop accepting */
  atomic_bool stop_requested;           /* close everything and return */
  atomic_llong connection_count;        /* read by the main thread while draining */

  ms_snapshot *snapshot;            /* the one new connections use */
  ms_listen_socket *listen_sockets; /* follows the snapshot's listeners */
  uv_timer_t accept_timer;          /* resumes paused listen sockets */
  ms_log_limit accept_log;          /* accept failures: a line a second */
  ms_log_limit overflow_log;        /* connections over max_connections: a line a second */
  ms_log_limit tls_hello_log;       /* TLS sent to a plaintext listener: a line a second */
  bool accepting;                   /* false once draining */
  bool draining;                    /* drain asked: keep-alive connections close when idle */
  ms_client_link *clients;          /* doubly linked, for drain and stop */
  ms_session_cache *sessions;
  /* The upstream layer's (upstream.h): one balancer per cluster of
   * `snapshot`, made by the take_snapshot hook; and a cursor that spreads
   * connections over an endpoint's addresses. */
  struct ms_balancer *balancers;
  size_t balancer_count;
  uint32_t address_cursor;
  /* The HTTP proxy's (http_conn.h): its idle keep-alive upstreams, access
   * log files and requests under way; NULL until the first HTTP client. */
  struct ms_http_worker *http;
  ms_stats stats;
  char *scratch;                  /* MS_WORKER_SCRATCH bytes for relaying */
  ms_tls_io_scratch *tls_scratch; /* read-ahead and sealed bytes during one event */
};

/* ms_worker_listener_stats returns the worker's own block of the counters
 * of the listener `sockets` (stats.h), which only this worker writes. */
static inline ms_listener_stats *ms_worker_listener_stats(const ms_worker *worker,
                                                          const ms_listener_sockets *sockets) {
  return &sockets->stats[worker->index];
}

/* MS_LISTENER_STAT_ADD bumps a counter of MS_LISTENER_COUNTERS (or of
 * MS_HTTP_LISTENER_COUNTERS) both for the listener `sockets` and server-wide
 * (the worker's ms_stats, where the counter has the same name). Worker
 * thread only. */
#define MS_LISTENER_STAT_ADD(worker, sockets, field, n)                   \
  do {                                                                    \
    MS_STAT_ADD(&(worker)->stats, field, n);                              \
    MS_STAT_ADD(ms_worker_listener_stats((worker), (sockets)), field, n); \
  } while (0)

/* ms_worker_init prepares a worker (on the main thread) with a reference
 * to `snapshot`, running `protocols` (borrowed: it must outlive the
 * worker). The worker accepts on its own descriptor of every listener in
 * the snapshots it takes up (ms_listener_sockets_take) and closes those of
 * listeners that leave. Returns 0 or a negative libuv error. */
int ms_worker_init(ms_worker *worker, uint32_t index, ms_snapshot *snapshot,
                   const ms_worker_protocols *protocols);

/* ms_worker_client_open takes an accepted client socket `fd` of the listener
 * `sockets` for the connection whose link is `link`: the worker watches the
 * socket for `source` (events.h), lists the connection and counts it (in
 * the worker's stats and in the listener's connections, holding a
 * reference to `sockets` until ms_worker_client_close). Returns 0; on
 * failure logs, closes `fd` and returns -1. */
int ms_worker_client_open(ms_worker *worker, ms_client_link *link, int fd, ms_event_source *source,
                          const ms_listener_sockets *sockets);

/* ms_worker_client_close takes the connection out of the list and the
 * counts (its owner closes the socket). */
void ms_worker_client_close(ms_worker *worker, ms_client_link *link);

/* ms_worker_start runs the worker's loop on a new thread. */
int ms_worker_start(ms_worker *worker);

/* ms_worker_publish hands `snapshot` to the worker (taking a reference);
 * the worker takes it up soon after. */
void ms_worker_publish(ms_worker *worker, ms_snapshot *snapshot);

/* ms_worker_is_current tells whether the worker has taken up the last
 * snapshot published to it (any thread). */
bool ms_worker_is_current(ms_worker *worker);

/* ms_worker_drain makes the worker stop accepting; open connections go on. */
void ms_worker_drain(ms_worker *worker);

/* ms_worker_stop closes every connection and ends the worker's loop;
 * ms_worker_join waits for the thread and frees what the worker holds. */
void ms_worker_stop(ms_worker *worker);
void ms_worker_join(ms_worker *worker);

#endif
