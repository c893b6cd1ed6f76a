/* xds_source.h: the control plane as a source of configuration.
 *
 * With an "xds" section in the file, the sidecar keeps one ADS stream open
 * (xds/ads/ads_client.h) and subscribes to every cluster and listener (CDS, LDS
 * wildcard) and to the endpoints and secrets those clusters name (EDS, SDS).
 * Each response is checked whole before anything changes: the resources are
 * decoded (xds/resources/resources.h) into a copy of the state (xds_state.h), the copy
 * is rendered with the file into one configuration, parsed like a file, and
 * applied with every TLS context built first (ms_server_apply_checked). Any
 * failure is a NACK naming the problem, and the configuration in force stays.
 *
 * What is accepted is also saved to xds.backup_path; when the control plane
 * cannot be reached before anything was accepted (the first attempt fails,
 * or the initial fetch timeout passes), the sidecar serves what that file
 * holds until the control plane answers.
 *
 * xds.tls's files (the bootstrap certificate, key and trusted CA) are
 * followed by the server's file watcher: new bytes that load are the
 * context of the next channel (ms_ads_client_set_ssl_ctx; the open stream
 * is not ended for it), files that do not load keep the last good context;
 * logged and counted (xds_client_tls_reloads, xds_client_tls_reload_failure).
 *
 * Readiness (/ready) waits for the first CDS and LDS answers and for every
 * cluster to warm, or for xds.initial_fetch_timeout_ms, or for the backup.
 * Main thread only. */
#ifndef MS_XDS_SOURCE_H
#define MS_XDS_SOURCE_H

#include <uv.h>

#include "sidecar/config/config.h"
#include "sidecar/control/server.h"

typedef struct ms_xds_source ms_xds_source;

/* ms_xds_source_start opens the ADS stream for `file` (whose xds section is
 * enabled; the server was started with it) and installs itself as the
 * server's source: the server stops it when it stops. Takes a reference to
 * `file`. Returns 0 and sets *out, or -1 with `err` (the bootstrap
 * certificate does not load, say). */
int ms_xds_source_start(uv_loop_t *loop, ms_server *server, ms_config *file, ms_xds_source **out,
                        char *err, size_t err_len);

/* ms_xds_source_free releases the source once the loop has ended. Accepts
 * NULL. */
void ms_xds_source_free(ms_xds_source *source);

#endif
