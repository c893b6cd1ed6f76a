/* resources_test_util.c: see resources_test_util.h. */
#include "xds/resources/resources_test_util.h"

#include <string.h>

/* ---- checks -------------------------------------------------------------------- */

void check_inline(const ms_xds_data_source *source, const char *text) {
  CHECK_INT(source->kind, MS_XDS_DATA_INLINE);
  CHECK_INT(source->len, strlen(text));
  CHECK_STR(source->bytes, text);
  CHECK(source->filename == NULL);
}

void check_file(const ms_xds_data_source *source, const char *path) {
  CHECK_INT(source->kind, MS_XDS_DATA_FILENAME);
  CHECK_STR(source->filename, path);
  CHECK(source->bytes == NULL);
}

void check_none(const ms_xds_data_source *source) {
  CHECK_INT(source->kind, MS_XDS_DATA_NONE);
  CHECK(source->bytes == NULL && source->filename == NULL);
}

void check_endpoint(const ms_xds_endpoint *endpoint, const char *text, uint32_t weight) {
  CHECK_STR(endpoint->address.text, text);
  CHECK_INT(endpoint->weight, weight);
}

void check_names(const ms_xds_validation_context *validation, const char *const *expected) {
  size_t count = 0;
  while (expected[count] != NULL)
    count++;
  CHECK_INT(validation->match_subject_alt_name_count, count);
  for (size_t i = 0; i < count; i++)
    CHECK_STR(validation->match_subject_alt_names[i], expected[i]);
}

void check_route(const ms_xds_http_route *route, const char *host, const char *path_prefix,
                 const char *cluster) {
  CHECK_STR(route->host, host);
  CHECK_STR(route->path_prefix, path_prefix);
  CHECK_STR(route->cluster, cluster);
}

/* ---- packing and decoding ------------------------------------------------------- */

uint8_t *pack(const void *message, size_t *out_len) {
  const ProtobufCMessage *base = message;
  size_t len = protobuf_c_message_get_packed_size(base);
  uint8_t *bytes = malloc(len > 0 ? len : 1);
  CHECK(bytes != NULL);
  CHECK_INT(protobuf_c_message_pack(base, bytes), len);
  *out_len = len;
  return bytes;
}

int decode_kind(ms_xds_kind kind, const uint8_t *bytes, size_t len, char *err, size_t err_len) {
  ms_xds_resource resource;
  if (ms_xds_resource_decode(kind, bytes, len, &resource, err, err_len) != 0) return -1;
  ms_xds_resource_cleanup(&resource);
  return 0;
}

void expect_refused(const char *file, int line, ms_xds_kind kind, const void *message,
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

void shake(ms_xds_kind kind, const uint8_t *bytes, size_t len) {
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

void shake_message(ms_xds_kind kind, const void *message) {
  size_t len;
  uint8_t *bytes = pack(message, &len);
  shake(kind, bytes, len);
  free(bytes);
}

/* ---- a cluster built in C ------------------------------------------------------------ */

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

void cluster_fixture_init(cluster_fixture *f) {
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

void cluster_fixture_pack(cluster_fixture *f) {
  free(f->tls_bytes);
  size_t len;
  f->tls_bytes = pack(&f->tls, &len);
  f->typed_config.value.data = f->tls_bytes;
  f->typed_config.value.len = len;
}

void cluster_fixture_cleanup(cluster_fixture *f) {
  free(f->tls_bytes);
  f->tls_bytes = NULL;
}

void decode_cluster(cluster_fixture *f, ms_xds_cluster *out) {
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

void cluster_refused(cluster_fixture *f, const char *file, int line, const char *expected) {
  cluster_fixture_pack(f);
  expect_refused(file, line, MS_XDS_KIND_CLUSTER, &f->cluster, expected);
}

/* ---- a TcpProxy listener built in C ---------------------------------------------------- */

void listener_fixture_init(listener_fixture *f) {
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

void listener_fixture_pack(listener_fixture *f) {
  free(f->proxy_bytes);
  size_t len;
  f->proxy_bytes = pack(&f->proxy, &len);
  f->typed_config.value.data = f->proxy_bytes;
  f->typed_config.value.len = len;
}

void decode_listener_message(const Listener *listener, ms_xds_listener *out) {
  size_t len;
  uint8_t *bytes = pack(listener, &len);
  char err[MS_ERR_LEN] = "";
  if (ms_xds_listener_decode(bytes, len, out, err, sizeof(err)) != 0) {
    fprintf(stderr, "listener refused: %s\n", err);
    exit(1);
  }
  free(bytes);
}

void decode_listener(listener_fixture *f, ms_xds_listener *out) {
  listener_fixture_pack(f);
  decode_listener_message(&f->listener, out);
}
