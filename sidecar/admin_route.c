/* admin_route.c: which route a request names, and the error responses. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/admin_json.h"

/* The path of route r is ms_admin_paths[r - 1]. */
const char *const ms_admin_paths[MS_ADMIN_ROUTE_COUNT - 1] = {
    [MS_ADMIN_ROUTE_READY - 1] = "/ready",
    [MS_ADMIN_ROUTE_SERVER_INFO - 1] = "/server_info",
    [MS_ADMIN_ROUTE_CLUSTERS - 1] = "/clusters",
    [MS_ADMIN_ROUTE_CERTS - 1] = "/certs",
    [MS_ADMIN_ROUTE_CONFIG_DUMP - 1] = "/config_dump",
    [MS_ADMIN_ROUTE_STATS - 1] = "/stats",
    [MS_ADMIN_ROUTE_STATS_PROMETHEUS - 1] = "/stats/prometheus",
    [MS_ADMIN_ROUTE_QUITQUITQUIT - 1] = "/quitquitquit",
};
const size_t ms_admin_path_count = sizeof(ms_admin_paths) / sizeof(ms_admin_paths[0]);

int ms_admin_route_match(enum http_method method, const char *url, size_t url_len,
                         ms_admin_target *out) {
  struct http_parser_url parsed;
  http_parser_url_init(&parsed);
  if (url_len == 0 || http_parser_parse_url(url, url_len, method == HTTP_CONNECT, &parsed) != 0)
    return -1;
  if (!(parsed.field_set & (1 << UF_PATH))) return -1;
  const char *path = url + parsed.field_data[UF_PATH].off;
  size_t path_len = parsed.field_data[UF_PATH].len;

  memset(out, 0, sizeof(*out));
  size_t copy = path_len < sizeof(out->path) - 1 ? path_len : sizeof(out->path) - 1;
  memcpy(out->path, path, copy);
  out->path[copy] = '\0';
  out->head = method == HTTP_HEAD;

  out->route = MS_ADMIN_ROUTE_NOT_FOUND;
  for (int route = 1; route < MS_ADMIN_ROUTE_COUNT; route++) {
    const char *candidate = ms_admin_paths[route - 1];
    if (strlen(candidate) == path_len && memcmp(candidate, path, path_len) == 0) {
      out->route = (ms_admin_route)route;
      break;
    }
  }
  if (out->route == MS_ADMIN_ROUTE_NOT_FOUND) {
    out->method_allowed = true; /* any method gets the 404 */
    return 0;
  }
  if (out->route == MS_ADMIN_ROUTE_QUITQUITQUIT) { /* the one route that changes state */
    out->allow = "POST";
    out->method_allowed = method == HTTP_POST;
  } else {
    out->allow = "GET, HEAD";
    out->method_allowed = method == HTTP_GET || method == HTTP_HEAD;
  }
  return 0;
}

#define MAX_HEADER_BYTES 8192 /* request line and headers */
#define MAX_BODY_BYTES 65536  /* a body is read and ignored */

void ms_admin_request_reset(ms_admin_request *request) {
  request->url_len = request->header_bytes = request->body_bytes = 0;
  request->refusal_status = 0;
}

int ms_admin_request_count_head(ms_admin_request *request, size_t len) {
  request->header_bytes += len;
  if (request->header_bytes <= MAX_HEADER_BYTES) return 0;
  request->refusal_status = 431;
  return -1;
}

int ms_admin_request_add_url(ms_admin_request *request, const char *at, size_t len) {
  if (request->url_len + len > sizeof(request->url)) {
    request->refusal_status = 414;
    return -1;
  }
  memcpy(request->url + request->url_len, at, len);
  request->url_len += len;
  return ms_admin_request_count_head(request, len);
}

int ms_admin_request_check_length(ms_admin_request *request, const http_parser *parser) {
  if (!(parser->flags & F_CONTENTLENGTH) || parser->content_length <= MAX_BODY_BYTES) return 0;
  request->refusal_status = 413;
  return -1;
}

int ms_admin_request_count_body(ms_admin_request *request, size_t len) {
  request->body_bytes += len;
  if (request->body_bytes <= MAX_BODY_BYTES) return 0;
  request->refusal_status = 413;
  return -1;
}

const char *ms_admin_status_message(int status) {
  switch (status) {
    case 403:
      return "a request that changes something must not come from another site's page";
    case 404:
      return "not found";
    case 405:
      return "method not allowed";
    case 413:
      return "request body too large";
    case 414:
      return "request target too long";
    case 421:
      return "the admin endpoint answers only to localhost, 127.0.0.1, [::1] or its own address "
             "as Host";
    case 431:
      return "request headers too large";
    default:
      return "bad request";
  }
}

int ms_admin_target_refusal(const ms_admin_target *target) {
  if (!target->method_allowed) return 405;
  if (target->route <= MS_ADMIN_ROUTE_NOT_FOUND || target->route >= MS_ADMIN_ROUTE_COUNT)
    return 404;
  return 0;
}

int ms_admin_response_take_json(int status, cJSON *json, ms_admin_response *out) {
  char *text = json ? cJSON_PrintUnformatted(json) : NULL;
  cJSON_Delete(json);
  if (!text) return -ENOMEM;
  memset(out, 0, sizeof(*out));
  out->status = status;
  out->content_type = "application/json";
  out->body = text;
  out->body_len = strlen(text);
  return 0;
}

int ms_admin_respond_error(int status, const char *message, const ms_admin_target *target,
                           ms_admin_response *out) {
  cJSON *json = cJSON_CreateObject();
  if (!json || !cJSON_AddStringToObject(json, "error", message)) goto fail;
  if (target && !cJSON_AddStringToObject(json, "path", target->path)) goto fail;
  if (status == 404) {
    cJSON *paths = cJSON_CreateStringArray(ms_admin_paths, (int)ms_admin_path_count);
    if (!paths) goto fail;
    cJSON_AddItemToObject(json, "paths", paths);
  }
  if (status == 405 && target && target->allow &&
      !cJSON_AddStringToObject(json, "allow", target->allow))
    goto fail;
  return ms_admin_response_take_json(status, json, out);

fail:
  cJSON_Delete(json);
  return -ENOMEM;
}

void ms_admin_response_cleanup(ms_admin_response *response) {
  if (!response) return;
  free(response->body);
  response->body = NULL;
  response->body_len = 0;
}
