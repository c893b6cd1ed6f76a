/* resources_cluster_test.c: Clusters built in C with our protobuf-c types
 * into ms_xds_cluster (xds/resources/resources.h): every default, every field of our
 * subset outside the TLS context (discovery type, EDS, load balancing,
 * timeouts, outlier detection, endpoints, the transport socket), every
 * refusal and its exact message; a cluster with every part set survives
 * truncation and bit flips (resources_tls_test.c: the TLS context).
 *
 * The first failed check ends the process with status 1. */
#include <stdio.h>

#include <openssl/ssl.h>

#include "xds/resources/resources_test_util.h"

static void test_cluster_defaults(void) {
  cluster_fixture f;
  cluster_fixture_init(&f);
  ms_xds_cluster cluster;
  decode_cluster(&f, &cluster);
  CHECK_STR(cluster.name, "orders");
  CHECK_INT(cluster.type, MS_XDS_DISCOVERY_STATIC);
  CHECK(cluster.eds_service_name == NULL);
  CHECK_INT(cluster.lb_policy, MS_XDS_LB_ROUND_ROBIN);
  CHECK_INT(cluster.connect_timeout_ms, 5000);
  CHECK_INT(cluster.dns_refresh_ms, 5000);
  CHECK_INT(cluster.outlier_detection.consecutive_failures, 0);
  CHECK_INT(cluster.outlier_detection.base_ejection_ms, 30000);
  CHECK_INT(cluster.outlier_detection.max_ejection_ms, 300000);
  CHECK_INT(cluster.endpoint_count, 1);
  check_endpoint(&cluster.endpoints[0], "10.0.0.1:8443", 1);
  CHECK(cluster.endpoints[0].address.host_is_ip);
  const ms_xds_upstream_tls *tls = &cluster.tls;
  CHECK(tls->present);
  CHECK(tls->sni == NULL);
  CHECK(tls->session_reuse);
  CHECK_INT(tls->min_version, TLS1_2_VERSION);
  CHECK_INT(tls->max_version, TLS1_3_VERSION);
  CHECK(tls->ciphers == NULL && tls->curves == NULL && tls->alpn_count == 0);
  CHECK_INT(tls->certificate_source, MS_XDS_TLS_SOURCE_NONE);
  CHECK_INT(tls->validation_source, MS_XDS_TLS_SOURCE_INLINE);
  check_file(&tls->validation.trusted_ca, "/etc/ca.pem");
  check_none(&tls->validation.crl);
  CHECK_INT(tls->validation.match_subject_alt_name_count, 0);
  CHECK_INT(tls->validation.max_verify_depth, 100);
  CHECK(tls->validation.verify);
  ms_xds_cluster_cleanup(&cluster);

  /* No transport socket: a plaintext upstream, for the ADS client to judge. */
  f.cluster.transport_socket = NULL;
  decode_cluster(&f, &cluster);
  CHECK(!cluster.tls.present);
  ms_xds_cluster_cleanup(&cluster);

  /* Neither type nor cluster_type: Envoy's default, STATIC. */
  f.cluster.cluster_discovery_type_case =
      ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE__NOT_SET;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.type, MS_XDS_DISCOVERY_STATIC);
  ms_xds_cluster_cleanup(&cluster);
  ms_xds_cluster_cleanup(&cluster); /* twice: cleanup leaves a zeroed struct */
  cluster_fixture_cleanup(&f);
}

static void test_cluster_fields(void) {
  cluster_fixture f;
  cluster_fixture_init(&f);
  f.cluster.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS;
  f.cluster.lb_policy = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST;
  f.connect_timeout.seconds = 2;
  f.connect_timeout.nanos = 1; /* rounded up to the next millisecond */
  f.cluster.connect_timeout = &f.connect_timeout;
  Duration refresh = GOOGLE__PROTOBUF__DURATION__INIT;
  refresh.seconds = 30;
  f.cluster.dns_refresh_rate = &refresh;
  OutlierDetection outlier = ENVOY__CONFIG__CLUSTER__V3__OUTLIER_DETECTION__INIT;
  UInt32Value gateway = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
  gateway.value = 7;
  outlier.consecutive_gateway_failure = &gateway;
  Duration base = GOOGLE__PROTOBUF__DURATION__INIT, max = GOOGLE__PROTOBUF__DURATION__INIT;
  base.nanos = 500000000;
  max.seconds = 10;
  outlier.base_ejection_time = &base;
  outlier.max_ejection_time = &max;
  f.cluster.outlier_detection = &outlier;
  /* Three endpoints: a host name with weight 4, a DRAINING one (skipped), an
   * IPv6 literal; and a priority 1 locality (ignored). */
  f.socket[0].address = "orders-0.shop.svc";
  f.weight.value = 4;
  f.lb[0].load_balancing_weight = &f.weight;
  f.lb[1].health_status = ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__DRAINING;
  f.socket[2].address = "fd00::1";
  f.locality[0].n_lb_endpoints = 3;
  f.locality[1].priority = 1;
  f.locality[1].lb_endpoints = f.lbs;
  f.locality[1].n_lb_endpoints = 1;
  f.load_assignment.n_endpoints = 2;

  ms_xds_cluster cluster;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.type, MS_XDS_DISCOVERY_DNS);
  CHECK_INT(cluster.lb_policy, MS_XDS_LB_LEAST_REQUEST);
  CHECK_INT(cluster.connect_timeout_ms, 2001);
  CHECK_INT(cluster.dns_refresh_ms, 30000);
  CHECK_INT(cluster.outlier_detection.consecutive_failures, 7);
  CHECK_INT(cluster.outlier_detection.base_ejection_ms, 500);
  CHECK_INT(cluster.outlier_detection.max_ejection_ms, 10000);
  CHECK_INT(cluster.endpoint_count, 2);
  check_endpoint(&cluster.endpoints[0], "orders-0.shop.svc:8443", 4);
  CHECK(!cluster.endpoints[0].address.host_is_ip);
  check_endpoint(&cluster.endpoints[1], "[fd00::1]:8443", 1);
  CHECK(cluster.endpoints[1].address.host_is_ip);
  ms_xds_cluster_cleanup(&cluster);

  /* consecutive_5xx wins over gateway failures; local-origin over both. */
  UInt32Value five = GOOGLE__PROTOBUF__UINT32_VALUE__INIT,
              local = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
  five.value = 3;
  local.value = 2;
  outlier.consecutive_5xx = &five;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.outlier_detection.consecutive_failures, 3);
  ms_xds_cluster_cleanup(&cluster);
  outlier.consecutive_local_origin_failure = &local;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.outlier_detection.consecutive_failures, 2);
  ms_xds_cluster_cleanup(&cluster);
  /* An empty outlier_detection: Envoy's defaults. */
  OutlierDetection empty = ENVOY__CONFIG__CLUSTER__V3__OUTLIER_DETECTION__INIT;
  f.cluster.outlier_detection = &empty;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.outlier_detection.consecutive_failures, 5);
  CHECK_INT(cluster.outlier_detection.base_ejection_ms, 30000);
  CHECK_INT(cluster.outlier_detection.max_ejection_ms, 300000);
  ms_xds_cluster_cleanup(&cluster);

  /* Random. */
  f.cluster.lb_policy = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.lb_policy, MS_XDS_LB_RANDOM);
  ms_xds_cluster_cleanup(&cluster);

  /* A huge timeout saturates rather than wraps. */
  f.connect_timeout.seconds = 10LL * 365 * 24 * 3600;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.connect_timeout_ms, UINT32_MAX);
  ms_xds_cluster_cleanup(&cluster);
  cluster_fixture_cleanup(&f);
}

static void test_cluster_eds(void) {
  cluster_fixture f;
  cluster_fixture_init(&f);
  f.cluster.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS;
  ms_xds_cluster cluster;
  /* No eds_cluster_config: the cluster's own name, over ADS; load_assignment
   * is ignored, as Envoy does for EDS clusters. */
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.type, MS_XDS_DISCOVERY_EDS);
  CHECK_STR(cluster.eds_service_name, "orders");
  CHECK_INT(cluster.endpoint_count, 0);
  ms_xds_cluster_cleanup(&cluster);

  EdsClusterConfig eds = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__EDS_CLUSTER_CONFIG__INIT;
  ConfigSource source = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__INIT;
  AggregatedConfigSource ads = ENVOY__CONFIG__CORE__V3__AGGREGATED_CONFIG_SOURCE__INIT;
  source.config_source_specifier_case =
      ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS;
  source.ads = &ads;
  eds.eds_config = &source;
  eds.service_name = "orders-v2";
  f.cluster.eds_cluster_config = &eds;
  decode_cluster(&f, &cluster);
  CHECK_STR(cluster.eds_service_name, "orders-v2");
  ms_xds_cluster_cleanup(&cluster);

  /* A ConfigSource that is neither ads nor self (in Envoy: path,
   * api_config_source...; here: none of ours set). */
  source.config_source_specifier_case =
      ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER__NOT_SET;
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": eds_cluster_config.eds_config: only ads (or self) is "
                  "supported: this sidecar receives every resource over its one ADS stream");
  cluster_fixture_cleanup(&f);
}

static void test_cluster_refusals(void) {
  cluster_fixture f;
  cluster_fixture_init(&f);
  f.cluster.name = "";
  CLUSTER_REFUSED(&f, "cluster: name: must not be empty");
  f.cluster.name = "orders";

  f.cluster.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST;
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": type: ORIGINAL_DST is not supported; use STATIC, "
                  "STRICT_DNS, LOGICAL_DNS or EDS");
  f.cluster.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC;

  f.cluster.lb_policy = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH;
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": lb_policy: RING_HASH is not supported; use "
                  "ROUND_ROBIN, LEAST_REQUEST or RANDOM");
  f.cluster.lb_policy = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN;

  f.cluster.connect_timeout = &f.connect_timeout; /* 0 s */
  CLUSTER_REFUSED(&f, "cluster \"orders\": connect_timeout: must be greater than 0");
  f.connect_timeout.seconds = -1;
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": connect_timeout: -1s 0ns is not a valid non-negative "
                  "duration");
  f.cluster.connect_timeout = NULL;

  OutlierDetection outlier = ENVOY__CONFIG__CLUSTER__V3__OUTLIER_DETECTION__INIT;
  Duration base = GOOGLE__PROTOBUF__DURATION__INIT, max = GOOGLE__PROTOBUF__DURATION__INIT;
  base.seconds = 60;
  max.seconds = 30;
  outlier.base_ejection_time = &base;
  outlier.max_ejection_time = &max;
  f.cluster.outlier_detection = &outlier;
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": outlier_detection.max_ejection_time: must not be "
                  "shorter than base_ejection_time");
  f.cluster.outlier_detection = NULL;

  /* Endpoints. */
  f.socket[0].address = "orders.shop.svc";
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": load_assignment.endpoints[0].lb_endpoints[0].endpoint."
                  "address: \"orders.shop.svc\" is not an IP address; a STATIC cluster needs "
                  "IP addresses (use STRICT_DNS for host names)");
  f.socket[0].address = "10.0.0.1";
  f.lb[0].load_balancing_weight = &f.weight; /* 0 */
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": load_assignment.endpoints[0].lb_endpoints[0]."
                  "load_balancing_weight: 0 is out of range 1..1000");
  f.weight.value = 1001;
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": load_assignment.endpoints[0].lb_endpoints[0]."
                  "load_balancing_weight: 1001 is out of range 1..1000");
  f.lb[0].load_balancing_weight = NULL;
  f.socket[0].port_specifier_case =
      ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_NAMED_PORT;
  f.socket[0].named_port = "https";
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": load_assignment.endpoints[0].lb_endpoints[0].endpoint."
                  "address.socket_address.named_port: not supported; use port_value");
  f.socket[0].port_specifier_case =
      ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
  f.socket[0].port_value = 0;
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": load_assignment.endpoints[0].lb_endpoints[0].endpoint."
                  "address.socket_address.port_value: 0 is out of range 1..65535");
  f.socket[0].port_value = 8443;
  f.socket[0].protocol = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PROTOCOL__UDP;
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": load_assignment.endpoints[0].lb_endpoints[0].endpoint."
                  "address.socket_address.protocol: only TCP is supported");
  f.socket[0].protocol = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PROTOCOL__TCP;
  f.endpoint[0].address = NULL;
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": load_assignment.endpoints[0].lb_endpoints[0].endpoint."
                  "address: required");
  f.endpoint[0].address = &f.address[0];
  f.lb[0].host_identifier_case = ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER__NOT_SET;
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": load_assignment.endpoints[0].lb_endpoints[0].endpoint: "
                  "required (endpoint_name references are not supported)");
  f.lb[0].host_identifier_case = ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT;

  /* The transport socket. */
  f.typed_config.type_url =
      "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": transport_socket.typed_config: expected "
                  "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                  "UpstreamTlsContext, got type.googleapis.com/envoy.extensions."
                  "transport_sockets.raw_buffer.v3.RawBuffer");
  f.transport_socket.typed_config = NULL;
  f.transport_socket.config_type_case =
      ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE__NOT_SET;
  CLUSTER_REFUSED(&f,
                  "cluster \"orders\": transport_socket.typed_config: expected "
                  "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                  "UpstreamTlsContext, got nothing");
  f.transport_socket.typed_config = &f.typed_config;
  f.transport_socket.config_type_case =
      ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
  /* Another prefix before the message name is the same extension to Envoy. */
  f.typed_config.type_url =
      "example.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
  ms_xds_cluster cluster;
  decode_cluster(&f, &cluster);
  CHECK(cluster.tls.present);
  ms_xds_cluster_cleanup(&cluster);
  f.typed_config.type_url = MS_XDS_TYPE_URL_UPSTREAM_TLS_CONTEXT;
  /* Bytes that are not an UpstreamTlsContext. */
  cluster_fixture_pack(&f);
  static uint8_t garbage[] = {0x0a, 0x7f, 0x01};
  f.typed_config.value.data = garbage;
  f.typed_config.value.len = sizeof(garbage);
  expect_refused(__FILE__, __LINE__, MS_XDS_KIND_CLUSTER, &f.cluster,
                 "cluster \"orders\": transport_socket.typed_config: 3 bytes that are not a "
                 "valid envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext message");

  /* Malformed Cluster bytes. */
  char err[MS_ERR_LEN];
  CHECK_INT(ms_xds_cluster_decode(garbage, sizeof(garbage), &cluster, err, sizeof(err)), -1);
  CHECK_STR(err, "cluster: 3 bytes that are not a valid envoy.config.cluster.v3.Cluster message");
  cluster_fixture_cleanup(&f);
}

/* A cluster with every part set, shaken. */
static void test_shake_cluster(void) {
  cluster_fixture f;
  cluster_fixture_init(&f);
  DataSource key = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  key.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
  key.inline_string = KEY_PEM;
  TlsCertificate certificate = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
  certificate.certificate_chain = &f.trusted_ca;
  certificate.private_key = &key;
  TlsCertificate *certificates[] = {&certificate};
  f.common.tls_certificates = certificates;
  f.common.n_tls_certificates = 1;
  f.locality[0].n_lb_endpoints = 3;
  f.tls.sni = "orders";
  cluster_fixture_pack(&f);
  shake_message(MS_XDS_KIND_CLUSTER, &f.cluster);
  cluster_fixture_cleanup(&f);
}

int main(void) {
  test_cluster_defaults();
  test_cluster_fields();
  test_cluster_eds();
  test_cluster_refusals();
  test_shake_cluster();
  printf("resources_cluster: ok\n");
  return 0;
}
