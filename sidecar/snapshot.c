#include "sidecar/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ms_endpoint_state *ms_endpoint_state_new(void) {
  ms_endpoint_state *state = calloc(1, sizeof(*state));
  if (state == NULL) return NULL;
  atomic_init(&state->refs, 1);
  pthread_mutex_init(&state->last_error_lock, NULL);
  return state;
}

ms_endpoint_state *ms_endpoint_state_up_ref(ms_endpoint_state *state) {
  atomic_fetch_add(&state->refs, 1);
  return state;
}

void ms_endpoint_state_free(ms_endpoint_state *state) {
  if (state == NULL || atomic_fetch_sub(&state->refs, 1) != 1) return;
  pthread_mutex_destroy(&state->last_error_lock);
  free(state);
}

void ms_endpoint_state_set_error(ms_endpoint_state *state, const char *message) {
  pthread_mutex_lock(&state->last_error_lock);
  snprintf(state->last_error, sizeof(state->last_error), "%s", message);
  pthread_mutex_unlock(&state->last_error_lock);
}

void ms_endpoint_state_get_error(ms_endpoint_state *state, char *buf, size_t len) {
  pthread_mutex_lock(&state->last_error_lock);
  snprintf(buf, len, "%s", state->last_error);
  pthread_mutex_unlock(&state->last_error_lock);
}

ms_snapshot *ms_snapshot_up_ref(ms_snapshot *snapshot) {
  atomic_fetch_add(&snapshot->refs, 1);
  return snapshot;
}

static void cluster_cleanup(ms_cluster *cluster) {
  for (size_t i = 0; i < cluster->endpoint_count; i++) {
    ms_endpoint_state_free(cluster->endpoints[i].state);
    free(cluster->endpoints[i].addrs);
  }
  free(cluster->endpoints);
  free(cluster->peer_checks);
  free(cluster->server_names);
  free(cluster->tls_error);
  ms_tls_context_free(cluster->tls);
}

void ms_snapshot_free(ms_snapshot *snapshot) {
  if (snapshot == NULL || atomic_fetch_sub(&snapshot->refs, 1) != 1) return;
  for (size_t i = 0; i < snapshot->cluster_count; i++)
    cluster_cleanup(&snapshot->clusters[i]);
  free(snapshot->clusters);
  ms_config_free(snapshot->config);
  free(snapshot);
}
