#include "sidecar/upstream/pool.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#define BUCKETS 256

/* The idle upstreams of one endpoint, most recently used first. */
typedef struct idle_list {
  ms_pool *pool;
  const ms_endpoint_state *key;
  ms_upstream *head;
  size_t count;
  struct idle_list *next; /* in the bucket */
} idle_list;

struct ms_pool {
  idle_list *buckets[BUCKETS];
  size_t idle;
};

static const ms_upstream_callbacks idle_callbacks;

static size_t bucket_of(const ms_endpoint_state *key) {
  uintptr_t h = (uintptr_t)key;
  h ^= h >> 17;
  h *= 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 56) % BUCKETS;
}

static ms_endpoint_state *endpoint_key(const ms_cluster *cluster, size_t index) {
  return cluster->endpoints[index].state;
}

static idle_list *find_list(ms_pool *pool, const ms_endpoint_state *key, bool create) {
  size_t b = bucket_of(key);
  for (idle_list *l = pool->buckets[b]; l; l = l->next)
    if (l->key == key) return l;
  if (!create) return NULL;
  idle_list *l = calloc(1, sizeof(*l));
  if (l == NULL) return NULL;
  l->pool = pool;
  l->key = key;
  l->next = pool->buckets[b];
  pool->buckets[b] = l;
  return l;
}

static void drop_list_if_empty(ms_pool *pool, idle_list *list) {
  if (list->count) return;
  for (idle_list **p = &pool->buckets[bucket_of(list->key)]; *p; p = &(*p)->next) {
    if (*p == list) {
      *p = list->next;
      free(list);
      return;
    }
  }
}

/* Takes `upstream` out of its idle list; the list may go. */
static void unlink_idle(ms_upstream *upstream) {
  idle_list *list = upstream->idle_list;
  if (upstream->idle_prev)
    upstream->idle_prev->idle_next = upstream->idle_next;
  else
    list->head = upstream->idle_next;
  if (upstream->idle_next) upstream->idle_next->idle_prev = upstream->idle_prev;
  upstream->idle_prev = upstream->idle_next = NULL;
  upstream->idle_list = NULL;
  list->count--;
  list->pool->idle--;
  MS_STAT_ADD(&upstream->worker->stats, http_pool_idle, -1);
  ms_upstream_set_timeout(upstream, 0);
  drop_list_if_empty(list->pool, list);
}

static void close_idle(ms_upstream *upstream) {
  unlink_idle(upstream);
  ms_upstream_close(upstream);
}

ms_pool *ms_pool_new(void) {
  return calloc(1, sizeof(ms_pool));
}

void ms_pool_free(ms_pool *pool) {
  if (pool == NULL) return;
  for (size_t b = 0; b < BUCKETS; b++) {
    while (pool->buckets[b]) {
      idle_list *list = pool->buckets[b];
      while (list->count > 1)
        close_idle(list->head);
      close_idle(list->head); /* frees the list */
    }
  }
  free(pool);
}

/* The limits that retire a connection however well it works. */
typedef enum pool_limit {
  LIMIT_NONE,
  LIMIT_MAX_REQUESTS, /* it carried http_pool.max_requests */
  LIMIT_MAX_LIFETIME, /* it is older than http_pool.max_lifetime_ms */
} pool_limit;

static pool_limit limit_reached(const ms_upstream *upstream) {
  const ms_http_pool_config *limits = &upstream->cluster->config->http_pool;
  uint64_t now = uv_now(&upstream->worker->loop);
  if (limits->max_requests && upstream->requests >= limits->max_requests) return LIMIT_MAX_REQUESTS;
  if (limits->max_lifetime_ms && now - upstream->opened_ms >= limits->max_lifetime_ms)
    return LIMIT_MAX_LIFETIME;
  return LIMIT_NONE;
}

/* count_limit counts a connection closed for `limit`, server-wide and for
 * its endpoint (Envoy's names). */
static void count_limit(const ms_upstream *upstream, pool_limit limit) {
  ms_stats *stats = &upstream->worker->stats;
  switch (limit) {
    case LIMIT_NONE:
      return;
    case LIMIT_MAX_REQUESTS:
      MS_STAT_ADD(stats, upstream_cx_max_requests, 1);
      MS_ENDPOINT_STAT_ADD(upstream, pool_max_requests, 1);
      return;
    case LIMIT_MAX_LIFETIME:
      MS_STAT_ADD(stats, upstream_cx_max_duration_reached, 1);
      MS_ENDPOINT_STAT_ADD(upstream, pool_max_lifetime, 1);
      return;
  }
}

static bool same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family) return false;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a,
                              *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
  }
  return false;
}

/* Whether the endpoint, as the snapshot resolves it now, still has the
 * address `upstream` dialled: after a DNS answer changes, a connection to
 * an address that left it carries no new request (nginx's keepalive cache
 * matches by address too). */
static bool still_resolved(const ms_upstream *upstream, const ms_endpoint *endpoint) {
  for (size_t i = 0; i < endpoint->addr_count; i++)
    if (same_address(&endpoint->addrs[i], &upstream->peer)) return true;
  return false;
}

ms_upstream *ms_pool_take(ms_pool *pool, const ms_cluster *cluster, size_t index,
                          const ms_upstream_callbacks *callbacks, void *owner) {
  idle_list *list = find_list(pool, endpoint_key(cluster, index), false);
  while (list) {
    ms_upstream *upstream = list->head;
    bool last = list->count == 1;
    pool_limit limit = limit_reached(upstream);
    if (upstream->tls == cluster->tls && limit == LIMIT_NONE &&
        still_resolved(upstream, &cluster->endpoints[index])) {
      unlink_idle(upstream);
      upstream->callbacks = callbacks;
      upstream->owner = owner;
      return upstream;
    }
    /* A rotated context, a spent connection or an address the endpoint's
     * name no longer resolves to: not for new requests. */
    count_limit(upstream, limit);
    close_idle(upstream);
    if (last) break;
  }
  return NULL;
}

/* Whether `upstream` is between exchanges with nothing left over: ready,
 * nothing to write, nothing read ahead. */
static bool at_rest(const ms_upstream *upstream) {
  return upstream->state == MS_UPSTREAM_READY && !upstream->close_notify_sent &&
         !ms_tls_io_pending_out(&upstream->io) && !ms_tls_io_buffered_in(&upstream->io) &&
         SSL_pending(upstream->ssl) == 0;
}

void ms_pool_put(ms_pool *pool, ms_upstream *upstream) {
  const ms_http_pool_config *limits = &upstream->cluster->config->http_pool;
  pool_limit limit = LIMIT_NONE;
  idle_list *list = NULL;
  if (!at_rest(upstream) || (limit = limit_reached(upstream)) != LIMIT_NONE ||
      limits->max_idle == 0 ||
      (list = find_list(pool, endpoint_key(upstream->cluster, upstream->endpoint_index), true)) ==
          NULL) {
    count_limit(upstream, limit); /* nothing unless a limit closed it */
    ms_upstream_close(upstream);
    return;
  }
  if (list->count >= limits->max_idle) {
    /* Full: the least recently used one goes. */
    ms_upstream *oldest = list->head;
    while (oldest->idle_next)
      oldest = oldest->idle_next;
    MS_STAT_ADD(&upstream->worker->stats, http_pool_evicted, 1);
    close_idle(oldest);
    list = find_list(pool, endpoint_key(upstream->cluster, upstream->endpoint_index), true);
    if (list == NULL) {
      ms_upstream_close(upstream);
      return;
    }
  }
  if (ms_tls_io_park(&upstream->io) != 0) {
    drop_list_if_empty(pool, list);
    ms_upstream_close(upstream);
    return;
  }
  upstream->callbacks = &idle_callbacks;
  upstream->owner = pool;
  upstream->idle_list = list;
  upstream->idle_prev = NULL;
  upstream->idle_next = list->head;
  if (list->head) list->head->idle_prev = upstream;
  list->head = upstream;
  list->count++;
  pool->idle++;
  MS_STAT_ADD(&upstream->worker->stats, http_pool_idle, 1);
  ms_upstream_set_timeout(upstream, limits->idle_timeout_ms);
}

/* ---- while idle --------------------------------------------------------- */

/* The upstream spoke while idle: session tickets and key updates are
 * consumed; data, close_notify, a FIN or an error end the connection. */
static void on_idle_event(ms_upstream *upstream, uint32_t events) {
  char byte;
  int rc = SSL_read(upstream->ssl, &byte, 1);
  int error = rc > 0 ? SSL_ERROR_NONE : SSL_get_error(upstream->ssl, rc);
  ERR_clear_error();
  if (error == SSL_ERROR_WANT_READ && ms_tls_io_flush(&upstream->io) >= 0 &&
      ms_tls_io_park(&upstream->io) == 0)
    return;
  close_idle(upstream);
}

static void on_idle_timeout(ms_upstream *upstream) {
  MS_STAT_ADD(&upstream->worker->stats, upstream_cx_idle_timeout, 1);
  MS_ENDPOINT_STAT_ADD(upstream, pool_idle_timeouts, 1);
  close_idle(upstream);
}

static void on_idle_failed(ms_upstream *upstream, const char *message) {
  close_idle(upstream);
}

static const ms_upstream_callbacks idle_callbacks = {
    .on_ready = NULL,
    .on_failed = on_idle_failed,
    .on_event = on_idle_event,
    .on_timeout = on_idle_timeout,
};
