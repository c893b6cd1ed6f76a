/* admin.c: the admin endpoint's HTTP/1.1 server on the main loop.
 *
 * The sockets, the framing and the caps against slow clients are
 * common/http_server.h's (the server xds-server's status page uses too);
 * this file is the admin endpoint's handler: who may ask, and what to
 * answer (decided in admin_route.c and admin_json.c).
 *
 * Against a browser on the same machine: a request whose Host is not a
 * loopback name or the admin address (DNS rebinding: a page of
 * evil.example whose name now resolves to 127.0.0.1) is answered 421 and
 * nothing else; a request other than GET or HEAD whose Origin is not local
 * (a cross-site form or fetch) is answered 403. Against slow clients (the
 * server's caps): each request must arrive whole within 10 s of the
 * previous response (or of the accept), whatever trickles in meanwhile; and
 * when all 64 slots are taken, a new connection evicts the oldest one still
 * waiting for its request, so that /ready keeps answering. Each of these
 * counts in the main thread's counters (ms_server_main_stats: the admin
 * endpoint runs on the main thread): admin_cx_evicted, admin_cx_timeout,
 * admin_rq_refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/http_server.h"
#include "common/log.h"
#include "sidecar/admin/admin.h"
#include "sidecar/admin/admin_json.h"

struct ms_admin {
  ms_server *server;
  ms_http_server *http;
  bool health_only;  /* --health-address: /ready and nothing else */
  char own_host[80]; /* the admin address's host, IPv6 in brackets */
};

/* admin_stats returns the counters the endpoint counts its caps in: the
 * main thread's, whose loop it runs on. */
static ms_stats *admin_stats(const ms_admin *admin) {
  return ms_server_main_stats(admin->server);
}

/* ---- who may ask ------------------------------------------------------------ */

/* host_allowed: `name` (`len` bytes) is a loopback name or the admin
 * address's host, with or without ":port". */
static bool host_allowed(const ms_admin *admin, const char *name, size_t len) {
  if (len > MS_HTTP_MAX_NAME) return false; /* too long to be kept */
  size_t host_len = 0;
  if (len > 0 && name[0] == '[') {
    const char *close = memchr(name, ']', len);
    if (close == NULL) return false;
    host_len = (size_t)(close - name) + 1;
  } else {
    while (host_len < len && name[host_len] != ':')
      host_len++;
  }
  if (host_len < len) { /* ":port" */
    if (name[host_len] != ':' || host_len + 1 == len || len - host_len > 6) return false;
    for (size_t i = host_len + 1; i < len; i++)
      if (name[i] < '0' || name[i] > '9') return false;
  }
  const char *allowed[] = {"localhost", "127.0.0.1", "[::1]", admin->own_host};
  for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
    if (host_len > 0 && strlen(allowed[i]) == host_len &&
        strncasecmp(allowed[i], name, host_len) == 0)
      return true;
  return false;
}

/* origin_allowed: an Origin ("http://host:port") naming an allowed host. */
static bool origin_allowed(const ms_admin *admin, const char *origin, size_t len) {
  static const char *const schemes[] = {"http://", "https://"};
  if (len > MS_HTTP_MAX_NAME) return false;
  for (size_t i = 0; i < 2; i++) {
    size_t n = strlen(schemes[i]);
    if (len > n && strncasecmp(origin, schemes[i], n) == 0)
      return host_allowed(admin, origin + n, len - n);
  }
  return false; /* "null", another scheme, or too long */
}

/* request_refusal returns the status refusing `request` for where it comes
 * from (421: a foreign Host; 403: a foreign page that would change
 * something), or 0. A request without Host (HTTP/1.0 tools) is not a
 * browser's and passes. */
static int request_refusal(const ms_admin *admin, const ms_http_request *request) {
  if (request->host_len != SIZE_MAX && !host_allowed(admin, request->host, request->host_len))
    return 421;
  if (request->method != HTTP_GET && request->method != HTTP_HEAD &&
      request->origin_len != SIZE_MAX &&
      !origin_allowed(admin, request->origin, request->origin_len))
    return 403;
  return 0;
}

/* ---- answering -------------------------------------------------------------- */

typedef struct shutdown_request {
  ms_server *server;
  uint32_t drain_ms;
} shutdown_request;

static void after_quit(void *arg) {
  shutdown_request *request = arg;
  ms_server *server = request->server;
  uint32_t drain_ms = request->drain_ms;
  free(request);
  ms_server_shutdown(server, drain_ms); /* may close the admin endpoint */
}

/* take_response moves the admin's response into the server's. */
static void take_response(ms_admin_response *from, ms_http_response *out) {
  out->status = from->status;
  out->content_type = from->content_type;
  out->body = from->body;
  out->body_len = from->body_len;
  from->body = NULL;
}

static int refuse_request(void *arg, int status, ms_http_response *out) {
  (void)arg;
  ms_admin_response response;
  if (ms_admin_respond_error(status, ms_admin_status_message(status), NULL, &response) != 0)
    return -ENOMEM;
  take_response(&response, out);
  out->close = true;
  return 0;
}

/* respond_health answers a probe: /ready as the admin endpoint does, else
 * 404 without the list of paths. */
static int respond_health(ms_admin *admin, const ms_http_request *request, uint64_t now_ms,
                          ms_http_response *out) {
  ms_admin_target target;
  if (ms_admin_route_match(request->method, request->url, request->url_len, &target) != 0 ||
      target.route != MS_ADMIN_ROUTE_READY || !target.method_allowed) {
    return ms_http_response_copy(out, 404, "application/json",
                                 "{\"error\":\"not found: this port answers GET /ready only\"}");
  }
  ms_admin_response response;
  if (ms_admin_respond(admin->server, &target, now_ms, &response) != 0) return -ENOMEM;
  take_response(&response, out);
  out->head_only = target.head;
  return 0;
}

static int respond(void *arg, const ms_http_request *request, uint64_t now_ms,
                   ms_http_response *out) {
  ms_admin *admin = arg;
  if (admin->health_only) return respond_health(admin, request, now_ms, out);
  int refusal = request_refusal(admin, request);
  if (refusal != 0) {
    MS_STAT_ADD(admin_stats(admin), admin_rq_refused, 1);
    return refuse_request(admin, refusal, out);
  }
  ms_admin_target target;
  if (ms_admin_route_match(request->method, request->url, request->url_len, &target) != 0) {
    MS_STAT_ADD(admin_stats(admin), admin_rq_refused, 1);
    return refuse_request(admin, 400, out);
  }
  ms_admin_response response;
  if (ms_admin_respond(admin->server, &target, now_ms, &response) != 0) return -ENOMEM;
  /* A route's own refusal: a /stats filter or format it cannot take. */
  if (response.status == 400) MS_STAT_ADD(admin_stats(admin), admin_rq_refused, 1);
  if (response.shutdown) {
    shutdown_request *quit = malloc(sizeof(*quit));
    if (quit == NULL) {
      ms_admin_response_cleanup(&response);
      return -ENOMEM;
    }
    *quit = (shutdown_request){admin->server, response.drain_ms};
    out->after = after_quit;
    out->after_arg = quit;
    out->close = true;
  }
  take_response(&response, out);
  out->head_only = target.head;
  out->allow = target.method_allowed ? NULL : target.allow;
  return 0;
}

static void count(void *arg, ms_http_server_event event) {
  ms_stats *stats = admin_stats(arg);
  switch (event) {
    case MS_HTTP_EVENT_EVICTED:
      MS_STAT_ADD(stats, admin_cx_evicted, 1);
      break;
    case MS_HTTP_EVENT_TIMEOUT:
    case MS_HTTP_EVENT_IDLE: /* idle_timeout_ms is request_timeout_ms here */
      MS_STAT_ADD(stats, admin_cx_timeout, 1);
      break;
    case MS_HTTP_EVENT_REFUSED:
      MS_STAT_ADD(stats, admin_rq_refused, 1);
      break;
    case MS_HTTP_EVENT_TLS_FAILED: /* the admin endpoint is plaintext */
      break;
  }
}

/* ---- starting and stopping -------------------------------------------------- */

/* resolve_address fills `out` with the address to listen on: the literal
 * when there is one, else the first address the name resolves to. */
static int resolve_address(uv_loop_t *loop, const ms_address *address,
                           struct sockaddr_storage *out) {
  if (address->host_is_ip) {
    memcpy(out, &address->sockaddr, sizeof(*out));
    return 0;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  char port[8];
  snprintf(port, sizeof(port), "%u", (unsigned)address->port);
  uv_getaddrinfo_t req;
  int rc = uv_getaddrinfo(loop, &req, NULL, address->host, port, &hints); /* synchronous */
  if (rc != 0) return rc;
  memcpy(out, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
  uv_freeaddrinfo(req.addrinfo);
  return 0;
}

static int admin_listen(uv_loop_t *loop, const ms_address *address, ms_server *server,
                        bool health_only, ms_admin **out) {
  struct sockaddr_storage sockaddr;
  memset(&sockaddr, 0, sizeof(sockaddr));
  int rc = resolve_address(loop, address, &sockaddr);
  if (rc != 0) return rc;

  ms_admin *admin = calloc(1, sizeof(*admin));
  if (!admin) return UV_ENOMEM;
  admin->server = server;
  admin->health_only = health_only;
  bool ipv6 = strchr(address->host, ':') != NULL;
  snprintf(admin->own_host, sizeof(admin->own_host), ipv6 ? "[%s]" : "%s", address->host);
  ms_http_server_handler handler = {
      .respond = respond,
      .refuse = refuse_request,
      .count = count,
      .arg = admin,
      .name = health_only ? "health" : "admin",
  };
  rc = ms_http_server_start(loop, (const struct sockaddr *)&sockaddr, NULL, &handler, &admin->http);
  if (rc != 0) {
    free(admin);
    return rc;
  }
  *out = admin;
  return 0;
}

int ms_admin_start(uv_loop_t *loop, const ms_address *address, ms_server *server, ms_admin **out) {
  return admin_listen(loop, address, server, false, out);
}

int ms_admin_health_start(uv_loop_t *loop, const ms_address *address, ms_server *server,
                          ms_admin **out) {
  return admin_listen(loop, address, server, true, out);
}

void ms_admin_close(ms_admin *admin) {
  if (!admin) return;
  ms_http_server_close(admin->http); /* no handler call after this */
  free(admin);
}
