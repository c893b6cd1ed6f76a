/* balancer.h: choosing an endpoint, and passive outlier detection.
 *
 * A worker keeps one ms_balancer per cluster of its snapshot (worker-local:
 * no locks); health (consecutive failures, ejection) lives in the shared
 * ms_endpoint_state atomics, so every worker sees an ejection at once. */
#ifndef MS_BALANCER_H
#define MS_BALANCER_H

#include <stddef.h>
#include <stdint.h>

#include "sidecar/event/snapshot.h"

#define MS_NO_ENDPOINT ((size_t)-1)

typedef struct ms_balancer {
  uint32_t next;            /* round-robin cursor (also breaks ties) */
  int64_t *current_weights; /* smooth weighted round robin, one per endpoint */
  size_t endpoint_count;
  uint64_t rng; /* xorshift state for random */
} ms_balancer;

/* ms_balancer_init prepares a balancer for `cluster`. Returns 0 or -1 when
 * memory ran out. */
int ms_balancer_init(ms_balancer *balancer, const ms_cluster *cluster, uint64_t seed);
void ms_balancer_cleanup(ms_balancer *balancer);

/* ms_balancer_pick returns the index of the endpoint to try next under the
 * cluster's policy, skipping endpoints with no resolved address, ejected
 * endpoints, and those whose bit is set in `tried` (bit i: endpoint i, for
 * the first 64). Returns MS_NO_ENDPOINT when none is left. */
size_t ms_balancer_pick(ms_balancer *balancer, const ms_cluster *cluster, uint64_t tried,
                        int64_t now_ms);

/* ms_endpoint_record_success clears the endpoint's failure streak. */
void ms_endpoint_record_success(ms_endpoint_state *state);

/* ms_endpoint_record_failure counts a failed connect or handshake and ejects
 * the endpoint when the streak reaches the cluster's threshold, for
 * base_ejection_ms doubled per ejection in a row (capped), unless that would
 * leave the cluster with no endpoint. Returns the ejection time in ms, or 0
 * when the endpoint was not ejected. */
uint32_t ms_endpoint_record_failure(const ms_cluster *cluster, size_t endpoint_index,
                                    int64_t now_ms);

#endif
