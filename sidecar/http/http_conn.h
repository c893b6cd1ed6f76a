/* http_conn.h: one client connection of an HTTP listener.
 *
 * The application speaks HTTP/1.1 in plaintext; each request goes to an
 * endpoint chosen per request, over a pooled keep-alive mTLS upstream
 * (pool.h, upstream.h), and its response comes back. Requests and
 * responses are parsed with http_parser; bodies stream in both directions
 * (Content-Length or chunked, re-framed as needed) with back-pressure, never
 * buffered whole. Pipelined requests wait, unparsed, until the response
 * before them is done, so answers come in order.
 *
 * What the sidecar answers itself: 400 (malformed request), 408 (head not
 * whole within request_headers_timeout_ms), 431 (head over
 * max_request_headers_bytes), 413 (body over max_request_body_bytes), 502
 * (connect or TLS handshake failed, or the upstream broke off before
 * answering: the body says why, with the TLS alert and hint), 503 (no
 * endpoint), 504 (no response within request_timeout_ms). A request that
 * failed before any byte of a response is sent again to another endpoint
 * when it is idempotent and nothing of its body was read, within the
 * cluster's retries. Runs on its worker's thread. */
#ifndef MS_HTTP_CONN_H
#define MS_HTTP_CONN_H

#include "sidecar/event/worker.h"

typedef struct ms_http_conn ms_http_conn;

/* ms_http_conn_start takes over the accepted client socket `fd` for the
 * HTTP listener of the worker's snapshot that uses `sockets`. */
void ms_http_conn_start(ms_worker *worker, int fd, const ms_listener_sockets *sockets);

/* ms_http_conn_close closes `conn` at once (worker stop). */
void ms_http_conn_close(ms_http_conn *conn);

/* ms_http_worker_stop closes the worker's idle upstreams and its access log
 * files and frees what the HTTP proxy kept for the worker, when it stops
 * (part of its stop hook, worker.h; every client is closed by then). */
void ms_http_worker_stop(ms_worker *worker);

#endif
