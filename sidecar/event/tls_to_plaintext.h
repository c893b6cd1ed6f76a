/* tls_to_plaintext.h: noticing a client that speaks TLS to a plaintext
 * listener, the mirror of the upstream's "not_tls" (certs.h). The
 * application is meant to speak plaintext to the sidecar, which adds TLS
 * towards the upstream; a client configured for https:// sends a
 * ClientHello instead. Worker threads only. */
#ifndef MS_TLS_TO_PLAINTEXT_H
#define MS_TLS_TO_PLAINTEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "sidecar/event/worker.h"

/* ms_tls_to_plaintext_check looks at the first `len` bytes a client sent to
 * the listener `sockets`. When they begin a TLS record (0x16 0x03
 * 0x00..0x04, a ClientHello), it counts downstream_cx_tls_to_plaintext (the
 * worker's and the listener's) and logs a warning naming the listener, what
 * the sidecar does with the connection (`action`, like "relayed as bytes")
 * and the fix, at most one line a second per worker with a count. Returns
 * true when they did. */
bool ms_tls_to_plaintext_check(ms_worker *worker, ms_listener_sockets *sockets, const void *bytes,
                               size_t len, const char *action);

/* The hint the line and an HTTP listener's 400 answer carry. */
#define MS_TLS_TO_PLAINTEXT_HINT                                                            \
  "the client speaks TLS to a plaintext listener: point it at http:// or disable its TLS; " \
  "the sidecar adds TLS towards the upstream"

#endif
