/* server.h: the main thread's object. It owns the configuration, the TLS
 * contexts, the resolver and the file watchers, builds snapshots and
 * publishes them to the workers, and answers the admin endpoint's questions.
 * Every function here runs on the main thread unless it says otherwise. */
#ifndef MS_SERVER_H
#define MS_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "sidecar/control/cert_expiry.h"
#include "sidecar/config/config.h"
#include "sidecar/tls/secrets.h"
#include "sidecar/event/snapshot.h"
#include "sidecar/event/stats.h"

typedef struct ms_server ms_server;

/* Something the server starts with its workers and closes when it stops,
 * but that reads the server and so is not the server's to call: the admin
 * endpoint (sidecar/admin/admin.h; main.c fills the table). As with
 * ms_server_source, the table keeps the dependency one way. */
typedef struct ms_server_attachment {
  /* start begins serving `server` once its first snapshot is published and
   * before the workers start. Returns 0, or -1 with a sentence in `err`:
   * then the server does not start. */
  int (*start)(void *arg, ms_server *server, char *err, size_t err_len);
  /* close closes what start opened when the server stops: once the workers
   * are joined, before the resolver, the watchers and the sources stop.
   * Called only after start returned 0. */
  void (*close)(void *arg);
  void *arg;
} ms_server_attachment;

/* ms_server_new loads TLS contexts for `config`, binds every listener in
 * every worker, starts `attachment` (copied; NULL: none) and then the
 * workers. Takes a reference to `config`. Returns 0, or -1 with a sentence
 * in `err`. *out is set either way: after a failure the caller runs the
 * loop once (close callbacks), then frees it. */
int ms_server_new(uv_loop_t *loop, ms_config *config, const ms_server_attachment *attachment,
                  ms_server **out, char *err, size_t err_len);

/* ms_server_free stops workers and frees everything (after the loop ran the
 * close callbacks). Accepts NULL. */
void ms_server_free(ms_server *server);

/* ms_server_snapshot returns the current snapshot with a new reference;
 * the caller drops it with ms_snapshot_free. */
ms_snapshot *ms_server_snapshot(ms_server *server);

/* ms_server_stats_sum fills `out` with the sum of every worker's counters
 * and the main thread's. */
void ms_server_stats_sum(ms_server *server, ms_stats *out);

/* ms_server_is_ready: something to serve (at least one listener, from the
 * file, the control plane or its backup), listeners bound, endpoints
 * resolved once, the source and the identity agent done waiting, every
 * cluster has a TLS context, the workers took the last snapshot up (and,
 * with certificates.ready_fails_on_expired, no certificate the sidecar
 * presents has expired). The same as ms_server_ready_reason returning 0. */
bool ms_server_is_ready(ms_server *server);

/* ms_server_ready_reason checks what ms_server_is_ready checks, in that
 * order, and writes the first reason the server is not ready into `why` (a
 * sentence for /ready's 503 body, like "no listener to serve: ..."; cut to
 * why_len). Returns 0 when ready (`why` then holds ""), -1 when not. */
int ms_server_ready_reason(ms_server *server, char *why, size_t why_len);

/* ms_server_info: fields of /server_info. */
typedef struct ms_server_info {
  const char *version;
  const char *state; /* "LIVE", "DRAINING" */
  int64_t uptime_seconds;
  uint32_t workers;
  bool workers_current; /* every worker has taken up the last snapshot published */
  const char *config_path;
} ms_server_info;
void ms_server_get_info(ms_server *server, ms_server_info *out);

/* ms_server_reload re-reads every certificate, key and CA file of the
 * clusters and publishes new contexts for what changed. A context that
 * fails its checks is refused and the old one kept (the error shows in
 * /clusters and /certs). Then the source's and the identity's
 * files_changed hooks read their own files again. Returns the number of
 * cluster contexts rebuilt, or -1 if any failed. */
int ms_server_reload(ms_server *server);

/* ms_server_apply puts `next` in force (taking a reference): listeners
 * that keep their name and address keep their sockets, new ones are bound,
 * removed ones stop accepting; clusters keep their endpoints' counters and
 * health and their TLS contexts by name; connections under way go on with
 * the configuration they started with. `workers` and `admin.address` need
 * a restart (a change is logged and ignored). Returns 0, or -1 with `err`
 * when a listener cannot be bound or a new cluster's certificates do not
 * load: then nothing changed. */
int ms_server_apply(ms_server *server, ms_config *next, char *err, size_t err_len);

/* ms_server_can_listen tells whether a listener called `name` on `address`
 * can be put in force: the server holds it already (same name and
 * address), or no other process listens there (sidecar/event/port_owner.h).
 * Returns 0, or -1 with `why`. */
int ms_server_can_listen(ms_server *server, const char *name, const ms_address *address, char *why,
                         size_t why_len);

/* ms_server_reload_config reads the config file again and applies it
 * (SIGHUP). A file with problems is refused with every problem logged, and
 * the configuration in force stays. Returns 0 or -1. */
int ms_server_reload_config(ms_server *server);

/* ms_server_reload_read reads and checks the configuration file at `path`
 * for a reload. Returns it (the caller owns the reference), or NULL with
 * every problem logged as "config reload refused: ...". */
ms_config *ms_server_reload_read(const char *path);

/* ms_server_refuse_config logs a refused reload whose configuration `next`
 * could not be put in force: every problem its certificates and addresses
 * have (sidecar/control/config_check.h), or `err` alone when the checks find
 * none. */
void ms_server_refuse_config(const ms_config *next, const char *err);

/* ms_server_watch_file is what a source's or the identity's `files` hook
 * calls for each file it reads itself, so that the server's file watcher
 * (control/watcher.c) follows it too. `path` is copied. */
typedef void (*ms_server_watch_file)(const char *path, void *watch_arg);

/* A source of configuration other than the file: the control plane
 * (sidecar/xds/xds_source.h). It holds readiness until its first fetch is done,
 * adds its own state to /config_dump, and takes SIGHUP (the file is only
 * part of what it applies). */
typedef struct ms_server_source {
  /* not_ready returns NULL once the source no longer holds readiness, else
   * a static sentence saying what it waits for (/ready's reason). */
  const char *(*not_ready)(void *arg);
  /* dump_json returns a JSON object's text (malloc'd; the admin frees it)
   * shown as /config_dump's "dynamic" entry, or NULL. */
  char *(*dump_json)(void *arg);
  /* reload returns 0 when the reload was put in force, -1 when it was
   * refused (logged; counted by the server in config_reload_*). */
  int (*reload)(void *arg);
  /* stop closes the source's handles when the server stops (so that the
   * loop can end). */
  void (*stop)(void *arg);
  /* certificates visits the certificates the source uses itself (its
   * client credential, sidecar/control/cert_expiry.h). May be NULL. */
  void (*certificates)(void *arg, ms_cert_use_visit visit, void *visit_arg);
  /* files calls `watch` for each file the source reads itself (its client
   * credential's certificate, key and CA); files_changed is called once
   * those folders saw changes that settled (and on SIGHUP), after the
   * clusters' contexts were reloaded: it reads them again. Either may be
   * NULL. */
  void (*files)(void *arg, ms_server_watch_file watch, void *watch_arg);
  void (*files_changed)(void *arg);
  void *arg;
} ms_server_source;

/* ms_server_set_source installs `source` (copied; NULL removes it) and
 * has the file watcher follow the files it names. */
void ms_server_set_source(ms_server *server, const ms_server_source *source);

/* ms_server_source_dump returns the source's dump_json text, or NULL. */
char *ms_server_source_dump(ms_server *server);

/* ms_server_apply_checked is ms_server_apply for the control plane: the
 * clusters' secrets are looked up in `secrets`, and `next` is refused when
 * any cluster's TLS material fails to build (a rotated certificate whose key
 * does not match, say) instead of keeping that cluster's old context, so
 * that a bad update is NACKed whole. On success the server owns `secrets`
 * (which may be the set already in force); on failure the caller keeps it. */
int ms_server_apply_checked(ms_server *server, ms_config *next, ms_secret_set *secrets, char *err,
                            size_t err_len);

/* ms_server_rotate_secrets puts new material for the secrets in force: one
 * context is built per distinct use, all checked before any is swapped in;
 * connections under way keep their context. On success the server owns
 * `secrets` and the return is the number of clusters whose context changed;
 * on failure -1, `err`, nothing changed and the caller keeps `secrets`. */
int ms_server_rotate_secrets(ms_server *server, ms_secret_set *secrets, char *err, size_t err_len);

/* The identity agent (sidecar/identity/identity.h), seen from the server: it holds
 * readiness until its first certificate and adds "local_identity" to
 * /certs. */
typedef struct ms_server_identity {
  /* not_ready returns NULL once the identity has its first certificate,
   * else a static sentence saying what it waits for. */
  const char *(*not_ready)(void *arg);
  /* certs_json returns a JSON object's text (malloc'd; the admin frees it)
   * shown as /certs' "local_identity", or NULL. Never key material. */
  char *(*certs_json)(void *arg);
  /* stop closes the identity's handles when the server stops. */
  void (*stop)(void *arg);
  /* certificates visits the identity's certificate and the credential it
   * reaches the CA with (sidecar/control/cert_expiry.h). May be NULL. */
  void (*certificates)(void *arg, ms_cert_use_visit visit, void *visit_arg);
  /* files and files_changed: as ms_server_source's (the CA channel's
   * credential, the trust bundle file). May be NULL. */
  void (*files)(void *arg, ms_server_watch_file watch, void *watch_arg);
  void (*files_changed)(void *arg);
  void *arg;
} ms_server_identity;

/* ms_server_set_identity installs `identity` (copied; NULL removes it) and
 * has the file watcher follow the files it names. */
void ms_server_set_identity(ms_server *server, const ms_server_identity *identity);

/* ms_server_identity_json returns the identity's certs_json text, or NULL. */
char *ms_server_identity_json(ms_server *server);

/* ms_server_set_local_secrets puts the identity agent's secrets in force
 * (the names the configuration's "identity" owns): every cluster that names
 * them, static or from the control plane, gets a context built from them,
 * all built and checked before any is swapped in (the cheap path of
 * ms_server_rotate_secrets); connections under way keep their context. On
 * success the server owns `secrets` and the return is the number of
 * clusters whose context changed; on failure -1, `err`, nothing changed and
 * the caller keeps `secrets`. */
int ms_server_set_local_secrets(ms_server *server, ms_secret_set *secrets, char *err,
                                size_t err_len);

/* ms_server_local_secrets returns the identity agent's secrets in force
 * (borrowed: valid until the next ms_server_set_local_secrets), or NULL
 * before the first. */
const ms_secret_set *ms_server_local_secrets(ms_server *server);

/* ---- certificates in use (cert_monitor.c) -------------------------------
 *
 * In use means what the sidecar relies on now:
 * - for each cluster of the current snapshot, the client certificate its TLS
 *   context presents and the CAs it trusts, from files, from PEM in the
 *   configuration, from the control plane's SDS secrets (the xDS backup file
 *   included) or from the identity agent;
 * - the identity agent's own certificate (sidecar/identity/identity.h);
 * - the client credentials of the control plane and of the CA: xds.tls and
 *   identity.tls, their certificate and their CAs (the sources'
 *   `certificates`).
 * Older context generations that open connections still hold are left out:
 * an expiry does not undo a handshake already done. While the server runs,
 * a monitor logs a warning once when a certificate in use turns expiring or
 * is not yet valid (sidecar/control/cert_expiry.h), an error when it expires
 * and again every certificates.expired_log_interval_ms while it stays in
 * use, and one line when such a certificate leaves use (replaced). */

/* ms_cert_uses_visit calls `visit` once for every certificate in use,
 * ordered by source, name, leaf before CA, serial: a certificate several
 * clusters share is visited once. Returns 0, or -1 when memory ran out
 * (nothing visited). */
int ms_cert_uses_visit(ms_server *server, ms_cert_use_visit visit, void *arg);

/* ms_cert_days_until_first_expiring returns Envoy's
 * server.days_until_first_cert_expiring: the fewest whole days left of any
 * certificate in use, 0 once one has expired (Envoy does not go below 0),
 * UINT32_MAX with none in use (as Envoy). */
int64_t ms_cert_days_until_first_expiring(ms_server *server, int64_t now);

/* ms_server_main_stats returns the main thread's counters (main thread
 * only writes them). */
ms_stats *ms_server_main_stats(ms_server *server);

/* ms_server_shutdown stops accepting, lets connections drain for up to
 * `drain_ms`, then stops the loop. Safe to call twice. */
void ms_server_shutdown(ms_server *server, uint32_t drain_ms);

#endif
