/* The main thread's server (server.h): every ms_server_* function. Its life
 * cycle (start, drain, stop), publishing snapshots, putting a configuration
 * in force, reloading certificates and secrets. What a configuration's
 * runtime is made of is in apply.c, DNS in resolver.c, certificate files in
 * watcher.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/net.h"
#include "common/version.h"
#include "sidecar/control/config_check.h"
#include "sidecar/control/server_internal.h"
#include "sidecar/event/port_owner.h"
#include "sidecar/http/http_conn.h"
#include "sidecar/l4/relay.h"
#include "sidecar/upstream/upstream.h"

#define MS_DRAIN_POLL_MS 100

/* ---- what the workers run ------------------------------------------------ */

static void stop_worker_protocols(ms_worker *worker) {
  ms_http_worker_stop(worker);
  ms_upstream_worker_stop(worker);
}

/* Handed to every worker (worker.h), so that the event layer includes
 * none of the protocols: the L4 relay, the HTTP proxy, and what the
 * upstream layer keeps per worker. */
static const ms_worker_protocols worker_protocols = {
    .accept_l4 = ms_conn_start,
    .accept_http = ms_http_conn_start,
    .take_snapshot = ms_upstream_worker_take_snapshot,
    .stop = stop_worker_protocols,
};

/* ---- snapshots ---------------------------------------------------------- */

static int build_cluster(ms_server *server, size_t index, ms_cluster *out) {
  const ms_cluster_config *config = &server->config->clusters[index];
  ms_cluster_runtime *runtime = &server->clusters[index];
  size_t n = config->endpoint_count;
  out->config = config;
  out->index = index;
  out->endpoint_count = n;
  out->endpoints = calloc(n, sizeof(ms_endpoint));
  out->peer_checks = calloc(n, sizeof(ms_peer_check));
  out->server_names = calloc(n, sizeof(char *));
  if (!out->endpoints || !out->peer_checks || !out->server_names) return -1;
  if (runtime->tls_error && !(out->tls_error = strdup(runtime->tls_error))) return -1;
  if (runtime->tls) out->tls = ms_tls_context_up_ref(runtime->tls);
  for (size_t e = 0; e < n; e++) {
    const ms_endpoint_config *endpoint = &config->endpoints[e];
    ms_endpoint *target = &out->endpoints[e];
    target->config = endpoint;
    target->state = ms_endpoint_state_up_ref(runtime->states[e]);
    if (endpoint->address.host_is_ip) {
      target->addrs = malloc(sizeof(struct sockaddr_storage));
      if (target->addrs == NULL) return -1;
      memcpy(target->addrs, &endpoint->address.sockaddr, sizeof(struct sockaddr_storage));
      target->addr_count = 1;
    } else if (runtime->resolved[e].count) {
      size_t bytes = runtime->resolved[e].count * sizeof(struct sockaddr_storage);
      target->addrs = malloc(bytes);
      if (target->addrs == NULL) return -1;
      memcpy(target->addrs, runtime->resolved[e].addrs, bytes);
      target->addr_count = runtime->resolved[e].count;
    }
    /* The name sent is server_name, else the endpoint's host name; an IP
     * literal is never sent as SNI. The name verified is the same one, or
     * the IP itself, unless match_subject_alt_names replaces it. */
    const char *name = config->tls.server_name ? config->tls.server_name : endpoint->address.host;
    bool name_is_ip = config->tls.server_name == NULL && endpoint->address.host_is_ip;
    out->server_names[e] = config->tls.send_sni && !name_is_ip ? name : NULL;
    out->peer_checks[e].host = name;
    out->peer_checks[e].match_sans = (const char *const *)config->tls.match_subject_alt_names;
    out->peer_checks[e].match_san_count = config->tls.match_subject_alt_name_count;
  }
  return 0;
}

int ms_server_publish(ms_server *server) {
  ms_snapshot *snapshot = calloc(1, sizeof(*snapshot));
  if (snapshot == NULL) return -1;
  atomic_init(&snapshot->refs, 1);
  snapshot->config = ms_config_up_ref(server->config);
  snapshot->cluster_count = server->config->cluster_count;
  snapshot->clusters =
      calloc(snapshot->cluster_count ? snapshot->cluster_count : 1, sizeof(ms_cluster));
  snapshot->listener_count = server->config->listener_count;
  snapshot->listeners =
      calloc(snapshot->listener_count ? snapshot->listener_count : 1, sizeof(ms_listener));
  int rc = snapshot->clusters && snapshot->listeners ? 0 : -1;
  for (size_t i = 0; rc == 0 && i < snapshot->cluster_count; i++)
    rc = build_cluster(server, i, &snapshot->clusters[i]);
  for (size_t i = 0; rc == 0 && i < snapshot->listener_count; i++) {
    snapshot->listeners[i].config = &server->config->listeners[i];
    snapshot->listeners[i].sockets = ms_listener_sockets_up_ref(server->listener_sockets[i]);
  }
  if (rc != 0) {
    ms_log(MS_LOG_ERROR, "out of memory building a snapshot; the previous one stays in force");
    if (snapshot->clusters == NULL) snapshot->cluster_count = 0;
    if (snapshot->listeners == NULL) snapshot->listener_count = 0;
    for (size_t i = 0; i < snapshot->listener_count; i++)
      if (snapshot->listeners[i].sockets == NULL) snapshot->listener_count = i;
    ms_snapshot_free(snapshot);
    return -1;
  }
  snapshot->version = ++server->snapshot_version;
  ms_snapshot *old = server->snapshot;
  server->snapshot = snapshot;
  for (uint32_t i = 0; i < server->worker_count; i++)
    ms_worker_publish(&server->workers[i], snapshot);
  ms_snapshot_free(old);
  ms_cert_expiry_recheck(server->expiry);
  return 0;
}

ms_snapshot *ms_server_snapshot(ms_server *server) {
  return ms_snapshot_up_ref(server->snapshot);
}

void ms_server_stats_sum(ms_server *server, ms_stats *out) {
  memset(out, 0, sizeof(*out));
  ms_stats_add(out, &server->stats);
  for (uint32_t i = 0; i < server->worker_count; i++)
    ms_stats_add(out, &server->workers[i].stats);
}

void ms_server_set_source(ms_server *server, const ms_server_source *source) {
  memset(&server->source, 0, sizeof(server->source));
  if (source) server->source = *source;
  if (!server->closing) ms_watcher_follow(server);
}

char *ms_server_source_dump(ms_server *server) {
  return server->source.dump_json ? server->source.dump_json(server->source.arg) : NULL;
}

void ms_server_set_identity(ms_server *server, const ms_server_identity *identity) {
  memset(&server->identity, 0, sizeof(server->identity));
  if (identity) server->identity = *identity;
  if (!server->closing) ms_watcher_follow(server);
}

char *ms_server_identity_json(ms_server *server) {
  return server->identity.certs_json ? server->identity.certs_json(server->identity.arg) : NULL;
}

ms_stats *ms_server_main_stats(ms_server *server) {
  return &server->stats;
}

static bool workers_current(ms_server *server) {
  for (uint32_t i = 0; i < server->worker_count; i++)
    if (!ms_worker_is_current(&server->workers[i])) return false;
  return true;
}

bool ms_server_is_ready(ms_server *server) {
  char why[8];
  return ms_server_ready_reason(server, why, sizeof(why)) == 0;
}

int ms_server_ready_reason(ms_server *server, char *why, size_t why_len) {
  const char *waiting = NULL;
  if (why_len > 0) why[0] = '\0';
  if (server->draining) {
    snprintf(why, why_len, "draining: the sidecar is shutting down");
    return -1;
  }
  if (!server->initial_resolution_done) {
    snprintf(why, why_len, "resolving the endpoints' host names for the first time");
    return -1;
  }
  if (server->source.not_ready && (waiting = server->source.not_ready(server->source.arg))) {
    snprintf(why, why_len, "%s", waiting);
    return -1;
  }
  if (server->identity.not_ready && (waiting = server->identity.not_ready(server->identity.arg))) {
    snprintf(why, why_len, "%s", waiting);
    return -1;
  }
  /* Nothing to serve: the application would find nothing on its port. */
  if (server->config->listener_count == 0) {
    snprintf(why, why_len, "%s",
             server->source.not_ready
                 ? "no listener to serve: none in the configuration file, and none yet from "
                   "the control plane or its backup"
                 : "no listener to serve: the configuration has none");
    return -1;
  }
  for (size_t i = 0; i < server->config->cluster_count; i++) {
    if (server->clusters[i].tls == NULL) {
      snprintf(why, why_len,
               "cluster \"%s\" has no TLS context (its certificate, key or CA "
               "is missing or does not load; see /clusters)",
               server->config->clusters[i].name);
      return -1;
    }
  }
  /* Ready means the workers serve it: a snapshot published a moment ago
   * (the certificate that made the clusters usable) is not yet theirs. */
  if (!workers_current(server)) {
    snprintf(why, why_len, "the workers have not yet taken up the configuration last put in force");
    return -1;
  }
  if (server->config->certificates.ready_fails_on_expired &&
      ms_cert_expiry_presents_expired(server, (int64_t)time(NULL))) {
    snprintf(why, why_len,
             "a certificate the sidecar presents has expired "
             "(certificates.ready_fails_on_expired; see /certs)");
    return -1;
  }
  return 0;
}

void ms_server_get_info(ms_server *server, ms_server_info *out) {
  out->version = MS_VERSION;
  out->state = server->draining ? "DRAINING" : "LIVE";
  out->uptime_seconds = (int64_t)time(NULL) - server->started_at;
  out->workers = server->worker_count;
  out->workers_current = workers_current(server);
  out->config_path = server->config->path;
}

int ms_server_can_listen(ms_server *server, const char *name, const ms_address *address, char *why,
                         size_t why_len) {
  if (ms_runtime_find_sockets(server, name, address->text)) return 0;
  /* SO_REUSEPORT would let us share the address with another process. */
  return ms_port_owner_check(address, NULL, why, why_len) == 0 ? 0 : -1;
}

/* ---- applying a configuration ------------------------------------------- */

/* put_in_force is ms_server_apply (`checked` false: new clusters must load,
 * the others keep their context on failure) and ms_server_apply_checked
 * (every context built from `secrets` first, all or nothing). */
static int put_in_force(ms_server *server, ms_config *next, ms_secret_set *secrets, bool checked,
                        char *err, size_t err_len) {
  ms_config *current = server->config;
  if (next->workers != current->workers)
    ms_log(MS_LOG_WARN, "workers: changing %u to %u needs a restart; keeping %u", current->workers,
           next->workers, current->workers);
  next->workers = current->workers; /* listener sockets are made per running worker */
  if (strcmp(next->admin_address.text, current->admin_address.text) != 0)
    ms_log(MS_LOG_WARN, "admin.address: changing %s to %s needs a restart; keeping %s",
           current->admin_address.text, next->admin_address.text, current->admin_address.text);

  ms_cluster_runtime *clusters;
  ms_listener_sockets **sockets;
  if (ms_runtime_build(server, next, &clusters, &sockets, err, err_len) != 0) return -1;
  int loaded = checked ? ms_runtime_load_tls(server, next, clusters, NULL, server->local_secrets,
                                             secrets, MS_TLS_LOAD_ALL_OR_NOTHING, err, err_len)
                       : ms_runtime_load_new_tls(server, next, clusters, err, err_len);
  if (loaded < 0) {
    ms_runtime_free(clusters, next, sockets);
    return -1;
  }

  ms_runtime_free(server->clusters, current, server->listener_sockets);
  server->clusters = clusters;
  server->listener_sockets = sockets;
  server->config = ms_config_up_ref(next);
  server->config_generation++;
  ms_config_free(current);
  if (checked && secrets != server->secrets) {
    ms_secret_set_free(server->secrets);
    server->secrets = secrets;
  }

  if (!checked) { /* files changed meanwhile */
    char ignored[MS_ERR_LEN];
    ms_runtime_load_tls(server, server->config, server->clusters, NULL, server->local_secrets,
                        server->secrets, MS_TLS_LOAD_KEEP_OLD, ignored, sizeof(ignored));
  }
  ms_server_publish(server);
  ms_resolver_follow(server);
  ms_watcher_follow(server);
  ms_log(MS_LOG_INFO, "configuration applied: %zu listener%s, %zu cluster%s (snapshot %llu)",
         next->listener_count, ms_plural(next->listener_count), next->cluster_count,
         ms_plural(next->cluster_count), (unsigned long long)server->snapshot_version);
  return 0;
}

int ms_server_apply(ms_server *server, ms_config *next, char *err, size_t err_len) {
  return put_in_force(server, next, NULL, false, err, err_len);
}

int ms_server_apply_checked(ms_server *server, ms_config *next, ms_secret_set *secrets, char *err,
                            size_t err_len) {
  return put_in_force(server, next, secrets, true, err, err_len);
}

/* refuse_reload logs a refused reload of the file at `path`: each of
 * `problems`, then their count (the configuration in force stays). */
static void refuse_reload(const char *path, const ms_config_errors *problems) {
  for (size_t i = 0; i < problems->count; i++)
    ms_log(MS_LOG_ERROR, "config reload refused: %s", problems->lines[i]);
  ms_log(MS_LOG_ERROR,
         "config reload refused: %s has %zu problem%s; the configuration in force stays", path,
         problems->count, ms_plural(problems->count));
}

void ms_server_refuse_config(const ms_config *next, const char *err) {
  ms_config_errors problems = {0};
  if (ms_config_check_outside(next, false, &problems, NULL) == 0 || problems.count == 0)
    ms_config_errors_add(&problems, "%s", err);
  refuse_reload(next->path, &problems);
  ms_config_errors_cleanup(&problems);
}

ms_config *ms_server_reload_read(const char *path) {
  ms_config *next = NULL;
  ms_config_errors errors = {0};
  if (ms_config_load(path, &next, &errors) == 0) return next;
  refuse_reload(path, &errors);
  ms_config_errors_cleanup(&errors);
  return NULL;
}

int ms_server_reload_config(ms_server *server) {
  ms_config *next = ms_server_reload_read(server->config->path);
  if (next == NULL) return -1;
  char err[MS_ERR_LEN];
  int rc = ms_server_apply(server, next, err, sizeof(err));
  if (rc != 0) ms_server_refuse_config(next, err);
  ms_config_free(next);
  return rc;
}

/* ---- certificates and secrets ------------------------------------------- */

/* files_changed has the source and the identity read their own files
 * again (their TLS credentials, the trust bundle). */
static void files_changed(ms_server *server) {
  if (server->source.files_changed) server->source.files_changed(server->source.arg);
  if (server->identity.files_changed) server->identity.files_changed(server->identity.arg);
}

int ms_server_reload(ms_server *server) {
  char err[MS_ERR_LEN];
  int replaced =
      ms_runtime_load_tls(server, server->config, server->clusters, NULL, server->local_secrets,
                          server->secrets, MS_TLS_LOAD_KEEP_OLD, err, sizeof(err));
  if (replaced > 0 || replaced < 0) ms_server_publish(server);
  files_changed(server);
  return replaced;
}

int ms_server_rotate_secrets(ms_server *server, ms_secret_set *secrets, char *err, size_t err_len) {
  int replaced =
      ms_runtime_load_tls(server, server->config, server->clusters, NULL, server->local_secrets,
                          secrets, MS_TLS_LOAD_ALL_OR_NOTHING, err, err_len);
  if (replaced < 0) return -1;
  ms_secret_set_free(server->secrets);
  server->secrets = secrets;
  if (replaced > 0) ms_server_publish(server);
  return replaced;
}

int ms_server_set_local_secrets(ms_server *server, ms_secret_set *secrets, char *err,
                                size_t err_len) {
  int replaced = ms_runtime_load_tls(server, server->config, server->clusters, NULL, secrets,
                                     server->secrets, MS_TLS_LOAD_ALL_OR_NOTHING, err, err_len);
  if (replaced < 0) return -1;
  ms_secret_set_free(server->local_secrets);
  server->local_secrets = secrets;
  if (replaced > 0) ms_server_publish(server);
  return replaced;
}

const ms_secret_set *ms_server_local_secrets(ms_server *server) {
  return server->local_secrets;
}

/* ---- stopping ----------------------------------------------------------- */

static int64_t open_connections(ms_server *server) {
  int64_t total = 0;
  for (uint32_t i = 0; i < server->worker_count; i++)
    total += atomic_load(&server->workers[i].connection_count);
  return total;
}

/* detach closes the attachment (the admin endpoint) if it was started. */
static void detach(ms_server *server) {
  if (!server->attached) return;
  server->attached = false;
  server->attachment.close(server->attachment.arg);
}

static void stop_everything(ms_server *server) {
  if (server->closing) return;
  server->closing = true;
  for (uint32_t i = 0; i < server->worker_count; i++)
    ms_worker_stop(&server->workers[i]);
  for (uint32_t i = 0; i < server->worker_count; i++)
    ms_worker_join(&server->workers[i]);
  detach(server);
  ms_resolver_stop(server);
  ms_watcher_stop(server);
  if (server->source.stop) server->source.stop(server->source.arg);
  if (server->identity.stop) server->identity.stop(server->identity.arg);
  ms_cert_expiry_stop(server->expiry);
  server->expiry = NULL;
  uv_close((uv_handle_t *)&server->drain_timer, NULL);
  uv_close((uv_handle_t *)&server->sigterm, NULL);
  uv_close((uv_handle_t *)&server->sigint, NULL);
  uv_close((uv_handle_t *)&server->sighup, NULL);
  ms_log(MS_LOG_INFO, "stopped");
}

static void on_drain_tick(uv_timer_t *timer) {
  ms_server *server = timer->data;
  int64_t open = open_connections(server);
  if (open == 0 || uv_now(server->loop) >= server->drain_deadline) {
    if (open)
      ms_log(MS_LOG_WARN, "drain timeout: closing %lld connection%s", (long long)open,
             ms_plural((unsigned long long)open));
    uv_timer_stop(timer);
    stop_everything(server);
  }
}

void ms_server_shutdown(ms_server *server, uint32_t drain_ms) {
  if (server->draining) return;
  server->draining = true;
  for (uint32_t i = 0; i < server->worker_count; i++)
    ms_worker_drain(&server->workers[i]);
  long long open = (long long)open_connections(server);
  ms_log(MS_LOG_INFO, "draining: stopped accepting; %lld connection%s open; waiting up to %u ms",
         open, ms_plural((unsigned long long)open), drain_ms);
  server->drain_deadline = uv_now(server->loop) + drain_ms;
  uv_timer_start(&server->drain_timer, on_drain_tick, 0, MS_DRAIN_POLL_MS);
}

static void on_signal(uv_signal_t *signal, int signum) {
  ms_server *server = signal->data;
  if (signum == SIGHUP) {
    ms_log(MS_LOG_INFO, "SIGHUP: reloading %s and its certificates", server->config->path);
    int rc = server->source.reload ? server->source.reload(server->source.arg)
                                   : ms_server_reload_config(server);
    if (rc == 0)
      MS_STAT_ADD(&server->stats, config_reload_success, 1);
    else
      MS_STAT_ADD(&server->stats, config_reload_failure, 1);
    files_changed(server);
    return;
  }
  if (server->draining && signum == SIGINT) {
    stop_everything(server); /* a second Ctrl-C does not wait */
    return;
  }
  ms_server_shutdown(server, server->config->drain_timeout_ms);
}

/* ---- starting ----------------------------------------------------------- */

int ms_server_new(uv_loop_t *loop, ms_config *config, const ms_server_attachment *attachment,
                  ms_server **out, char *err, size_t err_len) {
  ms_server *server = calloc(1, sizeof(*server));
  if (server == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  server->loop = loop;
  if (attachment) server->attachment = *attachment;
  server->started_at = (int64_t)time(NULL);
  /* worker_count counts started workers: publishing and stats see only them. */
  server->workers = calloc(config->workers, sizeof(ms_worker));
  if (server->workers == NULL) {
    snprintf(err, err_len, "out of memory");
    goto fail;
  }
  /* Binding happens here, on the main thread, so that a taken port is an
   * error at start, not a worker's silent failure. */
  if (ms_runtime_build(server, config, &server->clusters, &server->listener_sockets, err,
                       err_len) != 0)
    goto fail;
  server->config = ms_config_up_ref(config);
  if (ms_runtime_load_tls(server, server->config, server->clusters, NULL, NULL, NULL,
                          MS_TLS_LOAD_ALL_OR_NOTHING, err, err_len) < 0)
    goto fail;
  if (ms_server_publish(server) != 0) {
    snprintf(err, err_len, "out of memory");
    goto fail;
  }
  if (server->attachment.start) {
    if (server->attachment.start(server->attachment.arg, server, err, err_len) != 0) goto fail;
    server->attached = true;
  }
  for (uint32_t w = 0; w < config->workers; w++) {
    int rc = ms_worker_init(&server->workers[w], w, server->snapshot, &worker_protocols);
    if (rc == 0) rc = ms_worker_start(&server->workers[w]);
    if (rc != 0) {
      /* Some workers may already run: a half-started data plane is not worth
       * unwinding; say why and leave. */
      ms_log(MS_LOG_ERROR, "starting worker %u: %s", w, uv_strerror(rc));
      exit(1);
    }
    server->worker_count++;
  }

  uv_timer_init(loop, &server->drain_timer);
  server->drain_timer.data = server;
  uv_signal_init(loop, &server->sigterm);
  uv_signal_init(loop, &server->sigint);
  uv_signal_init(loop, &server->sighup);
  server->sigterm.data = server->sigint.data = server->sighup.data = server;
  uv_signal_start(&server->sigterm, on_signal, SIGTERM);
  uv_signal_start(&server->sigint, on_signal, SIGINT);
  uv_signal_start(&server->sighup, on_signal, SIGHUP);
  ms_resolver_start(server);
  ms_watcher_init(server);
  if (ms_cert_expiry_start(loop, server, &server->expiry) != 0)
    ms_log(MS_LOG_WARN, "out of memory: certificate expiry is not watched");
  for (size_t l = 0; l < config->listener_count; l++)
    ms_log(MS_LOG_INFO, "listening: listener=%s address=%s cluster=%s workers=%u",
           config->listeners[l].name, config->listeners[l].address.text,
           config->listeners[l].cluster, server->worker_count);
  if (server->attached) ms_log(MS_LOG_INFO, "admin: listening on %s", config->admin_address.text);
  *out = server;
  return 0;

fail:
  detach(server);
  server->closing = true;
  if (server->config == NULL) server->config = ms_config_up_ref(config);
  *out = server; /* the caller runs the loop once for close callbacks, then frees */
  return -1;
}

void ms_server_free(ms_server *server) {
  if (server == NULL) return;
  ms_snapshot_free(server->snapshot);
  if (server->config) ms_runtime_free(server->clusters, server->config, server->listener_sockets);
  ms_secret_set_free(server->secrets);
  ms_secret_set_free(server->local_secrets);
  free(server->workers);
  ms_config_free(server->config);
  free(server);
}
