/* ads_client.h: the sidecar's side of xDS's Aggregated Discovery Service,
 * state of the world: one StreamAggregatedResources call to the control
 * plane over gRPC (xds/grpc/grpc.h) and mutual TLS, carrying a DiscoveryRequest
 * per resource type and per response, and the per-type state that the
 * protocol keeps: the accepted version, the last nonce, the last NACK.
 *
 * What the client does by itself:
 * - connects, starts the stream and sends one request per subscribed type,
 *   in the order CDS, EDS, LDS, SDS, then other types as subscribed; the
 *   first request of every stream carries the node;
 * - hands every response to on_response and answers it: an ACK (the
 *   response's version_info and nonce) or a NACK (the previously accepted
 *   version_info, the response's nonce and error_detail {INVALID_ARGUMENT,
 *   message});
 * - NACKs, without asking, a response of a type it never requested on this
 *   stream ("unexpected type ...");
 * - when the stream ends (any gRPC status, a lost connection, a failed
 *   handshake) or a response does not decode (a protocol error: the stream
 *   is cancelled), reports on_connection(false, why) and reconnects on a NEW
 *   channel after a jittered exponential backoff; the requests of the new
 *   stream carry the accepted versions with an empty nonce, so the server
 *   may skip what is unchanged. The backoff starts again from
 *   initial_backoff_ms after a stream that delivered at least one response.
 *
 * What it leaves to the caller: decoding and validating resources (the
 * callback's answer is the ACK or NACK), keeping the last good
 * configuration (nothing here forgets anything on NACK or disconnect), and
 * choosing which EDS and SDS names to ask for (ms_ads_client_subscribe).
 *
 * Conventions, as in grpc.h: everything runs on the loop's thread; functions
 * return 0 or a negative errno (UV_EINVAL, UV_ENOMEM); memory is freed in
 * libuv close callbacks, so after ms_ads_client_close the loop must run once
 * more. Callbacks never nest inside a call to this header's functions: they
 * come from the loop. Any function here may be called from inside a
 * callback, ms_ads_client_close included. */
#ifndef MS_ADS_CLIENT_H
#define MS_ADS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "google/protobuf/any.pb-c.h"

typedef struct ms_ads_client ms_ads_client;

/* One key of the node's metadata (google.protobuf.Struct, string values). */
typedef struct ms_ads_metadata_entry {
  const char *key;
  const char *value;
} ms_ads_metadata_entry;

/* Who we are to the control plane: envoy.config.core.v3.Node. */
typedef struct ms_ads_node_options {
  const char *id;      /* Node.id; NULL: "" */
  const char *cluster; /* Node.cluster; NULL: "" */
  const ms_ads_metadata_entry *metadata;
  size_t metadata_count;
} ms_ads_node_options;

typedef struct ms_ads_client_options {
  /* The control plane, "host:port" (as ms_grpc_channel_options.address).
   * Required. */
  const char *address;
  /* SNI and the name the server's certificate must be valid for. NULL: the
   * host of `address` when it is a name. */
  const char *server_name;
  /* The client context (the sidecar's bootstrap certificate and the trust
   * store for the control plane), built by the caller. The client takes a
   * reference (SSL_CTX_up_ref): each new channel uses it, until
   * ms_ads_client_set_ssl_ctx replaces it. Required. */
  SSL_CTX *ssl_ctx;
  ms_ads_node_options node;
  /* Node.user_agent_name and the gRPC user-agent header. NULL:
   * "mtls-sidecar". */
  const char *user_agent;
  /* Node.user_agent_version, also appended to the user-agent header as
   * "/VERSION". NULL: not sent. */
  const char *user_agent_version;
  /* Reconnect backoff: the first delay is initial_backoff_ms, doubling per
   * failed attempt up to max_backoff_ms, each delay jittered by +-50% (and
   * never above max_backoff_ms). 0: 500 and 30000. */
  uint32_t initial_backoff_ms;
  uint32_t max_backoff_ms;
  /* Largest DiscoveryResponse accepted; a larger one ends the stream
   * (RESOURCE_EXHAUSTED) and the client reconnects. 0: gRPC's 4 MiB. */
  size_t max_message_bytes;
  /* HTTP/2 PING after this long idle; 0: none. A PING unanswered within
   * keepalive_timeout_ms (0: 20000) closes the channel. */
  uint32_t keepalive_interval_ms;
  uint32_t keepalive_timeout_ms;
  /* From the start of an attempt to a READY channel; 0: 20000. */
  uint32_t connect_timeout_ms;
  /* A projected service-account token (xds/grpc/bearer_token.h), read again for
   * each new stream and sent as "authorization: Bearer <token>"; a file that
   * cannot be read ends the attempt with the reason (the token is never in
   * it). NULL: no authorization header. */
  const char *token_file;
} ms_ads_client_options;

typedef struct ms_ads_client_callbacks {
  /* on_response hands over one DiscoveryResponse of a type the client
   * requested on this stream: its type_url, version_info, and the resources
   * as the server sent them (google.protobuf.Any: type_url and serialized
   * value, in the server's order, duplicates and all; validating them is
   * the caller's job). Everything is borrowed for the duration of the
   * callback. Return NULL to ACK, or a malloc'd message (the client frees
   * it) to NACK: it becomes the request's error_detail.message and the
   * type's last NACK. Required. */
  char *(*on_response)(ms_ads_client *client, const char *type_url, const char *version_info,
                       const Google__Protobuf__Any *const *resources, size_t count, void *arg);
  /* on_connection reports connected = true when a channel is READY (TLS up,
   * HTTP/2 settled) and its stream open, and connected = false with `why`
   * (one line a user can act on, ending with "; retrying in N ms") whenever
   * an attempt ends: also for attempts that never connected, so that every
   * failure can be logged. `why` is NULL when connected, and borrowed. May
   * be NULL. */
  void (*on_connection)(ms_ads_client *client, bool connected, const char *why, void *arg);
} ms_ads_client_callbacks;

/* ms_ads_client_new copies `options` (and every string in it) and
 * `callbacks`, and starts the first attempt at once: subscribe right after
 * it, before the loop runs, so that the first requests leave together.
 * Returns 0 and sets *out_client (released with ms_ads_client_close), or
 * UV_EINVAL (no address, no SSL_CTX, no on_response, or an address that does
 * not parse), UV_ENOMEM. On failure nothing is left to release. */
int ms_ads_client_new(uv_loop_t *loop, const ms_ads_client_options *options,
                      const ms_ads_client_callbacks *callbacks, void *arg,
                      ms_ads_client **out_client);

/* ms_ads_client_subscribe sets the resource names of interest for
 * `type_url` (copied; sorted and deduplicated). For CDS and LDS an empty list
 * means every resource (wildcard); for other types it means none: an
 * unsubscribe. When the set changed and the stream is open, a request goes
 * out with the type's accepted version and last nonce (from inside
 * on_response for the same type, the ACK or NACK that follows carries the
 * new names instead). A type is kept for ms_ads_client_type_status after an
 * unsubscribe. Returns 0, UV_EINVAL (no type URL), UV_ENOMEM (nothing
 * changed). */
int ms_ads_client_subscribe(ms_ads_client *client, const char *type_url, const char *const *names,
                            size_t count);

/* ms_ads_client_set_ssl_ctx makes `ssl_ctx` the context of the channels
 * opened from now on (a rotated bootstrap certificate or trust bundle): the
 * client takes a reference and drops its reference to the previous one. The
 * channel under way keeps the context it started with, and its stream is
 * not ended for it; the next reconnect uses the new one. Accepts NULL (for
 * either: nothing happens). */
void ms_ads_client_set_ssl_ctx(ms_ads_client *client, SSL_CTX *ssl_ctx);

/* The client's life, one state at a time. */
typedef enum ms_ads_client_state {
  MS_ADS_CLIENT_CONNECTING, /* a channel and its stream are on their way */
  MS_ADS_CLIENT_CONNECTED,  /* the channel is READY, the stream open */
  MS_ADS_CLIENT_BACKOFF,    /* waiting to reconnect */
  MS_ADS_CLIENT_CLOSED,     /* ms_ads_client_close ran */
} ms_ads_client_state;

/* ms_ads_client_state_name returns "CONNECTING", "CONNECTED", "BACKOFF" or
 * "CLOSED". */
const char *ms_ads_client_state_name(ms_ads_client_state state);

typedef struct ms_ads_client_status {
  ms_ads_client_state state;
  uint32_t failures;           /* attempts ended since the last that got a response */
  uint64_t retry_delay_ms;     /* in BACKOFF: the delay chosen for this wait */
  uint64_t streams;            /* attempts started, the first included */
  uint64_t responses;          /* DiscoveryResponses decoded, all streams */
  const char *last_disconnect; /* the last on_connection(false) text; "" none */
} ms_ads_client_status;

/* ms_ads_client_get_status fills `out`; its strings are borrowed until the
 * loop runs again or the client is called. */
void ms_ads_client_get_status(const ms_ads_client *client, ms_ads_client_status *out);

/* One type's xDS state, for /config_dump. */
typedef struct ms_ads_type_status {
  const char *type_url;
  bool subscribed;          /* wildcard, or at least one name */
  bool wildcard;            /* CDS or LDS with no names */
  const char *const *names; /* sorted */
  size_t name_count;
  const char *version_info; /* the last accepted; "" before any */
  const char *nonce;        /* of the last response on this stream; "" none */
  const char *nack_message; /* the last NACK's message; NULL: never NACKed */
  const char *nack_version; /* the version_info it refused */
  uint64_t acks, nacks;
} ms_ads_type_status;

/* ms_ads_client_type_status fills `out` for `type_url`. Returns 0, or
 * UV_ENOENT for a type never subscribed. The strings are borrowed until the
 * loop runs again or the client is called. */
int ms_ads_client_type_status(const ms_ads_client *client, const char *type_url,
                              ms_ads_type_status *out);

/* ms_ads_backoff_ms is the delay before reconnect attempt number `failures`
 * (0 after a stream that got a response): base = min(initial_ms << failures,
 * max_ms), then +-50% by `random`, then capped at max_ms. The result lies in
 * [base / 2, min(base * 3 / 2, max_ms)]. Also the identity agent's retry
 * delay (sidecar/identity/identity.c). */
uint64_t ms_ads_backoff_ms(uint32_t failures, uint64_t initial_ms, uint64_t max_ms,
                           uint32_t random);

/* ms_ads_random_u32 returns 32 bits from BoringSSL's RAND_bytes: the
 * `random` of ms_ads_backoff_ms (and of the identity agent's renewal
 * jitter). Cannot fail. */
uint32_t ms_ads_random_u32(void);

/* ms_ads_client_close closes the stream, the channel and the backoff timer;
 * no callback fires after it returns. Memory is freed in libuv close
 * callbacks. Accepts NULL. */
void ms_ads_client_close(ms_ads_client *client);

#endif
