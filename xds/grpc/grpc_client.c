/* grpc_client.c: channels (one TLS + HTTP/2 connection to a server) and the
 * calls on them.
 *
 * A channel goes CONNECTING (resolve, connect, handshake, wait for the
 * server's SETTINGS) -> READY -> CLOSED, never back. Calls may be started
 * while CONNECTING: nghttp2 holds their frames until the connection is up.
 * Call memory stays allocated after on_close until nghttp2 forgets the stream
 * (on_stream_close) or the channel is freed, so a callback that ends a call
 * never leaves a dangling pointer behind it. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/net.h"
#include "xds/grpc/grpc_internal.h"

#define MAX_ADDRESSES 16
#define DEFAULT_KEEPALIVE_TIMEOUT_MS 20000
#define DEFAULT_CONNECT_TIMEOUT_MS 20000

struct ms_grpc_channel {
  ms_grpc_io io; /* first: the nghttp2 session's user_data */
  ms_grpc_channel_state state;
  ms_grpc_channel_callbacks callbacks;
  void *arg;
  SSL_CTX *ssl_ctx; /* reference held */
  ms_address address;
  char *authority;
  char *user_agent;
  char *server_name;
  ms_peer_check own_check; /* used when options->peer_check was NULL */
  size_t max_message_bytes;
  uint32_t keepalive_interval_ms, keepalive_timeout_ms, connect_timeout_ms;
  uint64_t last_frame_ms; /* uv_now() when a frame last arrived */
  uv_getaddrinfo_t resolve;
  bool resolving;
  bool io_closed;
  bool closed_by_caller;
  bool ping_outstanding;
  ms_grpc_call *calls; /* every call not yet freed */
};

struct ms_grpc_call {
  ms_grpc_channel *channel;
  ms_grpc_call *prev, *next;
  ms_grpc_call_callbacks callbacks;
  void *arg;
  int32_t stream_id;
  int http_status;
  int grpc_status; /* -1 until the trailers carry one */
  char *grpc_message;
  ms_grpc_deframer deframer;
  ms_grpc_send_queue queue;
  bool send_closed;
  bool data_deferred; /* the data provider waits for ms_grpc_call_send */
  bool closed;        /* on_close has fired */
};

static const ms_grpc_io_callbacks channel_io_callbacks;

/* ---- calls ---------------------------------------------------------------- */

static void call_free(ms_grpc_call *call) {
  ms_grpc_channel *channel = call->channel;
  if (call->prev)
    call->prev->next = call->next;
  else
    channel->calls = call->next;
  if (call->next) call->next->prev = call->prev;
  ms_grpc_deframer_cleanup(&call->deframer);
  ms_grpc_send_queue_clear(&call->queue);
  free(call->grpc_message);
  free(call);
}

/* Fires on_close once; the memory stays until call_free. */
static void call_finish(ms_grpc_call *call, int status, const char *message) {
  if (call->closed) return;
  call->closed = true;
  ms_grpc_deframer_cleanup(&call->deframer);
  ms_grpc_send_queue_clear(&call->queue);
  call->callbacks.on_close(call, status, message != NULL ? message : "", call->arg);
}

/* Resets the stream with `error_code` and ends the call with `status`. */
static void call_abort(ms_grpc_call *call, uint32_t error_code, int status, const char *message) {
  ms_grpc_channel *channel = call->channel;
  if (call->closed) return;
  if (channel->io.state != MS_GRPC_IO_CLOSED) {
    nghttp2_submit_rst_stream(channel->io.session, NGHTTP2_FLAG_NONE, call->stream_id, error_code);
    ms_grpc_io_schedule_flush(&channel->io);
  }
  call_finish(call, status, message);
}

/* The status of a call whose stream the server ended (END_STREAM). */
static void call_complete(ms_grpc_call *call) {
  char message[128];
  if (call->http_status != 200) {
    snprintf(message, sizeof(message), "the server answered HTTP status %d", call->http_status);
    call_finish(call, ms_grpc_status_from_http(call->http_status), message);
  } else if (ms_grpc_deframer_partial(&call->deframer)) {
    call_finish(call, MS_GRPC_INTERNAL, "the server ended the stream in the middle of a message");
  } else if (call->grpc_status < 0) {
    call_finish(call, MS_GRPC_INTERNAL, "the server ended the stream without grpc-status");
  } else {
    call_finish(call, call->grpc_status, call->grpc_message);
  }
}

static ssize_t read_request(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                            void *user_data) {
  ms_grpc_call *call = source->ptr;
  if (call->closed) return NGHTTP2_ERR_DEFERRED; /* its RST_STREAM is on the way */
  ssize_t n = ms_grpc_send_queue_read(&call->queue, buf, length, call->send_closed, data_flags);
  if (n == NGHTTP2_ERR_DEFERRED) call->data_deferred = true;
  return n;
}

static void resume(ms_grpc_call *call) {
  ms_grpc_channel *channel = call->channel;
  if (call->data_deferred) {
    call->data_deferred = false;
    nghttp2_session_resume_data(channel->io.session, call->stream_id);
  }
  ms_grpc_io_schedule_flush(&channel->io);
}

#define HEADER(name, value) \
  { (uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, strlen(value), NGHTTP2_NV_FLAG_NONE }

/* metadata_ok: a lowercase token name that gRPC does not own, and a value
 * without CR, LF or NUL. */
static bool metadata_ok(const ms_grpc_metadata *entry) {
  static const char *const reserved[] = {"content-type", "te", "user-agent", "host"};
  const char *name = entry->name;
  if (name == NULL || entry->value == NULL || name[0] == '\0' || name[0] == ':' ||
      strncmp(name, "grpc-", 5) == 0)
    return false;
  for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
    if (strcmp(name, reserved[i]) == 0) return false;
  for (const char *c = name; *c != '\0'; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' ||
          *c == '.'))
      return false;
  return strpbrk(entry->value, "\r\n") == NULL;
}

int ms_grpc_call_start(ms_grpc_channel *channel, const char *method_path,
                       const ms_grpc_call_callbacks *callbacks, void *arg,
                       ms_grpc_call **out_call) {
  return ms_grpc_call_start_with_metadata(channel, method_path, NULL, 0, callbacks, arg, out_call);
}

#define MAX_METADATA 8

int ms_grpc_call_start_with_metadata(ms_grpc_channel *channel, const char *method_path,
                                     const ms_grpc_metadata *metadata, size_t count,
                                     const ms_grpc_call_callbacks *callbacks, void *arg,
                                     ms_grpc_call **out_call) {
  if (method_path == NULL || method_path[0] != '/' || callbacks == NULL ||
      callbacks->on_close == NULL || count > MAX_METADATA)
    return UV_EINVAL;
  for (size_t i = 0; i < count; i++)
    if (!metadata_ok(&metadata[i])) return UV_EINVAL;
  if (channel->closed_by_caller || channel->io.state == MS_GRPC_IO_CLOSED) return UV_ENOTCONN;
  ms_grpc_call *call = calloc(1, sizeof(*call));
  if (call == NULL) return UV_ENOMEM;
  call->channel = channel;
  call->callbacks = *callbacks;
  call->arg = arg;
  call->grpc_status = -1;
  nghttp2_nv headers[7 + MAX_METADATA] = {
      HEADER(":method", "POST"),
      HEADER(":scheme", "https"),
      HEADER(":path", method_path),
      HEADER(":authority", channel->authority),
      HEADER("content-type", "application/grpc"),
      HEADER("te", "trailers"),
      HEADER("user-agent", channel->user_agent),
  };
  size_t header_count = 7;
  for (size_t i = 0; i < count; i++) {
    /* nghttp2 copies names and values; credentials are never indexed. */
    headers[header_count++] =
        (nghttp2_nv){(uint8_t *)metadata[i].name, (uint8_t *)metadata[i].value,
                     strlen(metadata[i].name), strlen(metadata[i].value), NGHTTP2_NV_FLAG_NO_INDEX};
  }
  nghttp2_data_provider provider = {.source.ptr = call, .read_callback = read_request};
  int32_t stream_id =
      nghttp2_submit_request(channel->io.session, NULL, headers, header_count, &provider, call);
  if (stream_id < 0) {
    free(call);
    return stream_id == NGHTTP2_ERR_NOMEM ? UV_ENOMEM : UV_ENOTCONN;
  }
  call->stream_id = stream_id;
  call->next = channel->calls;
  if (channel->calls) channel->calls->prev = call;
  channel->calls = call;
  ms_grpc_io_schedule_flush(&channel->io);
  *out_call = call;
  return 0;
}

int ms_grpc_call_send(ms_grpc_call *call, const uint8_t *bytes, size_t len) {
  if (call->closed) return UV_ENOTCONN;
  if (call->send_closed) return UV_EPIPE;
  int rc = ms_grpc_send_queue_push(&call->queue, bytes, len);
  if (rc != 0) return rc;
  resume(call);
  return 0;
}

void ms_grpc_call_close_send(ms_grpc_call *call) {
  if (call->closed || call->send_closed) return;
  call->send_closed = true;
  resume(call);
}

void ms_grpc_call_cancel(ms_grpc_call *call) {
  call_abort(call, NGHTTP2_CANCEL, MS_GRPC_CANCELLED, "the call was cancelled");
}

/* ---- nghttp2 callbacks ---------------------------------------------------- */

static ms_grpc_call *call_of(nghttp2_session *session, int32_t stream_id) {
  ms_grpc_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
  return call != NULL && !call->closed ? call : NULL;
}

static bool header_is(const uint8_t *name, size_t len, const char *want) {
  return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  ms_grpc_call *call = call_of(session, frame->hd.stream_id);
  if (call == NULL) return 0;
  /* nghttp2 NUL-terminates names and values. */
  if (header_is(name, name_len, ":status")) {
    call->http_status = atoi((const char *)value);
  } else if (header_is(name, name_len, "grpc-status")) {
    char *end = NULL;
    long status = strtol((const char *)value, &end, 10);
    call->grpc_status = end != (const char *)value && *end == '\0' && status >= 0 && status < 100
                            ? (int)status
                            : MS_GRPC_UNKNOWN;
  } else if (header_is(name, name_len, "grpc-message")) {
    free(call->grpc_message);
    call->grpc_message = ms_grpc_message_decode(value, value_len);
  }
  return 0;
}

static void become_ready(ms_grpc_channel *channel);
static void keepalive_acknowledged(ms_grpc_channel *channel);

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  ms_grpc_channel *channel = user_data;
  channel->last_frame_ms = uv_now(channel->io.loop);
  switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
      if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && channel->state == MS_GRPC_CHANNEL_CONNECTING)
        become_ready(channel);
      return 0;
    case NGHTTP2_PING:
      if (frame->hd.flags & NGHTTP2_FLAG_ACK) keepalive_acknowledged(channel);
      return 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: {
      ms_grpc_call *call = call_of(session, frame->hd.stream_id);
      if (call == NULL) return 0;
      bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
      if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE &&
          call->http_status != 200 && !end_stream) {
        char message[96];
        snprintf(message, sizeof(message), "the server answered HTTP status %d", call->http_status);
        call_abort(call, NGHTTP2_CANCEL, ms_grpc_status_from_http(call->http_status), message);
        return 0;
      }
      if (!end_stream) return 0;
      call_complete(call);
      /* The server is done; if we are not, say we are (RFC 9113 8.1). */
      if (!nghttp2_session_get_stream_local_close(session, frame->hd.stream_id)) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
      }
      return 0;
    }
    default:
      return 0;
  }
}

static bool deliver(void *arg, const uint8_t *bytes, size_t len) {
  ms_grpc_call *call = arg;
  if (call->callbacks.on_message) call->callbacks.on_message(call, bytes, len, call->arg);
  return !call->closed;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                              const uint8_t *data, size_t len, void *user_data) {
  ms_grpc_channel *channel = user_data;
  ms_grpc_call *call = call_of(session, stream_id);
  if (call == NULL) return 0;
  int rc =
      ms_grpc_deframer_feed(&call->deframer, data, len, channel->max_message_bytes, deliver, call);
  if (rc >= 0) return 0;
  char message[128];
  if (rc == MS_GRPC_E_TOO_LARGE) {
    snprintf(message, sizeof(message),
             "received a message larger than the limit (%u vs. %zu bytes)",
             call->deframer.message_len, channel->max_message_bytes);
    call_abort(call, NGHTTP2_CANCEL, MS_GRPC_RESOURCE_EXHAUSTED, message);
  } else if (rc == MS_GRPC_E_COMPRESSED) {
    call_abort(call, NGHTTP2_CANCEL, MS_GRPC_INTERNAL,
               "received a compressed message; compression is not supported");
  } else {
    call_abort(call, NGHTTP2_CANCEL, MS_GRPC_RESOURCE_EXHAUSTED,
               "out of memory receiving a message");
  }
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data) {
  ms_grpc_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
  if (call == NULL) return 0;
  if (!call->closed) {
    char message[128];
    if (call->http_status != 0 && call->http_status != 200) {
      call_complete(call);
    } else if (error_code == NGHTTP2_REFUSED_STREAM) {
      call_finish(call, MS_GRPC_UNAVAILABLE, "the server refused the stream");
    } else {
      snprintf(message, sizeof(message), "the stream was reset: %s",
               nghttp2_http2_strerror(error_code));
      call_finish(call, ms_grpc_status_from_h2_error(error_code), message);
    }
  }
  call_free(call);
  return 0;
}

/* ---- channel life --------------------------------------------------------- */

static void on_keepalive_timer(uv_timer_t *timer);

static void report(ms_grpc_channel *channel, ms_grpc_channel_state state, const char *reason) {
  channel->state = state;
  if (!channel->closed_by_caller && channel->callbacks.on_state)
    channel->callbacks.on_state(channel, state, reason, channel->arg);
}

static void become_ready(ms_grpc_channel *channel) {
  uv_timer_stop(&channel->io.timer);
  if (channel->keepalive_interval_ms)
    uv_timer_start(&channel->io.timer, on_keepalive_timer, channel->keepalive_interval_ms, 0);
  report(channel, MS_GRPC_CHANNEL_READY, NULL);
}

static void keepalive_acknowledged(ms_grpc_channel *channel) {
  if (!channel->ping_outstanding) return;
  channel->ping_outstanding = false;
  uv_timer_start(&channel->io.timer, on_keepalive_timer, channel->keepalive_interval_ms, 0);
}

static void on_keepalive_timer(uv_timer_t *timer) {
  ms_grpc_channel *channel = timer->data;
  if (channel->ping_outstanding) {
    char reason[160];
    snprintf(reason, sizeof(reason), "%s did not answer a keepalive PING within %u ms",
             channel->io.peer_address, channel->keepalive_timeout_ms);
    ms_grpc_io_fail(&channel->io, reason);
    return;
  }
  uint64_t idle = uv_now(channel->io.loop) - channel->last_frame_ms;
  if (idle < channel->keepalive_interval_ms) {
    uv_timer_start(timer, on_keepalive_timer, channel->keepalive_interval_ms - idle, 0);
    return;
  }
  if (nghttp2_submit_ping(channel->io.session, NGHTTP2_FLAG_NONE, NULL) != 0) {
    ms_grpc_io_fail(&channel->io, "out of memory sending a keepalive PING");
    return;
  }
  channel->ping_outstanding = true;
  ms_grpc_io_schedule_flush(&channel->io);
  uv_timer_start(timer, on_keepalive_timer, channel->keepalive_timeout_ms, 0);
}

static void on_connect_timeout(uv_timer_t *timer) {
  ms_grpc_channel *channel = timer->data;
  const char *phase = "waiting for the server's HTTP/2 SETTINGS";
  if (channel->resolving)
    phase = "resolving the host name";
  else if (channel->io.state == MS_GRPC_IO_CONNECTING)
    phase = "connecting";
  else if (channel->io.state == MS_GRPC_IO_HANDSHAKING)
    phase = "in the TLS handshake";
  char reason[300];
  snprintf(reason, sizeof(reason), "connecting to %s timed out after %u ms (%s)",
           channel->address.text, channel->connect_timeout_ms, phase);
  ms_grpc_io_fail(&channel->io, reason);
}

static void maybe_free(ms_grpc_channel *channel) {
  if (!channel->io_closed || channel->resolving || !channel->closed_by_caller) return;
  while (channel->calls)
    call_free(channel->calls);
  ms_address_cleanup(&channel->address);
  free(channel->authority);
  free(channel->user_agent);
  free(channel->server_name);
  SSL_CTX_free(channel->ssl_ctx);
  free(channel);
}

/* Ends every open call, then reports CLOSED (unless the caller closed). */
static void end_calls(ms_grpc_channel *channel, int status, const char *reason) {
  for (ms_grpc_call *call = channel->calls; call != NULL; call = call->next)
    call_finish(call, status, reason);
}

static void on_io_open(ms_grpc_io *io) {}

static void on_io_error(ms_grpc_io *io, const char *reason) {
  ms_grpc_channel *channel = (ms_grpc_channel *)io;
  if (channel->resolving) uv_cancel((uv_req_t *)&channel->resolve);
  end_calls(channel, MS_GRPC_UNAVAILABLE, reason);
  report(channel, MS_GRPC_CHANNEL_CLOSED, reason);
}

static void on_io_closed(ms_grpc_io *io) {
  ms_grpc_channel *channel = (ms_grpc_channel *)io;
  channel->io_closed = true;
  maybe_free(channel);
}

static const ms_grpc_io_callbacks channel_io_callbacks = {
    .on_open = on_io_open,
    .on_error = on_io_error,
    .on_closed = on_io_closed,
};

static void on_resolved(uv_getaddrinfo_t *request, int status, struct addrinfo *result) {
  ms_grpc_channel *channel = request->data;
  channel->resolving = false;
  if (channel->io.state == MS_GRPC_IO_CLOSED) {
    uv_freeaddrinfo(result);
    maybe_free(channel);
    return;
  }
  if (status < 0) {
    char reason[300];
    snprintf(reason, sizeof(reason), "resolving %s failed: %s", channel->address.host,
             uv_strerror(status));
    ms_grpc_io_fail(&channel->io, reason);
    return;
  }
  struct sockaddr_storage addresses[MAX_ADDRESSES];
  size_t count = 0;
  for (struct addrinfo *ai = result; ai != NULL && count < MAX_ADDRESSES; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    memset(&addresses[count], 0, sizeof(addresses[count]));
    memcpy(&addresses[count], ai->ai_addr, ai->ai_addrlen);
    count++;
  }
  uv_freeaddrinfo(result);
  if (count == 0) {
    char reason[300];
    snprintf(reason, sizeof(reason), "resolving %s found no IPv4 or IPv6 address",
             channel->address.host);
    ms_grpc_io_fail(&channel->io, reason);
    return;
  }
  ms_grpc_io_connect(&channel->io, addresses, count);
}

/* ---- setup ---------------------------------------------------------------- */

static nghttp2_session *new_session(ms_grpc_channel *channel) {
  nghttp2_session_callbacks *callbacks;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) return NULL;
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_session_callbacks_set_error_callback2(callbacks, ms_grpc_io_on_nghttp2_error);
  nghttp2_session *session = NULL;
  if (nghttp2_session_client_new(&session, callbacks, channel) != 0) session = NULL;
  nghttp2_session_callbacks_del(callbacks);
  if (session != NULL && ms_grpc_h2_settings(session, false, 0) != 0) {
    nghttp2_session_del(session);
    session = NULL;
  }
  return session;
}

/* Copies the options into the channel. Returns 0 or a negative errno. */
static int configure(ms_grpc_channel *channel, const ms_grpc_channel_options *options) {
  char err[MS_ERR_LEN];
  if (ms_address_parse(options->address, &channel->address, err, sizeof(err)) != 0)
    return UV_EINVAL;
  channel->authority = strdup(options->authority ? options->authority : options->address);
  channel->user_agent = strdup(options->user_agent ? options->user_agent : "mtls-sidecar-grpc/1");
  const char *server_name = options->server_name;
  if (server_name == NULL && !channel->address.host_is_ip) server_name = channel->address.host;
  if (server_name != NULL) channel->server_name = strdup(server_name);
  if (channel->authority == NULL || channel->user_agent == NULL ||
      (server_name != NULL && channel->server_name == NULL))
    return UV_ENOMEM;
  channel->own_check.host =
      channel->server_name != NULL ? channel->server_name : channel->address.host;
  channel->max_message_bytes =
      options->max_message_bytes ? options->max_message_bytes : MS_GRPC_DEFAULT_MAX_MESSAGE_BYTES;
  channel->keepalive_interval_ms = options->keepalive_interval_ms;
  channel->keepalive_timeout_ms =
      options->keepalive_timeout_ms ? options->keepalive_timeout_ms : DEFAULT_KEEPALIVE_TIMEOUT_MS;
  channel->connect_timeout_ms =
      options->connect_timeout_ms ? options->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
  return 0;
}

static SSL *new_ssl(ms_grpc_channel *channel, const ms_grpc_channel_options *options) {
  SSL *ssl = SSL_new(channel->ssl_ctx);
  if (ssl == NULL) return NULL;
  SSL_set_connect_state(ssl);
  static const uint8_t alpn[] = {2, 'h', '2'};
  const ms_peer_check *check = options->peer_check ? options->peer_check : &channel->own_check;
  if (SSL_set_alpn_protos(ssl, alpn, sizeof(alpn)) != 0 ||
      (channel->server_name != NULL && !SSL_set_tlsext_host_name(ssl, channel->server_name)) ||
      ms_ssl_set_peer_check(ssl, check) != 0) {
    SSL_free(ssl);
    return NULL;
  }
  return ssl;
}

int ms_grpc_channel_new(uv_loop_t *loop, const ms_grpc_channel_options *options,
                        const ms_grpc_channel_callbacks *callbacks, void *arg,
                        ms_grpc_channel **out_channel) {
  if (options == NULL || options->address == NULL || options->ssl_ctx == NULL) return UV_EINVAL;
  ms_grpc_channel *channel = calloc(1, sizeof(*channel));
  if (channel == NULL) return UV_ENOMEM;
  int rc = configure(channel, options);
  SSL *ssl = NULL;
  nghttp2_session *session = NULL;
  if (rc == 0) {
    SSL_CTX_up_ref(options->ssl_ctx);
    channel->ssl_ctx = options->ssl_ctx;
    ssl = new_ssl(channel, options);
    session = ssl != NULL ? new_session(channel) : NULL;
    if (session == NULL) rc = UV_ENOMEM;
  }
  char port[8];
  snprintf(port, sizeof(port), "%u", channel->address.port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  if (channel->address.host_is_ip) hints.ai_flags = AI_NUMERICHOST;
  channel->resolve.data = channel;
  if (rc == 0)
    rc = uv_getaddrinfo(loop, &channel->resolve, on_resolved, channel->address.host, port, &hints);
  if (rc != 0) {
    SSL_free(ssl);
    nghttp2_session_del(session);
    channel->io_closed = channel->closed_by_caller = true;
    maybe_free(channel);
    return rc;
  }
  channel->resolving = true;
  if (callbacks) channel->callbacks = *callbacks;
  channel->arg = arg;
  channel->state = MS_GRPC_CHANNEL_CONNECTING;
  ms_grpc_io_init(&channel->io, loop, ssl, session, &channel_io_callbacks);
  channel->io.sni_sent = channel->server_name != NULL;
  snprintf(channel->io.peer_address, sizeof(channel->io.peer_address), "%s", channel->address.text);
  uv_timer_start(&channel->io.timer, on_connect_timeout, channel->connect_timeout_ms, 0);
  *out_channel = channel;
  return 0;
}

ms_grpc_channel_state ms_grpc_channel_get_state(const ms_grpc_channel *channel) {
  return channel->state;
}

void ms_grpc_channel_close(ms_grpc_channel *channel) {
  if (channel == NULL || channel->closed_by_caller) return;
  channel->closed_by_caller = true;
  end_calls(channel, MS_GRPC_CANCELLED, "the channel was closed");
  channel->state = MS_GRPC_CHANNEL_CLOSED;
  if (channel->resolving) uv_cancel((uv_req_t *)&channel->resolve);
  if (channel->io_closed) {
    maybe_free(channel); /* closed earlier; nothing of ours is on the stack */
    return;
  }
  ms_grpc_io_close(&channel->io);
}
