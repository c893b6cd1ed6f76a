/* xds_render.c: the configuration the control plane's resources make with
 * the static file (ms_xds_state_render), as the sidecar's own JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/ssl.h>

#include "common/name_index.h"
#include "sidecar/config/config.h"
#include "sidecar/xds/xds_secrets.h"
#include "sidecar/xds/xds_state_internal.h"

/* ---- rendering ---------------------------------------------------------- */

static void add_string(cJSON *object, const char *key, const char *value) {
  if (value) cJSON_AddStringToObject(object, key, value);
}

static void add_strings(cJSON *object, const char *key, char *const *values, size_t count) {
  if (count == 0) return;
  cJSON *array = cJSON_AddArrayToObject(object, key);
  for (size_t i = 0; array && i < count; i++)
    cJSON_AddItemToArray(array, cJSON_CreateString(values[i]));
}

/* A DataSource becomes "<key>_pem" (inline) or "<key>" (a file). */
static void add_data(cJSON *object, const char *key, const ms_xds_data_source *data) {
  char name[64];
  if (data->kind == MS_XDS_DATA_INLINE) {
    snprintf(name, sizeof(name), "%s_pem", key);
    cJSON_AddStringToObject(object, strcmp(key, "password") == 0 ? "password" : name, data->bytes);
  } else if (data->kind == MS_XDS_DATA_FILENAME) {
    snprintf(name, sizeof(name), "%s", strcmp(key, "password") == 0 ? "password_file" : key);
    cJSON_AddStringToObject(object, name, data->filename);
  }
}

static void add_certificate(cJSON *tls, const ms_xds_tls_certificate *certificate) {
  add_data(tls, "certificate", &certificate->certificate_chain);
  add_data(tls, "private_key", &certificate->private_key);
  add_data(tls, "password", &certificate->password);
}

/* Envoy's combined validation context: the secret's trust, with the names
 * of both. A by-name secret's trust is named (validation_secret); its bytes
 * go to the secret set. */
static void add_validation(cJSON *tls, const ms_xds_validation_context *inline_part,
                           const ms_xds_secret *secret) {
  const ms_xds_validation_context *trust = secret ? &secret->validation : inline_part;
  if (secret && ms_xds_secret_by_name(secret)) {
    if (trust->trusted_ca.kind != MS_XDS_DATA_NONE)
      cJSON_AddStringToObject(tls, "validation_secret", secret->name);
  } else {
    add_data(tls, "trusted_ca", &trust->trusted_ca);
    add_data(tls, "crl", &trust->crl);
  }
  cJSON_AddBoolToObject(tls, "verify", trust->verify);
  uint32_t depth = trust->max_verify_depth;
  if (trust->verify)
    cJSON_AddNumberToObject(tls, "verify_depth", depth < 1 ? 1 : depth > 100 ? 100 : depth);
  cJSON *names = cJSON_CreateArray();
  const ms_xds_validation_context *parts[2] = {inline_part, secret ? &secret->validation : NULL};
  for (int p = 0; names && p < 2; p++)
    for (size_t i = 0; parts[p] && i < parts[p]->match_subject_alt_name_count; i++)
      cJSON_AddItemToArray(names, cJSON_CreateString(parts[p]->match_subject_alt_names[i]));
  if (names && cJSON_GetArraySize(names) > 0 && trust->verify)
    cJSON_AddItemToObject(tls, "match_subject_alt_names", names);
  else
    cJSON_Delete(names);
}

/* The identity agent's trust bundle: named for the server's local set; the
 * names to match come from the cluster's combined validation context. */
static void add_local_validation(cJSON *tls, const ms_xds_upstream_tls *upstream) {
  cJSON_AddStringToObject(tls, "validation_secret", upstream->validation_sds_name);
  const ms_xds_validation_context *inline_part =
      upstream->validation_source == MS_XDS_TLS_SOURCE_COMBINED ? &upstream->validation : NULL;
  bool verify = inline_part ? inline_part->verify : true;
  cJSON_AddBoolToObject(tls, "verify", verify);
  uint32_t depth = inline_part ? inline_part->max_verify_depth : 100;
  if (verify)
    cJSON_AddNumberToObject(tls, "verify_depth", depth < 1 ? 1 : depth > 100 ? 100 : depth);
  if (inline_part && verify && inline_part->match_subject_alt_name_count)
    add_strings(tls, "match_subject_alt_names", inline_part->match_subject_alt_names,
                inline_part->match_subject_alt_name_count);
}

static const char *version_name(uint16_t version) {
  return version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2";
}

static cJSON *render_tls(const ms_xds_state *state, const ms_xds_upstream_tls *tls) {
  cJSON *out = cJSON_CreateObject();
  if (out == NULL) return NULL;
  if (tls->certificate_source == MS_XDS_TLS_SOURCE_INLINE) add_certificate(out, &tls->certificate);
  bool local_certificate = tls->certificate_source == MS_XDS_TLS_SOURCE_SDS &&
                           ms_xds_state_is_local(state, tls->certificate_sds_name);
  if (local_certificate)
    cJSON_AddStringToObject(out, "certificate_secret", tls->certificate_sds_name);
  if (tls->certificate_source == MS_XDS_TLS_SOURCE_SDS && !local_certificate) {
    const ms_xds_secret *secret =
        ms_xds_state_find_secret(state, tls->certificate_sds_name, MS_XDS_SECRET_TLS_CERTIFICATE);
    if (ms_xds_secret_by_name(secret))
      cJSON_AddStringToObject(out, "certificate_secret", secret->name);
    else
      add_certificate(out, &secret->certificate);
  }
  if (ms_xds_needs_validation_secret(tls) &&
      ms_xds_state_is_local(state, tls->validation_sds_name)) {
    add_local_validation(out, tls);
  } else {
    const ms_xds_secret *validation =
        ms_xds_needs_validation_secret(tls)
            ? ms_xds_state_find_secret(state, tls->validation_sds_name,
                                       MS_XDS_SECRET_VALIDATION_CONTEXT)
            : NULL;
    add_validation(out, tls->validation_source == MS_XDS_TLS_SOURCE_SDS ? NULL : &tls->validation,
                   validation);
  }
  /* Envoy sends no SNI unless told; this sidecar sends the name it
   * verifies, as for static clusters (see the README). */
  add_string(out, "server_name", tls->sni);
  cJSON *protocols = cJSON_AddArrayToObject(out, "protocols");
  for (uint16_t v = tls->min_version; protocols && v <= tls->max_version; v++)
    if (v == TLS1_2_VERSION || v == TLS1_3_VERSION)
      cJSON_AddItemToArray(protocols, cJSON_CreateString(version_name(v)));
  add_string(out, "ciphers", tls->ciphers);
  if (tls->curves) {
    cJSON *curves = cJSON_AddArrayToObject(out, "curves");
    char *copy = strdup(tls->curves), *save = NULL;
    for (char *c = copy ? strtok_r(copy, ":", &save) : NULL; c; c = strtok_r(NULL, ":", &save))
      cJSON_AddItemToArray(curves, cJSON_CreateString(c));
    free(copy);
  }
  add_strings(out, "alpn", tls->alpn, tls->alpn_count);
  cJSON_AddBoolToObject(out, "session_reuse", tls->session_reuse);
  return out;
}

/* The sidecar's balancing for an Envoy lb_policy (LEAST_REQUEST: the fewest
 * connections). */
static ms_lb_policy sidecar_lb_policy(ms_xds_lb_policy policy) {
  switch (policy) {
    case MS_XDS_LB_LEAST_REQUEST:
      return MS_LB_LEAST_CONNECTIONS;
    case MS_XDS_LB_RANDOM:
      return MS_LB_RANDOM;
    case MS_XDS_LB_ROUND_ROBIN:
    default:
      return MS_LB_ROUND_ROBIN;
  }
}

static cJSON *render_cluster(const ms_xds_state *state, const ms_xds_cluster *cluster) {
  cJSON *out = cJSON_CreateObject();
  if (out == NULL) return NULL;
  cJSON_AddStringToObject(out, "name", cluster->name);
  const ms_xds_endpoint *endpoints = cluster->endpoints;
  size_t count = cluster->endpoint_count;
  if (cluster->type == MS_XDS_DISCOVERY_EDS) {
    const ms_xds_endpoints *eds = ms_xds_state_find_endpoints(state, cluster->eds_service_name);
    endpoints = eds ? eds->endpoints : NULL;
    count = eds ? eds->endpoint_count : 0;
  }
  cJSON *list = cJSON_AddArrayToObject(out, "endpoints");
  for (size_t i = 0; list && i < count; i++) {
    cJSON *endpoint = cJSON_CreateObject();
    cJSON_AddStringToObject(endpoint, "address", endpoints[i].address.text);
    cJSON_AddNumberToObject(endpoint, "weight", endpoints[i].weight);
    cJSON_AddItemToArray(list, endpoint);
  }
  cJSON_AddStringToObject(out, "lb_policy",
                          ms_lb_policy_name(sidecar_lb_policy(cluster->lb_policy)));
  cJSON_AddNumberToObject(out, "connect_timeout_ms", cluster->connect_timeout_ms);
  cJSON_AddNumberToObject(out, "dns_refresh_ms", cluster->dns_refresh_ms);
  cJSON *outlier = cJSON_AddObjectToObject(out, "outlier_detection");
  if (outlier) {
    const ms_xds_outlier_detection *o = &cluster->outlier_detection;
    cJSON_AddNumberToObject(outlier, "consecutive_failures", o->consecutive_failures);
    if (o->base_ejection_ms)
      cJSON_AddNumberToObject(outlier, "base_ejection_ms", o->base_ejection_ms);
    if (o->max_ejection_ms >= o->base_ejection_ms && o->max_ejection_ms)
      cJSON_AddNumberToObject(outlier, "max_ejection_ms", o->max_ejection_ms);
  }
  cJSON_AddItemToObject(out, "tls", render_tls(state, &cluster->tls));
  return out;
}

/* An HTTP listener's "http": its routes and the request timeout. */
static cJSON *render_http(const ms_xds_listener *listener) {
  cJSON *http = cJSON_CreateObject();
  if (http == NULL) return NULL;
  cJSON_AddNumberToObject(http, "request_timeout_ms", listener->request_timeout_ms);
  if (listener->no_route_404) cJSON_AddStringToObject(http, "no_route", "404");
  cJSON *routes = cJSON_AddArrayToObject(http, "routes");
  for (size_t i = 0; routes && i < listener->route_count; i++) {
    const ms_xds_http_route *route = &listener->routes[i];
    cJSON *item = cJSON_CreateObject();
    if (item == NULL || !cJSON_AddItemToArray(routes, item)) {
      cJSON_Delete(item);
      routes = NULL;
      break;
    }
    add_string(item, "host", route->host);
    add_string(item, "path_prefix", route->path_prefix);
    cJSON_AddStringToObject(item, "cluster", route->cluster);
  }
  if (routes == NULL) { /* a listener missing routes would route elsewhere */
    cJSON_Delete(http);
    return NULL;
  }
  return http;
}

static cJSON *render_listener(const ms_xds_listener *listener) {
  cJSON *out = cJSON_CreateObject();
  if (out == NULL) return NULL;
  cJSON_AddStringToObject(out, "name", listener->name);
  cJSON_AddStringToObject(out, "address", listener->address.text);
  cJSON_AddStringToObject(out, "cluster", listener->cluster);
  if (listener->protocol == MS_XDS_LISTENER_HTTP) {
    cJSON_AddStringToObject(out, "protocol", "http");
    cJSON *http = render_http(listener);
    if (http == NULL) {
      cJSON_Delete(out);
      return NULL;
    }
    cJSON_AddItemToObject(out, "http", http);
  } else {
    cJSON_AddStringToObject(out, "protocol", "tcp");
    cJSON_AddNumberToObject(out, "idle_timeout_ms", listener->idle_timeout_ms);
  }
  return out;
}

static bool array_has_name(const cJSON *array, const char *name) {
  const cJSON *item;
  cJSON_ArrayForEach(item, array) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(item, "name");
    if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) return true;
  }
  return false;
}

/* clusters_live: every cluster `listener` names (an HTTP listener's routes
 * too) is in `live`. */
static bool clusters_live(const ms_name_index *live, const ms_xds_listener *listener) {
  if (ms_name_index_get(live, listener->cluster) == MS_NAME_INDEX_NONE) return false;
  for (size_t i = 0; i < listener->route_count; i++)
    if (ms_name_index_get(live, listener->routes[i].cluster) == MS_NAME_INDEX_NONE) return false;
  return true;
}

static cJSON *array_of(cJSON *root, const char *key) {
  cJSON *array = cJSON_GetObjectItemCaseSensitive(root, key);
  if (cJSON_IsArray(array)) return array;
  cJSON_DeleteItemFromObjectCaseSensitive(root, key);
  return cJSON_AddArrayToObject(root, key);
}

/* add_listeners renders each listener whose clusters are all in `clusters`
 * (the static ones and the live dynamic ones) and that `check` lets open.
 * Returns 0, or -1 with `err` written. */
static int add_listeners(const ms_xds_state *state, const cJSON *clusters, cJSON *listeners,
                         ms_xds_listener_check check, void *check_arg, char *err, size_t err_len) {
  ms_name_index live = {0};
  if (ms_name_index_init(&live, (size_t)cJSON_GetArraySize(clusters)) != 0) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  const cJSON *item;
  cJSON_ArrayForEach(item, clusters) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
    if (cJSON_IsString(name)) ms_name_index_put(&live, name->valuestring, 0);
  }
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < state->listener_count; i++) {
    const ms_xds_listener *listener = &state->listeners[i];
    if (array_has_name(listeners, listener->name)) {
      snprintf(err, err_len, "listener \"%s\": a static listener has this name", listener->name);
      rc = -1;
      break;
    }
    /* A listener waits for its clusters to go live (Envoy warms it too). */
    if (!clusters_live(&live, listener)) continue;
    if (check && !check(listener, check_arg)) continue;
    cJSON *rendered = render_listener(listener);
    if (rendered == NULL) {
      snprintf(err, err_len, "out of memory");
      rc = -1;
      break;
    }
    cJSON_AddItemToArray(listeners, rendered);
  }
  ms_name_index_cleanup(&live);
  return rc;
}

char *ms_xds_state_render(const ms_xds_state *state, const char *static_json,
                          ms_xds_listener_check check, void *check_arg, char *err, size_t err_len) {
  cJSON *root = cJSON_Parse(static_json);
  if (!cJSON_IsObject(root)) {
    snprintf(err, err_len, "the static configuration does not parse");
    cJSON_Delete(root);
    return NULL;
  }
  cJSON *clusters = array_of(root, "clusters"), *listeners = array_of(root, "listeners");
  char *text = NULL;
  if (clusters == NULL || listeners == NULL) goto out_of_memory;
  for (size_t i = 0; i < state->cluster_count; i++) {
    const held_cluster *held = &state->clusters[i];
    if (!ms_xds_state_is_live(state, held)) continue;
    if (array_has_name(clusters, held->cluster.name)) {
      snprintf(err, err_len, "cluster \"%s\": a static cluster has this name", held->cluster.name);
      cJSON_Delete(root);
      return NULL;
    }
    cJSON *rendered = render_cluster(state, &held->cluster);
    if (rendered == NULL) goto out_of_memory;
    cJSON_AddItemToArray(clusters, rendered);
  }
  if (add_listeners(state, clusters, listeners, check, check_arg, err, err_len) != 0) {
    cJSON_Delete(root);
    return NULL;
  }
  text = cJSON_Print(root);
  cJSON_Delete(root);
  if (text == NULL) snprintf(err, err_len, "out of memory");
  return text;

out_of_memory:
  snprintf(err, err_len, "out of memory");
  cJSON_Delete(root);
  return NULL;
}
