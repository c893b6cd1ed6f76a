/* Endpoint host names, resolved asynchronously on the main loop and again
 * every dns_refresh_ms. IP literals never go through here. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sidecar/control/server_internal.h"

typedef struct resolve_request {
  uv_getaddrinfo_t request;
  ms_server *server;
  uint64_t generation; /* of the config the indices below refer to */
  size_t cluster;
  size_t endpoint;
} resolve_request;

static bool same_addresses(const struct ms_resolved *resolved, const struct sockaddr_storage *addrs,
                           size_t count) {
  return resolved->count == count &&
         (count == 0 || memcmp(resolved->addrs, addrs, count * sizeof(*addrs)) == 0);
}

static void finish_one(ms_server *server, bool changed) {
  server->resolutions_in_flight--;
  if (server->closing) return;
  if (changed) ms_server_publish(server);
  if (server->resolutions_in_flight == 0) server->initial_resolution_done = true;
}

static void on_resolved(uv_getaddrinfo_t *request, int status, struct addrinfo *result) {
  resolve_request *r = (resolve_request *)request;
  ms_server *server = r->server;
  bool changed = false;
  if (!server->closing && r->generation == server->config_generation) {
    ms_cluster_runtime *runtime = &server->clusters[r->cluster];
    const ms_endpoint_config *endpoint =
        &server->config->clusters[r->cluster].endpoints[r->endpoint];
    struct ms_resolved *resolved = &runtime->resolved[r->endpoint];
    resolved->resolving = false;
    size_t count = 0;
    for (struct addrinfo *ai = result; ai; ai = ai->ai_next)
      count++;
    struct sockaddr_storage *addrs = calloc(count ? count : 1, sizeof(*addrs));
    if (status != 0 || addrs == NULL) {
      /* Keep the addresses we had: a DNS hiccup must not empty a cluster. */
      char message[256];
      snprintf(message, sizeof(message), "resolving %s failed: %s", endpoint->address.host,
               status ? uv_strerror(status) : "out of memory");
      ms_endpoint_state_set_error(runtime->states[r->endpoint], message);
      ms_log(MS_LOG_WARN, "dns: cluster=%s endpoint=%s: %s",
             server->config->clusters[r->cluster].name, endpoint->address.text, message);
      free(addrs);
    } else {
      size_t n = 0;
      for (struct addrinfo *ai = result; ai; ai = ai->ai_next) {
        memcpy(&addrs[n], ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_family == AF_INET6)
          ((struct sockaddr_in6 *)&addrs[n])->sin6_port = htons(endpoint->address.port);
        else
          ((struct sockaddr_in *)&addrs[n])->sin_port = htons(endpoint->address.port);
        n++;
      }
      if (same_addresses(resolved, addrs, n)) {
        free(addrs);
      } else {
        free(resolved->addrs);
        resolved->addrs = addrs;
        resolved->count = n;
        changed = true;
      }
    }
  }
  uv_freeaddrinfo(result);
  free(r);
  finish_one(server, changed);
}

static void resolve(ms_server *server, size_t cluster, size_t endpoint) {
  struct ms_resolved *resolved = &server->clusters[cluster].resolved[endpoint];
  if (resolved->resolving) return;
  resolve_request *r = calloc(1, sizeof(*r));
  if (r == NULL) return;
  r->server = server;
  r->generation = server->config_generation;
  r->cluster = cluster;
  r->endpoint = endpoint;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  const ms_address *address = &server->config->clusters[cluster].endpoints[endpoint].address;
  server->resolutions_in_flight++;
  resolved->resolving = true;
  int rc = uv_getaddrinfo(server->loop, &r->request, on_resolved, address->host, NULL, &hints);
  if (rc != 0) {
    resolved->resolving = false;
    free(r);
    finish_one(server, false);
  }
}

static void resolve_all(ms_server *server) {
  for (size_t c = 0; c < server->config->cluster_count; c++) {
    const ms_cluster_config *cluster = &server->config->clusters[c];
    for (size_t e = 0; e < cluster->endpoint_count; e++)
      if (!cluster->endpoints[e].address.host_is_ip) resolve(server, c, e);
  }
}

static void on_refresh(uv_timer_t *timer) {
  resolve_all(timer->data);
}

void ms_resolver_start(ms_server *server) {
  uint32_t refresh_ms = 0;
  for (size_t c = 0; c < server->config->cluster_count; c++) {
    uint32_t ms = server->config->clusters[c].dns_refresh_ms;
    if (ms && (refresh_ms == 0 || ms < refresh_ms)) refresh_ms = ms;
  }
  uv_timer_init(server->loop, &server->dns_timer);
  server->dns_timer.data = server;
  resolve_all(server);
  if (server->resolutions_in_flight == 0) server->initial_resolution_done = true;
  if (refresh_ms) uv_timer_start(&server->dns_timer, on_refresh, refresh_ms, refresh_ms);
}

void ms_resolver_follow(ms_server *server) {
  resolve_all(server);
}

void ms_resolver_stop(ms_server *server) {
  uv_close((uv_handle_t *)&server->dns_timer, NULL);
}
