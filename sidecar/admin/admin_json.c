/* admin_json.c: the bodies of the admin endpoint, read from the server.
 *
 * Field names follow Envoy's admin API where Envoy has the same thing, so
 * that tooling written for Envoy reads them. Every body is built with cJSON
 * (the Prometheus text excepted) from one snapshot, released before
 * returning. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "common/time.h"
#include "sidecar/admin/admin_build.h"
#include "sidecar/admin/admin_json.h"
#include "sidecar/control/cert_expiry.h"
#include "sidecar/control/server.h"
#include "sidecar/event/snapshot.h"
#include "sidecar/event/stats.h"
#include "sidecar/tls/tls_context.h"

/* ---- /ready, /server_info, /quitquitquit ---------------------------------- */

/* /ready: 200 "LIVE", or 503 "NOT READY: " and the first reason. */
static int respond_ready(ms_server *server, ms_admin_response *out) {
  char why[256], body[288];
  if (ms_server_ready_reason(server, why, sizeof(why)) == 0)
    return respond_text(200, "text/plain", "LIVE\n", out);
  snprintf(body, sizeof(body), "NOT READY: %s\n", why);
  return respond_text(503, "text/plain", body, out);
}

static int respond_server_info(ms_server *server, ms_admin_response *out) {
  ms_server_info info;
  memset(&info, 0, sizeof(info));
  ms_server_get_info(server, &info);
  char uptime[32];
  snprintf(uptime, sizeof(uptime), "%" PRId64 "s", info.uptime_seconds);

  bool ok = true;
  cJSON *json = cJSON_CreateObject();
  if (!json) return -ENOMEM;
  put_string(json, "version", info.version, &ok);
  put_string(json, "state", info.state, &ok);
  put_string(json, "uptime_current_epoch", uptime, &ok);
  put_string(json, "uptime_all_epochs", uptime, &ok); /* no hot restart: one epoch */
  put_number(json, "uptime_seconds", (double)info.uptime_seconds, &ok);
  put_number(json, "workers", info.workers, &ok);
  put_bool(json, "workers_current", info.workers_current, &ok);
  cJSON *options = put_object(json, "command_line_options", &ok);
  put_string(options, "config_path", info.config_path, &ok);
  return finish_json(json, ok, out);
}

static int respond_quitquitquit(ms_server *server, ms_admin_response *out) {
  ms_snapshot *snapshot = ms_server_snapshot(server);
  uint32_t drain_ms = snapshot && snapshot->config ? snapshot->config->drain_timeout_ms : 0;
  ms_snapshot_free(snapshot);
  int rc = respond_text(200, "text/plain", "OK\n", out);
  if (rc != 0) return rc;
  out->shutdown = true;
  out->drain_ms = drain_ms;
  return 0;
}

/* ---- /clusters ------------------------------------------------------------ */

static cJSON *host_status(const ms_endpoint *endpoint, uint64_t now_ms, bool *ok) {
  cJSON *host = cJSON_CreateObject();
  if (!host) {
    *ok = false;
    return NULL;
  }
  const ms_endpoint_config *config = endpoint->config;
  cJSON *socket_address = put_object(put_object(host, "address", ok), "socket_address", ok);
  put_string(socket_address, "address", config->address.host, ok);
  put_number(socket_address, "port_value", config->address.port, ok);
  put_number(host, "weight", config->weight, ok);

  cJSON *resolved = put_array(host, "resolved_addresses", ok);
  for (size_t i = 0; i < endpoint->addr_count; i++) {
    char ip[64];
    if (uv_ip_name((const struct sockaddr *)&endpoint->addrs[i], ip, sizeof(ip)) != 0) continue;
    append(resolved, cJSON_CreateString(ip), ok);
  }

  ms_endpoint_state *state = endpoint->state;
  long long ejected_until = atomic_load(&state->ejected_until_ms);
  long long remaining = ejected_until > (long long)now_ms ? ejected_until - (long long)now_ms : 0;
  cJSON *health = put_object(host, "health_status", ok);
  put_string(health, "eds_health_status", "HEALTHY", ok);
  put_bool(health, "failed_outlier_check", remaining > 0, ok);
  put_number(health, "ejected_until_ms_remaining", (double)remaining, ok);

  cJSON *stats = put_object(host, "stats", ok);
  put_number(stats, "cx_active", (double)load(&state->active_connections), ok);
  put_number(stats, "cx_total", (double)load(&state->total_connections), ok);
  put_number(stats, "cx_connect_fail", (double)load(&state->connect_failures), ok);
  put_number(stats, "ssl_handshake_failures", (double)load(&state->handshake_failures), ok);
  put_number(stats, "consecutive_failures", atomic_load(&state->consecutive_failures), ok);
  put_number(stats, "ejections", (double)load(&state->total_ejections), ok);
  static const char *const rq_names[6] = {NULL, "rq_1xx", "rq_2xx", "rq_3xx", "rq_4xx", "rq_5xx"};
  for (int c = 1; c < 6; c++)
    put_number(stats, rq_names[c], (double)load(&state->rq_by_class[c]), ok);

  char *last_error = ms_endpoint_state_get_error(state); /* the whole line */
  put_string(host, "last_error", last_error, ok);
  free(last_error);
  return host;
}

/* put_sni says what the handshakes with endpoint `index` send in SNI: the
 * name, or null and why none. */
static void put_sni(cJSON *host, const ms_cluster *cluster, size_t index, bool *ok) {
  const char *sni = cluster->server_names[index];
  put_string(host, "sni", sni, ok);
  if (sni) return;
  put_string(host, "sni_absent_reason",
             !cluster->config->tls.send_sni
                 ? "send_sni is false"
                 : "the endpoint is an IP address and no server_name is set; TLS allows no IP "
                   "address in SNI",
             ok);
}

static cJSON *cluster_status(const ms_cluster *cluster, uint64_t now_ms, uint32_t warn_percent,
                             bool *ok) {
  cJSON *json = cJSON_CreateObject();
  if (!json) {
    *ok = false;
    return NULL;
  }
  const ms_cluster_config *config = cluster->config;
  put_string(json, "name", config->name, ok);
  put_bool(json, "added_via_api", false, ok);
  put_string(json, "lb_policy", ms_lb_policy_name(config->lb_policy), ok);

  cJSON *tls = put_object(json, "tls", ok);
  if (cluster->tls) {
    put_number(tls, "generation", (double)cluster->tls->generation, ok);
  } else {
    put_string(tls, "generation", NULL, ok);
  }
  put_string(tls, "server_name", config->tls.server_name, ok);
  /* The setting; each host's "sni" says what is sent. */
  put_bool(tls, "send_sni", config->tls.send_sni, ok);
  put_string(tls, "error", cluster->tls_error, ok);
  /* The client certificate presented, and how near its end is. */
  if (cluster->tls && cluster->tls->leaf.serial_hex[0]) {
    const ms_cert_info *leaf = &cluster->tls->leaf;
    char expiration[32];
    ms_time_rfc3339(leaf->not_after, expiration, sizeof(expiration));
    cJSON *certificate = put_object(tls, "certificate", ok);
    put_string(certificate, "serial_number", leaf->serial_hex, ok);
    put_string(certificate, "expiration_time", expiration, ok);
    if (ms_cert_expiry_add_json(certificate, "state", leaf, time(NULL), warn_percent) != 0)
      *ok = false;
  } else {
    put_string(tls, "certificate", NULL, ok);
  }

  cJSON *hosts = put_array(json, "host_statuses", ok);
  for (size_t i = 0; i < cluster->endpoint_count; i++) {
    put_sni(append(hosts, host_status(&cluster->endpoints[i], now_ms, ok), ok), cluster, i, ok);
  }
  return json;
}

static int respond_clusters(ms_server *server, uint64_t now_ms, ms_admin_response *out) {
  ms_snapshot *snapshot = ms_server_snapshot(server);
  bool ok = true;
  cJSON *json = cJSON_CreateObject();
  cJSON *statuses = put_array(json, "cluster_statuses", &ok);
  for (size_t i = 0; snapshot && i < snapshot->cluster_count; i++) {
    append(statuses,
           cluster_status(&snapshot->clusters[i], now_ms,
                          snapshot->config->certificates.warn_lifetime_percent, &ok),
           &ok);
  }
  ms_snapshot_free(snapshot);
  return finish_json(json, ok, out);
}

/* ---- /certs --------------------------------------------------------------- */

/* add_subject_alt_names turns "DNS:x", "URI:x", "IP:x" into Envoy's
 * {"dns": x}, {"uri": x}, {"ip_address": x}. */
static void add_subject_alt_names(cJSON *detail, const ms_cert_info *info, bool *ok) {
  static const struct {
    const char *prefix;
    const char *field;
  } kinds[] = {{"DNS:", "dns"}, {"URI:", "uri"}, {"IP:", "ip_address"}, {"EMAIL:", "email"}};
  cJSON *sans = put_array(detail, "subject_alt_names", ok);
  for (size_t i = 0; i < info->san_count; i++) {
    const char *san = info->sans[i];
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
      size_t prefix_len = strlen(kinds[k].prefix);
      if (strncmp(san, kinds[k].prefix, prefix_len) != 0) continue;
      cJSON *entry = append(sans, cJSON_CreateObject(), ok);
      put_string(entry, kinds[k].field, san + prefix_len, ok);
      break;
    }
  }
}

static cJSON *cert_detail(const char *path, const ms_cert_info *info, int64_t now,
                          uint32_t warn_percent, bool *ok) {
  cJSON *detail = cJSON_CreateObject();
  if (!detail) {
    *ok = false;
    return NULL;
  }
  char valid_from[32], expiration[32];
  ms_time_rfc3339(info->not_before, valid_from, sizeof(valid_from));
  ms_time_rfc3339(info->not_after, expiration, sizeof(expiration));

  put_string(detail, "path", path, ok);
  put_string(detail, "subject", info->subject, ok);
  put_string(detail, "issuer", info->issuer, ok);
  put_string(detail, "serial_number", info->serial_hex, ok);
  put_string(detail, "sha256_fingerprint", info->sha256_hex, ok);
  add_subject_alt_names(detail, info, ok);
  if (ms_cert_expiry_add_json(detail, "state", info, now, warn_percent) != 0) *ok = false;
  put_string(detail, "valid_from", valid_from, ok);
  put_string(detail, "expiration_time", expiration, ok);
  put_bool(detail, "is_ca", info->is_ca, ok);
  return detail;
}

typedef struct certs_visit {
  const ms_snapshot *snapshot; /* the clusters using a context are looked up here */
  cJSON *certificates;
  int64_t now;
  uint32_t warn_percent;
  bool ok;
} certs_visit;

/* visit_context describes one live context. Runs under the registry's lock:
 * it only reads the context. */
static void visit_context(ms_tls_context *context, void *arg) {
  certs_visit *visit = arg;
  bool *ok = &visit->ok;
  cJSON *entry = append(visit->certificates, cJSON_CreateObject(), ok);
  if (!entry) return;

  cJSON *clusters = put_array(entry, "cluster", ok);
  bool current = false;
  for (size_t i = 0; visit->snapshot && i < visit->snapshot->cluster_count; i++) {
    const ms_cluster *cluster = &visit->snapshot->clusters[i];
    if (cluster->tls != context) continue;
    current = true;
    append(clusters, cJSON_CreateString(cluster->config->name), ok);
  }
  char built_at[32];
  ms_time_rfc3339(context->built_at, built_at, sizeof(built_at));
  put_number(entry, "generation", (double)context->generation, ok);
  put_bool(entry, "current", current, ok);
  put_string(entry, "built_at", built_at, ok);
  put_number(entry, "active_connections", (double)load(&context->active_connections), ok);

  cJSON *cas = put_array(entry, "ca_cert", ok);
  for (size_t i = 0; i < context->ca_count; i++) {
    append(cas,
           cert_detail(context->trusted_ca_path, &context->cas[i], visit->now, visit->warn_percent,
                       ok),
           ok);
  }
  cJSON *chain = put_array(entry, "cert_chain", ok);
  if (context->certificate_path || context->leaf.serial_hex[0]) { /* a file, or SDS bytes */
    append(
        chain,
        cert_detail(context->certificate_path, &context->leaf, visit->now, visit->warn_percent, ok),
        ok);
  }
}

static void visit_xds_client(const ms_cert_use *use, void *arg) {
  certs_visit *visit = arg;
  if (use->source != MS_CERT_SOURCE_XDS_CLIENT) return;
  append(visit->certificates,
         cert_detail(use->name, use->info, visit->now, visit->warn_percent, &visit->ok),
         &visit->ok);
}

static int respond_certs(ms_server *server, ms_admin_response *out) {
  certs_visit visit = {.snapshot = ms_server_snapshot(server), .now = time(NULL), .ok = true};
  if (visit.snapshot)
    visit.warn_percent = visit.snapshot->config->certificates.warn_lifetime_percent;
  cJSON *json = cJSON_CreateObject();
  visit.certificates = put_array(json, "certificates", &visit.ok);
  if (visit.certificates) ms_tls_context_registry_visit(visit_context, &visit);
  /* The control plane's and the CA's client credentials. */
  visit.certificates = put_array(json, "xds_client", &visit.ok);
  if (visit.certificates && ms_cert_uses_visit(server, visit_xds_client, &visit) != 0)
    visit.ok = false;
  ms_snapshot_free((ms_snapshot *)visit.snapshot);
  char *identity = ms_server_identity_json(server); /* the identity agent's, never its key */
  if (identity) {
    cJSON *local = cJSON_Parse(identity);
    free(identity);
    if (local)
      cJSON_AddItemToObject(json, "local_identity", local);
    else
      visit.ok = false;
  }
  return finish_json(json, visit.ok, out);
}

/* ---- /config_dump --------------------------------------------------------- */

static int respond_config_dump(ms_server *server, ms_admin_response *out) {
  ms_snapshot *snapshot = ms_server_snapshot(server);
  bool ok = true;
  cJSON *json = cJSON_CreateObject();
  cJSON *entry = append(put_array(json, "configs", &ok), cJSON_CreateObject(), &ok);
  put_string(entry, "@type", "type.googleapis.com/mtls_sidecar.Bootstrap", &ok);

  cJSON *config = NULL; /* what is in force, defaults filled in */
  if (snapshot && snapshot->config) {
    config = ms_admin_config_json(snapshot->config);
    if (!config) ok = false;
    if (config && ms_admin_redact(config) != 0) {
      cJSON_Delete(config); /* never print a half-redacted config */
      config = NULL;
      ok = false;
    }
  }
  if (config) {
    cJSON_AddItemToObject(entry, "config", config);
  } else {
    put_string(entry, "config", NULL, &ok);
  }

  char *dynamic = ms_server_source_dump(server);
  if (dynamic) {
    cJSON *status = cJSON_Parse(dynamic);
    free(dynamic);
    cJSON *configs = cJSON_GetObjectItemCaseSensitive(json, "configs");
    if (status && configs) {
      cJSON_AddStringToObject(status, "@type", "type.googleapis.com/mtls_sidecar.XdsStatus");
      cJSON_AddItemToArray(configs, status);
    } else {
      cJSON_Delete(status);
      ok = false;
    }
  }

  char version[32];
  snprintf(version, sizeof(version), "%" PRIu64, snapshot ? snapshot->version : 0);
  put_string(json, "version_info", version, &ok);
  ms_snapshot_free(snapshot);
  return finish_json(json, ok, out);
}

/* ---- dispatch ------------------------------------------------------------- */

int ms_admin_respond(ms_server *server, const ms_admin_target *target, uint64_t now_ms,
                     ms_admin_response *out) {
  int refusal = ms_admin_target_refusal(target);
  if (refusal != 0)
    return ms_admin_respond_error(refusal, ms_admin_status_message(refusal), target, out);
  switch (target->route) {
    case MS_ADMIN_ROUTE_READY:
      return respond_ready(server, out);
    case MS_ADMIN_ROUTE_SERVER_INFO:
      return respond_server_info(server, out);
    case MS_ADMIN_ROUTE_CLUSTERS:
      return respond_clusters(server, now_ms, out);
    case MS_ADMIN_ROUTE_CERTS:
      return respond_certs(server, out);
    case MS_ADMIN_ROUTE_CONFIG_DUMP:
      return respond_config_dump(server, out);
    case MS_ADMIN_ROUTE_STATS:
    case MS_ADMIN_ROUTE_STATS_PROMETHEUS:
      return ms_admin_respond_stats(server, target, out);
    case MS_ADMIN_ROUTE_QUITQUITQUIT:
      return respond_quitquitquit(server, out);
    case MS_ADMIN_ROUTE_NOT_FOUND:
    case MS_ADMIN_ROUTE_COUNT:
      break;
  }
  return ms_admin_respond_error(404, ms_admin_status_message(404), target, out);
}
