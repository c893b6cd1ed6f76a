/* balancer_test: the endpoint choice and passive outlier detection of
 * balancer.c, on clusters built by hand (no snapshot, no sockets). */
#include "sidecar/upstream/balancer.h"

#include <string.h>

#include "tests/lib/test_check.h"

#define MAX_ENDPOINTS 4

/* A cluster of `n` endpoints with these weights, every one resolved. */
typedef struct fixture {
  ms_cluster_config config;
  ms_endpoint_config endpoint_configs[MAX_ENDPOINTS];
  ms_endpoint endpoints[MAX_ENDPOINTS];
  struct sockaddr_storage addrs[MAX_ENDPOINTS];
  ms_cluster cluster;
  ms_balancer balancer;
} fixture;

static void fixture_init(fixture *f, ms_lb_policy policy, const uint32_t *weights, size_t n) {
  memset(f, 0, sizeof(*f));
  f->config.lb_policy = policy;
  f->config.outlier_detection = (ms_outlier_config){
      .consecutive_failures = 3, .base_ejection_ms = 5000, .max_ejection_ms = 300000};
  for (size_t i = 0; i < n; i++) {
    f->endpoint_configs[i].weight = weights[i];
    f->endpoints[i].config = &f->endpoint_configs[i];
    f->endpoints[i].state = ms_endpoint_state_new();
    CHECK(f->endpoints[i].state != NULL);
    f->endpoints[i].addrs = &f->addrs[i];
    f->endpoints[i].addr_count = 1;
  }
  f->cluster.config = &f->config;
  f->cluster.endpoints = f->endpoints;
  f->cluster.endpoint_count = n;
  CHECK(ms_balancer_init(&f->balancer, &f->cluster, 7) == 0);
}

static void fixture_cleanup(fixture *f) {
  ms_balancer_cleanup(&f->balancer);
  for (size_t i = 0; i < f->cluster.endpoint_count; i++)
    ms_endpoint_state_free(f->endpoints[i].state);
}

/* picks counts the choices of `rounds` picks with nothing tried. */
static void picks(fixture *f, int rounds, int64_t now_ms, int *counts) {
  for (int r = 0; r < rounds; r++) {
    size_t i = ms_balancer_pick(&f->balancer, &f->cluster, 0, now_ms);
    CHECK(i < f->cluster.endpoint_count);
    counts[i]++;
  }
}

/* nginx's smooth weighted round robin: weights 5, 1, 1 give the sequence
 * a a b a c a a, exactly in proportion over each cycle of 7. */
static void test_round_robin_is_smooth_and_weighted(void) {
  fixture f;
  fixture_init(&f, MS_LB_ROUND_ROBIN, (uint32_t[]){5, 1, 1}, 3);
  const size_t expected[] = {0, 0, 1, 0, 2, 0, 0};
  for (int cycle = 0; cycle < 3; cycle++)
    for (size_t k = 0; k < 7; k++)
      CHECK_INT(ms_balancer_pick(&f.balancer, &f.cluster, 0, 0), expected[k]);
  fixture_cleanup(&f);
}

static void test_tried_unresolved_and_ejected_endpoints_are_skipped(void) {
  fixture f;
  fixture_init(&f, MS_LB_ROUND_ROBIN, (uint32_t[]){1, 1, 1}, 3);
  /* Tried: endpoints 0 and 2 (bits), only 1 is left. */
  for (int r = 0; r < 5; r++)
    CHECK_INT(ms_balancer_pick(&f.balancer, &f.cluster, (1u << 0) | (1u << 2), 0), 1);
  CHECK_INT(ms_balancer_pick(&f.balancer, &f.cluster, 7, 0), MS_NO_ENDPOINT);
  /* Unresolved: never chosen. */
  f.endpoints[1].addr_count = 0;
  int counts[3] = {0};
  picks(&f, 30, 0, counts);
  CHECK_INT(counts[1], 0);
  CHECK_INT(counts[0], 15);
  /* Ejected until 1000: skipped before, chosen again from then on. */
  atomic_store(&f.endpoints[0].state->ejected_until_ms, 1000);
  for (int r = 0; r < 5; r++)
    CHECK_INT(ms_balancer_pick(&f.balancer, &f.cluster, 0, 999), 2);
  memset(counts, 0, sizeof(counts));
  picks(&f, 30, 1000, counts);
  CHECK_INT(counts[0], 15);
  fixture_cleanup(&f);
}

static void test_least_connections_weighs_and_spreads_ties(void) {
  fixture f;
  fixture_init(&f, MS_LB_LEAST_CONNECTIONS, (uint32_t[]){1, 2, 1}, 3);
  /* Active 2, 2, 3: endpoint 1 has the fewest per unit of weight (1). */
  atomic_store(&f.endpoints[0].state->active_connections, 2);
  atomic_store(&f.endpoints[1].state->active_connections, 2);
  atomic_store(&f.endpoints[2].state->active_connections, 3);
  for (int r = 0; r < 6; r++)
    CHECK_INT(ms_balancer_pick(&f.balancer, &f.cluster, 0, 0), 1);
  /* A tie (0 everywhere): the rotating start spreads the choices evenly. */
  for (size_t i = 0; i < 3; i++)
    atomic_store(&f.endpoints[i].state->active_connections, 0);
  int counts[3] = {0};
  picks(&f, 300, 0, counts);
  for (size_t i = 0; i < 3; i++)
    CHECK_INT(counts[i], 100);
  fixture_cleanup(&f);
}

static void test_random_follows_the_weights(void) {
  fixture f;
  fixture_init(&f, MS_LB_RANDOM, (uint32_t[]){3, 1, 0}, 2);
  int counts[2] = {0};
  picks(&f, 40000, 0, counts);
  /* 3:1 of 40,000: 30,000 expected; a fair generator stays within 1 %. */
  CHECK(counts[0] > 29700 && counts[0] < 30300);
  CHECK_INT(ms_balancer_pick(&f.balancer, &f.cluster, 3, 0), MS_NO_ENDPOINT);
  fixture_cleanup(&f);
}

static void test_ejection_doubles_is_capped_and_spares_the_last_endpoint(void) {
  fixture f;
  fixture_init(&f, MS_LB_ROUND_ROBIN, (uint32_t[]){1, 1}, 2);
  f.config.outlier_detection.max_ejection_ms = 12000;
  /* Two failures: a streak, no ejection; the third ejects for 5 s. */
  CHECK_INT(ms_endpoint_record_failure(&f.cluster, 0, 0), 0);
  CHECK_INT(ms_endpoint_record_failure(&f.cluster, 0, 0), 0);
  CHECK_INT(ms_endpoint_record_failure(&f.cluster, 0, 0), 5000);
  CHECK_INT(atomic_load(&f.endpoints[0].state->ejected_until_ms), 5000);
  /* Ejected again in a row: 10 s, then the 12 s cap. */
  for (int k = 0; k < 2; k++)
    CHECK_INT(ms_endpoint_record_failure(&f.cluster, 0, 6000), 0);
  CHECK_INT(ms_endpoint_record_failure(&f.cluster, 0, 6000), 10000);
  for (int k = 0; k < 2; k++)
    CHECK_INT(ms_endpoint_record_failure(&f.cluster, 0, 17000), 0);
  CHECK_INT(ms_endpoint_record_failure(&f.cluster, 0, 17000), 12000);
  CHECK_INT(atomic_load(&f.endpoints[0].state->total_ejections), 3);
  /* While 0 is out, endpoint 1 is the last one standing: never ejected. */
  for (int k = 0; k < 6; k++)
    CHECK_INT(ms_endpoint_record_failure(&f.cluster, 1, 18000), 0);
  CHECK_INT(atomic_load(&f.endpoints[1].state->ejected_until_ms), 0);
  /* A success ends the streak and the run of ejections: back to 5 s. */
  ms_endpoint_record_success(f.endpoints[0].state);
  for (int k = 0; k < 2; k++)
    CHECK_INT(ms_endpoint_record_failure(&f.cluster, 0, 40000), 0);
  CHECK_INT(ms_endpoint_record_failure(&f.cluster, 0, 40000), 5000);
  /* consecutive_failures 0 turns ejection off. */
  f.config.outlier_detection.consecutive_failures = 0;
  for (int k = 0; k < 10; k++)
    CHECK_INT(ms_endpoint_record_failure(&f.cluster, 1, 50000), 0);
  fixture_cleanup(&f);
}

int main(void) {
  test_round_robin_is_smooth_and_weighted();
  test_tried_unresolved_and_ejected_endpoints_are_skipped();
  test_least_connections_weighs_and_spreads_ties();
  test_random_follows_the_weights();
  test_ejection_doubles_is_capped_and_spares_the_last_endpoint();
  printf("balancer_test: ok\n");
  return 0;
}
