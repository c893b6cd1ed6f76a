/* connection.h: one proxied connection, from accept to close.
 *
 *   CONNECTING  -> TCP connect to an endpoint the balancer chose
 *   HANDSHAKING -> TLS handshake as client (certificate, SNI, resumption, verification)
 *   PROXYING    -> relaying both ways with back-pressure and half-close
 *   CLOSING     -> handles closing; freed in the last close callback
 *
 * A failed connect or handshake moves on to another endpoint (nothing from
 * the client has been read yet, so nothing has reached any upstream), up to
 * the cluster's max_connect_attempts. Runs entirely on its worker's thread. */
#ifndef MS_CONNECTION_H
#define MS_CONNECTION_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "sidecar/worker.h"

/* ms_conn_start takes over the accepted client socket `fd` (non-blocking)
 * for the listener of the worker's snapshot that uses `sockets`. On failure
 * the socket is closed and nothing else happens. */
void ms_conn_start(ms_worker *worker, int fd, const ms_listener_sockets *sockets);

/* ms_conn_close starts closing `conn` at once (worker stop). */
void ms_conn_close(ms_conn *conn);

/* ms_conn_on_new_session is the SSL_CTX new-session callback: it files a
 * session the upstream issued in the worker's cache. Returns 1 when it took
 * the reference, 0 when not. Installed on every context (server.c). */
int ms_conn_on_new_session(SSL *ssl, SSL_SESSION *session);

#endif
