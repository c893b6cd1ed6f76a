/* server_internal.h: the parts of the server shared by server.c (life
 * cycle, workers, draining), tls_loader.c (building and reloading TLS
 * contexts), resolver.c (DNS) and watcher.c (certificate files). Private. */
#ifndef MS_SERVER_INTERNAL_H
#define MS_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "sidecar/tls/secrets.h"
#include "sidecar/control/server.h"
#include "sidecar/event/worker.h"

/* What the main thread knows of one cluster between snapshots. */
typedef struct ms_cluster_runtime {
  ms_tls_context *tls;        /* current context, reference held */
  char *tls_error;            /* why the last reload was refused, or NULL */
  ms_endpoint_state **states; /* one per endpoint, kept for the server's life */
  struct ms_resolved {
    struct sockaddr_storage *addrs;
    size_t count;
    bool resolving;
  } * resolved; /* one per endpoint */
} ms_cluster_runtime;

typedef struct ms_watch {
  uv_fs_event_t event;
  char *directory;
  char **names; /* the watched files' names in `directory` */
  size_t name_count;
  struct ms_server *server;
  struct ms_watch *next;
} ms_watch;

struct ms_server {
  uv_loop_t *loop;
  ms_config *config;                      /* reference held */
  ms_cluster_runtime *clusters;           /* config->cluster_count */
  ms_listener_sockets **listener_sockets; /* config->listener_count, references held */
  uint64_t config_generation; /* one more per applied config: stale DNS answers are dropped */
  ms_snapshot *snapshot;      /* the published one, reference held */
  uint64_t snapshot_version;
  ms_worker *workers;
  uint32_t worker_count;
  ms_server_attachment attachment; /* the admin endpoint (main.c); all NULL: none */
  bool attached;                   /* attachment.start succeeded; close not yet called */
  ms_stats stats;                  /* the main thread's own counters */

  uv_signal_t sigterm, sigint, sighup;
  uv_timer_t dns_timer;
  size_t resolutions_in_flight;
  bool initial_resolution_done;
  ms_watch *watches;       /* list: the folders of the current config's TLS files */
  uv_timer_t reload_timer; /* debounces file events */
  uv_timer_t drain_timer;
  uint64_t drain_deadline;
  bool draining;
  bool closing;
  ms_server_source source; /* all NULL: the file is the only source */
  ms_secret_set *secrets;  /* the control plane's secrets in force; NULL: none */
  /* The identity agent's secrets (sidecar/identity/identity.h), consulted before
   * `secrets` for the names the identity owns; NULL: none yet. */
  ms_secret_set *local_secrets;
  ms_server_identity identity; /* all NULL: no identity agent */
  ms_cert_expiry *expiry;      /* the certificates' expiry monitor; NULL until started */
  int64_t started_at;
};

/* tls_loader.c: builds the context of every cluster of `config` whose
 * material changed (or that has none yet) into `clusters` (the server's own
 * or a runtime about to be applied), sharing contexts by content. Secrets
 * the identity owns (ms_identity_owns_secret) are looked up in `local` only;
 * while it has none yet, the clusters naming them wait without a context
 * (not a failure). Other names are looked up in `secrets`. KEEP_OLD:
 * a cluster whose material fails keeps its old context and shows the error.
 * ALL_OR_NOTHING: any failure changes nothing. Returns the number of
 * contexts replaced, or -1 (and `err` for the first failure). */
typedef enum ms_tls_load_mode {
  MS_TLS_LOAD_KEEP_OLD = 0,
  MS_TLS_LOAD_ALL_OR_NOTHING,
} ms_tls_load_mode;
int ms_tls_load(ms_server *server, const ms_config *config, ms_cluster_runtime *clusters,
                const ms_secret_set *local, const ms_secret_set *secrets, ms_tls_load_mode mode,
                char *err, size_t err_len);

/* server.c: builds a snapshot from the current state and hands it to every
 * worker. Returns 0 or -1 when memory ran out (the old one stays). */
int ms_server_publish(ms_server *server);

/* resolver.c: resolve every endpoint host name now, and again every
 * dns_refresh_ms; publishes a snapshot when addresses change.
 * ms_resolver_follow re-resolves after the config changed. */
void ms_resolver_start(ms_server *server);
void ms_resolver_follow(ms_server *server);
void ms_resolver_stop(ms_server *server);

/* watcher.c: reload when a certificate, key, CA or CRL file changes.
 * ms_watcher_init once at start; ms_watcher_follow whenever the config
 * changes (it replaces the watches); ms_watcher_stop at the end. */
void ms_watcher_init(ms_server *server);
void ms_watcher_follow(ms_server *server);
void ms_watcher_stop(ms_server *server);

/* apply.c: the per-cluster runtime and the listen sockets of `next`,
 * carried over by name from the server's current ones. On failure nothing
 * is changed and `err` says why. */
int ms_runtime_build(ms_server *server, const ms_config *next, ms_cluster_runtime **out,
                     ms_listener_sockets ***out_sockets, char *err, size_t err_len);
void ms_runtime_free(ms_cluster_runtime *clusters, const ms_config *config,
                     ms_listener_sockets **sockets);

#endif
