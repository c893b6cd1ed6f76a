/* server_state.h: the xDS state-of-the-world rules for one resource type on
 * one ADS stream, as xds-server applies them; pure (no I/O, no loop), so
 * they are tested on their own (server_state_test.c).
 *
 * Per stream and type URL the server tracks what the client subscribed to
 * (a wildcard for CDS and LDS when it names nothing), the version and nonce
 * of the last response sent, the version the client last ACKed, and the last
 * NACK (its error_detail message and the version it refused). A request is:
 *   - INITIAL: no response_nonce (the first request for the type on this
 *     stream): the server answers it, whatever it holds;
 *   - STALE: a nonce other than the last one sent: ignored entirely, as the
 *     xDS protocol says (the client will answer the newer response);
 *   - ACK: the last nonce and no error_detail: the version is recorded;
 *   - NACK: the last nonce with error_detail: recorded, and the refused
 *     version is not sent again.
 * An INITIAL, ACK or NACK request that changes the subscribed names must be
 * answered too. Part of the private interface of xds-server. */
#ifndef MS_XDS_SERVER_STATE_H
#define MS_XDS_SERVER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The four resource types xds-server serves, in the order Envoy applies
 * them. */
typedef enum xds_type {
  XDS_TYPE_CDS = 0, /* envoy.config.cluster.v3.Cluster */
  XDS_TYPE_EDS,     /* envoy.config.endpoint.v3.ClusterLoadAssignment */
  XDS_TYPE_LDS,     /* envoy.config.listener.v3.Listener */
  XDS_TYPE_SDS,     /* envoy.extensions.transport_sockets.tls.v3.Secret */
  XDS_TYPE_COUNT
} xds_type;

/* xds_type_url returns the type's URL (type_urls.h). */
const char *xds_type_url(xds_type type);

/* xds_type_name returns "CDS", "EDS", "LDS" or "SDS". */
const char *xds_type_name(xds_type type);

/* xds_type_from_url sets *out_type for a type URL we serve; returns 0, or -1
 * for any other URL. */
int xds_type_from_url(const char *type_url, xds_type *out_type);

/* xds_type_allows_wildcard: CDS and LDS (an empty resource_names list
 * subscribes to everything); EDS and SDS name what they want. */
bool xds_type_allows_wildcard(xds_type type);

#define XDS_VERSION_LEN 40
#define XDS_NONCE_LEN 24

/* What one stream knows of one type. Zero-initialized means "never asked". */
typedef struct xds_type_state {
  bool subscribed; /* a request for this type arrived */
  bool wildcard;   /* every resource of the type */
  char **names;    /* sorted, unique; owned */
  size_t name_count;

  bool sent; /* a response went out */
  char sent_version[XDS_VERSION_LEN];
  char sent_nonce[XDS_NONCE_LEN];
  uint64_t sent_digest; /* of what the response held, to skip identical ones */
  int64_t sent_at_ms;

  char acked_version[XDS_VERSION_LEN]; /* "" until the first ACK */
  int64_t acked_at_ms;
  uint64_t ack_count;

  char nacked_version[XDS_VERSION_LEN]; /* the last NACK's refused version */
  char *nack_message;                   /* its error_detail.message; owned */
  int nack_code;                        /* its error_detail.code */
  int64_t nacked_at_ms;
  uint64_t nack_count;
} xds_type_state;

typedef enum xds_request_kind {
  XDS_REQUEST_INITIAL,
  XDS_REQUEST_ACK,
  XDS_REQUEST_NACK,
  XDS_REQUEST_STALE,
} xds_request_kind;

/* One DiscoveryRequest's fields that matter here; all borrowed. */
typedef struct xds_request {
  const char *version_info;
  const char *response_nonce;
  const char *const *names;
  size_t name_count;
  bool has_error;            /* error_detail was set */
  int error_code;            /* error_detail.code */
  const char *error_message; /* error_detail.message; may be NULL */
} xds_request;

/* xds_type_state_on_request applies `request` to `state` for `type`. Sets
 * *out_kind, and *out_respond when the server must answer (an initial
 * request, or new names in one that is not stale). `now_ms` stamps ACKs and
 * NACKs. Returns 0, or -1 when memory ran out (the state is then unchanged
 * apart from what was recorded). */
int xds_type_state_on_request(xds_type_state *state, xds_type type, const xds_request *request,
                              int64_t now_ms, xds_request_kind *out_kind, bool *out_respond);

/* xds_type_state_on_sent records a response sent with `version`, `nonce`
 * and content `digest`. */
void xds_type_state_on_sent(xds_type_state *state, const char *version, const char *nonce,
                            uint64_t digest, int64_t now_ms);

/* xds_type_state_wants reports whether the subscription covers `name`. */
bool xds_type_state_wants(const xds_type_state *state, const char *name);

/* xds_type_state_cleanup frees what the state owns and zeroes it. */
void xds_type_state_cleanup(xds_type_state *state);

#endif
