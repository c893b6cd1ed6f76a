/* The runtime of a configuration (server_internal.h): what the main thread
 * keeps per cluster and per listener beside the immutable configuration, at
 * start and again whenever a configuration is applied (SIGHUP, the control
 * plane). What the new configuration shares with the one in force is
 * carried over by name: a listener's sockets (same name and address), a
 * cluster's TLS context, and its endpoints' counters, health and resolved
 * addresses (same address). The clusters' contexts come from the TLS loader
 * (sidecar/tls/tls_loader.h); here they are put in the runtime. Connections
 * under way keep the snapshot they started with, so nothing they use
 * changes under them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/name_index.h"
#include "sidecar/control/server_internal.h"
#include "sidecar/event/port_owner.h"
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

ms_listener_sockets *ms_runtime_find_sockets(const ms_server *server, const char *name,
                                             const char *address) {
  for (size_t i = 0; server->config && i < server->config->listener_count; i++) {
    ms_listener_sockets *sockets = server->listener_sockets[i];
    if (strcmp(sockets->name, name) == 0 && strcmp(sockets->address, address) == 0) return sockets;
  }
  return NULL;
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
    ms_listener_sockets *kept =
        ms_runtime_find_sockets(server, listener->name, listener->address.text);
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

int ms_runtime_load_tls(ms_server *server, const ms_config *config, ms_cluster_runtime *clusters,
                        const bool *only, const ms_secret_set *local, const ms_secret_set *secrets,
                        ms_tls_load_mode mode, char *err, size_t err_len) {
  size_t count = config->cluster_count;
  /* A runtime about to be applied shares contexts with the one in force. */
  size_t in_use_count =
      server->config && clusters != server->clusters ? server->config->cluster_count : 0;
  ms_tls_context **current = calloc(count + in_use_count + 1, sizeof(ms_tls_context *));
  if (current == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < count; i++)
    current[i] = clusters[i].tls;
  for (size_t i = 0; i < in_use_count; i++)
    current[count + i] = server->clusters[i].tls;
  ms_tls_load_input input = {
      .config = config,
      .current = current,
      .in_use = in_use_count ? current + count : NULL,
      .in_use_count = in_use_count,
      .only = only,
      .local = local,
      .secrets = secrets,
      .mode = mode,
      .new_session = ms_upstream_on_new_session,
  };
  ms_tls_load_result result;
  int rc = ms_tls_load(&input, &result, err, err_len);
  free(current);
  if (rc != 0) return -1;

  MS_STAT_ADD(&server->stats, tls_reload_failure, result.failed);
  for (size_t i = 0; i < count; i++) {
    ms_cluster_runtime *runtime = &clusters[i];
    if (result.errors[i]) { /* KEEP_OLD: the cluster keeps its context */
      free(runtime->tls_error);
      runtime->tls_error = result.errors[i];
      result.errors[i] = NULL;
    } else if (result.contexts[i]) {
      if (runtime->tls) MS_STAT_ADD(&server->stats, tls_reload_success, 1);
      ms_tls_context_free(runtime->tls);
      runtime->tls = result.contexts[i];
      result.contexts[i] = NULL;
      free(runtime->tls_error);
      runtime->tls_error = NULL;
    }
  }
  int replaced = result.failed ? -1 : (int)result.replaced;
  ms_tls_load_result_cleanup(&result);
  return replaced;
}

int ms_runtime_load_new_tls(ms_server *server, const ms_config *next, ms_cluster_runtime *clusters,
                            char *err, size_t err_len) {
  bool *only = calloc(next->cluster_count + 1, sizeof(bool));
  if (only == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
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
      free(only);
      return -1;
    }
    /* The identity's secrets wait for it: the KEEP_OLD pass after the apply. */
    only[c] = !tls->certificate_secret && !tls->validation_secret;
  }
  int loaded = ms_runtime_load_tls(server, next, clusters, only, server->local_secrets,
                                   server->secrets, MS_TLS_LOAD_ALL_OR_NOTHING, err, err_len);
  free(only);
  return loaded;
}
