/* resources_listener.c: Listener (LDS) with one TcpProxy or
 * HttpConnectionManager filter into ms_xds_listener; the
 * HttpConnectionManager itself is resources_http.c's. */
#include <stdlib.h>
#include <string.h>

#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/listener/v3/listener_components.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "xds/proto/type_urls.h"
#include "xds/resources/resources_internal.h"

typedef Envoy__Config__Listener__V3__Filter Filter;
typedef Envoy__Config__Listener__V3__FilterChain FilterChain;
typedef Envoy__Config__Listener__V3__Listener Listener;
typedef Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy TcpProxy;

/* Outside our subset: weighted_clusters shares the oneof with `cluster`. */
static const ms_xds_refused_field tcp_proxy_refused[] = {
    {10, "weighted_clusters", "not supported; name one cluster in cluster"},
};

/* Envoy's TcpProxy idle_timeout when unset: 1 h. */
#define DEFAULT_IDLE_TIMEOUT_MS 3600000

static int tcp_proxy(ms_xds_decoder *decoder, const TcpProxy *proxy, ms_xds_listener *out) {
  if (ms_xds_refuse_unknown_fields(decoder, &proxy->base, tcp_proxy_refused,
                                   sizeof(tcp_proxy_refused) / sizeof(tcp_proxy_refused[0])) != 0) {
    return -1;
  }
  if (proxy->cluster_specifier_case !=
      ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER) {
    return ms_xds_fail_field(decoder, "cluster", "required");
  }
  if (proxy->cluster[0] == '\0') return ms_xds_fail_field(decoder, "cluster", "must not be empty");
  if (proxy->max_connect_attempts != NULL) {
    if (proxy->max_connect_attempts->value < 1) {
      return ms_xds_fail_field(decoder, "max_connect_attempts", "must be at least 1");
    }
    out->max_connect_attempts = proxy->max_connect_attempts->value;
  }
  size_t saved = ms_xds_push(decoder, "idle_timeout");
  int rc = ms_xds_duration_ms(decoder, proxy->idle_timeout, DEFAULT_IDLE_TIMEOUT_MS, false,
                              &out->idle_timeout_ms);
  ms_xds_pop(decoder, saved);
  if (rc != 0) return -1;
  saved = ms_xds_push(decoder, "max_downstream_connection_duration");
  rc = ms_xds_duration_ms(decoder, proxy->max_downstream_connection_duration, 0, false,
                          &out->max_connection_duration_ms);
  ms_xds_pop(decoder, saved);
  if (rc != 0) return -1;
  return ms_xds_strdup(decoder, proxy->cluster, false, &out->cluster);
}

/* tcp_proxy_decode unpacks the TcpProxy in `any`, at the current path. */
static int tcp_proxy_decode(ms_xds_decoder *decoder, const Google__Protobuf__Any *any,
                            ms_xds_listener *out) {
  TcpProxy *proxy = ms_xds_unpack(
      decoder, &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor,
      any->value.data, any->value.len);
  if (proxy == NULL) return -1;
  out->protocol = MS_XDS_LISTENER_TCP;
  int rc = tcp_proxy(decoder, proxy, out);
  envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__free_unpacked(proxy, NULL);
  return rc;
}

/* filter reads the one network filter, at the current path: its typed_config
 * must be a TcpProxy or an HttpConnectionManager, whatever its name says
 * (Envoy selects by type URL). */
static int filter(ms_xds_decoder *decoder, const Filter *filter, ms_xds_listener *out) {
  const Google__Protobuf__Any *any = filter->typed_config;
  const char *type_url = any != NULL && any->type_url != NULL ? any->type_url : "";
  const char *type_name = ms_xds_type_name(type_url);
  bool is_tcp = strcmp(type_name, ms_xds_type_name(MS_XDS_TYPE_URL_TCP_PROXY)) == 0;
  bool is_http = strcmp(type_name, ms_xds_type_name(MS_XDS_TYPE_URL_HTTP_CONNECTION_MANAGER)) == 0;
  if (!is_tcp && !is_http) {
    char escaped[MS_XDS_ESCAPED_LEN];
    ms_xds_escape(type_url[0] != '\0' ? type_url : "nothing", escaped, sizeof(escaped));
    return ms_xds_fail(decoder,
                       "only a TcpProxy or an HttpConnectionManager is supported (typed_config "
                       "%s or %s), got %s",
                       MS_XDS_TYPE_URL_TCP_PROXY, MS_XDS_TYPE_URL_HTTP_CONNECTION_MANAGER, escaped);
  }
  size_t saved = ms_xds_push(decoder, "typed_config");
  int rc =
      is_tcp ? tcp_proxy_decode(decoder, any, out)
             : ms_xds_http_connection_manager_decode(decoder, any->value.data, any->value.len, out);
  ms_xds_pop(decoder, saved);
  return rc;
}

static int filter_chain(ms_xds_decoder *decoder, const FilterChain *chain, ms_xds_listener *out) {
  if (chain->transport_socket != NULL) {
    return ms_xds_fail_field(decoder, "transport_socket",
                             "not supported: this sidecar's listeners take plaintext from the "
                             "local application");
  }
  if (chain->n_filters != 1) {
    return ms_xds_fail_field(
        decoder, "filters", "exactly one filter (%s or %s) is supported, got %zu",
        MS_XDS_FILTER_TCP_PROXY, MS_XDS_FILTER_HTTP_CONNECTION_MANAGER, chain->n_filters);
  }
  size_t saved = ms_xds_push(decoder, "filters[0]");
  int rc = filter(decoder, chain->filters[0], out);
  ms_xds_pop(decoder, saved);
  return rc;
}

static int decode(ms_xds_decoder *decoder, const Listener *listener, ms_xds_listener *out) {
  if (ms_xds_decoder_set_name(decoder, listener->name) != 0 ||
      ms_xds_strdup(decoder, listener->name, false, &out->name) != 0) {
    return -1;
  }
  size_t saved = ms_xds_push(decoder, "address");
  int rc = ms_xds_socket_address(decoder, listener->address, &out->address);
  if (rc == 0 && !out->address.host_is_ip) {
    char host[MS_XDS_ESCAPED_LEN];
    ms_xds_escape(out->address.host, host, sizeof(host));
    rc = ms_xds_fail(decoder, "\"%s\" is not an IP address; a listener binds an IP literal", host);
  }
  ms_xds_pop(decoder, saved);
  if (rc != 0) return -1;
  if (listener->n_filter_chains != 1) {
    return ms_xds_fail_field(decoder, "filter_chains",
                             "exactly one filter chain is supported, got %zu",
                             listener->n_filter_chains);
  }
  saved = ms_xds_push(decoder, "filter_chains[0]");
  rc = filter_chain(decoder, listener->filter_chains[0], out);
  ms_xds_pop(decoder, saved);
  return rc;
}

int ms_xds_listener_decode(const uint8_t *bytes, size_t len, ms_xds_listener *out, char *err,
                           size_t err_len) {
  ms_xds_decoder decoder;
  ms_xds_decoder_init(&decoder, "listener", err, err_len);
  Listener *message =
      ms_xds_unpack(&decoder, &envoy__config__listener__v3__listener__descriptor, bytes, len);
  if (message == NULL) return -1;
  ms_xds_listener result;
  memset(&result, 0, sizeof(result));
  int rc = decode(&decoder, message, &result);
  envoy__config__listener__v3__listener__free_unpacked(message, NULL);
  if (rc != 0) {
    ms_xds_listener_cleanup(&result);
    return -1;
  }
  *out = result;
  return 0;
}

void ms_xds_listener_cleanup(ms_xds_listener *listener) {
  free(listener->name);
  ms_address_cleanup(&listener->address);
  free(listener->cluster);
  for (size_t i = 0; i < listener->route_count; i++) {
    free(listener->routes[i].host);
    free(listener->routes[i].path_prefix);
    free(listener->routes[i].cluster);
  }
  free(listener->routes);
  memset(listener, 0, sizeof(*listener));
}
