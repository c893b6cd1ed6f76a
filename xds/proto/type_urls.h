/* type_urls.h: the names by which xDS v3 identifies what it carries, exactly
 * as Envoy spells them. A DiscoveryRequest or DiscoveryResponse names its
 * resource type by type URL, and every google.protobuf.Any inside a resource
 * (a transport socket's or a filter's typed_config) names its payload the same
 * way. The protobuf-c types for these messages come from //xds/proto:envoy_proto
 * (xds/proto/README.md).
 *
 * All are string literals, so they can be compared with strcmp() and joined
 * with other literals at compile time. */
#ifndef MS_XDS_TYPE_URLS_H
#define MS_XDS_TYPE_URLS_H

/* The prefix of every type URL; what follows it is the message's full name. */
#define MS_XDS_TYPE_URL_PREFIX "type.googleapis.com/"

/* CDS: envoy.config.cluster.v3.Cluster. */
#define MS_XDS_TYPE_URL_CLUSTER MS_XDS_TYPE_URL_PREFIX "envoy.config.cluster.v3.Cluster"

/* EDS: envoy.config.endpoint.v3.ClusterLoadAssignment. */
#define MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT \
  MS_XDS_TYPE_URL_PREFIX "envoy.config.endpoint.v3.ClusterLoadAssignment"

/* LDS: envoy.config.listener.v3.Listener. */
#define MS_XDS_TYPE_URL_LISTENER MS_XDS_TYPE_URL_PREFIX "envoy.config.listener.v3.Listener"

/* SDS: envoy.extensions.transport_sockets.tls.v3.Secret. */
#define MS_XDS_TYPE_URL_SECRET \
  MS_XDS_TYPE_URL_PREFIX "envoy.extensions.transport_sockets.tls.v3.Secret"

/* A Cluster's transport_socket.typed_config for TLS to the upstream. */
#define MS_XDS_TYPE_URL_UPSTREAM_TLS_CONTEXT \
  MS_XDS_TYPE_URL_PREFIX "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"

/* A Listener filter's typed_config for the TCP proxy filter. */
#define MS_XDS_TYPE_URL_TCP_PROXY \
  MS_XDS_TYPE_URL_PREFIX "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

/* A Listener filter's typed_config for the HTTP connection manager. */
#define MS_XDS_TYPE_URL_HTTP_CONNECTION_MANAGER                  \
  MS_XDS_TYPE_URL_PREFIX                                         \
  "envoy.extensions.filters.network.http_connection_manager.v3." \
  "HttpConnectionManager"

/* An HttpConnectionManager's http_filters[].typed_config for the router, the
 * filter that forwards requests. */
#define MS_XDS_TYPE_URL_ROUTER \
  MS_XDS_TYPE_URL_PREFIX "envoy.extensions.filters.http.router.v3.Router"

/* The names Envoy gives those extensions (TransportSocket.name, Filter.name,
 * HttpFilter.name). Envoy selects an extension by its typed_config's type
 * URL; the name is informational, but control planes set it to these. */
#define MS_XDS_TRANSPORT_SOCKET_TLS "envoy.transport_sockets.tls"
#define MS_XDS_FILTER_TCP_PROXY "envoy.filters.network.tcp_proxy"
#define MS_XDS_FILTER_HTTP_CONNECTION_MANAGER "envoy.filters.network.http_connection_manager"
#define MS_XDS_FILTER_ROUTER "envoy.filters.http.router"

/* The gRPC method path of the Aggregated Discovery Service's state-of-the-world
 * stream: a bidirectional stream of DiscoveryRequest (client to server) and
 * DiscoveryResponse (server to client). */
#define MS_XDS_ADS_METHOD \
  "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"

/* The gRPC method path of Istio's CA API (istio/v1/auth/ca.proto): one
 * IstioCertificateRequest in, one IstioCertificateResponse out. */
#define MS_ISTIO_CA_METHOD "/istio.v1.auth.IstioCertificateService/CreateCertificate"

#endif /* MS_XDS_TYPE_URLS_H */
