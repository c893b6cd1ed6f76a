/* upstream.h: one mutual-TLS connection to an endpoint of a cluster.
 *
 *   CONNECTING  -> TCP connect, bounded by the cluster's connect_timeout_ms
 *   HANDSHAKING -> TLS as client: certificate, SNI, session resumption from
 *                  the worker's cache, verification of the endpoint's name,
 *                  bounded by handshake_timeout_ms
 *   READY       -> the owner reads and writes through `ssl`; sealed bytes go
 *                  out with ms_upstream_flush
 *   CLOSED      -> the socket is closed; the memory goes in a close callback
 *
 * Its owner is an L4 connection (one upstream each) or an HTTP pool (many,
 * reused). Both get their upstreams from here, so verification, SNI,
 * resumption, failure reporting and endpoint health are the same for both.
 *
 * Lifetimes: the upstream holds a reference to the snapshot whose cluster
 * it dials and to that cluster's TLS context, so a rotation never touches a
 * connection under way: it keeps the context it started with. The owner
 * calls ms_upstream_close once; callbacks stop at once, and the memory is
 * freed after the batch of events under way. Worker thread only. */
#ifndef MS_UPSTREAM_H
#define MS_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "sidecar/event/events.h"
#include "sidecar/event/snapshot.h"
#include "sidecar/event/worker.h"
#include "sidecar/tls/tls_io.h"
#include "sidecar/upstream/balancer.h"

typedef enum ms_upstream_state {
  MS_UPSTREAM_CONNECTING,
  MS_UPSTREAM_HANDSHAKING,
  MS_UPSTREAM_READY,
  MS_UPSTREAM_CLOSED,
} ms_upstream_state;

typedef struct ms_upstream ms_upstream;

/* The room for a failure line (on_failed's `message`): a whole log line, so
 * that what the log, the endpoint's last_error and a 502 say is never cut
 * shorter than the log's own cap. */
#define MS_UPSTREAM_MESSAGE_LEN 1024

typedef struct ms_upstream_callbacks {
  /* The handshake is done: the upstream is READY. Our last handshake
   * flight (the Finished) is still in io, unsent, so that the owner's first
   * bytes go out with it in one write: the owner flushes (ms_upstream_flush)
   * before it returns to the loop. */
  void (*on_ready)(ms_upstream *upstream);
  /* Connecting or the handshake failed; `message` is the one line already
   * logged and recorded against the endpoint ("cluster=... endpoint=...:
   * why"). The owner closes the upstream and may try another endpoint. */
  void (*on_failed)(ms_upstream *upstream, const char *message);
  /* READY: the socket reported `events` (MS_EVENT_*); what may be read is
   * in io.drained. */
  void (*on_event)(ms_upstream *upstream, uint32_t events);
  /* READY: the time given to ms_upstream_set_timeout passed. May be NULL
   * for an owner that never sets one. */
  void (*on_timeout)(ms_upstream *upstream);
} ms_upstream_callbacks;

struct ms_upstream {
  ms_upstream_state state;
  ms_worker *worker;
  ms_snapshot *snapshot;     /* reference held */
  const ms_cluster *cluster; /* in `snapshot` */
  size_t endpoint_index;
  char address[64];             /* the socket address dialled */
  struct sockaddr_storage peer; /* the same, as resolved (the pool checks it still is) */
  int fd;
  ms_event_source source;
  uv_timer_t timer;    /* connect and handshake timeouts; its close frees the upstream */
  ms_tls_context *tls; /* reference held, counted in its active_connections */
  SSL *ssl;
  ms_tls_io io;
  uint64_t session_key;
  bool sni_sent;
  bool close_notify_sent;                 /* ms_upstream_shutdown ran */
  bool shut;                              /* close_notify is out and so is our FIN */
  bool endpoint_counted;                  /* holds one of the endpoint's active_connections */
  const ms_upstream_callbacks *callbacks; /* the owner's; a pool hands them over */
  void *owner;

  /* For the HTTP pools (pool.h). */
  uint64_t opened_ms; /* uv_now when opened */
  uint32_t requests;  /* exchanges carried */
  ms_upstream *idle_prev, *idle_next;
  void *idle_list; /* the pool's list holding it while idle, or NULL */
};

/* ms_upstream_open dials endpoint `endpoint_index` of `cluster` (in
 * `snapshot`, which gains a reference) and reports through `callbacks`.
 * Returns the upstream, or NULL with `message` set (one line, logged and
 * recorded against the endpoint) when the connect failed at once. */
ms_upstream *ms_upstream_open(ms_worker *worker, ms_snapshot *snapshot, const ms_cluster *cluster,
                              size_t endpoint_index, const ms_upstream_callbacks *callbacks,
                              void *owner, char *message, size_t message_len);

/* ms_upstream_set_timeout calls on_timeout once `ms` milliseconds from
 * now (0: never) while READY. */
void ms_upstream_set_timeout(ms_upstream *upstream, uint64_t ms);

/* ms_upstream_close closes the socket and stops the callbacks; accepts NULL. */
void ms_upstream_close(ms_upstream *upstream);

/* ms_upstream_abort closes like ms_upstream_close, but as an abort: RST
 * instead of FIN (and, as always on close, no close_notify), so that the
 * upstream cannot take the end for a complete stream. Accepts NULL. */
void ms_upstream_abort(ms_upstream *upstream);

/* ms_upstream_flush writes the sealed bytes; once everything is out after
 * ms_upstream_shutdown, it sends FIN. Returns 1 when everything is out, 0
 * when the socket is full (a writable event follows), -1 on a socket error. */
int ms_upstream_flush(ms_upstream *upstream);

/* ms_upstream_shutdown queues close_notify (the FIN follows it out). */
void ms_upstream_shutdown(ms_upstream *upstream);

/* ms_upstream_fail_late handles an alert from a READY upstream that spoke
 * no data yet: TLS 1.3 servers refuse a client certificate after the
 * client's side of the handshake is done. It logs and records the failure
 * like a handshake failure and writes the line into `message`. */
void ms_upstream_fail_late(ms_upstream *upstream, int ssl_error, char *message, size_t message_len);

/* ms_upstream_on_new_session is the SSL_CTX new-session callback: it files
 * a session the upstream issued in the worker's cache. Returns 1 when it
 * took the reference, 0 when not. Installed on every context. */
int ms_upstream_on_new_session(SSL *ssl, SSL_SESSION *session);

/* ms_upstream_endpoint names the endpoint as configured. */
const char *ms_upstream_endpoint(const ms_upstream *upstream);

/* ms_upstream_endpoint_state returns the shared counters and health of the
 * endpoint `upstream` dials (borrowed from its snapshot). */
ms_endpoint_state *ms_upstream_endpoint_state(const ms_upstream *upstream);

/* ---- per worker ------------------------------------------------------------ */

/* ms_upstream_worker_take_snapshot is the worker's take_snapshot hook
 * (worker.h): the worker's balancers (one per cluster) follow `snapshot`,
 * keeping their round-robin state while the clusters keep their shape (a
 * certificate rotation, a DNS refresh). Returns 0, or -1 when memory ran
 * out (the balancers stay as they were). */
int ms_upstream_worker_take_snapshot(ms_worker *worker, const ms_snapshot *snapshot);

/* ms_upstream_worker_stop frees the worker's balancers, when it stops (part
 * of its stop hook). */
void ms_upstream_worker_stop(ms_worker *worker);

/* ms_upstream_pick returns the endpoint of `cluster` to try next under the
 * cluster's policy, skipping the endpoints whose bit is set in `tried`
 * (balancer.h: ms_balancer_pick), or MS_NO_ENDPOINT when none is left (or
 * memory ran out). `cluster` may be from an older snapshot than the
 * worker's: when the worker's balancer for its index does not fit it, the
 * pick uses a balancer of its own (without the round-robin cursor). */
size_t ms_upstream_pick(ms_worker *worker, const ms_cluster *cluster, uint64_t tried);

/* MS_ENDPOINT_STAT_ADD adds `n` to a counter of the endpoint `upstream`
 * dials (an atomic shared by every worker, summed per cluster in /stats). */
#define MS_ENDPOINT_STAT_ADD(upstream, field, n) \
  atomic_fetch_add_explicit(&ms_upstream_endpoint_state(upstream)->field, n, memory_order_relaxed)

#endif
