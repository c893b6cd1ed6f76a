/* The control plane's updates, from ADS response to applied configuration.
 * See xds_source.h for the rules; this file is the order of operations. */
#include "sidecar/xds/xds_source.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/mem.h>

#include "certs/certs.h"
#include "common/log.h"
#include "common/version.h"
#include "sidecar/control/cert_expiry.h"
#include "sidecar/xds/xds_backup.h"
#include "sidecar/xds/xds_secrets.h"
#include "sidecar/xds/xds_state.h"
#include "xds/ads/ads_client.h"
#include "xds/proto/type_urls.h"
#include "xds/resources/resources.h"

#define MS_XDS_TICK_MS 1000
/* The backup is written this long after the last accepted update, so that a
 * burst of updates (the first fetch, a rollout) writes it once. */
#define MS_XDS_BACKUP_DELAY_MS 1000

struct ms_xds_source {
  uv_loop_t *loop;
  ms_server *server;
  ms_config *file;     /* the file's configuration: its text and the bootstrap */
  ms_xds_state *state; /* what is in force */
  ms_ads_client *client;
  ms_cert_credential bootstrap; /* xds.tls: our certificate for the control plane, its CA */
  uv_timer_t tick;              /* warming and initial fetch timeouts */
  uv_timer_t backup;            /* a pending write of the backup file */
  uint64_t started_ms;
  bool accepted[4];     /* by ms_xds_kind: a response was accepted on some stream */
  bool fetch_timed_out; /* initial_fetch_timeout_ms passed */
  bool backup_tried;
  bool from_backup; /* serving the backup file's configuration */
  bool stopped;
  bool shadow_logged; /* a control plane's secret named like a local one was logged */
};

/* set_local_secrets names the identity agent's secrets in `state`. */
static int set_local_secrets(const ms_xds_source *source, ms_xds_state *state) {
  const ms_identity_config *identity = &source->file->identity;
  if (!identity->enabled) return 0;
  return ms_xds_state_set_local_secrets(state, identity->certificate_secret,
                                        identity->trust_bundle_secret);
}

/* warn_shadowed says once that the control plane sends a secret the
 * identity agent answers (its bytes are never used). */
static void warn_shadowed(ms_xds_source *source, const Google__Protobuf__Any *const *resources,
                          size_t count) {
  const ms_config *file = source->file;
  for (size_t i = 0; i < count && !source->shadow_logged; i++) {
    ms_xds_resource resource;
    char err[MS_ERR_LEN];
    if (ms_xds_resource_decode_any(resources[i], MS_XDS_TYPE_URL_SECRET, &resource, err,
                                   sizeof(err)) != 0)
      continue;
    if (ms_identity_owns_secret(file, resource.as.secret.name)) {
      source->shadow_logged = true;
      ms_log(MS_LOG_WARN,
             "xds: the control plane sends secret \"%s\"; the identity agent answers that "
             "name, so the control plane's is ignored (logged once)",
             resource.as.secret.name);
    }
    ms_xds_resource_cleanup(&resource);
  }
}

/* ---- applying a state ------------------------------------------------------ */

/* join_errors writes the first problems of a refused rendering into err. */
static void join_errors(const ms_config_errors *errors, char *err, size_t err_len) {
  size_t used =
      (size_t)snprintf(err, err_len, "the configuration these resources make is invalid:");
  for (size_t i = 0; i < errors->count && i < 5 && used < err_len; i++)
    used += (size_t)snprintf(err + used, err_len - used, "%s %s", i ? ";" : "", errors->lines[i]);
  if (errors->count > 5 && used < err_len)
    snprintf(err + used, err_len - used, "; and %zu more", errors->count - 5);
}

/* listener_can_open is the renderer's ms_xds_listener_check: a listener
 * whose address another process holds (or that cannot be bound at all) is
 * left out, with a line at each update while it lasts. */
static bool listener_can_open(const ms_xds_listener *listener, void *arg) {
  ms_xds_source *source = arg;
  char why[MS_ERR_LEN];
  if (ms_server_can_listen(source->server, listener->name, &listener->address, why, sizeof(why)) ==
      0)
    return true;
  ms_log(MS_LOG_ERROR,
         "xds: listener \"%s\" refused: %s; it stays out, the rest of the update applies",
         listener->name, why);
  return false;
}

/* apply_state puts the configuration `state` makes with the file in force,
 * or changes nothing and says why. */
static int apply_state(ms_xds_source *source, ms_xds_state *state, char *err, size_t err_len) {
  ms_xds_state_expire_warming(state, uv_now(source->loop),
                              source->file->xds.initial_fetch_timeout_ms);
  char *text =
      ms_xds_state_render(state, source->file->json, listener_can_open, source, err, err_len);
  if (text == NULL) return -1;
  ms_config *config = NULL;
  ms_config_errors errors = {0};
  int rc = ms_config_parse(text, source->file->path, &config, &errors);
  OPENSSL_cleanse(text, strlen(text));
  free(text);
  if (rc != 0) {
    join_errors(&errors, err, err_len);
    ms_config_errors_cleanup(&errors);
    return -1;
  }
  size_t secret_count = 0;
  const ms_xds_secret *secrets = ms_xds_state_secrets(state, &secret_count);
  ms_secret_set *set = ms_xds_secret_set_new(secrets, secret_count);
  if (set == NULL) {
    snprintf(err, err_len, "out of memory");
    rc = -1;
  } else if ((rc = ms_server_apply_checked(source->server, config, set, err, err_len)) != 0) {
    ms_secret_set_free(set);
  }
  ms_config_free(config);
  return rc;
}

/* resubscribe asks for the endpoints and secrets the clusters in force name. */
static void resubscribe(ms_xds_source *source) {
  static const ms_xds_kind kinds[] = {MS_XDS_KIND_ENDPOINTS, MS_XDS_KIND_SECRET};
  for (size_t k = 0; k < 2; k++) {
    size_t count = 0;
    const char **names = ms_xds_state_wanted(source->state, kinds[k], &count);
    if (names == NULL) continue; /* out of memory: keep the old names */
    ms_ads_client_subscribe(source->client, ms_xds_kind_type_url(kinds[k]), names, count);
    free(names);
  }
}

static void on_backup_timer(uv_timer_t *timer) {
  ms_xds_source *source = timer->data;
  char err[MS_ERR_LEN];
  if (ms_xds_backup_write(source->state, source->file->xds.backup_path, err, sizeof(err)) != 0)
    ms_log(MS_LOG_WARN, "xds: backup not saved: %s", err);
}

static void save_backup_soon(ms_xds_source *source) {
  if (source->file->xds.backup_path == NULL || source->stopped) return;
  uv_timer_start(&source->backup, on_backup_timer, MS_XDS_BACKUP_DELAY_MS, 0);
}

/* rotate: a response that only brings new bytes for the secrets in force
 * (xds_secrets.h). Returns 1 when it was applied, 0 when the full path must
 * run, -1 with `err` to NACK. */
static int rotate(ms_xds_source *source, const Google__Protobuf__Any *const *resources,
                  size_t count, char *err, size_t err_len) {
  size_t current_count = 0;
  const ms_xds_secret *current = ms_xds_state_secrets(source->state, &current_count);
  ms_secret_set *set = NULL;
  int rc = ms_xds_secrets_rotation(current, current_count, resources, count, &set, err, err_len);
  if (rc != 1) return rc;
  if (ms_server_rotate_secrets(source->server, set, err, err_len) < 0) {
    ms_secret_set_free(set);
    return -1;
  }
  MS_STAT_ADD(ms_server_main_stats(source->server), xds_secret_rotation, 1);
  /* In force: the state follows (same shape, so nothing else changes). */
  char why[MS_ERR_LEN];
  if (ms_xds_state_update(source->state, MS_XDS_KIND_SECRET, resources, count, why, sizeof(why)) !=
      0)
    ms_log(MS_LOG_ERROR, "xds: secrets in force but not recorded: %s", why);
  return 1;
}

/* try_backup serves the backup file when nothing was accepted yet. */
static void try_backup(ms_xds_source *source, const char *why) {
  if (source->backup_tried || source->file->xds.backup_path == NULL) return;
  for (int k = 0; k < 4; k++)
    if (source->accepted[k]) return;
  source->backup_tried = true;
  const char *path = source->file->xds.backup_path;
  char err[MS_ERR_LEN];
  ms_xds_state *state = NULL;
  if (ms_xds_backup_read(path, &state, err, sizeof(err)) != 0) {
    ms_log(MS_LOG_WARN, "xds: %s, and no backup to serve: %s", why, err);
    return;
  }
  if (set_local_secrets(source, state) != 0) {
    ms_log(MS_LOG_ERROR, "xds: backup %s not served: out of memory", path);
    ms_xds_state_free(state);
    return;
  }
  if (apply_state(source, state, err, sizeof(err)) != 0) {
    ms_log(MS_LOG_ERROR, "xds: backup %s refused: %s", path, err);
    ms_xds_state_free(state);
    return;
  }
  ms_xds_state_free(source->state);
  source->state = state;
  source->from_backup = true;
  resubscribe(source);
  size_t clusters, warming, listeners;
  ms_xds_state_counts(state, &clusters, &warming, &listeners);
  ms_log(MS_LOG_WARN,
         "xds: %s; serving the last configuration it gave, from %s (%zu cluster%s, %zu "
         "listener%s) until it answers",
         why, path, clusters, ms_plural(clusters), listeners, ms_plural(listeners));
}

/* ---- ADS callbacks ----------------------------------------------------------- */

static char *refuse(ms_xds_source *source, const char *type_url, const char *version,
                    const char *why) {
  MS_STAT_ADD(ms_server_main_stats(source->server), xds_update_rejected, 1);
  char escaped[MS_LOG_ESCAPED_LEN]; /* the control plane's version string */
  ms_log(MS_LOG_WARN,
         "xds update rejected: type=%s version=%s: %s; the configuration in force "
         "stays",
         type_url, ms_log_escape(version, MS_LOG_ESCAPE_MAX, escaped, sizeof(escaped)), why);
  char *message = strdup(why);
  return message ? message : strdup("out of memory");
}

static char *on_response(ms_ads_client *client, const char *type_url, const char *version,
                         const Google__Protobuf__Any *const *resources, size_t count, void *arg) {
  (void)client;
  ms_xds_source *source = arg;
  ms_xds_kind kind;
  if (ms_xds_kind_from_type_url(type_url, &kind) != 0)
    return refuse(source, type_url, version,
                  "unexpected type: this sidecar takes clusters, "
                  "endpoints, listeners and secrets");
  char err[2048];
  uint64_t began_ns = uv_hrtime();
  if (kind == MS_XDS_KIND_SECRET && source->file->identity.enabled)
    warn_shadowed(source, resources, count);
  int rotated = kind == MS_XDS_KIND_SECRET ? rotate(source, resources, count, err, sizeof(err)) : 0;
  if (rotated < 0) return refuse(source, type_url, version, err);
  if (rotated == 0) {
    ms_xds_state *next = ms_xds_state_clone(source->state);
    if (next == NULL) return refuse(source, type_url, version, "out of memory");
    if (ms_xds_state_update(next, kind, resources, count, err, sizeof(err)) != 0 ||
        apply_state(source, next, err, sizeof(err)) != 0) {
      ms_xds_state_free(next);
      return refuse(source, type_url, version, err);
    }
    ms_xds_state_free(source->state);
    source->state = next;
  }
  source->accepted[kind] = true;
  if (source->from_backup) {
    source->from_backup = false;
    ms_log(MS_LOG_INFO, "xds: the control plane answered; the backup is no longer in use");
  }
  MS_STAT_ADD(ms_server_main_stats(source->server), xds_update_success, 1);
  size_t clusters, warming, listeners;
  ms_xds_state_counts(source->state, &clusters, &warming, &listeners);
  char escaped[MS_LOG_ESCAPED_LEN]; /* the control plane's version string */
  ms_log(MS_LOG_INFO,
         "xds update accepted: type=%s version=%s resources=%zu applied_in=%.1fms%s (dynamic: "
         "%zu cluster%s, %zu warming, %zu listener%s)",
         ms_xds_kind_name(kind),
         ms_log_escape(version, MS_LOG_ESCAPE_MAX, escaped, sizeof(escaped)), count,
         (double)(uv_hrtime() - began_ns) / 1e6, rotated ? " rotation" : "", clusters,
         ms_plural(clusters), warming, listeners, ms_plural(listeners));
  if (!rotated) resubscribe(source);
  save_backup_soon(source);
  return NULL;
}

static void on_connection(ms_ads_client *client, bool connected, const char *why, void *arg) {
  (void)client;
  ms_xds_source *source = arg;
  ms_stats *stats = ms_server_main_stats(source->server);
  if (connected) {
    MS_STAT_ADD(stats, xds_stream_established, 1);
    ms_log(MS_LOG_INFO, "xds: connected to %s", source->file->xds.address.text);
    return;
  }
  MS_STAT_ADD(stats, xds_stream_closed, 1);
  ms_log(MS_LOG_WARN, "xds: %s", why ? why : "disconnected");
  try_backup(source, "the control plane is unreachable");
}

static void on_tick(uv_timer_t *timer) {
  ms_xds_source *source = timer->data;
  uint64_t timeout = source->file->xds.initial_fetch_timeout_ms;
  size_t expired = ms_xds_state_expire_warming(source->state, uv_now(source->loop), timeout);
  if (expired)
    ms_log(MS_LOG_WARN,
           "xds: %zu cluster%s still without endpoints or secrets after %" PRIu64
           " ms; not holding readiness for them",
           expired, expired == 1 ? "" : "s", timeout);
  if (!source->fetch_timed_out && uv_now(source->loop) - source->started_ms >= timeout) {
    source->fetch_timed_out = true;
    if (!source->accepted[MS_XDS_KIND_CLUSTER] || !source->accepted[MS_XDS_KIND_LISTENER])
      ms_log(MS_LOG_WARN, "xds: initial fetch timed out after %" PRIu64 " ms", timeout);
    try_backup(source, "the control plane gave nothing within the initial fetch timeout");
  }
}

/* ---- the server's hooks --------------------------------------------------------- */

static const char *not_ready(void *arg) {
  ms_xds_source *source = arg;
  if (source->fetch_timed_out || source->from_backup) return NULL;
  if (!source->accepted[MS_XDS_KIND_CLUSTER] || !source->accepted[MS_XDS_KIND_LISTENER])
    return "waiting for the control plane's first clusters and listeners (at most "
           "xds.initial_fetch_timeout_ms)";
  size_t clusters, warming, listeners;
  ms_xds_state_counts(source->state, &clusters, &warming, &listeners);
  return warming == 0 ? NULL
                      : "waiting for the control plane's clusters to get their endpoints and "
                        "secrets (at most xds.initial_fetch_timeout_ms)";
}

static bool add_type(cJSON *array, const ms_ads_client *client, ms_xds_kind kind) {
  ms_ads_type_status status;
  if (ms_ads_client_type_status(client, ms_xds_kind_type_url(kind), &status) != 0) return true;
  cJSON *item = cJSON_CreateObject();
  if (item == NULL) return false;
  cJSON_AddItemToArray(array, item);
  bool ok = cJSON_AddStringToObject(item, "type_url", status.type_url) &&
            cJSON_AddStringToObject(item, "version_info", status.version_info) &&
            cJSON_AddStringToObject(item, "nonce", status.nonce) &&
            cJSON_AddBoolToObject(item, "wildcard", status.wildcard) &&
            cJSON_AddNumberToObject(item, "acks", (double)status.acks) &&
            cJSON_AddNumberToObject(item, "nacks", (double)status.nacks);
  cJSON *names = cJSON_AddArrayToObject(item, "resource_names");
  for (size_t i = 0; ok && names && i < status.name_count; i++)
    cJSON_AddItemToArray(names, cJSON_CreateString(status.names[i]));
  if (ok && status.nack_message) {
    cJSON *nack = cJSON_AddObjectToObject(item, "last_nack");
    ok = nack && cJSON_AddStringToObject(nack, "version_info", status.nack_version) &&
         cJSON_AddStringToObject(nack, "message", status.nack_message);
  }
  return ok && names;
}

static char *dump_json(void *arg) {
  ms_xds_source *source = arg;
  ms_ads_client_status status;
  ms_ads_client_get_status(source->client, &status);
  size_t clusters, warming, listeners;
  ms_xds_state_counts(source->state, &clusters, &warming, &listeners);
  cJSON *json = cJSON_CreateObject();
  cJSON *plane = cJSON_AddObjectToObject(json, "control_plane");
  bool ok = plane && cJSON_AddStringToObject(plane, "address", source->file->xds.address.text) &&
            cJSON_AddStringToObject(plane, "node_id", source->file->xds.node_id) &&
            cJSON_AddStringToObject(plane, "state", ms_ads_client_state_name(status.state)) &&
            cJSON_AddNumberToObject(plane, "streams", (double)status.streams) &&
            cJSON_AddNumberToObject(plane, "responses", (double)status.responses) &&
            cJSON_AddStringToObject(plane, "last_disconnect", status.last_disconnect) &&
            cJSON_AddBoolToObject(plane, "serving_backup", source->from_backup) &&
            cJSON_AddNumberToObject(json, "dynamic_clusters", (double)clusters) &&
            cJSON_AddNumberToObject(json, "warming_clusters", (double)warming) &&
            cJSON_AddNumberToObject(json, "dynamic_listeners", (double)listeners);
  cJSON *types = cJSON_AddArrayToObject(json, "resource_types");
  static const ms_xds_kind kinds[] = {MS_XDS_KIND_CLUSTER, MS_XDS_KIND_ENDPOINTS,
                                      MS_XDS_KIND_LISTENER, MS_XDS_KIND_SECRET};
  for (size_t k = 0; ok && types && k < 4; k++)
    ok = add_type(types, source->client, kinds[k]);
  char *text = ok && types ? cJSON_PrintUnformatted(json) : NULL;
  cJSON_Delete(json);
  return text;
}

/* SIGHUP: the file again, with the dynamic resources in force. */
static int reload(void *arg) {
  ms_xds_source *source = arg;
  ms_config *file = ms_server_reload_read(source->file->path);
  if (file == NULL) return -1;
  if (!file->xds.enabled || strcmp(file->xds.address.text, source->file->xds.address.text) != 0 ||
      strcmp(file->xds.node_id, source->file->xds.node_id) != 0)
    ms_log(MS_LOG_WARN,
           "xds: changing the control plane or the node needs a restart; the "
           "stream to %s stays",
           source->file->xds.address.text);
  ms_config *previous = source->file;
  source->file = file;
  char err[MS_ERR_LEN];
  if (apply_state(source, source->state, err, sizeof(err)) != 0) {
    ms_server_refuse_config(file, err);
    source->file = previous;
    ms_config_free(file);
    return -1;
  }
  ms_config_free(previous);
  return 0;
}

static void stop(void *arg) {
  ms_xds_source *source = arg;
  if (source->stopped) return;
  source->stopped = true;
  ms_ads_client_close(source->client);
  source->client = NULL;
  uv_close((uv_handle_t *)&source->tick, NULL);
  if (uv_is_active((uv_handle_t *)&source->backup)) on_backup_timer(&source->backup);
  uv_close((uv_handle_t *)&source->backup, NULL);
}

/* ---- life ---------------------------------------------------------------------- */

static void certificates(void *arg, ms_cert_use_visit visit, void *visit_arg) {
  const ms_xds_source *source = arg;
  ms_cert_credential_visit(&source->bootstrap, visit, visit_arg);
}

static void files(void *arg, ms_server_watch_file watch, void *watch_arg) {
  const ms_tls_settings *settings = &((ms_xds_source *)arg)->file->xds.tls.settings;
  const char *paths[] = {settings->certificate, settings->private_key, settings->trusted_ca,
                         settings->password_file};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
    if (paths[i]) watch(paths[i], watch_arg);
}

/* files_changed: xds.tls's files again. New bytes that load become the
 * context of the next channel; the stream under way keeps its own. */
static void files_changed(void *arg) {
  ms_xds_source *source = arg;
  if (source->stopped) return;
  char err[MS_ERR_LEN];
  ms_stats *stats = ms_server_main_stats(source->server);
  int rc = ms_cert_credential_reload(&source->file->xds.tls.settings, "xds.tls", &source->bootstrap,
                                     err, sizeof(err));
  if (rc < 0) {
    MS_STAT_ADD(stats, xds_client_tls_reload_failure, 1);
    ms_log(MS_LOG_ERROR,
           "xds: the control plane's TLS files are refused: %s; the last good "
           "context stays for the next connection",
           err);
  } else if (rc > 0) {
    MS_STAT_ADD(stats, xds_client_tls_reloads, 1);
    ms_ads_client_set_ssl_ctx(source->client, source->bootstrap.ssl_ctx);
    ms_log(MS_LOG_INFO,
           "xds: the control plane's TLS files changed (%zu trusted CA%s); the "
           "next connection to %s uses them, the open stream stays",
           source->bootstrap.ca_count, ms_plural(source->bootstrap.ca_count),
           source->file->xds.address.text);
  }
}

int ms_xds_source_start(uv_loop_t *loop, ms_server *server, ms_config *file, ms_xds_source **out,
                        char *err, size_t err_len) {
  const ms_xds_bootstrap *xds = &file->xds;
  ms_xds_source *source = calloc(1, sizeof(*source));
  if (source == NULL || (source->state = ms_xds_state_new()) == NULL) {
    free(source);
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  source->loop = loop;
  source->server = server;
  source->file = ms_config_up_ref(file);
  source->started_ms = uv_now(loop);
  if (set_local_secrets(source, source->state) != 0) {
    snprintf(err, err_len, "out of memory");
    ms_xds_source_free(source);
    return -1;
  }
  if (ms_cert_credential_load(&xds->tls.settings, "xds.tls", &source->bootstrap, err, err_len) !=
      0) {
    ms_xds_source_free(source);
    return -1;
  }

  ms_ads_metadata_entry *metadata = calloc(xds->metadata_count + 1, sizeof(*metadata));
  if (metadata == NULL) {
    snprintf(err, err_len, "out of memory");
    ms_xds_source_free(source);
    return -1;
  }
  for (size_t i = 0; i < xds->metadata_count; i++)
    metadata[i] = (ms_ads_metadata_entry){xds->metadata_keys[i], xds->metadata_values[i]};
  ms_ads_client_options options = {
      .address = xds->address.text,
      .server_name = xds->tls.server_name,
      .ssl_ctx = source->bootstrap.ssl_ctx,
      .node = {xds->node_id, xds->node_cluster, metadata, xds->metadata_count},
      .user_agent = "mtls-sidecar",
      .user_agent_version = MS_VERSION,
      .keepalive_interval_ms = 30000,
      .token_file = file->identity.enabled ? file->identity.token_file : NULL,
  };
  ms_ads_client_callbacks callbacks = {on_response, on_connection};
  int rc = ms_ads_client_new(loop, &options, &callbacks, source, &source->client);
  free(metadata);
  if (rc != 0) {
    snprintf(err, err_len, "xds: cannot start the ADS stream to %s: %s", xds->address.text,
             uv_strerror(rc));
    ms_xds_source_free(source);
    return -1;
  }
  /* Wildcard CDS and LDS; EDS and SDS follow the clusters. */
  ms_ads_client_subscribe(source->client, ms_xds_kind_type_url(MS_XDS_KIND_CLUSTER), NULL, 0);
  ms_ads_client_subscribe(source->client, ms_xds_kind_type_url(MS_XDS_KIND_LISTENER), NULL, 0);

  uv_timer_init(loop, &source->tick);
  uv_timer_init(loop, &source->backup);
  source->tick.data = source->backup.data = source;
  uv_timer_start(&source->tick, on_tick, MS_XDS_TICK_MS, MS_XDS_TICK_MS);
  ms_server_source hooks = {.not_ready = not_ready,
                            .dump_json = dump_json,
                            .reload = reload,
                            .stop = stop,
                            .certificates = certificates,
                            .files = files,
                            .files_changed = files_changed,
                            .arg = source};
  ms_server_set_source(server, &hooks);
  ms_log(MS_LOG_INFO, "xds: node %s subscribing to %s", xds->node_id, xds->address.text);
  *out = source;
  return 0;
}

void ms_xds_source_free(ms_xds_source *source) {
  if (source == NULL) return;
  ms_xds_state_free(source->state);
  ms_cert_credential_cleanup(&source->bootstrap);
  ms_config_free(source->file);
  free(source);
}
