#include "sidecar/event/snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/net.h"

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
  free(state->last_error);
  free(state);
}

void ms_endpoint_state_set_error(ms_endpoint_state *state, const char *message) {
  char *copy = strdup(message); /* outside the lock: the admin may be reading */
  if (copy == NULL) return;
  pthread_mutex_lock(&state->last_error_lock);
  char *previous = state->last_error;
  state->last_error = copy;
  pthread_mutex_unlock(&state->last_error_lock);
  free(previous);
}

char *ms_endpoint_state_get_error(ms_endpoint_state *state) {
  pthread_mutex_lock(&state->last_error_lock);
  char *copy = state->last_error ? strdup(state->last_error) : NULL;
  pthread_mutex_unlock(&state->last_error_lock);
  return copy;
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

int ms_listener_sockets_bind(const char *name, const ms_address *address, size_t count,
                             ms_listener_sockets **out) {
  ms_listener_sockets *sockets = calloc(1, sizeof(*sockets));
  if (sockets == NULL) return -ENOMEM;
  atomic_init(&sockets->refs, 1);
  atomic_init(&sockets->connections, 0);
  sockets->name = strdup(name);
  sockets->address = strdup(address->text);
  sockets->fds = calloc(count ? count : 1, sizeof(atomic_int));
  size_t stats_size = (count ? count : 1) * sizeof(ms_listener_stats);
  sockets->stats = aligned_alloc(_Alignof(ms_listener_stats), stats_size);
  if (sockets->stats) memset(sockets->stats, 0, stats_size);
  if (!sockets->name || !sockets->address || !sockets->fds || !sockets->stats) {
    ms_listener_sockets_free(sockets);
    return -ENOMEM;
  }
  for (size_t i = 0; i < count; i++)
    atomic_init(&sockets->fds[i], -1);
  sockets->fd_count = count;
  for (size_t i = 0; i < count; i++) {
    int fd = ms_net_listen((const struct sockaddr *)&address->sockaddr, address->sockaddr_len);
    if (fd < 0) {
      ms_listener_sockets_free(sockets);
      return fd;
    }
    atomic_store(&sockets->fds[i], fd);
  }
  *out = sockets;
  return 0;
}

ms_listener_sockets *ms_listener_sockets_up_ref(ms_listener_sockets *sockets) {
  atomic_fetch_add(&sockets->refs, 1);
  return sockets;
}

void ms_listener_sockets_free(ms_listener_sockets *sockets) {
  if (sockets == NULL || atomic_fetch_sub(&sockets->refs, 1) != 1) return;
  for (size_t i = 0; sockets->fds && i < sockets->fd_count; i++) {
    int fd = atomic_load(&sockets->fds[i]);
    if (fd >= 0) close(fd);
  }
  free(sockets->fds);
  free(sockets->stats);
  free(sockets->name);
  free(sockets->address);
  free(sockets);
}

int ms_listener_sockets_take(ms_listener_sockets *sockets, size_t index) {
  if (index >= sockets->fd_count) return -1;
  return atomic_exchange(&sockets->fds[index], -1);
}

const ms_listener *ms_snapshot_find_listener(const ms_snapshot *snapshot,
                                             const ms_listener_sockets *sockets) {
  for (size_t i = 0; i < snapshot->listener_count; i++)
    if (snapshot->listeners[i].sockets == sockets) return &snapshot->listeners[i];
  return NULL;
}

void ms_snapshot_free(ms_snapshot *snapshot) {
  if (snapshot == NULL || atomic_fetch_sub(&snapshot->refs, 1) != 1) return;
  for (size_t i = 0; i < snapshot->listener_count; i++)
    ms_listener_sockets_free(snapshot->listeners[i].sockets);
  free(snapshot->listeners);
  for (size_t i = 0; i < snapshot->cluster_count; i++)
    cluster_cleanup(&snapshot->clusters[i]);
  free(snapshot->clusters);
  ms_config_free(snapshot->config);
  free(snapshot);
}
