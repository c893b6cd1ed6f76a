/* upstream_pick_test: ms_upstream_pick (upstream.h) with a cluster from an
 * older snapshot than the worker's balancers, as an HTTP request retried
 * after the worker took up a new snapshot has: more endpoints than the
 * worker's balancer for that index, or an index past the worker's last
 * cluster. The pick stays within the cluster's own endpoints (under ASan a
 * read past the worker's balancers fails the test), skips what was tried,
 * and the worker's balancers are used when they fit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/upstream/balancer.h"
#include "sidecar/upstream/upstream.h"
#include "tests/lib/test_check.h"

#define MAX_ENDPOINTS 6

typedef struct fixture {
  ms_cluster_config config;
  ms_endpoint_config endpoint_configs[MAX_ENDPOINTS];
  ms_endpoint endpoints[MAX_ENDPOINTS];
  struct sockaddr_storage addrs[MAX_ENDPOINTS];
  ms_cluster cluster;
} fixture;

/* A round-robin cluster at `index` of `n` endpoints of weight 1. */
static void fixture_init(fixture *f, size_t index, size_t n) {
  memset(f, 0, sizeof(*f));
  f->config.lb_policy = MS_LB_ROUND_ROBIN;
  for (size_t i = 0; i < n; i++) {
    f->endpoint_configs[i].weight = 1;
    f->endpoints[i].config = &f->endpoint_configs[i];
    f->endpoints[i].state = ms_endpoint_state_new();
    CHECK(f->endpoints[i].state != NULL);
    f->endpoints[i].addrs = &f->addrs[i];
    f->endpoints[i].addr_count = 1;
  }
  f->cluster.config = &f->config;
  f->cluster.endpoints = f->endpoints;
  f->cluster.endpoint_count = n;
  f->cluster.index = index;
}

static void fixture_cleanup(fixture *f) {
  for (size_t i = 0; i < f->cluster.endpoint_count; i++)
    ms_endpoint_state_free(f->endpoints[i].state);
}

int main(void) {
  static ms_worker worker; /* large; only its loop and balancers matter here */
  CHECK(uv_loop_init(&worker.loop) == 0);
  /* The worker's snapshot: one cluster of two endpoints. */
  fixture current;
  fixture_init(&current, 0, 2);
  worker.balancers = calloc(1, sizeof(ms_balancer));
  worker.balancer_count = 1;
  CHECK(ms_balancer_init(&worker.balancers[0], &current.cluster, 1) == 0);

  /* It fits: the worker's balancer turns (round robin over both). */
  size_t a = ms_upstream_pick(&worker, &current.cluster, 0);
  size_t b = ms_upstream_pick(&worker, &current.cluster, 0);
  CHECK(a < 2 && b < 2 && a != b);

  /* An older snapshot's cluster 0 had six endpoints: every pick is one of
   * them, the tried ones skipped, until none is left. */
  fixture older;
  fixture_init(&older, 0, 6);
  uint64_t tried = 0;
  for (size_t n = 0; n < 6; n++) {
    size_t index = ms_upstream_pick(&worker, &older.cluster, tried);
    CHECK(index < 6 && !(tried & (1ULL << index)));
    if (index < 6) tried |= 1ULL << index;
  }
  CHECK(ms_upstream_pick(&worker, &older.cluster, tried) == MS_NO_ENDPOINT);

  /* An older snapshot's cluster 3, past the worker's only balancer. */
  fixture gone;
  fixture_init(&gone, 3, 4);
  CHECK(ms_upstream_pick(&worker, &gone.cluster, 0) < 4);
  CHECK(ms_upstream_pick(&worker, &gone.cluster, 0x7) == 3);

  ms_balancer_cleanup(&worker.balancers[0]);
  free(worker.balancers);
  fixture_cleanup(&current);
  fixture_cleanup(&older);
  fixture_cleanup(&gone);
  CHECK(uv_loop_close(&worker.loop) == 0);
  printf("upstream_pick_test: ok\n");
  return 0;
}
