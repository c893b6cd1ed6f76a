/* resources_listener_test.c: Listeners with a TcpProxy, built in C, into
 * ms_xds_listener (xds/resources/resources.h): defaults, timeouts, connect attempts,
 * addresses, every refusal and its exact message; truncated and bit-flipped
 * bytes decode or fail cleanly (resources_http_test.c: listeners with an
 * HttpConnectionManager).
 *
 * The first failed check ends the process with status 1. */
#include <stdio.h>
#include <stdlib.h>

#include "xds/resources/resources_test_util.h"

static void test_listeners(void) {
  listener_fixture f;
  listener_fixture_init(&f);
  ms_xds_listener listener;
  decode_listener(&f, &listener);
  CHECK_STR(listener.name, "out");
  CHECK_STR(listener.address.text, "127.0.0.1:15001");
  CHECK(listener.address.host_is_ip);
  CHECK_INT(listener.protocol, MS_XDS_LISTENER_TCP);
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

int main(void) {
  test_listeners();
  printf("resources_listener: ok\n");
  return 0;
}
