/* resources_http.c: a Listener's HttpConnectionManager, with an inline
 * RouteConfiguration and the router filter, into the routes of an HTTP
 * ms_xds_listener (resources.h).
 *
 * Envoy picks one virtual host by the request's Host (an exact domain before
 * "*"), then the first of its routes that matches. The sidecar has one list
 * of routes, first match wins, each with an exact host or any host. So the
 * routes of every exact domain come first, then those of "*": a request
 * reaches the route Envoy would pick. Envoy's suffix and prefix wildcards
 * ("*.shop", "api.*") have no such translation and are refused. Where Envoy
 * would answer 404 (no virtual host, or no route of the virtual host
 * matches), the sidecar goes on down its list: the routes of "*", then the
 * listener's cluster. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/name_index.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "xds/proto/type_urls.h"
#include "xds/resources/resources_internal.h"

typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager
    HttpConnectionManager;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter HttpFilter;
typedef Envoy__Config__Route__V3__RouteConfiguration RouteConfiguration;
typedef Envoy__Config__Route__V3__VirtualHost VirtualHost;
typedef Envoy__Config__Route__V3__Route Route;
typedef Envoy__Config__Route__V3__RouteMatch RouteMatch;
typedef Envoy__Config__Route__V3__RouteAction RouteAction;

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* Envoy's stream_idle_timeout when unset: 5 min. */
#define DEFAULT_STREAM_IDLE_TIMEOUT_MS 300000

/* ---- what is refused ---------------------------------------------------------- */

/* Fields outside our subset that would change where a request goes, by
 * message. The others (timeouts, retries, headers to add, stats) are
 * ignored like every field outside the subset. */

static const ms_xds_refused_field manager_refused[] = {
    {3, "rds", "not supported; send the routes inline in route_config (this sidecar has no RDS)"},
    {31, "scoped_routes", "not supported; send the routes inline in route_config"},
};

static const ms_xds_refused_field route_config_refused[] = {
    {9, "vhds", "not supported; list every virtual host in virtual_hosts"},
};

static const ms_xds_refused_field virtual_host_refused[] = {
    {21, "matcher", "not supported; list the routes in routes"},
    {4, "require_tls",
     "not supported: this sidecar's listeners take plaintext from the local application"},
};

#define NOT_FORWARDED "not supported: this sidecar forwards every request to a cluster; use route"

static const ms_xds_refused_field route_refused[] = {
    {3, "redirect", NOT_FORWARDED},
    {7, "direct_response", NOT_FORWARDED},
    {17, "filter_action", NOT_FORWARDED},
    {18, "non_forwarding_action", NOT_FORWARDED},
};

#define PREFIX_ONLY "not supported; match the path with prefix"
#define HOST_AND_PATH_ONLY \
  "not supported: this sidecar's routes match the host (domains) and a path prefix only"

static const ms_xds_refused_field match_refused[] = {
    {2, "path", "exact paths are not supported; match the path with prefix"},
    {10, "safe_regex", "regular expressions are not supported; match the path with prefix"},
    {12, "connect_matcher", "not supported: this sidecar answers CONNECT with 405"},
    {14, "path_separated_prefix", PREFIX_ONLY},
    {15, "path_match_policy", PREFIX_ONLY},
    {6, "headers", HOST_AND_PATH_ONLY},
    {7, "query_parameters", HOST_AND_PATH_ONLY},
    {8, "grpc", HOST_AND_PATH_ONLY},
    {9, "runtime_fraction", HOST_AND_PATH_ONLY},
    {11, "tls_context", HOST_AND_PATH_ONLY},
    {13, "dynamic_metadata", HOST_AND_PATH_ONLY},
};

#define ONE_CLUSTER "not supported; name one cluster in cluster"
#define NO_REWRITE "not supported: this sidecar does not rewrite a request's path or host"

static const ms_xds_refused_field action_refused[] = {
    {2, "cluster_header", ONE_CLUSTER},
    {3, "weighted_clusters", ONE_CLUSTER},
    {37, "cluster_specifier_plugin", ONE_CLUSTER},
    {39, "inline_cluster_specifier_plugin", ONE_CLUSTER},
    {5, "prefix_rewrite", NO_REWRITE},
    {32, "regex_rewrite", NO_REWRITE},
    {41, "path_rewrite_policy", NO_REWRITE},
    {6, "host_rewrite_literal", NO_REWRITE},
    {7, "auto_host_rewrite", NO_REWRITE},
    {29, "host_rewrite_header", NO_REWRITE},
    {35, "host_rewrite_path_regex", NO_REWRITE},
};

/* ---- HTTP filters ------------------------------------------------------------- */

/* typed_config returns the filter's typed_config, NULL when it has none. */
static const Google__Protobuf__Any *typed_config(const HttpFilter *filter) {
  return filter->config_type_case ==
                 ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG
             ? filter->typed_config
             : NULL;
}

static bool is_router(const HttpFilter *filter) {
  const Google__Protobuf__Any *any = typed_config(filter);
  return any != NULL && any->type_url != NULL &&
         strcmp(ms_xds_type_name(any->type_url), ms_xds_type_name(MS_XDS_TYPE_URL_ROUTER)) == 0;
}

/* http_filters: the router last (it forwards the requests; without it Envoy
 * forwards nothing), and before it only filters marked is_optional, which a
 * client that does not implement them may skip. */
static int http_filters(ms_xds_decoder *decoder, HttpFilter *const *filters, size_t count) {
  if (count == 0 || !is_router(filters[count - 1])) {
    return ms_xds_fail_field(decoder, "http_filters",
                             "the last filter must be the router (%s, typed_config %s)",
                             MS_XDS_FILTER_ROUTER, MS_XDS_TYPE_URL_ROUTER);
  }
  size_t top = ms_xds_push(decoder, "http_filters");
  int rc = 0;
  for (size_t i = 0; rc == 0 && i + 1 < count; i++) {
    const HttpFilter *filter = filters[i];
    size_t saved = ms_xds_push_index(decoder, i);
    if (is_router(filter)) {
      rc = ms_xds_fail(decoder, "the router must be the last filter");
    } else if (!filter->is_optional) {
      const Google__Protobuf__Any *any = typed_config(filter);
      const char *what = any != NULL && any->type_url != NULL && any->type_url[0] != '\0'
                             ? any->type_url
                             : (filter->name[0] != '\0' ? filter->name : "nothing");
      char escaped[MS_XDS_ESCAPED_LEN];
      ms_xds_escape(what, escaped, sizeof(escaped));
      rc = ms_xds_fail(decoder,
                       "only the router (%s) is supported, got %s; a filter marked is_optional "
                       "is skipped",
                       MS_XDS_FILTER_ROUTER, escaped);
    }
    ms_xds_pop(decoder, saved);
  }
  ms_xds_pop(decoder, top);
  return rc;
}

/* ---- routes ------------------------------------------------------------------- */

/* check_match: a prefix that is empty or starts with "/", matched
 * case-sensitively. */
static int check_match(ms_xds_decoder *decoder, const RouteMatch *match) {
  if (ms_xds_refuse_unknown_fields(decoder, &match->base, match_refused, COUNT(match_refused)) !=
      0) {
    return -1;
  }
  if (match->path_specifier_case != ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX) {
    return ms_xds_fail_field(decoder, "prefix", "required: this sidecar matches path prefixes");
  }
  if (match->prefix[0] != '\0' && match->prefix[0] != '/') {
    char escaped[MS_XDS_ESCAPED_LEN];
    ms_xds_escape(match->prefix, escaped, sizeof(escaped));
    return ms_xds_fail_field(decoder, "prefix", "\"%s\" must start with \"/\"", escaped);
  }
  if (match->case_sensitive != NULL && !match->case_sensitive->value) {
    return ms_xds_fail_field(decoder, "case_sensitive",
                             "false is not supported: this sidecar matches path prefixes "
                             "case-sensitively");
  }
  return 0;
}

static int check_route(ms_xds_decoder *decoder, const Route *route) {
  if (ms_xds_refuse_unknown_fields(decoder, &route->base, route_refused, COUNT(route_refused)) !=
      0) {
    return -1;
  }
  if (route->match == NULL) return ms_xds_fail_field(decoder, "match", "required");
  size_t saved = ms_xds_push(decoder, "match");
  int rc = check_match(decoder, route->match);
  ms_xds_pop(decoder, saved);
  if (rc != 0) return -1;
  if (route->action_case != ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE) {
    return ms_xds_fail_field(decoder, "route", "required: this sidecar forwards to a cluster");
  }
  saved = ms_xds_push(decoder, "route");
  const RouteAction *action = route->route;
  rc = ms_xds_refuse_unknown_fields(decoder, &action->base, action_refused, COUNT(action_refused));
  if (rc == 0 && action->cluster_specifier_case !=
                     ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER) {
    rc = ms_xds_fail_field(decoder, "cluster", "required");
  } else if (rc == 0 && action->cluster[0] == '\0') {
    rc = ms_xds_fail_field(decoder, "cluster", "must not be empty");
  }
  ms_xds_pop(decoder, saved);
  return rc;
}

/* check_domain: "*", or a host name or IP literal without a port. */
static int check_domain(ms_xds_decoder *decoder, const char *domain) {
  if (domain[0] == '\0') return ms_xds_fail(decoder, "must not be empty");
  if (strcmp(domain, "*") == 0) return 0;
  char escaped[MS_XDS_ESCAPED_LEN];
  ms_xds_escape(domain, escaped, sizeof(escaped));
  if (strchr(domain, '*') != NULL) {
    return ms_xds_fail(decoder,
                       "\"%s\": wildcards other than \"*\" alone are not supported: this "
                       "sidecar matches hosts exactly; list the host names",
                       escaped);
  }
  const char *bracket = domain[0] == '[' ? strchr(domain, ']') : NULL;
  if (bracket != NULL ? bracket[1] != '\0' : strchr(domain, ':') != NULL) {
    return ms_xds_fail(decoder,
                       "\"%s\": a domain with a port is not supported: this sidecar matches "
                       "the host with the request's port ignored",
                       escaped);
  }
  return 0;
}

/* check_virtual_host checks virtual host `index`, its domains against those
 * seen before (`seen` maps lower-cased copies, kept in `lowered`, which it
 * extends, to their virtual host), and adds how many routes it makes to
 * *total. */
static int check_virtual_host(ms_xds_decoder *decoder, const VirtualHost *host, size_t index,
                              ms_name_index *seen, char **lowered, size_t *lowered_count,
                              size_t *total) {
  if (ms_xds_refuse_unknown_fields(decoder, &host->base, virtual_host_refused,
                                   COUNT(virtual_host_refused)) != 0) {
    return -1;
  }
  if (host->n_domains == 0)
    return ms_xds_fail_field(decoder, "domains", "at least one is required");
  size_t top = ms_xds_push(decoder, "domains");
  int rc = 0;
  for (size_t j = 0; rc == 0 && j < host->n_domains; j++) {
    size_t saved = ms_xds_push_index(decoder, j);
    rc = check_domain(decoder, host->domains[j]);
    char *lower = rc == 0 ? strdup(host->domains[j]) : NULL;
    if (rc == 0 && lower == NULL) rc = ms_xds_out_of_memory(decoder);
    if (rc == 0) {
      for (char *c = lower; *c != '\0'; c++)
        *c = (char)tolower((unsigned char)*c);
      lowered[(*lowered_count)++] = lower;
      size_t first = ms_name_index_put(seen, lower, index);
      if (first != MS_NAME_INDEX_NONE) {
        char escaped[MS_XDS_ESCAPED_LEN];
        ms_xds_escape(host->domains[j], escaped, sizeof(escaped));
        rc = ms_xds_fail(decoder,
                         "\"%s\" is also a domain of virtual_hosts[%zu]; each domain may appear "
                         "once",
                         escaped, first);
      }
    }
    ms_xds_pop(decoder, saved);
  }
  ms_xds_pop(decoder, top);
  if (rc != 0) return -1;
  top = ms_xds_push(decoder, "routes");
  for (size_t k = 0; rc == 0 && k < host->n_routes; k++) {
    size_t saved = ms_xds_push_index(decoder, k);
    rc = check_route(decoder, host->routes[k]);
    ms_xds_pop(decoder, saved);
  }
  ms_xds_pop(decoder, top);
  if (rc != 0) return -1;
  if (host->n_routes > 0 && host->n_domains > (MS_XDS_MAX_HTTP_ROUTES - *total) / host->n_routes) {
    return ms_xds_fail(decoder,
                       "its domains times its routes make more than %d routes in all (this "
                       "sidecar matches routes one by one)",
                       MS_XDS_MAX_HTTP_ROUTES);
  }
  *total += host->n_domains * host->n_routes;
  return 0;
}

/* append_routes adds one route per route of `host` for the domain `domain`
 * (NULL: any host) to out->routes, which has room. */
static int append_routes(ms_xds_decoder *decoder, const VirtualHost *host, const char *domain,
                         ms_xds_listener *out) {
  for (size_t k = 0; k < host->n_routes; k++) {
    const Route *route = host->routes[k];
    const char *prefix = route->match->prefix;
    bool any_path = prefix[0] == '\0' || strcmp(prefix, "/") == 0;
    ms_xds_http_route *item = &out->routes[out->route_count++];
    if (ms_xds_strdup(decoder, domain, false, &item->host) != 0 ||
        ms_xds_strdup(decoder, any_path ? NULL : prefix, false, &item->path_prefix) != 0 ||
        ms_xds_strdup(decoder, route->route->cluster, false, &item->cluster) != 0) {
      return -1;
    }
  }
  return 0;
}

/* route_configuration checks every virtual host, then makes the routes:
 * those of the exact domains first, in order, then those of "*". */
static int route_configuration(ms_xds_decoder *decoder, const RouteConfiguration *config,
                               ms_xds_listener *out) {
  if (ms_xds_refuse_unknown_fields(decoder, &config->base, route_config_refused,
                                   COUNT(route_config_refused)) != 0) {
    return -1;
  }
  size_t domain_count = 0;
  for (size_t i = 0; i < config->n_virtual_hosts; i++)
    domain_count += config->virtual_hosts[i]->n_domains;
  ms_name_index seen = {0};
  char **lowered = calloc(domain_count + 1, sizeof(char *));
  size_t lowered_count = 0, total = 0;
  int rc = lowered != NULL && ms_name_index_init(&seen, domain_count) == 0
               ? 0
               : ms_xds_out_of_memory(decoder);
  size_t top = ms_xds_push(decoder, "virtual_hosts");
  for (size_t i = 0; rc == 0 && i < config->n_virtual_hosts; i++) {
    size_t saved = ms_xds_push_index(decoder, i);
    rc = check_virtual_host(decoder, config->virtual_hosts[i], i, &seen, lowered, &lowered_count,
                            &total);
    ms_xds_pop(decoder, saved);
  }
  ms_xds_pop(decoder, top);
  ms_name_index_cleanup(&seen);
  ms_xds_strings_free(lowered, lowered_count);
  if (rc != 0) return -1;
  if (total == 0) {
    return ms_xds_fail_field(decoder, "virtual_hosts",
                             "no route: at least one virtual host with a domain and a route is "
                             "required");
  }
  out->routes = calloc(total, sizeof(ms_xds_http_route));
  if (out->routes == NULL) return ms_xds_out_of_memory(decoder);
  for (int any_host = 0; rc == 0 && any_host < 2; any_host++) {
    for (size_t i = 0; rc == 0 && i < config->n_virtual_hosts; i++) {
      const VirtualHost *host = config->virtual_hosts[i];
      for (size_t j = 0; rc == 0 && j < host->n_domains; j++) {
        bool star = strcmp(host->domains[j], "*") == 0;
        if (star == (any_host == 1)) {
          rc = append_routes(decoder, host, star ? NULL : host->domains[j], out);
        }
      }
    }
  }
  return rc;
}

/* default_cluster: the cluster of the first route that matches everything;
 * without one, requests that no route matches are answered 404 (as Envoy
 * does), and the listener's cluster (required by the configuration) is the
 * first route's. */
static int default_cluster(ms_xds_decoder *decoder, ms_xds_listener *out) {
  const ms_xds_http_route *chosen = NULL;
  for (size_t i = 0; i < out->route_count; i++) {
    if (out->routes[i].host == NULL && out->routes[i].path_prefix == NULL) {
      chosen = &out->routes[i];
      break;
    }
  }
  out->no_route_404 = chosen == NULL;
  if (chosen == NULL) chosen = &out->routes[0];
  return ms_xds_strdup(decoder, chosen->cluster, false, &out->cluster);
}

/* ---- the connection manager --------------------------------------------------- */

static int manager(ms_xds_decoder *decoder, const HttpConnectionManager *hcm,
                   ms_xds_listener *out) {
  if (ms_xds_refuse_unknown_fields(decoder, &hcm->base, manager_refused, COUNT(manager_refused)) !=
      0) {
    return -1;
  }
  switch (hcm->codec_type) {
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__AUTO:
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP1:
      break;
    default:
      return ms_xds_fail_field(decoder, "codec_type",
                               "only AUTO and HTTP1 are supported: this sidecar's HTTP listeners "
                               "speak HTTP/1.1");
  }
  if (hcm->route_specifier_case !=
      ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG) {
    return ms_xds_fail_field(decoder, "route_config", "required: the routes, inline");
  }
  if (http_filters(decoder, hcm->http_filters, hcm->n_http_filters) != 0) return -1;
  size_t saved = ms_xds_push(decoder, "stream_idle_timeout");
  int rc = ms_xds_duration_ms(decoder, hcm->stream_idle_timeout, DEFAULT_STREAM_IDLE_TIMEOUT_MS,
                              false, &out->request_timeout_ms);
  ms_xds_pop(decoder, saved);
  if (rc != 0) return -1;
  saved = ms_xds_push(decoder, "route_config");
  rc = route_configuration(decoder, hcm->route_config, out);
  ms_xds_pop(decoder, saved);
  if (rc != 0) return -1;
  out->protocol = MS_XDS_LISTENER_HTTP;
  return default_cluster(decoder, out);
}

int ms_xds_http_connection_manager_decode(ms_xds_decoder *decoder, const uint8_t *bytes, size_t len,
                                          ms_xds_listener *out) {
  HttpConnectionManager *hcm = ms_xds_unpack(
      decoder,
      &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor,
      bytes, len);
  if (hcm == NULL) return -1;
  int rc = manager(decoder, hcm, out);
  envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__free_unpacked(
      hcm, NULL);
  return rc;
}
