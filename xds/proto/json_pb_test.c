/* json_pb_test.c: proto3 JSON into Envoy's messages (json_pb.h): durations,
 * Any (packed, with nested Any), enums by name and number, wrappers, oneofs,
 * bytes, Struct, lowerCamelCase names, and errors that name the JSON path. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "xds/proto/json_pb.h"

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* parse converts `text` as `descriptor`; NULL on failure with `err` set. */
static ProtobufCMessage *parse(const char *text, const ProtobufCMessageDescriptor *descriptor,
                               char *err, size_t err_len) {
  cJSON *json = cJSON_Parse(text);
  if (json == NULL) {
    snprintf(err, err_len, "test JSON does not parse: %s", text);
    return NULL;
  }
  ProtobufCMessage *message = NULL;
  int rc = descriptor != NULL ? ms_json_pb_parse(json, descriptor, "", NULL, &message, err, err_len)
                              : ms_json_pb_parse_any(json, "", NULL, &message, err, err_len);
  cJSON_Delete(json);
  return rc == 0 ? message : NULL;
}

/* expect_error checks that `text` fails with exactly `want`. */
static void expect_error(const char *text, const ProtobufCMessageDescriptor *descriptor,
                         const char *want) {
  char err[512] = "";
  ProtobufCMessage *message = parse(text, descriptor, err, sizeof(err));
  if (message != NULL || strcmp(err, want) != 0) {
    fprintf(stderr, "for %s\n  want error: %s\n  got:        %s\n", text, want,
            message != NULL ? "(success)" : err);
    failures++;
  }
  if (message != NULL) protobuf_c_message_free_unpacked(message, NULL);
}

static void test_cluster(void) {
  char err[512];
  ProtobufCMessage *message = parse(
      "{\"@type\": \"type.googleapis.com/envoy.config.cluster.v3.Cluster\","
      " \"name\": \"backend\", \"type\": \"STRICT_DNS\", \"lbPolicy\": 1,"
      " \"connect_timeout\": \"1.25s\", \"dns_refresh_rate\": \"-0.000000001s\","
      " \"outlier_detection\": null,"
      " \"transport_socket\": {\"name\": \"envoy.transport_sockets.tls\", \"typed_config\": {"
      "   \"@type\": "
      "\"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\","
      "   \"sni\": \"backend.local\", \"max_session_keys\": 7,"
      "   \"common_tls_context\": {\"alpn_protocols\": [\"h2\", \"http/1.1\"],"
      "     \"tls_params\": {\"tls_minimum_protocol_version\": \"TLSv1_3\"},"
      "     \"validation_context\": {\"trusted_ca\": {\"inline_bytes\": \"aGVsbG8_\"}}}}},"
      " \"load_assignment\": {\"cluster_name\": \"backend\", \"endpoints\": [{\"lb_endpoints\": ["
      "   {\"endpoint\": {\"address\": {\"socket_address\": {\"address\": \"db.local\","
      "    \"port_value\": \"5432\"}}}, \"load_balancing_weight\": 10}]}]}}",
      NULL, err, sizeof(err));
  CHECK(message != NULL);
  if (message == NULL) {
    fprintf(stderr, "%s\n", err);
    return;
  }
  CHECK(message->descriptor == &envoy__config__cluster__v3__cluster__descriptor);
  Envoy__Config__Cluster__V3__Cluster *c = (Envoy__Config__Cluster__V3__Cluster *)message;
  CHECK(strcmp(c->name, "backend") == 0);
  CHECK(c->cluster_discovery_type_case ==
            ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE &&
        c->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS);
  CHECK(c->lb_policy == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST);
  CHECK(c->connect_timeout != NULL && c->connect_timeout->seconds == 1 &&
        c->connect_timeout->nanos == 250000000);
  CHECK(c->dns_refresh_rate != NULL && c->dns_refresh_rate->seconds == 0 &&
        c->dns_refresh_rate->nanos == -1);
  CHECK(c->outlier_detection == NULL);
  CHECK(c->load_assignment != NULL && c->load_assignment->n_endpoints == 1);
  Envoy__Config__Endpoint__V3__LbEndpoint *lb = c->load_assignment->endpoints[0]->lb_endpoints[0];
  CHECK(lb->load_balancing_weight != NULL && lb->load_balancing_weight->value == 10);
  CHECK(lb->endpoint->address->socket_address->port_value == 5432);

  /* The Any was packed; unpack it. */
  Google__Protobuf__Any *any = c->transport_socket->typed_config;
  CHECK(
      strcmp(any->type_url,
             "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext") ==
      0);
  Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *tls =
      envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__unpack(
          NULL, any->value.len, any->value.data);
  CHECK(tls != NULL);
  if (tls != NULL) {
    CHECK(strcmp(tls->sni, "backend.local") == 0);
    CHECK(tls->max_session_keys != NULL && tls->max_session_keys->value == 7);
    CHECK(tls->common_tls_context->n_alpn_protocols == 2);
    CHECK(tls->common_tls_context->tls_params->tls_minimum_protocol_version ==
          ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_3);
    Envoy__Config__Core__V3__DataSource *ca =
        tls->common_tls_context->validation_context->trusted_ca;
    /* "aGVsbG8_" is URL-safe base64 for "hello?" without padding. */
    CHECK(ca->specifier_case == ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES &&
          ca->inline_bytes.len == 6 && memcmp(ca->inline_bytes.data, "hello?", 6) == 0);
    envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__free_unpacked(tls, NULL);
  }
  protobuf_c_message_free_unpacked(message, NULL);
}

static void test_listener_and_struct(void) {
  char err[512];
  ProtobufCMessage *message = parse(
      "{\"@type\": \"type.googleapis.com/envoy.config.listener.v3.Listener\", \"name\": \"egress\","
      " \"filter_chains\": [{\"filters\": [{\"name\": \"tcp\", \"typedConfig\": {"
      "  \"@type\": \"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\","
      "  \"stat_prefix\": \"egress\", \"cluster\": \"backend\", \"idle_timeout\": \"300s\"}}]}]}",
      NULL, err, sizeof(err));
  CHECK(message != NULL);
  if (message != NULL) {
    Envoy__Config__Listener__V3__Listener *l = (Envoy__Config__Listener__V3__Listener *)message;
    Google__Protobuf__Any *any = l->filter_chains[0]->filters[0]->typed_config;
    Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy *proxy =
        envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__unpack(NULL, any->value.len,
                                                                              any->value.data);
    CHECK(proxy != NULL && strcmp(proxy->cluster, "backend") == 0 &&
          proxy->idle_timeout->seconds == 300);
    if (proxy != NULL)
      envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__free_unpacked(proxy, NULL);
    protobuf_c_message_free_unpacked(message, NULL);
  } else {
    fprintf(stderr, "%s\n", err);
  }

  /* A DiscoveryRequest: Struct metadata, a google.rpc.Status. */
  message = parse(
      "{\"node\": {\"id\": \"a.b\", \"metadata\": {\"NAMESPACE\": \"shop\", \"n\": 1.5,"
      "  \"ok\": true, \"list\": [1, \"x\", null], \"nested\": {\"k\": \"v\"}}},"
      " \"resource_names\": [\"x\", \"y\"], \"error_detail\": {\"code\": 3, \"message\": \"no\"}}",
      &envoy__service__discovery__v3__discovery_request__descriptor, err, sizeof(err));
  CHECK(message != NULL);
  if (message != NULL) {
    Envoy__Service__Discovery__V3__DiscoveryRequest *r =
        (Envoy__Service__Discovery__V3__DiscoveryRequest *)message;
    CHECK(r->n_resource_names == 2 && strcmp(r->resource_names[1], "y") == 0);
    CHECK(r->error_detail->code == 3 && strcmp(r->error_detail->message, "no") == 0);
    CHECK(r->node->metadata->n_fields == 5);
    bool found = false;
    for (size_t i = 0; i < r->node->metadata->n_fields; i++) {
      Google__Protobuf__Struct__FieldsEntry *e = r->node->metadata->fields[i];
      if (strcmp(e->key, "list") == 0) {
        found =
            e->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE &&
            e->value->list_value->n_values == 3 &&
            e->value->list_value->values[2]->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
      }
    }
    CHECK(found);
    protobuf_c_message_free_unpacked(message, NULL);
  } else {
    fprintf(stderr, "%s\n", err);
  }
}

/* An HTTP listener as xds-server's files hold it: an HttpConnectionManager
 * with inline routes and the router, each an Any. */
static void test_http_connection_manager(void) {
#define HCM_LISTENER(extra)                                                                      \
  "{\"@type\": \"type.googleapis.com/envoy.config.listener.v3.Listener\", \"name\": \"web\","    \
  " \"filter_chains\": [{\"filters\": [{\"name\": \"hcm\", \"typed_config\": {"                  \
  "  \"@type\": \"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager." \
  "v3.HttpConnectionManager\", \"stat_prefix\": \"web\", \"codec_type\": \"HTTP1\"," extra       \
  "  \"route_config\": {\"virtual_hosts\": [{\"name\": \"all\", \"domains\": [\"*\"],"           \
  "   \"routes\": [{\"match\": {\"prefix\": \"/pay/\", \"case_sensitive\": true},"               \
  "    \"route\": {\"cluster\": \"payments\"}}]}]},"                                             \
  "  \"http_filters\": [{\"name\": \"envoy.filters.http.router\", \"typed_config\": {"           \
  "   \"@type\": \"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\"}}]}}]}]}"
  char err[512];
  ProtobufCMessage *message =
      parse(HCM_LISTENER(" \"stream_idle_timeout\": \"30s\","), NULL, err, sizeof(err));
  CHECK(message != NULL);
  if (message != NULL) {
    Envoy__Config__Listener__V3__Listener *l = (Envoy__Config__Listener__V3__Listener *)message;
    Google__Protobuf__Any *any = l->filter_chains[0]->filters[0]->typed_config;
    Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm =
        envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__unpack(
            NULL, any->value.len, any->value.data);
    CHECK(hcm != NULL);
    if (hcm != NULL) {
      CHECK(
          hcm->codec_type ==
          ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP1);
      CHECK(hcm->stream_idle_timeout != NULL && hcm->stream_idle_timeout->seconds == 30);
      Envoy__Config__Route__V3__VirtualHost *host = hcm->route_config->virtual_hosts[0];
      CHECK(host->n_domains == 1 && strcmp(host->domains[0], "*") == 0);
      CHECK(strcmp(host->routes[0]->match->prefix, "/pay/") == 0);
      CHECK(host->routes[0]->match->case_sensitive->value);
      CHECK(strcmp(host->routes[0]->route->cluster, "payments") == 0);
      CHECK(hcm->n_http_filters == 1 &&
            strcmp(hcm->http_filters[0]->typed_config->type_url,
                   "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router") == 0);
      envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__free_unpacked(
          hcm, NULL);
    }
    protobuf_c_message_free_unpacked(message, NULL);
  } else {
    fprintf(stderr, "%s\n", err);
  }
  /* rds is outside our subset: a file that sets it is refused, not served
   * without its routes. */
  expect_error(HCM_LISTENER(" \"rds\": {\"route_config_name\": \"web\"},"), NULL,
               "filter_chains[0].filters[0].typed_config.rds: no field \"rds\" in "
               "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager");
#undef HCM_LISTENER
}

static void test_errors(void) {
  const ProtobufCMessageDescriptor *cluster = &envoy__config__cluster__v3__cluster__descriptor;
  expect_error("{\"connect_timeout\": \"5 s\"}", cluster,
               "connect_timeout: \"5 s\" is not a duration (like \"5s\" or \"0.25s\")");
  expect_error("{\"connect_timeout\": 5}", cluster,
               "connect_timeout: expected a duration string (like \"5s\" or \"0.25s\"), got a "
               "number");
  expect_error("{\"connect_timeout\": \"1.0000000001s\"}", cluster,
               "connect_timeout: \"1.0000000001s\" is not a duration (like \"5s\" or \"0.25s\")");
  expect_error("{\"lb_policy\": \"FASTEST\"}", cluster,
               "lb_policy: \"FASTEST\" is not a value of envoy.config.cluster.v3.Cluster.LbPolicy");
  expect_error("{\"name\": \"x\", \"conect_timeout\": \"1s\"}", cluster,
               "conect_timeout: no field \"conect_timeout\" in envoy.config.cluster.v3.Cluster");
  /* A field given twice (fuzz/findings/json_pb: the first string leaked). */
  expect_error("{\"name\": \"x\", \"name\": \"y\"}", cluster, "name: \"name\" is set twice");
  expect_error("{\"connect_timeout\": \"1s\", \"connectTimeout\": \"2s\"}", cluster,
               "connectTimeout: \"connect_timeout\" is set twice");
  expect_error(
      "{\"load_assignment\": {\"endpoints\": [{}, {\"lb_endpoints\": [{\"endpoint\": {\"address\":"
      " {\"socket_address\": {\"port_value\": 5000000000}}}}]}]}}",
      cluster,
      "load_assignment.endpoints[1].lb_endpoints[0].endpoint.address.socket_address.port_value: "
      "5000000000 is not an integer in [0, 4294967295]");
  expect_error("{\"load_assignment\": {\"endpoints\": {}}}", cluster,
               "load_assignment.endpoints: expected an array, got an object");
  expect_error("{\"name\": 5}", cluster, "name: expected a string, got a number");
  expect_error("{\"transport_socket\": {\"typed_config\": {\"sni\": \"x\"}}}", cluster,
               "transport_socket.typed_config: \"@type\" (a type URL) is missing");
  expect_error(
      "{\"transport_socket\": {\"typed_config\": {\"@type\": \"type.googleapis.com/no.Such\"}}}",
      cluster, "transport_socket.typed_config.@type: unknown type \"type.googleapis.com/no.Such\"");
  expect_error(
      "{\"transport_socket\": {\"typed_config\": {\"@type\": "
      "\"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\","
      " \"sni\": \"x\", \"snii\": 1}}}",
      cluster,
      "transport_socket.typed_config.snii: no field \"snii\" in "
      "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext");
  expect_error(
      "{\"transport_socket\": {\"typed_config\": {\"@type\": "
      "\"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\","
      " \"common_tls_context\": {\"validation_context\": {}, "
      "\"validation_context_sds_secret_config\": {}}}}}",
      cluster,
      "transport_socket.typed_config.common_tls_context.validation_context_sds_secret_config: "
      "\"validation_context\" and \"validation_context_sds_secret_config\" are members of one "
      "oneof: set only one");
  expect_error("{\"load_assignment\": {\"endpoints\": [{\"load_balancing_weight\": -1}]}}", cluster,
               "load_assignment.endpoints[0].load_balancing_weight: -1 is not an integer in [0, "
               "4294967295]");
  expect_error("{\"eds_cluster_config\": {\"eds_config\": {\"ads\": {}, \"self\": {}}}}", cluster,
               "eds_cluster_config.eds_config.self: \"ads\" and \"self\" are members of one "
               "oneof: set only one");
  expect_error("[1]", cluster,
               "expected an object (envoy.config.cluster.v3.Cluster), got an array");
}

int main(void) {
  test_cluster();
  test_listener_and_struct();
  test_http_connection_manager();
  test_errors();
  if (failures > 0) {
    fprintf(stderr, "json_pb_test: %d check(s) failed\n", failures);
    return 1;
  }
  printf("json_pb_test: all checks passed\n");
  return 0;
}
