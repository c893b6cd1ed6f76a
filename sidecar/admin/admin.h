/* admin.h: the local JSON admin endpoint (Envoy's paths and field names).
 *
 *   GET  /ready                 200 "LIVE" once ready, else 503 "NOT READY: " and why
 *   GET  /server_info           version, state, uptime, workers, config path
 *   GET  /clusters?format=json  clusters, endpoints, health and counters
 *   GET  /certs                 certificates in use, with expiry
 *   GET  /config_dump           the configuration in force, private keys redacted
 *   GET  /stats                 counters as JSON
 *   GET  /stats/prometheus      counters in Prometheus text format
 *   POST /quitquitquit          drain and exit
 *   anything else               404 with a JSON body
 *
 * Runs on the main thread's loop. Bound to 127.0.0.1 by default. */
#ifndef MS_ADMIN_H
#define MS_ADMIN_H

#include <uv.h>

#include "sidecar/config/config.h"
#include "sidecar/control/server.h"

typedef struct ms_admin ms_admin;

/* ms_admin_start listens on `address` and serves `server`. Returns 0 and
 * sets *out, or a negative libuv error (e.g. UV_EADDRINUSE). */
int ms_admin_start(uv_loop_t *loop, const ms_address *address, ms_server *server, ms_admin **out);

/* ms_admin_health_start listens on `address` for the kubelet's probes (the
 * sidecar's --health-address): GET or HEAD /ready answered as the admin
 * endpoint answers it, anything else 404 naming no other path. The admin
 * endpoint stays on loopback; this listener may face the pod's network
 * because it tells nothing but readiness and changes nothing (no Host
 * check: the kubelet names the pod's IP). Returns 0 and sets *out (closed
 * with ms_admin_close), or a negative libuv error. */
int ms_admin_health_start(uv_loop_t *loop, const ms_address *address, ms_server *server,
                          ms_admin **out);

/* ms_admin_close closes the listener and every admin connection; the memory
 * is freed in the close callbacks. Accepts NULL. */
void ms_admin_close(ms_admin *admin);

#endif
