/* relay.h: the L4 relay, one proxied connection from accept to close.
 *
 *   CONNECTING -> an upstream (upstream.h) to an endpoint the balancer chose
 *                 connects and shakes hands
 *   PROXYING   -> relaying both ways with back-pressure and half-close; a
 *                 peer's abort (a reset, a socket error, a broken TLS
 *                 stream) resets the other side (docs/architecture.md)
 *   CLOSING    -> freed in its timer's close callback
 *
 * A failed connect or handshake moves on to another endpoint (nothing from
 * the client has been read yet, so nothing has reached any upstream), up to
 * the cluster's max_connect_attempts. Runs entirely on its worker's thread. */
#ifndef MS_CONNECTION_H
#define MS_CONNECTION_H

#include <stddef.h>

#include "sidecar/event/worker.h"

typedef struct ms_conn ms_conn;

/* ms_conn_start takes over the accepted client socket `fd` (non-blocking)
 * for the listener of the worker's snapshot that uses `sockets`. On failure
 * the socket is closed and nothing else happens. */
void ms_conn_start(ms_worker *worker, int fd, const ms_listener_sockets *sockets);

/* ms_conn_close starts closing `conn` at once (worker stop). */
void ms_conn_close(ms_conn *conn);

#endif
