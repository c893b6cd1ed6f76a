/* admin_json.h (private to the admin endpoint): what the admin endpoint
 * answers, apart from how the bytes travel.
 *
 * admin.c is the handler of a common/http_server.h server (the sockets, the
 * HTTP framing and the caps); it asks ms_admin_route_match which route a
 * request names and ms_admin_respond for the response. fuzz/admin_request_fuzz.c calls the
 * same functions. Routing and redaction need nothing
 * but http_parser and cJSON (admin_route.c, admin_redact.c), so they are
 * tested without a server; the bodies that read the server are in
 * admin_json.c. */
#ifndef MS_ADMIN_JSON_H
#define MS_ADMIN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <http_parser.h>

typedef struct ms_server ms_server; /* sidecar/control/server.h */

/* Every route the endpoint serves, plus the answers that are not a route. */
typedef enum ms_admin_route {
  MS_ADMIN_ROUTE_NOT_FOUND = 0, /* 404 with the list of paths */
  MS_ADMIN_ROUTE_READY,
  MS_ADMIN_ROUTE_SERVER_INFO,
  MS_ADMIN_ROUTE_CLUSTERS,
  MS_ADMIN_ROUTE_CERTS,
  MS_ADMIN_ROUTE_CONFIG_DUMP,
  MS_ADMIN_ROUTE_STATS,
  MS_ADMIN_ROUTE_STATS_PROMETHEUS,
  MS_ADMIN_ROUTE_QUITQUITQUIT,
  MS_ADMIN_ROUTE_COUNT
} ms_admin_route;

/* ms_admin_paths lists the path of every route, in the order of the enum:
 * route r is served at ms_admin_paths[r - 1] (ms_admin_path_count paths). */
extern const char *const ms_admin_paths[];
extern const size_t ms_admin_path_count;

/* What one request asks for. */
typedef struct ms_admin_target {
  ms_admin_route route;
  bool method_allowed; /* false: answer 405 with `allow` */
  bool head;           /* HEAD: the response without its body */
  const char *allow;   /* the methods the route takes, e.g. "GET, HEAD" */
  char path[256];      /* the path without the query, truncated, for messages */
  const char *query;   /* the query after "?", not decoded, in the `url` matched; NULL: none */
  size_t query_len;
} ms_admin_target;

/* ms_admin_route_match finds the route for a request line: `method` as
 * http_parser reports it and the request target `url` (`url_len` bytes, not
 * NUL-terminated; origin form "/path?query" or absolute form). The query
 * does not choose the route (/clusters answers JSON with or without
 * format=json); out->query points at it, inside `url`, for the route to
 * read with ms_admin_query_get. Returns 0 and fills *out (an unknown path is
 * MS_ADMIN_ROUTE_NOT_FOUND, not a failure), or -EINVAL when `url` is not a
 * valid request target (answer 400). */
int ms_admin_route_match(enum http_method method, const char *url, size_t url_len,
                         ms_admin_target *out);

/* ms_admin_query_get finds the parameter `name` in the target's query
 * ("a=1&filter=x") and writes its value, percent-decoded ("%2B" is "+"; a
 * "+" stays a "+", as a regex wants it), NUL-terminated, into `out`.
 * Returns 1 when found (a parameter without "=" has the value ""), 0 when
 * absent, or -EINVAL when the value does not fit `out_len` or holds a bad
 * or NUL escape. The first occurrence counts. */
int ms_admin_query_get(const ms_admin_target *target, const char *name, char *out, size_t out_len);

/* ms_admin_status_message returns the sentence of the JSON error body the
 * endpoint answers `status` with (400, 403, 404, 405, 413, 414, 421, 431;
 * any other status: "bad request"). A static string. */
const char *ms_admin_status_message(int status);

/* ms_admin_target_refusal returns the status refusing `target` before any
 * route is served: 405 (a method the route does not take) or 404 (no such
 * route), or 0 when the route answers it (ms_admin_respond). */
int ms_admin_target_refusal(const ms_admin_target *target);

/* A response ready to be framed. */
typedef struct ms_admin_response {
  int status;               /* 200, 404, ... */
  const char *content_type; /* static string */
  char *body;               /* malloc'd, owned by the response */
  size_t body_len;
  bool shutdown;     /* call ms_server_shutdown once this is written */
  uint32_t drain_ms; /* the drain_timeout_ms to pass it */
} ms_admin_response;

/* ms_admin_respond_error fills `out` with a JSON error response:
 * {"error": `message`, "path": target->path} plus, for 404, "paths" (every
 * known path) and, for 405, "allow". `target` may be NULL (a request that
 * could not be parsed). Returns 0, or -ENOMEM when memory ran out (then
 * `out` holds nothing to clean up). */
int ms_admin_respond_error(int status, const char *message, const ms_admin_target *target,
                           ms_admin_response *out);

/* ms_admin_respond answers `target` from `server`'s current state. `now_ms`
 * is the loop's monotonic clock (uv_now), against which endpoint ejections
 * are measured. Returns 0 and fills *out (the caller cleans it up with
 * ms_admin_response_cleanup), or -ENOMEM with nothing to clean up. */
int ms_admin_respond(ms_server *server, const ms_admin_target *target, uint64_t now_ms,
                     ms_admin_response *out);

/* ms_admin_respond_stats answers /stats and /stats/prometheus (admin_stats.c)
 * from `server`'s counters: ?format=json (the default of /stats) or
 * ?format=prometheus (the default of /stats/prometheus), and ?filter=REGEX
 * (POSIX extended, matched against each stat's /stats name, in both
 * formats). A bad format or regex is a 400 naming it. Returns 0 and fills
 * *out, or -ENOMEM with nothing to clean up. */
int ms_admin_respond_stats(ms_server *server, const ms_admin_target *target,
                           ms_admin_response *out);

typedef struct ms_config ms_config; /* sidecar/config/config.h */

/* ms_admin_config_json returns the configuration in force as JSON
 * (admin_config.c): every key the file may hold, with the value in force,
 * defaults filled in (null where none is set and none is the default),
 * paths made absolute. Secrets are included as they are: redact before
 * printing (ms_admin_redact). The caller owns the result (cJSON_Delete);
 * NULL when memory ran out. */
cJSON *ms_admin_config_json(const ms_config *config);

/* ms_admin_response_cleanup frees the body. Accepts a zeroed response. */
void ms_admin_response_cleanup(ms_admin_response *response);

/* ms_admin_response_take_json sets the body of `out` to `json` printed
 * unformatted, with `status` and the JSON content type, and deletes `json`.
 * Returns 0, or -ENOMEM (when `json` is NULL or printing failed). */
int ms_admin_response_take_json(int status, cJSON *json, ms_admin_response *out);

/* ms_admin_redact replaces, anywhere in `json`, the value of every
 * "private_key", "private_key_pem", "password" and "password_file" member
 * that is set (a null stays null: there is nothing to hide, and "[redacted]"
 * would say that there is), and every string that holds PEM private key
 * material, with the string "[redacted]". Returns 0, or -ENOMEM (then some
 * values may still be unredacted: do not print `json`). */
int ms_admin_redact(cJSON *json);

#endif
