/* resources_endpoints_test.c: a ClusterLoadAssignment built in C into
 * ms_xds_endpoints (xds/resources/resources.h): health statuses, weights, host names,
 * an empty assignment, refusals with their exact message; truncated and
 * bit-flipped bytes decode or fail cleanly.
 *
 * The first failed check ends the process with status 1. */
#include <stdio.h>
#include <stdlib.h>

#include "xds/resources/resources_test_util.h"

static void test_endpoints(void) {
  cluster_fixture f; /* for its endpoint pieces */
  cluster_fixture_init(&f);
  f.load_assignment.cluster_name = "orders-eds";
  f.socket[1].address = "orders.shop.svc"; /* a host name is fine outside STATIC clusters */
  f.lb[0].health_status = ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY;
  f.lb[1].health_status = ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__UNKNOWN;
  f.lb[2].health_status = ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__TIMEOUT;
  f.weight.value = 1000;
  f.lb[1].load_balancing_weight = &f.weight;
  f.locality[0].n_lb_endpoints = 3;
  size_t len;
  uint8_t *bytes = pack(&f.load_assignment, &len);
  ms_xds_endpoints endpoints;
  char err[MS_ERR_LEN] = "";
  CHECK_INT(ms_xds_endpoints_decode(bytes, len, &endpoints, err, sizeof(err)), 0);
  CHECK_STR(endpoints.cluster_name, "orders-eds");
  CHECK_INT(endpoints.endpoint_count, 2);
  check_endpoint(&endpoints.endpoints[0], "10.0.0.1:8443", 1);
  check_endpoint(&endpoints.endpoints[1], "orders.shop.svc:8443", 1000);
  shake(MS_XDS_KIND_ENDPOINTS, bytes, len);
  free(bytes);
  ms_xds_endpoints_cleanup(&endpoints);

  /* No endpoints at all: a valid, empty assignment. */
  f.load_assignment.n_endpoints = 0;
  bytes = pack(&f.load_assignment, &len);
  CHECK_INT(ms_xds_endpoints_decode(bytes, len, &endpoints, err, sizeof(err)), 0);
  CHECK_INT(endpoints.endpoint_count, 0);
  free(bytes);
  ms_xds_endpoints_cleanup(&endpoints);
  f.load_assignment.n_endpoints = 1;

  f.load_assignment.cluster_name = "";
  EXPECT_REFUSED(MS_XDS_KIND_ENDPOINTS, &f.load_assignment, "endpoints: name: must not be empty");
  f.load_assignment.cluster_name = "orders-eds";
  f.socket[1].address = "";
  EXPECT_REFUSED(MS_XDS_KIND_ENDPOINTS, &f.load_assignment,
                 "endpoints \"orders-eds\": endpoints[0].lb_endpoints[1].endpoint.address."
                 "socket_address.address: must not be empty");
  f.weight.value = 0;
  EXPECT_REFUSED(MS_XDS_KIND_ENDPOINTS, &f.load_assignment,
                 "endpoints \"orders-eds\": endpoints[0].lb_endpoints[1].load_balancing_weight: 0 "
                 "is out of range 1..1000");
  cluster_fixture_cleanup(&f);
}

int main(void) {
  test_endpoints();
  printf("resources_endpoints: ok\n");
  return 0;
}
