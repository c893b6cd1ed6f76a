/* admin_route.c: which route a request names, and the error responses. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/admin/admin_json.h"

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
    return -EINVAL;
  if (!(parsed.field_set & (1 << UF_PATH))) return -EINVAL;
  const char *path = url + parsed.field_data[UF_PATH].off;
  size_t path_len = parsed.field_data[UF_PATH].len;

  memset(out, 0, sizeof(*out));
  size_t copy = path_len < sizeof(out->path) - 1 ? path_len : sizeof(out->path) - 1;
  memcpy(out->path, path, copy);
  out->path[copy] = '\0';
  out->head = method == HTTP_HEAD;
  if (parsed.field_set & (1 << UF_QUERY)) {
    out->query = url + parsed.field_data[UF_QUERY].off;
    out->query_len = parsed.field_data[UF_QUERY].len;
  }

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

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* decode percent-decodes `len` bytes of `text` into `out`; -EINVAL when
 * they do not fit, or hold a bad escape or an escaped NUL. */
static int decode(const char *text, size_t len, char *out, size_t out_len) {
  size_t used = 0;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= len) return -EINVAL;
      int h = hex_value(text[i + 1]), l = hex_value(text[i + 2]);
      if (h < 0 || l < 0 || (h == 0 && l == 0)) return -EINVAL;
      c = (char)(h * 16 + l);
      i += 2;
    }
    if (used + 1 >= out_len) return -EINVAL;
    out[used++] = c;
  }
  out[used] = '\0';
  return 0;
}

int ms_admin_query_get(const ms_admin_target *target, const char *name, char *out, size_t out_len) {
  size_t name_len = strlen(name);
  const char *query = target->query, *end = query ? query + target->query_len : NULL;
  for (const char *at = query; at && at < end;) {
    const char *amp = memchr(at, '&', (size_t)(end - at));
    const char *stop = amp ? amp : end;
    const char *equals = memchr(at, '=', (size_t)(stop - at));
    const char *key_end = equals ? equals : stop;
    if ((size_t)(key_end - at) == name_len && memcmp(at, name, name_len) == 0) {
      const char *value = equals ? equals + 1 : stop;
      int rc = decode(value, (size_t)(stop - value), out, out_len);
      return rc == 0 ? 1 : rc;
    }
    at = stop + 1;
  }
  return 0;
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
