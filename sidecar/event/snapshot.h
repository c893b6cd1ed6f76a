/* snapshot.h: the immutable, refcounted state that workers run on.
 *
 * The main thread builds a snapshot from a validated config, the TLS
 * contexts and the resolved endpoint addresses, then publishes it (see
 * server.h). Nothing in a snapshot changes after publication except the
 * atomics of ms_endpoint_state, which outlive snapshots: an endpoint's
 * counters and health carry over from one snapshot to the next. */
#ifndef MS_SNAPSHOT_H
#define MS_SNAPSHOT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sidecar/config/config.h"
#include "sidecar/event/stats.h"
#include "sidecar/tls/tls_context.h"

/* Live counters and health of one endpoint, shared by all workers and kept
 * across snapshots (matched by cluster name and endpoint address). */
typedef struct ms_endpoint_state {
  atomic_int refs;
  atomic_llong active_connections;
  atomic_llong total_connections;
  atomic_llong connect_failures;
  atomic_llong handshake_failures;
  atomic_uint consecutive_failures;
  atomic_uint ejection_count;    /* times ejected in a row; reset by a success */
  atomic_llong ejected_until_ms; /* uv_now-style monotonic ms; 0: not ejected */
  atomic_llong total_ejections;
  atomic_llong rq_by_class[6];     /* HTTP responses received from it: [1] 1xx .. [5] 5xx */
  atomic_llong connect_timeouts;   /* TCP connects not done within connect_timeout_ms */
  atomic_llong handshakes;         /* TLS handshakes completed */
  atomic_llong sessions_reused;    /* ...of which resumed a session */
  atomic_llong destroy_remote;     /* connections closed or reset by it */
  atomic_llong rq_total;           /* HTTP requests sent to it */
  atomic_llong rq_retry;           /* HTTP requests that failed on it and were sent again */
  atomic_llong rq_timeout;         /* HTTP requests it did not answer within request_timeout_ms */
  atomic_llong pool_idle_timeouts; /* pooled connections to it closed after idle_timeout_ms */
  atomic_llong pool_max_requests;  /* ...closed after http_pool.max_requests */
  atomic_llong pool_max_lifetime;  /* ...retired past http_pool.max_lifetime_ms */
  pthread_mutex_t last_error_lock; /* taken only on failures and by the admin */
  char *last_error;                /* the whole line, or NULL; under last_error_lock */
} ms_endpoint_state;

ms_endpoint_state *ms_endpoint_state_new(void);
ms_endpoint_state *ms_endpoint_state_up_ref(ms_endpoint_state *state);
void ms_endpoint_state_free(ms_endpoint_state *state); /* drops a reference; accepts NULL */

/* ms_endpoint_state_set_error records a copy of `message`, whole, as the
 * endpoint's last error (out of memory: the previous one stays). */
void ms_endpoint_state_set_error(ms_endpoint_state *state, const char *message);

/* ms_endpoint_state_get_error returns a copy of the last error (the caller
 * frees it), or NULL when there is none or memory ran out. */
char *ms_endpoint_state_get_error(ms_endpoint_state *state);

typedef struct ms_endpoint {
  const ms_endpoint_config *config; /* borrowed from the snapshot's config */
  ms_endpoint_state *state;         /* reference held */
  struct sockaddr_storage *addrs;   /* resolved addresses; empty until resolved */
  size_t addr_count;
} ms_endpoint;

typedef struct ms_cluster {
  const ms_cluster_config *config; /* borrowed from the snapshot's config */
  size_t index;
  ms_tls_context *tls;        /* reference held; NULL if it never built */
  char *tls_error;            /* last refused reload of this cluster, or NULL */
  ms_peer_check *peer_checks; /* one per endpoint: the names verified */
  const char **server_names;  /* one per endpoint: SNI sent, NULL for none */
  ms_endpoint *endpoints;
  size_t endpoint_count;
} ms_cluster;

/* The listen sockets of one listener, one per worker, bound by the main
 * thread. Kept across snapshots while the listener keeps its name and
 * address, so a reload never closes a socket that stays. A worker takes its
 * descriptor over (ms_listener_sockets_take) and closes it when it stops
 * accepting on it; descriptors never taken are closed with the last
 * reference. */
typedef struct ms_listener_sockets {
  atomic_int refs;
  char *name;
  char *address;   /* as written, e.g. "127.0.0.1:15001" */
  atomic_int *fds; /* one per worker; -1 once taken */
  size_t fd_count;
  /* Client connections open on this listener, all workers together: the
   * listener's max_connections is checked against it (worker.c). It
   * follows the sockets, so it survives snapshots that keep the address. */
  atomic_uint connections;
  /* Its counters (stats.h): one block per worker, written by that worker
   * only. They follow the sockets too: a listener that keeps its name and
   * address keeps its counters across reloads. */
  ms_listener_stats *stats;
} ms_listener_sockets;

/* ms_listener_sockets_bind binds `count` sockets to `address` (see
 * ms_net_listen). Returns 0 and sets *out (one reference), or a negative
 * errno. */
int ms_listener_sockets_bind(const char *name, const ms_address *address, size_t count,
                             ms_listener_sockets **out);
ms_listener_sockets *ms_listener_sockets_up_ref(ms_listener_sockets *sockets);
void ms_listener_sockets_free(ms_listener_sockets *sockets); /* drops a reference; accepts NULL */

/* ms_listener_sockets_take hands worker `index` its descriptor, once;
 * returns -1 if it was taken already. */
int ms_listener_sockets_take(ms_listener_sockets *sockets, size_t index);

typedef struct ms_listener {
  const ms_listener_config *config; /* borrowed from the snapshot's config */
  ms_listener_sockets *sockets;     /* reference held */
} ms_listener;

typedef struct ms_snapshot {
  atomic_int refs;
  uint64_t version;     /* 1, 2, ...: one more per publication */
  ms_config *config;    /* reference held */
  ms_cluster *clusters; /* config->cluster_count entries, same order */
  size_t cluster_count;
  ms_listener *listeners; /* config->listener_count entries, same order */
  size_t listener_count;
} ms_snapshot;

/* ms_snapshot_find_listener returns the listener of `snapshot` that uses
 * `sockets`, or NULL when the snapshot no longer has it. */
const ms_listener *ms_snapshot_find_listener(const ms_snapshot *snapshot,
                                             const ms_listener_sockets *sockets);

ms_snapshot *ms_snapshot_up_ref(ms_snapshot *snapshot);

/* ms_snapshot_free drops a reference; the last one frees the snapshot and
 * drops its references to config, contexts and endpoint states. Safe from
 * any thread. Accepts NULL. */
void ms_snapshot_free(ms_snapshot *snapshot);

#endif
