/* grpc.h: gRPC over HTTP/2 (nghttp2) over TLS (BoringSSL, ALPN "h2") on a
 * libuv loop, client and server. It carries xDS's Aggregated Discovery
 * Service between the sidecar and xds-server, but knows nothing of xDS: a
 * call is a method path ("/package.Service/Method") and opaque message bytes
 * (serialized protobufs) in both directions, every call a bidirectional
 * stream.
 *
 * Conventions:
 * - Everything runs on the loop's thread; nothing here is thread-safe.
 * - Functions return 0 on success or a negative errno (UV_EINVAL, UV_ENOMEM,
 *   ...) on failure; uv_strerror() describes it. Outputs are left untouched
 *   on failure, and ownership moves only on success.
 * - Objects are freed in libuv close callbacks: after ms_grpc_channel_close
 *   or ms_grpc_server_close the loop must run once more to release memory
 *   (uv_run returns once everything is closed).
 * - No callback fires after a close function returns, except where said.
 * - Calling any function of this header from inside a callback is allowed:
 *   work that touches the socket is deferred to the loop (a uv_prepare_t), so
 *   callbacks never nest.
 * - Compression is not supported: we never compress, and a compressed
 *   message from the peer ends its call with INTERNAL. grpc-timeout is
 *   ignored. Custom metadata: a client call may send its own request headers
 *   (ms_grpc_call_start_with_metadata); the server keeps only
 *   "authorization" (ms_grpc_server_call_metadata). */
#ifndef MS_GRPC_H
#define MS_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "certs/certs.h"

/* ---- status codes --------------------------------------------------------- */

/* The canonical gRPC status codes (grpc/status.h). */
typedef enum ms_grpc_status {
  MS_GRPC_OK = 0,
  MS_GRPC_CANCELLED = 1,
  MS_GRPC_UNKNOWN = 2,
  MS_GRPC_INVALID_ARGUMENT = 3,
  MS_GRPC_DEADLINE_EXCEEDED = 4,
  MS_GRPC_NOT_FOUND = 5,
  MS_GRPC_ALREADY_EXISTS = 6,
  MS_GRPC_PERMISSION_DENIED = 7,
  MS_GRPC_RESOURCE_EXHAUSTED = 8,
  MS_GRPC_FAILED_PRECONDITION = 9,
  MS_GRPC_ABORTED = 10,
  MS_GRPC_OUT_OF_RANGE = 11,
  MS_GRPC_UNIMPLEMENTED = 12,
  MS_GRPC_INTERNAL = 13,
  MS_GRPC_UNAVAILABLE = 14,
  MS_GRPC_DATA_LOSS = 15,
  MS_GRPC_UNAUTHENTICATED = 16,
} ms_grpc_status;

/* ms_grpc_status_name returns "OK", "CANCELLED", ... or "UNKNOWN" for a code
 * outside 0..16. The string is static. */
const char *ms_grpc_status_name(int status);

/* The default limit on one received message, as in gRPC: 4 MiB. */
#define MS_GRPC_DEFAULT_MAX_MESSAGE_BYTES ((size_t)4 << 20)

/* ---- client: channels ----------------------------------------------------- */

/* One HTTP/2 connection to one server. A channel connects once: when it
 * closes (connection lost, handshake failed, keepalive timed out) it stays
 * closed, and the caller makes a new one (with its own backoff). */
typedef struct ms_grpc_channel ms_grpc_channel;
/* One call (an HTTP/2 stream) on a channel. */
typedef struct ms_grpc_call ms_grpc_call;

typedef enum ms_grpc_channel_state {
  MS_GRPC_CHANNEL_CONNECTING, /* resolving, connecting, TLS handshake */
  MS_GRPC_CHANNEL_READY,      /* TLS up with ALPN h2, the server's SETTINGS received */
  MS_GRPC_CHANNEL_CLOSED,     /* terminal; see the reason */
} ms_grpc_channel_state;

typedef struct ms_grpc_channel_options {
  /* "host:port", "1.2.3.4:port" or "[v6]:port". A host name is resolved
   * with uv_getaddrinfo and each address is tried in turn. Required. */
  const char *address;
  /* The :authority header. NULL: `address`. */
  const char *authority;
  /* The caller's client context: trust store, verification mode, client
   * certificate, versions. The channel takes a reference (SSL_CTX_up_ref) and
   * sets ALPN "h2" on its own SSL object; a handshake that does not select h2
   * fails. Contexts from ms_client_ctx_new also record alerts, which makes
   * handshake failure reasons precise. Required. */
  SSL_CTX *ssl_ctx;
  /* Sent as SNI and, when the context verifies and `peer_check` is NULL,
   * the name the server's certificate must be valid for. NULL: the host of
   * `address` when it is a name (an IP literal sends no SNI and is checked as
   * an IP). */
  const char *server_name;
  /* Overrides what is checked of the server's names (certs.h); borrowed,
   * must outlive the channel. NULL: check `server_name` as above. */
  const ms_peer_check *peer_check;
  /* Largest message accepted from the server; larger cancels the call with
   * RESOURCE_EXHAUSTED. 0: MS_GRPC_DEFAULT_MAX_MESSAGE_BYTES. */
  size_t max_message_bytes;
  /* Send an HTTP/2 PING after this long without reading anything; 0: never. */
  uint32_t keepalive_interval_ms;
  /* Close the channel when a PING is not acknowledged within this long.
   * 0: 20000. */
  uint32_t keepalive_timeout_ms;
  /* From ms_grpc_channel_new to READY (DNS, TCP, TLS, SETTINGS). 0: 20000. */
  uint32_t connect_timeout_ms;
  /* The user-agent header. NULL: "mtls-sidecar-grpc/1". */
  const char *user_agent;
} ms_grpc_channel_options;

typedef struct ms_grpc_channel_callbacks {
  /* on_state reports each change of state: the channel starts CONNECTING
   * (not reported), then READY, then CLOSED with `reason`, one line a user
   * can act on; for a failed handshake it includes ms_tls_describe_failure's
   * description ("... unknown_ca ..."). `reason` is NULL except for CLOSED.
   * Before CLOSED is reported every open call's on_close has fired
   * (UNAVAILABLE). Not called for a close the caller asked for. May be
   * NULL. */
  void (*on_state)(ms_grpc_channel *channel, ms_grpc_channel_state state, const char *reason,
                   void *arg);
} ms_grpc_channel_callbacks;

/* ms_grpc_channel_new starts connecting to options->address on `loop` and
 * returns at once. Calls may be started right away: their frames wait for
 * the connection. `options` and its strings are copied (except peer_check);
 * `callbacks` is copied; `arg` is passed to them.
 * Returns 0 and sets *out_channel (owned by the caller, released with
 * ms_grpc_channel_close), or UV_EINVAL (no address or SSL_CTX, or an address
 * that does not parse), UV_ENOMEM. */
int ms_grpc_channel_new(uv_loop_t *loop, const ms_grpc_channel_options *options,
                        const ms_grpc_channel_callbacks *callbacks, void *arg,
                        ms_grpc_channel **out_channel);

/* ms_grpc_channel_get_state returns the channel's current state. */
ms_grpc_channel_state ms_grpc_channel_get_state(const ms_grpc_channel *channel);

/* ms_grpc_channel_close closes the connection at once (no GOAWAY wait) and
 * ends every open call: each call's on_close fires with CANCELLED before this
 * returns. Afterwards no callback of the channel or its calls fires and the
 * channel and its calls must not be used; memory is freed in libuv close
 * callbacks. Required even after CLOSED was reported. Accepts NULL. */
void ms_grpc_channel_close(ms_grpc_channel *channel);

/* ---- client: calls -------------------------------------------------------- */

typedef struct ms_grpc_call_callbacks {
  /* on_message delivers one complete message (reassembled across DATA
   * frames). `bytes` is borrowed for the duration of the callback. May be
   * NULL (messages dropped). */
  void (*on_message)(ms_grpc_call *call, const uint8_t *bytes, size_t len, void *arg);
  /* on_close fires exactly once per call: with the server's grpc-status and
   * grpc-message (percent-decoded; "" when absent) from its trailers, or with
   * a status synthesized here: UNAVAILABLE (connection lost, stream refused,
   * HTTP 429/502/503/504), INTERNAL (stream reset, protocol error, truncated
   * message, no grpc-status), UNIMPLEMENTED (HTTP 404), other HTTP statuses
   * as gRPC's http-grpc-status-mapping.md says (UNKNOWN for most),
   * RESOURCE_EXHAUSTED (message over the limit), CANCELLED (the caller
   * cancelled or closed the channel). The call must not be used after
   * on_close returns; its memory is released by the channel. Required. */
  void (*on_close)(ms_grpc_call *call, int grpc_status, const char *grpc_message, void *arg);
} ms_grpc_call_callbacks;

/* ms_grpc_call_start opens a stream for `method_path` ("/pkg.Service/Method")
 * with headers :method POST, :scheme https, :path, :authority, content-type
 * application/grpc, te trailers and user-agent. `callbacks` is copied.
 * Returns 0 and sets *out_call (owned by the channel; valid until on_close
 * returns), UV_EINVAL (a path that does not start with "/"), UV_ENOTCONN
 * (the channel is closed), UV_ENOMEM. */
int ms_grpc_call_start(ms_grpc_channel *channel, const char *method_path,
                       const ms_grpc_call_callbacks *callbacks, void *arg, ms_grpc_call **out_call);

/* One request header a client call sends besides gRPC's own. */
typedef struct ms_grpc_metadata {
  const char *name;  /* lowercase token, not ":..." nor "grpc-..." nor one gRPC sets */
  const char *value; /* no CR, LF or NUL */
} ms_grpc_metadata;

/* ms_grpc_call_start_with_metadata is ms_grpc_call_start with `count` extra
 * request headers (copied; "authorization: Bearer ..." for a token, say).
 * Returns what ms_grpc_call_start returns, or UV_EINVAL for a name that is
 * reserved or not a lowercase token, or a value with CR, LF or NUL. */
int ms_grpc_call_start_with_metadata(ms_grpc_channel *channel, const char *method_path,
                                     const ms_grpc_metadata *metadata, size_t count,
                                     const ms_grpc_call_callbacks *callbacks, void *arg,
                                     ms_grpc_call **out_call);

/* ms_grpc_call_send frames `bytes` (copied) as one gRPC message and queues
 * it. Messages go out in order as HTTP/2 flow control allows; the queue is
 * unbounded (the ADS client sends a request per response it reads). Returns 0, UV_EPIPE (after
 * close_send), UV_ENOTCONN (the call is over), UV_E2BIG (len over 4 GiB), UV_ENOMEM. */
int ms_grpc_call_send(ms_grpc_call *call, const uint8_t *bytes, size_t len);

/* ms_grpc_call_close_send half-closes the call: END_STREAM follows the
 * queued messages. The server's messages still arrive. Idempotent. */
void ms_grpc_call_close_send(ms_grpc_call *call);

/* ms_grpc_call_cancel resets the stream (RST_STREAM CANCEL); on_close fires
 * with CANCELLED before this returns. A no-op once on_close has fired (from
 * inside on_close, say). */
void ms_grpc_call_cancel(ms_grpc_call *call);

/* ---- server --------------------------------------------------------------- */

typedef struct ms_grpc_server ms_grpc_server;
/* One call received by the server. */
typedef struct ms_grpc_server_call ms_grpc_server_call;

/* Who is calling: one per connection, shared by its calls. */
typedef struct ms_grpc_peer {
  char address[64]; /* "127.0.0.1:54321" or "[::1]:54321" */
  /* The client's leaf certificate as the server's context verified it (with
   * SSL_VERIFY_PEER); NULL when the client sent none. Borrowed: valid while
   * the call is. */
  X509 *certificate;
  /* The certificate's subject, SANs ("URI:spiffe://..."), ... (certs.h);
   * zeroed when there is no certificate. */
  ms_cert_info certificate_info;
} ms_grpc_peer;

typedef struct ms_grpc_server_options {
  /* "IP:port" to listen on; port 0 picks a free one (ms_grpc_server_port).
   * Required. */
  const char *address;
  /* The caller's server context (certificate, key, client verification).
   * The server takes a reference and installs an ALPN select callback on it
   * (SSL_CTX_set_alpn_select_cb) that picks "h2"; a client that offers no h2
   * is refused. Required. */
  SSL_CTX *ssl_ctx;
  /* Largest message accepted from a client; larger ends the call with
   * RESOURCE_EXHAUSTED. 0: MS_GRPC_DEFAULT_MAX_MESSAGE_BYTES. */
  size_t max_message_bytes;
  /* A connection that has not finished its TLS handshake after this long is
   * closed. 0: 10000. */
  uint32_t handshake_timeout_ms;

  /* Limits against clients that hold resources (docs/xds-server.md, "Limits
   * and overload"); each refusal is counted in ms_grpc_server_stats. 0 means
   * the default in every field. */

  /* SETTINGS_MAX_CONCURRENT_STREAMS per connection: a client that opens more
   * before it has acknowledged our SETTINGS gets RST_STREAM REFUSED_STREAM
   * for each extra stream (its call ends UNAVAILABLE); one that does so after
   * acknowledging them breaks HTTP/2 and the connection ends with GOAWAY
   * PROTOCOL_ERROR. 0: 100, as Envoy. */
  uint32_t max_concurrent_streams;
  /* Open connections, handshakes included. One more is closed right after
   * accept, before any TLS: its cost is one accept and one close. 0: 10000. */
  uint32_t max_connections;
  /* Open connections from one IP address, refused the same way. 0: 256 (a
   * node's pods behind one SNAT address: 110 per node by default in
   * Kubernetes, twice over for reconnects overlapping old connections). */
  uint32_t max_connections_per_peer;
  /* Bytes of unfinished messages a connection may hold, all its streams
   * together (a client may announce up to max_message_bytes per stream and
   * send it slowly). Past it the connection's calls end (on_cancel) and the
   * connection ends with GOAWAY ENHANCE_YOUR_CALM: the budget is the
   * connection's, so no one call is to blame. 0: 16 MiB. */
  size_t max_buffered_bytes;
  /* Bytes of responses a connection may have queued and not yet sent (a
   * client that stops reading while the server pushes). A send past it
   * fails with UV_ENOBUFS and the connection is closed from the loop, with
   * no GOAWAY (the client does not read): every call's on_cancel fires.
   * 0: 16 MiB. */
  size_t max_queued_bytes;
} ms_grpc_server_options;

typedef struct ms_grpc_server_callbacks {
  /* on_call is asked about each new call once its request headers are in.
   * Return MS_GRPC_OK to accept it: then set its handlers with
   * ms_grpc_server_call_set_handler before returning, and the call is yours
   * until you finish it or on_cancel fires. Return any other status (say
   * MS_GRPC_UNIMPLEMENTED for a method you do not serve) and the server
   * answers with that status at once and forgets the call. `method_path` is
   * borrowed for the callback; `peer` for the call's life. Required. */
  int (*on_call)(ms_grpc_server_call *call, const char *method_path, const ms_grpc_peer *peer,
                 void *arg);
  /* on_connection_closed reports a connection that ended without
   * ms_grpc_server_close: a failed handshake ("... client_certificate_rejected
   * ..."), garbage, an HTTP/2 protocol error, the client closing. Only that
   * connection is affected. May be NULL. */
  void (*on_connection_closed)(ms_grpc_server *server, const ms_grpc_peer *peer, const char *reason,
                               void *arg);
} ms_grpc_server_callbacks;

typedef struct ms_grpc_server_call_callbacks {
  /* on_message delivers one complete message from the client; `bytes` is
   * borrowed for the callback. May be NULL. */
  void (*on_message)(ms_grpc_server_call *call, const uint8_t *bytes, size_t len, void *user_data);
  /* on_half_close: the client will send no more (END_STREAM). May be NULL. */
  void (*on_half_close)(ms_grpc_server_call *call, void *user_data);
  /* on_cancel: the call ended before you finished it: the client reset it,
   * the connection was lost, a message was over the limit (the server has
   * answered RESOURCE_EXHAUSTED) or ms_grpc_server_close ran. The call must
   * not be used after on_cancel returns. Required. */
  void (*on_cancel)(ms_grpc_server_call *call, void *user_data);
} ms_grpc_server_call_callbacks;

/* ms_grpc_server_new binds and listens on options->address and accepts
 * connections on `loop`. `callbacks` is copied; `arg` is passed to them.
 * Returns 0 and sets *out_server (released with ms_grpc_server_close),
 * UV_EINVAL (missing or malformed options), UV_EADDRINUSE and the like from
 * bind/listen, UV_ENOMEM. */
int ms_grpc_server_new(uv_loop_t *loop, const ms_grpc_server_options *options,
                       const ms_grpc_server_callbacks *callbacks, void *arg,
                       ms_grpc_server **out_server);

/* ms_grpc_server_set_ssl_ctx makes `ssl_ctx` the context of the connections
 * accepted from now on (a rotated server certificate or client CA): the
 * server takes a reference and installs its ALPN select callback on it, as
 * ms_grpc_server_new does, and drops its reference to the previous one.
 * Connections already accepted keep the context they started with. */
void ms_grpc_server_set_ssl_ctx(ms_grpc_server *server, SSL_CTX *ssl_ctx);

/* ms_grpc_server_port returns the port the server listens on. */
uint16_t ms_grpc_server_port(const ms_grpc_server *server);

/* The server's limits in force (its options after defaults), what it holds
 * now, and how often each limit was hit since it started. */
typedef struct ms_grpc_server_stats {
  uint32_t max_connections, max_connections_per_peer, max_concurrent_streams;
  size_t max_message_bytes, max_buffered_bytes, max_queued_bytes;

  size_t connections;    /* open now, handshakes included */
  size_t buffered_bytes; /* in unfinished messages, all connections */
  size_t queued_bytes;   /* in responses not yet sent, all connections */
  bool accepting;        /* false while accepting is paused (see accept_failures) */

  uint64_t connections_accepted;
  uint64_t connections_refused;          /* over max_connections */
  uint64_t connections_refused_per_peer; /* over max_connections_per_peer */
  uint64_t streams_refused;      /* RST_STREAM REFUSED_STREAM, over max_concurrent_streams */
  uint64_t messages_too_large;   /* calls ended RESOURCE_EXHAUSTED, over max_message_bytes */
  uint64_t closed_over_buffered; /* connections closed over max_buffered_bytes */
  uint64_t closed_over_queued;   /* connections closed over max_queued_bytes */
  /* accept() failed for lack of descriptors or memory (EMFILE, ENFILE,
   * ENOBUFS, ENOMEM): accepting pauses for 100 ms, doubling to 1 s while it
   * goes on, instead of spinning on a listening socket that stays readable;
   * one log line a second at most says how many failed. */
  uint64_t accept_failures;
} ms_grpc_server_stats;

/* ms_grpc_server_get_stats fills *out. */
void ms_grpc_server_get_stats(const ms_grpc_server *server, ms_grpc_server_stats *out);

/* ms_grpc_server_close stops listening and closes every connection at once;
 * every unfinished call's on_cancel fires before this returns, and no
 * callback fires afterwards. Memory is freed in libuv close callbacks.
 * Accepts NULL. */
void ms_grpc_server_close(ms_grpc_server *server);

/* ms_grpc_server_call_set_handler sets the call's callbacks (borrowed: keep
 * the struct alive, usually a static const) and a pointer of yours handed to
 * them. Call it from on_call. */
void ms_grpc_server_call_set_handler(ms_grpc_server_call *call,
                                     const ms_grpc_server_call_callbacks *callbacks,
                                     void *user_data);

/* ms_grpc_server_call_peer returns the calling connection's peer. */
const ms_grpc_peer *ms_grpc_server_call_peer(const ms_grpc_server_call *call);

/* The longest request header value the server keeps (ms_grpc_server_call_metadata);
 * a call whose kept header is longer is refused with UNAUTHENTICATED. */
#define MS_GRPC_MAX_KEPT_METADATA_BYTES 16384

/* ms_grpc_server_call_metadata returns the value of the call's request
 * header `name` (lowercase), or NULL when the client sent none. Only
 * "authorization" is kept (the first one). Borrowed: valid until the call is
 * finished or cancelled; wiped when the call is freed. */
const char *ms_grpc_server_call_metadata(const ms_grpc_server_call *call, const char *name);

/* ms_grpc_server_call_send frames `bytes` (copied) as one message and queues
 * it; response headers go out with the first. Returns 0, UV_EPIPE (after
 * finish), UV_E2BIG (len over 4 GiB), UV_ENOBUFS (the connection's queue
 * would pass max_queued_bytes: the connection closes from the loop and
 * on_cancel follows), UV_ENOMEM. Queued bytes are wiped when sent or
 * dropped (a response may carry a private key). */
int ms_grpc_server_call_send(ms_grpc_server_call *call, const uint8_t *bytes, size_t len);

/* ms_grpc_server_call_finish ends the call: trailers with grpc-status and
 * grpc-message (`message` percent-encoded; NULL or "" for none) follow the
 * queued messages. The call must not be used afterwards; the server frees
 * it once the stream is done, and on_cancel does not fire. Returns 0, or
 * UV_ENOMEM (the call is then reset with INTERNAL_ERROR and also over). */
int ms_grpc_server_call_finish(ms_grpc_server_call *call, int grpc_status, const char *message);

#endif
