/* config_http.c: the HTTP keys of the configuration: a listener's "http"
 * object (limits, timeouts, access log, routes) and a cluster's
 * "host_header", "http_pool" and "retries". Each default is written once,
 * here; config.c puts these parsers in its key tables and checks that the
 * routes name known clusters.
 *
 *   "listeners": [{"name": "web", "address": "127.0.0.1:15080", "protocol": "http",
 *                  "cluster": "web",
 *                  "http": {"max_request_headers_bytes": 65536, "request_timeout_ms": 60000,
 *                           "request_headers_timeout_ms": 10000, "access_log": "-",
 *                           "routes": [{"host": "api.shop", "path_prefix": "/orders",
 *                                       "cluster": "orders"}]}}],
 *   "clusters": [{"name": "orders", ..., "host_header": "orders.shop.svc",
 *                 "http_pool": {"max_idle": 32}, "retries": {"max_retries": 1}}] */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/config/config_http.h"
#include "sidecar/config/config_schema.h"

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))
#define KEY(name, parse, offset) \
  { name, parse, offset, 0, 0, NULL }
#define UINT32(name, offset, min, max) \
  { name, ms_schema_parse_uint32, offset, min, max, NULL }

/* The non-static functions below are declared in config.c, their only
 * caller. */

/* ---- values --------------------------------------------------------------- */

/* check_host reports and returns false when `text` cannot be an HTTP Host:
 * spaces, control characters (which would split the header), a "/", or,
 * without allow_port, a port. An IPv6 literal is written in brackets. */
static bool check_host(ms_schema *schema, const char *text, bool allow_port) {
  for (const char *c = text; *c != '\0'; c++) {
    if (isspace((unsigned char)*c) || iscntrl((unsigned char)*c) || *c == '/') {
      ms_schema_error(schema, "\"%s\" is not a host name; write one like \"orders.shop.svc\"",
                      text);
      return false;
    }
  }
  if (allow_port) return true;
  const char *end = text[0] == '[' ? strchr(text, ']') : NULL;
  if (text[0] == '[' && (end == NULL || end[1] != '\0')) {
    ms_schema_error(schema,
                    "\"%s\": write an IPv6 address in brackets with no port, like \"[::1]\"", text);
    return false;
  }
  if (end == NULL && strchr(text, ':') != NULL) {
    ms_schema_error(schema,
                    "\"%s\": a route's host has no port; the request's port is ignored when "
                    "matching",
                    text);
    return false;
  }
  return true;
}

static void parse_route_host(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                             void *field) {
  const char *text;
  if (!ms_schema_read_string(schema, value, &text) || !check_host(schema, text, false)) return;
  ms_schema_parse_string(schema, value, key, field);
}

void ms_config_parse_host_header(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                                 void *field) {
  const char *text;
  if (!ms_schema_read_string(schema, value, &text) || !check_host(schema, text, true)) return;
  ms_schema_parse_string(schema, value, key, field);
}

static void parse_path_prefix(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                              void *field) {
  const char *text;
  if (!ms_schema_read_string(schema, value, &text)) return;
  if (text[0] != '/') {
    ms_schema_error(schema, "\"%s\" must start with \"/\", like \"/orders\"", text);
    return;
  }
  ms_schema_parse_string(schema, value, key, field);
}

/* "-" is standard output; anything else a file, relative to the config. */
static void parse_access_log(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                             void *field) {
  const char *text;
  if (!ms_schema_read_string(schema, value, &text)) return;
  if (strcmp(text, "-") == 0) {
    ms_schema_parse_string(schema, value, key, field);
  } else {
    ms_schema_parse_path(schema, value, key, field);
  }
}

/* A uint64_t; JSON numbers are exact only below 2^53, which read_integer
 * enforces (9e15). */
static void parse_uint64(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                         void *field) {
  int64_t integer;
  if (ms_schema_read_integer(schema, value, 0, INT64_MAX, &integer)) {
    *(uint64_t *)field = (uint64_t)integer;
  }
}

/* ---- a listener's "http" -------------------------------------------------- */

#define ROUTE_FIELD(member) offsetof(ms_http_route, member)

static const ms_schema_key route_keys[] = {
    KEY("host", parse_route_host, ROUTE_FIELD(host)),
    KEY("path_prefix", parse_path_prefix, ROUTE_FIELD(path_prefix)),
    {"cluster", ms_schema_parse_string, ROUTE_FIELD(cluster), 0, 0,
     "name the cluster that receives the requests this route matches"},
};

static void route_init(void *element) {
  (void)element; /* calloc's zeros are the defaults: any host, any path */
}

static void parse_route(ms_schema *schema, const cJSON *value, void *element) {
  ms_schema_object(schema, value, route_keys, COUNT(route_keys), element);
}

static void parse_routes(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                         void *field) {
  ms_http_listener_config *http = field;
  void *routes = NULL;
  size_t count = 0;
  ms_schema_array(schema, value, sizeof(ms_http_route), route_init, parse_route, &routes, &count);
  http->routes = routes;
  http->route_count = count;
}

/* "cluster" (the listener's) or "404" (Envoy's answer when no route matches). */
static void parse_no_route(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                           void *field) {
  const char *text;
  if (!ms_schema_read_string(schema, value, &text)) return;
  if (strcmp(text, "cluster") == 0)
    *(bool *)field = false;
  else if (strcmp(text, "404") == 0)
    *(bool *)field = true;
  else
    ms_schema_error(schema, "unknown value \"%s\"; use \"cluster\" or \"404\"", text);
}

#define HTTP_FIELD(member) offsetof(ms_http_listener_config, member)

static const ms_schema_key http_listener_keys[] = {
    UINT32("max_request_headers_bytes", HTTP_FIELD(max_request_headers_bytes), 1024, 1048576),
    KEY("max_request_body_bytes", parse_uint64, HTTP_FIELD(max_request_body_bytes)),
    UINT32("request_timeout_ms", HTTP_FIELD(request_timeout_ms), 0, UINT32_MAX),
    UINT32("client_idle_timeout_ms", HTTP_FIELD(client_idle_timeout_ms), 1, UINT32_MAX),
    UINT32("request_headers_timeout_ms", HTTP_FIELD(request_headers_timeout_ms), 0, UINT32_MAX),
    KEY("add_x_forwarded_for", ms_schema_parse_bool, HTTP_FIELD(add_x_forwarded_for)),
    KEY("access_log", parse_access_log, HTTP_FIELD(access_log)),
    KEY("routes", parse_routes, 0), /* fills routes and route_count */
    KEY("no_route", parse_no_route, HTTP_FIELD(no_route_404)),
};

void ms_config_http_listener_init(ms_http_listener_config *http) {
  http->max_request_headers_bytes = 65536;
  http->max_request_body_bytes = 0;
  http->request_timeout_ms = 60000;
  http->client_idle_timeout_ms = 75000;
  http->request_headers_timeout_ms = 10000;
  http->add_x_forwarded_for = true;
}

void ms_config_parse_http_listener(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                                   void *field) {
  ms_schema_object(schema, value, http_listener_keys, COUNT(http_listener_keys), field);
}

void ms_config_http_listener_cleanup(ms_http_listener_config *http) {
  for (size_t i = 0; i < http->route_count; i++) {
    free(http->routes[i].host);
    free(http->routes[i].path_prefix);
    free(http->routes[i].cluster);
  }
  free(http->routes);
  http->routes = NULL;
  http->route_count = 0;
  free(http->access_log);
  http->access_log = NULL;
}

/* ---- a cluster's "http_pool" and "retries" -------------------------------- */

static const ms_schema_key http_pool_keys[] = {
    UINT32("max_idle", offsetof(ms_http_pool_config, max_idle), 0, UINT32_MAX),
    UINT32("idle_timeout_ms", offsetof(ms_http_pool_config, idle_timeout_ms), 1, UINT32_MAX),
    UINT32("max_requests", offsetof(ms_http_pool_config, max_requests), 0, UINT32_MAX),
    UINT32("max_lifetime_ms", offsetof(ms_http_pool_config, max_lifetime_ms), 0, UINT32_MAX),
};

static const ms_schema_key http_retry_keys[] = {
    UINT32("max_retries", offsetof(ms_http_retry_config, max_retries), 0, 100),
    UINT32("budget_percent", offsetof(ms_http_retry_config, budget_percent), 0, 100),
    UINT32("min_retry_concurrency", offsetof(ms_http_retry_config, min_retry_concurrency), 0,
           UINT32_MAX),
};

void ms_config_http_cluster_init(ms_cluster_config *cluster) {
  cluster->host_header = NULL;
  cluster->http_pool.max_idle = 256;
  cluster->http_pool.idle_timeout_ms = 60000;
  cluster->http_pool.max_requests = 1000;
  cluster->http_pool.max_lifetime_ms = 3600000;
  cluster->retries.max_retries = 1;
  cluster->retries.budget_percent = 20;
  cluster->retries.min_retry_concurrency = 3;
}

void ms_config_parse_http_pool(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                               void *field) {
  ms_schema_object(schema, value, http_pool_keys, COUNT(http_pool_keys), field);
}

void ms_config_parse_http_retries(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                                  void *field) {
  ms_schema_object(schema, value, http_retry_keys, COUNT(http_retry_keys), field);
}
