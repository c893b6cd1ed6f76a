/* stats.h: counters. Each worker owns one ms_stats and is its only writer;
 * the admin endpoint sums them (ms_stats_add) when it is asked. No locks and
 * no atomic read-modify-write on the data path: a counter is bumped with a
 * relaxed load and store. Names follow Envoy's where Envoy has one. */
#ifndef MS_STATS_H
#define MS_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "certs/certs.h"

/* X(name, help): every counter, in /stats and /stats/prometheus order. */
#define MS_STATS_COUNTERS(X)                                                                 \
  X(downstream_cx_total, "client connections accepted")                                      \
  X(downstream_cx_active, "client connections open now (gauge)")                             \
  X(downstream_cx_overflow, "connections closed at once: over max_connections")              \
  X(downstream_cx_accept_fail, "accepts failed for lack of descriptors or memory")           \
  X(downstream_cx_no_endpoint, "client connections closed because no endpoint was left")     \
  X(downstream_cx_idle_timeout, "connections closed by the idle timeout")                    \
  X(downstream_cx_tls_to_plaintext, "client connections that began with a TLS handshake")    \
  X(downstream_rq_header_timeout, "clients answered 408 at request_headers_timeout_ms")      \
  X(downstream_cx_reset, "TCP relays the client reset; the upstream was reset too")          \
  X(upstream_cx_total, "upstream connections attempted")                                     \
  X(upstream_cx_connect_fail, "upstream TCP connects that failed")                           \
  X(upstream_cx_connect_timeout, "upstream TCP connects that timed out")                     \
  X(upstream_cx_retry, "client connections moved to another endpoint")                       \
  X(upstream_cx_destroy_remote, "upstream connections closed or reset by the upstream")      \
  X(upstream_cx_idle_timeout, "pooled upstream connections closed after idle_timeout_ms")    \
  X(upstream_cx_max_requests, "upstream connections closed after http_pool.max_requests")    \
  X(upstream_cx_max_duration_reached, "upstream connections retired: over max_lifetime_ms")  \
  X(ssl_handshake, "upstream TLS handshakes completed")                                      \
  X(ssl_session_reused, "handshakes that resumed a session")                                 \
  X(ssl_handshake_full, "handshakes that did not resume a session")                          \
  X(ssl_connection_error, "upstream TLS handshakes that failed")                             \
  X(bytes_sent_upstream, "plaintext bytes relayed from clients to upstreams")                \
  X(bytes_received_upstream, "plaintext bytes relayed from upstreams to clients")            \
  X(http_rq_total, "HTTP requests received")                                                 \
  X(http_rq_1xx, "HTTP responses 1xx sent to clients (101 included)")                        \
  X(http_rq_2xx, "HTTP responses 2xx sent to clients")                                       \
  X(http_rq_3xx, "HTTP responses 3xx sent to clients")                                       \
  X(http_rq_4xx, "HTTP responses 4xx sent to clients")                                       \
  X(http_rq_5xx, "HTTP responses 5xx sent to clients")                                       \
  X(http_rq_retry, "HTTP requests sent again to another endpoint")                           \
  X(http_rq_timeout, "HTTP requests answered 504: no response in request_timeout_ms")        \
  X(http_pool_reused, "HTTP requests sent on a pooled keep-alive upstream connection")       \
  X(http_pool_new, "HTTP requests that needed a new upstream connection")                    \
  X(http_pool_idle, "idle keep-alive upstream connections in the pools now (gauge)")         \
  X(http_pool_evicted, "idle upstream connections closed to make room: over max_idle")       \
  X(tls_reload_success, "TLS contexts rebuilt after a certificate change")                   \
  X(tls_reload_failure, "certificate changes refused (old context kept)")                    \
  X(config_reload_success, "configuration reloads (SIGHUP) put in force")                    \
  X(config_reload_failure, "configuration reloads (SIGHUP) refused: the one in force stays") \
  X(xds_update_success, "control plane responses accepted (ACK)")                            \
  X(xds_update_rejected, "control plane responses refused (NACK)")                           \
  X(xds_secret_rotation, "SDS updates applied as a rotation (new bytes, same secrets)")      \
  X(xds_stream_established, "ADS streams opened to the control plane")                       \
  X(xds_stream_closed, "ADS streams or connection attempts that ended")                      \
  X(identity_csr_success, "certificates obtained by the identity agent and put in force")    \
  X(identity_csr_failure, "identity agent requests that failed or whose answer was refused") \
  X(identity_rotations, "renewals of the identity agent's certificate put in force")         \
  X(identity_trust_bundle_reloads,                                                           \
    "changes of identity.trust_bundle_file put in force (ROOTCA published again)")           \
  X(identity_trust_bundle_reload_failure,                                                    \
    "changes of identity.trust_bundle_file refused: no certificate in it (the last stays)")  \
  X(xds_client_tls_reloads,                                                                  \
    "changes of the control plane's or the CA's TLS files put in force (next connection)")   \
  X(xds_client_tls_reload_failure,                                                           \
    "changes of the control plane's or the CA's TLS files refused (the last context stays)") \
  X(admin_cx_evicted, "admin connections closed at the cap of 64 open")                      \
  X(admin_cx_timeout, "admin connections closed: no whole request within 10 s")              \
  X(admin_rq_refused, "admin requests refused: 400, 403, 413, 414, 421 or 431")

/* X(name, help): the counters of each listener, in /stats as
 * listener.<listener name>.<name> (Envoy's per-listener stats); the
 * server-wide counters of the same names are their sums over every listener
 * there ever was. */
#define MS_LISTENER_COUNTERS(X)                                                                 \
  X(downstream_cx_total, "client connections accepted, by listener")                            \
  X(downstream_cx_active, "client connections open now, by listener (gauge)")                   \
  X(downstream_cx_overflow, "connections closed at once: over the listener's max_connections")  \
  X(downstream_cx_accept_fail, "accepts failed for lack of descriptors or memory, by listener") \
  X(downstream_cx_idle_timeout, "connections closed by the idle timeout, by listener")          \
  X(downstream_cx_reset, "TCP relays the client reset, by listener")                            \
  X(downstream_cx_no_endpoint,                                                                  \
    "client connections closed because no endpoint was left, by listener")                      \
  X(downstream_cx_tls_to_plaintext,                                                             \
    "client connections that began with a TLS handshake, by listener")

/* X(name, help): the counters of each HTTP listener, in /stats as
 * http.<listener name>.<name> (the stats of Envoy's HTTP connection
 * manager); the server-wide http_rq_* are their sums, and
 * downstream_rq_header_timeout (request_headers_timeout_ms) has a server-wide
 * counter of its own name. */
#define MS_HTTP_LISTENER_COUNTERS(X)                                                       \
  X(downstream_rq_total, "HTTP requests received, by listener")                            \
  X(downstream_rq_1xx, "HTTP responses 1xx sent to clients, by listener")                  \
  X(downstream_rq_2xx, "HTTP responses 2xx sent to clients, by listener")                  \
  X(downstream_rq_3xx, "HTTP responses 3xx sent to clients, by listener")                  \
  X(downstream_rq_4xx, "HTTP responses 4xx sent to clients, by listener")                  \
  X(downstream_rq_5xx, "HTTP responses 5xx sent to clients, by listener")                  \
  X(downstream_rq_timeout, "HTTP requests answered 504 (request_timeout_ms), by listener") \
  X(downstream_rq_header_timeout, "HTTP clients answered 408 (head too slow), by listener")

/* One worker's counters of one listener. A listener keeps one block per
 * worker (ms_listener_sockets.stats); each worker writes only its own, with
 * MS_STAT_ADD, and the admin sums them: no atomic read-modify-write on the
 * data path. Aligned so that two workers' blocks never share a cache line. */
typedef struct __attribute__((aligned(64))) ms_listener_stats {
#define MS_LISTENER_STATS_FIELD(name, help) atomic_llong name;
  MS_LISTENER_COUNTERS(MS_LISTENER_STATS_FIELD)
  MS_HTTP_LISTENER_COUNTERS(MS_LISTENER_STATS_FIELD)
#undef MS_LISTENER_STATS_FIELD
} ms_listener_stats;

/* HTTP request latency (first byte of the request to last byte of the
 * response handed to the client): a histogram with these upper bounds in
 * milliseconds, the last one +Inf. */
#define MS_LATENCY_BUCKETS 16
extern const double ms_latency_bounds_ms[MS_LATENCY_BUCKETS - 1];

typedef struct ms_stats {
#define MS_STATS_FIELD(name, help) atomic_llong name;
  MS_STATS_COUNTERS(MS_STATS_FIELD)
#undef MS_STATS_FIELD
  atomic_llong handshake_failure[MS_TLS_FAILURE_COUNT]; /* by ms_tls_failure */
  atomic_llong latency[MS_LATENCY_BUCKETS];             /* requests per bucket */
  atomic_llong latency_sum_us;
} ms_stats;

/* ms_stats_record_latency counts one request of `us` microseconds in a
 * worker's own ms_stats. */
void ms_stats_record_latency(ms_stats *stats, uint64_t us);

/* ms_stats_latency_bucket returns the bucket of the histogram that holds
 * the `q` quantile (0..1) of the requests counted: the first bucket i whose
 * requests and those below reach q of them all; -1 with no requests. The
 * quantile is then at most ms_latency_bounds_ms[i] (the last bucket,
 * MS_LATENCY_BUCKETS - 1, has no bound): a bound, not a measure. */
int ms_stats_latency_bucket(const ms_stats *stats, double q);

/* MS_STAT_ADD bumps a counter of a worker's own ms_stats. */
#define MS_STAT_ADD(stats, field, n)                                                       \
  atomic_store_explicit(&(stats)->field,                                                   \
                        atomic_load_explicit(&(stats)->field, memory_order_relaxed) + (n), \
                        memory_order_relaxed)

/* ms_stats_add adds every counter of `from` into `into` (admin thread). */
void ms_stats_add(ms_stats *into, const ms_stats *from);

#endif
