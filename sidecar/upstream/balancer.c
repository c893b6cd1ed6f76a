#include "sidecar/upstream/balancer.h"

#include <stdlib.h>

int ms_balancer_init(ms_balancer *balancer, const ms_cluster *cluster, uint64_t seed) {
  balancer->next = (uint32_t)seed;
  balancer->endpoint_count = cluster->endpoint_count;
  balancer->rng = seed | 1;
  balancer->current_weights =
      calloc(cluster->endpoint_count ? cluster->endpoint_count : 1, sizeof(int64_t));
  return balancer->current_weights ? 0 : -1;
}

void ms_balancer_cleanup(ms_balancer *balancer) {
  free(balancer->current_weights);
  balancer->current_weights = NULL;
}

static bool ejected(const ms_endpoint *endpoint, int64_t now_ms) {
  return atomic_load_explicit(&endpoint->state->ejected_until_ms, memory_order_relaxed) > now_ms;
}

static bool eligible(const ms_cluster *cluster, size_t i, uint64_t tried, int64_t now_ms) {
  const ms_endpoint *endpoint = &cluster->endpoints[i];
  if (endpoint->addr_count == 0) return false;
  if (i < 64 && (tried & (1ULL << i))) return false;
  return !ejected(endpoint, now_ms);
}

static uint64_t next_random(ms_balancer *balancer) {
  uint64_t x = balancer->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return balancer->rng = x;
}

/* nginx's smooth weighted round robin: every eligible endpoint gains its
 * weight, the richest is chosen and pays the total. */
static size_t pick_round_robin(ms_balancer *balancer, const ms_cluster *cluster, uint64_t tried,
                               int64_t now_ms) {
  size_t best = MS_NO_ENDPOINT;
  int64_t total = 0;
  for (size_t i = 0; i < cluster->endpoint_count; i++) {
    if (!eligible(cluster, i, tried, now_ms)) continue;
    int64_t weight = cluster->endpoints[i].config->weight;
    balancer->current_weights[i] += weight;
    total += weight;
    if (best == MS_NO_ENDPOINT || balancer->current_weights[i] > balancer->current_weights[best])
      best = i;
  }
  if (best != MS_NO_ENDPOINT) balancer->current_weights[best] -= total;
  return best;
}

/* Fewest active connections per unit of weight; the scan starts at a
 * rotating cursor so that ties spread evenly. */
static size_t pick_least_connections(ms_balancer *balancer, const ms_cluster *cluster,
                                     uint64_t tried, int64_t now_ms) {
  size_t n = cluster->endpoint_count, best = MS_NO_ENDPOINT;
  int64_t best_active = 0, best_weight = 1;
  uint32_t start = balancer->next++;
  for (size_t k = 0; k < n; k++) {
    size_t i = (start + k) % n;
    if (!eligible(cluster, i, tried, now_ms)) continue;
    int64_t active = atomic_load_explicit(&cluster->endpoints[i].state->active_connections,
                                          memory_order_relaxed);
    int64_t weight = cluster->endpoints[i].config->weight;
    if (best == MS_NO_ENDPOINT || active * best_weight < best_active * weight) {
      best = i;
      best_active = active;
      best_weight = weight;
    }
  }
  return best;
}

static size_t pick_random(ms_balancer *balancer, const ms_cluster *cluster, uint64_t tried,
                          int64_t now_ms) {
  uint64_t total = 0;
  for (size_t i = 0; i < cluster->endpoint_count; i++)
    if (eligible(cluster, i, tried, now_ms)) total += cluster->endpoints[i].config->weight;
  if (total == 0) return MS_NO_ENDPOINT;
  uint64_t point = next_random(balancer) % total;
  for (size_t i = 0; i < cluster->endpoint_count; i++) {
    if (!eligible(cluster, i, tried, now_ms)) continue;
    uint64_t weight = cluster->endpoints[i].config->weight;
    if (point < weight) return i;
    point -= weight;
  }
  return MS_NO_ENDPOINT;
}

size_t ms_balancer_pick(ms_balancer *balancer, const ms_cluster *cluster, uint64_t tried,
                        int64_t now_ms) {
  switch (cluster->config->lb_policy) {
    case MS_LB_LEAST_CONNECTIONS:
      return pick_least_connections(balancer, cluster, tried, now_ms);
    case MS_LB_RANDOM:
      return pick_random(balancer, cluster, tried, now_ms);
    case MS_LB_ROUND_ROBIN:
    default:
      return pick_round_robin(balancer, cluster, tried, now_ms);
  }
}

void ms_endpoint_record_success(ms_endpoint_state *state) {
  atomic_store_explicit(&state->consecutive_failures, 0, memory_order_relaxed);
  if (atomic_load_explicit(&state->ejection_count, memory_order_relaxed) != 0)
    atomic_store_explicit(&state->ejection_count, 0, memory_order_relaxed);
}

uint32_t ms_endpoint_record_failure(const ms_cluster *cluster, size_t endpoint_index,
                                    int64_t now_ms) {
  const ms_outlier_config *outlier = &cluster->config->outlier_detection;
  ms_endpoint_state *state = cluster->endpoints[endpoint_index].state;
  unsigned streak = atomic_fetch_add(&state->consecutive_failures, 1) + 1;
  if (outlier->consecutive_failures == 0 || streak < outlier->consecutive_failures) return 0;

  size_t others_available = 0;
  for (size_t i = 0; i < cluster->endpoint_count; i++)
    if (i != endpoint_index && cluster->endpoints[i].addr_count > 0 &&
        !ejected(&cluster->endpoints[i], now_ms))
      others_available++;
  if (others_available == 0) return 0; /* never eject the last endpoint standing */

  unsigned times = atomic_fetch_add(&state->ejection_count, 1);
  uint64_t duration = outlier->base_ejection_ms;
  for (unsigned i = 0; i < times && duration < outlier->max_ejection_ms; i++)
    duration *= 2;
  if (duration > outlier->max_ejection_ms) duration = outlier->max_ejection_ms;
  atomic_store(&state->ejected_until_ms, now_ms + (int64_t)duration);
  atomic_store(&state->consecutive_failures, 0);
  atomic_fetch_add(&state->total_ejections, 1);
  return (uint32_t)duration;
}
