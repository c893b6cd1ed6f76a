/* ads_client_state.h: the pure parts of the ADS client (ads_client.h),
 * without sockets or a loop, so that xds/ads/ads_client_test.c can drive them:
 * the reconnect backoff, the per-type protocol state and its transitions,
 * and the encoding of DiscoveryRequests. Private to //xds/ads:ads_client.
 *
 * Functions return 0 or UV_ENOMEM; on failure their object is unchanged. */
#ifndef MS_ADS_CLIENT_STATE_H
#define MS_ADS_CLIENT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xds/ads/ads_client.h"

/* ---- backoff ---------------------------------------------------------------- */

/* ms_ads_backoff_ms: see ads_client.h. */

/* ---- the node ------------------------------------------------------------- */

/* The node, copied from the options. */
typedef struct ms_ads_node {
  char *id;
  char *cluster;
  char *user_agent_name;
  char *user_agent_version; /* NULL: not sent */
  char **metadata_keys;
  char **metadata_values;
  size_t metadata_count;
} ms_ads_node;

/* ms_ads_node_init copies `options`, `user_agent` (NULL: "mtls-sidecar")
 * and `user_agent_version` (may be NULL) into `out`. Release with
 * ms_ads_node_cleanup. */
int ms_ads_node_init(ms_ads_node *out, const ms_ads_node_options *options, const char *user_agent,
                     const char *user_agent_version);

/* ms_ads_node_cleanup releases what ms_ads_node_init copied. Accepts a
 * zeroed node. */
void ms_ads_node_cleanup(ms_ads_node *node);

/* ---- requests ------------------------------------------------------------- */

/* One DiscoveryRequest; every pointer borrowed. */
typedef struct ms_ads_request {
  const char *type_url;
  const char *version_info;
  const char *response_nonce;
  const char *const *resource_names;
  size_t resource_name_count;
  const ms_ads_node *node;   /* NULL: not sent */
  const char *error_message; /* NULL: an ACK; else error_detail {3, message} */
} ms_ads_request;

/* ms_ads_request_encode serializes `request`. Returns 0 and sets *out_bytes
 * (caller frees) and *out_len, or UV_ENOMEM. */
int ms_ads_request_encode(const ms_ads_request *request, uint8_t **out_bytes, size_t *out_len);

/* ---- per-type state --------------------------------------------------------- */

/* What the client knows of one resource type. */
typedef struct ms_ads_type {
  char *type_url;
  bool wildcard_capable; /* CDS and LDS: no names means all of them */
  bool subscribed;       /* names, or wildcard */
  char **names;          /* sorted, unique */
  size_t name_count;
  char *version_info; /* the last accepted; "" before any */
  char *nonce;        /* of the last response on this stream; "" none */
  char *nack_message; /* the last NACK; NULL: none */
  char *nack_version;
  uint64_t acks, nacks;
  bool requested; /* a request for it went out on this stream */
} ms_ads_type;

/* ms_ads_type_new returns a type with no names, nothing accepted and not
 * subscribed, or NULL when memory ran out. Free with ms_ads_type_free
 * (accepts NULL). */
ms_ads_type *ms_ads_type_new(const char *type_url);
void ms_ads_type_free(ms_ads_type *type);

/* ms_ads_type_rank orders the first requests of a stream: CDS 0, EDS 1,
 * LDS 2, SDS 3, anything else 4. */
int ms_ads_type_rank(const char *type_url);

/* ms_ads_type_set_names replaces the names (copied, sorted, deduplicated)
 * and sets `subscribed`. *out_changed tells whether the set or the
 * subscription changed. */
int ms_ads_type_set_names(ms_ads_type *type, const char *const *names, size_t count,
                          bool *out_changed);

/* ms_ads_type_needs_request tells whether a subscription change must be
 * sent on an open stream: when the type was already requested on it (an
 * unsubscribe goes out too), or is now subscribed. */
bool ms_ads_type_needs_request(const ms_ads_type *type);

/* ms_ads_type_ack records an accepted response: version_info and nonce. */
int ms_ads_type_ack(ms_ads_type *type, const char *version_info, const char *nonce);

/* ms_ads_type_nack records a refused response: its nonce, and the NACK
 * (message and the version refused); the accepted version stays. */
int ms_ads_type_nack(ms_ads_type *type, const char *version_info, const char *nonce,
                     const char *message);

/* ms_ads_type_stream_reset forgets what belonged to the last stream: the
 * nonce, and that the type was requested. */
void ms_ads_type_stream_reset(ms_ads_type *type);

/* ms_ads_type_request fills `out` with the type's next request: its
 * names, accepted version and last nonce, with `node` and `error_message`
 * (both may be NULL). `out` borrows from `type`. */
void ms_ads_type_request(const ms_ads_type *type, const ms_ads_node *node,
                         const char *error_message, ms_ads_request *out);

#endif
