/* server_webhook.c: the Kubernetes admission webhook, as istiod serves it
 * for Istio: HTTPS (common/http_server.h with its TLS) on
 * --webhook-address, POST with Content-Type application/json:
 *   /inject            the pod's annotation decides (namespaces not labelled)
 *   /inject-namespace  the namespace is labelled mtls-sidecar/inject=true
 *   /validate          after every mutation: the sidecar still native
 * The answer is server_review.c's; this file is the HTTP around it, the
 * counters of /status's "webhook" section, and one log line per decision
 * (never the object). The serving certificate (--webhook-cert and
 * --webhook-key, else the ADS pair) is watched and reloaded like the ADS
 * one (server_tls.c): new connections get the new one, open ones keep
 * theirs.
 *
 * Caps (docs/xds-server.md, "The admission webhook"), each counted: the
 * body (--webhook-max-body-bytes, 1 MiB: a pod with many containers and
 * its managedFields fits; more is 413), connections
 * (--webhook-max-connections, 256: the oldest idle one is closed for a new
 * one), the request timeout including the handshake
 * (--webhook-request-timeout, 10 s, the API server's own default timeout
 * for a webhook call), a keep-alive connection's idle time between reviews
 * (--webhook-idle-timeout, 120 s: longer than the 90 s after which Go's
 * HTTP clients, the API server's, drop an idle connection, so that the
 * client closes first and never sends a review into a connection the
 * server is closing; idle connections are the first evicted). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "common/time.h"
#include "common/version.h"
#include "xds-server/server_internal.h"

static int answer_text(int status, const char *text, ms_http_response *out) {
  return ms_http_response_copy(out, status, "text/plain", text);
}

/* content_type_is_json: application/json, with parameters or not. */
static bool content_type_is_json(const ms_http_request *request) {
  static const char json[] = "application/json";
  size_t len = request->content_type_len;
  if (len == SIZE_MAX || len > MS_HTTP_MAX_NAME || len < sizeof(json) - 1) return false;
  if (strncasecmp(request->content_type, json, sizeof(json) - 1) != 0) return false;
  char next = len > sizeof(json) - 1 ? request->content_type[sizeof(json) - 1] : ';';
  return next == ';' || next == ' ';
}

/* log_review writes the decision's one line: the path, the pod and the
 * outcome, or the outcome and its sentence (which names the pod). */
static void log_review(xds_webhook *webhook, const char *path, const xds_review *review) {
  char pod[MS_LOG_ESCAPED_LEN], reason[sizeof(review->reason) * 4 + 4];
  ms_log_escape(review->reason, sizeof(review->reason), reason, sizeof(reason));
  if (review->outcome == XDS_REVIEW_BAD_REQUEST) {
    uint64_t times = ms_log_limit_tick(&webhook->bad_log, xds_now_ms(), 1000);
    if (times > 0)
      ms_log(MS_LOG_WARN, "webhook: %s: bad request: %s (%llu time%s since the last line)", path,
             reason, (unsigned long long)times, ms_plural(times));
    return;
  }
  if (review->reason[0] != '\0') {
    ms_log(MS_LOG_INFO, "webhook: %s: %s: %s", path, xds_review_outcome_text(review->outcome),
           reason);
    return;
  }
  ms_log(MS_LOG_INFO, "webhook: %s pod %s: %s", path,
         ms_log_escape(review->pod, MS_LOG_ESCAPE_MAX, pod, sizeof(pod)),
         xds_review_outcome_text(review->outcome));
}

static int respond(void *arg, const ms_http_request *request, uint64_t now_ms,
                   ms_http_response *out) {
  xds_webhook *webhook = arg;
  (void)now_ms;
  static const struct {
    const char *path;
    xds_webhook_path which;
  } paths[] = {
      {"/inject", XDS_WEBHOOK_INJECT},
      {"/inject-namespace", XDS_WEBHOOK_INJECT_NAMESPACE},
      {"/validate", XDS_WEBHOOK_VALIDATE},
  };
  size_t path_count = sizeof(paths) / sizeof(paths[0]), k = 0;
  while (k < path_count && !xds_path_is(request, paths[k].path))
    k++;
  if (k == path_count) {
    webhook->not_found++;
    return answer_text(404,
                       "not found: the webhook serves POST /inject, /inject-namespace and "
                       "/validate\n",
                       out);
  }
  if (request->method != HTTP_POST) {
    webhook->wrong_method++;
    out->allow = "POST";
    return answer_text(405, "only POST is served: an AdmissionReview\n", out);
  }
  if (!content_type_is_json(request)) {
    webhook->wrong_type++;
    return answer_text(415, "the AdmissionReview must come as Content-Type: application/json\n",
                       out);
  }
  xds_review review;
  if (xds_webhook_review(&webhook->settings, paths[k].which, request->body, request->body_len,
                         &review) != 0)
    return -ENOMEM;
  webhook->reviews++;
  webhook->outcomes[review.outcome]++;
  log_review(webhook, paths[k].path, &review);
  out->status = review.http_status;
  out->content_type = review.content_type;
  out->body = review.body; /* the server frees it */
  out->body_len = review.body_len;
  return 0;
}

static int refuse(void *arg, int status, ms_http_response *out) {
  xds_webhook *webhook = arg;
  out->close = true;
  if (status == 413) {
    webhook->body_too_large++;
    char text[200];
    snprintf(text, sizeof(text),
             "the AdmissionReview is larger than the webhook's cap of %zu bytes "
             "(--webhook-max-body-bytes)\n",
             webhook->limits.max_body_bytes);
    return answer_text(413, text, out);
  }
  webhook->requests_refused++;
  return answer_text(status, "the request is not one HTTP/1.1 request the webhook reads\n", out);
}

static void count(void *arg, ms_http_server_event event) {
  xds_webhook *webhook = arg;
  switch (event) {
    case MS_HTTP_EVENT_EVICTED:
      webhook->evicted++;
      break;
    case MS_HTTP_EVENT_TIMEOUT:
      webhook->timeouts++;
      break;
    case MS_HTTP_EVENT_IDLE:
      webhook->idle_closed++;
      break;
    case MS_HTTP_EVENT_REFUSED: /* counted in refuse, by status */
      break;
    case MS_HTTP_EVENT_TLS_FAILED:
      webhook->tls_failures++;
      break;
  }
}

int xds_webhook_start(xds_webhook *webhook, ms_xds_server *server, char *err, size_t err_len) {
  const ms_xds_server_options *o = &server->options;
  memset(webhook, 0, sizeof(*webhook));
  webhook->server = server;
  if ((o->webhook_cert == NULL) != (o->webhook_key == NULL)) {
    snprintf(err, err_len,
             "--webhook-cert and --webhook-key go together (without both, the webhook serves "
             "--tls-cert and --tls-key)");
    return -1;
  }
  struct sockaddr_storage address;
  if (xds_parse_ip_port(o->webhook_address, &address) != 0) {
    snprintf(err, err_len, "--webhook-address %s: expected IP:port, like 0.0.0.0:15017",
             o->webhook_address);
    return -1;
  }
  ms_inject_settings_init(&webhook->settings);
  if (o->inject_image != NULL) webhook->settings.image = o->inject_image;
  if (o->inject_tag != NULL) webhook->settings.version = o->inject_tag;
  if (o->inject_config_map != NULL) webhook->settings.config_map = o->inject_config_map;
  if (o->control_plane_namespace != NULL)
    webhook->settings.control_plane_namespace = o->control_plane_namespace;
  webhook->settings.token_audience = o->token_audience;
  webhook->limits = (ms_http_server_limits){
      .max_connections = o->webhook_max_connections ? o->webhook_max_connections
                                                    : MS_XDS_WEBHOOK_DEFAULT_MAX_CONNECTIONS,
      .request_timeout_ms = o->webhook_request_timeout_ms
                                ? o->webhook_request_timeout_ms
                                : MS_XDS_WEBHOOK_DEFAULT_REQUEST_TIMEOUT_MS,
      .idle_timeout_ms = o->webhook_idle_timeout_ms ? o->webhook_idle_timeout_ms
                                                    : MS_XDS_WEBHOOK_DEFAULT_IDLE_TIMEOUT_MS,
      .max_head_bytes = 16384,
      .max_body_bytes = o->webhook_max_body_bytes ? o->webhook_max_body_bytes
                                                  : MS_XDS_WEBHOOK_DEFAULT_MAX_BODY_BYTES,
  };
  if (xds_serving_init(&webhook->serving, server, XDS_SERVING_WEBHOOK, err, err_len) != 0)
    return -1;
  ms_http_server_handler handler = {
      .respond = respond,
      .refuse = refuse,
      .count = count,
      .arg = webhook,
      .name = "webhook",
      .keep_body = true,
  };
  int rc = ms_http_server_start(server->loop, (const struct sockaddr *)&address, &webhook->limits,
                                &handler, &webhook->http);
  if (rc != 0) {
    snprintf(err, err_len, "cannot listen on %s (--webhook-address): %s", o->webhook_address,
             uv_strerror(rc));
    xds_serving_cleanup(&webhook->serving);
    return -1;
  }
  ms_http_server_set_ssl_ctx(webhook->http, webhook->serving.ctx);
  webhook->port = ms_http_server_port(webhook->http);
  xds_serving_watch(&webhook->serving, server->loop, o->debounce_ms);
  return 0;
}

void xds_webhook_set_ssl_ctx(ms_xds_server *server, SSL_CTX *ctx) {
  if (server->has_webhook && server->webhook.http != NULL)
    ms_http_server_set_ssl_ctx(server->webhook.http, ctx);
}

void xds_webhook_close(xds_webhook *webhook) {
  ms_http_server_close(webhook->http); /* no handler call after this */
  webhook->http = NULL;
  xds_serving_close(&webhook->serving);
}

void xds_webhook_cleanup(xds_webhook *webhook) {
  xds_serving_cleanup(&webhook->serving);
}

void xds_webhook_status(const xds_webhook *webhook, void *cjson_object) {
  cJSON *out = cjson_object;
  cJSON_AddStringToObject(out, "address", webhook->server->options.webhook_address);
  cJSON_AddNumberToObject(out, "port", webhook->port);
  cJSON_AddNumberToObject(out, "reviews", (double)webhook->reviews);
  static const char *const keys[XDS_REVIEW_OUTCOME_COUNT] = {
      [XDS_REVIEW_BAD_REQUEST] = "bad_requests",
      [XDS_REVIEW_INJECTED] = "injected",
      [XDS_REVIEW_NOT_REQUESTED] = "not_requested",
      [XDS_REVIEW_OPTED_OUT] = "opted_out",
      [XDS_REVIEW_NAMESPACE_SKIPPED] = "namespace_skipped",
      [XDS_REVIEW_ALREADY_INJECTED] = "already_injected",
      [XDS_REVIEW_REFUSED] = "refused",
      [XDS_REVIEW_VALID] = "allowed_by_validate",
      [XDS_REVIEW_DENIED] = "denied_by_validate",
      [XDS_REVIEW_IGNORED] = "ignored",
  };
  for (int i = 0; i < XDS_REVIEW_OUTCOME_COUNT; i++)
    cJSON_AddNumberToObject(out, keys[i], (double)webhook->outcomes[i]);
  cJSON *http = cJSON_AddObjectToObject(out, "http");
  cJSON_AddNumberToObject(http, "body_too_large", (double)webhook->body_too_large);
  cJSON_AddNumberToObject(http, "requests_refused", (double)webhook->requests_refused);
  cJSON_AddNumberToObject(http, "wrong_method", (double)webhook->wrong_method);
  cJSON_AddNumberToObject(http, "wrong_content_type", (double)webhook->wrong_type);
  cJSON_AddNumberToObject(http, "not_found", (double)webhook->not_found);
  cJSON_AddNumberToObject(http, "timeouts", (double)webhook->timeouts);
  cJSON_AddNumberToObject(http, "idle_closed", (double)webhook->idle_closed);
  cJSON_AddNumberToObject(http, "evicted", (double)webhook->evicted);
  cJSON_AddNumberToObject(http, "tls_failures", (double)webhook->tls_failures);
  cJSON *limits = cJSON_AddObjectToObject(out, "limits");
  cJSON_AddNumberToObject(limits, "max_body_bytes", (double)webhook->limits.max_body_bytes);
  cJSON_AddNumberToObject(limits, "max_connections", (double)webhook->limits.max_connections);
  cJSON_AddNumberToObject(limits, "request_timeout_ms", (double)webhook->limits.request_timeout_ms);
  cJSON_AddNumberToObject(limits, "idle_timeout_ms", (double)webhook->limits.idle_timeout_ms);
  cJSON *inject = cJSON_AddObjectToObject(out, "inject");
  cJSON_AddStringToObject(inject, "image", webhook->settings.image);
  cJSON_AddStringToObject(inject, "tag", webhook->settings.version);
  cJSON_AddStringToObject(inject, "config_map", webhook->settings.config_map);
  cJSON_AddStringToObject(inject, "token_audience", webhook->settings.token_audience);
  cJSON_AddStringToObject(inject, "control_plane_namespace",
                          webhook->settings.control_plane_namespace);
  xds_serving_status(&webhook->serving, cJSON_AddObjectToObject(out, "serving_certificate"));
}
