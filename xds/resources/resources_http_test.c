/* resources_http_test.c: Listeners with an HttpConnectionManager, built in
 * C, into an HTTP ms_xds_listener (xds/resources/resources.h): the inline routes in
 * order, HTTP filters, domains, route matches and actions, fields outside
 * our subset refused by name, every refusal and its exact message;
 * truncated and bit-flipped bytes decode or fail cleanly.
 *
 * The first failed check ends the process with status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/resources/resources_test_util.h"

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
  CHECK_INT(listener.protocol, MS_XDS_LISTENER_HTTP);
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

int main(void) {
  test_http_listener_accepted();
  test_http_listener_filters();
  test_http_listener_domains();
  test_http_listener_routes();
  printf("resources_http: ok\n");
  return 0;
}
