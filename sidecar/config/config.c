/* config.c: the sidecar's configuration: its key tables and defaults, the
 * checks across keys, loading and lifetime. Walking JSON against the tables
 * is config_schema.c's job; a cluster's "tls" keys live in config_tls.c, the
 * HTTP keys of listeners and clusters in config_http.c and "host:port"
 * parsing in config_address.c. */
#include "sidecar/config/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/mem.h>

#include "sidecar/config/config_schema.h"
#include "sidecar/config/config_http.h"
#include "sidecar/config/config_identity.h"
#include "sidecar/config/config_tls.h"
#include "sidecar/config/config_xds.h"
#include "common/name_index.h"

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* ---- names ---------------------------------------------------------------- */

static const char *const lb_policy_names[] = {"round_robin", "least_connections", "random"};

const char *ms_lb_policy_name(ms_lb_policy policy) {
  if ((size_t)policy >= COUNT(lb_policy_names)) return "unknown";
  return lb_policy_names[policy];
}

/* ---- addresses ------------------------------------------------------------ */

static bool same_address(const ms_address *a, const ms_address *b) {
  return a->host_is_ip && b->host_is_ip && a->sockaddr_len == b->sockaddr_len &&
         memcmp(&a->sockaddr, &b->sockaddr, a->sockaddr_len) == 0;
}

/* read_address parses a "host:port" string into *field (replacing what was
 * there); with ip_only, host names are refused. */
static void read_address(ms_schema *schema, const cJSON *value, bool ip_only, ms_address *field) {
  const char *text;
  if (!ms_schema_read_string(schema, value, &text)) return;
  ms_address address;
  char err[MS_ERR_LEN];
  if (ms_address_parse(text, &address, err, sizeof(err)) != 0) {
    ms_schema_error(schema, "%s", err);
    return;
  }
  if (ip_only && !address.host_is_ip) {
    ms_schema_error(schema,
                    "\"%s\": must be an IP address and port, like \"127.0.0.1:15001\"; "
                    "host names are not resolved for listening",
                    text);
    ms_address_cleanup(&address);
    return;
  }
  ms_address_cleanup(field);
  *field = address;
}

static void parse_listen_address(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                                 void *field) {
  read_address(schema, value, true, field);
}

void ms_config_parse_upstream_address(ms_schema *schema, const cJSON *value,
                                      const ms_schema_key *key, void *field) {
  read_address(schema, value, false, field);
}

/* ---- key tables ----------------------------------------------------------- */

static void parse_lb_policy(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                            void *field) {
  const char *text;
  if (!ms_schema_read_string(schema, value, &text)) return;
  for (size_t i = 0; i < COUNT(lb_policy_names); i++) {
    if (strcmp(text, lb_policy_names[i]) == 0) {
      *(ms_lb_policy *)field = (ms_lb_policy)i;
      return;
    }
  }
  char problem[160];
  snprintf(problem, sizeof(problem), "unknown policy \"%.100s\"", text);
  ms_schema_error_unknown(schema, problem, text, lb_policy_names, COUNT(lb_policy_names));
}

static void parse_listener_protocol(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                                    void *field) {
  const char *text;
  if (!ms_schema_read_string(schema, value, &text)) return;
  if (strcmp(text, "tcp") == 0) {
    *(ms_listener_protocol *)field = MS_PROTOCOL_TCP;
  } else if (strcmp(text, "http") == 0) {
    *(ms_listener_protocol *)field = MS_PROTOCOL_HTTP;
  } else {
    ms_schema_error(schema, "unknown protocol \"%s\"; use \"tcp\" or \"http\"", text);
  }
}

#define KEY(name, parse, offset) \
  { name, parse, offset, 0, 0, NULL }
#define UINT32(name, offset, min, max) \
  { name, ms_schema_parse_uint32, offset, min, max, NULL }
#define REQUIRED(name, parse, offset, hint) \
  { name, parse, offset, 0, 0, hint }

static const ms_schema_key admin_keys[] = {
    KEY("address", parse_listen_address, 0), /* the target is the ms_address itself */
};

static void parse_admin(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                        void *field) {
  ms_schema_object(schema, value, admin_keys, COUNT(admin_keys), field);
}

static const ms_schema_key outlier_keys[] = {
    UINT32("consecutive_failures", offsetof(ms_outlier_config, consecutive_failures), 0,
           UINT32_MAX),
    UINT32("base_ejection_ms", offsetof(ms_outlier_config, base_ejection_ms), 1, UINT32_MAX),
    UINT32("max_ejection_ms", offsetof(ms_outlier_config, max_ejection_ms), 1, UINT32_MAX),
};

static void parse_outlier(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                          void *field) {
  ms_outlier_config *outlier = field;
  ms_schema_object(schema, value, outlier_keys, COUNT(outlier_keys), outlier);
  if (outlier->max_ejection_ms < outlier->base_ejection_ms) {
    ms_schema_error_at(schema, "max_ejection_ms", "must be at least base_ejection_ms (%u), got %u",
                       outlier->base_ejection_ms, outlier->max_ejection_ms);
  }
}

static const ms_schema_key endpoint_keys[] = {
    REQUIRED("address", ms_config_parse_upstream_address, offsetof(ms_endpoint_config, address),
             "write \"host:port\", like \"orders.shop:8443\""),
    UINT32("weight", offsetof(ms_endpoint_config, weight), 1, 1000),
};

static void endpoint_init(void *element) {
  ms_endpoint_config *endpoint = element;
  endpoint->weight = 1;
}

static void parse_endpoint(ms_schema *schema, const cJSON *value, void *element) {
  ms_endpoint_config *endpoint = element;
  if (cJSON_IsString(value)) {
    read_address(schema, value, false, &endpoint->address);
  } else if (cJSON_IsObject(value)) {
    ms_schema_object(schema, value, endpoint_keys, COUNT(endpoint_keys), endpoint);
  } else {
    ms_schema_error(schema,
                    "expected \"host:port\" or {\"address\": \"host:port\", \"weight\": 1}, got %s",
                    ms_schema_type_name(value));
  }
}

static void parse_endpoints(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                            void *field) {
  ms_cluster_config *cluster = field;
  if (cJSON_IsArray(value) && cJSON_GetArraySize(value) == 0) {
    ms_schema_error(schema, "must list at least one endpoint, like [\"orders.shop:8443\"]");
    return;
  }
  void *endpoints = NULL;
  size_t count = 0;
  ms_schema_array(schema, value, sizeof(ms_endpoint_config), endpoint_init, parse_endpoint,
                  &endpoints, &count);
  cluster->endpoints = endpoints;
  cluster->endpoint_count = count;
}

#define CLUSTER_FIELD(member) offsetof(ms_cluster_config, member)

static const ms_schema_key cluster_keys[] = {
    REQUIRED("name", ms_schema_parse_string, CLUSTER_FIELD(name),
             "name the cluster so that listeners can refer to it"),
    REQUIRED("endpoints", parse_endpoints, 0,
             "list the upstream addresses, like [\"orders.shop:8443\"]"),
    KEY("lb_policy", parse_lb_policy, CLUSTER_FIELD(lb_policy)),
    UINT32("connect_timeout_ms", CLUSTER_FIELD(connect_timeout_ms), 1, UINT32_MAX),
    UINT32("handshake_timeout_ms", CLUSTER_FIELD(handshake_timeout_ms), 1, UINT32_MAX),
    UINT32("max_connect_attempts", CLUSTER_FIELD(max_connect_attempts), 1, 100),
    UINT32("dns_refresh_ms", CLUSTER_FIELD(dns_refresh_ms), 1, UINT32_MAX),
    KEY("outlier_detection", parse_outlier, CLUSTER_FIELD(outlier_detection)),
    REQUIRED("tls", ms_config_parse_tls, CLUSTER_FIELD(tls),
             "this sidecar originates mutual TLS; give at least {\"trusted_ca\": \"ca.crt\"}"),
    KEY("host_header", ms_config_parse_host_header, CLUSTER_FIELD(host_header)),
    KEY("http_pool", ms_config_parse_http_pool, CLUSTER_FIELD(http_pool)),
    KEY("retries", ms_config_parse_http_retries, CLUSTER_FIELD(retries)),
};

static void cluster_init(void *element) {
  ms_cluster_config *cluster = element;
  cluster->lb_policy = MS_LB_ROUND_ROBIN;
  cluster->connect_timeout_ms = 5000;
  cluster->handshake_timeout_ms = 10000;
  cluster->max_connect_attempts = 3;
  cluster->dns_refresh_ms = 30000;
  cluster->outlier_detection.consecutive_failures = 3;
  cluster->outlier_detection.base_ejection_ms = 5000;
  cluster->outlier_detection.max_ejection_ms = 300000;
  ms_config_tls_init(&cluster->tls);
  ms_config_http_cluster_init(cluster);
}

static void parse_cluster(ms_schema *schema, const cJSON *value, void *element) {
  ms_schema_object(schema, value, cluster_keys, COUNT(cluster_keys), element);
}

static void parse_clusters(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                           void *field) {
  ms_config *config = field;
  void *clusters = NULL;
  size_t count = 0;
  ms_schema_array(schema, value, sizeof(ms_cluster_config), cluster_init, parse_cluster, &clusters,
                  &count);
  config->clusters = clusters;
  config->cluster_count = count;
}

#define LISTENER_FIELD(member) offsetof(ms_listener_config, member)

static const ms_schema_key listener_keys[] = {
    REQUIRED("name", ms_schema_parse_string, LISTENER_FIELD(name),
             "name the listener for stats and logs"),
    REQUIRED("address", parse_listen_address, LISTENER_FIELD(address),
             "give the IP address and port to accept on, like \"127.0.0.1:15001\""),
    KEY("protocol", parse_listener_protocol, LISTENER_FIELD(protocol)),
    REQUIRED("cluster", ms_schema_parse_string, LISTENER_FIELD(cluster),
             "name the cluster that receives this listener's connections"),
    UINT32("idle_timeout_ms", LISTENER_FIELD(idle_timeout_ms), 0, UINT32_MAX),
    UINT32("max_connections", LISTENER_FIELD(max_connections), 1, 1000000),
    KEY("http", ms_config_parse_http_listener, LISTENER_FIELD(http)),
};

static void listener_init(void *element) {
  ms_listener_config *listener = element;
  listener->protocol = MS_PROTOCOL_TCP;
  listener->idle_timeout_ms = 3600000;
  listener->max_connections = MS_DEFAULT_MAX_CONNECTIONS;
  ms_config_http_listener_init(&listener->http);
}

static bool has_value(const cJSON *object, const char *name) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
  return item != NULL && !cJSON_IsNull(item);
}

static void parse_listener(ms_schema *schema, const cJSON *value, void *element) {
  ms_schema_object(schema, value, listener_keys, COUNT(listener_keys), element);
  if (!cJSON_IsObject(value) || !has_value(value, "http")) return;
  /* Read from the JSON, so that a misspelt protocol is reported once, for
   * itself, rather than again here. */
  const cJSON *protocol = cJSON_GetObjectItemCaseSensitive(value, "protocol");
  if (!has_value(value, "protocol") ||
      (cJSON_IsString(protocol) && strcmp(protocol->valuestring, "tcp") == 0)) {
    ms_schema_error_at(schema, "http",
                       "only allowed with \"protocol\": \"http\"; this listener relays TCP; set "
                       "protocol to \"http\" or remove \"http\"");
  }
}

static void parse_listeners(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                            void *field) {
  ms_config *config = field;
  void *listeners = NULL;
  size_t count = 0;
  ms_schema_array(schema, value, sizeof(ms_listener_config), listener_init, parse_listener,
                  &listeners, &count);
  config->listeners = listeners;
  config->listener_count = count;
}

#define CERTIFICATES_FIELD(member) offsetof(ms_certificates_config, member)

static const ms_schema_key certificates_keys[] = {
    UINT32("warn_lifetime_percent", CERTIFICATES_FIELD(warn_lifetime_percent), 1, 100),
    UINT32("expired_log_interval_ms", CERTIFICATES_FIELD(expired_log_interval_ms), 1000,
           UINT32_MAX),
    KEY("ready_fails_on_expired", ms_schema_parse_bool, CERTIFICATES_FIELD(ready_fails_on_expired)),
};

static void parse_certificates(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                               void *field) {
  ms_schema_object(schema, value, certificates_keys, COUNT(certificates_keys), field);
}

static const ms_schema_key config_keys[] = {
    KEY("admin", parse_admin, offsetof(ms_config, admin_address)),
    UINT32("workers", offsetof(ms_config, workers), 0, 1024),
    UINT32("drain_timeout_ms", offsetof(ms_config, drain_timeout_ms), 0, UINT32_MAX),
    KEY("watch_certificates", ms_schema_parse_bool, offsetof(ms_config, watch_certificates)),
    KEY("listeners", parse_listeners, 0),
    KEY("clusters", parse_clusters, 0),
    KEY("xds", ms_config_parse_xds, offsetof(ms_config, xds)),
    KEY("identity", ms_config_parse_identity, offsetof(ms_config, identity)),
    KEY("certificates", parse_certificates, offsetof(ms_config, certificates)),
};

/* ---- checks across keys --------------------------------------------------- */

/* validate_clusters checks that names are unique and fills `index` (name
 * -> position) for the listeners' lookups. */
static void validate_clusters(ms_schema *schema, ms_config *config, ms_name_index *index) {
  if (ms_name_index_init(index, config->cluster_count) != 0) {
    schema->out_of_memory = true;
    return;
  }
  size_t top = ms_schema_push_key(schema, "clusters");
  for (size_t i = 0; i < config->cluster_count; i++) {
    const char *name = config->clusters[i].name;
    size_t j = name ? ms_name_index_put(index, name, i) : MS_NAME_INDEX_NONE;
    if (j != MS_NAME_INDEX_NONE) {
      size_t saved = ms_schema_push_index(schema, i);
      ms_schema_error_at(schema, "name",
                         "\"%s\" is already the name of clusters[%zu]; names must be unique", name,
                         j);
      ms_schema_pop(schema, saved);
    }
  }
  ms_schema_pop(schema, top);
}

/* resolve_cluster sets *out_index to the position of the cluster called
 * `name`, or reports "<path>.cluster: no cluster named ...". */
static void resolve_cluster(ms_schema *schema, ms_config *config, const ms_name_index *index,
                            const char *name, size_t *out_index) {
  size_t found = ms_name_index_get(index, name);
  if (found != MS_NAME_INDEX_NONE) {
    *out_index = found;
    return;
  }
  const char **names = calloc(config->cluster_count + 1, sizeof(*names));
  if (names == NULL) {
    schema->out_of_memory = true;
    return;
  }
  size_t name_count = 0;
  for (size_t i = 0; i < config->cluster_count; i++) {
    const char *candidate = config->clusters[i].name;
    if (candidate == NULL) continue;
    if (strcmp(candidate, name) == 0) {
      *out_index = i;
      free(names);
      return;
    }
    names[name_count++] = candidate;
  }
  size_t saved = ms_schema_push_key(schema, "cluster");
  if (name_count == 0) {
    ms_schema_error(schema, "no cluster named \"%s\"; define it under \"clusters\"", name);
  } else {
    char problem[200];
    snprintf(problem, sizeof(problem), "no cluster named \"%.100s\"", name);
    ms_schema_error_unknown(schema, problem, name, names, name_count);
  }
  ms_schema_pop(schema, saved);
  free(names);
}

/* resolve_routes checks that each route of an HTTP listener names a
 * cluster, with the path "<listener>.http.routes[j].cluster". */
static void resolve_routes(ms_schema *schema, ms_config *config, const ms_name_index *clusters,
                           ms_http_listener_config *http) {
  if (http->route_count == 0) return;
  size_t top = ms_schema_push_key(schema, "http");
  ms_schema_push_key(schema, "routes");
  for (size_t j = 0; j < http->route_count; j++) {
    ms_http_route *route = &http->routes[j];
    size_t saved = ms_schema_push_index(schema, j);
    if (route->cluster != NULL) {
      resolve_cluster(schema, config, clusters, route->cluster, &route->cluster_index);
    }
    ms_schema_pop(schema, saved);
  }
  ms_schema_pop(schema, top);
}

static void validate_listeners(ms_schema *schema, ms_config *config,
                               const ms_name_index *clusters) {
  size_t top = ms_schema_push_key(schema, "listeners");
  for (size_t i = 0; i < config->listener_count; i++) {
    ms_listener_config *listener = &config->listeners[i];
    size_t saved = ms_schema_push_index(schema, i);
    for (size_t j = 0; listener->name != NULL && j < i; j++) {
      if (config->listeners[j].name != NULL &&
          strcmp(listener->name, config->listeners[j].name) == 0) {
        ms_schema_error_at(schema, "name",
                           "\"%s\" is already the name of listeners[%zu]; names must be unique",
                           listener->name, j);
        break;
      }
    }
    if (same_address(&listener->address, &config->admin_address)) {
      ms_schema_error_at(schema, "address", "%s is already taken by admin.address",
                         listener->address.text);
    }
    for (size_t j = 0; j < i; j++) {
      if (same_address(&listener->address, &config->listeners[j].address)) {
        ms_schema_error_at(schema, "address", "%s is already taken by listeners[%zu]",
                           listener->address.text, j);
        break;
      }
    }
    if (listener->cluster != NULL) {
      resolve_cluster(schema, config, clusters, listener->cluster, &listener->cluster_index);
    }
    resolve_routes(schema, config, clusters, &listener->http);
    ms_schema_pop(schema, saved);
  }
  ms_schema_pop(schema, top);
}

/* Defaults that need memory, filled once parsing is done. */
static void finish_config(ms_schema *schema, ms_config *config) {
  if (config->workers == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    config->workers = cpus > 0 ? (uint32_t)cpus : 1;
  }
  for (size_t i = 0; i < config->cluster_count; i++) {
    ms_config_tls_finish(schema, &config->clusters[i].tls);
  }
  ms_config_identity_finish(schema, config);
}

/* ---- loading -------------------------------------------------------------- */

static size_t skip_space_back(const char *text, size_t at) {
  while (at > 0 && isspace((unsigned char)text[at - 1]))
    at--;
  return at;
}

/* comma_out_of_place: `at` is a ',' that follows another ',' or opens an
 * array or object: a value or member is missing there. */
static bool comma_out_of_place(const char *json, size_t at, const char **out_hint) {
  if (json[at] != ',') return false;
  size_t before = skip_space_back(json, at);
  if (before == 0) return false;
  char previous = json[before - 1];
  if (previous == ',') {
    *out_hint = "; two commas in a row: a value is missing between them";
    return true;
  }
  if (previous == '[' || previous == '{') {
    *out_hint = "; nothing comes before it";
    return true;
  }
  return false;
}

/* report_syntax_error turns cJSON's error position into "line L, column C"
 * and recognises the usual mistakes: comments, trailing and doubled commas.
 * cJSON stops on the character it could not take or just past it. */
static void report_syntax_error(ms_schema *schema, const char *json, const char *error_at) {
  size_t length = strlen(json);
  size_t text_end = skip_space_back(json, length);
  if (text_end == 0) {
    ms_schema_error(schema, "the file is empty; write a JSON object, like {\"clusters\": []}");
    return;
  }
  size_t offset = length;
  if (error_at != NULL && error_at >= json && error_at <= json + length) {
    offset = (size_t)(error_at - json);
  }
  /* Stopped at the end of a line with more text after it: the character it
   * could not take is the last one before. */
  if (offset < text_end && isspace((unsigned char)json[offset])) {
    offset = skip_space_back(json, offset);
    if (offset > 0) offset--;
  }
  const char *hint = "";
  bool unexpected_comma = false;
  size_t closer = offset;
  if (closer >= length || (json[closer] != '}' && json[closer] != ']')) {
    closer = skip_space_back(json, closer);
    closer =
        closer > 0 && (json[closer - 1] == '}' || json[closer - 1] == ']') ? closer - 1 : SIZE_MAX;
  }
  size_t comma = closer != SIZE_MAX ? skip_space_back(json, closer) : 0;
  if (comma > 0 && json[comma - 1] == ',') {
    offset = comma - 1;
    hint = "; JSON allows no comma before \"}\" or \"]\"";
  } else if (offset < length && comma_out_of_place(json, offset, &hint)) {
    unexpected_comma = true;
  } else if (offset > 0 && comma_out_of_place(json, offset - 1, &hint)) {
    offset--;
    unexpected_comma = true;
  } else if (json[offset] == '/' || (offset > 0 && json[offset - 1] == '/')) {
    hint = "; JSON allows no comments";
  }
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset; i++) {
    if (json[i] == '\n') {
      line++;
      column = 1;
    } else {
      column++;
    }
  }
  char near[32];
  size_t n = 0;
  for (size_t i = offset; i < length && json[i] != '\n' && n + 1 < sizeof(near); i++) {
    near[n++] = isprint((unsigned char)json[i]) ? json[i] : ' ';
  }
  near[n] = '\0';
  if (unexpected_comma) {
    ms_schema_error(schema, "line %zu, column %zu: invalid JSON: unexpected ','%s", line, column,
                    hint);
  } else if (offset >= text_end) {
    ms_schema_error(schema, "line %zu, column %zu: invalid JSON: the text ends too early%s", line,
                    column, hint);
  } else {
    ms_schema_error(schema, "line %zu, column %zu: invalid JSON near `%s`%s", line, column, near,
                    hint);
  }
}

static void config_release(ms_config *config) {
  if (config == NULL) return;
  free(config->path);
  free(config->directory);
  ms_address_cleanup(&config->admin_address);
  for (size_t i = 0; i < config->listener_count; i++) {
    ms_listener_config *listener = &config->listeners[i];
    free(listener->name);
    ms_address_cleanup(&listener->address);
    free(listener->cluster);
    ms_config_http_listener_cleanup(&listener->http);
  }
  free(config->listeners);
  for (size_t i = 0; i < config->cluster_count; i++) {
    ms_cluster_config *cluster = &config->clusters[i];
    free(cluster->name);
    for (size_t j = 0; j < cluster->endpoint_count; j++) {
      ms_address_cleanup(&cluster->endpoints[j].address);
    }
    free(cluster->endpoints);
    ms_config_tls_cleanup(&cluster->tls);
    free(cluster->host_header);
  }
  free(config->clusters);
  ms_config_xds_cleanup(&config->xds);
  ms_config_identity_cleanup(&config->identity);
  /* The text may hold key material given in memory (private_key_pem). */
  if (config->json) OPENSSL_cleanse(config->json, strlen(config->json));
  free(config->json);
  free(config);
}

/* config_new makes a config holding every top-level default, the text and
 * the paths. Returns NULL when memory ran out. */
static ms_config *config_new(ms_schema *schema, const char *json, const char *path) {
  ms_config *config = calloc(1, sizeof(*config));
  if (config == NULL) return NULL;
  atomic_init(&config->refs, 1);
  config->workers = 0;
  config->drain_timeout_ms = 20000;
  config->watch_certificates = true;
  config->certificates.warn_lifetime_percent = 80;
  config->certificates.expired_log_interval_ms = 3600000;
  ms_config_xds_init(&config->xds);
  ms_config_identity_init(&config->identity);
  char err[MS_ERR_LEN];
  config->json = strdup(json);
  if (config->json == NULL ||
      ms_address_parse("127.0.0.1:15000", &config->admin_address, err, sizeof(err)) != 0) {
    config_release(config);
    return NULL;
  }

  /* Not realpath(): under a Kubernetes ConfigMap the file is a symbolic link
   * into a folder that is replaced on every update. */
  char cwd[PATH_MAX] = "/";
  if ((path == NULL || path[0] != '/') && getcwd(cwd, sizeof(cwd)) == NULL) {
    ms_schema_error(schema, "cannot find the current folder to resolve relative paths: %s",
                    strerror(errno));
  }
  if (path != NULL) {
    config->path = ms_schema_path_join(cwd, path);
    config->directory = config->path != NULL ? strdup(config->path) : NULL;
    if (config->directory != NULL) {
      char *slash = strrchr(config->directory, '/');
      slash[slash == config->directory ? 1 : 0] = '\0';
    }
  } else {
    config->directory = strdup(cwd);
  }
  if (config->directory == NULL) {
    config_release(config);
    return NULL;
  }
  return config;
}

int ms_config_parse(const char *json, const char *path, ms_config **out_config,
                    ms_config_errors *errors) {
  ms_config_errors discarded = {NULL, 0};
  if (errors == NULL) errors = &discarded;
  *errors = (ms_config_errors){NULL, 0};
  ms_schema schema = {.errors = errors};

  ms_config *config = config_new(&schema, json, path);
  if (config != NULL) {
    schema.directory = config->directory;
    const char *error_at = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &error_at, true);
    if (root == NULL) {
      report_syntax_error(&schema, json, error_at);
    } else if (!cJSON_IsObject(root)) {
      ms_schema_error(&schema, "the top level must be a JSON object {...}, got %s",
                      ms_schema_type_name(root));
    } else {
      ms_schema_object(&schema, root, config_keys, COUNT(config_keys), config);
      finish_config(&schema, config);
      ms_name_index clusters = {0};
      validate_clusters(&schema, config, &clusters);
      validate_listeners(&schema, config, &clusters);
      ms_name_index_cleanup(&clusters);
    }
    cJSON_Delete(root);
  }
  if (config == NULL || schema.out_of_memory) {
    ms_schema_add_line(errors, "out of memory while loading the configuration");
  }
  if (config == NULL || schema.out_of_memory || errors->count > 0) {
    config_release(config);
    ms_config_errors_cleanup(&discarded);
    return -1;
  }
  *out_config = config;
  return 0;
}

/* read_file reads all of `path`; on failure writes why into `err`. */
static char *read_file(const char *path, char *err, size_t err_len) {
  FILE *file = fopen(path, "rb");
  if (file == NULL) {
    snprintf(err, err_len, "%s: cannot read the configuration: %s", path, strerror(errno));
    return NULL;
  }
  size_t size = 0, capacity = 4096;
  char *text = malloc(capacity);
  while (text != NULL) {
    size += fread(text + size, 1, capacity - size - 1, file);
    if (ferror(file)) {
      snprintf(err, err_len, "%s: cannot read the configuration: %s", path, strerror(errno));
      free(text);
      text = NULL;
      break;
    }
    if (feof(file)) break;
    capacity *= 2;
    char *bigger = realloc(text, capacity);
    if (bigger == NULL) free(text);
    text = bigger;
  }
  fclose(file);
  if (text == NULL) {
    if (err[0] == '\0') snprintf(err, err_len, "out of memory while reading %s", path);
    return NULL;
  }
  text[size] = '\0';
  if (strlen(text) != size) {
    snprintf(err, err_len, "%s: the file holds a NUL byte at offset %zu; it is not JSON text", path,
             strlen(text));
    free(text);
    return NULL;
  }
  return text;
}

int ms_config_load(const char *path, ms_config **out_config, ms_config_errors *errors) {
  char err[MS_ERR_LEN] = "";
  char *text = read_file(path, err, sizeof(err));
  if (text == NULL) {
    if (errors != NULL) {
      *errors = (ms_config_errors){NULL, 0};
      ms_schema_add_line(errors, err);
    }
    return -1;
  }
  int result = ms_config_parse(text, path, out_config, errors);
  free(text);
  return result;
}

ms_config *ms_config_up_ref(ms_config *config) {
  atomic_fetch_add_explicit(&config->refs, 1, memory_order_relaxed);
  return config;
}

void ms_config_free(ms_config *config) {
  if (config == NULL) return;
  if (atomic_fetch_sub_explicit(&config->refs, 1, memory_order_acq_rel) == 1) {
    config_release(config);
  }
}

int ms_config_errors_add(ms_config_errors *errors, const char *format, ...) {
  char line[1400];
  va_list args;
  va_start(args, format);
  vsnprintf(line, sizeof(line), format, args);
  va_end(args);
  return ms_schema_add_line(errors, line);
}

void ms_config_errors_cleanup(ms_config_errors *errors) {
  if (errors == NULL) return;
  for (size_t i = 0; i < errors->count; i++)
    free(errors->lines[i]);
  free(errors->lines);
  errors->lines = NULL;
  errors->count = 0;
}
