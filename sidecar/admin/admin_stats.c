/* admin_stats.c: /stats and /stats/prometheus.
 *
 * One walk over every number (stats_walk) feeds both formats, so that they
 * never disagree, and the filter (?filter=REGEX) picks the same stats in
 * both: it is matched against the name /stats gives each one. Names follow
 * Envoy's: the server-wide counters of stats.h, then per listener
 * (listener.<name>.*), per HTTP listener (http.<name>.*, Envoy's HTTP
 * connection manager's) and per cluster (cluster.<name>.*). In Prometheus
 * the scope is a label ({listener="web"}, {cluster="orders"}). docs/stats.md
 * lists every name. */
#include <regex.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "sidecar/admin/admin_build.h"
#include "sidecar/control/cert_expiry.h"
#include "sidecar/control/server.h"
#include "sidecar/event/snapshot.h"
#include "sidecar/event/stats.h"

#define MAX_FILTER_BYTES 256              /* a longer regex is refused (400) */
#define LATENCY_NAME "http_rq_latency_ms" /* the histogram's name, for the filter */
#define DAYS_NAME "server.days_until_first_cert_expiring"

typedef struct stat_sample {
  const char *json_name; /* "cluster.backend.upstream_cx_total" */
  const char *family;    /* Prometheus name without the prefix */
  const char *help;
  bool gauge;
  const char *label_name; /* NULL, "reason", "listener" or "cluster" */
  const char *label_value;
  long long value;
} stat_sample;

typedef struct stat_walk {
  const regex_t *filter; /* NULL: every stat */
  void (*emit)(const stat_sample *sample, void *arg);
  void *arg;
} stat_walk;

static bool wanted(const stat_walk *walk, const char *json_name) {
  return !walk->filter || regexec(walk->filter, json_name, 0, NULL, 0) == 0;
}

static void emit(const stat_walk *walk, const stat_sample *sample) {
  if (wanted(walk, sample->json_name)) walk->emit(sample, walk->arg);
}

static bool is_gauge(const char *help) {
  return strstr(help, "(gauge)") != NULL;
}

/* ---- scoped stats: per listener, per HTTP listener, per cluster -----------
 * Each is an atomic_llong at `offset` in a block summed over the scope's
 * parts: a listener's per-worker ms_listener_stats, a cluster's endpoints'
 * ms_endpoint_state. */

typedef struct scoped_stat {
  const char *name; /* after "<scope>.<name>." */
  const char *help;
  size_t offset;
} scoped_stat;

#define MS_ADMIN_LISTENER_STAT(name, help) {#name, help, offsetof(ms_listener_stats, name)},
static const scoped_stat listener_stats[] = {MS_LISTENER_COUNTERS(MS_ADMIN_LISTENER_STAT)};
static const scoped_stat http_listener_stats[] = {
    MS_HTTP_LISTENER_COUNTERS(MS_ADMIN_LISTENER_STAT)};
#undef MS_ADMIN_LISTENER_STAT

#define ENDPOINT(field) offsetof(ms_endpoint_state, field)
static const scoped_stat cluster_stats[] = {
    {"upstream_cx_total", "upstream connections attempted, by cluster",
     ENDPOINT(total_connections)},
    {"upstream_cx_active", "upstream connections open now, by cluster (gauge)",
     ENDPOINT(active_connections)},
    {"upstream_cx_connect_fail",
     "upstream TCP connects that failed (timeouts included), by cluster",
     ENDPOINT(connect_failures)},
    {"upstream_cx_connect_timeout", "upstream TCP connects that timed out, by cluster",
     ENDPOINT(connect_timeouts)},
    {"upstream_cx_destroy_remote",
     "upstream connections closed or reset by the upstream, by cluster", ENDPOINT(destroy_remote)},
    {"ssl.handshake", "upstream TLS handshakes completed, by cluster", ENDPOINT(handshakes)},
    {"ssl.session_reused", "upstream TLS handshakes that resumed a session, by cluster",
     ENDPOINT(sessions_reused)},
    {"ssl.connection_error", "upstream TLS handshakes that failed, by cluster",
     ENDPOINT(handshake_failures)},
    {"outlier_detection.ejections_total", "endpoint ejections, by cluster",
     ENDPOINT(total_ejections)},
    {"upstream_rq_total", "HTTP requests sent to the cluster", ENDPOINT(rq_total)},
    {"upstream_rq_1xx", "HTTP responses 1xx received from the cluster", ENDPOINT(rq_by_class[1])},
    {"upstream_rq_2xx", "HTTP responses 2xx received from the cluster", ENDPOINT(rq_by_class[2])},
    {"upstream_rq_3xx", "HTTP responses 3xx received from the cluster", ENDPOINT(rq_by_class[3])},
    {"upstream_rq_4xx", "HTTP responses 4xx received from the cluster", ENDPOINT(rq_by_class[4])},
    {"upstream_rq_5xx", "HTTP responses 5xx received from the cluster", ENDPOINT(rq_by_class[5])},
    {"upstream_rq_retry", "HTTP requests sent again after failing on the cluster",
     ENDPOINT(rq_retry)},
    {"upstream_rq_timeout", "HTTP requests the cluster did not answer within request_timeout_ms",
     ENDPOINT(rq_timeout)},
    {"upstream_cx_idle_timeout", "pooled connections closed after idle_timeout_ms, by cluster",
     ENDPOINT(pool_idle_timeouts)},
    {"upstream_cx_max_requests", "connections closed after http_pool.max_requests, by cluster",
     ENDPOINT(pool_max_requests)},
    {"upstream_cx_max_duration_reached",
     "connections retired past http_pool.max_lifetime_ms, by cluster", ENDPOINT(pool_max_lifetime)},
};
#undef ENDPOINT

static long long at_offset(const void *block, size_t offset) {
  return load((const atomic_llong *)((const char *)block + offset));
}

typedef enum scope_kind { SCOPE_LISTENER, SCOPE_HTTP_LISTENER, SCOPE_CLUSTER } scope_kind;

static const struct {
  const char *prefix; /* of the /stats name and the Prometheus family */
  const char *label;
  const scoped_stat *stats;
  size_t count;
} scopes[] = {
    [SCOPE_LISTENER] = {"listener", "listener", listener_stats,
                        sizeof(listener_stats) / sizeof(listener_stats[0])},
    [SCOPE_HTTP_LISTENER] = {"http", "listener", http_listener_stats,
                             sizeof(http_listener_stats) / sizeof(http_listener_stats[0])},
    [SCOPE_CLUSTER] = {"cluster", "cluster", cluster_stats,
                       sizeof(cluster_stats) / sizeof(cluster_stats[0])},
};

/* part_count returns how many listeners or clusters `snapshot` has in the
 * scope; part_name and part_sum name part i (NULL: not in this scope, a TCP
 * listener for http.*) and sum a stat over it. */
static size_t part_count(const ms_snapshot *snapshot, scope_kind kind) {
  return kind == SCOPE_CLUSTER ? snapshot->cluster_count : snapshot->listener_count;
}

static const char *part_name(const ms_snapshot *snapshot, scope_kind kind, size_t i) {
  if (kind == SCOPE_CLUSTER) return snapshot->clusters[i].config->name;
  const ms_listener_config *listener = snapshot->listeners[i].config;
  if (kind == SCOPE_HTTP_LISTENER && listener->protocol != MS_PROTOCOL_HTTP) return NULL;
  return listener->name;
}

static long long part_sum(const ms_snapshot *snapshot, scope_kind kind, size_t i, size_t offset) {
  long long sum = 0;
  if (kind == SCOPE_CLUSTER) {
    const ms_cluster *cluster = &snapshot->clusters[i];
    for (size_t e = 0; e < cluster->endpoint_count; e++)
      sum += at_offset(cluster->endpoints[e].state, offset);
  } else {
    const ms_listener_sockets *sockets = snapshot->listeners[i].sockets;
    for (size_t w = 0; w < sockets->fd_count; w++)
      sum += at_offset(&sockets->stats[w], offset);
  }
  return sum;
}

/* walk_scope emits every stat of one scope, grouped by family. */
static void walk_scope(const stat_walk *walk, const ms_snapshot *snapshot, scope_kind kind) {
  char json_name[512], family[128];
  for (size_t s = 0; s < scopes[kind].count; s++) {
    const scoped_stat *stat = &scopes[kind].stats[s];
    snprintf(family, sizeof(family), "%s_%s", scopes[kind].prefix, stat->name);
    for (char *c = family; *c; c++)
      if (*c == '.') *c = '_';
    for (size_t i = 0; i < part_count(snapshot, kind); i++) {
      const char *name = part_name(snapshot, kind, i);
      if (!name) continue;
      snprintf(json_name, sizeof(json_name), "%s.%s.%s", scopes[kind].prefix, name, stat->name);
      if (!wanted(walk, json_name)) continue; /* before summing: a filter makes /stats cheap */
      stat_sample sample = {.json_name = json_name,
                            .family = family,
                            .help = stat->help,
                            .gauge = is_gauge(stat->help),
                            .label_name = scopes[kind].label,
                            .label_value = name,
                            .value = part_sum(snapshot, kind, i, stat->offset)};
      walk->emit(&sample, walk->arg);
    }
  }
}

/* stats_walk emits every number but the latency histogram, grouped by
 * family, `sum` being every worker's counters summed. */
static void stats_walk(ms_server *server, const ms_stats *sum, const stat_walk *walk) {
#define MS_ADMIN_EMIT_COUNTER(name, help_text)            \
  emit(walk, &(stat_sample){.json_name = #name,           \
                            .family = #name,              \
                            .help = help_text,            \
                            .gauge = is_gauge(help_text), \
                            .value = load(&sum->name)});
  MS_STATS_COUNTERS(MS_ADMIN_EMIT_COUNTER)
#undef MS_ADMIN_EMIT_COUNTER

  if (wanted(walk, DAYS_NAME)) /* Envoy's; it walks every certificate in use */
    walk->emit(&(stat_sample){.json_name = DAYS_NAME,
                              .family = "server_days_until_first_cert_expiring",
                              .help = "whole days left of the certificate in use that ends "
                                      "first, 0 once one has expired",
                              .gauge = true,
                              .value = ms_cert_days_until_first_expiring(server, time(NULL))},
               walk->arg);

  char json_name[512];
  for (int reason = 0; reason < MS_TLS_FAILURE_COUNT; reason++) {
    const char *label = ms_tls_failure_name((ms_tls_failure)reason);
    snprintf(json_name, sizeof(json_name), "ssl.handshake_failure.%s", label);
    emit(walk, &(stat_sample){.json_name = json_name,
                              .family = "ssl_handshake_failure",
                              .help = "upstream TLS handshakes that failed, by reason",
                              .label_name = "reason",
                              .label_value = label,
                              .value = load(&sum->handshake_failure[reason])});
  }

  ms_snapshot *snapshot = ms_server_snapshot(server);
  if (snapshot) {
    walk_scope(walk, snapshot, SCOPE_LISTENER);
    walk_scope(walk, snapshot, SCOPE_HTTP_LISTENER);
    walk_scope(walk, snapshot, SCOPE_CLUSTER);
  }
  ms_snapshot_free(snapshot);
}

/* ---- JSON ----------------------------------------------------------------- */

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

/* put_bound adds the upper bound of latency bucket `bucket` in ms: null for
 * the open last bucket (or no requests, bucket -1). */
static void put_bound(cJSON *parent, const char *name, int bucket, bool *ok) {
  if (bucket < 0 || bucket >= MS_LATENCY_BUCKETS - 1)
    put_string(parent, name, NULL, ok);
  else
    put_number(parent, name, ms_latency_bounds_ms[bucket], ok);
}

/* The latency histogram as JSON. Quantiles come from the histogram, whose
 * buckets are wide (2 to 5 ms, 5 to 10 ms...): each is given as the upper
 * bound of the bucket that holds it ("p50_le": 5, half the requests took at
 * most 5 ms), never as an interpolated figure that looks measured; the
 * mean is exact. */
static void put_latency(cJSON *json, const ms_stats *sum, bool *ok) {
  cJSON *latency = put_object(json, LATENCY_NAME, ok);
  long long count = 0;
  for (int i = 0; i < MS_LATENCY_BUCKETS; i++)
    count += load(&sum->latency[i]);
  double sum_ms = (double)load(&sum->latency_sum_us) / 1000;
  put_number(latency, "count", (double)count, ok);
  put_number(latency, "sum", sum_ms, ok);
  if (count)
    put_number(latency, "mean", sum_ms / (double)count, ok);
  else
    put_string(latency, "mean", NULL, ok);
  static const struct {
    const char *name;
    double q;
  } quantiles[] = {{"p50_le", 0.5}, {"p90_le", 0.9}, {"p99_le", 0.99}};
  for (size_t i = 0; i < sizeof(quantiles) / sizeof(quantiles[0]); i++)
    put_bound(latency, quantiles[i].name, ms_stats_latency_bucket(sum, quantiles[i].q), ok);
  cJSON *buckets = put_array(latency, "buckets", ok); /* cumulative, as Prometheus' */
  long long cumulative = 0;
  for (int i = 0; i < MS_LATENCY_BUCKETS - 1; i++) {
    cumulative += load(&sum->latency[i]);
    cJSON *bucket = append(buckets, cJSON_CreateObject(), ok);
    put_number(bucket, "le", ms_latency_bounds_ms[i], ok);
    put_number(bucket, "count", (double)cumulative, ok);
  }
}

static int respond_json(ms_server *server, const ms_stats *sum, const stat_walk *filter_only,
                        ms_admin_response *out) {
  stats_json collected = {.ok = true};
  cJSON *json = cJSON_CreateObject();
  if (!json) return -ENOMEM;
  collected.stats = put_array(json, "stats", &collected.ok);
  stat_walk walk = {.filter = filter_only->filter, .emit = emit_json, .arg = &collected};
  if (collected.stats) stats_walk(server, sum, &walk);
  if (wanted(&walk, LATENCY_NAME)) put_latency(json, sum, &collected.ok);
  return finish_json(json, collected.ok, out);
}

/* ---- Prometheus ----------------------------------------------------------- */

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

typedef struct prometheus_text {
  FILE *stream;
  char family[128]; /* the family of the last sample: # HELP and # TYPE once per family */
} prometheus_text;

static void emit_prometheus(const stat_sample *sample, void *arg) {
  prometheus_text *text = arg;
  FILE *stream = text->stream;
  if (strcmp(text->family, sample->family) != 0) {
    snprintf(text->family, sizeof(text->family), "%s", sample->family);
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
static void write_latency_histogram(const ms_stats *sum, FILE *stream) {
  const char *family = "mtls_sidecar_http_rq_latency_seconds";
  fprintf(stream,
          "# HELP %s HTTP request latency, first request byte to last response byte\n"
          "# TYPE %s histogram\n",
          family, family);
  long long cumulative = 0;
  for (int i = 0; i < MS_LATENCY_BUCKETS; i++) {
    cumulative += load(&sum->latency[i]);
    if (i < MS_LATENCY_BUCKETS - 1)
      fprintf(stream, "%s_bucket{le=\"%g\"} %lld\n", family, ms_latency_bounds_ms[i] / 1000,
              cumulative);
    else
      fprintf(stream, "%s_bucket{le=\"+Inf\"} %lld\n", family, cumulative);
  }
  fprintf(stream, "%s_sum %.6f\n%s_count %lld\n", family, (double)load(&sum->latency_sum_us) / 1e6,
          family, cumulative);
}

/* Per certificate in use (cert_expiry.h): seconds left and its end as a
 * timestamp, in Prometheus only (each labelled with its source, name, kind
 * and serial: more than a /stats name holds); the filter matches them as
 * "certificate.expiry_seconds" and "certificate.expiration_timestamp_seconds". */
typedef struct certificate_gauges {
  FILE *stream;
  int64_t now;
  bool timestamps; /* the second family */
} certificate_gauges;

static void write_certificate_gauge(const ms_cert_use *use, void *arg) {
  const certificate_gauges *gauges = arg;
  FILE *stream = gauges->stream;
  fprintf(stream, "mtls_sidecar_certificate_%s{source=\"%s\",name=\"",
          gauges->timestamps ? "expiration_timestamp_seconds" : "expiry_seconds",
          ms_cert_source_name(use->source));
  write_escaped(stream, use->name, true);
  fprintf(
      stream, "\",kind=\"%s\",serial=\"%s\"} %lld\n", use->is_ca ? "ca" : "leaf",
      use->info->serial_hex,
      (long long)(gauges->timestamps ? use->info->not_after : use->info->not_after - gauges->now));
}

static int write_certificate_gauges(ms_server *server, const stat_walk *walk, FILE *stream) {
  static const struct {
    const char *name; /* for the filter */
    const char *help;
  } families[] = {
      {"certificate.expiry_seconds",
       "seconds until the certificate in use expires, negative once expired"},
      {"certificate.expiration_timestamp_seconds",
       "when the certificate in use expires (its not_after), in unix seconds"},
  };
  certificate_gauges gauges = {.stream = stream, .now = time(NULL)};
  for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
    if (!wanted(walk, families[i].name)) continue;
    gauges.timestamps = i == 1;
    fprintf(stream,
            "# HELP mtls_sidecar_certificate_%s %s\n# TYPE mtls_sidecar_certificate_%s gauge\n",
            families[i].name + strlen("certificate."), families[i].help,
            families[i].name + strlen("certificate."));
    if (ms_cert_uses_visit(server, write_certificate_gauge, &gauges) != 0) return -ENOMEM;
  }
  return 0;
}

static int respond_prometheus(ms_server *server, const ms_stats *sum, const stat_walk *filter_only,
                              ms_admin_response *out) {
  char *body = NULL;
  size_t len = 0;
  prometheus_text text = {.stream = open_memstream(&body, &len)};
  if (!text.stream) return -ENOMEM;
  stat_walk walk = {.filter = filter_only->filter, .emit = emit_prometheus, .arg = &text};
  stats_walk(server, sum, &walk);
  if (wanted(&walk, LATENCY_NAME)) write_latency_histogram(sum, text.stream);
  bool failed =
      write_certificate_gauges(server, &walk, text.stream) != 0 || ferror(text.stream) != 0;
  if (fclose(text.stream) != 0 || failed) {
    free(body);
    return -ENOMEM;
  }
  memset(out, 0, sizeof(*out));
  out->status = 200;
  out->content_type = "text/plain; version=0.0.4";
  out->body = body;
  out->body_len = len;
  return 0;
}

/* ---- the request ---------------------------------------------------------- */

int ms_admin_respond_stats(ms_server *server, const ms_admin_target *target,
                           ms_admin_response *out) {
  bool prometheus = target->route == MS_ADMIN_ROUTE_STATS_PROMETHEUS;
  char format[16];
  int found = ms_admin_query_get(target, "format", format, sizeof(format));
  if (found < 0 || (found && strcmp(format, "json") != 0 && strcmp(format, "prometheus") != 0))
    return ms_admin_respond_error(400, "format: expected \"json\" or \"prometheus\"", target, out);
  if (found) prometheus = strcmp(format, "prometheus") == 0;

  char pattern[MAX_FILTER_BYTES + 1], message[MAX_FILTER_BYTES + 256];
  found = ms_admin_query_get(target, "filter", pattern, sizeof(pattern));
  if (found < 0) {
    snprintf(message, sizeof(message),
             "filter: longer than %d bytes or a bad %%-escape; give a shorter regex",
             MAX_FILTER_BYTES);
    return ms_admin_respond_error(400, message, target, out);
  }
  regex_t regex;
  stat_walk walk = {0};
  if (found) {
    int rc = regcomp(&regex, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      char why[128];
      regerror(rc, &regex, why, sizeof(why));
      snprintf(message, sizeof(message), "filter: \"%s\" is not a POSIX extended regex: %s",
               pattern, why);
      return ms_admin_respond_error(400, message, target, out);
    }
    walk.filter = &regex;
  }
  ms_stats sum;
  memset(&sum, 0, sizeof(sum));
  ms_server_stats_sum(server, &sum);
  int rc = prometheus ? respond_prometheus(server, &sum, &walk, out)
                      : respond_json(server, &sum, &walk, out);
  if (found) regfree(&regex);
  return rc;
}
