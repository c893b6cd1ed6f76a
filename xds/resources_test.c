/* resources_test.c: xDS resources into our structs (xds/resources.h).
 *
 *   resources_test              resources built here with our protobuf-c
 *                               types: every field of our subset, every
 *                               default, every refusal and its exact message;
 *                               truncated and bit-flipped resources decode or
 *                               fail cleanly
 *   resources_test --envoy DIR  the resources tests/node/
 *                               make_resource_fixtures.js encoded with Envoy's
 *                               own .proto files (with fields outside our
 *                               subset): the structs we expect, the refusals
 *                               we expect, and the same robustness loop
 *
 * The first failed check ends the process with status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>
#include <protobuf-c/protobuf-c.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/cluster/v3/outlier_detection.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "xds/resources.h"
#include "xds/type_urls.h"

typedef Envoy__Config__Cluster__V3__Cluster Cluster;
typedef Envoy__Config__Cluster__V3__Cluster__EdsClusterConfig EdsClusterConfig;
typedef Envoy__Config__Cluster__V3__OutlierDetection OutlierDetection;
typedef Envoy__Config__Core__V3__Address Address;
typedef Envoy__Config__Core__V3__AggregatedConfigSource AggregatedConfigSource;
typedef Envoy__Config__Core__V3__ConfigSource ConfigSource;
typedef Envoy__Config__Core__V3__DataSource DataSource;
typedef Envoy__Config__Core__V3__SocketAddress SocketAddress;
typedef Envoy__Config__Core__V3__TransportSocket TransportSocket;
typedef Envoy__Config__Endpoint__V3__ClusterLoadAssignment ClusterLoadAssignment;
typedef Envoy__Config__Endpoint__V3__Endpoint Endpoint;
typedef Envoy__Config__Endpoint__V3__LbEndpoint LbEndpoint;
typedef Envoy__Config__Endpoint__V3__LocalityLbEndpoints LocalityLbEndpoints;
typedef Envoy__Config__Listener__V3__Filter Filter;
typedef Envoy__Config__Listener__V3__FilterChain FilterChain;
typedef Envoy__Config__Listener__V3__Listener Listener;
typedef Envoy__Config__Route__V3__Route Route;
typedef Envoy__Config__Route__V3__RouteAction RouteAction;
typedef Envoy__Config__Route__V3__RouteConfiguration RouteConfiguration;
typedef Envoy__Config__Route__V3__RouteMatch RouteMatch;
typedef Envoy__Config__Route__V3__VirtualHost VirtualHost;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager
    HttpConnectionManager;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter HttpFilter;
typedef Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy TcpProxy;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext
    CertificateValidationContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext CommonTlsContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext
    CombinedValidationContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig SdsSecretConfig;
typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret Secret;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SubjectAltNameMatcher SubjectAltNameMatcher;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate TlsCertificate;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsParameters TlsParameters;
typedef Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext UpstreamTlsContext;
typedef Envoy__Service__Discovery__V3__DiscoveryResponse DiscoveryResponse;
typedef Envoy__Type__Matcher__V3__StringMatcher StringMatcher;
typedef Google__Protobuf__Any Any;
typedef Google__Protobuf__BoolValue BoolValue;
typedef Google__Protobuf__Duration Duration;
typedef Google__Protobuf__UInt32Value UInt32Value;

/* ---- checks -------------------------------------------------------------------- */

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#define CHECK_STR(actual, expected) check_str(__FILE__, __LINE__, #actual, (actual), (expected))
#define CHECK_INT(actual, expected) check_int(__FILE__, __LINE__, #actual, (actual), (expected))

static void check_str(const char *file, int line, const char *what, const char *actual,
                      const char *expected) {
  if (actual == NULL && expected == NULL) return;
  if (actual != NULL && expected != NULL && strcmp(actual, expected) == 0) return;
  fprintf(stderr, "%s:%d: %s is\n  \"%s\"\nexpected\n  \"%s\"\n", file, line, what,
          actual ? actual : "(null)", expected ? expected : "(null)");
  exit(1);
}

static void check_int(const char *file, int line, const char *what, long long actual,
                      long long expected) {
  if (actual == expected) return;
  fprintf(stderr, "%s:%d: %s is %lld, expected %lld\n", file, line, what, actual, expected);
  exit(1);
}

/* The PEM texts the fixtures carry (also in make_resource_fixtures.js). */
#define CERT_PEM \
  "-----BEGIN CERTIFICATE-----\nMIIBresource-client-certificate\n-----END CERTIFICATE-----\n"
#define KEY_PEM "-----BEGIN PRIVATE KEY-----\nMIGHresource-client-key\n-----END PRIVATE KEY-----\n"
#define CA_PEM "-----BEGIN CERTIFICATE-----\nMIIBresource-mesh-ca\n-----END CERTIFICATE-----\n"
#define CRL_PEM "-----BEGIN X509 CRL-----\nMIIBresource-crl\n-----END X509 CRL-----\n"

static void check_inline(const ms_xds_data_source *source, const char *text) {
  CHECK_INT(source->kind, MS_XDS_DATA_INLINE);
  CHECK_INT(source->len, strlen(text));
  CHECK_STR(source->bytes, text);
  CHECK(source->filename == NULL);
}

static void check_file(const ms_xds_data_source *source, const char *path) {
  CHECK_INT(source->kind, MS_XDS_DATA_FILENAME);
  CHECK_STR(source->filename, path);
  CHECK(source->bytes == NULL);
}

static void check_none(const ms_xds_data_source *source) {
  CHECK_INT(source->kind, MS_XDS_DATA_NONE);
  CHECK(source->bytes == NULL && source->filename == NULL);
}

static void check_endpoint(const ms_endpoint_config *endpoint, const char *text, uint32_t weight) {
  CHECK_STR(endpoint->address.text, text);
  CHECK_INT(endpoint->weight, weight);
}

/* check_names: the validation context's names are exactly `expected`
 * (NULL-terminated), in order. */
static void check_names(const ms_xds_validation_context *validation, const char *const *expected) {
  size_t count = 0;
  while (expected[count] != NULL)
    count++;
  CHECK_INT(validation->match_subject_alt_name_count, count);
  for (size_t i = 0; i < count; i++)
    CHECK_STR(validation->match_subject_alt_names[i], expected[i]);
}

/* ---- packing ----------------------------------------------------------------------- */

static uint8_t *pack(const void *message, size_t *out_len) {
  const ProtobufCMessage *base = message;
  size_t len = protobuf_c_message_get_packed_size(base);
  uint8_t *bytes = malloc(len > 0 ? len : 1);
  CHECK(bytes != NULL);
  CHECK_INT(protobuf_c_message_pack(base, bytes), len);
  *out_len = len;
  return bytes;
}

/* decode_kind decodes `bytes` as `kind` and releases the result; returns the
 * decoder's status, with the message in err. */
static int decode_kind(ms_xds_kind kind, const uint8_t *bytes, size_t len, char *err,
                       size_t err_len) {
  ms_xds_resource resource;
  memset(&resource, 0, sizeof(resource));
  int rc = -1;
  switch (kind) {
    case MS_XDS_KIND_CLUSTER:
      rc = ms_xds_cluster_decode(bytes, len, &resource.as.cluster, err, err_len);
      break;
    case MS_XDS_KIND_ENDPOINTS:
      rc = ms_xds_endpoints_decode(bytes, len, &resource.as.endpoints, err, err_len);
      break;
    case MS_XDS_KIND_SECRET:
      rc = ms_xds_secret_decode(bytes, len, &resource.as.secret, err, err_len);
      break;
    case MS_XDS_KIND_LISTENER:
      rc = ms_xds_listener_decode(bytes, len, &resource.as.listener, err, err_len);
      break;
  }
  resource.kind = kind;
  if (rc == 0) ms_xds_resource_cleanup(&resource);
  return rc;
}

/* expect_refused: `message` (of `kind`) is refused with exactly `expected`. */
#define EXPECT_REFUSED(kind, message, expected) \
  expect_refused(__FILE__, __LINE__, (kind), (message), (expected))

static void expect_refused(const char *file, int line, ms_xds_kind kind, const void *message,
                           const char *expected) {
  size_t len;
  uint8_t *bytes = pack(message, &len);
  char err[MS_ERR_LEN] = "";
  int rc = decode_kind(kind, bytes, len, err, sizeof(err));
  free(bytes);
  if (rc == 0) {
    fprintf(stderr, "%s:%d: accepted, expected the refusal\n  \"%s\"\n", file, line, expected);
    exit(1);
  }
  check_str(file, line, "err", err, expected);
}

/* ---- robustness ------------------------------------------------------------------- */

/* shake decodes every truncation and every single-bit flip of `bytes`: each
 * must succeed (and clean up) or fail with a message starting with the kind's
 * name. Run under ASan to catch what a crash would not show. */
static void shake(ms_xds_kind kind, const uint8_t *bytes, size_t len) {
  uint8_t *copy = malloc(len > 0 ? len : 1);
  CHECK(copy != NULL);
  const char *name = ms_xds_kind_name(kind);
  char err[MS_ERR_LEN];
  for (size_t cut = 0; cut < len; cut++) {
    memcpy(copy, bytes, cut);
    err[0] = '\0';
    if (decode_kind(kind, copy, cut, err, sizeof(err)) != 0) {
      CHECK(strncmp(err, name, strlen(name)) == 0);
    }
  }
  for (size_t bit = 0; bit < len * 8; bit++) {
    memcpy(copy, bytes, len);
    copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    err[0] = '\0';
    if (decode_kind(kind, copy, len, err, sizeof(err)) != 0) {
      CHECK(strncmp(err, name, strlen(name)) == 0);
      CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    }
  }
  free(copy);
}

static void shake_message(ms_xds_kind kind, const void *message) {
  size_t len;
  uint8_t *bytes = pack(message, &len);
  shake(kind, bytes, len);
  free(bytes);
}

/* ---- a cluster built in C ------------------------------------------------------------ */

/* The pieces of one Cluster, wired together by cluster_fixture_init: a
 * STATIC cluster "orders" with one endpoint 10.0.0.1:8443 and a TLS context
 * that verifies with a CA file. Tests change pieces, then decode. */
typedef struct cluster_fixture {
  Cluster cluster;
  Duration connect_timeout;
  ClusterLoadAssignment load_assignment;
  LocalityLbEndpoints locality[2];
  LocalityLbEndpoints *localities[2];
  LbEndpoint lb[3];
  LbEndpoint *lbs[3];
  Endpoint endpoint[3];
  Address address[3];
  SocketAddress socket[3];
  UInt32Value weight;
  TransportSocket transport_socket;
  Any typed_config;
  UpstreamTlsContext tls;
  CommonTlsContext common;
  CertificateValidationContext validation;
  DataSource trusted_ca;
  uint8_t *tls_bytes;
} cluster_fixture;

static void endpoint_init(Endpoint *endpoint, Address *address, SocketAddress *socket,
                          const char *host, uint32_t port) {
  *endpoint = (Endpoint)ENVOY__CONFIG__ENDPOINT__V3__ENDPOINT__INIT;
  *address = (Address)ENVOY__CONFIG__CORE__V3__ADDRESS__INIT;
  *socket = (SocketAddress)ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__INIT;
  socket->address = (char *)host;
  socket->port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
  socket->port_value = port;
  address->address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
  address->socket_address = socket;
  endpoint->address = address;
}

static void cluster_fixture_init(cluster_fixture *f) {
  memset(f, 0, sizeof(*f));
  f->cluster = (Cluster)ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
  f->cluster.name = "orders";
  f->cluster.cluster_discovery_type_case =
      ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
  f->cluster.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC;
  f->connect_timeout = (Duration)GOOGLE__PROTOBUF__DURATION__INIT;

  f->load_assignment =
      (ClusterLoadAssignment)ENVOY__CONFIG__ENDPOINT__V3__CLUSTER_LOAD_ASSIGNMENT__INIT;
  f->load_assignment.cluster_name = "orders";
  for (size_t i = 0; i < 2; i++) {
    f->locality[i] = (LocalityLbEndpoints)ENVOY__CONFIG__ENDPOINT__V3__LOCALITY_LB_ENDPOINTS__INIT;
    f->localities[i] = &f->locality[i];
  }
  static const char *const hosts[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3"};
  for (size_t i = 0; i < 3; i++) {
    f->lb[i] = (LbEndpoint)ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__INIT;
    f->lb[i].host_identifier_case =
        ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT;
    f->lb[i].endpoint = &f->endpoint[i];
    endpoint_init(&f->endpoint[i], &f->address[i], &f->socket[i], hosts[i], 8443);
    f->lbs[i] = &f->lb[i];
  }
  f->weight = (UInt32Value)GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
  f->locality[0].lb_endpoints = f->lbs;
  f->locality[0].n_lb_endpoints = 1;
  f->load_assignment.endpoints = f->localities;
  f->load_assignment.n_endpoints = 1;
  f->cluster.load_assignment = &f->load_assignment;

  f->trusted_ca = (DataSource)ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  f->trusted_ca.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME;
  f->trusted_ca.filename = "/etc/ca.pem";
  f->validation = (CertificateValidationContext)
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
  f->validation.trusted_ca = &f->trusted_ca;
  f->common =
      (CommonTlsContext)ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT;
  f->common.validation_context_type_case =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT;
  f->common.validation_context = &f->validation;
  f->tls =
      (UpstreamTlsContext)ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__UPSTREAM_TLS_CONTEXT__INIT;
  f->tls.common_tls_context = &f->common;
  f->typed_config = (Any)GOOGLE__PROTOBUF__ANY__INIT;
  f->typed_config.type_url = MS_XDS_TYPE_URL_UPSTREAM_TLS_CONTEXT;
  f->transport_socket = (TransportSocket)ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__INIT;
  f->transport_socket.name = MS_XDS_TRANSPORT_SOCKET_TLS;
  f->transport_socket.config_type_case =
      ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
  f->transport_socket.typed_config = &f->typed_config;
  f->cluster.transport_socket = &f->transport_socket;
}

/* cluster_fixture_pack packs the TLS context into its Any; the cluster is
 * then ready for pack(). */
static void cluster_fixture_pack(cluster_fixture *f) {
  free(f->tls_bytes);
  size_t len;
  f->tls_bytes = pack(&f->tls, &len);
  f->typed_config.value.data = f->tls_bytes;
  f->typed_config.value.len = len;
}

static void cluster_fixture_cleanup(cluster_fixture *f) {
  free(f->tls_bytes);
  f->tls_bytes = NULL;
}

static void decode_cluster(cluster_fixture *f, ms_xds_cluster *out) {
  cluster_fixture_pack(f);
  size_t len;
  uint8_t *bytes = pack(&f->cluster, &len);
  char err[MS_ERR_LEN] = "";
  int rc = ms_xds_cluster_decode(bytes, len, out, err, sizeof(err));
  free(bytes);
  if (rc != 0) {
    fprintf(stderr, "cluster refused: %s\n", err);
    exit(1);
  }
}

static void cluster_refused(cluster_fixture *f, const char *file, int line, const char *expected) {
  cluster_fixture_pack(f);
  expect_refused(file, line, MS_XDS_KIND_CLUSTER, &f->cluster, expected);
}

#define CLUSTER_REFUSED(f, expected) cluster_refused((f), __FILE__, __LINE__, (expected))

/* The path of the common TLS context inside a cluster. */
#define COMMON "cluster \"orders\": transport_socket.typed_config.common_tls_context"

/* ---- clusters --------------------------------------------------------------------------- */

static void test_cluster_defaults(void) {
  cluster_fixture f;
  cluster_fixture_init(&f);
  ms_xds_cluster cluster;
  decode_cluster(&f, &cluster);
  CHECK_STR(cluster.name, "orders");
  CHECK_INT(cluster.type, MS_XDS_DISCOVERY_STATIC);
  CHECK(cluster.eds_service_name == NULL);
  CHECK_INT(cluster.lb_policy, MS_LB_ROUND_ROBIN);
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
  CHECK_INT(cluster.lb_policy, MS_LB_LEAST_CONNECTIONS);
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
  CHECK_INT(cluster.lb_policy, MS_LB_RANDOM);
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

static void test_cluster_tls_inline(void) {
  cluster_fixture f;
  cluster_fixture_init(&f);
  f.tls.sni = "orders.shop.svc";
  UInt32Value zero = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
  f.tls.max_session_keys = &zero;
  TlsParameters params = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__INIT;
  params.tls_minimum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_2;
  params.tls_maximum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_2;
  char *ciphers[] = {"ECDHE-ECDSA-AES128-GCM-SHA256", "[ECDHE-ECDSA-CHACHA20-POLY1305|AES256-GCM]"};
  char *curves[] = {"X25519"};
  params.cipher_suites = ciphers;
  params.n_cipher_suites = 2;
  params.ecdh_curves = curves;
  params.n_ecdh_curves = 1;
  f.common.tls_params = &params;
  char *alpn[] = {"h2"};
  f.common.alpn_protocols = alpn;
  f.common.n_alpn_protocols = 1;

  /* The client certificate: one of each DataSource kind. */
  DataSource chain = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  DataSource key = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  DataSource password = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  chain.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
  chain.inline_string = CERT_PEM;
  key.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
  key.inline_bytes.data = (uint8_t *)KEY_PEM;
  key.inline_bytes.len = strlen(KEY_PEM);
  password.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME;
  password.filename = "/etc/key.pass";
  TlsCertificate certificate = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
  certificate.certificate_chain = &chain;
  certificate.private_key = &key;
  certificate.password = &password;
  TlsCertificate *certificates[] = {&certificate, &certificate};
  f.common.tls_certificates = certificates;
  f.common.n_tls_certificates = 1;

  /* Validation: every SAN type, an untyped exact name, a CRL, a depth. */
  StringMatcher exact[5];
  SubjectAltNameMatcher san[5];
  SubjectAltNameMatcher *sans[5];
  static const char *const values[] = {"orders.shop.svc", "spiffe://shop/orders", "10.0.0.7",
                                       "ops@shop.example", "x"};
  static const int types[] = {
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__DNS,
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__URI,
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__IP_ADDRESS,
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__EMAIL,
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__OTHER_NAME,
  };
  for (size_t i = 0; i < 5; i++) {
    exact[i] = (StringMatcher)ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__INIT;
    exact[i].match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
    exact[i].exact = (char *)values[i];
    san[i] = (SubjectAltNameMatcher)
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__INIT;
    san[i].san_type = types[i];
    san[i].matcher = &exact[i];
    sans[i] = &san[i];
  }
  f.validation.match_typed_subject_alt_names = sans;
  f.validation.n_match_typed_subject_alt_names = 4;
  StringMatcher untyped[2] = {ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__INIT,
                              ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__INIT};
  untyped[0].match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
  untyped[0].exact = "192.168.1.1";
  untyped[1].match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX;
  untyped[1].suffix = ".shop.svc";
  StringMatcher *untyped_list[] = {&untyped[0], &untyped[1]};
  f.validation.match_subject_alt_names = untyped_list;
  f.validation.n_match_subject_alt_names = 1;
  DataSource crl = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  crl.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
  crl.inline_string = CRL_PEM;
  f.validation.crl = &crl;
  UInt32Value depth = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
  depth.value = 2;
  f.validation.max_verify_depth = &depth;

  ms_xds_cluster cluster;
  decode_cluster(&f, &cluster);
  const ms_xds_upstream_tls *tls = &cluster.tls;
  CHECK_STR(tls->sni, "orders.shop.svc");
  CHECK(!tls->session_reuse);
  CHECK_INT(tls->min_version, TLS1_2_VERSION);
  CHECK_INT(tls->max_version, TLS1_2_VERSION);
  CHECK_STR(tls->ciphers,
            "ECDHE-ECDSA-AES128-GCM-SHA256:[ECDHE-ECDSA-CHACHA20-POLY1305|AES256-GCM]");
  CHECK_STR(tls->curves, "X25519");
  CHECK_INT(tls->alpn_count, 1);
  CHECK_STR(tls->alpn[0], "h2");
  CHECK_INT(tls->certificate_source, MS_XDS_TLS_SOURCE_INLINE);
  check_inline(&tls->certificate.certificate_chain, CERT_PEM);
  check_inline(&tls->certificate.private_key, KEY_PEM);
  check_file(&tls->certificate.password, "/etc/key.pass");
  CHECK_INT(tls->validation_source, MS_XDS_TLS_SOURCE_INLINE);
  check_inline(&tls->validation.crl, CRL_PEM);
  CHECK_INT(tls->validation.max_verify_depth, 2);
  check_names(
      &tls->validation,
      (const char *const[]){"DNS:orders.shop.svc", "URI:spiffe://shop/orders", "IP:10.0.0.7",
                            "EMAIL:ops@shop.example", "DNS:192.168.1.1", "URI:192.168.1.1",
                            "EMAIL:192.168.1.1", "IP:192.168.1.1", NULL});
  ms_xds_cluster_cleanup(&cluster);

  /* ACCEPT_UNTRUSTED: verification off, no CA needed. */
  f.validation.trusted_ca = NULL;
  f.validation.trust_chain_verification =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__TRUST_CHAIN_VERIFICATION__ACCEPT_UNTRUSTED;
  decode_cluster(&f, &cluster);
  CHECK(!cluster.tls.validation.verify);
  check_none(&cluster.tls.validation.trusted_ca);
  ms_xds_cluster_cleanup(&cluster);
  f.validation.trust_chain_verification =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__TRUST_CHAIN_VERIFICATION__VERIFY_TRUST_CHAIN;
  CLUSTER_REFUSED(&f, COMMON
                  ".validation_context.trusted_ca: required: this sidecar verifies "
                  "upstreams; set trusted_ca, or trust_chain_verification: "
                  "ACCEPT_UNTRUSTED");
  f.validation.trusted_ca = &f.trusted_ca;

  /* TLS parameters. */
  params.tls_minimum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_0;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_params.tls_minimum_protocol_version: TLSv1_0 is refused: TLS "
                  "1.2 is the minimum; use TLSv1_2 or TLSv1_3");
  params.tls_minimum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLS_AUTO;
  params.tls_maximum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_1;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_params.tls_maximum_protocol_version: TLSv1_1 is refused: TLS "
                  "1.2 is the minimum; use TLSv1_2 or TLSv1_3");
  params.tls_minimum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_3;
  params.tls_maximum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_2;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_params: tls_minimum_protocol_version is above "
                  "tls_maximum_protocol_version");
  params.tls_maximum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLS_AUTO;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.tls.min_version, TLS1_3_VERSION);
  CHECK_INT(cluster.tls.max_version, TLS1_3_VERSION);
  ms_xds_cluster_cleanup(&cluster);
  curves[0] = "X25519:P-256";
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_params.ecdh_curves[0]: give one curve name per entry, like "
                  "\"X25519\"");
  curves[0] = "X25519";
  alpn[0] = "";
  CLUSTER_REFUSED(&f, COMMON ".alpn_protocols[0]: a protocol name has 1 to 255 bytes, this one 0");
  alpn[0] = "h2";

  /* Certificates. */
  f.common.n_tls_certificates = 2;
  CLUSTER_REFUSED(&f, COMMON
                  ": tls_certificates and tls_certificate_sds_secret_configs hold 2 "
                  "certificates; an upstream TLS context presents at most one");
  f.common.n_tls_certificates = 1;
  certificate.private_key = NULL;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_certificates[0].private_key: required (private_key_provider "
                  "and pkcs12 are not supported)");
  certificate.private_key = &key;
  certificate.certificate_chain = NULL;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_certificates[0].certificate_chain: required "
                  "(private_key_provider and pkcs12 are not supported)");
  certificate.certificate_chain = &chain;
  password.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE;
  password.environment_variable = "KEY_PASSWORD";
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_certificates[0].password: environment_variable is not "
                  "supported; use inline_bytes, inline_string or filename");
  password.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME;
  password.filename = "";
  CLUSTER_REFUSED(&f, COMMON ".tls_certificates[0].password.filename: must not be empty");
  password.filename = "/etc/key.pass";
  password.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER__NOT_SET;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_certificates[0].password: set inline_bytes, inline_string or "
                  "filename");
  password.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME;

  /* Matchers. */
  f.validation.n_match_typed_subject_alt_names = 5;
  CLUSTER_REFUSED(&f, COMMON
                  ".validation_context.match_typed_subject_alt_names[4].san_type: must "
                  "be DNS, URI, IP_ADDRESS or EMAIL");
  f.validation.n_match_typed_subject_alt_names = 4;
  exact[2].exact = "not-an-ip";
  CLUSTER_REFUSED(&f, COMMON
                  ".validation_context.match_typed_subject_alt_names[2].matcher.exact: "
                  "\"not-an-ip\" is not an IP address");
  exact[2].exact = "10.0.0.7";
  exact[1].match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX;
  CLUSTER_REFUSED(&f, COMMON
                  ".validation_context.match_typed_subject_alt_names[1].matcher.prefix: "
                  "not supported; only exact names are matched");
  exact[1].match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
  san[0].matcher = NULL;
  CLUSTER_REFUSED(&f, COMMON
                  ".validation_context.match_typed_subject_alt_names[0].matcher: "
                  "required");
  san[0].matcher = &exact[0];
  f.validation.n_match_subject_alt_names = 2;
  CLUSTER_REFUSED(&f, COMMON
                  ".validation_context.match_subject_alt_names[1].suffix: not "
                  "supported; only exact names are matched");
  f.validation.n_match_subject_alt_names = 1;

  /* No validation context at all. */
  f.common.validation_context_type_case =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE__NOT_SET;
  CLUSTER_REFUSED(&f, COMMON
                  ": no validation context; this sidecar verifies upstreams: set "
                  "validation_context or validation_context_sds_secret_config, or "
                  "trust_chain_verification: ACCEPT_UNTRUSTED");
  /* Nor a common_tls_context. */
  f.tls.common_tls_context = NULL;
  CLUSTER_REFUSED(&f, COMMON
                  ": no validation context; this sidecar verifies upstreams: set "
                  "validation_context or validation_context_sds_secret_config, or "
                  "trust_chain_verification: ACCEPT_UNTRUSTED");
  cluster_fixture_cleanup(&f);
}

static void test_cluster_tls_sds(void) {
  cluster_fixture f;
  cluster_fixture_init(&f);
  AggregatedConfigSource ads = ENVOY__CONFIG__CORE__V3__AGGREGATED_CONFIG_SOURCE__INIT;
  ConfigSource over_ads = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__INIT;
  over_ads.config_source_specifier_case =
      ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS;
  over_ads.ads = &ads;
  SdsSecretConfig cert_sds = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SDS_SECRET_CONFIG__INIT;
  cert_sds.name = "client-cert";
  cert_sds.sds_config = &over_ads;
  SdsSecretConfig *cert_sds_list[] = {&cert_sds};
  f.common.tls_certificate_sds_secret_configs = cert_sds_list;
  f.common.n_tls_certificate_sds_secret_configs = 1;
  SdsSecretConfig ca_sds = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SDS_SECRET_CONFIG__INIT;
  ca_sds.name = "mesh-ca"; /* no sds_config: ADS */
  f.common.validation_context_type_case =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG;
  f.common.validation_context_sds_secret_config = &ca_sds;

  ms_xds_cluster cluster;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.tls.certificate_source, MS_XDS_TLS_SOURCE_SDS);
  CHECK_STR(cluster.tls.certificate_sds_name, "client-cert");
  check_none(&cluster.tls.certificate.private_key);
  CHECK_INT(cluster.tls.validation_source, MS_XDS_TLS_SOURCE_SDS);
  CHECK_STR(cluster.tls.validation_sds_name, "mesh-ca");
  CHECK(cluster.tls.validation.verify);
  CHECK_INT(cluster.tls.validation.max_verify_depth, 100);
  ms_xds_cluster_cleanup(&cluster);

  /* A source other than ADS, and an empty name. */
  ConfigSource elsewhere = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__INIT;
  cert_sds.sds_config = &elsewhere;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_certificate_sds_secret_configs[0].sds_config: only ads (or "
                  "self) is supported: this sidecar receives every resource over its "
                  "one ADS stream");
  cert_sds.sds_config = &over_ads;
  ca_sds.name = "";
  CLUSTER_REFUSED(&f, COMMON ".validation_context_sds_secret_config.name: must not be empty");
  ca_sds.name = "mesh-ca";
  /* Inline and SDS certificates together. */
  TlsCertificate certificate = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
  TlsCertificate *certificates[] = {&certificate};
  f.common.tls_certificates = certificates;
  f.common.n_tls_certificates = 1;
  CLUSTER_REFUSED(&f, COMMON
                  ": tls_certificates and tls_certificate_sds_secret_configs hold 2 "
                  "certificates; an upstream TLS context presents at most one");
  f.common.n_tls_certificates = 0;

  /* Combined: the inline default's names, the SDS secret's CA. */
  CombinedValidationContext combined =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__COMBINED_CERTIFICATE_VALIDATION_CONTEXT__INIT;
  CertificateValidationContext defaults =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
  StringMatcher exact = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__INIT;
  exact.match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
  exact.exact = "spiffe://shop/orders";
  SubjectAltNameMatcher san =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__INIT;
  san.san_type =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__URI;
  san.matcher = &exact;
  SubjectAltNameMatcher *sans[] = {&san};
  defaults.match_typed_subject_alt_names = sans;
  defaults.n_match_typed_subject_alt_names = 1;
  combined.default_validation_context = &defaults;
  combined.validation_context_sds_secret_config = &ca_sds;
  f.common.validation_context_type_case =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT;
  f.common.combined_validation_context = &combined;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.tls.validation_source, MS_XDS_TLS_SOURCE_COMBINED);
  CHECK_STR(cluster.tls.validation_sds_name, "mesh-ca");
  check_none(&cluster.tls.validation.trusted_ca); /* the secret brings it: not required here */
  check_names(&cluster.tls.validation, (const char *const[]){"URI:spiffe://shop/orders", NULL});
  CHECK(cluster.tls.validation.verify);
  ms_xds_cluster_cleanup(&cluster);
  combined.default_validation_context = NULL;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.tls.validation.match_subject_alt_name_count, 0);
  ms_xds_cluster_cleanup(&cluster);
  combined.validation_context_sds_secret_config = NULL;
  CLUSTER_REFUSED(&f, COMMON
                  ".combined_validation_context.validation_context_sds_secret_config: "
                  "required");
  cluster_fixture_cleanup(&f);
}

/* ---- endpoints, secrets, listeners built in C ----------------------------------------- */

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

static void test_secrets(void) {
  DataSource chain = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  DataSource key = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  chain.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME;
  chain.filename = "/etc/client.pem";
  key.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
  key.inline_string = KEY_PEM;
  TlsCertificate certificate = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
  certificate.certificate_chain = &chain;
  certificate.private_key = &key;
  Secret secret = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
  secret.name = "client-cert";
  secret.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE;
  secret.tls_certificate = &certificate;

  size_t len;
  uint8_t *bytes = pack(&secret, &len);
  ms_xds_secret out;
  char err[MS_ERR_LEN] = "";
  CHECK_INT(ms_xds_secret_decode(bytes, len, &out, err, sizeof(err)), 0);
  CHECK_STR(out.name, "client-cert");
  CHECK_INT(out.kind, MS_XDS_SECRET_TLS_CERTIFICATE);
  check_file(&out.certificate.certificate_chain, "/etc/client.pem");
  check_inline(&out.certificate.private_key, KEY_PEM);
  check_none(&out.certificate.password);
  shake(MS_XDS_KIND_SECRET, bytes, len);
  free(bytes);
  ms_xds_secret_cleanup(&out);
  CHECK(out.certificate.private_key.bytes == NULL);

  /* Refusals never quote the key. */
  DataSource password = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  password.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE;
  password.environment_variable = "KEY_PASSWORD";
  certificate.password = &password;
  bytes = pack(&secret, &len);
  CHECK_INT(ms_xds_secret_decode(bytes, len, &out, err, sizeof(err)), -1);
  CHECK_STR(err,
            "secret \"client-cert\": tls_certificate.password: environment_variable is not "
            "supported; use inline_bytes, inline_string or filename");
  CHECK(strstr(err, "MIGH") == NULL);
  free(bytes);
  certificate.password = NULL;
  key.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE;
  key.environment_variable = "CLIENT_KEY";
  EXPECT_REFUSED(MS_XDS_KIND_SECRET, &secret,
                 "secret \"client-cert\": tls_certificate.private_key: environment_variable is not "
                 "supported; use inline_bytes, inline_string or filename");

  /* A truncated error buffer is still a terminated string. */
  bytes = pack(&secret, &len);
  char small[16];
  memset(small, 'x', sizeof(small));
  CHECK_INT(ms_xds_secret_decode(bytes, len, &out, small, sizeof(small)), -1);
  CHECK_STR(small, "secret \"client-");
  free(bytes);

  /* A validation context secret. */
  DataSource ca = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  ca.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
  ca.inline_bytes.data = (uint8_t *)CA_PEM;
  ca.inline_bytes.len = strlen(CA_PEM);
  CertificateValidationContext validation =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
  validation.trusted_ca = &ca;
  Secret ca_secret = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
  ca_secret.name = "mesh-ca";
  ca_secret.type_case =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT;
  ca_secret.validation_context = &validation;
  bytes = pack(&ca_secret, &len);
  CHECK_INT(ms_xds_secret_decode(bytes, len, &out, err, sizeof(err)), 0);
  CHECK_INT(out.kind, MS_XDS_SECRET_VALIDATION_CONTEXT);
  check_inline(&out.validation.trusted_ca, CA_PEM);
  CHECK(out.validation.verify);
  free(bytes);
  ms_xds_secret_cleanup(&out);
  validation.trusted_ca = NULL;
  EXPECT_REFUSED(MS_XDS_KIND_SECRET, &ca_secret,
                 "secret \"mesh-ca\": validation_context.trusted_ca: required: this sidecar "
                 "verifies upstreams; set trusted_ca, or trust_chain_verification: "
                 "ACCEPT_UNTRUSTED");

  ca_secret.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE__NOT_SET;
  EXPECT_REFUSED(MS_XDS_KIND_SECRET, &ca_secret,
                 "secret \"mesh-ca\": holds neither tls_certificate nor validation_context "
                 "(session_ticket_keys and generic_secret are not supported)");
  /* A hostile name cannot forge quotes or lines in the message. */
  ca_secret.name = "evil\"\nname";
  EXPECT_REFUSED(MS_XDS_KIND_SECRET, &ca_secret,
                 "secret \"evil??name\": holds neither tls_certificate nor validation_context "
                 "(session_ticket_keys and generic_secret are not supported)");
  ca_secret.name = "";
  EXPECT_REFUSED(MS_XDS_KIND_SECRET, &ca_secret, "secret: name: must not be empty");
}

/* A listener "out" on 127.0.0.1:15001 with one TcpProxy to "orders". */
typedef struct listener_fixture {
  Listener listener;
  Address address;
  SocketAddress socket;
  FilterChain chain;
  FilterChain *chains[2];
  Filter filter;
  Filter *filters[2];
  Any typed_config;
  TcpProxy proxy;
  uint8_t *proxy_bytes;
} listener_fixture;

static void listener_fixture_init(listener_fixture *f) {
  memset(f, 0, sizeof(*f));
  f->listener = (Listener)ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
  f->listener.name = "out";
  Endpoint unused;
  endpoint_init(&unused, &f->address, &f->socket, "127.0.0.1", 15001);
  f->listener.address = &f->address;
  f->proxy = (TcpProxy)ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__INIT;
  f->proxy.stat_prefix = "out";
  f->proxy.cluster_specifier_case =
      ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER;
  f->proxy.cluster = "orders";
  f->typed_config = (Any)GOOGLE__PROTOBUF__ANY__INIT;
  f->typed_config.type_url = MS_XDS_TYPE_URL_TCP_PROXY;
  f->filter = (Filter)ENVOY__CONFIG__LISTENER__V3__FILTER__INIT;
  f->filter.name = MS_XDS_FILTER_TCP_PROXY;
  f->filter.config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
  f->filter.typed_config = &f->typed_config;
  f->filters[0] = f->filters[1] = &f->filter;
  f->chain = (FilterChain)ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT;
  f->chain.filters = f->filters;
  f->chain.n_filters = 1;
  f->chains[0] = f->chains[1] = &f->chain;
  f->listener.filter_chains = f->chains;
  f->listener.n_filter_chains = 1;
}

static void listener_fixture_pack(listener_fixture *f) {
  free(f->proxy_bytes);
  size_t len;
  f->proxy_bytes = pack(&f->proxy, &len);
  f->typed_config.value.data = f->proxy_bytes;
  f->typed_config.value.len = len;
}

/* decode_listener_message decodes `listener` (its filter's typed_config
 * packed already) into `out`, or ends the test. */
static void decode_listener_message(const Listener *listener, ms_xds_listener *out) {
  size_t len;
  uint8_t *bytes = pack(listener, &len);
  char err[MS_ERR_LEN] = "";
  if (ms_xds_listener_decode(bytes, len, out, err, sizeof(err)) != 0) {
    fprintf(stderr, "listener refused: %s\n", err);
    exit(1);
  }
  free(bytes);
}

static void decode_listener(listener_fixture *f, ms_xds_listener *out) {
  listener_fixture_pack(f);
  decode_listener_message(&f->listener, out);
}

#define LISTENER_REFUSED(f, expected)                                                   \
  do {                                                                                  \
    listener_fixture_pack(f);                                                           \
    expect_refused(__FILE__, __LINE__, MS_XDS_KIND_LISTENER, &(f)->listener, expected); \
  } while (0)

static void test_listeners(void) {
  listener_fixture f;
  listener_fixture_init(&f);
  ms_xds_listener listener;
  decode_listener(&f, &listener);
  CHECK_STR(listener.name, "out");
  CHECK_STR(listener.address.text, "127.0.0.1:15001");
  CHECK(listener.address.host_is_ip);
  CHECK_INT(listener.protocol, MS_PROTOCOL_TCP);
  CHECK_STR(listener.cluster, "orders");
  CHECK_INT(listener.idle_timeout_ms, 3600000);
  CHECK_INT(listener.max_connect_attempts, 0);
  CHECK_INT(listener.max_connection_duration_ms, 0);
  CHECK_INT(listener.route_count, 0);
  ms_xds_listener_cleanup(&listener);

  Duration idle = GOOGLE__PROTOBUF__DURATION__INIT, lifetime = GOOGLE__PROTOBUF__DURATION__INIT;
  f.proxy.idle_timeout = &idle; /* 0: no idle timeout */
  lifetime.seconds = 90;
  f.proxy.max_downstream_connection_duration = &lifetime;
  UInt32Value attempts = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
  attempts.value = 3;
  f.proxy.max_connect_attempts = &attempts;
  f.socket.address = "::";
  f.filter.name = "tcp"; /* the name is informational: the type URL decides */
  decode_listener(&f, &listener);
  CHECK_STR(listener.address.text, "[::]:15001");
  CHECK_INT(listener.idle_timeout_ms, 0);
  CHECK_INT(listener.max_connection_duration_ms, 90000);
  CHECK_INT(listener.max_connect_attempts, 3);
  ms_xds_listener_cleanup(&listener);
  listener_fixture_pack(&f);
  shake_message(MS_XDS_KIND_LISTENER, &f.listener);

  attempts.value = 0;
  LISTENER_REFUSED(&f,
                   "listener \"out\": filter_chains[0].filters[0].typed_config."
                   "max_connect_attempts: must be at least 1");
  f.proxy.max_connect_attempts = NULL;
  idle.seconds = -5;
  LISTENER_REFUSED(&f,
                   "listener \"out\": filter_chains[0].filters[0].typed_config.idle_timeout: "
                   "-5s 0ns is not a valid non-negative duration");
  idle.seconds = 0;
  f.proxy.cluster_specifier_case =
      ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER__NOT_SET;
  LISTENER_REFUSED(&f,
                   "listener \"out\": filter_chains[0].filters[0].typed_config.cluster: "
                   "required");
  f.proxy.cluster_specifier_case =
      ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER;
  f.typed_config.type_url =
      "type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3."
      "RedisProxy";
  f.filter.name = "envoy.filters.network.tcp_proxy"; /* a name alone does not make a TcpProxy */
  LISTENER_REFUSED(&f,
                   "listener \"out\": filter_chains[0].filters[0]: only a TcpProxy or an "
                   "HttpConnectionManager is supported (typed_config "
                   "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy or "
                   "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager."
                   "v3.HttpConnectionManager), got type.googleapis.com/envoy.extensions.filters."
                   "network.redis_proxy.v3.RedisProxy");
  /* The TcpProxy's bytes under the HttpConnectionManager's type URL: its
   * stat_prefix, a string, where the manager has codec_type, an enum. */
  f.typed_config.type_url = MS_XDS_TYPE_URL_HTTP_CONNECTION_MANAGER;
  LISTENER_REFUSED(&f,
                   "listener \"out\": filter_chains[0].filters[0].typed_config: 19 bytes that "
                   "are not a valid envoy.extensions.filters.network.http_connection_manager.v3."
                   "HttpConnectionManager message");
  f.typed_config.type_url = MS_XDS_TYPE_URL_TCP_PROXY;
  f.chain.n_filters = 2;
  LISTENER_REFUSED(&f,
                   "listener \"out\": filter_chains[0].filters: exactly one filter "
                   "(envoy.filters.network.tcp_proxy or "
                   "envoy.filters.network.http_connection_manager) is supported, got 2");
  f.chain.n_filters = 1;
  f.listener.n_filter_chains = 0;
  LISTENER_REFUSED(&f,
                   "listener \"out\": filter_chains: exactly one filter chain is supported, "
                   "got 0");
  f.listener.n_filter_chains = 1;
  TransportSocket downstream_tls = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__INIT;
  downstream_tls.name = MS_XDS_TRANSPORT_SOCKET_TLS;
  f.chain.transport_socket = &downstream_tls;
  LISTENER_REFUSED(&f,
                   "listener \"out\": filter_chains[0].transport_socket: not supported: this "
                   "sidecar's listeners take plaintext from the local application");
  f.chain.transport_socket = NULL;
  f.socket.address = "localhost";
  LISTENER_REFUSED(&f,
                   "listener \"out\": address: \"localhost\" is not an IP address; a listener "
                   "binds an IP literal");
  f.listener.address = NULL;
  LISTENER_REFUSED(&f, "listener \"out\": address: required");
  f.listener.address = &f.address;
  f.address.address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS__NOT_SET;
  LISTENER_REFUSED(&f,
                   "listener \"out\": address: must be a socket_address (pipe and internal "
                   "addresses are not supported)");
  free(f.proxy_bytes);
}

/* ---- HTTP listeners built in C --------------------------------------------------------- */

/* An HTTP listener "web": listener_fixture's listener whose filter is an
 * HttpConnectionManager with the router and an inline route_config: a "*"
 * virtual host (prefix /pay/ to payments, / to orders), then one for
 * payments.shop and Pay.Shop (everything to payments). Tests change
 * pieces, then decode. */
typedef struct http_fixture {
  listener_fixture base; /* its typed_config carries the manager */
  HttpConnectionManager manager;
  RouteConfiguration config;
  VirtualHost host[2];
  VirtualHost *hosts[2];
  char *any_domains[1];
  char *payments_domains[2];
  Route route[3];
  Route *any_routes[2];
  Route *payments_routes[1];
  RouteMatch match[3];
  RouteAction action[3];
  HttpFilter filter[2];
  HttpFilter *filters[2];
  Any router, other;
  uint8_t *manager_bytes;
} http_fixture;

static void http_route_init(http_fixture *f, size_t i, const char *prefix, const char *cluster) {
  f->match[i] = (RouteMatch)ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__INIT;
  f->match[i].path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX;
  f->match[i].prefix = (char *)prefix;
  f->action[i] = (RouteAction)ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__INIT;
  f->action[i].cluster_specifier_case =
      ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER;
  f->action[i].cluster = (char *)cluster;
  f->route[i] = (Route)ENVOY__CONFIG__ROUTE__V3__ROUTE__INIT;
  f->route[i].match = &f->match[i];
  f->route[i].action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE;
  f->route[i].route = &f->action[i];
}

static void http_fixture_init(http_fixture *f) {
  memset(f, 0, sizeof(*f));
  listener_fixture_init(&f->base);
  f->base.listener.name = "web";
  f->base.socket.port_value = 15080;
  f->base.filter.name = MS_XDS_FILTER_HTTP_CONNECTION_MANAGER;
  http_route_init(f, 0, "/pay/", "payments");
  http_route_init(f, 1, "/", "orders");
  http_route_init(f, 2, "", "payments");
  f->any_routes[0] = &f->route[0];
  f->any_routes[1] = &f->route[1];
  f->payments_routes[0] = &f->route[2];
  f->any_domains[0] = "*";
  f->payments_domains[0] = "payments.shop";
  f->payments_domains[1] = "Pay.Shop";
  for (size_t i = 0; i < 2; i++) {
    f->host[i] = (VirtualHost)ENVOY__CONFIG__ROUTE__V3__VIRTUAL_HOST__INIT;
    f->hosts[i] = &f->host[i];
  }
  f->host[0].name = "any";
  f->host[0].domains = f->any_domains;
  f->host[0].n_domains = 1;
  f->host[0].routes = f->any_routes;
  f->host[0].n_routes = 2;
  f->host[1].name = "payments";
  f->host[1].domains = f->payments_domains;
  f->host[1].n_domains = 2;
  f->host[1].routes = f->payments_routes;
  f->host[1].n_routes = 1;
  f->config = (RouteConfiguration)ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT;
  f->config.name = "local_route";
  f->config.virtual_hosts = f->hosts;
  f->config.n_virtual_hosts = 2;
  f->router = (Any)GOOGLE__PROTOBUF__ANY__INIT;
  f->router.type_url = MS_XDS_TYPE_URL_ROUTER;
  f->other = (Any)GOOGLE__PROTOBUF__ANY__INIT;
  f->other.type_url = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
  for (size_t i = 0; i < 2; i++) {
    f->filter[i] = (HttpFilter)
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__INIT;
    f->filter[i].config_type_case =
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
    f->filters[i] = &f->filter[i];
  }
  f->filter[0].name = MS_XDS_FILTER_ROUTER;
  f->filter[0].typed_config = &f->router;
  f->filter[1].name = "envoy.filters.http.fault";
  f->filter[1].typed_config = &f->other;
  f->manager = (HttpConnectionManager)
      ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
  f->manager.stat_prefix = "web";
  f->manager.route_specifier_case =
      ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG;
  f->manager.route_config = &f->config;
  f->manager.http_filters = f->filters;
  f->manager.n_http_filters = 1;
}

static void http_fixture_pack(http_fixture *f) {
  free(f->manager_bytes);
  size_t len;
  f->manager_bytes = pack(&f->manager, &len);
  f->base.typed_config.type_url = MS_XDS_TYPE_URL_HTTP_CONNECTION_MANAGER;
  f->base.typed_config.value.data = f->manager_bytes;
  f->base.typed_config.value.len = len;
}

static void decode_http(http_fixture *f, ms_xds_listener *out) {
  http_fixture_pack(f);
  decode_listener_message(&f->base.listener, out);
}

#define HTTP_REFUSED(f, expected)                                                            \
  do {                                                                                       \
    http_fixture_pack(f);                                                                    \
    expect_refused(__FILE__, __LINE__, MS_XDS_KIND_LISTENER, &(f)->base.listener, expected); \
  } while (0)

/* The error path of the manager, and of its first virtual host and route. */
#define HCM "listener \"web\": filter_chains[0].filters[0].typed_config"
#define VHOST0 HCM ".route_config.virtual_hosts[0]"
#define ROUTE0 VHOST0 ".routes[0]"

/* check_route: `route` is {host, path_prefix, cluster} (NULL: any). */
static void check_route(const ms_http_route *route, const char *host, const char *path_prefix,
                        const char *cluster) {
  CHECK_STR(route->host, host);
  CHECK_STR(route->path_prefix, path_prefix);
  CHECK_STR(route->cluster, cluster);
}

/* set_unknown gives `message` field `number`, outside our subset, as an
 * empty length-delimited value (the rest of the message as it was): what
 * a sender setting that field of Envoy's looks like to our decoder.
 * protobuf-c packs an unknown field's data as it is: here the length, 0. */
static uint8_t unknown_empty[1] = {0};
static ProtobufCMessageUnknownField unknown_field;

static void set_unknown(void *message, uint32_t number) {
  ProtobufCMessage *base = message;
  unknown_field = (ProtobufCMessageUnknownField){.tag = number,
                                                 .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED,
                                                 .len = sizeof(unknown_empty),
                                                 .data = unknown_empty};
  base->unknown_fields = &unknown_field;
  base->n_unknown_fields = 1;
}

static void clear_unknown(void *message) {
  ProtobufCMessage *base = message;
  base->unknown_fields = NULL;
  base->n_unknown_fields = 0;
}

static void test_http_listener_accepted(void) {
  http_fixture f;
  http_fixture_init(&f);
  ms_xds_listener listener;
  decode_http(&f, &listener);
  CHECK_STR(listener.name, "web");
  CHECK_STR(listener.address.text, "127.0.0.1:15080");
  CHECK_INT(listener.protocol, MS_PROTOCOL_HTTP);
  /* The exact domains first, though their virtual host comes second. */
  CHECK_INT(listener.route_count, 4);
  check_route(&listener.routes[0], "payments.shop", NULL, "payments"); /* prefix "" */
  check_route(&listener.routes[1], "Pay.Shop", NULL, "payments");
  check_route(&listener.routes[2], NULL, "/pay/", "payments");
  check_route(&listener.routes[3], NULL, NULL, "orders"); /* prefix "/" */
  CHECK_STR(listener.cluster, "orders");                  /* "*" and "/" */
  CHECK(!listener.no_route_404);                          /* that route matches everything */
  CHECK_INT(listener.request_timeout_ms, 300000);         /* Envoy's stream_idle_timeout */
  ms_xds_listener_cleanup(&listener);

  /* Without a route for everything, requests no route matches get 404 and
   * the first route's cluster is the listener's; an optional filter before the router is skipped;
   * HTTP1 and a stream_idle_timeout; case_sensitive true is the default. */
  f.host[0].n_routes = 1;
  f.filters[0] = &f.filter[1];
  f.filters[1] = &f.filter[0];
  f.filter[1].is_optional = true;
  f.manager.n_http_filters = 2;
  f.manager.codec_type =
      ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP1;
  Duration idle = GOOGLE__PROTOBUF__DURATION__INIT;
  idle.seconds = 30;
  idle.nanos = 1;
  f.manager.stream_idle_timeout = &idle;
  BoolValue case_sensitive = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;
  case_sensitive.value = true;
  f.match[0].case_sensitive = &case_sensitive;
  f.payments_domains[1] = "[::1]"; /* an IPv6 literal without a port */
  decode_http(&f, &listener);
  CHECK_INT(listener.route_count, 3);
  check_route(&listener.routes[1], "[::1]", NULL, "payments");
  check_route(&listener.routes[2], NULL, "/pay/", "payments");
  CHECK_STR(listener.cluster, "payments");
  CHECK(listener.no_route_404); /* no route for everything: Envoy answers 404 */
  CHECK_INT(listener.request_timeout_ms, 30001);
  ms_xds_listener_cleanup(&listener);
  idle.seconds = idle.nanos = 0; /* 0: none */
  decode_http(&f, &listener);
  CHECK_INT(listener.request_timeout_ms, 0);
  ms_xds_listener_cleanup(&listener);

  /* Only "*": every route matches any host. */
  f.config.n_virtual_hosts = 1;
  decode_http(&f, &listener);
  CHECK_INT(listener.route_count, 1);
  check_route(&listener.routes[0], NULL, "/pay/", "payments");
  ms_xds_listener_cleanup(&listener);

  f.config.n_virtual_hosts = 2;
  http_fixture_pack(&f);
  shake_message(MS_XDS_KIND_LISTENER, &f.base.listener);
  free(f.manager_bytes);
}

static void test_http_listener_filters(void) {
  http_fixture f;
  http_fixture_init(&f);
  f.manager.n_http_filters = 0;
  HTTP_REFUSED(&f, HCM
               ".http_filters: the last filter must be the router "
               "(envoy.filters.http.router, typed_config "
               "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router)");
  /* A filter that is not optional, before the router. */
  f.filters[0] = &f.filter[1];
  f.filters[1] = &f.filter[0];
  f.manager.n_http_filters = 2;
  HTTP_REFUSED(&f, HCM
               ".http_filters[0]: only the router (envoy.filters.http.router) is "
               "supported, got type.googleapis.com/envoy.extensions.filters.http.fault.v3."
               "HTTPFault; a filter marked is_optional is skipped");
  /* Its name says when it has no typed_config (config_discovery). */
  f.filter[1].config_type_case =
      ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE__NOT_SET;
  HTTP_REFUSED(&f, HCM
               ".http_filters[0]: only the router (envoy.filters.http.router) is "
               "supported, got envoy.filters.http.fault; a filter marked is_optional is "
               "skipped");
  /* The router, then something: Envoy refuses a terminal filter that is
   * not last. */
  f.filters[0] = &f.filter[0];
  f.filters[1] = &f.filter[1];
  f.filter[1].is_optional = true;
  HTTP_REFUSED(&f, HCM
               ".http_filters: the last filter must be the router "
               "(envoy.filters.http.router, typed_config "
               "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router)");
  f.filters[1] = &f.filter[0];
  HTTP_REFUSED(&f, HCM ".http_filters[0]: the router must be the last filter");
  f.manager.n_http_filters = 1;

  f.manager.codec_type =
      ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP2;
  HTTP_REFUSED(&f, HCM
               ".codec_type: only AUTO and HTTP1 are supported: this sidecar's HTTP "
               "listeners speak HTTP/1.1");
  f.manager.codec_type =
      ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__AUTO;
  Duration negative = GOOGLE__PROTOBUF__DURATION__INIT;
  negative.seconds = -1;
  f.manager.stream_idle_timeout = &negative;
  HTTP_REFUSED(&f, HCM ".stream_idle_timeout: -1s 0ns is not a valid non-negative duration");
  f.manager.stream_idle_timeout = NULL;

  /* rds (refused by name: test_http_listener_routes) instead of route_config. */
  f.manager.route_specifier_case =
      ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER__NOT_SET;
  HTTP_REFUSED(&f, HCM ".route_config: required: the routes, inline");

  /* Not an HttpConnectionManager at all. */
  free(f.manager_bytes);
  f.manager_bytes = NULL;
  uint8_t garbage[] = {0x0a, 0x10, 0xab};
  f.base.typed_config.type_url = MS_XDS_TYPE_URL_HTTP_CONNECTION_MANAGER;
  f.base.typed_config.value.data = garbage;
  f.base.typed_config.value.len = sizeof(garbage);
  expect_refused(__FILE__, __LINE__, MS_XDS_KIND_LISTENER, &f.base.listener,
                 HCM
                 ": 3 bytes that are not a valid envoy.extensions.filters.network."
                 "http_connection_manager.v3.HttpConnectionManager message");
}

static void test_http_listener_domains(void) {
  http_fixture f;
  http_fixture_init(&f);
  static const struct {
    const char *domain;
    const char *expected;
  } refused[] = {
      {"*.shop", HCM ".route_config.virtual_hosts[1].domains[1]: \"*.shop\": wildcards other than "
                     "\"*\" alone are not supported: this sidecar matches hosts exactly; list the "
                     "host names"},
      {"api.*", HCM ".route_config.virtual_hosts[1].domains[1]: \"api.*\": wildcards other than "
                    "\"*\" alone are not supported: this sidecar matches hosts exactly; list the "
                    "host names"},
      {"pay.shop:8080", HCM ".route_config.virtual_hosts[1].domains[1]: \"pay.shop:8080\": a "
                            "domain with a port is not supported: this sidecar matches the host "
                            "with the request's port ignored"},
      {"[::1]:80", HCM ".route_config.virtual_hosts[1].domains[1]: \"[::1]:80\": a domain with a "
                       "port is not supported: this sidecar matches the host with the request's "
                       "port ignored"},
      {"", HCM ".route_config.virtual_hosts[1].domains[1]: must not be empty"},
      /* Domains are unique across virtual hosts, whatever their case. */
      {"PAYMENTS.shop", HCM ".route_config.virtual_hosts[1].domains[1]: \"PAYMENTS.shop\" is "
                            "also a domain of virtual_hosts[1]; each domain may appear once"},
      {"*", HCM ".route_config.virtual_hosts[1].domains[1]: \"*\" is also a domain of "
                "virtual_hosts[0]; each domain may appear once"},
  };
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    f.payments_domains[1] = (char *)refused[i].domain;
    HTTP_REFUSED(&f, refused[i].expected);
  }
  f.payments_domains[1] = "Pay.Shop";
  f.host[1].n_domains = 0;
  HTTP_REFUSED(&f, HCM ".route_config.virtual_hosts[1].domains: at least one is required");
  f.host[1].n_domains = 2;

  /* Virtual hosts without routes: nothing to forward to. */
  f.host[0].n_routes = f.host[1].n_routes = 0;
  HTTP_REFUSED(&f, HCM
               ".route_config.virtual_hosts: no route: at least one virtual host with a "
               "domain and a route is required");
  f.config.n_virtual_hosts = 0;
  HTTP_REFUSED(&f, HCM
               ".route_config.virtual_hosts: no route: at least one virtual host with a "
               "domain and a route is required");

  /* 101 domains times 100 routes is over MS_XDS_MAX_HTTP_ROUTES. */
  static char names[101][16];
  char *many_domains[101];
  Route *many_routes[100];
  for (size_t i = 0; i < 101; i++) {
    snprintf(names[i], sizeof(names[i]), "h%zu.shop", i);
    many_domains[i] = names[i];
  }
  for (size_t i = 0; i < 100; i++)
    many_routes[i] = &f.route[1];
  f.config.n_virtual_hosts = 2;
  f.host[0].n_routes = 0;
  f.host[1].domains = many_domains;
  f.host[1].n_domains = 100;
  f.host[1].routes = many_routes;
  f.host[1].n_routes = 100;
  ms_xds_listener listener;
  decode_http(&f, &listener);
  CHECK_INT(listener.route_count, MS_XDS_MAX_HTTP_ROUTES);
  check_route(&listener.routes[MS_XDS_MAX_HTTP_ROUTES - 1], "h99.shop", NULL, "orders");
  ms_xds_listener_cleanup(&listener);
  f.host[1].n_domains = 101;
  HTTP_REFUSED(&f, HCM
               ".route_config.virtual_hosts[1]: its domains times its routes make more "
               "than 10000 routes in all (this sidecar matches routes one by one)");
  free(f.manager_bytes);
}

static void test_http_listener_routes(void) {
  http_fixture f;
  http_fixture_init(&f);
  f.route[0].match = NULL;
  HTTP_REFUSED(&f, ROUTE0 ".match: required");
  f.route[0].match = &f.match[0];
  f.match[0].path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER__NOT_SET;
  HTTP_REFUSED(&f, ROUTE0 ".match.prefix: required: this sidecar matches path prefixes");
  f.match[0].path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX;
  f.match[0].prefix = "pay";
  HTTP_REFUSED(&f, ROUTE0 ".match.prefix: \"pay\" must start with \"/\"");
  f.match[0].prefix = "/pay/";
  BoolValue case_sensitive = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;
  f.match[0].case_sensitive = &case_sensitive;
  HTTP_REFUSED(&f, ROUTE0
               ".match.case_sensitive: false is not supported: this sidecar matches "
               "path prefixes case-sensitively");
  f.match[0].case_sensitive = NULL;
  f.route[0].action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION__NOT_SET;
  HTTP_REFUSED(&f, ROUTE0 ".route: required: this sidecar forwards to a cluster");
  f.route[0].action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE;
  f.action[0].cluster = "";
  HTTP_REFUSED(&f, ROUTE0 ".route.cluster: must not be empty");
  f.action[0].cluster = "payments";
  f.action[0].cluster_specifier_case =
      ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER__NOT_SET;
  HTTP_REFUSED(&f, ROUTE0 ".route.cluster: required");
  f.action[0].cluster_specifier_case =
      ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER;

  /* Fields outside our subset that change where a request goes, refused by
   * name at every level (tests/node/make_resource_fixtures.js sets each one
   * the decoder knows with Envoy's own schema). */
  const struct {
    void *message;
    uint32_t number;
    const char *expected;
  } refused[] = {
      {&f.manager, 3,
       HCM ".rds: not supported; send the routes inline in route_config (this sidecar has no "
           "RDS)"},
      {&f.config, 9,
       HCM ".route_config.vhds: not supported; list every virtual host in "
           "virtual_hosts"},
      {&f.host[0], 4,
       VHOST0 ".require_tls: not supported: this sidecar's listeners take "
              "plaintext from the local application"},
      {&f.host[0], 21, VHOST0 ".matcher: not supported; list the routes in routes"},
      {&f.route[0], 3,
       ROUTE0 ".redirect: not supported: this sidecar forwards every request to "
              "a cluster; use route"},
      {&f.route[0], 7,
       ROUTE0 ".direct_response: not supported: this sidecar forwards every "
              "request to a cluster; use route"},
      {&f.match[0], 2,
       ROUTE0 ".match.path: exact paths are not supported; match the path with "
              "prefix"},
      {&f.match[0], 10,
       ROUTE0 ".match.safe_regex: regular expressions are not supported; match "
              "the path with prefix"},
      {&f.match[0], 6,
       ROUTE0 ".match.headers: not supported: this sidecar's routes match the "
              "host (domains) and a path prefix only"},
      {&f.action[0], 3,
       ROUTE0 ".route.weighted_clusters: not supported; name one cluster in "
              "cluster"},
      {&f.action[0], 5,
       ROUTE0 ".route.prefix_rewrite: not supported: this sidecar does not "
              "rewrite a request's path or host"},
      {&f.action[0], 6,
       ROUTE0 ".route.host_rewrite_literal: not supported: this sidecar does "
              "not rewrite a request's path or host"},
  };
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    set_unknown(refused[i].message, refused[i].number);
    HTTP_REFUSED(&f, refused[i].expected);
    clear_unknown(refused[i].message);
  }
  /* Other fields outside our subset are ignored: a route's timeout. */
  set_unknown(&f.action[0], 8);
  ms_xds_listener listener;
  decode_http(&f, &listener);
  ms_xds_listener_cleanup(&listener);
  clear_unknown(&f.action[0]);
  free(f.manager_bytes);
}

/* ---- any ------------------------------------------------------------------------------ */

static void test_any(void) {
  ms_xds_kind kind;
  CHECK_INT(ms_xds_kind_from_type_url(MS_XDS_TYPE_URL_SECRET, &kind), 0);
  CHECK_INT(kind, MS_XDS_KIND_SECRET);
  CHECK_INT(ms_xds_kind_from_type_url(MS_XDS_TYPE_URL_TCP_PROXY, &kind), -1);
  CHECK_STR(ms_xds_kind_type_url(MS_XDS_KIND_ENDPOINTS), MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT);
  CHECK_STR(ms_xds_kind_name(MS_XDS_KIND_LISTENER), "listener");

  listener_fixture f;
  listener_fixture_init(&f);
  listener_fixture_pack(&f);
  size_t len;
  uint8_t *bytes = pack(&f.listener, &len);
  Any any = GOOGLE__PROTOBUF__ANY__INIT;
  any.type_url = MS_XDS_TYPE_URL_LISTENER;
  any.value.data = bytes;
  any.value.len = len;
  ms_xds_resource resource;
  char err[MS_ERR_LEN] = "";
  CHECK_INT(ms_xds_resource_decode_any(&any, MS_XDS_TYPE_URL_LISTENER, &resource, err, sizeof(err)),
            0);
  CHECK_INT(resource.kind, MS_XDS_KIND_LISTENER);
  CHECK_STR(ms_xds_resource_name(&resource), "out");
  CHECK_STR(resource.as.listener.cluster, "orders");
  ms_xds_resource_cleanup(&resource);

  CHECK_INT(ms_xds_resource_decode_any(&any, MS_XDS_TYPE_URL_CLUSTER, &resource, err, sizeof(err)),
            -1);
  CHECK_STR(err,
            "cluster: type_url: expected type.googleapis.com/envoy.config.cluster.v3.Cluster, "
            "got type.googleapis.com/envoy.config.listener.v3.Listener");
  any.type_url = "";
  CHECK_INT(ms_xds_resource_decode_any(&any, MS_XDS_TYPE_URL_LISTENER, &resource, err, sizeof(err)),
            -1);
  CHECK_STR(err,
            "listener: type_url: expected type.googleapis.com/envoy.config.listener.v3."
            "Listener, got nothing");
  CHECK_INT(
      ms_xds_resource_decode_any(&any, MS_XDS_TYPE_URL_TCP_PROXY, &resource, err, sizeof(err)), -1);
  CHECK_STR(err,
            "resource: type type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3."
            "TcpProxy is not one this sidecar decodes");
  free(bytes);
  free(f.proxy_bytes);
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

/* ---- Envoy-encoded fixtures (--envoy DIR) -------------------------------------------------- */

static const char *fixture_dir;

static uint8_t *read_fixture(const char *name, size_t *out_len) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", fixture_dir, name);
  FILE *file = fopen(path, "rb");
  if (file == NULL) {
    perror(path);
    exit(1);
  }
  CHECK(fseek(file, 0, SEEK_END) == 0);
  long size = ftell(file);
  CHECK(size >= 0);
  rewind(file);
  uint8_t *data = malloc(size > 0 ? (size_t)size : 1);
  CHECK(data != NULL);
  CHECK(fread(data, 1, (size_t)size, file) == (size_t)size);
  fclose(file);
  *out_len = (size_t)size;
  return data;
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
  CHECK_INT(cluster->lb_policy, MS_LB_RANDOM);
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
  CHECK_INT(cluster->lb_policy, MS_LB_LEAST_CONNECTIONS);
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

  /* The same routes as test_http_listener_accepted's, from Envoy's schema
   * with fields outside our subset. */
  decode_fixture("listener_http.pb", MS_XDS_KIND_LISTENER, &resource);
  listener = &resource.as.listener;
  CHECK_STR(listener->name, "web");
  CHECK_INT(listener->protocol, MS_PROTOCOL_HTTP);
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
  if (argc == 3 && strcmp(argv[1], "--envoy") == 0) {
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
  if (argc != 1) {
    fprintf(stderr, "usage: resources_test [--envoy DIR]\n");
    return 2;
  }
  test_cluster_defaults();
  test_cluster_fields();
  test_cluster_eds();
  test_cluster_refusals();
  test_cluster_tls_inline();
  test_cluster_tls_sds();
  test_endpoints();
  test_secrets();
  test_listeners();
  test_http_listener_accepted();
  test_http_listener_filters();
  test_http_listener_domains();
  test_http_listener_routes();
  test_any();
  test_shake_cluster();
  printf("resources: ok\n");
  return 0;
}
