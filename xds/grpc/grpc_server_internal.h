/* grpc_server_internal.h: what grpc_server.c (the listening socket, its
 * connections and their limits) and grpc_server_call.c (the calls on a
 * connection: stream state, nghttp2 callbacks, ms_grpc_server_call_*)
 * share. Private to //xds/grpc. */
#ifndef MS_GRPC_SERVER_INTERNAL_H
#define MS_GRPC_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "xds/grpc/grpc_internal.h"

#define PEER_TABLE_SIZE 4096

typedef struct server_conn server_conn;

/* How many connections one IP address holds; in the server's table while
 * it holds any. */
typedef struct peer_count {
  struct peer_count *next;
  int family;
  uint8_t ip[16];
  uint32_t connections;
} peer_count;

struct ms_grpc_server {
  uv_loop_t *loop;
  int fd;
  uv_poll_t listen_poll;
  SSL_CTX *ssl_ctx; /* reference held */
  ms_grpc_server_callbacks callbacks;
  void *arg;
  uint32_t handshake_timeout_ms;
  ms_grpc_server_stats stats; /* the limits, and the counters */
  uint16_t port;
  nghttp2_session_callbacks *h2_callbacks;
  server_conn *conns;
  peer_count *peers[PEER_TABLE_SIZE];
  uv_timer_t accept_timer;  /* resumes accepting after a pause */
  uint32_t accept_pause_ms; /* the last pause; 0 after an accept succeeds */
  ms_log_limit accept_log, refuse_log, shed_log;
  size_t open; /* the listening handles and every connection not yet freed */
  bool closing;
};

struct server_conn {
  ms_grpc_io io; /* first: the nghttp2 session's user_data */
  ms_grpc_server *server;
  server_conn *prev, *next;
  ms_grpc_server_call *calls;
  ms_grpc_peer peer;
  peer_count *peer_count;
  size_t buffered; /* bytes of its calls' unfinished messages */
  size_t queued;   /* bytes of its calls' queued responses */
  bool shedding;   /* over a limit: closing */
  char shed_reason[200];
};

/* ---- grpc_server.c -------------------------------------------------------- */

/* ms_grpc_server_conn_shed closes a connection over one of its limits, with
 * one log line a second at most for all connections. With `goaway`, from
 * inside an nghttp2 callback: its calls end now (freeing what they hold),
 * GOAWAY ENHANCE_YOUR_CALM goes out and the connection closes once it is
 * sent, or after GOAWAY_GRACE_MS. Without, from a public function: the
 * connection fails from the loop. Does nothing when it is already shedding. */
void ms_grpc_server_conn_shed(server_conn *conn, bool goaway, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- grpc_server_call.c --------------------------------------------------- */

/* ms_grpc_server_h2_callbacks_new returns the nghttp2 callbacks of a server
 * session (user_data: its server_conn), or NULL when memory ran out; the
 * caller frees them with nghttp2_session_callbacks_del. */
nghttp2_session_callbacks *ms_grpc_server_h2_callbacks_new(void);

/* ms_grpc_server_conn_cancel_calls cancels the connection's active calls:
 * their handlers get on_cancel; the calls stay in its list. */
void ms_grpc_server_conn_cancel_calls(server_conn *conn);

/* ms_grpc_server_conn_free_calls frees every call of the connection, as it
 * is freed (after ms_grpc_server_conn_cancel_calls). */
void ms_grpc_server_conn_free_calls(server_conn *conn);

#endif
