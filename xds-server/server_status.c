/* server_status.c: xds-server's status endpoint, plain HTTP/1.1 on loopback:
 * GET /status answers the JSON document of ms_xds_server_status_json (like
 * `istioctl proxy-status`: every connected node, its types' ACKed and sent
 * versions, its last NACK, its certificate; the CA; the files and their
 * errors). For probes, GET /healthz (200 "ok": the loop answers; constant
 * size, whatever the number of sidecars) and GET /readyz (200 "ready", or
 * 503 "not ready: " and why: ms_xds_server_ready_reason), on the status
 * address and, alone, on --health-address (which serves nothing else, so it
 * may listen where kubelet reaches it). Served by common/http_server.h (the server the sidecar's
 * admin endpoint uses too, with its caps against slow clients: 10 s per request, 32 connections,
 * the oldest waiting one evicted for a new one); this file is its handler. Connections are closed
 * when the server closes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "certs/certs.h"
#include "common/http_server.h"
#include "common/log.h"
#include "common/time.h"
#include "xds-server/server_internal.h"

/* The status page's caps (common/http_server.h): a person or a probe reads
 * it, rarely more than a few at once. */
static const ms_http_server_limits status_limits = {
    .max_connections = 32,
    .request_timeout_ms = 10000,
    .max_head_bytes = 16384,
    .max_body_bytes = 16384,
};

struct xds_status_server {
  ms_xds_server *server;
  ms_http_server *http;
  bool full; /* serves /status too (the status address; not the health address) */
};

/* ---- the document ------------------------------------------------------------ */

/* add_limits: each limit of the gRPC server with its value, what is in use
 * and how often it refused (ms_grpc_server_stats). */
static void add_limit(cJSON *limits, const char *name, double value, double in_use,
                      const char *refused_key, double refused) {
  cJSON *limit = cJSON_AddObjectToObject(limits, name);
  cJSON_AddNumberToObject(limit, "limit", value);
  if (in_use >= 0) cJSON_AddNumberToObject(limit, "in_use", in_use);
  cJSON_AddNumberToObject(limit, refused_key, refused);
}

static void add_limits(ms_xds_server *server, cJSON *limits) {
  if (server->grpc == NULL) return;
  ms_grpc_server_stats s;
  ms_grpc_server_get_stats(server->grpc, &s);
  add_limit(limits, "connections", s.max_connections, (double)s.connections, "refused",
            (double)s.connections_refused);
  add_limit(limits, "connections_per_peer", s.max_connections_per_peer, -1, "refused",
            (double)s.connections_refused_per_peer);
  add_limit(limits, "streams_per_connection", s.max_concurrent_streams, -1, "refused",
            (double)s.streams_refused);
  add_limit(limits, "request_bytes", (double)s.max_message_bytes, -1, "refused",
            (double)s.messages_too_large);
  add_limit(limits, "buffered_bytes_per_connection", (double)s.max_buffered_bytes,
            (double)s.buffered_bytes, "connections_closed", (double)s.closed_over_buffered);
  add_limit(limits, "queued_bytes_per_connection", (double)s.max_queued_bytes,
            (double)s.queued_bytes, "connections_closed", (double)s.closed_over_queued);
  cJSON_AddNumberToObject(limits, "connections_accepted", (double)s.connections_accepted);
  cJSON_AddNumberToObject(limits, "accept_failures", (double)s.accept_failures);
  cJSON_AddBoolToObject(limits, "accepting", s.accepting);
  cJSON_AddNumberToObject(limits, "requests_refused", (double)server->requests_refused);
}

char *ms_xds_server_status_json(ms_xds_server *server) {
  cJSON *root = cJSON_CreateObject();
  if (root == NULL) return NULL;
  char when[32];
  cJSON *about = cJSON_AddObjectToObject(root, "server");
  cJSON_AddStringToObject(about, "listen", server->options.listen_address);
  cJSON_AddNumberToObject(about, "port", server->port);
  ms_time_rfc3339(server->started_at_ms / 1000, when, sizeof(when));
  cJSON_AddStringToObject(about, "started_at", when);
  cJSON_AddStringToObject(about, "trust_domain", server->trust_domain);
  cJSON_AddNumberToObject(about, "cert_ttl_seconds", (double)server->cert_ttl_seconds);
  cJSON_AddNumberToObject(about, "ca_overlap_seconds", (double)server->options.ca_overlap_seconds);
  cJSON_AddNumberToObject(about, "streams", (double)server->stream_count);
  cJSON_AddNumberToObject(about, "nodes", (double)server->node_count);
  char why[MS_ERR_LEN];
  cJSON_AddBoolToObject(about, "ready", ms_xds_server_ready_reason(server, why, sizeof(why)) == 0);
  if (why[0] != '\0') cJSON_AddStringToObject(about, "not_ready_reason", why);
  xds_serving_status(&server->serving, cJSON_AddObjectToObject(root, "serving_certificate"));
  add_limits(server, cJSON_AddObjectToObject(root, "limits"));
  xds_ca_status(&server->ca, cJSON_AddObjectToObject(root, "ca"));
  cJSON *token_keys = cJSON_AddObjectToObject(root, "token_keys");
  if (server->has_jwks)
    xds_jwks_status(&server->jwks, token_keys);
  else
    cJSON_AddBoolToObject(token_keys, "loaded", false);
  xds_csr_status(server, cJSON_AddObjectToObject(root, "ca_api"));
  if (server->has_webhook)
    xds_webhook_status(&server->webhook, cJSON_AddObjectToObject(root, "webhook"));
  if (server->has_files) {
    xds_files_status(&server->files, root);
  } else {
    cJSON_AddArrayToObject(root, "files");
    cJSON_AddArrayToObject(root, "file_errors");
  }
  cJSON *nodes = cJSON_AddArrayToObject(root, "nodes");
  for (const xds_stream *s = server->streams; s != NULL; s = s->next) {
    cJSON *item = cJSON_CreateObject();
    xds_stream_status(s, item);
    cJSON_AddItemToArray(nodes, item);
  }
  char *text = cJSON_Print(root);
  cJSON_Delete(root);
  return text;
}

/* ---- answering ------------------------------------------------------------------ */

static int answer_text(int status, const char *body, ms_http_response *out) {
  return ms_http_response_copy(out, status, "application/json", body);
}

static int refuse(void *arg, int status, ms_http_response *out) {
  (void)arg;
  (void)status;
  out->close = true;
  return answer_text(400, "{\"error\": \"bad request\"}\n", out);
}

bool xds_path_is(const ms_http_request *request, const char *path) {
  size_t path_len = 0;
  while (path_len < request->url_len && request->url[path_len] != '?')
    path_len++;
  return path_len == strlen(path) && memcmp(request->url, path, path_len) == 0;
}

static int respond(void *arg, const ms_http_request *request, uint64_t now_ms,
                   ms_http_response *out) {
  xds_status_server *status = arg;
  (void)now_ms;
  if (request->method != HTTP_GET && request->method != HTTP_HEAD) {
    out->allow = "GET, HEAD";
    return answer_text(405, "{\"error\": \"only GET is served\"}\n", out);
  }
  out->head_only = request->method == HTTP_HEAD;
  /* The loop answered: that is all liveness asks. */
  if (xds_path_is(request, "/healthz"))
    return ms_http_response_copy(out, 200, "text/plain", "ok\n");
  if (xds_path_is(request, "/readyz")) {
    char why[MS_ERR_LEN], body[MS_ERR_LEN + 32];
    if (ms_xds_server_ready_reason(status->server, why, sizeof(why)) == 0)
      return ms_http_response_copy(out, 200, "text/plain", "ready\n");
    snprintf(body, sizeof(body), "not ready: %s\n", why);
    return ms_http_response_copy(out, 503, "text/plain", body);
  }
  if (!status->full || !xds_path_is(request, "/status"))
    return answer_text(404,
                       status->full ? "{\"error\": \"not found; try GET /status, /healthz or "
                                      "/readyz\"}\n"
                                    : "{\"error\": \"not found; this address serves GET "
                                      "/healthz and /readyz only\"}\n",
                       out);
  char *json = ms_xds_server_status_json(status->server);
  if (json == NULL) return answer_text(500, "{\"error\": \"out of memory\"}\n", out);
  out->status = 200;
  out->content_type = "application/json";
  out->body = json;
  out->body_len = strlen(json);
  return 0;
}

int xds_parse_ip_port(const char *text, struct sockaddr_storage *out) {
  const char *colon = strrchr(text, ':');
  if (colon == NULL || colon == text) return -1;
  char *end = NULL;
  long port = strtol(colon + 1, &end, 10);
  if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535) return -1;
  char host[64];
  size_t len = (size_t)(colon - text);
  if (text[0] == '[' && len >= 2 && text[len - 1] == ']') {
    snprintf(host, sizeof(host), "%.*s", (int)(len - 2), text + 1);
    return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0 ? 0 : -1;
  }
  snprintf(host, sizeof(host), "%.*s", (int)len, text);
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0 ? 0 : -1;
}

int xds_status_start(ms_xds_server *server, const char *address, bool full, xds_status_server **out,
                     uint16_t *out_port, char *err, size_t err_len) {
  const char *flag = full ? "--status-address" : "--health-address";
  struct sockaddr_storage addr;
  if (xds_parse_ip_port(address, &addr) != 0) {
    snprintf(err, err_len, "%s %s: expected IP:port, like %s", flag, address,
             full ? "127.0.0.1:18001" : "0.0.0.0:18002");
    return -1;
  }
  xds_status_server *status = calloc(1, sizeof(*status));
  if (status == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  status->server = server;
  status->full = full;
  ms_http_server_handler handler = {
      .respond = respond,
      .refuse = refuse,
      .arg = status,
      .name = full ? "status" : "health",
  };
  int rc = ms_http_server_start(server->loop, (const struct sockaddr *)&addr, &status_limits,
                                &handler, &status->http);
  if (rc != 0) {
    snprintf(err, err_len, "cannot listen on %s (%s): %s", address, flag, uv_strerror(rc));
    free(status);
    return -1;
  }
  *out_port = ms_http_server_port(status->http);
  *out = status;
  return 0;
}

void xds_status_close(xds_status_server *status) {
  if (status == NULL) return;
  ms_http_server_close(status->http); /* no handler call after this */
  free(status);
}
