/* resources_test_util.h: what the //xds/resources tests share: the
 * protobuf-c types under short names, check macros that end the process at
 * the first failure, checks of decoded data sources and endpoints, packing
 * and decoding, the robustness loop (shake), and a cluster and a TcpProxy
 * listener built in C for the tests to change and decode. Test-only.
 *
 * Every helper ends the process with status 1 when a check fails or a
 * resource it expects to decode is refused; none returns an error. */
#ifndef MS_XDS_RESOURCES_TEST_UTIL_H
#define MS_XDS_RESOURCES_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <protobuf-c/protobuf-c.h>

#include "certs/certs.h" /* MS_ERR_LEN */
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
#include "tests/lib/test_check.h"
#include "xds/proto/type_urls.h"
#include "xds/resources/resources.h"

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

/* CHECK, CHECK_STR, CHECK_INT: tests/lib/test_check.h. */

/* The PEM texts the fixtures carry (also in make_resource_fixtures.js). */
#define CERT_PEM \
  "-----BEGIN CERTIFICATE-----\nMIIBresource-client-certificate\n-----END CERTIFICATE-----\n"
#define KEY_PEM "-----BEGIN PRIVATE KEY-----\nMIGHresource-client-key\n-----END PRIVATE KEY-----\n"
#define CA_PEM "-----BEGIN CERTIFICATE-----\nMIIBresource-mesh-ca\n-----END CERTIFICATE-----\n"
#define CRL_PEM "-----BEGIN X509 CRL-----\nMIIBresource-crl\n-----END X509 CRL-----\n"

/* The path of the common TLS context inside cluster "orders". */
#define COMMON "cluster \"orders\": transport_socket.typed_config.common_tls_context"

/* check_inline: `source` holds exactly `text`, inline. */
void check_inline(const ms_xds_data_source *source, const char *text);

/* check_file: `source` names file `path`. */
void check_file(const ms_xds_data_source *source, const char *path);

/* check_none: `source` is not set. */
void check_none(const ms_xds_data_source *source);

/* check_endpoint: `endpoint` is address `text` ("host:port") with `weight`. */
void check_endpoint(const ms_xds_endpoint *endpoint, const char *text, uint32_t weight);

/* check_names: the validation context's names are exactly `expected`
 * (NULL-terminated), in order. */
void check_names(const ms_xds_validation_context *validation, const char *const *expected);

/* check_route: `route` is {host, path_prefix, cluster} (NULL: any). */
void check_route(const ms_xds_http_route *route, const char *host, const char *path_prefix,
                 const char *cluster);

/* ---- packing and decoding ------------------------------------------------------- */

/* pack returns `message` (a protobuf-c message) packed, its length in
 * *out_len; the caller frees the bytes. */
uint8_t *pack(const void *message, size_t *out_len);

/* decode_kind decodes `bytes` as `kind` and releases the result; returns the
 * decoder's status, with the message in err. */
int decode_kind(ms_xds_kind kind, const uint8_t *bytes, size_t len, char *err, size_t err_len);

/* expect_refused: `message` (of `kind`) is refused with exactly `expected`;
 * a failure is reported at file:line. */
void expect_refused(const char *file, int line, ms_xds_kind kind, const void *message,
                    const char *expected);

#define EXPECT_REFUSED(kind, message, expected) \
  expect_refused(__FILE__, __LINE__, (kind), (message), (expected))

/* ---- robustness ------------------------------------------------------------------- */

/* shake decodes every truncation and every single-bit flip of `bytes`: each
 * must succeed (and clean up) or fail with a message starting with the kind's
 * name. Run under ASan to catch what a crash would not show. */
void shake(ms_xds_kind kind, const uint8_t *bytes, size_t len);

/* shake_message: shake on `message` (of `kind`), packed. */
void shake_message(ms_xds_kind kind, const void *message);

/* ---- a cluster built in C ------------------------------------------------------------ */

/* The pieces of one Cluster, wired together by cluster_fixture_init: a
 * STATIC cluster "orders" with one endpoint 10.0.0.1:8443 and a TLS context
 * that verifies with a CA file. Tests change pieces, then decode. lb[1] and
 * lb[2] (10.0.0.2 and 10.0.0.3) and locality[1] are ready but not counted. */
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

void cluster_fixture_init(cluster_fixture *f);

/* cluster_fixture_pack packs the TLS context into its Any; the cluster is
 * then ready for pack(). */
void cluster_fixture_pack(cluster_fixture *f);

/* cluster_fixture_cleanup frees what cluster_fixture_pack allocated. */
void cluster_fixture_cleanup(cluster_fixture *f);

/* decode_cluster packs `f` and decodes it into `out`, which the caller
 * releases with ms_xds_cluster_cleanup. */
void decode_cluster(cluster_fixture *f, ms_xds_cluster *out);

/* cluster_refused: `f`, packed, is refused with exactly `expected`. */
void cluster_refused(cluster_fixture *f, const char *file, int line, const char *expected);

#define CLUSTER_REFUSED(f, expected) cluster_refused((f), __FILE__, __LINE__, (expected))

/* ---- a TcpProxy listener built in C ---------------------------------------------------- */

/* A listener "out" on 127.0.0.1:15001 with one TcpProxy to "orders".
 * chains[1] and filters[1] repeat the first, for tests that count them. */
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

void listener_fixture_init(listener_fixture *f);

/* listener_fixture_pack packs the TcpProxy into the filter's Any; the
 * caller frees f->proxy_bytes when done. */
void listener_fixture_pack(listener_fixture *f);

/* decode_listener_message decodes `listener` (its filter's typed_config
 * packed already) into `out`, which the caller releases with
 * ms_xds_listener_cleanup. */
void decode_listener_message(const Listener *listener, ms_xds_listener *out);

/* decode_listener: listener_fixture_pack, then decode_listener_message. */
void decode_listener(listener_fixture *f, ms_xds_listener *out);

#define LISTENER_REFUSED(f, expected)                                                   \
  do {                                                                                  \
    listener_fixture_pack(f);                                                           \
    expect_refused(__FILE__, __LINE__, MS_XDS_KIND_LISTENER, &(f)->listener, expected); \
  } while (0)

#endif
