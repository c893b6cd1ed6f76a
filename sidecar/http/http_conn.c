#include "sidecar/http/http_conn.h"

#include <errno.h>
#include <http_parser.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/log.h"
#include "common/net.h"
#include "sidecar/event/events.h"
#include "sidecar/event/tls_to_plaintext.h"
#include "sidecar/http/access_log.h"
#include "sidecar/http/http_head.h"
#include "sidecar/http/http_internal.h"
#include "sidecar/upstream/pool.h"
#include "sidecar/upstream/upstream.h"

static void on_timer(uv_timer_t *timer);
static void uncount_request(ms_http_conn *conn);
static const http_parser_settings request_settings;

/* ---- closing ------------------------------------------------------------ */

static void on_timer_closed(uv_handle_t *handle) {
  ms_http_conn *conn = handle->data;
  close(conn->fd);
  free(conn->in);
  ms_http_head_cleanup(&conn->rq);
  ms_http_head_cleanup(&conn->rs);
  ms_http_out_cleanup(&conn->rq_out);
  ms_http_out_cleanup(&conn->out);
  ms_snapshot_free(conn->snapshot);
  free(conn);
}

void ms_http_conn_close(ms_http_conn *conn) {
  if (conn->state == CONN_CLOSED) return;
  conn->state = CONN_CLOSED;
  ms_worker *worker = conn->worker;
  ms_worker_client_close(worker, &conn->link);
  ms_events_unpost(&worker->events, &conn->task);
  ms_upstream_close(conn->upstream);
  conn->upstream = NULL;
  uncount_request(conn);
  uv_close((uv_handle_t *)&conn->timer, on_timer_closed);
}

/* ---- start -------------------------------------------------------------- */

static void reset_exchange(ms_http_conn *conn) {
  conn->rq_state = RQ_IDLE;
  conn->rs_state = RS_NONE;
  conn->rq_body_started = false;
  conn->rq_error = RQ_OK;
  conn->rq_refused = MS_HTTP_REQUEST_PROXY;
  conn->rq_head_bytes = 0;
  conn->rq_body_bytes = 0;
  conn->rq_framing = MS_HTTP_FRAMING_NONE;
  conn->rq_out.len = 0;
  conn->rq_out.failed = false;
  conn->tried = 0;
  conn->attempts = conn->retries = 0;
  conn->last_error[0] = '\0';
  conn->upstream_in_doubt = false;
  conn->rs_refused = NULL;
  conn->rs_framing = MS_HTTP_FRAMING_NONE;
  conn->rs_status = 0;
  conn->rs_body_bytes = 0;
  conn->rs_head_ns = 0;
  conn->rq_endpoint = NULL;
  conn->cluster = NULL;
  conn->rq_reused = conn->rq_resumed = false;
  conn->upstream_eof = false;
  http_parser_init(&conn->rq_parser, HTTP_REQUEST);
  conn->rq_parser.data = conn;
}

/* RQ_IDLE: between requests. The timer is the client's idle timeout; it
 * also bounds how long the client takes to read the rest of the last
 * answer (the exchange's own bound on that, send_timer, ends with it). */
static void await_request(ms_http_conn *conn) {
  conn->rq_state = RQ_IDLE;
  conn->send_timer = false;
  uv_timer_start(&conn->timer, on_timer, ms_http_config(conn)->client_idle_timeout_ms, 0);
}

/* RQ_HEAD: a request head has begun (a new connection's first, at its
 * accept). The timer is its deadline: request_headers_timeout_ms, or none
 * with 0. */
static void begin_head(ms_http_conn *conn) {
  conn->rq_state = RQ_HEAD;
  uint32_t deadline_ms = ms_http_config(conn)->request_headers_timeout_ms;
  if (deadline_ms)
    uv_timer_start(&conn->timer, on_timer, deadline_ms, 0);
  else
    uv_timer_stop(&conn->timer);
}

static void on_client_event(ms_event_source *source, uint32_t events);
static void on_task(ms_event_source *source, uint32_t events);

static void close_link(ms_client_link *link) {
  ms_http_conn_close((ms_http_conn *)link);
}

/* Draining (SIGTERM): an idle keep-alive connection closes now; a busy one
 * says "Connection: close" on its response and closes after it, as Envoy
 * drains HTTP/1. */
static void drain_link(ms_client_link *link) {
  ms_http_conn *conn = (ms_http_conn *)link;
  conn->close_after = true;
  bool between_exchanges = conn->rq_state == RQ_IDLE || conn->rq_state == RQ_HEAD;
  if (between_exchanges && conn->out.len == conn->out_sent && conn->in_len == 0)
    ms_http_conn_close(conn);
}

/* http_parser's own head limit is process-wide (80 KiB by default); ours
 * is per listener and counted in add_piece, so the parser's is set above
 * the highest a listener may have. */
static void raise_parser_limit(void) {
  http_parser_set_max_header_size(2 * 1024 * 1024);
}

/* The worker's HTTP state, made with its first HTTP client. Returns NULL
 * when memory ran out. */
static ms_http_worker *http_worker(ms_worker *worker) {
  if (worker->http) return worker->http;
  ms_http_worker *http = calloc(1, sizeof(*http));
  if (http == NULL) return NULL;
  http->pool = ms_pool_new();
  http->access_logs = ms_access_logs_new();
  if (http->pool == NULL || http->access_logs == NULL) {
    ms_pool_free(http->pool);
    ms_access_logs_free(http->access_logs);
    free(http);
    return NULL;
  }
  worker->http = http;
  return http;
}

void ms_http_worker_stop(ms_worker *worker) {
  ms_http_worker *http = worker->http;
  if (http == NULL) return;
  ms_pool_free(http->pool);
  ms_access_logs_free(http->access_logs);
  free(http);
  worker->http = NULL;
}

void ms_http_conn_start(ms_worker *worker, int fd, const ms_listener_sockets *sockets) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, raise_parser_limit);
  ms_http_conn *conn = http_worker(worker) ? calloc(1, sizeof(*conn)) : NULL;
  if (conn == NULL) {
    ms_log(MS_LOG_ERROR, "out of memory taking a connection; closing it");
    close(fd);
    return;
  }
  ms_event_source_init(&conn->source, on_client_event, conn);
  ms_event_source_init(&conn->task, on_task, conn);
  conn->link.close = close_link;
  conn->link.drain = drain_link;
  if (ms_worker_client_open(worker, &conn->link, fd, &conn->source, sockets) != 0) {
    free(conn);
    return;
  }
  conn->worker = worker;
  conn->fd = fd;
  conn->snapshot = ms_snapshot_up_ref(worker->snapshot);
  conn->listener = ms_snapshot_find_listener(conn->snapshot, sockets);
  struct sockaddr_storage peer;
  socklen_t peer_len = sizeof(peer);
  if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) == 0) {
    ms_net_format((struct sockaddr *)&peer, conn->peer, sizeof(conn->peer));
    /* X-Forwarded-For carries the address without the port. */
    char *colon = strrchr(conn->peer, ':');
    if (colon) *colon = '\0';
    if (conn->peer[0] == '[') {
      memmove(conn->peer, conn->peer + 1, strlen(conn->peer));
      conn->peer[strlen(conn->peer) - 1] = '\0';
    }
  }
  uv_timer_init(&worker->loop, &conn->timer);
  conn->timer.data = conn;
  reset_exchange(conn);
  /* A new connection is there to send a request: the first head's deadline
   * runs from the accept. Without one it waits as an idle keep-alive
   * connection does. */
  if (ms_http_config(conn)->request_headers_timeout_ms)
    begin_head(conn);
  else
    await_request(conn);
}

/* ---- the client side ---------------------------------------------------- */

void ms_http_count_status(ms_http_conn *conn, unsigned status) {
  ms_stats *stats = &conn->worker->stats;
  ms_listener_stats *listener = ms_worker_listener_stats(conn->worker, conn->link.listener);
  if (status < 200) {
    MS_STAT_ADD(stats, http_rq_1xx, 1);
    MS_STAT_ADD(listener, downstream_rq_1xx, 1);
  } else if (status < 300) {
    MS_STAT_ADD(stats, http_rq_2xx, 1);
    MS_STAT_ADD(listener, downstream_rq_2xx, 1);
  } else if (status < 400) {
    MS_STAT_ADD(stats, http_rq_3xx, 1);
    MS_STAT_ADD(listener, downstream_rq_3xx, 1);
  } else if (status < 500) {
    MS_STAT_ADD(stats, http_rq_4xx, 1);
    MS_STAT_ADD(listener, downstream_rq_4xx, 1);
  } else {
    MS_STAT_ADD(stats, http_rq_5xx, 1);
    MS_STAT_ADD(listener, downstream_rq_5xx, 1);
  }
}

/* Whether a request head is whole and its exchange under way. */
static bool exchange_under_way(const ms_http_conn *conn) {
  return conn->rq_state == RQ_BODY || conn->rq_state == RQ_DONE;
}

/* Writes what waits for the client. Returns 1 when all is out, 0 when the
 * socket is full, -1 when the connection was closed. */
int ms_http_flush_client(ms_http_conn *conn) {
  while (conn->out_sent < conn->out.len) {
    ssize_t n = write(conn->fd, conn->out.data + conn->out_sent, conn->out.len - conn->out_sent);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        /* The client is not reading: it gets client_idle_timeout_ms to
         * start again (nginx's send_timeout); meanwhile the upstream is
         * not read, and its own timeout waits. Between exchanges the
         * idle timer or the head's deadline bounds it already. */
        if (exchange_under_way(conn) && conn->state != CONN_LINGERING) {
          conn->send_timer = true;
          uv_timer_start(&conn->timer, on_timer, ms_http_config(conn)->client_idle_timeout_ms, 0);
        }
        return 0;
      }
      ms_http_conn_close(conn);
      return -1;
    }
    conn->out_sent += (size_t)n;
  }
  if (conn->send_timer) {
    conn->send_timer = false;
    uv_timer_stop(&conn->timer);
  }
  conn->out.len = conn->out_sent = 0;
  if (conn->out.capacity > OUT_HIGH) ms_http_out_cleanup(&conn->out); /* a big body passed */
  if (conn->close_after && conn->rq_state == RQ_IDLE && conn->state == CONN_OPEN) {
    /* Our FIN first; closing with unread bytes would reset the connection
     * and could lose the response on its way. */
    conn->state = CONN_LINGERING;
    shutdown(conn->fd, SHUT_WR);
    uv_timer_start(&conn->timer, on_timer, LINGER_MS, 0);
  }
  return 1;
}

/* One JSON line per request, when the listener has an access log. */
void ms_http_log_request(ms_http_conn *conn, uint64_t duration_us) {
  const char *path = ms_http_config(conn)->access_log;
  if (path == NULL) return;
  ms_access_line *line = &conn->worker->http->access_line;
  const ms_http_head *rq = &conn->rq;
  size_t authority_len = 0;
  const char *authority = ms_http_head_get(rq, "host", &authority_len);
  ms_access_line_begin(line);
  char time[32];
  ms_log_timestamp(time, sizeof(time));
  ms_access_line_string(line, "time", time, strlen(time));
  ms_access_line_string(line, "client", conn->peer, strlen(conn->peer));
  /* The method is known once the target began; a head cut off before (a
   * 408 on a silent connection, a 400 on garbage) has neither. */
  const char *method = rq->started ? http_method_str(conn->rq_parser.method) : NULL;
  ms_access_line_string(line, "method", method, method ? strlen(method) : 0);
  ms_access_line_number(line, "status", conn->rs_status);
  ms_access_line_string(line, "cluster", conn->cluster ? conn->cluster->config->name : NULL,
                        conn->cluster ? strlen(conn->cluster->config->name) : 0);
  ms_access_line_string(line, "endpoint", conn->rq_endpoint,
                        conn->rq_endpoint ? strlen(conn->rq_endpoint) : 0);
  ms_access_line_number(line, "duration_ms", (double)duration_us / 1000);
  if (conn->rs_head_ns) /* proxied: how long the upstream took to answer */
    ms_access_line_number(line, "upstream_response_ms",
                          (double)(conn->rs_head_ns - conn->rq_start_ns) / 1e6);
  ms_access_line_number(line, "bytes_received", (double)conn->rq_body_bytes);
  ms_access_line_number(line, "bytes_sent", (double)conn->rs_body_bytes);
  ms_access_line_bool(line, "upstream_reused", conn->rq_reused);
  ms_access_line_bool(line, "tls_resumed", conn->rq_resumed);
  ms_access_line_number(line, "attempts", conn->attempts);
  ms_access_line_string(line, "authority", authority, authority_len > 512 ? 512 : authority_len);
  ms_access_line_string(line, "path", rq->started ? rq->buf + rq->target.offset : NULL,
                        rq->target.len > 2048 ? 2048 : rq->target.len);
  ms_access_line_end(line);
  ms_access_logs_write(conn->worker->http->access_logs, path, line->buf, line->len);
}

/* The worker's counts of requests and retries under way, for the retry
 * budget. */
static void uncount_request(ms_http_conn *conn) {
  if (conn->rq_counted) conn->worker->http->requests_active--;
  if (conn->rq_retrying) conn->worker->http->retries_active--;
  conn->rq_counted = conn->rq_retrying = false;
}

void ms_http_end_exchange(ms_http_conn *conn, bool upstream_reusable) {
  uncount_request(conn);
  if (conn->rs_status) {
    uint64_t duration_us = (uv_hrtime() - conn->rq_start_ns) / 1000;
    ms_stats_record_latency(&conn->worker->stats, duration_us);
    ms_http_log_request(conn, duration_us);
  }
  if (conn->upstream) {
    if (upstream_reusable) {
      conn->upstream->requests++;
      ms_pool_put(conn->worker->http->pool, conn->upstream);
    } else {
      ms_upstream_close(conn->upstream);
    }
    conn->upstream = NULL;
  }
  if (conn->rq_state != RQ_DONE || !conn->rq_keep_alive || conn->worker->draining)
    conn->close_after = true;
  reset_exchange(conn);
  await_request(conn); /* also with close_after: the client must read the answer in time */
  /* A pipelined request waiting, or bytes not read yet: on the next turn.
   * Otherwise the client's next bytes bring an event. */
  if (conn->in_len || conn->readable || conn->close_after)
    ms_events_post(&conn->worker->events, &conn->task);
}

/* An answer of our own. The request's remaining body, if any, is not read:
 * the connection closes after the answer. */
void ms_http_respond(ms_http_conn *conn, unsigned status, const char *reason, const char *body) {
  ms_http_count_status(conn, status);
  conn->rs_status = status;
  if (!conn->rq_start_ns) conn->rq_start_ns = uv_hrtime();
  if (conn->rq_state != RQ_DONE) conn->close_after = true;
  size_t body_len = strlen(body);
  ms_http_out_addf(&conn->out,
                   "HTTP/1.1 %u %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: %zu\r\n%s\r\n",
                   status, reason, body_len + 1,
                   conn->close_after || !conn->rq_keep_alive ? "Connection: close\r\n" : "");
  ms_http_out_add(&conn->out, body, body_len);
  ms_http_out_add(&conn->out, "\n", 1);
  ms_http_end_exchange(conn, false);
  ms_http_flush_client(conn);
}

void ms_http_respond_verdict(ms_http_conn *conn, ms_http_request_verdict verdict) {
  const char *phrase, *body;
  unsigned status = ms_http_request_verdict_answer(verdict, &phrase, &body);
  ms_http_respond(conn, status, phrase, body);
}

static void consume_in(ms_http_conn *conn, size_t n) {
  memmove(conn->in, conn->in + n, conn->in_len - n);
  conn->in_len -= n;
}

/* Whether `conn` may read more from the client now: a request head is
 * awaited, or its body is flowing and the upstream takes it. */
static bool wants_client_bytes(const ms_http_conn *conn) {
  if (conn->state == CONN_LINGERING) return true;
  if (conn->close_after || conn->eof) return false;
  size_t limit = ms_http_config(conn)->max_request_headers_bytes + IN_CHUNK;
  return conn->in_len < limit;
}

/* Reads what the client sent into `in`. Returns -1 when the connection
 * was closed. */
int ms_http_read_client(ms_http_conn *conn) {
  while (conn->readable && wants_client_bytes(conn)) {
    if (conn->state == CONN_LINGERING) {
      char sink[4096];
      ssize_t n = read(conn->fd, sink, sizeof(sink));
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        conn->readable = false;
        return 0;
      }
      ms_http_conn_close(conn);
      return -1;
    }
    if (conn->in_capacity - conn->in_len < 4096) {
      size_t capacity = conn->in_capacity ? conn->in_capacity * 2 : 16 * 1024;
      char *grown = realloc(conn->in, capacity);
      if (grown == NULL) {
        ms_http_conn_close(conn);
        return -1;
      }
      conn->in = grown;
      conn->in_capacity = capacity;
    }
    size_t room = conn->in_capacity - conn->in_len;
    ssize_t n = read(conn->fd, conn->in + conn->in_len, room);
    if (n > 0) {
      conn->in_len += (size_t)n;
      /* A short read emptied the socket for now, unless its FIN is next:
       * no read(2) just to hear EAGAIN. */
      if ((size_t)n < room && !conn->hup) conn->readable = false;
      continue;
    }
    if (n == 0) {
      conn->eof = true;
      conn->readable = false;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      conn->readable = false;
    } else {
      ms_http_conn_close(conn);
      return -1;
    }
  }
  return 0;
}

/* ---- request parsing ---------------------------------------------------- */

static int add_piece(http_parser *parser, ms_http_piece piece, const char *at, size_t len) {
  ms_http_conn *conn = parser->data;
  conn->rq_head_bytes += len;
  if (conn->rq_head_bytes > ms_http_config(conn)->max_request_headers_bytes) {
    conn->rq_error = RQ_HEAD_TOO_LARGE;
    return -1;
  }
  return ms_http_head_append(&conn->rq, piece, at, len) == 0 ? 0 : -1;
}

static int rq_on_message_begin(http_parser *parser) {
  ms_http_conn *conn = parser->data;
  if (conn->rq_state == RQ_IDLE) begin_head(conn);
  conn->rq_start_ns = uv_hrtime();
  ms_http_head_reset(&conn->rq);
  return 0;
}

static int rq_on_url(http_parser *parser, const char *at, size_t len) {
  return add_piece(parser, MS_HTTP_URL, at, len);
}

static int rq_on_field(http_parser *parser, const char *at, size_t len) {
  return add_piece(parser, MS_HTTP_FIELD, at, len);
}

static int rq_on_value(http_parser *parser, const char *at, size_t len) {
  return add_piece(parser, MS_HTTP_VALUE, at, len);
}

static int rq_on_headers_complete(http_parser *parser) {
  ms_http_conn *conn = parser->data;
  conn->rq_refused = ms_http_request_check(parser, &conn->rq);
  if (conn->rq_refused != MS_HTTP_REQUEST_PROXY) {
    conn->rq_error = RQ_REFUSED;
    return -1;
  }
  conn->rq_state = RQ_BODY; /* RQ_DONE at once when there is none */
  conn->rq_keep_alive = http_should_keep_alive(parser);
  conn->rq_framing = ms_http_request_framing(parser);
  /* With a body, stop here: it flows once an upstream is ready. */
  if (conn->rq_framing != MS_HTTP_FRAMING_NONE) http_parser_pause(parser, 1);
  return 0;
}

static int rq_on_body(http_parser *parser, const char *at, size_t len) {
  ms_http_conn *conn = parser->data;
  uint64_t limit = ms_http_config(conn)->max_request_body_bytes;
  conn->rq_body_bytes += len;
  if (limit && conn->rq_body_bytes > limit) {
    conn->rq_error = RQ_BODY_TOO_LARGE; /* a chunked body past the limit: cut off */
    return -1;
  }
  conn->rq_body_started = true;
  SSL *ssl = conn->upstream->ssl;
  if (conn->rq_framing == MS_HTTP_FRAMING_CHUNKED) {
    char line[MS_HTTP_CHUNK_LINE_MAX];
    SSL_write(ssl, line, (int)ms_http_chunk_line(len, line));
    SSL_write(ssl, at, (int)len);
    SSL_write(ssl, "\r\n", 2);
  } else {
    SSL_write(ssl, at, (int)len);
  }
  MS_STAT_ADD(&conn->worker->stats, bytes_sent_upstream, len);
  return 0;
}

static int rq_on_message_complete(http_parser *parser) {
  ms_http_conn *conn = parser->data;
  conn->rq_state = RQ_DONE;
  if (conn->rq_framing == MS_HTTP_FRAMING_CHUNKED && conn->upstream)
    SSL_write(conn->upstream->ssl, MS_HTTP_LAST_CHUNK, sizeof(MS_HTTP_LAST_CHUNK) - 1);
  /* Pipelined requests wait until this one is answered. */
  http_parser_pause(parser, 1);
  return 0;
}

static const http_parser_settings request_settings = {
    .on_message_begin = rq_on_message_begin,
    .on_url = rq_on_url,
    .on_header_field = rq_on_field,
    .on_header_value = rq_on_value,
    .on_headers_complete = rq_on_headers_complete,
    .on_body = rq_on_body,
    .on_message_complete = rq_on_message_complete,
};

/* Runs the request parser over `in`. Returns -1 when the request was
 * answered or the connection closed. */
static int parse_in(ms_http_conn *conn) {
  http_parser_pause(&conn->rq_parser, 0);
  size_t n = http_parser_execute(&conn->rq_parser, &request_settings, conn->in, conn->in_len);
  enum http_errno error = HTTP_PARSER_ERRNO(&conn->rq_parser);
  consume_in(conn, n);
  if (error == HPE_OK || error == HPE_PAUSED) return 0;
  if (ms_http_response_started(conn)) {
    /* The client has part of a response already: only closing says it. */
    ms_log(MS_LOG_DEBUG, "http: request body broken off (%s); closing", http_errno_name(error));
    ms_http_conn_close(conn);
    return -1;
  }
  switch (conn->rq_error) {
    case RQ_HEAD_TOO_LARGE:
      ms_http_respond(conn, 431, "Request Header Fields Too Large",
                      "request header fields too large: over max_request_headers_bytes");
      break;
    case RQ_BODY_TOO_LARGE:
      /* The upstream got part of the body: that connection goes too. */
      ms_http_respond_verdict(conn, MS_HTTP_REQUEST_BODY_TOO_LARGE);
      break;
    case RQ_REFUSED:
      ms_http_respond_verdict(conn, conn->rq_refused);
      break;
    case RQ_OK: {
      /* Not silence: the client's TLS library reads this answer as "wrong
       * version number", the usual sign of TLS sent to plaintext. */
      if (ms_tls_to_plaintext_check(conn->worker, conn->link.listener, conn->in, conn->in_len,
                                    "answered 400")) {
        ms_http_respond(conn, 400, "Bad Request", "bad request: " MS_TLS_TO_PLAINTEXT_HINT);
        break;
      }
      char body[160];
      snprintf(body, sizeof(body), "bad request: %s", http_errno_description(error));
      ms_http_respond(conn, 400, "Bad Request", body);
      break;
    }
  }
  return -1;
}

/* ---- driving ------------------------------------------------------------ */

/* RQ_IDLE and RQ_HEAD: parse what came of the next head (its first byte
 * moves RQ_IDLE to RQ_HEAD); a whole head starts the exchange. */
static void request_head(ms_http_conn *conn) {
  if (conn->close_after) return;
  if (conn->in_len && parse_in(conn) != 0) return;
  if (exchange_under_way(conn)) {
    ms_http_start_exchange(conn);
    return;
  }
  if (conn->eof) ms_http_conn_close(conn); /* gone between requests, or in a head */
}

/* RQ_BODY and RQ_DONE, once the upstream has the head: what was sealed for
 * it goes out, and in RQ_BODY the body flows while the upstream takes it:
 * flush, parse what came, read more. */
static void request_to_upstream(ms_http_conn *conn) {
  ms_upstream *upstream = conn->upstream;
  if (conn->rs_state < RS_HEAD) return; /* the upstream is not ready: the body waits */
  for (;;) {
    if (ms_upstream_flush(upstream) < 0) {
      ms_http_attempt_failed(conn, "writing to the upstream failed", true);
      return;
    }
    if (ms_tls_io_pending_out(&upstream->io)) return; /* its writable edge brings us back */
    if (conn->rq_state == RQ_DONE) return;
    if (conn->in_len == 0) {
      if (conn->eof) ms_http_conn_close(conn); /* the client left in the middle of its request */
      return;
    }
    if (parse_in(conn) != 0) return;
    if (ms_http_read_client(conn) != 0) return;
  }
}

/* Everything that can move for the client: its writes, its reads, its
 * request's head or body. */
void ms_http_client_io(ms_http_conn *conn) {
  if (ms_http_flush_client(conn) < 0) return;
  if (ms_http_read_client(conn) != 0) return;
  switch (conn->state) {
    case CONN_OPEN:
      break;
    case CONN_LINGERING:
      if (conn->eof) ms_http_conn_close(conn);
      return;
    case CONN_TUNNEL:
    case CONN_CLOSED:
      return;
  }
  switch (conn->rq_state) {
    case RQ_IDLE:
    case RQ_HEAD:
      request_head(conn);
      return;
    case RQ_BODY:
    case RQ_DONE:
      request_to_upstream(conn);
      return;
  }
}

void ms_http_end_event(ms_http_conn *conn) {
  if (conn->state == CONN_CLOSED || conn->upstream == NULL) return;
  if (ms_tls_io_park(&conn->upstream->io) != 0) {
    ms_log(MS_LOG_ERROR, "http: out of memory keeping an upstream's TLS records; closing");
    ms_http_conn_close(conn);
  }
}

/* One turn of the connection, by its state: a client event, or its posted
 * task (`posted`: a retry may be due, or the next pipelined request). */
static void run(ms_http_conn *conn, bool posted) {
  switch (conn->state) {
    case CONN_OPEN:
      if (posted && conn->rs_state == RS_CONNECTING && conn->upstream == NULL) {
        ms_http_pick_upstream(conn); /* a retry */
      } else {
        ms_http_client_io(conn);
        ms_http_upstream_io(conn); /* the client may take more of the response now */
      }
      break;
    case CONN_TUNNEL:
      ms_http_tunnel_io(conn);
      break;
    case CONN_LINGERING:
      ms_http_client_io(conn);
      break;
    case CONN_CLOSED:
      return;
  }
  ms_http_end_event(conn);
}

static void on_client_event(ms_event_source *source, uint32_t events) {
  ms_http_conn *conn = source->data;
  if (events & (MS_EVENT_READ | MS_EVENT_HUP | MS_EVENT_ERROR)) conn->readable = true;
  if (events & (MS_EVENT_HUP | MS_EVENT_ERROR)) conn->hup = true;
  run(conn, false);
}

static void on_task(ms_event_source *source, uint32_t events) {
  run(source->data, true);
}

/* RQ_HEAD past request_headers_timeout_ms (Envoy's request_headers_timeout,
 * nginx's client_header_timeout): nothing of a response to this request has
 * begun, so it is answered 408 with "Connection: close", and the connection
 * closes once the client has the answer. */
static void request_head_timed_out(ms_http_conn *conn) {
  MS_LISTENER_STAT_ADD(conn->worker, conn->link.listener, downstream_rq_header_timeout, 1);
  ms_log(MS_LOG_DEBUG, "http: listener=%s: no whole request head within %u ms; 408",
         conn->listener->config->name, ms_http_config(conn)->request_headers_timeout_ms);
  ms_http_respond_verdict(conn, MS_HTTP_REQUEST_HEAD_TIMEOUT);
}

static void on_timer(uv_timer_t *timer) {
  ms_http_conn *conn = timer->data;
  switch (conn->state) {
    case CONN_OPEN:
    case CONN_TUNNEL:
      break;
    case CONN_LINGERING:
      ms_http_conn_close(conn);
      return;
    case CONN_CLOSED:
      return;
  }
  if (conn->send_timer) {
    ms_log(MS_LOG_WARN, "http: listener=%s: the client read nothing for %u ms; closing",
           conn->listener->config->name, ms_http_config(conn)->client_idle_timeout_ms);
    MS_LISTENER_STAT_ADD(conn->worker, conn->link.listener, downstream_cx_idle_timeout, 1);
    ms_http_conn_close(conn);
    return;
  }
  switch (conn->rq_state) {
    case RQ_IDLE:
      MS_LISTENER_STAT_ADD(conn->worker, conn->link.listener, downstream_cx_idle_timeout, 1);
      ms_http_conn_close(conn);
      return;
    case RQ_HEAD:
      request_head_timed_out(conn);
      return;
    case RQ_BODY:
    case RQ_DONE:
      return; /* a request under way is the upstream timer's */
  }
}
