/* admin_config.c: the configuration in force as /config_dump shows it.
 *
 * Written from the parsed ms_config, not from the file's text, so that it
 * says what is in force: every key, defaults filled in (null where none is
 * set and none is the default), `workers` as resolved, paths made absolute,
 * the identity's CA and TLS as taken from "xds" when it names none. The
 * keys are those of docs/configuration.md, and the result is itself a valid
 * configuration (admin_config_test.c reads it back). */
#include <openssl/ssl.h>

#include "sidecar/admin/admin_build.h"
#include "sidecar/config/config.h"

static void put_strings(cJSON *parent, const char *name, char *const *strings, size_t count,
                        bool *ok) {
  cJSON *array = put_array(parent, name, ok);
  for (size_t i = 0; array && i < count; i++)
    append(array, cJSON_CreateString(strings[i]), ok);
}

/* put_protocols writes the TLS versions in force, from the lowest to the
 * highest allowed (what "protocols" sets, or the default when the key is
 * absent). */
static void put_protocols(cJSON *parent, const ms_tls_settings *settings, bool *ok) {
  static const struct {
    uint16_t version;
    const char *name;
  } versions[] = {{TLS1_2_VERSION, "TLSv1.2"}, {TLS1_3_VERSION, "TLSv1.3"}};
  cJSON *array = put_array(parent, "protocols", ok);
  for (size_t i = 0; array && i < sizeof(versions) / sizeof(versions[0]); i++)
    if (versions[i].version >= settings->min_version &&
        versions[i].version <= settings->max_version)
      append(array, cJSON_CreateString(versions[i].name), ok);
}

static void put_tls(cJSON *parent, const char *name, const ms_cluster_tls_config *tls, bool *ok) {
  cJSON *json = put_object(parent, name, ok);
  const ms_tls_settings *settings = &tls->settings;
  put_string(json, "certificate", settings->certificate, ok);
  put_string(json, "private_key", settings->private_key, ok);
  put_string(json, "password_file", settings->password_file, ok);
  put_string(json, "trusted_ca", settings->trusted_ca, ok);
  put_bool(json, "verify", settings->verify, ok);
  put_number(json, "verify_depth", settings->verify_depth, ok);
  put_string(json, "server_name", tls->server_name, ok);
  put_bool(json, "send_sni", tls->send_sni, ok);
  put_strings(json, "match_subject_alt_names", tls->match_subject_alt_names,
              tls->match_subject_alt_name_count, ok);
  put_protocols(json, settings, ok);
  put_string(json, "ciphers", settings->ciphers, ok); /* null: BoringSSL's default */
  if (tls->curves)
    put_strings(json, "curves", tls->curves, tls->curve_count, ok);
  else
    put_string(json, "curves", NULL, ok); /* BoringSSL's default */
  put_strings(json, "alpn", tls->alpn, tls->alpn_count, ok);
  put_bool(json, "session_reuse", settings->session_reuse, ok);
  put_string(json, "crl", settings->crl, ok);
  put_string(json, "certificate_pem", settings->certificate_pem, ok);
  put_string(json, "private_key_pem", settings->private_key_pem, ok);
  put_string(json, "password", settings->password, ok);
  put_string(json, "trusted_ca_pem", settings->trusted_ca_pem, ok);
  put_string(json, "crl_pem", settings->crl_pem, ok);
  put_string(json, "certificate_secret", tls->certificate_secret, ok);
  put_string(json, "validation_secret", tls->validation_secret, ok);
}

static void put_http_listener(cJSON *parent, const ms_http_listener_config *http, bool *ok) {
  cJSON *json = put_object(parent, "http", ok);
  put_number(json, "max_request_headers_bytes", http->max_request_headers_bytes, ok);
  put_number(json, "max_request_body_bytes", (double)http->max_request_body_bytes, ok);
  put_number(json, "request_timeout_ms", http->request_timeout_ms, ok);
  put_number(json, "client_idle_timeout_ms", http->client_idle_timeout_ms, ok);
  put_number(json, "request_headers_timeout_ms", http->request_headers_timeout_ms, ok);
  put_bool(json, "add_x_forwarded_for", http->add_x_forwarded_for, ok);
  put_string(json, "access_log", http->access_log, ok);
  cJSON *routes = put_array(json, "routes", ok);
  for (size_t i = 0; routes && i < http->route_count; i++) {
    cJSON *route = append(routes, cJSON_CreateObject(), ok);
    put_string(route, "host", http->routes[i].host, ok);
    put_string(route, "path_prefix", http->routes[i].path_prefix, ok);
    put_string(route, "cluster", http->routes[i].cluster, ok);
  }
  put_string(json, "no_route", http->no_route_404 ? "404" : "cluster", ok);
}

static void put_listener(cJSON *array, const ms_listener_config *listener, bool *ok) {
  cJSON *json = append(array, cJSON_CreateObject(), ok);
  put_string(json, "name", listener->name, ok);
  put_string(json, "address", listener->address.text, ok);
  bool http = listener->protocol == MS_PROTOCOL_HTTP;
  put_string(json, "protocol", http ? "http" : "tcp", ok);
  put_string(json, "cluster", listener->cluster, ok);
  put_number(json, "idle_timeout_ms", listener->idle_timeout_ms, ok);
  put_number(json, "max_connections", listener->max_connections, ok);
  if (http)
    put_http_listener(json, &listener->http, ok);
  else
    put_string(json, "http", NULL, ok); /* only with "protocol": "http" */
}

static void put_cluster(cJSON *array, const ms_cluster_config *cluster, bool *ok) {
  cJSON *json = append(array, cJSON_CreateObject(), ok);
  put_string(json, "name", cluster->name, ok);
  cJSON *endpoints = put_array(json, "endpoints", ok);
  for (size_t i = 0; endpoints && i < cluster->endpoint_count; i++) {
    cJSON *endpoint = append(endpoints, cJSON_CreateObject(), ok);
    put_string(endpoint, "address", cluster->endpoints[i].address.text, ok);
    put_number(endpoint, "weight", cluster->endpoints[i].weight, ok);
  }
  put_string(json, "lb_policy", ms_lb_policy_name(cluster->lb_policy), ok);
  put_number(json, "connect_timeout_ms", cluster->connect_timeout_ms, ok);
  put_number(json, "handshake_timeout_ms", cluster->handshake_timeout_ms, ok);
  put_number(json, "max_connect_attempts", cluster->max_connect_attempts, ok);
  put_number(json, "dns_refresh_ms", cluster->dns_refresh_ms, ok);
  cJSON *outlier = put_object(json, "outlier_detection", ok);
  put_number(outlier, "consecutive_failures", cluster->outlier_detection.consecutive_failures, ok);
  put_number(outlier, "base_ejection_ms", cluster->outlier_detection.base_ejection_ms, ok);
  put_number(outlier, "max_ejection_ms", cluster->outlier_detection.max_ejection_ms, ok);
  put_tls(json, "tls", &cluster->tls, ok);
  put_string(json, "host_header", cluster->host_header, ok);
  cJSON *pool = put_object(json, "http_pool", ok);
  put_number(pool, "max_idle", cluster->http_pool.max_idle, ok);
  put_number(pool, "idle_timeout_ms", cluster->http_pool.idle_timeout_ms, ok);
  put_number(pool, "max_requests", cluster->http_pool.max_requests, ok);
  put_number(pool, "max_lifetime_ms", cluster->http_pool.max_lifetime_ms, ok);
  cJSON *retries = put_object(json, "retries", ok);
  put_number(retries, "max_retries", cluster->retries.max_retries, ok);
  put_number(retries, "budget_percent", cluster->retries.budget_percent, ok);
  put_number(retries, "min_retry_concurrency", cluster->retries.min_retry_concurrency, ok);
}

static void put_xds(cJSON *parent, const ms_xds_bootstrap *xds, bool *ok) {
  if (!xds->enabled) {
    put_string(parent, "xds", NULL, ok);
    return;
  }
  cJSON *json = put_object(parent, "xds", ok);
  put_string(json, "address", xds->address.text, ok);
  put_tls(json, "tls", &xds->tls, ok);
  cJSON *node = put_object(json, "node", ok);
  put_string(node, "id", xds->node_id, ok);
  put_string(node, "cluster", xds->node_cluster, ok);
  cJSON *metadata = put_object(node, "metadata", ok);
  for (size_t i = 0; metadata && i < xds->metadata_count; i++)
    put_string(metadata, xds->metadata_keys[i], xds->metadata_values[i], ok);
  put_number(json, "initial_fetch_timeout_ms", xds->initial_fetch_timeout_ms, ok);
  put_string(json, "backup_path", xds->backup_path, ok);
}

static void put_identity(cJSON *parent, const ms_config *config, bool *ok) {
  const ms_identity_config *identity = &config->identity;
  if (!identity->enabled) {
    put_string(parent, "identity", NULL, ok);
    return;
  }
  cJSON *json = put_object(parent, "identity", ok);
  const ms_address *ca = ms_identity_ca_address(config);
  put_string(json, "ca_address", ca ? ca->text : NULL, ok);
  put_tls(json, "tls", ms_identity_tls(config), ok);
  put_string(json, "token_file", identity->token_file, ok);
  put_string(json, "spiffe_id", identity->spiffe_id, ok);
  put_string(json, "trust_domain", identity->trust_domain, ok);
  put_number(json, "requested_ttl_seconds", identity->requested_ttl_seconds, ok);
  put_string(json, "trust_bundle_file", identity->trust_bundle_file, ok);
  put_string(json, "certificate_secret", identity->certificate_secret, ok);
  put_string(json, "trust_bundle_secret", identity->trust_bundle_secret, ok);
}

cJSON *ms_admin_config_json(const ms_config *config) {
  bool ok = true;
  cJSON *json = cJSON_CreateObject();
  if (!json) return NULL;
  put_string(put_object(json, "admin", &ok), "address", config->admin_address.text, &ok);
  put_number(json, "workers", config->workers, &ok);
  put_number(json, "drain_timeout_ms", config->drain_timeout_ms, &ok);
  put_bool(json, "watch_certificates", config->watch_certificates, &ok);
  cJSON *listeners = put_array(json, "listeners", &ok);
  for (size_t i = 0; listeners && i < config->listener_count; i++)
    put_listener(listeners, &config->listeners[i], &ok);
  cJSON *clusters = put_array(json, "clusters", &ok);
  for (size_t i = 0; clusters && i < config->cluster_count; i++)
    put_cluster(clusters, &config->clusters[i], &ok);
  put_xds(json, &config->xds, &ok);
  put_identity(json, config, &ok);
  cJSON *certificates = put_object(json, "certificates", &ok);
  put_number(certificates, "warn_lifetime_percent", config->certificates.warn_lifetime_percent,
             &ok);
  put_number(certificates, "expired_log_interval_ms", config->certificates.expired_log_interval_ms,
             &ok);
  put_bool(certificates, "ready_fails_on_expired", config->certificates.ready_fails_on_expired,
           &ok);
  if (!ok) {
    cJSON_Delete(json);
    return NULL;
  }
  return json;
}
