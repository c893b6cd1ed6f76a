/* pool_test: a worker's idle keep-alive upstreams (pool.h) on real
 * mutual-TLS connections (//sidecar/tls:test_peers), without sockets to a
 * network: each upstream is one end of a socketpair, its handshake done
 * with a BoringSSL server on the other end.
 *
 * The upstreams are READY as ms_upstream_open and its handshake leave them
 * (the same fields set, a timer on the worker's loop, counted in their
 * endpoint's active_connections, which ms_upstream_close gives back), and
 * an event of the socket reaches the pool's callbacks as upstream.c's
 * dispatch hands it over (deliver). Whether an upstream was closed is read
 * from its endpoint's active_connections and from its state before the
 * loop runs its close callback. */
#include "sidecar/upstream/pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "sidecar/tls/test_peers.h"
#include "tests/lib/test_check.h"

#define ENDPOINTS 2
#define MAX_UPSTREAMS 32

static test_peers peers;

/* The server's end of each upstream the test opened. */
typedef struct server_end {
  ms_upstream *upstream; /* NULL once the test closed this end */
  SSL *ssl;
  int fd;
} server_end;

typedef struct fixture {
  ms_worker worker; /* what the pool and its upstreams use: loop, stats, TLS scratch */
  ms_cluster_config config;
  ms_endpoint_config endpoint_configs[ENDPOINTS];
  ms_endpoint endpoints[ENDPOINTS];
  struct sockaddr_storage addrs[ENDPOINTS];
  ms_cluster cluster;
  ms_pool *pool;
  server_end servers[MAX_UPSTREAMS];
  size_t server_count;
  int owner_timeouts; /* the owner's on_timeout calls */
} fixture;

static void owner_on_ready(ms_upstream *upstream) {}
static void owner_on_failed(ms_upstream *upstream, const char *message) {}
static void owner_on_event(ms_upstream *upstream, uint32_t events) {}
static void owner_on_timeout(ms_upstream *upstream) {
  ((fixture *)upstream->owner)->owner_timeouts++;
}

/* The callbacks of whoever took an upstream (an HTTP exchange). */
static const ms_upstream_callbacks owner_callbacks = {
    .on_ready = owner_on_ready,
    .on_failed = owner_on_failed,
    .on_event = owner_on_event,
    .on_timeout = owner_on_timeout,
};

static void fixture_init(fixture *f, ms_http_pool_config limits) {
  memset(f, 0, sizeof(*f));
  CHECK(uv_loop_init(&f->worker.loop) == 0);
  f->worker.events.epfd = -1;
  f->worker.tls_scratch = malloc(sizeof(ms_tls_io_scratch));
  CHECK(f->worker.tls_scratch != NULL);
  f->config.name = "backend";
  f->config.http_pool = limits;
  for (size_t i = 0; i < ENDPOINTS; i++) {
    struct sockaddr_in *in = (struct sockaddr_in *)&f->addrs[i];
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)(8443 + i));
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->endpoint_configs[i].weight = 1;
    f->endpoints[i].config = &f->endpoint_configs[i];
    f->endpoints[i].state = ms_endpoint_state_new();
    CHECK(f->endpoints[i].state != NULL);
    f->endpoints[i].addrs = &f->addrs[i];
    f->endpoints[i].addr_count = 1;
  }
  f->cluster.config = &f->config;
  f->cluster.endpoints = f->endpoints;
  f->cluster.endpoint_count = ENDPOINTS;
  f->cluster.tls = peers.client;
  f->pool = ms_pool_new();
  CHECK(f->pool != NULL);
}

static long long active(const fixture *f, size_t endpoint) {
  return atomic_load(&f->endpoints[endpoint].state->active_connections);
}

static long long idle_gauge(const fixture *f) {
  return atomic_load(&f->worker.stats.http_pool_idle);
}

/* ready_upstream opens a READY upstream to `endpoint`: a handshake done,
 * owned by the test (owner_callbacks). */
static ms_upstream *ready_upstream(fixture *f, size_t endpoint) {
  CHECK(f->server_count < MAX_UPSTREAMS);
  int fds[2];
  test_socketpair(fds, 0);
  ms_upstream *upstream = calloc(1, sizeof(*upstream));
  CHECK(upstream != NULL);
  upstream->state = MS_UPSTREAM_READY;
  upstream->worker = &f->worker;
  upstream->cluster = &f->cluster;
  upstream->endpoint_index = endpoint;
  upstream->peer = f->addrs[endpoint];
  upstream->fd = fds[0];
  uv_timer_init(&f->worker.loop, &upstream->timer);
  upstream->timer.data = upstream;
  upstream->tls = ms_tls_context_up_ref(f->cluster.tls);
  atomic_fetch_add(&upstream->tls->active_connections, 1);
  ms_tls_io_init(&upstream->io, upstream->fd, f->worker.tls_scratch);
  upstream->ssl = test_client_new(upstream->tls, &upstream->io);
  server_end *server = &f->servers[f->server_count++];
  server->upstream = upstream;
  server->fd = fds[1];
  server->ssl = test_server_new(&peers, fds[1]);
  test_handshake(upstream->ssl, &upstream->io, server->ssl);
  CHECK(ms_tls_io_park(&upstream->io) == 0); /* the event that finished it ended */
  upstream->opened_ms = uv_now(&f->worker.loop);
  atomic_fetch_add(&f->endpoints[endpoint].state->active_connections, 1);
  upstream->endpoint_counted = true;
  upstream->callbacks = &owner_callbacks;
  upstream->owner = f;
  return upstream;
}

static server_end *server_of(fixture *f, const ms_upstream *upstream) {
  for (size_t i = 0; i < f->server_count; i++)
    if (f->servers[i].upstream == upstream) return &f->servers[i];
  CHECK(!"an upstream the test opened");
  return NULL;
}

/* deliver hands the upstream's socket event to its callbacks as
 * upstream.c does for a READY upstream. */
static void deliver(ms_upstream *upstream, uint32_t events) {
  CHECK(upstream->state == MS_UPSTREAM_READY);
  bool hup = events & (MS_EVENT_HUP | MS_EVENT_ERROR);
  if (events & (MS_EVENT_READ | MS_EVENT_HUP | MS_EVENT_ERROR))
    ms_tls_io_readable(&upstream->io, hup);
  upstream->callbacks->on_event(upstream, events);
}

static ms_upstream *take(fixture *f, size_t endpoint) {
  ms_upstream *upstream = ms_pool_take(f->pool, &f->cluster, endpoint, &owner_callbacks, f);
  if (upstream) {
    CHECK(upstream->state == MS_UPSTREAM_READY);
    CHECK(upstream->callbacks == &owner_callbacks);
    CHECK(upstream->owner == f);
  }
  return upstream;
}

/* run_for runs the worker's loop for `ms` milliseconds. */
static void on_wait(uv_timer_t *timer) {}
static void run_for(fixture *f, uint64_t ms) {
  uv_timer_t wait;
  uv_timer_init(&f->worker.loop, &wait);
  uv_timer_start(&wait, on_wait, ms, 0);
  while (uv_is_active((uv_handle_t *)&wait))
    uv_run(&f->worker.loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&wait, NULL);
  uv_run(&f->worker.loop, UV_RUN_NOWAIT);
}

/* fixture_cleanup closes what is left (the pool's idle upstreams and those
 * the test holds, `held`) and checks that every upstream was given back. */
static void fixture_cleanup(fixture *f, ms_upstream **held, size_t held_count) {
  for (size_t i = 0; i < held_count; i++)
    ms_upstream_close(held[i]);
  ms_pool_free(f->pool);
  CHECK_INT(idle_gauge(f), 0);
  uv_run(&f->worker.loop, UV_RUN_DEFAULT); /* the close callbacks free the upstreams */
  CHECK(uv_loop_close(&f->worker.loop) == 0);
  for (size_t i = 0; i < ENDPOINTS; i++) {
    CHECK_INT(active(f, i), 0);
    ms_endpoint_state_free(f->endpoints[i].state);
  }
  for (size_t i = 0; i < f->server_count; i++) {
    SSL_free(f->servers[i].ssl);
    close(f->servers[i].fd);
  }
  free(f->worker.tls_scratch);
  ERR_clear_error();
}

static const ms_http_pool_config default_limits = {
    .max_idle = 4, .idle_timeout_ms = 60000, .max_requests = 0, .max_lifetime_ms = 0};

/* Each endpoint has its own idle upstreams, most recently used first. */
static void test_taken_by_endpoint_most_recent_first(void) {
  fixture f;
  fixture_init(&f, default_limits);
  ms_upstream *a = ready_upstream(&f, 0), *b = ready_upstream(&f, 0), *c = ready_upstream(&f, 1);
  CHECK(take(&f, 0) == NULL);
  ms_pool_put(f.pool, a);
  ms_pool_put(f.pool, b);
  ms_pool_put(f.pool, c);
  CHECK_INT(idle_gauge(&f), 3);
  CHECK(a->callbacks != &owner_callbacks); /* the pool's while idle */
  CHECK(take(&f, 0) == b);
  CHECK(take(&f, 0) == a);
  CHECK(take(&f, 0) == NULL);
  CHECK(take(&f, 1) == c);
  CHECK(take(&f, 1) == NULL);
  CHECK_INT(idle_gauge(&f), 0);
  CHECK_INT(active(&f, 0), 2); /* nothing closed */
  CHECK_INT(active(&f, 1), 1);
  ms_upstream *held[] = {a, b, c};
  fixture_cleanup(&f, held, 3);
}

/* At most max_idle per endpoint: the least recently used goes, counted in
 * http_pool_evicted; another endpoint keeps its own. max_idle 0: no
 * pooling. */
static void test_max_idle_per_endpoint(void) {
  fixture f;
  ms_http_pool_config limits = default_limits;
  limits.max_idle = 2;
  fixture_init(&f, limits);
  ms_upstream *a = ready_upstream(&f, 0), *b = ready_upstream(&f, 0), *c = ready_upstream(&f, 0);
  ms_upstream *d = ready_upstream(&f, 1), *e = ready_upstream(&f, 1);
  ms_pool_put(f.pool, a);
  ms_pool_put(f.pool, b);
  ms_pool_put(f.pool, d);
  ms_pool_put(f.pool, e);
  ms_pool_put(f.pool, c); /* endpoint 0 is full: `a` goes */
  CHECK(a->state == MS_UPSTREAM_CLOSED);
  CHECK_INT(atomic_load(&f.worker.stats.http_pool_evicted), 1);
  CHECK_INT(active(&f, 0), 2);
  CHECK_INT(active(&f, 1), 2);
  CHECK_INT(idle_gauge(&f), 4);
  CHECK(take(&f, 0) == c);
  CHECK(take(&f, 0) == b);
  CHECK(take(&f, 0) == NULL);
  CHECK(take(&f, 1) == e);
  ms_pool_put(f.pool, e);
  ms_upstream *held[] = {b, c};
  fixture_cleanup(&f, held, 2);

  limits.max_idle = 0;
  fixture_init(&f, limits);
  a = ready_upstream(&f, 0);
  ms_pool_put(f.pool, a);
  CHECK(a->state == MS_UPSTREAM_CLOSED);
  CHECK_INT(idle_gauge(&f), 0);
  CHECK(take(&f, 0) == NULL);
  fixture_cleanup(&f, NULL, 0);
}

/* An idle upstream closes after idle_timeout_ms (upstream_cx_idle_timeout
 * and its endpoint's pool_idle_timeouts); one taken before that is the
 * taker's: the pool's timer no longer runs for it. */
static void test_idle_timeout(void) {
  fixture f;
  ms_http_pool_config limits = default_limits;
  limits.idle_timeout_ms = 20;
  fixture_init(&f, limits);
  ms_upstream *a = ready_upstream(&f, 0), *b = ready_upstream(&f, 1);
  ms_pool_put(f.pool, a);
  ms_pool_put(f.pool, b);
  CHECK(take(&f, 1) == b);
  run_for(&f, 60);
  CHECK_INT(active(&f, 0), 0);
  CHECK_INT(atomic_load(&f.worker.stats.upstream_cx_idle_timeout), 1);
  CHECK_INT(atomic_load(&f.endpoints[0].state->pool_idle_timeouts), 1);
  CHECK(take(&f, 0) == NULL);
  CHECK(b->state == MS_UPSTREAM_READY);
  CHECK_INT(f.owner_timeouts, 0);
  CHECK_INT(idle_gauge(&f), 0);
  ms_upstream *held[] = {b};
  fixture_cleanup(&f, held, 1);
}

/* max_requests: an upstream that carried that many exchanges is closed on
 * its way back (upstream_cx_max_requests, pool_max_requests). */
static void test_max_requests(void) {
  fixture f;
  ms_http_pool_config limits = default_limits;
  limits.max_requests = 2;
  fixture_init(&f, limits);
  ms_upstream *a = ready_upstream(&f, 0), *b = ready_upstream(&f, 0);
  a->requests = 1;
  b->requests = 2;
  ms_pool_put(f.pool, a);
  ms_pool_put(f.pool, b);
  CHECK(b->state == MS_UPSTREAM_CLOSED);
  CHECK_INT(atomic_load(&f.worker.stats.upstream_cx_max_requests), 1);
  CHECK_INT(atomic_load(&f.endpoints[0].state->pool_max_requests), 1);
  CHECK(take(&f, 0) == a);
  CHECK(take(&f, 0) == NULL);
  ms_upstream *held[] = {a};
  fixture_cleanup(&f, held, 1);
}

/* max_lifetime_ms: an upstream older than that is closed on its way back,
 * and one that aged while idle is never handed out
 * (upstream_cx_max_duration_reached, pool_max_lifetime). */
static void test_max_lifetime(void) {
  fixture f;
  ms_http_pool_config limits = default_limits;
  limits.max_lifetime_ms = 1000;
  fixture_init(&f, limits);
  ms_upstream *a = ready_upstream(&f, 0), *b = ready_upstream(&f, 0);
  a->opened_ms -= 1000;
  ms_pool_put(f.pool, a);
  CHECK(a->state == MS_UPSTREAM_CLOSED);
  ms_pool_put(f.pool, b);
  CHECK_INT(idle_gauge(&f), 1);
  b->opened_ms -= 1000; /* it aged while idle */
  CHECK(take(&f, 0) == NULL);
  CHECK(b->state == MS_UPSTREAM_CLOSED);
  CHECK_INT(atomic_load(&f.worker.stats.upstream_cx_max_duration_reached), 2);
  CHECK_INT(atomic_load(&f.endpoints[0].state->pool_max_lifetime), 2);
  CHECK_INT(active(&f, 0), 0);
  fixture_cleanup(&f, NULL, 0);
}

/* An upstream built on a context that is no longer its cluster's (a
 * rotation), or dialled at an address the endpoint no longer resolves to,
 * carries no new request: take closes it. */
static void test_rotated_or_moved_not_handed_out(void) {
  test_peers rotated;
  test_peers_init(&rotated, TLS1_3_VERSION);
  fixture f;
  fixture_init(&f, default_limits);
  ms_upstream *a = ready_upstream(&f, 0), *b = ready_upstream(&f, 1);
  ms_pool_put(f.pool, a);
  ms_pool_put(f.pool, b);
  f.cluster.tls = rotated.client;
  CHECK(take(&f, 0) == NULL);
  CHECK(a->state == MS_UPSTREAM_CLOSED);
  f.cluster.tls = peers.client;
  struct sockaddr_in *in = (struct sockaddr_in *)&f.addrs[1];
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1); /* a new DNS answer */
  CHECK(take(&f, 1) == NULL);
  CHECK(b->state == MS_UPSTREAM_CLOSED);
  CHECK_INT(idle_gauge(&f), 0);
  fixture_cleanup(&f, NULL, 0);
  test_peers_cleanup(&rotated);
}

/* Only an upstream at rest is kept: not one with bytes of a response left
 * unread, nor one whose close_notify went out. */
static void test_not_at_rest_is_closed(void) {
  fixture f;
  fixture_init(&f, default_limits);
  ms_upstream *a = ready_upstream(&f, 0), *b = ready_upstream(&f, 0);
  CHECK_INT(SSL_write(server_of(&f, a)->ssl, "extra", 5), 5);
  ms_tls_io_readable(&a->io, false);
  char byte;
  CHECK_INT(SSL_read(a->ssl, &byte, 1), 1); /* four bytes left in the record */
  ms_pool_put(f.pool, a);
  CHECK(a->state == MS_UPSTREAM_CLOSED);
  ms_upstream_shutdown(b);
  ms_pool_put(f.pool, b);
  CHECK(b->state == MS_UPSTREAM_CLOSED);
  CHECK(take(&f, 0) == NULL);
  CHECK_INT(idle_gauge(&f), 0);
  fixture_cleanup(&f, NULL, 0);
}

/* While idle the pool reads what the upstream sends: TLS 1.3 session
 * tickets are fine; data, close_notify or a FIN close it, and a closed
 * upstream is never handed out. */
static void test_closed_while_idle_never_handed_out(void) {
  fixture f;
  fixture_init(&f, default_limits);
  ms_upstream *a = ready_upstream(&f, 0), *b = ready_upstream(&f, 0), *c = ready_upstream(&f, 0);
  ms_upstream *d = ready_upstream(&f, 1);
  ms_pool_put(f.pool, a);
  deliver(a, MS_EVENT_READ); /* the tickets the server sent after the handshake */
  CHECK(a->state == MS_UPSTREAM_READY);
  ms_pool_put(f.pool, b);
  ms_pool_put(f.pool, c);
  ms_pool_put(f.pool, d);
  CHECK_INT(idle_gauge(&f), 4);

  server_end *server = server_of(&f, b);
  CHECK(SSL_shutdown(server->ssl) >= 0); /* close_notify */
  deliver(b, MS_EVENT_READ);
  CHECK(b->state == MS_UPSTREAM_CLOSED);
  server = server_of(&f, c);
  CHECK(shutdown(server->fd, SHUT_WR) == 0); /* a FIN */
  deliver(c, MS_EVENT_READ | MS_EVENT_HUP);
  CHECK(c->state == MS_UPSTREAM_CLOSED);
  server = server_of(&f, d);
  CHECK_INT(SSL_write(server->ssl, "HTTP/1.1 408 Request Timeout\r\n\r\n", 32), 32);
  deliver(d, MS_EVENT_READ); /* data while no request is under way */
  CHECK(d->state == MS_UPSTREAM_CLOSED);

  CHECK_INT(idle_gauge(&f), 1);
  CHECK_INT(active(&f, 0), 1);
  CHECK_INT(active(&f, 1), 0);
  CHECK(take(&f, 0) == a);
  CHECK(take(&f, 0) == NULL);
  CHECK(take(&f, 1) == NULL);
  ms_upstream *held[] = {a};
  fixture_cleanup(&f, held, 1);
}

/* ms_pool_free closes every idle upstream, on every endpoint. */
static void test_free_closes_every_idle_upstream(void) {
  fixture f;
  fixture_init(&f, default_limits);
  for (int i = 0; i < 6; i++)
    ms_pool_put(f.pool, ready_upstream(&f, (size_t)i % ENDPOINTS));
  CHECK_INT(idle_gauge(&f), 6);
  CHECK_INT(active(&f, 0), 3);
  fixture_cleanup(&f, NULL, 0); /* checks that none is left open */
}

int main(void) {
  test_peers_init(&peers, TLS1_3_VERSION);
  test_taken_by_endpoint_most_recent_first();
  test_max_idle_per_endpoint();
  test_idle_timeout();
  test_max_requests();
  test_max_lifetime();
  test_rotated_or_moved_not_handed_out();
  test_not_at_rest_is_closed();
  test_closed_while_idle_never_handed_out();
  test_free_closes_every_idle_upstream();
  test_peers_cleanup(&peers);
  printf("pool_test: all checks passed\n");
  return 0;
}
