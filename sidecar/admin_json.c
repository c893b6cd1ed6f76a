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

#include "sidecar/admin_json.h"
#include "sidecar/server.h"
#include "sidecar/snapshot.h"
#include "sidecar/stats.h"
#include "sidecar/tls_context.h"

/* ---- building JSON --------------------------------------------------------
 * cJSON returns NULL when memory runs out, and its Add functions do nothing
 * on a NULL parent; these wrappers remember the failure in *ok so that a body
 * is checked once, at the end, instead of after every member. */

static cJSON *put_object(cJSON *parent, const char *name, bool *ok) {
  cJSON *item = cJSON_AddObjectToObject(parent, name);
  if (!item) *ok = false;
  return item;
}

static cJSON *put_array(cJSON *parent, const char *name, bool *ok) {
  cJSON *item = cJSON_AddArrayToObject(parent, name);
  if (!item) *ok = false;
  return item;
}

static void put_number(cJSON *parent, const char *name, double value, bool *ok) {
  if (!cJSON_AddNumberToObject(parent, name, value)) *ok = false;
}

static void put_bool(cJSON *parent, const char *name, bool value, bool *ok) {
  if (!cJSON_AddBoolToObject(parent, name, value)) *ok = false;
}

/* put_string adds `value`, or null when `value` is NULL. */
static void put_string(cJSON *parent, const char *name, const char *value, bool *ok) {
  cJSON *item =
      value ? cJSON_AddStringToObject(parent, name, value) : cJSON_AddNullToObject(parent, name);
  if (!item) *ok = false;
}

/* append appends `item` to `array`; a failure deletes `item`. Returns it. */
static cJSON *append(cJSON *array, cJSON *item, bool *ok) {
  if (!item || !cJSON_AddItemToArray(array, item)) {
    cJSON_Delete(item);
    *ok = false;
    return NULL;
  }
  return item;
}

static int finish_json(cJSON *json, bool ok, ms_admin_response *out) {
  if (!ok) {
    cJSON_Delete(json);
    return -ENOMEM;
  }
  return ms_admin_response_take_json(200, json, out);
}

static int respond_text(int status, const char *content_type, const char *text,
                        ms_admin_response *out) {
  memset(out, 0, sizeof(*out));
  out->body = strdup(text);
  if (!out->body) return -ENOMEM;
  out->status = status;
  out->content_type = content_type;
  out->body_len = strlen(text);
  return 0;
}

static long long load(const atomic_llong *counter) {
  return atomic_load_explicit(counter, memory_order_relaxed);
}

/* ---- /ready, /server_info, /quitquitquit ---------------------------------- */

static int respond_ready(ms_server *server, ms_admin_response *out) {
  if (ms_server_is_ready(server)) return respond_text(200, "text/plain", "LIVE\n", out);
  return respond_text(503, "text/plain", "NOT READY\n", out);
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

  char last_error[sizeof(state->last_error)];
  ms_endpoint_state_get_error(state, last_error, sizeof(last_error));
  put_string(host, "last_error", last_error[0] ? last_error : NULL, ok);
  return host;
}

static cJSON *cluster_status(const ms_cluster *cluster, uint64_t now_ms, bool *ok) {
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
  put_bool(tls, "sni", config->tls.send_sni, ok);
  put_string(tls, "error", cluster->tls_error, ok);

  cJSON *hosts = put_array(json, "host_statuses", ok);
  for (size_t i = 0; i < cluster->endpoint_count; i++) {
    append(hosts, host_status(&cluster->endpoints[i], now_ms, ok), ok);
  }
  return json;
}

static int respond_clusters(ms_server *server, uint64_t now_ms, ms_admin_response *out) {
  ms_snapshot *snapshot = ms_server_snapshot(server);
  bool ok = true;
  cJSON *json = cJSON_CreateObject();
  cJSON *statuses = put_array(json, "cluster_statuses", &ok);
  for (size_t i = 0; snapshot && i < snapshot->cluster_count; i++) {
    append(statuses, cluster_status(&snapshot->clusters[i], now_ms, &ok), &ok);
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

static cJSON *cert_detail(const char *path, const ms_cert_info *info, int64_t now, bool *ok) {
  cJSON *detail = cJSON_CreateObject();
  if (!detail) {
    *ok = false;
    return NULL;
  }
  char valid_from[32], expiration[32];
  ms_time_rfc3339(info->not_before, valid_from, sizeof(valid_from));
  ms_time_rfc3339(info->not_after, expiration, sizeof(expiration));
  int64_t seconds_left = info->not_after - now;
  /* Whole days, rounded down (towards minus infinity once expired). */
  int64_t days = seconds_left >= 0 ? seconds_left / 86400 : -((-seconds_left + 86399) / 86400);

  put_string(detail, "path", path, ok);
  put_string(detail, "subject", info->subject, ok);
  put_string(detail, "issuer", info->issuer, ok);
  put_string(detail, "serial_number", info->serial_hex, ok);
  put_string(detail, "sha256_fingerprint", info->sha256_hex, ok);
  add_subject_alt_names(detail, info, ok);
  put_number(detail, "days_until_expiration", (double)days, ok);
  put_string(detail, "valid_from", valid_from, ok);
  put_string(detail, "expiration_time", expiration, ok);
  put_bool(detail, "is_ca", info->is_ca, ok);
  return detail;
}

typedef struct certs_visit {
  const ms_snapshot *snapshot; /* the clusters using a context are looked up here */
  cJSON *certificates;
  int64_t now;
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
    append(cas, cert_detail(context->trusted_ca_path, &context->cas[i], visit->now, ok), ok);
  }
  cJSON *chain = put_array(entry, "cert_chain", ok);
  if (context->certificate_path || context->leaf.serial_hex[0]) { /* a file, or SDS bytes */
    append(chain, cert_detail(context->certificate_path, &context->leaf, visit->now, ok), ok);
  }
}

static int respond_certs(ms_server *server, ms_admin_response *out) {
  certs_visit visit = {.snapshot = ms_server_snapshot(server), .now = time(NULL), .ok = true};
  cJSON *json = cJSON_CreateObject();
  visit.certificates = put_array(json, "certificates", &visit.ok);
  if (visit.certificates) ms_tls_context_registry_visit(visit_context, &visit);
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

  cJSON *config = NULL;
  if (snapshot && snapshot->config && snapshot->config->json) {
    config = cJSON_Parse(snapshot->config->json);
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

/* ---- /stats and /stats/prometheus ------------------------------------------
 * One walk over every number (stats_walk) feeds both formats, so that they
 * never disagree. */

typedef struct stat_sample {
  const char *json_name; /* "cluster.backend.upstream_cx_total" */
  const char *family;    /* Prometheus name without the prefix */
  const char *help;
  bool gauge;
  bool first_of_family;   /* print # HELP and # TYPE before this sample */
  const char *label_name; /* NULL, "reason" or "cluster" */
  const char *label_value;
  long long value;
} stat_sample;

typedef void (*stat_emit)(const stat_sample *sample, void *arg);

/* Per-cluster numbers, summed over the cluster's endpoints. */
typedef enum cluster_stat {
  CLUSTER_CX_ACTIVE,
  CLUSTER_CX_TOTAL,
  CLUSTER_CX_CONNECT_FAIL,
  CLUSTER_HANDSHAKE_FAILURE,
  CLUSTER_RQ_1XX, /* ..5XX follow in order */
  CLUSTER_RQ_2XX,
  CLUSTER_RQ_3XX,
  CLUSTER_RQ_4XX,
  CLUSTER_RQ_5XX,
  CLUSTER_STAT_COUNT
} cluster_stat;

static const struct {
  const char *suffix; /* after "cluster.<name>." in /stats */
  const char *family;
  const char *help;
  bool gauge;
} cluster_stats[CLUSTER_STAT_COUNT] = {
    [CLUSTER_CX_ACTIVE] = {"upstream_cx_active", "cluster_upstream_cx_active",
                           "upstream connections open now, by cluster", true},
    [CLUSTER_CX_TOTAL] = {"upstream_cx_total", "cluster_upstream_cx_total",
                          "upstream connections attempted, by cluster", false},
    [CLUSTER_CX_CONNECT_FAIL] = {"upstream_cx_connect_fail", "cluster_upstream_cx_connect_fail",
                                 "upstream TCP connects that failed, by cluster", false},
    [CLUSTER_HANDSHAKE_FAILURE] = {"ssl.handshake_failure", "cluster_ssl_handshake_failure",
                                   "upstream TLS handshakes that failed, by cluster", false},
    [CLUSTER_RQ_1XX] = {"upstream_rq_1xx", "cluster_upstream_rq_1xx",
                        "HTTP responses 1xx received from the cluster", false},
    [CLUSTER_RQ_2XX] = {"upstream_rq_2xx", "cluster_upstream_rq_2xx",
                        "HTTP responses 2xx received from the cluster", false},
    [CLUSTER_RQ_3XX] = {"upstream_rq_3xx", "cluster_upstream_rq_3xx",
                        "HTTP responses 3xx received from the cluster", false},
    [CLUSTER_RQ_4XX] = {"upstream_rq_4xx", "cluster_upstream_rq_4xx",
                        "HTTP responses 4xx received from the cluster", false},
    [CLUSTER_RQ_5XX] = {"upstream_rq_5xx", "cluster_upstream_rq_5xx",
                        "HTTP responses 5xx received from the cluster", false},
};

static long long cluster_stat_sum(const ms_cluster *cluster, cluster_stat stat) {
  long long sum = 0;
  for (size_t i = 0; i < cluster->endpoint_count; i++) {
    ms_endpoint_state *state = cluster->endpoints[i].state;
    switch (stat) {
      case CLUSTER_CX_ACTIVE:
        sum += load(&state->active_connections);
        break;
      case CLUSTER_CX_TOTAL:
        sum += load(&state->total_connections);
        break;
      case CLUSTER_CX_CONNECT_FAIL:
        sum += load(&state->connect_failures);
        break;
      case CLUSTER_HANDSHAKE_FAILURE:
        sum += load(&state->handshake_failures);
        break;
      case CLUSTER_RQ_1XX:
      case CLUSTER_RQ_2XX:
      case CLUSTER_RQ_3XX:
      case CLUSTER_RQ_4XX:
      case CLUSTER_RQ_5XX:
        sum += load(&state->rq_by_class[1 + stat - CLUSTER_RQ_1XX]);
        break;
      case CLUSTER_STAT_COUNT:
        break;
    }
  }
  return sum;
}

/* stats_walk calls `emit` for every number, grouped by family. */
static void stats_walk(ms_server *server, stat_emit emit, void *arg) {
  ms_stats sum;
  memset(&sum, 0, sizeof(sum));
  ms_server_stats_sum(server, &sum);
  stat_sample sample;

#define MS_ADMIN_EMIT_COUNTER(name, help_text)                          \
  sample = (stat_sample){.json_name = #name,                            \
                         .family = #name,                               \
                         .help = help_text,                             \
                         .gauge = strstr(help_text, "(gauge)") != NULL, \
                         .first_of_family = true,                       \
                         .value = load(&sum.name)};                     \
  emit(&sample, arg);
  MS_STATS_COUNTERS(MS_ADMIN_EMIT_COUNTER)
#undef MS_ADMIN_EMIT_COUNTER

  char json_name[512];
  for (int reason = 0; reason < MS_TLS_FAILURE_COUNT; reason++) {
    const char *label = ms_tls_failure_name((ms_tls_failure)reason);
    snprintf(json_name, sizeof(json_name), "ssl.handshake_failure.%s", label);
    sample = (stat_sample){.json_name = json_name,
                           .family = "ssl_handshake_failure",
                           .help = "upstream TLS handshakes that failed, by reason",
                           .first_of_family = reason == 0,
                           .label_name = "reason",
                           .label_value = label,
                           .value = load(&sum.handshake_failure[reason])};
    emit(&sample, arg);
  }

  ms_snapshot *snapshot = ms_server_snapshot(server);
  for (int stat = 0; snapshot && stat < CLUSTER_STAT_COUNT; stat++) {
    for (size_t i = 0; i < snapshot->cluster_count; i++) {
      const ms_cluster *cluster = &snapshot->clusters[i];
      snprintf(json_name, sizeof(json_name), "cluster.%s.%s", cluster->config->name,
               cluster_stats[stat].suffix);
      sample = (stat_sample){.json_name = json_name,
                             .family = cluster_stats[stat].family,
                             .help = cluster_stats[stat].help,
                             .gauge = cluster_stats[stat].gauge,
                             .first_of_family = i == 0,
                             .label_name = "cluster",
                             .label_value = cluster->config->name,
                             .value = cluster_stat_sum(cluster, (cluster_stat)stat)};
      emit(&sample, arg);
    }
  }
  ms_snapshot_free(snapshot);
}

typedef struct stats_json {
  cJSON *stats;
  bool ok;
} stats_json;

static void emit_json(const stat_sample *sample, void *arg) {
  stats_json *out = arg;
  cJSON *entry = append(out->stats, cJSON_CreateObject(), &out->ok);
  put_string(entry, "name", sample->json_name, &out->ok);
  put_number(entry, "value", (double)sample->value, &out->ok);
}

static int respond_stats(ms_server *server, ms_admin_response *out) {
  stats_json collected = {.ok = true};
  cJSON *json = cJSON_CreateObject();
  collected.stats = put_array(json, "stats", &collected.ok);
  if (collected.stats) stats_walk(server, emit_json, &collected);
  /* Envoy's /stats shows histograms as quantiles. */
  ms_stats sum;
  memset(&sum, 0, sizeof(sum));
  ms_server_stats_sum(server, &sum);
  cJSON *latency = put_object(json, "http_rq_latency_ms", &collected.ok);
  static const struct {
    const char *name;
    double q;
  } quantiles[] = {{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}};
  for (size_t i = 0; latency && i < sizeof(quantiles) / sizeof(quantiles[0]); i++)
    put_number(latency, quantiles[i].name, ms_stats_latency_quantile(&sum, quantiles[i].q),
               &collected.ok);
  long long count = 0;
  for (int i = 0; i < MS_LATENCY_BUCKETS; i++)
    count += load(&sum.latency[i]);
  if (latency) put_number(latency, "count", (double)count, &collected.ok);
  return finish_json(json, collected.ok, out);
}

/* write_escaped writes `text` with Prometheus' escapes: backslash and
 * newline always, the double quote too inside a label value. */
static void write_escaped(FILE *stream, const char *text, bool label) {
  for (const char *c = text; *c; c++) {
    if (*c == '\\') {
      fputs("\\\\", stream);
    } else if (*c == '\n') {
      fputs("\\n", stream);
    } else if (*c == '"' && label) {
      fputs("\\\"", stream);
    } else {
      fputc(*c, stream);
    }
  }
}

static void emit_prometheus(const stat_sample *sample, void *arg) {
  FILE *stream = arg;
  if (sample->first_of_family) {
    fprintf(stream, "# HELP mtls_sidecar_%s ", sample->family);
    write_escaped(stream, sample->help, false);
    fprintf(stream, "\n# TYPE mtls_sidecar_%s %s\n", sample->family,
            sample->gauge ? "gauge" : "counter");
  }
  fprintf(stream, "mtls_sidecar_%s", sample->family);
  if (sample->label_name) {
    fprintf(stream, "{%s=\"", sample->label_name);
    write_escaped(stream, sample->label_value, true);
    fputs("\"}", stream);
  }
  fprintf(stream, " %lld\n", sample->value);
}

/* The request latency as a Prometheus histogram: cumulative buckets in
 * seconds, their sum and count. */
static void write_latency_histogram(ms_server *server, FILE *stream) {
  ms_stats sum;
  memset(&sum, 0, sizeof(sum));
  ms_server_stats_sum(server, &sum);
  const char *family = "mtls_sidecar_http_rq_latency_seconds";
  fprintf(stream,
          "# HELP %s HTTP request latency, first request byte to last response byte\n"
          "# TYPE %s histogram\n",
          family, family);
  long long cumulative = 0;
  for (int i = 0; i < MS_LATENCY_BUCKETS; i++) {
    cumulative += load(&sum.latency[i]);
    if (i < MS_LATENCY_BUCKETS - 1)
      fprintf(stream, "%s_bucket{le=\"%g\"} %lld\n", family, ms_latency_bounds_ms[i] / 1000,
              cumulative);
    else
      fprintf(stream, "%s_bucket{le=\"+Inf\"} %lld\n", family, cumulative);
  }
  fprintf(stream, "%s_sum %.6f\n%s_count %lld\n", family, (double)load(&sum.latency_sum_us) / 1e6,
          family, cumulative);
}

static int respond_prometheus(ms_server *server, ms_admin_response *out) {
  char *text = NULL;
  size_t len = 0;
  FILE *stream = open_memstream(&text, &len);
  if (!stream) return -ENOMEM;
  stats_walk(server, emit_prometheus, stream);
  write_latency_histogram(server, stream);
  bool failed = ferror(stream) != 0;
  if (fclose(stream) != 0 || failed) {
    free(text);
    return -ENOMEM;
  }
  memset(out, 0, sizeof(*out));
  out->status = 200;
  out->content_type = "text/plain; version=0.0.4";
  out->body = text;
  out->body_len = len;
  return 0;
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
      return respond_stats(server, out);
    case MS_ADMIN_ROUTE_STATS_PROMETHEUS:
      return respond_prometheus(server, out);
    case MS_ADMIN_ROUTE_QUITQUITQUIT:
      return respond_quitquitquit(server, out);
    case MS_ADMIN_ROUTE_NOT_FOUND:
    case MS_ADMIN_ROUTE_COUNT:
      break;
  }
  return ms_admin_respond_error(404, ms_admin_status_message(404), target, out);
}
