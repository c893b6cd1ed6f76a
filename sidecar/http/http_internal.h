/* http_internal.h: what the two halves of an HTTP client connection share.
 *
 * http_conn.c is the client's side: the connection's life, reading and
 * parsing requests, writing to the client, answers of our own, the access
 * log. http_exchange.c is the upstream's side: routing, choosing and
 * retrying an upstream, parsing the response, the tunnel after a 101.
 * Private to those two files. */
#ifndef MS_HTTP_INTERNAL_H
#define MS_HTTP_INTERNAL_H

#include <http_parser.h>
#include <stdbool.h>
#include <stdint.h>

#include "sidecar/http/access_log.h"
#include "sidecar/http/http_conn.h"
#include "sidecar/http/http_head.h"
#include "sidecar/upstream/pool.h"
#include "sidecar/upstream/upstream.h"

#define IN_CHUNK (64 * 1024)  /* client bytes read ahead, beyond a request head */
#define OUT_HIGH (256 * 1024) /* the upstream is not read while this much waits for the client */
#define LINGER_MS 5000        /* after our FIN, how long the client may take to close */

/* What the HTTP proxy keeps per worker (worker->http): made with the
 * worker's first HTTP client, freed by ms_http_worker_stop. */
typedef struct ms_http_worker {
  ms_pool *pool;               /* idle keep-alive upstreams */
  ms_access_logs *access_logs; /* the HTTP listeners' access log files */
  ms_access_line access_line;  /* the line being written */
  uint64_t requests_active;    /* HTTP requests under way, for the retry budget */
  uint64_t retries_active;     /* ...and those among them being retried */
} ms_http_worker;

/* The connection's life (docs/architecture.md has the diagram). */
typedef enum http_conn_state {
  CONN_OPEN,      /* exchanges, one at a time: rq_state and rs_state say where */
  CONN_TUNNEL,    /* after a 101: bytes pass both ways as they are (tunnel_io) */
  CONN_LINGERING, /* our FIN is out: the client's bytes are read and dropped until its FIN */
  CONN_CLOSED,    /* closed; freed in the timer's close callback */
} http_conn_state;

/* The request side of the exchange, in the order it goes. The connection's
 * timer belongs to the first two: in RQ_IDLE it is the client's idle
 * timeout, in RQ_HEAD the head's deadline; once a head is whole, the
 * upstream's timer bounds the exchange. */
typedef enum http_request_state {
  RQ_IDLE, /* between requests: nothing of the next head yet (client_idle_timeout_ms) */
  RQ_HEAD, /* a head is read and parsed, from its first byte or, for a connection's first
              request, from the accept (request_headers_timeout_ms: then 408) */
  RQ_BODY, /* the head is parsed; the body flows once the upstream has the head */
  RQ_DONE, /* parsed to its end; pipelined requests wait unparsed in `in` */
} http_request_state;

/* The response side of the exchange, in the order it goes. */
typedef enum http_response_state {
  RS_NONE,       /* no exchange */
  RS_CONNECTING, /* an upstream is taken from the pool or dialled; a retry waits here */
  RS_HEAD,       /* the request head went upstream: its response head is awaited (1xx pass) */
  RS_BODY,       /* the final head went to the client: the body follows */
  RS_DONE,       /* the response is complete: the exchange ends with the request's end */
} http_response_state;

/* Why the request was cut off (parse_in answers it). */
typedef enum http_request_error {
  RQ_OK,
  RQ_HEAD_TOO_LARGE, /* the head passed max_request_headers_bytes: 431 */
  RQ_BODY_TOO_LARGE, /* the body passed max_request_body_bytes: 413 */
  RQ_REFUSED,        /* the head cannot be proxied (rq_refused says why): 400 */
} http_request_error;

struct ms_http_conn {
  ms_client_link link; /* first: the worker's list of clients */
  ms_worker *worker;
  ms_snapshot *snapshot;       /* reference held; the newest one at each request */
  const ms_listener *listener; /* in `snapshot` */
  int fd;
  ms_event_source source;
  ms_event_source task; /* a retry, after the events under way */
  http_conn_state state;
  bool readable, hup, eof; /* what the client's socket said: not drained, hung up, FIN read */
  bool close_after;        /* no request after this one: close once the client has the answer */
  bool send_timer;         /* the timer bounds a client that stopped reading a response */
  uv_timer_t timer; /* idle, the head's deadline, or lingering; its close frees the connection */
  char peer[64];

  char *in; /* client bytes not parsed yet */
  size_t in_len, in_capacity;

  /* The request under way. */
  http_request_state rq_state;
  http_parser rq_parser;
  ms_http_head rq;
  size_t rq_head_bytes;
  http_request_error rq_error;
  ms_http_request_verdict rq_refused; /* RQ_REFUSED: why (ms_http_request_check) */
  bool rq_counted;                    /* counted in the worker's requests_active */
  bool rq_retrying;                   /* counted in the worker's retries_active */
  bool rq_body_started;               /* body bytes went upstream: no retry */
  bool rq_keep_alive;
  ms_http_framing rq_framing;
  uint64_t rq_body_bytes;
  const ms_cluster *cluster;
  ms_http_out rq_out; /* the head for the upstream, until it is ready */
  ms_upstream *upstream;
  uint64_t rq_start_ns;       /* the request's first byte */
  uint64_t rs_head_ns;        /* the final response's head came */
  const char *rq_endpoint;    /* where it went last (in `snapshot`), for the access log */
  bool rq_reused, rq_resumed; /* ...on a pooled connection; on a resumed TLS session */
  uint64_t rs_body_bytes;
  uint64_t tried;
  uint32_t attempts, retries;
  char last_error[640];

  /* Its response. */
  http_response_state rs_state;
  http_parser rs_parser;
  ms_http_head rs;
  const char *rs_refused; /* why its head is not passed on (a 502), or NULL */
  ms_http_framing rs_framing;
  unsigned rs_status;
  bool upstream_in_doubt; /* it sent more than the response: closed, never pooled */
  bool upstream_eof;      /* CONN_TUNNEL: the upstream is done */

  ms_http_out out; /* for the client */
  size_t out_sent;
};

/* ms_http_response_started: a final response's head went to the client (or
 * a 101's): the request can no longer be retried or answered otherwise. */
static inline bool ms_http_response_started(const ms_http_conn *conn) {
  return conn->rs_state >= RS_BODY;
}

static inline const ms_http_listener_config *ms_http_config(const ms_http_conn *conn) {
  return &conn->listener->config->http;
}

/* ---- http_conn.c ---------------------------------------------------------- */

/* ms_http_count_status counts a response sent to the client by class,
 * server-wide and for the connection's listener. */
void ms_http_count_status(ms_http_conn *conn, unsigned status);

/* ms_http_flush_client writes what waits for the client. Returns 1 when all
 * is out, 0 when the socket is full, -1 when the connection was closed. */
int ms_http_flush_client(ms_http_conn *conn);

/* ms_http_read_client reads what the client sent into `in`, while the
 * connection wants more. Returns -1 when the connection was closed. */
int ms_http_read_client(ms_http_conn *conn);

/* ms_http_respond answers the request with a status of our own and a
 * plain-text body, and ends the exchange. */
void ms_http_respond(ms_http_conn *conn, unsigned status, const char *reason, const char *body);

/* ms_http_respond_verdict answers the request as `verdict` (not
 * MS_HTTP_REQUEST_PROXY) says, with ms_http_respond. */
void ms_http_respond_verdict(ms_http_conn *conn, ms_http_request_verdict verdict);

/* ms_http_end_exchange ends the exchange: the upstream goes back to the
 * pool when `upstream_reusable`, else it is closed; the next pipelined
 * request, if any, starts on the next turn. */
void ms_http_end_exchange(ms_http_conn *conn, bool upstream_reusable);

/* ms_http_log_request writes the access log line of the request, if the
 * listener has an access log. */
void ms_http_log_request(ms_http_conn *conn, uint64_t duration_us);

/* ms_http_end_event ends every event of the connection (the client's, the
 * upstream's, a posted task), as the L4 relay's events end: what the
 * upstream's TLS left in the worker's scratch buffers (records read ahead
 * and not opened yet, sealed bytes not sent) moves to the heap
 * (ms_tls_io_park) before another connection's event reuses the scratch.
 * Closes the connection when memory ran out. */
void ms_http_end_event(ms_http_conn *conn);

/* ms_http_client_io moves what can move on the client's side: its writes,
 * its reads, the next request's head, the request body. */
void ms_http_client_io(ms_http_conn *conn);

/* ---- http_exchange.c ------------------------------------------------------ */

/* ms_http_start_exchange: a request head is parsed; route it, check the
 * limits, write the head for the upstream and find one. */
void ms_http_start_exchange(ms_http_conn *conn);

/* ms_http_pick_upstream finds an upstream for the request (pooled or new),
 * or answers 502/503. */
void ms_http_pick_upstream(ms_http_conn *conn);

/* ms_http_attempt_failed: the upstream failed before the response began
 * (`message` is why, or NULL for the last error); it is closed, and the
 * request is retried when it may be (a failure of a pooled connection the
 * upstream closed meanwhile is not counted as a retry), else answered 502. */
void ms_http_attempt_failed(ms_http_conn *conn, const char *message, bool counts_as_retry);

/* ms_http_upstream_io reads the response while the client keeps up. */
void ms_http_upstream_io(ms_http_conn *conn);

/* ms_http_tunnel_io moves bytes both ways after a 101. */
void ms_http_tunnel_io(ms_http_conn *conn);

#endif
