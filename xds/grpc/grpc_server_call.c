/* grpc_server_call.c: the calls on a gRPC server's connections
 * (grpc_server.c): each HTTP/2 stream's state, the nghttp2 session
 * callbacks that drive it, and the call API (ms_grpc_server_call_*).
 *
 * Built to hold many idle streams (one ADS stream per sidecar): a call is a
 * small struct with no timer and no buffer while idle; a connection keeps
 * its calls in a list that is walked only when the connection ends. A call
 * is ACTIVE from on_call's acceptance until the handler finishes it
 * (FINISHED) or the stream ends first (CANCELLED, on_cancel); its memory is
 * freed when nghttp2 forgets the stream or the connection is freed. Its
 * unfinished message and its queued responses count in its connection's
 * buffered and queued bytes, which grpc_server.c bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>

#include "xds/grpc/grpc_server_internal.h"

typedef enum call_state {
  CALL_HEADERS,   /* request headers arriving */
  CALL_ACTIVE,    /* the handler's */
  CALL_FINISHED,  /* finished: trailers queued or sent */
  CALL_CANCELLED, /* ended before the handler finished it */
} call_state;

struct ms_grpc_server_call {
  server_conn *conn;
  ms_grpc_server_call *prev, *next;
  const ms_grpc_server_call_callbacks *callbacks;
  void *user_data;
  char *path;          /* while CALL_HEADERS */
  char *authorization; /* the first "authorization" header; wiped when freed */
  bool metadata_too_long;
  char *finish_message; /* encoded, until the trailers are submitted */
  ms_grpc_deframer deframer;
  ms_grpc_send_queue queue;
  int32_t stream_id;
  uint8_t state;
  uint8_t finish_status;
  bool not_grpc; /* wrong :method or content-type */
  bool headers_sent;
  bool data_deferred;
  bool finishing; /* trailers follow the queue */
  bool half_closed;
};

/* ---- calls ---------------------------------------------------------------- */

static void call_free(ms_grpc_server_call *call) {
  server_conn *conn = call->conn;
  if (call->prev)
    call->prev->next = call->next;
  else
    conn->calls = call->next;
  if (call->next) call->next->prev = call->prev;
  ms_grpc_deframer_cleanup(&call->deframer);
  ms_grpc_send_queue_clear(&call->queue);
  free(call->path);
  if (call->authorization != NULL) {
    OPENSSL_cleanse(call->authorization, strlen(call->authorization));
    free(call->authorization);
  }
  free(call->finish_message);
  free(call);
}

/* The call ended before its handler finished it. */
static void call_cancel(ms_grpc_server_call *call) {
  if (call->state != CALL_ACTIVE) return;
  call->state = CALL_CANCELLED;
  ms_grpc_deframer_cleanup(&call->deframer);
  ms_grpc_send_queue_clear(&call->queue);
  if (call->callbacks != NULL) call->callbacks->on_cancel(call, call->user_data);
}

static ssize_t read_response(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                             size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                             void *user_data) {
  ms_grpc_server_call *call = source->ptr;
  if (call->state == CALL_CANCELLED) return NGHTTP2_ERR_DEFERRED;
  ssize_t n = ms_grpc_send_queue_read(&call->queue, buf, length, call->finishing, data_flags);
  if (n == NGHTTP2_ERR_DEFERRED) {
    call->data_deferred = true;
    return n;
  }
  if (*data_flags & NGHTTP2_DATA_FLAG_EOF) {
    char status[12];
    snprintf(status, sizeof(status), "%u", call->finish_status);
    const char *message = call->finish_message ? call->finish_message : "";
    nghttp2_nv trailers[] = {
        {(uint8_t *)"grpc-status", (uint8_t *)status, 11, strlen(status), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"grpc-message", (uint8_t *)message, 12, strlen(message), NGHTTP2_NV_FLAG_NONE},
    };
    *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    int rc = nghttp2_submit_trailer(session, stream_id, trailers, message[0] ? 2 : 1);
    free(call->finish_message);
    call->finish_message = NULL;
    if (rc != 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  return n;
}

static int submit_headers(ms_grpc_server_call *call) {
  nghttp2_nv headers[] = {
      {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE},
  };
  nghttp2_data_provider provider = {.source.ptr = call, .read_callback = read_response};
  int rc = nghttp2_submit_response(call->conn->io.session, call->stream_id, headers, 2, &provider);
  if (rc == 0) call->headers_sent = true;
  return rc;
}

static void resume(ms_grpc_server_call *call) {
  if (call->data_deferred) {
    call->data_deferred = false;
    nghttp2_session_resume_data(call->conn->io.session, call->stream_id);
  }
  ms_grpc_io_schedule_flush(&call->conn->io);
}

int ms_grpc_server_call_send(ms_grpc_server_call *call, const uint8_t *bytes, size_t len) {
  server_conn *conn = call->conn;
  if (call->state != CALL_ACTIVE || conn->io.state == MS_GRPC_IO_CLOSED) return UV_EPIPE;
  if (conn->shedding) return UV_ENOBUFS;
  size_t max = conn->server->stats.max_queued_bytes;
  if (conn->queued + MS_GRPC_PREFIX_LEN + len > max) {
    /* The client does not read: nothing we could send reaches it, GOAWAY
     * included. Closed from the loop: no callback inside this function. */
    conn->server->stats.closed_over_queued++;
    ms_grpc_server_conn_shed(conn, false,
                             "%s does not read: %zu bytes queued, and %zu more would pass %zu",
                             conn->peer.address, conn->queued, len + MS_GRPC_PREFIX_LEN, max);
    return UV_ENOBUFS;
  }
  int rc = ms_grpc_send_queue_push(&call->queue, bytes, len);
  if (rc != 0) return rc;
  if (!call->headers_sent) {
    if (submit_headers(call) != 0) return UV_ENOMEM; /* the message stays queued */
    ms_grpc_io_schedule_flush(&call->conn->io);
    return 0;
  }
  resume(call);
  return 0;
}

/* Sends the status: after the queued messages, or as a trailers-only
 * response when nothing was sent. */
static int finish(ms_grpc_server_call *call, int status, const char *message) {
  server_conn *conn = call->conn;
  call->state = CALL_FINISHED;
  ms_grpc_deframer_cleanup(&call->deframer);
  if (conn->io.state == MS_GRPC_IO_CLOSED) return 0;
  char *encoded = ms_grpc_message_encode(message ? message : "");
  if (encoded == NULL) {
    nghttp2_submit_rst_stream(conn->io.session, NGHTTP2_FLAG_NONE, call->stream_id,
                              NGHTTP2_INTERNAL_ERROR);
    ms_grpc_io_schedule_flush(&conn->io);
    return UV_ENOMEM;
  }
  int rc = 0;
  if (!call->headers_sent) {
    char status_text[12];
    snprintf(status_text, sizeof(status_text), "%u", (unsigned)status & 0xff);
    nghttp2_nv headers[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"grpc-status", (uint8_t *)status_text, 11, strlen(status_text),
         NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"grpc-message", (uint8_t *)encoded, 12, strlen(encoded), NGHTTP2_NV_FLAG_NONE},
    };
    rc = nghttp2_submit_response(conn->io.session, call->stream_id, headers, encoded[0] ? 4 : 3,
                                 NULL);
    call->headers_sent = rc == 0;
    free(encoded);
  } else {
    call->finish_status = (uint8_t)status;
    call->finish_message = encoded;
    call->finishing = true;
    resume(call);
  }
  if (rc != 0) {
    nghttp2_submit_rst_stream(conn->io.session, NGHTTP2_FLAG_NONE, call->stream_id,
                              NGHTTP2_INTERNAL_ERROR);
    rc = UV_ENOMEM;
  }
  ms_grpc_io_schedule_flush(&conn->io);
  return rc;
}

int ms_grpc_server_call_finish(ms_grpc_server_call *call, int grpc_status, const char *message) {
  if (call->state != CALL_ACTIVE) return UV_EPIPE;
  return finish(call, grpc_status, message);
}

/* Ends an accepted call on our side (say, a message over the limit): the
 * client gets `status`, the handler on_cancel. */
static void call_abort(ms_grpc_server_call *call, int status, const char *message) {
  if (call->state != CALL_ACTIVE) return;
  ms_grpc_send_queue_clear(&call->queue);
  finish(call, status, message);
  if (call->callbacks != NULL) call->callbacks->on_cancel(call, call->user_data);
}

void ms_grpc_server_call_set_handler(ms_grpc_server_call *call,
                                     const ms_grpc_server_call_callbacks *callbacks,
                                     void *user_data) {
  call->callbacks = callbacks;
  call->user_data = user_data;
}

const char *ms_grpc_server_call_metadata(const ms_grpc_server_call *call, const char *name) {
  if (strcmp(name, "authorization") == 0) return call->authorization;
  return NULL;
}

const ms_grpc_peer *ms_grpc_server_call_peer(const ms_grpc_server_call *call) {
  return &call->conn->peer;
}

/* ---- nghttp2 callbacks ---------------------------------------------------- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  server_conn *conn = user_data;
  ms_grpc_server_call *call = calloc(1, sizeof(*call));
  if (call == NULL) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
  call->conn = conn;
  call->deframer.accounted = &conn->buffered;
  call->queue.accounted = &conn->queued;
  call->stream_id = frame->hd.stream_id;
  call->state = CALL_HEADERS;
  nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call);
  call->next = conn->calls;
  if (conn->calls) conn->calls->prev = call;
  conn->calls = call;
  return 0;
}

static bool header_is(const uint8_t *name, size_t len, const char *want) {
  return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *user_data) {
  ms_grpc_server_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (call == NULL || call->state != CALL_HEADERS) return 0;
  if (header_is(name, name_len, ":path")) {
    free(call->path);
    call->path = strndup((const char *)value, value_len);
    if (call->path == NULL) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  } else if (header_is(name, name_len, "authorization")) {
    if (call->authorization != NULL) return 0;
    if (value_len > MS_GRPC_MAX_KEPT_METADATA_BYTES) {
      call->metadata_too_long = true;
      return 0;
    }
    call->authorization = strndup((const char *)value, value_len);
    if (call->authorization == NULL) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  } else if (header_is(name, name_len, ":method")) {
    if (!header_is(value, value_len, "POST")) call->not_grpc = true;
  } else if (header_is(name, name_len, "content-type")) {
    static const char grpc_type[] = "application/grpc";
    if (value_len < sizeof(grpc_type) - 1 || memcmp(value, grpc_type, sizeof(grpc_type) - 1) != 0 ||
        (value_len > sizeof(grpc_type) - 1 && value[sizeof(grpc_type) - 1] != '+' &&
         value[sizeof(grpc_type) - 1] != ';'))
      call->not_grpc = true;
  }
  return 0;
}

static void start_call(server_conn *conn, ms_grpc_server_call *call) {
  ms_grpc_server *server = conn->server;
  char *path = call->path;
  call->path = NULL;
  call->state = CALL_ACTIVE;
  if (call->not_grpc || path == NULL) {
    free(path);
    finish(call, MS_GRPC_INTERNAL,
           "not a gRPC request: expected POST with content-type application/grpc");
    return;
  }
  if (call->metadata_too_long) {
    free(path);
    finish(call, MS_GRPC_UNAUTHENTICATED, "the authorization header is too long");
    return;
  }
  int status = server->callbacks.on_call(call, path, &conn->peer, server->arg);
  if (call->state == CALL_ACTIVE && status != MS_GRPC_OK) {
    char message[300];
    if (status == MS_GRPC_UNIMPLEMENTED)
      snprintf(message, sizeof(message), "unknown method %.250s", path);
    else
      snprintf(message, sizeof(message), "%s", ms_grpc_status_name(status));
    finish(call, status, message);
  } else if (call->state == CALL_ACTIVE && call->callbacks == NULL) {
    finish(call, MS_GRPC_INTERNAL, "the server accepted the call without a handler");
  }
  free(path);
}

static void half_close(ms_grpc_server_call *call) {
  if (call->state != CALL_ACTIVE || call->half_closed) return;
  call->half_closed = true;
  if (ms_grpc_deframer_partial(&call->deframer)) {
    call_abort(call, MS_GRPC_INTERNAL, "the client ended the stream in the middle of a message");
    return;
  }
  if (call->callbacks->on_half_close) call->callbacks->on_half_close(call, call->user_data);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  server_conn *conn = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  ms_grpc_server_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (call == NULL) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && call->state == CALL_HEADERS) start_call(conn, call);
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) half_close(call);
  return 0;
}

static bool deliver(void *arg, const uint8_t *bytes, size_t len) {
  ms_grpc_server_call *call = arg;
  if (call->callbacks->on_message) call->callbacks->on_message(call, bytes, len, call->user_data);
  return call->state == CALL_ACTIVE;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                              const uint8_t *data, size_t len, void *user_data) {
  server_conn *conn = user_data;
  ms_grpc_server_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
  if (call == NULL || call->state != CALL_ACTIVE) return 0;
  ms_grpc_server *server = conn->server;
  size_t max = server->stats.max_message_bytes;
  int rc = ms_grpc_deframer_feed(&call->deframer, data, len, max, deliver, call);
  if (rc >= 0) {
    if (conn->buffered > server->stats.max_buffered_bytes && !conn->shedding) {
      server->stats.closed_over_buffered++;
      ms_grpc_server_conn_shed(
          conn, true, "%s holds %zu bytes of unfinished messages, over the limit of %zu",
          conn->peer.address, conn->buffered, server->stats.max_buffered_bytes);
    }
    return 0;
  }
  char message[128];
  if (rc == MS_GRPC_E_TOO_LARGE) {
    server->stats.messages_too_large++;
    snprintf(message, sizeof(message),
             "received a message larger than the limit (%u vs. %zu bytes)",
             call->deframer.message_len, max);
    call_abort(call, MS_GRPC_RESOURCE_EXHAUSTED, message);
  } else if (rc == MS_GRPC_E_COMPRESSED) {
    call_abort(call, MS_GRPC_UNIMPLEMENTED,
               "received a compressed message; compression is not supported");
  } else {
    call_abort(call, MS_GRPC_RESOURCE_EXHAUSTED, "out of memory receiving a message");
  }
  return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  /* Our END_STREAM while the client still sends: end the stream for both
   * (RFC 9113 8.1), as gRPC servers do. */
  if (frame->hd.type == NGHTTP2_HEADERS && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
      !nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id))
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
  return 0;
}

/* Counts the streams nghttp2 refuses over SETTINGS_MAX_CONCURRENT_STREAMS
 * (sent, not yet acknowledged); nghttp2 has already queued the RST_STREAM. */
static int on_invalid_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                                 int lib_error_code, void *user_data) {
  server_conn *conn = user_data;
  if (lib_error_code == NGHTTP2_ERR_REFUSED_STREAM) conn->server->stats.streams_refused++;
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data) {
  ms_grpc_server_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
  if (call == NULL) return 0;
  call_cancel(call);
  call_free(call);
  return 0;
}

/* ---- for grpc_server.c (grpc_server_internal.h) --------------------------- */

void ms_grpc_server_conn_cancel_calls(server_conn *conn) {
  for (ms_grpc_server_call *call = conn->calls; call != NULL; call = call->next)
    call_cancel(call);
}

void ms_grpc_server_conn_free_calls(server_conn *conn) {
  while (conn->calls)
    call_free(conn->calls);
}

nghttp2_session_callbacks *ms_grpc_server_h2_callbacks_new(void) {
  nghttp2_session_callbacks *callbacks;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) return NULL;
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_session_callbacks_set_error_callback2(callbacks, ms_grpc_io_on_nghttp2_error);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks, on_invalid_frame_recv);
  return callbacks;
}
