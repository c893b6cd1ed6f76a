/* pool.h: a worker's idle keep-alive upstreams for HTTP, per endpoint.
 *
 * After an exchange the HTTP connection gives its upstream back
 * (ms_pool_put); the next request to the same endpoint takes it
 * (ms_pool_take) instead of connecting and shaking hands again. Like
 * nginx's upstream keepalive: at most http_pool.max_idle idle connections
 * per endpoint, closed after idle_timeout_ms, after max_requests exchanges
 * and after max_lifetime_ms (so connections made under a rotated or
 * expiring certificate age out). An idle connection built on a TLS context
 * that is no longer its cluster's (a rotation) is never handed out again.
 * Each limit counts the connections it closes: http_pool_evicted (max_idle:
 * the least recently used idle one goes), upstream_cx_idle_timeout,
 * upstream_cx_max_requests, upstream_cx_max_duration_reached.
 *
 * While idle, the pool owns the upstream: it reads what the upstream sends
 * (TLS 1.3 session tickets are fine; anything else, or a close, ends the
 * connection). Keyed by the endpoint's ms_endpoint_state, which outlives
 * snapshots. Worker thread only. */
#ifndef MS_POOL_H
#define MS_POOL_H

#include "sidecar/upstream/upstream.h"

typedef struct ms_pool ms_pool;

/* ms_pool_new returns an empty pool, or NULL when memory ran out. */
ms_pool *ms_pool_new(void);

/* ms_pool_free closes every idle upstream and frees the pool. */
void ms_pool_free(ms_pool *pool);

/* ms_pool_take returns an idle upstream to endpoint `index` of `cluster`
 * built on the cluster's TLS context and connected to one of the addresses
 * the endpoint resolves to in `cluster`'s snapshot, with its callbacks and
 * owner set to the caller's, or NULL when there is none. Idle upstreams
 * that no longer qualify are closed. */
ms_upstream *ms_pool_take(ms_pool *pool, const ms_cluster *cluster, size_t index,
                          const ms_upstream_callbacks *callbacks, void *owner);

/* ms_pool_put takes a READY upstream whose exchange ended cleanly; it keeps
 * it idle, or closes it when a limit says so. */
void ms_pool_put(ms_pool *pool, ms_upstream *upstream);

#endif
