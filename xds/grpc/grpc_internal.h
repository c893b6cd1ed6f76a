/* grpc_internal.h: the pieces grpc_client.c and the server (grpc_server.c,
 * grpc_server_call.c) share, private to //xds/grpc.
 *
 * - grpc_framing.c: the 5-byte gRPC message prefix, a deframer that
 *   reassembles messages across DATA frames, and a per-stream send queue read
 *   by an nghttp2 data provider.
 * - grpc_status.c: status names and grpc-message percent-encoding.
 * - grpc_tls_io.c: one TLS connection over a non-blocking socket driven by
 *   uv_poll, pumping bytes between BoringSSL and an nghttp2 session. */
#ifndef MS_GRPC_INTERNAL_H
#define MS_GRPC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "xds/grpc/grpc.h"

/* ---- framing (grpc_framing.c) --------------------------------------------- */

#define MS_GRPC_PREFIX_LEN 5

/* Reassembles length-prefixed messages. Zeroed is the initial state; holds
 * no memory between messages. `accounted` may point at a counter shared by
 * deframers (a server connection's buffered bytes). */
typedef struct ms_grpc_deframer {
  uint8_t prefix[MS_GRPC_PREFIX_LEN];
  uint8_t prefix_len;
  uint32_t message_len;  /* from the prefix, once complete */
  uint32_t message_have; /* bytes of the body in `message` */
  uint32_t capacity;     /* grows with what arrives, never past message_len */
  uint8_t *message;
  size_t *accounted; /* when set, capacity changes are added to or taken from it */
} ms_grpc_deframer;

/* Errors of ms_grpc_deframer_feed besides UV_ENOMEM. */
#define MS_GRPC_E_TOO_LARGE (-100001)  /* a message over the limit */
#define MS_GRPC_E_COMPRESSED (-100002) /* flag byte not 0: compressed, or undefined */

/* Called per complete message; return true to go on, false to stop feeding
 * (the call ended inside the callback). */
typedef bool (*ms_grpc_message_fn)(void *arg, const uint8_t *bytes, size_t len);

/* ms_grpc_deframer_feed consumes `len` bytes and calls `on_message` for
 * every message they complete (without copying when a message lies whole in
 * `data`). Returns 0 when everything was consumed, 1 when on_message asked
 * to stop, MS_GRPC_E_TOO_LARGE / MS_GRPC_E_COMPRESSED / UV_ENOMEM on error
 * (the deframer is then unusable until cleaned up). */
int ms_grpc_deframer_feed(ms_grpc_deframer *deframer, const uint8_t *data, size_t len,
                          size_t max_message_bytes, ms_grpc_message_fn on_message, void *arg);

/* ms_grpc_deframer_partial tells whether a message was begun and not
 * finished (END_STREAM there means a truncated message). */
bool ms_grpc_deframer_partial(const ms_grpc_deframer *deframer);

/* ms_grpc_deframer_cleanup frees the partial message, if any, and zeroes. */
void ms_grpc_deframer_cleanup(ms_grpc_deframer *deframer);

/* One framed message waiting to be sent. */
typedef struct ms_grpc_frame {
  struct ms_grpc_frame *next;
  size_t len;    /* prefix + body */
  size_t offset; /* bytes already handed to nghttp2 */
  uint8_t data[];
} ms_grpc_frame;

/* A stream's outgoing messages, in order. Zeroed is empty. `accounted`, when
 * set, follows `bytes` (a server connection's queued bytes). Frames are
 * wiped when freed. */
typedef struct ms_grpc_send_queue {
  ms_grpc_frame *head, *tail;
  size_t bytes;
  size_t *accounted;
} ms_grpc_send_queue;

/* ms_grpc_send_queue_push frames a copy of `bytes`. Returns 0, UV_E2BIG or
 * UV_ENOMEM. */
int ms_grpc_send_queue_push(ms_grpc_send_queue *queue, const uint8_t *bytes, size_t len);

/* ms_grpc_send_queue_read copies up to `len` queued bytes into `buf` for an
 * nghttp2 data provider. With nothing queued it returns 0 and sets
 * NGHTTP2_DATA_FLAG_EOF in *data_flags when `ended`, else
 * NGHTTP2_ERR_DEFERRED. */
ssize_t ms_grpc_send_queue_read(ms_grpc_send_queue *queue, uint8_t *buf, size_t len, bool ended,
                                uint32_t *data_flags);

/* ms_grpc_send_queue_clear wipes and frees everything queued. */
void ms_grpc_send_queue_clear(ms_grpc_send_queue *queue);

/* ---- status (grpc_status.c) ---------------------------------------------- */

/* ms_grpc_message_encode percent-encodes `text` for grpc-message into a new
 * string (caller frees), or returns NULL when memory ran out. */
char *ms_grpc_message_encode(const char *text);

/* ms_grpc_message_decode percent-decodes a grpc-message value into a new
 * NUL-terminated string (caller frees), or NULL when memory ran out. */
char *ms_grpc_message_decode(const uint8_t *value, size_t len);

/* ms_grpc_status_from_http maps an HTTP status other than 200 to a gRPC
 * status, as gRPC's http-grpc-status-mapping.md does. */
int ms_grpc_status_from_http(int http_status);

/* ms_grpc_status_from_h2_error maps an RST_STREAM error code to a status. */
int ms_grpc_status_from_h2_error(uint32_t error_code);

/* ---- TLS connection (grpc_tls_io.c) --------------------------------------- */

typedef enum ms_grpc_io_state {
  MS_GRPC_IO_IDLE,        /* handles ready, no socket yet (client resolving) */
  MS_GRPC_IO_CONNECTING,  /* TCP connect in progress */
  MS_GRPC_IO_HANDSHAKING, /* TLS handshake */
  MS_GRPC_IO_OPEN,        /* HTTP/2 frames flowing */
  MS_GRPC_IO_CLOSED,      /* handles closing or closed */
} ms_grpc_io_state;

typedef struct ms_grpc_io ms_grpc_io;

typedef struct ms_grpc_io_callbacks {
  /* The handshake finished with ALPN h2. Frames queued in the session are
   * sent right after. */
  void (*on_open)(ms_grpc_io *io);
  /* The connection failed or ended (connect, handshake, read, write or
   * HTTP/2 error, the peer closing, the session done). The io is already
   * closing when this runs. */
  void (*on_error)(ms_grpc_io *io, const char *reason);
  /* Every handle is closed and the SSL, session and socket are freed: the
   * owner may free itself. */
  void (*on_closed)(ms_grpc_io *io);
} ms_grpc_io_callbacks;

/* One TLS + HTTP/2 connection. Embedded as the FIRST member of its owner
 * (client channel, server connection), which is the nghttp2 session's
 * user_data, so shared nghttp2 callbacks can find the io. */
struct ms_grpc_io {
  uv_loop_t *loop;
  const ms_grpc_io_callbacks *callbacks;
  ms_grpc_io_state state;
  int fd;
  uv_poll_t poll;
  uv_prepare_t prepare; /* runs the deferred flush */
  uv_timer_t timer;     /* the owner's: connect, handshake or keepalive timeouts */
  int events;           /* what `poll` watches */
  int open_handles;
  bool poll_open;
  bool flush_scheduled;
  bool write_blocked; /* the socket is full: wait for UV_WRITABLE */
  bool got_data;      /* something was read after the handshake */
  bool sni_sent;
  SSL *ssl;                 /* owned */
  nghttp2_session *session; /* owned */
  /* TLS bytes gathered from nghttp2 and not yet written; allocated only
   * while there is something to write. */
  uint8_t *out;
  size_t out_len, out_offset, out_capacity;
  /* Client: addresses still to try. */
  struct sockaddr_storage *addresses;
  size_t address_count, address_next;
  int connect_error; /* the last address's, for the reason */
  char peer_address[64];
  char nghttp2_error[128]; /* nghttp2's last error message, for reasons */
};

/* ms_grpc_io_init initializes the io's timer and prepare handles on `loop`
 * (the owner's timer callback finds the owner in timer.data) and takes
 * ownership of `ssl`, configured for its role (connect or accept state,
 * SNI, ALPN), and `session`; both are freed once the io is closed. */
void ms_grpc_io_init(ms_grpc_io *io, uv_loop_t *loop, SSL *ssl, nghttp2_session *session,
                     const ms_grpc_io_callbacks *callbacks);

/* ms_grpc_io_connect dials `addresses` in turn (copied) and handshakes as a
 * client. Failures arrive through on_error. */
void ms_grpc_io_connect(ms_grpc_io *io, const struct sockaddr_storage *addresses, size_t count);

/* ms_grpc_io_accept takes the accepted socket `fd` and handshakes as a
 * server. Failures arrive through on_error. */
void ms_grpc_io_accept(ms_grpc_io *io, int fd);

/* ms_grpc_io_schedule_flush arranges for the session's pending frames to be
 * written in the loop's next prepare phase. */
void ms_grpc_io_schedule_flush(ms_grpc_io *io);

/* ms_grpc_io_fail closes the io and reports `reason` through on_error. */
void ms_grpc_io_fail(ms_grpc_io *io, const char *reason);

/* ms_grpc_io_close closes the io without reporting; on_closed follows from
 * the loop. Idempotent. */
void ms_grpc_io_close(ms_grpc_io *io);

/* ms_grpc_io_on_nghttp2_error is an nghttp2 error_callback2 that keeps the
 * message for the reason of a later close. */
int ms_grpc_io_on_nghttp2_error(nghttp2_session *session, int lib_error_code, const char *msg,
                                size_t len, void *user_data);

/* ms_grpc_h2_settings submits our SETTINGS (a 1 MiB stream window; for a
 * server, `max_concurrent_streams`; for a client, no push) and widens the
 * connection's receive window to 16 MiB. Returns 0 or an nghttp2 error. */
int ms_grpc_h2_settings(nghttp2_session *session, bool server, uint32_t max_concurrent_streams);

#endif
