/* resources_envoy_decode.c: resources_envoy_decode --envoy DIR checks the resources
 * tests/node/make_resource_fixtures.js encoded into DIR with Envoy's own
 * .proto files (with fields outside our subset): the structs they decode to
 * (xds/resources/resources.h), the exact messages of the ones we refuse, every HTTP
 * route field refused by name, and the same robustness loop as the other
 * tests. Run by //xds/resources:resources_envoy_test (resources_envoy_test.sh). The
 * resources built in C are checked by resources_*_test.c.
 *
 * The first failed check ends the process with status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "xds/resources/resources_test_util.h"

static const char *fixture_dir;

static uint8_t *read_fixture(const char *name, size_t *out_len) {
  return test_read_file(fixture_dir, name, out_len);
}

/* decode_fixture decodes file `name` as `kind` into `out` (an
 * ms_xds_resource), shaking it too; ends the test when it is refused. */
static void decode_fixture(const char *name, ms_xds_kind kind, ms_xds_resource *out) {
  size_t len;
  uint8_t *bytes = read_fixture(name, &len);
  Any any = GOOGLE__PROTOBUF__ANY__INIT;
  any.type_url = (char *)ms_xds_kind_type_url(kind);
  any.value.data = bytes;
  any.value.len = len;
  char err[MS_ERR_LEN] = "";
  if (ms_xds_resource_decode_any(&any, ms_xds_kind_type_url(kind), out, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s: refused: %s\n", name, err);
    exit(1);
  }
  shake(kind, bytes, len);
  free(bytes);
}

static void test_envoy_clusters(void) {
  ms_xds_resource resource;
  decode_fixture("cluster_static_tls.pb", MS_XDS_KIND_CLUSTER, &resource);
  const ms_xds_cluster *cluster = &resource.as.cluster;
  CHECK_STR(cluster->name, "orders");
  CHECK_INT(cluster->type, MS_XDS_DISCOVERY_STATIC);
  CHECK_INT(cluster->connect_timeout_ms, 1250);
  CHECK_INT(cluster->lb_policy, MS_XDS_LB_RANDOM);
  CHECK_INT(cluster->dns_refresh_ms, 5000);
  CHECK_INT(cluster->outlier_detection.consecutive_failures, 4);
  CHECK_INT(cluster->outlier_detection.base_ejection_ms, 10000);
  CHECK_INT(cluster->outlier_detection.max_ejection_ms, 60000);
  CHECK_INT(cluster->endpoint_count, 2); /* UNHEALTHY and priority 1 left out */
  check_endpoint(&cluster->endpoints[0], "10.0.0.1:8443", 3);
  check_endpoint(&cluster->endpoints[1], "[fd00::3]:9443", 1);
  const ms_xds_upstream_tls *tls = &cluster->tls;
  CHECK(tls->present);
  CHECK_STR(tls->sni, "orders.shop.svc");
  CHECK(!tls->session_reuse);
  CHECK_INT(tls->min_version, TLS1_3_VERSION);
  CHECK_INT(tls->max_version, TLS1_3_VERSION);
  CHECK_STR(tls->ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256");
  CHECK_STR(tls->curves, "X25519:P-256");
  CHECK_INT(tls->alpn_count, 2);
  CHECK_STR(tls->alpn[0], "h2");
  CHECK_STR(tls->alpn[1], "http/1.1");
  CHECK_INT(tls->certificate_source, MS_XDS_TLS_SOURCE_INLINE);
  check_inline(&tls->certificate.certificate_chain, CERT_PEM);
  check_inline(&tls->certificate.private_key, KEY_PEM);
  check_file(&tls->certificate.password, "/etc/sidecar/key.pass");
  CHECK_INT(tls->validation_source, MS_XDS_TLS_SOURCE_INLINE);
  check_file(&tls->validation.trusted_ca, "/etc/sidecar/ca.pem");
  check_inline(&tls->validation.crl, CRL_PEM);
  check_names(&tls->validation,
              (const char *const[]){"URI:spiffe://shop/orders", "DNS:orders.shop.svc",
                                    "IP:10.0.0.7", "EMAIL:ops@shop.example", "DNS:legacy.shop",
                                    "URI:legacy.shop", "EMAIL:legacy.shop", NULL});
  CHECK_INT(tls->validation.max_verify_depth, 3);
  CHECK(tls->validation.verify);
  ms_xds_resource_cleanup(&resource);

  decode_fixture("cluster_eds_sds.pb", MS_XDS_KIND_CLUSTER, &resource);
  cluster = &resource.as.cluster;
  CHECK_STR(cluster->name, "payments");
  CHECK_INT(cluster->type, MS_XDS_DISCOVERY_EDS);
  CHECK_STR(cluster->eds_service_name, "payments"); /* service_name empty: the cluster's name */
  CHECK_INT(cluster->endpoint_count, 0);
  CHECK_INT(cluster->lb_policy, MS_XDS_LB_LEAST_REQUEST);
  CHECK_INT(cluster->connect_timeout_ms, 5000);
  CHECK_INT(cluster->outlier_detection.consecutive_failures, 2);
  CHECK_INT(cluster->outlier_detection.base_ejection_ms, 30000);
  CHECK_INT(cluster->outlier_detection.max_ejection_ms, 300000);
  tls = &cluster->tls;
  CHECK(tls->present && tls->session_reuse && tls->sni == NULL && tls->ciphers == NULL);
  CHECK_INT(tls->min_version, TLS1_2_VERSION);
  CHECK_INT(tls->max_version, TLS1_3_VERSION);
  CHECK_INT(tls->certificate_source, MS_XDS_TLS_SOURCE_SDS);
  CHECK_STR(tls->certificate_sds_name, "client-cert");
  CHECK_INT(tls->validation_source, MS_XDS_TLS_SOURCE_COMBINED);
  CHECK_STR(tls->validation_sds_name, "mesh-ca");
  check_none(&tls->validation.trusted_ca);
  check_names(&tls->validation, (const char *const[]){"URI:spiffe://shop/payments", NULL});
  CHECK(tls->validation.verify);
  ms_xds_resource_cleanup(&resource);

  decode_fixture("cluster_dns_sds_ca.pb", MS_XDS_KIND_CLUSTER, &resource);
  cluster = &resource.as.cluster;
  CHECK_STR(cluster->name, "inventory");
  CHECK_INT(cluster->type, MS_XDS_DISCOVERY_DNS);
  CHECK_INT(cluster->dns_refresh_ms, 45000);
  CHECK_INT(cluster->outlier_detection.consecutive_failures, 5);
  CHECK_INT(cluster->endpoint_count, 1);
  check_endpoint(&cluster->endpoints[0], "inventory.shop.svc:443", 1);
  CHECK(!cluster->endpoints[0].address.host_is_ip);
  CHECK_INT(cluster->tls.certificate_source, MS_XDS_TLS_SOURCE_NONE);
  CHECK_INT(cluster->tls.validation_source, MS_XDS_TLS_SOURCE_SDS);
  CHECK_STR(cluster->tls.validation_sds_name, "mesh-ca");
  ms_xds_resource_cleanup(&resource);

  decode_fixture("cluster_plaintext.pb", MS_XDS_KIND_CLUSTER, &resource);
  CHECK_STR(resource.as.cluster.name, "plain");
  CHECK(!resource.as.cluster.tls.present);
  CHECK_INT(resource.as.cluster.endpoint_count, 1);
  check_endpoint(&resource.as.cluster.endpoints[0], "plain.shop.svc:80", 1);
  ms_xds_resource_cleanup(&resource);
}

static void test_envoy_endpoints_secrets_listeners(void) {
  ms_xds_resource resource;
  decode_fixture("endpoints.pb", MS_XDS_KIND_ENDPOINTS, &resource);
  const ms_xds_endpoints *endpoints = &resource.as.endpoints;
  CHECK_STR(endpoints->cluster_name, "payments");
  CHECK_INT(endpoints->endpoint_count, 3); /* DRAINING, UNHEALTHY, TIMEOUT, priority 1 left out */
  check_endpoint(&endpoints->endpoints[0], "10.0.1.1:8443", 5);
  check_endpoint(&endpoints->endpoints[1], "10.0.1.5:8443", 1); /* DEGRADED still serves */
  check_endpoint(&endpoints->endpoints[2], "10.0.2.1:8443", 7);
  ms_xds_resource_cleanup(&resource);

  decode_fixture("secret_cert.pb", MS_XDS_KIND_SECRET, &resource);
  const ms_xds_secret *secret = &resource.as.secret;
  CHECK_STR(secret->name, "client-cert");
  CHECK_INT(secret->kind, MS_XDS_SECRET_TLS_CERTIFICATE);
  check_inline(&secret->certificate.certificate_chain, CERT_PEM);
  check_inline(&secret->certificate.private_key, KEY_PEM);
  check_inline(&secret->certificate.password, "hunter2");
  ms_xds_resource_cleanup(&resource);

  decode_fixture("secret_cert_files.pb", MS_XDS_KIND_SECRET, &resource);
  check_file(&resource.as.secret.certificate.certificate_chain, "/etc/sidecar/client.pem");
  check_file(&resource.as.secret.certificate.private_key, "/etc/sidecar/client.key");
  check_none(&resource.as.secret.certificate.password);
  ms_xds_resource_cleanup(&resource);

  decode_fixture("secret_ca.pb", MS_XDS_KIND_SECRET, &resource);
  secret = &resource.as.secret;
  CHECK_STR(secret->name, "mesh-ca");
  CHECK_INT(secret->kind, MS_XDS_SECRET_VALIDATION_CONTEXT);
  check_inline(&secret->validation.trusted_ca, CA_PEM);
  check_file(&secret->validation.crl, "/etc/sidecar/crl.pem");
  check_names(&secret->validation, (const char *const[]){"DNS:payments.shop.svc", NULL});
  CHECK_INT(secret->validation.max_verify_depth, 2);
  CHECK(secret->validation.verify);
  ms_xds_resource_cleanup(&resource);

  decode_fixture("listener_tcp.pb", MS_XDS_KIND_LISTENER, &resource);
  const ms_xds_listener *listener = &resource.as.listener;
  CHECK_STR(listener->name, "outbound-orders");
  CHECK_STR(listener->address.text, "127.0.0.1:15001");
  CHECK_STR(listener->cluster, "orders");
  CHECK_INT(listener->idle_timeout_ms, 0);
  CHECK_INT(listener->max_connect_attempts, 2);
  CHECK_INT(listener->max_connection_duration_ms, 600000);
  ms_xds_resource_cleanup(&resource);

  decode_fixture("listener_defaults.pb", MS_XDS_KIND_LISTENER, &resource);
  listener = &resource.as.listener;
  CHECK_STR(listener->name, "outbound-v6");
  CHECK_STR(listener->address.text, "[::1]:15002");
  CHECK_STR(listener->cluster, "payments");
  CHECK_INT(listener->idle_timeout_ms, 3600000);
  CHECK_INT(listener->max_connect_attempts, 0);
  ms_xds_resource_cleanup(&resource);

  /* The same routes as test_http_listener_accepted's (resources_http_test.c),
   * from Envoy's schema with fields outside our subset. */
  decode_fixture("listener_http.pb", MS_XDS_KIND_LISTENER, &resource);
  listener = &resource.as.listener;
  CHECK_STR(listener->name, "web");
  CHECK_INT(listener->protocol, MS_XDS_LISTENER_HTTP);
  CHECK_INT(listener->route_count, 4);
  check_route(&listener->routes[0], "payments.shop", NULL, "payments");
  check_route(&listener->routes[1], "Pay.Shop", NULL, "payments");
  check_route(&listener->routes[2], NULL, "/pay/", "payments");
  check_route(&listener->routes[3], NULL, NULL, "orders");
  CHECK_STR(listener->cluster, "orders");
  CHECK_INT(listener->request_timeout_ms, 30000);
  ms_xds_resource_cleanup(&resource);
}

/* Every field refused_fields.txt lists (make_resource_fixtures.js sets each
 * with Envoy's schema, so the field numbers are Envoy's) is refused naming
 * exactly its path. */
static void test_envoy_http_refused_fields(void) {
  size_t len;
  char *manifest = (char *)read_fixture("refused_fields.txt", &len);
  manifest = realloc(manifest, len + 1);
  CHECK(manifest != NULL);
  manifest[len] = '\0';
  size_t cases = 0;
  char *save = NULL;
  for (char *line = strtok_r(manifest, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *space = strchr(line, ' ');
    CHECK(space != NULL);
    *space = '\0';
    size_t size;
    uint8_t *bytes = read_fixture(line, &size);
    char err[MS_ERR_LEN] = "", expected[512];
    snprintf(expected, sizeof(expected), "listener \"web\": %s: ", space + 1);
    if (decode_kind(MS_XDS_KIND_LISTENER, bytes, size, err, sizeof(err)) == 0) {
      fprintf(stderr, "%s: accepted, expected a refusal of %s\n", line, space + 1);
      exit(1);
    }
    if (strncmp(err, expected, strlen(expected)) != 0) {
      fprintf(stderr, "%s: refused with\n  \"%s\"\nexpected it to start with\n  \"%s\"\n", line,
              err, expected);
      exit(1);
    }
    free(bytes);
    cases++;
  }
  CHECK(cases >= 30);
  free(manifest);
}

/* The resources of a DiscoveryResponse, through ms_xds_resource_decode_any. */
static void check_response(const char *file, const char *const *names) {
  size_t len;
  uint8_t *bytes = read_fixture(file, &len);
  DiscoveryResponse *response =
      envoy__service__discovery__v3__discovery_response__unpack(NULL, len, bytes);
  CHECK(response != NULL);
  size_t count = 0;
  while (names[count] != NULL)
    count++;
  CHECK_INT(response->n_resources, count);
  char err[MS_ERR_LEN] = "";
  for (size_t i = 0; i < count; i++) {
    ms_xds_resource resource;
    if (ms_xds_resource_decode_any(response->resources[i], response->type_url, &resource, err,
                                   sizeof(err)) != 0) {
      fprintf(stderr, "%s: resources[%zu]: %s\n", file, i, err);
      exit(1);
    }
    CHECK_STR(ms_xds_resource_name(&resource), names[i]);
    ms_xds_resource_cleanup(&resource);
  }
  envoy__service__discovery__v3__discovery_response__free_unpacked(response, NULL);
  free(bytes);
}

static const struct refusal {
  const char *file;
  ms_xds_kind kind;
  const char *expected;
} envoy_refusals[] = {
    {"refuse_cluster_raw_buffer.pb", MS_XDS_KIND_CLUSTER,
     "cluster \"orders\": transport_socket.typed_config: expected "
     "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, got "
     "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"},
    {"refuse_cluster_custom_type.pb", MS_XDS_KIND_CLUSTER,
     "cluster \"aggregate\": cluster_type: custom cluster types are not supported; use type "
     "STATIC, STRICT_DNS, LOGICAL_DNS or EDS"},
    {"refuse_cluster_regex_san.pb", MS_XDS_KIND_CLUSTER,
     COMMON ".validation_context.match_typed_subject_alt_names[1].matcher: safe_regex is not "
            "supported; only exact names are matched"},
    {"refuse_cluster_no_validation.pb", MS_XDS_KIND_CLUSTER,
     COMMON ": no validation context; this sidecar verifies upstreams: set validation_context or "
            "validation_context_sds_secret_config, or trust_chain_verification: ACCEPT_UNTRUSTED"},
    {"refuse_cluster_tls11.pb", MS_XDS_KIND_CLUSTER,
     COMMON ".tls_params.tls_minimum_protocol_version: TLSv1_1 is refused: TLS 1.2 is the "
            "minimum; use TLSv1_2 or TLSv1_3"},
    {"refuse_cluster_api_sds.pb", MS_XDS_KIND_CLUSTER,
     COMMON ".tls_certificate_sds_secret_configs[0].sds_config: only ads (or self) is supported: "
            "this sidecar receives every resource over its one ADS stream"},
    {"refuse_cluster_maglev.pb", MS_XDS_KIND_CLUSTER,
     "cluster \"orders\": lb_policy: MAGLEV is not supported; use ROUND_ROBIN, LEAST_REQUEST or "
     "RANDOM"},
    {"refuse_secret_env_key.pb", MS_XDS_KIND_SECRET,
     "secret \"client-cert\": tls_certificate.private_key: environment_variable is not supported; "
     "use inline_bytes, inline_string or filename"},
    {"refuse_secret_session_keys.pb", MS_XDS_KIND_SECRET,
     "secret \"ticket-keys\": holds neither tls_certificate nor validation_context "
     "(session_ticket_keys and generic_secret are not supported)"},
    {"refuse_listener_rds.pb", MS_XDS_KIND_LISTENER,
     "listener \"web\": filter_chains[0].filters[0].typed_config.rds: not supported; send the "
     "routes inline in route_config (this sidecar has no RDS)"},
    {"refuse_listener_wildcard.pb", MS_XDS_KIND_LISTENER,
     "listener \"web\": filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]."
     "domains[0]: \"*.shop\": wildcards other than \"*\" alone are not supported: this sidecar "
     "matches hosts exactly; list the host names"},
    {"refuse_listener_fault.pb", MS_XDS_KIND_LISTENER,
     "listener \"web\": filter_chains[0].filters[0].typed_config.http_filters[0]: only the router "
     "(envoy.filters.http.router) is supported, got "
     "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault; a filter marked "
     "is_optional is skipped"},
    {"refuse_listener_weighted.pb", MS_XDS_KIND_LISTENER,
     "listener \"split\": filter_chains[0].filters[0].typed_config.weighted_clusters: not "
     "supported; name one cluster in cluster"},
    {"refuse_listener_pipe.pb", MS_XDS_KIND_LISTENER,
     "listener \"unix\": address: must be a socket_address (pipe and internal addresses are not "
     "supported)"},
    {"refuse_listener_hostname.pb", MS_XDS_KIND_LISTENER,
     "listener \"named\": address: \"localhost\" is not an IP address; a listener binds an IP "
     "literal"},
    {"refuse_endpoints_named_port.pb", MS_XDS_KIND_ENDPOINTS,
     "endpoints \"payments\": endpoints[0].lb_endpoints[0].endpoint.address.socket_address."
     "named_port: not supported; use port_value"},
};

static void test_envoy_refusals(void) {
  for (size_t i = 0; i < sizeof(envoy_refusals) / sizeof(envoy_refusals[0]); i++) {
    const struct refusal *refusal = &envoy_refusals[i];
    size_t len;
    uint8_t *bytes = read_fixture(refusal->file, &len);
    char err[MS_ERR_LEN] = "";
    if (decode_kind(refusal->kind, bytes, len, err, sizeof(err)) == 0) {
      fprintf(stderr, "%s: accepted, expected the refusal\n  \"%s\"\n", refusal->file,
              refusal->expected);
      exit(1);
    }
    check_str(__FILE__, __LINE__, refusal->file, err, refusal->expected);
    shake(refusal->kind, bytes, len);
    free(bytes);
  }
}

int main(int argc, char **argv) {
  if (argc != 3 || strcmp(argv[1], "--envoy") != 0) {
    fprintf(stderr, "usage: resources_envoy_decode --envoy DIR\n");
    return 2;
  }
  fixture_dir = argv[2];
  test_envoy_clusters();
  test_envoy_endpoints_secrets_listeners();
  check_response("response_cds.pb", (const char *const[]){"orders", "payments", NULL});
  check_response("response_sds.pb", (const char *const[]){"client-cert", "mesh-ca", NULL});
  test_envoy_refusals();
  test_envoy_http_refused_fields();
  printf("Envoy-encoded resources: ok\n");
  return 0;
}
