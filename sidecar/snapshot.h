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

#include "sidecar/config.h"
#include "sidecar/tls_context.h"

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
  pthread_mutex_t last_error_lock; /* taken only on failures and by the admin */
  char last_error[320];
} ms_endpoint_state;

ms_endpoint_state *ms_endpoint_state_new(void);
ms_endpoint_state *ms_endpoint_state_up_ref(ms_endpoint_state *state);
void ms_endpoint_state_free(ms_endpoint_state *state); /* drops a reference; accepts NULL */

/* ms_endpoint_state_set_error records `message` as the endpoint's last error. */
void ms_endpoint_state_set_error(ms_endpoint_state *state, const char *message);

/* ms_endpoint_state_get_error copies the last error into `buf` ("" if none). */
void ms_endpoint_state_get_error(ms_endpoint_state *state, char *buf, size_t len);

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

typedef struct ms_snapshot {
  atomic_int refs;
  uint64_t version;     /* 1, 2, ...: one more per publication */
  ms_config *config;    /* reference held */
  ms_cluster *clusters; /* config->cluster_count entries, same order */
  size_t cluster_count;
} ms_snapshot;

ms_snapshot *ms_snapshot_up_ref(ms_snapshot *snapshot);

/* ms_snapshot_free drops a reference; the last one frees the snapshot and
 * drops its references to config, contexts and endpoint states. Safe from
 * any thread. Accepts NULL. */
void ms_snapshot_free(ms_snapshot *snapshot);

#endif
