/* Applying a configuration: at start, and again on SIGHUP (or, later, from
 * the control plane). What the new configuration shares with the one in
 * force is carried over by name: a listener's sockets (same name and
 * address), a cluster's TLS context, and its endpoints' counters, health and
 * resolved addresses (same address). Connections under way keep the
 * snapshot they started with, so nothing they use changes under them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/control/config_check.h"
#include "common/log.h"
#include "common/name_index.h"
#include "sidecar/event/port_owner.h"
#include "sidecar/control/server_internal.h"
#include "sidecar/upstream/upstream.h"

static int carry_cluster(ms_cluster_runtime *to, const ms_cluster_config *next,
                         const ms_cluster_runtime *from, const ms_cluster_config *previous) {
  size_t n = next->endpoint_count;
  to->states = calloc(n ? n : 1, sizeof(ms_endpoint_state *));
  to->resolved = calloc(n ? n : 1, sizeof(*to->resolved));
  if (!to->states || !to->resolved) return -1;
  if (from) {
    if (from->tls) to->tls = ms_tls_context_up_ref(from->tls);
    if (from->tls_error && !(to->tls_error = strdup(from->tls_error))) return -1;
  }
  for (size_t e = 0; e < n; e++) {
    const char *address = next->endpoints[e].address.text;
    for (size_t p = 0; from && p < previous->endpoint_count; p++) {
      if (strcmp(previous->endpoints[p].address.text, address) != 0) continue;
      to->states[e] = ms_endpoint_state_up_ref(from->states[p]);
      size_t count = from->resolved[p].count;
      if (count) {
        to->resolved[e].addrs = malloc(count * sizeof(struct sockaddr_storage));
        if (to->resolved[e].addrs == NULL) return -1;
        memcpy(to->resolved[e].addrs, from->resolved[p].addrs,
               count * sizeof(struct sockaddr_storage));
        to->resolved[e].count = count;
      }
      break;
    }
    if (to->states[e] == NULL && !(to->states[e] = ms_endpoint_state_new())) return -1;
  }
  return 0;
}

static ms_listener_sockets *find_sockets(const ms_server *server, const char *name,
                                         const char *address) {
  for (size_t i = 0; server->config && i < server->config->listener_count; i++) {
    ms_listener_sockets *sockets = server->listener_sockets[i];
    if (strcmp(sockets->name, name) == 0 && strcmp(sockets->address, address) == 0) return sockets;
  }
  return NULL;
}

int ms_server_can_listen(ms_server *server, const char *name, const ms_address *address, char *why,
                         size_t why_len) {
  if (find_sockets(server, name, address->text)) return 0;
  /* SO_REUSEPORT would let us share the address with another process. */
  return ms_port_owner_check(address, NULL, why, why_len);
}

void ms_runtime_free(ms_cluster_runtime *clusters, const ms_config *config,
                     ms_listener_sockets **sockets) {
  for (size_t c = 0; clusters && c < config->cluster_count; c++) {
    ms_cluster_runtime *runtime = &clusters[c];
    ms_tls_context_free(runtime->tls);
    free(runtime->tls_error);
    for (size_t e = 0; e < config->clusters[c].endpoint_count; e++) {
      if (runtime->states) ms_endpoint_state_free(runtime->states[e]);
      if (runtime->resolved) free(runtime->resolved[e].addrs);
    }
    free(runtime->states);
    free(runtime->resolved);
  }
  free(clusters);
  for (size_t l = 0; sockets && l < config->listener_count; l++)
    ms_listener_sockets_free(sockets[l]);
  free(sockets);
}

int ms_runtime_build(ms_server *server, const ms_config *next, ms_cluster_runtime **out,
                     ms_listener_sockets ***out_sockets, char *err, size_t err_len) {
  ms_cluster_runtime *clusters =
      calloc(next->cluster_count ? next->cluster_count : 1, sizeof(ms_cluster_runtime));
  ms_listener_sockets **sockets =
      calloc(next->listener_count ? next->listener_count : 1, sizeof(ms_listener_sockets *));
  /* The clusters in force, by name. */
  ms_name_index current = {0};
  size_t current_count = server->config ? server->config->cluster_count : 0;
  if (clusters == NULL || sockets == NULL || ms_name_index_init(&current, current_count) != 0)
    goto out_of_memory;
  for (size_t c = 0; c < current_count; c++)
    ms_name_index_put(&current, server->config->clusters[c].name, c);
  for (size_t c = 0; c < next->cluster_count; c++) {
    size_t index = ms_name_index_get(&current, next->clusters[c].name);
    bool found = index != MS_NAME_INDEX_NONE;
    if (carry_cluster(&clusters[c], &next->clusters[c], found ? &server->clusters[index] : NULL,
                      found ? &server->config->clusters[index] : NULL) != 0) {
      ms_name_index_cleanup(&current);
      goto out_of_memory;
    }
  }
  ms_name_index_cleanup(&current);
  for (size_t l = 0; l < next->listener_count; l++) {
    const ms_listener_config *listener = &next->listeners[l];
    ms_listener_sockets *kept = find_sockets(server, listener->name, listener->address.text);
    if (kept) {
      sockets[l] = ms_listener_sockets_up_ref(kept);
      continue;
    }
    char why[MS_ERR_LEN];
    int rc = ms_port_owner_check(&listener->address, NULL, why, sizeof(why));
    if (rc == 0) {
      rc = ms_listener_sockets_bind(listener->name, &listener->address, next->workers, &sockets[l]);
      if (rc != 0)
        snprintf(why, sizeof(why), "cannot listen on %s: %s", listener->address.text,
                 strerror(-rc));
    }
    if (rc != 0) {
      snprintf(err, err_len, "listeners[%zu] (%s): %s", l, listener->name, why);
      ms_runtime_free(clusters, next, sockets);
      return -1;
    }
  }
  *out = clusters;
  *out_sockets = sockets;
  return 0;

out_of_memory:
  snprintf(err, err_len, "out of memory");
  ms_runtime_free(clusters, next, sockets);
  return -1;
}

/* A cluster new to the server must have working certificates before the
 * configuration is accepted; existing ones rotate as usual (tls_loader.c). */
static int load_new_contexts(const ms_config *next, ms_cluster_runtime *clusters, char *err,
                             size_t err_len) {
  for (size_t c = 0; c < next->cluster_count; c++) {
    if (clusters[c].tls) continue;
    const ms_cluster_config *cluster = &next->clusters[c];
    const ms_cluster_tls_config *tls = &cluster->tls;
    if ((tls->certificate_secret && !ms_identity_owns_secret(next, tls->certificate_secret)) ||
        (tls->validation_secret && !ms_identity_owns_secret(next, tls->validation_secret))) {
      snprintf(err, err_len,
               "clusters[%zu] (%s): tls: a static cluster can name only the identity's secrets "
               "(identity.certificate_secret, identity.trust_bundle_secret); others come from "
               "the control plane",
               c, cluster->name);
      return -1;
    }
    if (tls->certificate_secret || tls->validation_secret) continue; /* the pass below */
    char why[MS_ERR_LEN];
    ms_tls_material material;
    if (ms_tls_material_load(&cluster->tls.settings, &material, why, sizeof(why)) != 0) {
      snprintf(err, err_len, "clusters[%zu] (%s): %s", c, cluster->name, why);
      return -1;
    }
    int rc =
        ms_tls_context_new(&cluster->tls.settings, &material, &clusters[c].tls, why, sizeof(why));
    ms_tls_material_cleanup(&material);
    if (rc != 0) {
      snprintf(err, err_len, "clusters[%zu] (%s): %s", c, cluster->name, why);
      return -1;
    }
    SSL_CTX_sess_set_new_cb(clusters[c].tls->ssl_ctx, ms_upstream_on_new_session);
  }
  return 0;
}

static int apply(ms_server *server, ms_config *next, ms_secret_set *secrets, bool checked,
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
  int loaded = checked ? ms_tls_load(server, next, clusters, server->local_secrets, secrets,
                                     MS_TLS_LOAD_ALL_OR_NOTHING, err, err_len)
                       : load_new_contexts(next, clusters, err, err_len);
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
    ms_tls_load(server, server->config, server->clusters, server->local_secrets, server->secrets,
                MS_TLS_LOAD_KEEP_OLD, ignored, sizeof(ignored));
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
  return apply(server, next, NULL, false, err, err_len);
}

int ms_server_apply_checked(ms_server *server, ms_config *next, ms_secret_set *secrets, char *err,
                            size_t err_len) {
  return apply(server, next, secrets, true, err, err_len);
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
