/* server_jwks.c: the key set that verifies Kubernetes service-account
 * tokens (docs/xds-server.md, "Service-account tokens"). Two sources, either
 * or both:
 *   - a file (--jwks-file), watched like the CA's files: a new key set
 *     replaces the file's old one; a file that does not parse is logged and
 *     shown as last_error while its last good keys stay;
 *   - the API server's JWKS endpoint (--jwks-url, https only), fetched at
 *     start and every --jwks-refresh with xds-server's own token; a failed
 *     fetch keeps the last good keys and is retried sooner (10 s, doubling,
 *     jittered, never later than the refresh). A token naming an unknown key
 *     asks for a fetch at once (xds_jwks_refresh_soon, rate-limited).
 * Tokens verify against the union of the two: a file can add keys (another
 * cluster, a key not yet published) to what the API server serves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "certs/certs.h"
#include "common/file.h"
#include "common/log.h"
#include "common/time.h"
#include "xds-server/https_get.h"
#include "xds-server/server_internal.h"

#define FIRST_RETRY_MS 10000
#define KUBERNETES_TOKEN "/var/run/secrets/kubernetes.io/serviceaccount/token"
#define KUBERNETES_CA "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

/* ---- the key set ---------------------------------------------------------------- */

static void source_cleanup(xds_jwks_source *source) {
  free(source->document);
  memset(source, 0, sizeof(*source));
}

/* union_document returns {"keys": [file's keys..., URL's keys...]} (caller
 * frees), or NULL when memory ran out. */
static char *union_document(const xds_jwks *jwks) {
  cJSON *root = cJSON_CreateObject();
  cJSON *keys = cJSON_AddArrayToObject(root, "keys");
  const xds_jwks_source *sources[2] = {&jwks->file, &jwks->remote};
  for (int i = 0; i < 2; i++) {
    if (sources[i]->document == NULL) continue;
    cJSON *doc = cJSON_ParseWithLength(sources[i]->document, sources[i]->document_len);
    cJSON *item = NULL;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(doc, "keys")) {
      cJSON_AddItemToArray(keys, cJSON_Duplicate(item, true));
    }
    cJSON_Delete(doc);
  }
  char *text = keys != NULL ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  return text;
}

/* rebuild makes the current key set from the sources' last good documents. */
static void rebuild(xds_jwks *jwks) {
  const char *single = NULL;
  size_t single_len = 0;
  if (jwks->file.document == NULL || jwks->remote.document == NULL) {
    const xds_jwks_source *only = jwks->file.document != NULL ? &jwks->file : &jwks->remote;
    single = only->document;
    single_len = only->document_len;
    if (single == NULL) return;
  }
  char *merged = single == NULL ? union_document(jwks) : NULL;
  ms_jwks *next = NULL;
  char err[MS_ERR_LEN];
  if (single == NULL && merged == NULL) {
    ms_log(MS_LOG_ERROR, "jwks: out of memory merging the key sets");
    return;
  }
  int rc = single != NULL ? ms_jwks_parse(single, single_len, &next, err, sizeof(err))
                          : ms_jwks_parse(merged, strlen(merged), &next, err, sizeof(err));
  free(merged);
  if (rc != 0) {
    ms_log(MS_LOG_ERROR, "jwks: the merged key set does not parse: %s", err);
    return;
  }
  ms_jwks_free(jwks->current);
  jwks->current = next;
  jwks->current_since_ms = xds_now_ms();
  ms_log(MS_LOG_INFO,
         "jwks: tokens now verify against %zu key%s (%zu from the file, %zu from the URL)",
         ms_jwks_count(next), ms_plural(ms_jwks_count(next)), jwks->file.key_count,
         jwks->remote.key_count);
}

static void source_attempt(xds_jwks_source *source) {
  source->attempts++;
  source->attempted_at_ms = xds_now_ms();
}

/* source_failed records why an attempt failed; the source keeps its keys. */
static void source_failed(xds_jwks_source *source, const char *what, const char *error) {
  source->failures++;
  if (strcmp(error, source->last_error) != 0)
    ms_log(MS_LOG_WARN, "jwks: %s: %s; %s", what, error,
           source->document != NULL ? "keeping its last good keys" : "it has no keys yet");
  snprintf(source->last_error, sizeof(source->last_error), "%s", error);
}

/* source_offer takes `text` as the source's document when it parses (0),
 * else records why not (-1). Rebuilds the key set when the keys changed. */
static int source_offer(xds_jwks *jwks, xds_jwks_source *source, const char *what, const char *text,
                        size_t len) {
  int64_t now = xds_now_ms();
  ms_jwks *keys = NULL;
  char err[MS_ERR_LEN];
  if (ms_jwks_parse(text, len, &keys, err, sizeof(err)) != 0) {
    source_failed(source, what, err);
    return -1;
  }
  size_t count = ms_jwks_count(keys);
  ms_jwks_free(keys);
  source->refreshed_at_ms = now;
  source->last_error[0] = '\0';
  if (source->document != NULL && source->document_len == len &&
      memcmp(source->document, text, len) == 0)
    return 0;
  char *copy = malloc(len + 1);
  if (copy == NULL) {
    source_failed(source, what, "out of memory");
    return -1;
  }
  memcpy(copy, text, len);
  copy[len] = '\0';
  free(source->document);
  source->document = copy;
  source->document_len = len;
  source->key_count = count;
  source->loaded_at_ms = now;
  ms_log(MS_LOG_INFO, "jwks: %s: keys loaded: %zu", what, count);
  rebuild(jwks);
  return 0;
}

/* ---- the file ----------------------------------------------------------------- */

static int read_file_source(xds_jwks *jwks) {
  char *text = NULL;
  size_t len = 0;
  char err[MS_ERR_LEN], what[1100];
  snprintf(what, sizeof(what), "the key set file %s", jwks->file_path);
  source_attempt(&jwks->file);
  if (ms_file_read(jwks->file_path, &text, &len, err, sizeof(err)) != 0) {
    source_failed(&jwks->file, what, err);
    return -1;
  }
  int rc = source_offer(jwks, &jwks->file, what, text, len);
  free(text);
  return rc;
}

static void on_file_changed(void *arg) {
  read_file_source(arg);
}

/* ---- the URL ------------------------------------------------------------------- */

static void fetch_start(xds_jwks *jwks);

static void on_fetch_timer(uv_timer_t *timer) {
  fetch_start(timer->data);
}

/* schedule arms the next fetch in about `delay_ms` (0.9x to 1.1x, so that
 * many servers do not fetch in step). */
static void schedule(xds_jwks *jwks, int64_t delay_ms) {
  uint32_t random = 0;
  RAND_bytes((uint8_t *)&random, sizeof(random));
  int64_t jittered = delay_ms * 9 / 10 + (int64_t)(random % (uint32_t)(delay_ms / 5 + 1));
  jwks->next_fetch_ms = xds_now_ms() + jittered;
  uv_timer_start(&jwks->fetch_timer, on_fetch_timer, (uint64_t)jittered, 0);
}

/* retry_later schedules the fetch after a failure: 10 s, doubling, never
 * later than the refresh. */
static void retry_later(xds_jwks *jwks) {
  int64_t delay = jwks->retry_ms < jwks->refresh_ms ? jwks->retry_ms : jwks->refresh_ms;
  if (jwks->retry_ms < jwks->refresh_ms) jwks->retry_ms *= 2;
  schedule(jwks, delay);
}

static void fetch_failed(xds_jwks *jwks, const char *error) {
  source_failed(&jwks->remote, jwks->url, error);
  retry_later(jwks);
}

/* printable_prefix copies the start of a body for an error message. */
static void printable_prefix(const char *body, size_t len, char *out, size_t out_len) {
  size_t n = 0;
  for (size_t i = 0; i < len && n + 4 < out_len && i < 120; i++)
    out[n++] = body[i] >= 0x20 && body[i] < 0x7f ? body[i] : ' ';
  if (len > 120 && n + 4 < out_len) n += (size_t)snprintf(out + n, out_len - n, "...");
  out[n] = '\0';
}

static void on_fetched(const ms_https_get_result *result, void *arg) {
  xds_jwks *jwks = arg;
  jwks->fetch = NULL;
  source_attempt(&jwks->remote);
  char error[1024];
  if (result->error != NULL) {
    fetch_failed(jwks, result->error);
    return;
  }
  if (result->status != 200) {
    char body[160];
    printable_prefix(result->body, result->body_len, body, sizeof(body));
    if (result->status == 401 || result->status == 403)
      snprintf(error, sizeof(error),
               "HTTP %d: the API server refused xds-server's token (%s): it must be readable, "
               "unexpired, and its service account allowed to get /openid/v1/jwks (ClusterRole "
               "system:service-account-issuer-discovery): %s",
               result->status, jwks->token_path != NULL ? jwks->token_path : "none sent", body);
    else
      snprintf(error, sizeof(error), "HTTP %d instead of 200: %s", result->status, body);
    fetch_failed(jwks, error);
    return;
  }
  if (source_offer(jwks, &jwks->remote, jwks->url, result->body, result->body_len) != 0) {
    retry_later(jwks);
    return;
  }
  jwks->retry_ms = FIRST_RETRY_MS;
  schedule(jwks, jwks->refresh_ms);
}

/* read_token returns "Bearer TOKEN" from the token file, in memory the
 * caller wipes and frees (length in *out_len), or NULL with `err`. */
static char *read_token(const char *path, size_t *out_len, char *err, size_t err_len) {
  char *token = NULL;
  size_t len = 0;
  if (ms_file_read(path, &token, &len, err, err_len) != 0) return NULL;
  while (len > 0 && (token[len - 1] == '\n' || token[len - 1] == '\r' || token[len - 1] == ' ' ||
                     token[len - 1] == '\t'))
    token[--len] = '\0';
  char *header = NULL;
  if (len == 0 || strpbrk(token, "\r\n") != NULL) {
    snprintf(err, err_len, "the token file %s is empty or holds several lines", path);
  } else if ((header = malloc(len + 8)) == NULL) {
    snprintf(err, err_len, "out of memory");
  } else {
    *out_len = len + 7;
    memcpy(header, "Bearer ", 7);
    memcpy(header + 7, token, len + 1);
  }
  OPENSSL_cleanse(token, len);
  free(token);
  return header;
}

/* fetch_start begins a fetch of the URL; the CA bundle and the token are
 * read each time (kubelet rotates the token, and may the CA). */
static void fetch_start(xds_jwks *jwks) {
  if (jwks->fetch != NULL || jwks->url == NULL) return;
  char err[MS_ERR_LEN], error[MS_ERR_LEN + 64];
  ms_tls_settings settings = {
      .trusted_ca = jwks->ca_path,
      .verify = true,
      .min_version = TLS1_2_VERSION,
      .max_version = TLS1_3_VERSION,
  };
  SSL_CTX *ctx = NULL;
  if (ms_client_ctx_load(&settings, &ctx, err, sizeof(err)) != 0) {
    source_attempt(&jwks->remote);
    snprintf(error, sizeof(error), "the CA bundle (--jwks-ca): %s", err);
    fetch_failed(jwks, error);
    return;
  }
  char *authorization = NULL;
  size_t authorization_len = 0;
  if (jwks->token_path != NULL && (authorization = read_token(jwks->token_path, &authorization_len,
                                                              err, sizeof(err))) == NULL) {
    SSL_CTX_free(ctx);
    source_attempt(&jwks->remote);
    snprintf(error, sizeof(error), "xds-server's token (--jwks-token): %s", err);
    fetch_failed(jwks, error);
    return;
  }
  ms_https_get_request request = {
      .url = jwks->url,
      .ssl_ctx = ctx,
      .authorization = authorization,
      .accept = "application/json",
      .max_body_bytes = MS_HTTPS_GET_DEFAULT_MAX_BODY,
      .timeout_ms = jwks->fetch_timeout_ms,
  };
  int rc =
      ms_https_get_start(jwks->loop, &request, on_fetched, jwks, &jwks->fetch, err, sizeof(err));
  SSL_CTX_free(ctx);
  if (authorization != NULL) OPENSSL_cleanse(authorization, authorization_len);
  free(authorization);
  if (rc != 0) {
    jwks->fetch = NULL;
    source_attempt(&jwks->remote);
    fetch_failed(jwks, err);
  }
}

bool xds_jwks_refresh_soon(xds_jwks *jwks) {
  if (jwks->url == NULL || jwks->open_handles == 0) return false;
  if (jwks->fetch != NULL) return true;
  int64_t now = xds_now_ms();
  if (jwks->soon_at_ms != 0 && now - jwks->soon_at_ms < XDS_JWKS_SOON_INTERVAL_MS) return false;
  jwks->soon_at_ms = now;
  ms_log(MS_LOG_INFO, "jwks: a token names a key the set does not hold: fetching %s now",
         jwks->url);
  uv_timer_stop(&jwks->fetch_timer);
  fetch_start(jwks);
  return true;
}

/* ---- life ------------------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *handle) {
  xds_jwks *jwks = handle->data;
  xds_server_handle_closed(jwks->server);
}

/* resolve_url turns "kubernetes" into the in-cluster API server's JWKS URL
 * (with its CA and the pod's token as defaults); any other URL must be
 * https with --jwks-ca. */
static int resolve_url(xds_jwks *jwks, const ms_xds_server_options *o, char *err, size_t err_len) {
  const char *ca = o->jwks_ca, *token = o->jwks_token;
  char url[512];
  if (strcmp(o->jwks_url, "kubernetes") == 0) {
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    if (host == NULL || port == NULL || host[0] == '\0') {
      snprintf(err, err_len,
               "--jwks-url kubernetes: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are "
               "not set (not in a pod?); give the API server's URL, like "
               "https://10.0.0.1:443/openid/v1/jwks");
      return -1;
    }
    bool v6 = strchr(host, ':') != NULL;
    snprintf(url, sizeof(url), "https://%s%s%s:%s/openid/v1/jwks", v6 ? "[" : "", host,
             v6 ? "]" : "", port);
    if (ca == NULL) ca = KUBERNETES_CA;
    if (token == NULL) token = KUBERNETES_TOKEN;
  } else {
    if (strncmp(o->jwks_url, "https://", 8) != 0) {
      snprintf(err, err_len, "--jwks-url %s: only https:// URLs (or \"kubernetes\") are fetched",
               o->jwks_url);
      return -1;
    }
    if (ca == NULL) {
      snprintf(err, err_len, "--jwks-url %s needs --jwks-ca, the CAs that sign its server",
               o->jwks_url);
      return -1;
    }
    snprintf(url, sizeof(url), "%s", o->jwks_url);
  }
  jwks->url = strdup(url);
  jwks->ca_path = strdup(ca);
  jwks->token_path = token != NULL ? strdup(token) : NULL;
  if (jwks->url == NULL || jwks->ca_path == NULL || (token != NULL && jwks->token_path == NULL)) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  return 0;
}

int xds_jwks_init(xds_jwks *jwks, ms_xds_server *server, uv_loop_t *loop,
                  const ms_xds_server_options *o, char *err, size_t err_len) {
  memset(jwks, 0, sizeof(*jwks));
  jwks->server = server;
  jwks->loop = loop;
  jwks->refresh_ms = (o->jwks_refresh_seconds > 0 ? o->jwks_refresh_seconds : 300) * 1000;
  jwks->retry_ms = FIRST_RETRY_MS;
  jwks->fetch_timeout_ms = MS_HTTPS_GET_DEFAULT_TIMEOUT_MS;
  if (o->jwks_url != NULL && resolve_url(jwks, o, err, err_len) != 0) {
    xds_jwks_cleanup(jwks);
    return -1;
  }
  char *dir = NULL;
  if (o->jwks_file != NULL) {
    if ((jwks->file_path = strdup(o->jwks_file)) == NULL ||
        (dir = xds_dir_of(o->jwks_file)) == NULL) {
      snprintf(err, err_len, "out of memory");
      xds_jwks_cleanup(jwks);
      return -1;
    }
    if (read_file_source(jwks) != 0) {
      snprintf(err, err_len, "--jwks-file: %s", jwks->file.last_error);
      free(dir);
      xds_jwks_cleanup(jwks);
      return -1;
    }
    const char *dirs[1] = {dir};
    xds_watch_start(&jwks->watch, server, loop, dirs, 1, o->debounce_ms, "jwks", on_file_changed,
                    jwks);
    free(dir);
  }
  uv_timer_init(loop, &jwks->fetch_timer);
  jwks->fetch_timer.data = jwks;
  jwks->open_handles = 1;
  server->open_handles++;
  if (jwks->url != NULL) uv_timer_start(&jwks->fetch_timer, on_fetch_timer, 0, 0);
  return 0;
}

void xds_jwks_close(xds_jwks *jwks) {
  xds_watch_close(&jwks->watch);
  ms_https_get_cancel(jwks->fetch);
  jwks->fetch = NULL;
  if (jwks->open_handles == 0) return;
  uv_close((uv_handle_t *)&jwks->fetch_timer, on_handle_closed);
  jwks->open_handles = 0;
}

void xds_jwks_cleanup(xds_jwks *jwks) {
  ms_jwks_free(jwks->current);
  source_cleanup(&jwks->file);
  source_cleanup(&jwks->remote);
  free(jwks->file_path);
  free(jwks->url);
  free(jwks->ca_path);
  free(jwks->token_path);
  memset(jwks, 0, sizeof(*jwks));
}

const ms_jwks *xds_jwks_current(const xds_jwks *jwks) {
  return jwks->current;
}

void xds_jwks_expect(const xds_jwks *jwks, ms_jwt_expect *out) {
  const ms_xds_server_options *o = &jwks->server->options;
  memset(out, 0, sizeof(*out));
  out->issuer = o->token_issuer;
  out->audience = o->token_audience;
  out->skew_seconds = o->token_skew_seconds;
  out->now = xds_now_ms() / 1000;
}

void xds_jwks_why_none(const xds_jwks *jwks, char *out, size_t out_len) {
  if (jwks->url == NULL && jwks->file_path == NULL) {
    snprintf(out, out_len, "xds-server accepts no tokens: it has no --jwks-file or --jwks-url");
  } else if (jwks->remote.last_error[0] != '\0') {
    snprintf(out, out_len, "xds-server has no key set to verify tokens yet: fetching %s failed: %s",
             jwks->url, jwks->remote.last_error);
  } else {
    snprintf(out, out_len, "xds-server has no key set to verify tokens yet: %s not fetched yet",
             jwks->url != NULL ? jwks->url : "the key set was");
  }
}

/* ---- status ------------------------------------------------------------------------ */

static void add_time(cJSON *object, const char *name, int64_t unix_ms) {
  if (unix_ms == 0) return;
  char when[32];
  ms_time_rfc3339(unix_ms / 1000, when, sizeof(when));
  cJSON_AddStringToObject(object, name, when);
}

/* add_kids lists the "kid" of each key in a document. */
static void add_kids(cJSON *object, const char *document, size_t len) {
  cJSON *kids = cJSON_AddArrayToObject(object, "kids");
  if (document == NULL) return;
  cJSON *doc = cJSON_ParseWithLength(document, len);
  cJSON *key = NULL;
  cJSON_ArrayForEach(key, cJSON_GetObjectItemCaseSensitive(doc, "keys")) {
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(key, "kid");
    if (cJSON_IsString(kid)) cJSON_AddItemToArray(kids, cJSON_CreateString(kid->valuestring));
  }
  cJSON_Delete(doc);
}

static cJSON *source_json(const xds_jwks_source *source, const char *type, const char *name,
                          const char *value) {
  cJSON *out = cJSON_CreateObject();
  cJSON_AddStringToObject(out, "type", type);
  cJSON_AddStringToObject(out, name, value);
  cJSON_AddNumberToObject(out, "key_count", (double)source->key_count);
  add_kids(out, source->document, source->document_len);
  add_time(out, "loaded_at", source->loaded_at_ms);
  add_time(out, "last_refresh", source->refreshed_at_ms);
  add_time(out, "last_attempt", source->attempted_at_ms);
  cJSON_AddNumberToObject(out, "attempts", (double)source->attempts);
  cJSON_AddNumberToObject(out, "failures", (double)source->failures);
  if (source->last_error[0] != '\0') cJSON_AddStringToObject(out, "last_error", source->last_error);
  return out;
}

void xds_jwks_status(const xds_jwks *jwks, void *cjson_object) {
  cJSON *out = cjson_object;
  const ms_xds_server_options *o = &jwks->server->options;
  cJSON_AddBoolToObject(out, "loaded", jwks->current != NULL);
  cJSON_AddNumberToObject(out, "key_count",
                          jwks->current != NULL ? (double)ms_jwks_count(jwks->current) : 0);
  cJSON *kids = cJSON_AddArrayToObject(out, "kids");
  const xds_jwks_source *sources[2] = {&jwks->file, &jwks->remote};
  for (int i = 0; i < 2; i++) {
    cJSON *scratch = cJSON_CreateObject();
    add_kids(scratch, sources[i]->document, sources[i]->document_len);
    cJSON *kid = NULL;
    cJSON_ArrayForEach(kid, cJSON_GetObjectItemCaseSensitive(scratch, "kids")) {
      cJSON_AddItemToArray(kids, cJSON_CreateString(kid->valuestring));
    }
    cJSON_Delete(scratch);
  }
  add_time(out, "loaded_at", jwks->current_since_ms);
  cJSON_AddStringToObject(out, "issuer", o->token_issuer);
  cJSON_AddStringToObject(out, "audience", o->token_audience);
  cJSON_AddNumberToObject(out, "skew_seconds", (double)o->token_skew_seconds);
  cJSON *list = cJSON_AddArrayToObject(out, "sources");
  if (jwks->file_path != NULL)
    cJSON_AddItemToArray(list, source_json(&jwks->file, "file", "path", jwks->file_path));
  if (jwks->url != NULL) {
    cJSON *remote = source_json(&jwks->remote, "url", "url", jwks->url);
    cJSON_AddNumberToObject(remote, "refresh_seconds", (double)(jwks->refresh_ms / 1000));
    add_time(remote, "next_fetch", jwks->fetch != NULL ? 0 : jwks->next_fetch_ms);
    cJSON_AddBoolToObject(remote, "fetching", jwks->fetch != NULL);
    cJSON_AddItemToArray(list, remote);
  }
  const char *last_error =
      jwks->remote.last_error[0] != '\0' ? jwks->remote.last_error : jwks->file.last_error;
  if (last_error[0] != '\0') cJSON_AddStringToObject(out, "last_error", last_error);
}
