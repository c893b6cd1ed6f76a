/* The certificates in use and their ends, from the server (server.h's
 * ms_cert_uses_visit and ms_cert_days_until_first_expiring) and the expiry
 * monitor (server_internal.h), on the main thread.
 *
 * Reads the server's current snapshot and its sources' credentials. The
 * monitor keeps, per certificate in use, the state it last logged, in the
 * order ms_cert_uses_visit visits: each check walks the certificates in use
 * and that list side by side, so a check is one sort and one pass however
 * many clusters there are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/time.h"
#include "sidecar/control/cert_expiry.h"
#include "sidecar/control/server_internal.h"

/* The monitor looks at least this often: a new snapshot asks for a check
 * itself, but the wall clock may jump. */
#define MS_CERT_CHECK_MAX_MS 60000

/* ---- the certificates in use ------------------------------------------------ */

/* What one visit collects before sorting: every use, as often as clusters
 * name it, with the order it was met in. */
typedef struct collected_use {
  ms_cert_use use;
  size_t order;
} collected_use;

typedef struct use_list {
  collected_use *items;
  size_t count;
  size_t capacity;
  bool failed;
} use_list;

static void collect(const ms_cert_use *use, void *arg) {
  use_list *list = arg;
  if (list->failed) return;
  if (list->count == list->capacity) {
    size_t capacity = list->capacity ? list->capacity * 2 : 16;
    collected_use *items = realloc(list->items, capacity * sizeof(*items));
    if (items == NULL) {
      list->failed = true;
      return;
    }
    list->items = items;
    list->capacity = capacity;
  }
  list->items[list->count] = (collected_use){*use, list->count};
  list->count++;
}

/* origin says where a context's certificate (or CA bundle) came from: the
 * file it was built from, the secret the cluster names, or PEM in the
 * cluster's configuration. */
static ms_cert_source origin(const ms_config *config, const ms_cluster *cluster, const char *path,
                             const char *secret, const char **out_name) {
  if (path != NULL) {
    *out_name = path;
    return MS_CERT_SOURCE_FILE;
  }
  if (secret != NULL) {
    *out_name = secret;
    return ms_identity_owns_secret(config, secret) ? MS_CERT_SOURCE_IDENTITY : MS_CERT_SOURCE_SDS;
  }
  *out_name = cluster->config->name;
  return MS_CERT_SOURCE_INLINE;
}

static void collect_cluster(use_list *list, const ms_config *config, const ms_cluster *cluster) {
  const ms_tls_context *context = cluster->tls;
  if (context == NULL) return;
  const ms_cluster_tls_config *tls = &cluster->config->tls;
  ms_cert_use use = {.cluster = cluster->config->name, .cluster_count = 1};
  if (context->certificate_path || context->leaf.serial_hex[0]) { /* a file, or SDS bytes */
    use.info = &context->leaf;
    use.source =
        origin(config, cluster, context->certificate_path, tls->certificate_secret, &use.name);
    collect(&use, list);
  }
  use.is_ca = true;
  use.source = origin(config, cluster, context->trusted_ca_path, tls->validation_secret, &use.name);
  for (size_t i = 0; i < context->ca_count; i++) {
    use.info = &context->cas[i];
    collect(&use, list);
  }
}

static int compare_key(ms_cert_source source_a, const char *name_a, bool ca_a, const char *serial_a,
                       ms_cert_source source_b, const char *name_b, bool ca_b,
                       const char *serial_b) {
  if (source_a != source_b) return source_a < source_b ? -1 : 1;
  int names = strcmp(name_a, name_b);
  if (names != 0) return names;
  if (ca_a != ca_b) return ca_a ? 1 : -1;
  return strcmp(serial_a, serial_b);
}

static int compare_uses(const void *a, const void *b) {
  const collected_use *x = a, *y = b;
  int key = compare_key(x->use.source, x->use.name, x->use.is_ca, x->use.info->serial_hex,
                        y->use.source, y->use.name, y->use.is_ca, y->use.info->serial_hex);
  if (key != 0) return key;
  return x->order < y->order ? -1 : x->order > y->order;
}

int ms_cert_uses_visit(ms_server *server, ms_cert_use_visit visit, void *arg) {
  use_list list = {0};
  ms_snapshot *snapshot = ms_server_snapshot(server);
  for (size_t i = 0; snapshot && i < snapshot->cluster_count; i++)
    collect_cluster(&list, snapshot->config, &snapshot->clusters[i]);
  if (server->source.certificates) server->source.certificates(server->source.arg, collect, &list);
  if (server->identity.certificates)
    server->identity.certificates(server->identity.arg, collect, &list);
  if (list.failed) {
    free(list.items);
    ms_snapshot_free(snapshot);
    return -1;
  }
  qsort(list.items, list.count, sizeof(*list.items), compare_uses);
  for (size_t i = 0; i < list.count;) {
    ms_cert_use use = list.items[i].use; /* the first cluster in order names it */
    size_t j = i + 1;
    for (; j < list.count; j++) {
      const ms_cert_use *same = &list.items[j].use;
      if (compare_key(use.source, use.name, use.is_ca, use.info->serial_hex, same->source,
                      same->name, same->is_ca, same->info->serial_hex) != 0)
        break;
      use.cluster_count += same->cluster_count;
    }
    visit(&use, arg);
    i = j;
  }
  free(list.items);
  ms_snapshot_free(snapshot);
  return 0;
}

/* ---- figures ---------------------------------------------------------------------- */

typedef struct figures {
  int64_t now;
  int64_t fewest_days; /* INT64_MAX: none */
  bool presents_expired;
} figures;

static void add_figures(const ms_cert_use *use, void *arg) {
  figures *out = arg;
  int64_t days = ms_cert_days_until_expiration(use->info, out->now);
  if (days < out->fewest_days) out->fewest_days = days;
  if (!use->is_ca && out->now > use->info->not_after) out->presents_expired = true;
}

static figures figures_now(ms_server *server, int64_t now) {
  figures out = {.now = now, .fewest_days = INT64_MAX};
  ms_cert_uses_visit(server, add_figures, &out);
  return out;
}

int64_t ms_cert_days_until_first_expiring(ms_server *server, int64_t now) {
  int64_t days = figures_now(server, now).fewest_days;
  if (days == INT64_MAX) return UINT32_MAX;
  return days < 0 ? 0 : days;
}

bool ms_cert_expiry_presents_expired(ms_server *server, int64_t now) {
  return figures_now(server, now).presents_expired;
}

/* ---- the monitor ---------------------------------------------------------------------- */

/* What the monitor remembers of one certificate in use. */
typedef struct tracked_cert {
  ms_cert_source source;
  char *name;
  bool is_ca;
  char serial[sizeof(((ms_cert_info *)0)->serial_hex)];
  ms_cert_state state; /* as last logged */
  uint64_t logged_ms;  /* uv_now when an expired one was last logged */
} tracked_cert;

struct ms_cert_expiry {
  uv_timer_t timer;
  ms_server *server;
  bool stopped;
  tracked_cert *tracked; /* ordered as ms_cert_uses_visit visits */
  size_t tracked_count;
};

/* One check under way: the old list is walked beside the visit, the new
 * list is built. */
typedef struct check_pass {
  ms_cert_expiry *expiry;
  const ms_certificates_config *settings;
  int64_t now;
  uint64_t now_ms;
  size_t old_next; /* first entry of the old list not met yet */
  tracked_cert *fresh;
  size_t fresh_count;
  size_t fresh_capacity;
  uint64_t delay_ms; /* until the next check */
} check_pass;

/* format_span writes `seconds` (its absolute value) as "3d 4h", "4h 48m",
 * "12m 3s" or "12s". */
static void format_span(int64_t seconds, char *buf, size_t len) {
  long long s = seconds < 0 ? -(long long)seconds : (long long)seconds;
  if (s >= 86400)
    snprintf(buf, len, "%lldd %lldh", s / 86400, s % 86400 / 3600);
  else if (s >= 3600)
    snprintf(buf, len, "%lldh %lldm", s / 3600, s % 3600 / 60);
  else if (s >= 60)
    snprintf(buf, len, "%lldm %llds", s / 60, s % 60);
  else
    snprintf(buf, len, "%llds", s);
}

/* Names and subjects go into a line escaped (a secret's or a cluster's
 * name may come from a control plane), paths included, whole up to this. */
#define MS_CERT_NAME_MAX 400
#define MS_CERT_NAME_ESCAPED (MS_CERT_NAME_MAX * 4 + 4)

/* describe writes which certificate this is, for a log line:
 * `client certificate (file /x/client.crt, serial 0a1b, CN=client, cluster
 * orders and 2 more)`. `subject` and `cluster` may be NULL. */
static void describe(ms_cert_source source, const char *name, bool is_ca, const char *serial,
                     const char *subject, const char *cluster, size_t cluster_count, char *buf,
                     size_t len) {
  char escaped_name[MS_CERT_NAME_ESCAPED], escaped_subject[MS_LOG_ESCAPED_LEN];
  char clusters[MS_LOG_ESCAPED_LEN + 64] = "";
  if (cluster != NULL) {
    char escaped[MS_LOG_ESCAPED_LEN];
    ms_log_escape(cluster, MS_LOG_ESCAPE_MAX, escaped, sizeof(escaped));
    if (cluster_count > 1)
      snprintf(clusters, sizeof(clusters), ", cluster %s and %zu more", escaped, cluster_count - 1);
    else
      snprintf(clusters, sizeof(clusters), ", cluster %s", escaped);
  }
  snprintf(buf, len, "%s (%s %s, serial %s%s%s%s)",
           is_ca                                 ? "trusted CA certificate"
           : source == MS_CERT_SOURCE_XDS_CLIENT ? "control plane client certificate"
                                                 : "client certificate",
           ms_cert_source_name(source),
           ms_log_escape(name, MS_CERT_NAME_MAX, escaped_name, sizeof(escaped_name)), serial,
           subject ? ", " : "",
           subject
               ? ms_log_escape(subject, MS_LOG_ESCAPE_MAX, escaped_subject, sizeof(escaped_subject))
               : "",
           clusters);
}

/* log_state says what `use` entering (or staying in) `state` means. */
static void log_state(const check_pass *pass, const ms_cert_use *use, ms_cert_state state) {
  const ms_cert_info *info = use->info;
  char what[1024], from[32], when[32], span[32], every[32];
  describe(use->source, use->name, use->is_ca, info->serial_hex, info->subject, use->cluster,
           use->cluster_count, what, sizeof(what));
  switch (state) {
    case MS_CERT_EXPIRING:
      ms_time_rfc3339(info->not_after, when, sizeof(when));
      format_span(info->not_after - pass->now, span, sizeof(span));
      ms_time_rfc3339(info->not_before, from, sizeof(from));
      ms_log(MS_LOG_WARN,
             "certificate expiring: %s is past %u%% of its lifetime (%s to %s) and still in use, "
             "not replaced; it expires in %s",
             what, pass->settings->warn_lifetime_percent, from, when, span);
      break;
    case MS_CERT_EXPIRED:
      ms_time_rfc3339(info->not_after, when, sizeof(when));
      format_span(pass->now - info->not_after, span, sizeof(span));
      format_span(pass->settings->expired_log_interval_ms / 1000, every, sizeof(every));
      ms_log(MS_LOG_ERROR,
             "certificate expired: %s expired at %s (%s ago) and is still in use: %s; replace it "
             "(said again every %s while it stays in use)",
             what, when, span,
             use->is_ca ? "peer certificates that chain only to it fail verification"
                        : "peers that check it refuse the handshake",
             every);
      break;
    case MS_CERT_NOT_YET_VALID:
      ms_time_rfc3339(info->not_before, when, sizeof(when));
      format_span(info->not_before - pass->now, span, sizeof(span));
      ms_log(MS_LOG_WARN, "certificate not yet valid: %s is valid from %s (in %s); check the clock",
             what, when, span);
      break;
    case MS_CERT_VALID:
      break;
  }
}

/* left_use says that a certificate the monitor had warned of is no longer
 * in use (replaced, or its cluster gone), and frees the entry. */
static void left_use(tracked_cert *entry) {
  if (entry->state != MS_CERT_VALID) {
    char what[1024];
    describe(entry->source, entry->name, entry->is_ca, entry->serial, NULL, NULL, 0, what,
             sizeof(what));
    ms_log(MS_LOG_INFO, "certificate no longer in use: %s, which was %s", what,
           ms_cert_state_name(entry->state));
  }
  free(entry->name);
}

static void sooner(check_pass *pass, uint64_t delay_ms) {
  if (delay_ms < pass->delay_ms) pass->delay_ms = delay_ms;
}

/* keep appends `entry` to the new list; without memory the entry is
 * dropped (and the certificate logged again at the next check). */
static void keep(check_pass *pass, tracked_cert *entry) {
  if (pass->fresh_count == pass->fresh_capacity) {
    size_t capacity = pass->fresh_capacity ? pass->fresh_capacity * 2 : 16;
    tracked_cert *fresh = realloc(pass->fresh, capacity * sizeof(*fresh));
    if (fresh == NULL) {
      free(entry->name);
      return;
    }
    pass->fresh = fresh;
    pass->fresh_capacity = capacity;
  }
  pass->fresh[pass->fresh_count++] = *entry;
}

static void check_use(const ms_cert_use *use, void *arg) {
  check_pass *pass = arg;
  ms_cert_expiry *expiry = pass->expiry;
  const ms_cert_info *info = use->info;
  /* Entries before this one in the common order are no longer in use. */
  tracked_cert entry = {.source = use->source, .is_ca = use->is_ca, .state = MS_CERT_VALID};
  while (pass->old_next < expiry->tracked_count) {
    tracked_cert *old = &expiry->tracked[pass->old_next];
    int order = compare_key(old->source, old->name, old->is_ca, old->serial, use->source, use->name,
                            use->is_ca, info->serial_hex);
    if (order > 0) break;
    pass->old_next++;
    if (order == 0) {
      entry = *old;
      break;
    }
    left_use(old);
  }
  if (entry.name == NULL) {
    entry.name = strdup(use->name);
    if (entry.name == NULL) return;
    snprintf(entry.serial, sizeof(entry.serial), "%s", info->serial_hex);
  }

  uint32_t percent = pass->settings->warn_lifetime_percent;
  uint64_t interval = pass->settings->expired_log_interval_ms;
  ms_cert_state state = ms_cert_state_at(info, pass->now, percent);
  if (state != entry.state ||
      (state == MS_CERT_EXPIRED && pass->now_ms - entry.logged_ms >= interval)) {
    log_state(pass, use, state);
    entry.state = state;
    entry.logged_ms = pass->now_ms;
  }
  if (state == MS_CERT_EXPIRED) sooner(pass, entry.logged_ms + interval - pass->now_ms);
  int64_t change = ms_cert_state_next_change(info, pass->now, percent);
  if (change != INT64_MAX) sooner(pass, (uint64_t)(change - pass->now) * 1000);
  keep(pass, &entry);
}

static void on_timer(uv_timer_t *timer);

static void check(ms_cert_expiry *expiry) {
  ms_server *server = expiry->server;
  check_pass pass = {.expiry = expiry,
                     .settings = &server->config->certificates,
                     .now = (int64_t)time(NULL),
                     .now_ms = uv_now(expiry->timer.loop),
                     .delay_ms = MS_CERT_CHECK_MAX_MS};
  if (ms_cert_uses_visit(server, check_use, &pass) != 0) {
    /* Nothing was visited: the old list stays as it was. */
    ms_log(MS_LOG_WARN, "certificates: out of memory while checking their expiry; trying again");
  } else {
    while (pass.old_next < expiry->tracked_count)
      left_use(&expiry->tracked[pass.old_next++]);
    free(expiry->tracked);
    expiry->tracked = pass.fresh;
    expiry->tracked_count = pass.fresh_count;
  }
  uv_timer_start(&expiry->timer, on_timer, pass.delay_ms, 0);
}

static void on_timer(uv_timer_t *timer) {
  check(timer->data);
}

int ms_cert_expiry_start(uv_loop_t *loop, ms_server *server, ms_cert_expiry **out) {
  ms_cert_expiry *expiry = calloc(1, sizeof(*expiry));
  if (expiry == NULL) return -1;
  expiry->server = server;
  uv_timer_init(loop, &expiry->timer);
  expiry->timer.data = expiry;
  uv_timer_start(&expiry->timer, on_timer, 0, 0);
  *out = expiry;
  return 0;
}

void ms_cert_expiry_recheck(ms_cert_expiry *expiry) {
  if (expiry == NULL || expiry->stopped) return;
  uv_timer_start(&expiry->timer, on_timer, 0, 0);
}

static void on_close(uv_handle_t *handle) {
  ms_cert_expiry *expiry = handle->data;
  for (size_t i = 0; i < expiry->tracked_count; i++)
    free(expiry->tracked[i].name);
  free(expiry->tracked);
  free(expiry);
}

void ms_cert_expiry_stop(ms_cert_expiry *expiry) {
  if (expiry == NULL || expiry->stopped) return;
  expiry->stopped = true;
  uv_close((uv_handle_t *)&expiry->timer, on_close);
}
