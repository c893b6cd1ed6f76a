/* xds_state.h: the resources the control plane sent, and the configuration
 * they make together with the static file.
 *
 * State of the world, as Envoy keeps it: a CDS or LDS response replaces every
 * cluster or listener; EDS and SDS responses carry the names asked for and
 * replace those only. A cluster goes live once it is warm: its secrets (SDS)
 * and at least one endpoint (EDS) are here; a listener goes live with its
 * clusters (a TCP listener's one; every cluster an HTTP listener's routes
 * name). A cluster still warming when its initial fetch timeout passes no
 * longer holds up readiness (it stays out, and says why in the log).
 *
 * The configuration is rendered as the sidecar's own JSON (the static file
 * with the dynamic clusters and listeners added) and parsed like a file:
 * every check and default of config.c applies, and the same text is what
 * /config_dump shows. Secrets sent inline are named there, not copied
 * (certificate_secret, validation_secret): their bytes go to the server's
 * secret set (xds_secrets.h). Main thread only. */
#ifndef MS_XDS_STATE_H
#define MS_XDS_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xds/resources/resources.h"

typedef struct ms_xds_state ms_xds_state;

/* ms_xds_state_new returns an empty state, or NULL when memory ran out. */
ms_xds_state *ms_xds_state_new(void);
void ms_xds_state_free(ms_xds_state *state); /* accepts NULL */

/* ms_xds_state_set_local_secrets names the secrets the identity agent
 * answers (sidecar/identity/identity.h; NULL: none): they are never subscribed to
 * over SDS, never hold a cluster warming, and are rendered by name for the
 * server to find in its local set; a control plane's secret of the same
 * name is ignored. Copied, and kept by clones. Returns 0 or -1 (memory). */
int ms_xds_state_set_local_secrets(ms_xds_state *state, const char *certificate,
                                   const char *trust_bundle);

/* ms_xds_state_update decodes a response's resources of `kind` and, when
 * every one is valid and names are unique, puts them in force (replacing all
 * clusters or listeners, or the named endpoints or secrets). Returns 0, or
 * -1 with a message naming the resource and the problem for the NACK (then
 * nothing changed). */
int ms_xds_state_update(ms_xds_state *state, ms_xds_kind kind,
                        const Google__Protobuf__Any *const *resources, size_t count, char *err,
                        size_t err_len);

/* ms_xds_state_clone returns a copy of `state` (decoded again from the
 * bytes it keeps), or NULL when memory ran out. The ADS glue updates a clone
 * and keeps it only if the configuration it makes is accepted: a NACK
 * leaves the state exactly as it was. */
ms_xds_state *ms_xds_state_clone(const ms_xds_state *state);

/* ms_xds_state_raw returns the accepted resources of `kind` as they came
 * (borrowed until the state's next update): what the backup file keeps. */
const Google__Protobuf__Any *const *ms_xds_state_raw(const ms_xds_state *state, ms_xds_kind kind,
                                                     size_t *out_count);

/* ms_xds_state_secrets returns the secrets held (borrowed until the
 * state's next update): the server's secret set is made from them
 * (sidecar/xds/xds_secrets.h). */
const ms_xds_secret *ms_xds_state_secrets(const ms_xds_state *state, size_t *out_count);

/* ms_xds_state_wanted lists the names to subscribe to for EDS or SDS: the
 * endpoints and secrets the current clusters name. The caller frees the
 * array (not the strings, which the state owns until its next update). */
const char **ms_xds_state_wanted(const ms_xds_state *state, ms_xds_kind kind, size_t *out_count);

/* ms_xds_state_expire_warming marks the clusters that have been warming
 * longer than `timeout_ms` (by `now_ms`, a monotonic clock) as timed out:
 * they stop holding up readiness. Returns how many were marked now. */
size_t ms_xds_state_expire_warming(ms_xds_state *state, uint64_t now_ms, uint64_t timeout_ms);

/* An ms_xds_listener_check says whether a live dynamic listener can be
 * opened; one that cannot (its address is another process's) is left out,
 * and the rest of the update applies (Envoy too goes on without a listener
 * it cannot bind). */
typedef bool (*ms_xds_listener_check)(const ms_xds_listener *listener, void *arg);

/* ms_xds_state_render returns the configuration as JSON text (caller frees):
 * `static_json` (the file's text) with the live dynamic clusters and
 * listeners added, but for the listeners `check` (NULL: none) refuses.
 * Returns NULL with a message when a dynamic name collides with a static
 * one or memory ran out. */
char *ms_xds_state_render(const ms_xds_state *state, const char *static_json,
                          ms_xds_listener_check check, void *check_arg, char *err, size_t err_len);

/* ms_xds_state_counts: clusters and listeners held, and clusters warming
 * (not live and not timed out). */
void ms_xds_state_counts(const ms_xds_state *state, size_t *out_clusters, size_t *out_warming,
                         size_t *out_listeners);

#endif
