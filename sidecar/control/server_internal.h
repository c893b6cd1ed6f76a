/* server_internal.h: the parts of the server shared by server.c (every
 * ms_server_* function: life cycle, publishing, applying, reloading,
 * draining), apply.c (the runtime of a configuration and its TLS contexts),
 * resolver.c (DNS), watcher.c (certificate files) and cert_monitor.c (the
 * certificates in use). Private to sidecar/control. */
#ifndef MS_SERVER_INTERNAL_H
#define MS_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "sidecar/control/server.h"
#include "sidecar/event/worker.h"
#include "sidecar/tls/secrets.h"
#include "sidecar/tls/tls_loader.h"

typedef struct ms_cert_expiry ms_cert_expiry; /* cert_monitor.c */

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

/* server.c: builds a snapshot from the current state and hands it to every
 * worker. Returns 0 or -1 when memory ran out (the old one stays). */
int ms_server_publish(ms_server *server);

/* cert_monitor.c: the certificates' expiry monitor (server.h says what it
 * logs). ms_cert_expiry_start starts it on `loop`: a first check on the
 * next turn of the loop, then one at the next instant a certificate in use
 * changes state (or an expired one is due to be logged again), at least
 * once a minute; returns 0 with *out, or -1 when memory ran out.
 * ms_cert_expiry_recheck asks for a check on the next turn (a new snapshot
 * was published); ms_cert_expiry_stop closes the timer (the memory goes in
 * its close callback). Both accept NULL. */
int ms_cert_expiry_start(uv_loop_t *loop, ms_server *server, ms_cert_expiry **out);
void ms_cert_expiry_recheck(ms_cert_expiry *expiry);
void ms_cert_expiry_stop(ms_cert_expiry *expiry);

/* ms_cert_expiry_presents_expired tells whether a certificate the sidecar
 * presents (a leaf: a cluster's client certificate, the identity's, the
 * control plane credential's) is expired at `now`; CAs are left out (a
 * bundle often keeps an old root until it ends). For /ready with
 * certificates.ready_fails_on_expired. */
bool ms_cert_expiry_presents_expired(ms_server *server, int64_t now);

/* resolver.c: resolve every endpoint host name now, and again every
 * dns_refresh_ms; publishes a snapshot when addresses change.
 * ms_resolver_follow re-resolves after the config changed. */
void ms_resolver_start(ms_server *server);
void ms_resolver_follow(ms_server *server);
void ms_resolver_stop(ms_server *server);

/* watcher.c: reload when a certificate, key, CA or CRL file changes (the
 * clusters', and the files the source's and the identity's `files` hooks
 * name).
 * ms_watcher_init once at start; ms_watcher_follow whenever the config
 * changes (it replaces the watches); ms_watcher_stop at the end. */
void ms_watcher_init(ms_server *server);
void ms_watcher_follow(ms_server *server);
void ms_watcher_stop(ms_server *server);

/* apply.c: ms_runtime_build makes the per-cluster runtime and the listen
 * sockets of `next`, carried over by name from the server's current ones.
 * Returns 0, or -1 with `err` and nothing changed. */
int ms_runtime_build(ms_server *server, const ms_config *next, ms_cluster_runtime **out,
                     ms_listener_sockets ***out_sockets, char *err, size_t err_len);

/* ms_runtime_free frees what ms_runtime_build made for `config`. */
void ms_runtime_free(ms_cluster_runtime *clusters, const ms_config *config,
                     ms_listener_sockets **sockets);

/* ms_runtime_find_sockets returns the server's sockets of the listener
 * `name` on `address` (its text), or NULL. */
ms_listener_sockets *ms_runtime_find_sockets(const ms_server *server, const char *name,
                                             const char *address);

/* ms_runtime_load_tls builds, through the TLS loader (tls_loader.h), the
 * contexts of `config`'s clusters (those of `only`; NULL: all) and puts
 * them in `clusters` (the server's own runtime, or one about to be applied,
 * which then shares contexts with the server's too); the server counts
 * tls_reload_success and tls_reload_failure. The identity's secrets are
 * looked up in `local`, the others in `secrets`. Returns the number of
 * clusters whose context changed, or -1: under ALL_OR_NOTHING with `err`
 * and nothing changed; under KEEP_OLD when a cluster was refused (logged,
 * its error kept in its runtime, `err` not written) while the others took
 * theirs, or with `err` when memory ran out. */
int ms_runtime_load_tls(ms_server *server, const ms_config *config, ms_cluster_runtime *clusters,
                        const bool *only, const ms_secret_set *local, const ms_secret_set *secrets,
                        ms_tls_load_mode mode, char *err, size_t err_len);

/* ms_runtime_load_new_tls builds the contexts of the clusters of `next` that
 * have none in `clusters` (new to the server) and name no secret: a new
 * cluster must have working certificates before its configuration is
 * accepted. A static cluster naming a secret the identity does not own is
 * refused. Returns 0 or more, or -1 with `err` (nothing changed). */
int ms_runtime_load_new_tls(ms_server *server, const ms_config *next, ms_cluster_runtime *clusters,
                            char *err, size_t err_len);

#endif
