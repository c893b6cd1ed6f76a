/* Building and reloading the clusters' TLS contexts (main thread). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/connection.h"
#include "sidecar/log.h"
#include "sidecar/server_internal.h"

/* A context already built with the same material, by this pass or held by a
 * cluster: clusters that share a secret share one SSL_CTX. */
static ms_tls_context *find_by_digest(const ms_server *server, const ms_cluster_runtime *clusters,
                                      size_t cluster_count, ms_tls_context **built, size_t count,
                                      const uint8_t digest[32]) {
  for (size_t i = 0; i < count; i++)
    if (built[i] && memcmp(built[i]->digest, digest, 32) == 0) return built[i];
  for (size_t i = 0; i < cluster_count; i++) {
    ms_tls_context *held = clusters[i].tls;
    if (held && memcmp(held->digest, digest, 32) == 0) return held;
  }
  for (size_t i = 0; server->config && clusters != server->clusters &&
                     i < server->config->cluster_count;
       i++) {
    ms_tls_context *current = server->clusters[i].tls;
    if (current && memcmp(current->digest, digest, 32) == 0) return current;
  }
  return NULL;
}

static void refuse(ms_server *server, const ms_config *config, ms_cluster_runtime *runtime,
                   size_t index, const char *why) {
  const char *name = config->clusters[index].name;
  free(runtime->tls_error);
  runtime->tls_error = strdup(why);
  MS_STAT_ADD(&server->stats, tls_reload_failure, 1);
  if (runtime->tls)
    ms_log(MS_LOG_ERROR, "tls reload refused: cluster=%s: %s; keeping generation %llu", name, why,
           (unsigned long long)runtime->tls->generation);
  else
    ms_log(MS_LOG_ERROR, "tls load failed: cluster=%s: %s", name, why);
}

/* build_one returns a context for cluster `i` with a new reference, or NULL
 * when its material is unchanged (*out_failed false) or fails (true, `why`). */
static ms_tls_context *build_one(const ms_server *server, const ms_config *config,
                                 const ms_cluster_runtime *clusters, ms_tls_context **built,
                                 size_t i, bool *out_failed, char *why, size_t why_len) {
  const ms_cluster_config *cluster = &config->clusters[i];
  const ms_cluster_runtime *runtime = &clusters[i];
  *out_failed = false;
  ms_tls_material material;
  if (ms_tls_material_load(&cluster->tls.settings, &material, why, why_len) != 0) {
    *out_failed = true;
    return NULL;
  }
  ms_tls_context *context = NULL;
  if (runtime->tls && memcmp(runtime->tls->digest, material.digest, 32) == 0) {
    /* unchanged */
  } else if ((context = find_by_digest(server, clusters, config->cluster_count, built, i,
                                       material.digest))) {
    ms_tls_context_up_ref(context);
  } else if (ms_tls_context_new(&cluster->tls.settings, &material, &context, why, why_len) == 0) {
    SSL_CTX_sess_set_new_cb(context->ssl_ctx, ms_conn_on_new_session);
  } else {
    context = NULL;
    *out_failed = true;
  }
  ms_tls_material_cleanup(&material);
  return context;
}

int ms_tls_load(ms_server *server, const ms_config *config, ms_cluster_runtime *clusters,
                ms_tls_load_mode mode, char *err, size_t err_len) {
  size_t count = config->cluster_count;
  ms_tls_context **built = calloc(count ? count : 1, sizeof(*built));
  if (built == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  int replaced = 0, failed = 0;
  for (size_t i = 0; i < count; i++) {
    char why[MS_ERR_LEN];
    bool this_failed;
    built[i] = build_one(server, config, clusters, built, i, &this_failed, why, sizeof(why));
    if (!this_failed) continue;
    if (!failed++)
      snprintf(err, err_len, "clusters[%zu] (%s): %s", i, config->clusters[i].name, why);
    if (mode == MS_TLS_LOAD_ALL_OR_NOTHING) break;
    refuse(server, config, &clusters[i], i, why);
  }
  if (failed && mode == MS_TLS_LOAD_ALL_OR_NOTHING) {
    for (size_t i = 0; i < count; i++)
      ms_tls_context_free(built[i]);
    free(built);
    return -1;
  }
  for (size_t i = 0; i < count; i++) {
    if (built[i] == NULL) continue;
    ms_cluster_runtime *runtime = &clusters[i];
    ms_tls_context *context = built[i];
    bool rotated = runtime->tls != NULL;
    if (rotated) MS_STAT_ADD(&server->stats, tls_reload_success, 1);
    char expires[32] = "none";
    if (context->leaf.not_after) ms_time_rfc3339(context->leaf.not_after, expires, sizeof(expires));
    ms_log(MS_LOG_INFO, "tls %s: cluster=%s generation=%llu serial=%s expires=%s",
           rotated ? "reloaded" : "loaded", config->clusters[i].name,
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
  int replaced = ms_tls_load(server, server->config, server->clusters, MS_TLS_LOAD_KEEP_OLD, err,
                             sizeof(err));
  if (replaced > 0 || replaced < 0) ms_server_publish(server);
  return replaced;
}
