/* Building and reloading the clusters' TLS contexts (main thread). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/connection.h"
#include "sidecar/log.h"
#include "sidecar/server_internal.h"

/* A context already built with the same material, by this reload or the
 * current state: clusters that share a secret share one SSL_CTX. */
static ms_tls_context *find_by_digest(ms_server *server, ms_tls_context **built, size_t count,
                                      const uint8_t digest[32]) {
  for (size_t i = 0; i < count; i++)
    if (built[i] && memcmp(built[i]->digest, digest, 32) == 0) return built[i];
  for (size_t i = 0; i < server->config->cluster_count; i++) {
    ms_tls_context *current = server->clusters[i].tls;
    if (current && memcmp(current->digest, digest, 32) == 0) return current;
  }
  return NULL;
}

static void refuse(ms_server *server, size_t index, const char *why) {
  ms_cluster_runtime *runtime = &server->clusters[index];
  const char *name = server->config->clusters[index].name;
  free(runtime->tls_error);
  runtime->tls_error = strdup(why);
  MS_STAT_ADD(&server->stats, tls_reload_failure, 1);
  if (runtime->tls)
    ms_log(MS_LOG_ERROR, "tls reload refused: cluster=%s: %s; keeping generation %llu", name, why,
           (unsigned long long)runtime->tls->generation);
  else
    ms_log(MS_LOG_ERROR, "tls load failed: cluster=%s: %s", name, why);
}

int ms_server_load_tls(ms_server *server, bool initial, char *err, size_t err_len) {
  size_t count = server->config->cluster_count;
  ms_tls_context **built = calloc(count ? count : 1, sizeof(*built));
  if (built == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  int replaced = 0, failed = 0;
  for (size_t i = 0; i < count; i++) {
    const ms_cluster_config *cluster = &server->config->clusters[i];
    ms_cluster_runtime *runtime = &server->clusters[i];
    char why[MS_ERR_LEN];
    ms_tls_material material;
    if (ms_tls_material_load(&cluster->tls.settings, &material, why, sizeof(why)) != 0) {
      refuse(server, i, why);
      if (!failed++) snprintf(err, err_len, "clusters[%zu] (%s): %s", i, cluster->name, why);
      continue;
    }
    if (runtime->tls && memcmp(runtime->tls->digest, material.digest, 32) == 0) {
      ms_tls_material_cleanup(&material);
      continue; /* unchanged */
    }
    ms_tls_context *context = find_by_digest(server, built, i, material.digest);
    if (context) {
      ms_tls_context_up_ref(context);
    } else if (ms_tls_context_new(&cluster->tls.settings, &material, &context, why, sizeof(why)) ==
               0) {
      SSL_CTX_sess_set_new_cb(context->ssl_ctx, ms_conn_on_new_session);
    } else {
      context = NULL;
    }
    ms_tls_material_cleanup(&material);
    if (context == NULL) {
      refuse(server, i, why);
      if (!failed++) snprintf(err, err_len, "clusters[%zu] (%s): %s", i, cluster->name, why);
      continue;
    }
    built[i] = context;
  }
  for (size_t i = 0; i < count; i++) {
    if (built[i] == NULL) continue;
    ms_cluster_runtime *runtime = &server->clusters[i];
    ms_tls_context *context = built[i];
    if (!initial) MS_STAT_ADD(&server->stats, tls_reload_success, 1);
    char expires[32] = "none";
    if (context->leaf.not_after) ms_time_rfc3339(context->leaf.not_after, expires, sizeof(expires));
    ms_log(MS_LOG_INFO, "tls %s: cluster=%s generation=%llu serial=%s expires=%s",
           initial ? "loaded" : "reloaded", server->config->clusters[i].name,
           (unsigned long long)context->generation,
           context->leaf.serial_hex[0] ? context->leaf.serial_hex : "none", expires);
    ms_tls_context_free(runtime->tls);
    runtime->tls = context;
    free(runtime->tls_error);
    runtime->tls_error = NULL;
    replaced++;
  }
  free(built);
  return failed ? -1 : replaced;
}

int ms_server_reload(ms_server *server) {
  char err[MS_ERR_LEN];
  int replaced = ms_server_load_tls(server, false, err, sizeof(err));
  if (replaced > 0 || replaced < 0) ms_server_publish(server);
  return replaced;
}
