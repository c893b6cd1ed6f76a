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
#define MS_STATS_COUNTERS(X)                                                             \
  X(downstream_cx_total, "client connections accepted")                                  \
  X(downstream_cx_active, "client connections open now (gauge)")                         \
  X(downstream_cx_no_endpoint, "client connections closed because no endpoint was left") \
  X(downstream_cx_idle_timeout, "connections closed by the idle timeout")                \
  X(upstream_cx_total, "upstream connections attempted")                                 \
  X(upstream_cx_connect_fail, "upstream TCP connects that failed")                       \
  X(upstream_cx_connect_timeout, "upstream TCP connects that timed out")                 \
  X(upstream_cx_retry, "client connections moved to another endpoint")                   \
  X(upstream_cx_destroy_remote, "upstream connections closed or reset by the upstream")  \
  X(ssl_handshake, "upstream TLS handshakes completed")                                  \
  X(ssl_session_reused, "handshakes that resumed a session")                             \
  X(ssl_handshake_full, "handshakes that did not resume a session")                      \
  X(ssl_connection_error, "upstream TLS handshakes that failed")                         \
  X(bytes_sent_upstream, "plaintext bytes relayed from clients to upstreams")            \
  X(bytes_received_upstream, "plaintext bytes relayed from upstreams to clients")        \
  X(tls_reload_success, "TLS contexts rebuilt after a certificate change")               \
  X(tls_reload_failure, "certificate changes refused (old context kept)")                \
  X(xds_update_success, "control plane responses accepted (ACK)")                        \
  X(xds_update_rejected, "control plane responses refused (NACK)")                       \
  X(xds_secret_rotation, "SDS updates applied as a rotation (new bytes, same secrets)")  \
  X(xds_stream_established, "ADS streams opened to the control plane")                   \
  X(xds_stream_closed, "ADS streams or connection attempts that ended")

typedef struct ms_stats {
#define MS_STATS_FIELD(name, help) atomic_llong name;
  MS_STATS_COUNTERS(MS_STATS_FIELD)
#undef MS_STATS_FIELD
  atomic_llong handshake_failure[MS_TLS_FAILURE_COUNT]; /* by ms_tls_failure */
} ms_stats;

/* MS_STAT_ADD bumps a counter of a worker's own ms_stats. */
#define MS_STAT_ADD(stats, field, n)                                                       \
  atomic_store_explicit(&(stats)->field,                                                   \
                        atomic_load_explicit(&(stats)->field, memory_order_relaxed) + (n), \
                        memory_order_relaxed)

/* ms_stats_add adds every counter of `from` into `into` (admin thread). */
void ms_stats_add(ms_stats *into, const ms_stats *from);

#endif
