#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "sidecar/http/http_internal.h"
#include "common/log.h"
#include "sidecar/upstream/pool.h"
#include "sidecar/upstream/upstream.h"

static const http_parser_settings response_settings;
static const ms_upstream_callbacks upstream_callbacks;

/* ---- routing and the upstream ----------------------------------------- */

static bool route_matches(const ms_http_conn *conn, const ms_http_route *route) {
  if (route->host) {
    size_t len;
    const char *host = ms_http_head_get(&conn->rq, "host", &len);
    if (host == NULL) return false;
    const char *colon = memchr(host, ':', len);
    if (colon && host[0] != '[') len = (size_t)(colon - host);
    if (strlen(route->host) != len || strncasecmp(route->host, host, len) != 0) return false;
  }
  if (route->path_prefix) {
    size_t prefix = strlen(route->path_prefix);
    ms_http_slice target = conn->rq.target;
    if (target.len < prefix || memcmp(conn->rq.buf + target.offset, route->path_prefix, prefix))
      return false;
  }
  return true;
}

/* The first route that matches, else the listener's cluster, or NULL when
 * the listener answers 404 to requests no route matches. */
static const ms_cluster *route(const ms_http_conn *conn) {
  const ms_http_listener_config *http = ms_http_config(conn);
  for (size_t i = 0; i < http->route_count; i++)
    if (route_matches(conn, &http->routes[i]))
      return &conn->snapshot->clusters[http->routes[i].cluster_index];
  if (http->no_route_404) return NULL;
  return &conn->snapshot->clusters[conn->listener->config->cluster_index];
}

/* A request head is parsed: choose the cluster, check the limits, write
 * the head for the upstream and find one. */
void ms_http_start_exchange(ms_http_conn *conn) {
  ms_worker *worker = conn->worker;
  uv_timer_stop(&conn->timer);
  if (conn->snapshot != worker->snapshot) {
    /* Each request runs on the newest snapshot: its clusters, endpoints and
     * TLS contexts (a rotation reaches keep-alive clients at once). */
    const ms_listener *listener =
        ms_snapshot_find_listener(worker->snapshot, conn->listener->sockets);
    if (listener == NULL || listener->config->protocol != MS_PROTOCOL_HTTP) {
      ms_http_conn_close(conn);
      return;
    }
    ms_snapshot_free(conn->snapshot);
    conn->snapshot = ms_snapshot_up_ref(worker->snapshot);
    conn->listener = listener;
  }
  MS_STAT_ADD(&worker->stats, http_rq_total, 1);
  MS_STAT_ADD(ms_worker_listener_stats(worker, conn->link.listener), downstream_rq_total, 1);
  worker->http->requests_active++;
  conn->rq_counted = true;
  ms_http_request_edits edits;
  ms_http_request_verdict verdict = ms_http_request_plan(
      &conn->rq_parser, conn->rq_framing, ms_http_config(conn)->max_request_body_bytes, &edits);
  if (verdict != MS_HTTP_REQUEST_PROXY) {
    ms_http_respond_verdict(conn, verdict); /* 413 or 405 */
    return;
  }
  conn->cluster = route(conn);
  if (conn->cluster == NULL) {
    ms_http_respond(conn, 404, "Not Found", "no route matches this request's host and path");
    return;
  }
  edits.host = conn->cluster->config->host_header;
  edits.forwarded_for =
      ms_http_config(conn)->add_x_forwarded_for && conn->peer[0] ? conn->peer : NULL;
  ms_http_write_request(&conn->rq_out, &conn->rq, &edits);
  if (conn->rq_out.failed) {
    ms_http_conn_close(conn);
    return;
  }
  http_parser_init(&conn->rs_parser, HTTP_RESPONSE);
  conn->rs_parser.data = conn;
  conn->rs_state = RS_CONNECTING;
  ms_http_pick_upstream(conn);
}

static bool idempotent(const ms_http_conn *conn) {
  switch (conn->rq_parser.method) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_OPTIONS:
    case HTTP_PUT:
    case HTTP_DELETE:
    case HTTP_TRACE:
      return true;
    default:
      return false;
  }
}

/* Whether the failed attempt may be made again elsewhere: nothing of a
 * response reached the client, nothing of the body left `in`, and the
 * cluster's retries allow it. */
static bool may_retry(const ms_http_conn *conn, bool counts_as_retry) {
  const ms_http_retry_config *retries = &conn->cluster->config->retries;
  if (ms_http_response_started(conn) || conn->rq_body_started || !idempotent(conn)) return false;
  if (!counts_as_retry) return true; /* a pooled connection closed meanwhile: no one's fault */
  if (conn->retries >= retries->max_retries) return false;
  if (conn->rq_retrying) return true; /* already counted in the budget */
  /* Envoy's retry budget, per worker: retries under way stay below a share
   * of the requests under way, with a floor, so that a failing endpoint
   * cannot double the load on the others. */
  uint64_t budget = conn->worker->http->requests_active * retries->budget_percent / 100;
  if (budget < retries->min_retry_concurrency) budget = retries->min_retry_concurrency;
  return conn->worker->http->retries_active < budget;
}

static void bad_gateway(ms_http_conn *conn) {
  char body[720];
  snprintf(body, sizeof(body), "upstream failed: %s",
           conn->last_error[0] ? conn->last_error : "no answer");
  ms_http_respond(conn, 502, "Bad Gateway", body);
}

/* The upstream failed before the response began. */
void ms_http_attempt_failed(ms_http_conn *conn, const char *message, bool counts_as_retry) {
  if (message) snprintf(conn->last_error, sizeof(conn->last_error), "%s", message);
  /* Where a retry is counted per cluster: the endpoint that failed. */
  ms_endpoint_state *failed = conn->upstream ? ms_upstream_endpoint_state(conn->upstream) : NULL;
  ms_upstream_close(conn->upstream);
  conn->upstream = NULL;
  if (ms_http_response_started(conn)) {
    ms_http_conn_close(conn); /* the client has part of a response: only closing says it */
    return;
  }
  if (!may_retry(conn, counts_as_retry)) {
    bad_gateway(conn);
    return;
  }
  if (counts_as_retry) {
    conn->retries++;
    if (!conn->rq_retrying) {
      conn->rq_retrying = true;
      conn->worker->http->retries_active++;
    }
    MS_STAT_ADD(&conn->worker->stats, http_rq_retry, 1);
    if (failed) atomic_fetch_add_explicit(&failed->rq_retry, 1, memory_order_relaxed);
  }
  conn->rs_state = RS_CONNECTING;
  ms_events_post(&conn->worker->events, &conn->task); /* after the events under way */
}

static void send_request(ms_http_conn *conn) {
  ms_upstream *upstream = conn->upstream;
  conn->rq_endpoint = ms_upstream_endpoint(upstream);
  conn->rq_reused = upstream->requests > 0;
  conn->rq_resumed = SSL_session_reused(upstream->ssl);
  MS_ENDPOINT_STAT_ADD(upstream, rq_total, 1);
  SSL_write(upstream->ssl, conn->rq_out.data, (int)conn->rq_out.len);
  conn->rs_state = RS_HEAD;
  uint32_t timeout = ms_http_config(conn)->request_timeout_ms;
  ms_upstream_set_timeout(upstream, timeout);
  ms_http_client_io(conn); /* the body, if any, and what the upstream may say */
}

void ms_http_pick_upstream(ms_http_conn *conn) {
  ms_worker *worker = conn->worker;
  const ms_cluster *cluster = conn->cluster;
  for (;;) {
    if (cluster->tls == NULL) {
      ms_http_respond(conn, 503, "Service Unavailable",
                      "no upstream: the cluster has no usable TLS context (see /clusters)");
      return;
    }
    size_t index = MS_NO_ENDPOINT;
    if (conn->attempts < cluster->config->max_connect_attempts)
      index = ms_upstream_pick(worker, cluster, conn->tried);
    if (index == MS_NO_ENDPOINT) {
      if (conn->last_error[0])
        bad_gateway(conn);
      else
        ms_http_respond(conn, 503, "Service Unavailable", "no upstream: no endpoint available");
      return;
    }
    conn->attempts++;
    if (index < 64) conn->tried |= 1ULL << index;
    conn->upstream = ms_pool_take(worker->http->pool, cluster, index, &upstream_callbacks, conn);
    if (conn->upstream) {
      MS_STAT_ADD(&worker->stats, http_pool_reused, 1);
      send_request(conn);
      return;
    }
    conn->upstream = ms_upstream_open(worker, conn->snapshot, cluster, index, &upstream_callbacks,
                                      conn, conn->last_error, sizeof(conn->last_error));
    if (conn->upstream) {
      MS_STAT_ADD(&worker->stats, http_pool_new, 1);
      return; /* on_upstream_ready sends the request */
    }
  }
}

/* ---- the response ------------------------------------------------------ */

static int rs_on_message_begin(http_parser *parser) {
  ms_http_conn *conn = parser->data;
  ms_http_head_reset(&conn->rs);
  return 0;
}

static int rs_on_status(http_parser *parser, const char *at, size_t len) {
  ms_http_conn *conn = parser->data;
  return ms_http_head_append(&conn->rs, MS_HTTP_STATUS, at, len);
}

static int rs_on_field(http_parser *parser, const char *at, size_t len) {
  ms_http_conn *conn = parser->data;
  return ms_http_head_append(&conn->rs, MS_HTTP_FIELD, at, len);
}

static int rs_on_value(http_parser *parser, const char *at, size_t len) {
  ms_http_conn *conn = parser->data;
  return ms_http_head_append(&conn->rs, MS_HTTP_VALUE, at, len);
}

/* Responses by class, per endpoint (summed per cluster in /stats). */
static void count_at_endpoint(ms_http_conn *conn, unsigned status) {
  unsigned class = status / 100;
  if (class < 1 || class > 5) return;
  MS_ENDPOINT_STAT_ADD(conn->upstream, rq_by_class[class], 1);
}

/* Acts on ms_http_response_decide. Returns http_parser's 0 (a body follows
 * as the headers frame it), 1 (the message ends at its head: RFC 9112 6.3,
 * a 1xx, 204 or 304, or the answer to a HEAD, whatever the headers say), 2
 * (a 101: what follows is another protocol) or -1 (refused). Bytes an
 * upstream sends after a head that ends its message are never passed on
 * (parse_response). */
static int rs_on_headers_complete(http_parser *parser) {
  ms_http_conn *conn = parser->data;
  ms_http_response_plan plan;
  ms_http_response_decide(parser, &conn->rs, &conn->rq_parser,
                          conn->close_after || !conn->rq_keep_alive, &plan);
  unsigned status = plan.status;
  switch (plan.kind) {
    case MS_HTTP_RESPONSE_BAD_HEADER_NAME:
      conn->rs_refused = plan.refused;
      return -1;
    case MS_HTTP_RESPONSE_UPGRADE_UNASKED:
      count_at_endpoint(conn, status);
      return -1;
    case MS_HTTP_RESPONSE_UPGRADE:
      count_at_endpoint(conn, status);
      /* The upstream took the Upgrade: from here on, a tunnel. */
      conn->state = CONN_TUNNEL;
      conn->rs_state = RS_BODY; /* RS_DONE at once: what follows is the other protocol's */
      conn->rs_status = status;
      ms_http_write_planned_response(&conn->out, &conn->rs, &plan);
      ms_http_count_status(conn, status);
      return 2;
    case MS_HTTP_RESPONSE_INTERIM:
      if (plan.upstream_in_doubt) conn->upstream_in_doubt = true;
      ms_http_write_planned_response(&conn->out, &conn->rs, &plan);
      ms_http_count_status(conn, status);
      return 1;
    case MS_HTTP_RESPONSE_FINAL:
      break;
  }
  conn->rs_state = RS_BODY;
  conn->rs_status = status;
  conn->rs_head_ns = uv_hrtime();
  count_at_endpoint(conn, status);
  if (plan.upstream_in_doubt) conn->upstream_in_doubt = true;
  conn->rs_framing = plan.framing;
  if (plan.framing == MS_HTTP_FRAMING_UNTIL_CLOSE) conn->close_after = true;
  ms_http_write_planned_response(&conn->out, &conn->rs, &plan);
  ms_http_count_status(conn, status);
  return plan.bodiless ? 1 : 0;
}

static int rs_on_body(http_parser *parser, const char *at, size_t len) {
  ms_http_conn *conn = parser->data;
  if (conn->rs_framing == MS_HTTP_FRAMING_CHUNKED)
    ms_http_out_add_chunk(&conn->out, at, len);
  else
    ms_http_out_add(&conn->out, at, len);
  conn->rs_body_bytes += len;
  MS_STAT_ADD(&conn->worker->stats, bytes_received_upstream, len);
  return 0;
}

static int rs_on_message_complete(http_parser *parser) {
  ms_http_conn *conn = parser->data;
  if (conn->rs_state != RS_BODY) return 0; /* an interim answer: the final one follows */
  conn->rs_state = RS_DONE;
  if (conn->rs_framing == MS_HTTP_FRAMING_CHUNKED)
    ms_http_out_add(&conn->out, MS_HTTP_LAST_CHUNK, sizeof(MS_HTTP_LAST_CHUNK) - 1);
  http_parser_pause(parser, 1);
  return 0;
}

static const http_parser_settings response_settings = {
    .on_message_begin = rs_on_message_begin,
    .on_status = rs_on_status,
    .on_header_field = rs_on_field,
    .on_header_value = rs_on_value,
    .on_headers_complete = rs_on_headers_complete,
    .on_body = rs_on_body,
    .on_message_complete = rs_on_message_complete,
};

/* The response is complete: the exchange ends once the request is, too. */
static void response_done(ms_http_conn *conn) {
  ms_upstream *upstream = conn->upstream;
  bool reusable = conn->rq_state == RQ_DONE && !conn->upstream_in_doubt &&
                  http_should_keep_alive(&conn->rs_parser) &&
                  conn->rs_framing != MS_HTTP_FRAMING_UNTIL_CLOSE &&
                  !ms_tls_io_buffered_in(&upstream->io) && SSL_pending(upstream->ssl) == 0;
  ms_upstream_set_timeout(upstream, 0);
  ms_http_end_exchange(conn, reusable);
}

/* Feeds the response parser; `len` 0 tells it the upstream closed. Returns
 * -1 when the exchange ended badly (the connection or its answer is dealt
 * with). */
static int parse_response(ms_http_conn *conn, const char *data, size_t len) {
  size_t n = http_parser_execute(&conn->rs_parser, &response_settings, data, len);
  enum http_errno error = HTTP_PARSER_ERRNO(&conn->rs_parser);
  if (error == HPE_OK || error == HPE_PAUSED) {
    if (conn->state == CONN_TUNNEL) {
      ms_http_out_add(&conn->out, data + n, len - n); /* the other protocol's first bytes */
      return 0;
    }
    if (n < len && conn->rs_state != RS_DONE) {
      error = HPE_UNKNOWN;
    } else {
      /* Bytes after the response (after a head that ends it, say) are not
       * passed on, and its framing is in doubt: the connection is not
       * pooled. */
      if (n < len) conn->upstream_in_doubt = true;
      return 0;
    }
  }
  char message[200];
  snprintf(message, sizeof(message), "cluster=%s endpoint=%s: invalid response: %s",
           conn->cluster->config->name, ms_upstream_endpoint(conn->upstream),
           conn->rs_refused ? conn->rs_refused : http_errno_description(error));
  ms_log(MS_LOG_WARN, "http: %s", message);
  snprintf(conn->last_error, sizeof(conn->last_error), "%s", message);
  ms_upstream_close(conn->upstream);
  conn->upstream = NULL;
  if (ms_http_response_started(conn))
    ms_http_conn_close(conn);
  else
    bad_gateway(conn);
  return -1;
}

/* ---- the tunnel (after 101 Switching Protocols) ------------------------------ */

/* Bytes pass both ways as they are, with the same back-pressure as the L4
 * relay; when either side is done, what the other has in flight is
 * delivered and the connection closes. */
void ms_http_tunnel_io(ms_http_conn *conn) {
  ms_upstream *upstream = conn->upstream;
  ms_worker *worker = conn->worker;
  while (!conn->upstream_eof) {
    if (conn->out.len - conn->out_sent >= OUT_HIGH) {
      int flushed = ms_http_flush_client(conn);
      if (flushed < 0) return;
      if (flushed == 0) break;
    }
    int rc = SSL_read(upstream->ssl, worker->scratch, MS_WORKER_SCRATCH);
    if (rc > 0) {
      ms_http_out_add(&conn->out, worker->scratch, (size_t)rc);
      MS_STAT_ADD(&worker->stats, bytes_received_upstream, rc);
      continue;
    }
    int error = SSL_get_error(upstream->ssl, rc);
    ERR_clear_error();
    if (error != SSL_ERROR_WANT_READ) conn->upstream_eof = true;
    break;
  }
  int flushed = ms_http_flush_client(conn);
  if (flushed < 0) return;
  if (conn->upstream_eof) {
    if (flushed == 1) ms_http_conn_close(conn); /* the client has it all */
    return;
  }
  if (ms_http_read_client(conn) != 0) return;
  for (;;) {
    if (ms_upstream_flush(upstream) < 0) {
      ms_http_conn_close(conn);
      return;
    }
    if (ms_tls_io_pending_out(&upstream->io) || conn->in_len == 0) break;
    SSL_write(upstream->ssl, conn->in, (int)conn->in_len);
    MS_STAT_ADD(&worker->stats, bytes_sent_upstream, conn->in_len);
    conn->in_len = 0;
    if (ms_http_read_client(conn) != 0) return;
  }
  if (conn->eof && conn->in_len == 0 && !ms_tls_io_pending_out(&upstream->io))
    ms_http_conn_close(conn); /* the client is done: nothing more goes either way */
}

static void start_tunnel(ms_http_conn *conn) {
  ms_http_log_request(conn, (uv_hrtime() - conn->rq_start_ns) / 1000);
  ms_upstream_set_timeout(conn->upstream, 0);
  uv_timer_stop(&conn->timer);
  conn->rq_state = RQ_DONE;
  ms_http_tunnel_io(conn);
}

/* RS_HEAD and RS_BODY: reads the upstream while the client keeps up,
 * until the upstream has nothing more for now, the client's socket is
 * full, or the response is done. Returns -1 when the exchange ended here
 * (the connection closed, answered, or a retry posted). */
static int read_response(ms_http_conn *conn) {
  ms_upstream *upstream = conn->upstream;
  ms_worker *worker = conn->worker;
  bool upstream_empty = false;
  /* request_timeout_ms bounds the upstream's silences, not the client's:
   * it runs while the upstream is read. */
  if (conn->rs_state == RS_BODY)
    ms_upstream_set_timeout(upstream, ms_http_config(conn)->request_timeout_ms);
  while (conn->rs_state != RS_DONE && !upstream_empty) {
    if (conn->out.len - conn->out_sent >= OUT_HIGH) {
      int flushed = ms_http_flush_client(conn);
      if (flushed < 0) return -1;
      if (flushed == 0) {
        ms_upstream_set_timeout(upstream, 0); /* the client's writable edge brings us back */
        break;
      }
    }
    int rc = SSL_read(upstream->ssl, worker->scratch, MS_WORKER_SCRATCH);
    if (rc > 0) {
      /* The head's timeout runs until the head is in; then it bounds each
       * silence in the body. */
      if (parse_response(conn, worker->scratch, (size_t)rc) != 0) return -1;
      if (conn->state == CONN_TUNNEL) {
        start_tunnel(conn);
        return -1;
      }
      if (conn->rs_state == RS_BODY)
        ms_upstream_set_timeout(upstream, ms_http_config(conn)->request_timeout_ms);
      continue;
    }
    int error = SSL_get_error(upstream->ssl, rc);
    ERR_clear_error();
    if (error == SSL_ERROR_WANT_READ) {
      upstream_empty = true;
      break;
    }
    bool closed =
        error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && upstream->io.eof);
    if (closed && conn->rs_state == RS_BODY) {
      /* A body that ends with the connection, or one cut short. */
      if (parse_response(conn, NULL, 0) != 0) return -1;
      if (conn->rs_state != RS_DONE) {
        ms_http_conn_close(conn);
        return -1;
      }
      upstream->close_notify_sent = true; /* not reusable */
      break;
    }
    char message[640];
    if (conn->rs_state == RS_HEAD && error == SSL_ERROR_SSL && upstream->requests == 0 &&
        !conn->rq_body_started && conn->rs.len == 0) {
      /* TLS 1.3: the upstream refused our certificate after its side of the
       * handshake; this is where we hear of it. */
      ms_upstream_fail_late(upstream, error, message, sizeof(message));
    } else {
      snprintf(message, sizeof(message), "cluster=%s endpoint=%s: the upstream %s before answering",
               conn->cluster->config->name, ms_upstream_endpoint(upstream),
               closed ? "closed the connection" : "reset the connection");
      MS_STAT_ADD(&worker->stats, upstream_cx_destroy_remote, 1);
      MS_ENDPOINT_STAT_ADD(upstream, destroy_remote, 1);
    }
    /* A pooled connection the upstream closed meanwhile is no fault of the
     * endpoint's, and trying again is the usual keep-alive race. */
    ms_http_attempt_failed(conn, message, upstream->requests == 0);
    return -1;
  }
  if (ms_upstream_flush(upstream) < 0 && conn->upstream) {
    ms_http_attempt_failed(conn, "writing to the upstream failed", true);
    return -1;
  }
  return ms_http_flush_client(conn) < 0 ? -1 : 0;
}

/* RS_DONE: the exchange ends once the request is done too; a response
 * that came before the whole request body leaves that body unread, and the
 * connection closes after it. */
static void response_complete(ms_http_conn *conn) {
  switch (conn->rq_state) {
    case RQ_DONE:
      response_done(conn);
      return;
    case RQ_IDLE:
    case RQ_HEAD:
    case RQ_BODY:
      conn->close_after = true;
      ms_http_end_exchange(conn, false);
      ms_http_flush_client(conn);
      return;
  }
}

void ms_http_upstream_io(ms_http_conn *conn) {
  if (conn->state != CONN_OPEN) return;
  switch (conn->rs_state) {
    case RS_NONE:
    case RS_CONNECTING:
      return; /* no upstream to read yet */
    case RS_HEAD:
    case RS_BODY:
      if (read_response(conn) != 0) return;
      if (conn->rs_state == RS_DONE) response_complete(conn);
      return;
    case RS_DONE:
      response_complete(conn);
      return;
  }
}

/* ---- upstream callbacks -------------------------------------------------- */

static void on_upstream_ready(ms_upstream *upstream) {
  send_request(upstream->owner);
  ms_http_conn *conn = upstream->owner;
  if (conn->upstream == upstream) ms_http_upstream_io(conn);
  ms_http_end_event(conn);
}

static void on_upstream_failed(ms_upstream *upstream, const char *message) {
  ms_http_attempt_failed(upstream->owner, message, true);
}

static void on_upstream_event(ms_upstream *upstream, uint32_t events) {
  ms_http_conn *conn = upstream->owner;
  switch (conn->state) {
    case CONN_OPEN:
      if (events & MS_EVENT_WRITE) ms_http_client_io(conn); /* the body may go on */
      if (conn->upstream == upstream) ms_http_upstream_io(conn);
      break;
    case CONN_TUNNEL:
      ms_http_tunnel_io(conn);
      break;
    case CONN_LINGERING:
    case CONN_CLOSED:
      return; /* the upstream is closed: no events come */
  }
  ms_http_end_event(conn);
}

static void on_upstream_timeout(ms_upstream *upstream) {
  ms_http_conn *conn = upstream->owner;
  if (ms_http_response_started(conn)) {
    ms_log(MS_LOG_WARN, "http: cluster=%s endpoint=%s: response stalled for %u ms; closing",
           conn->cluster->config->name, ms_upstream_endpoint(upstream),
           ms_http_config(conn)->request_timeout_ms);
    ms_http_conn_close(conn);
    return;
  }
  MS_STAT_ADD(&conn->worker->stats, http_rq_timeout, 1);
  MS_STAT_ADD(ms_worker_listener_stats(conn->worker, conn->link.listener), downstream_rq_timeout,
              1);
  MS_ENDPOINT_STAT_ADD(upstream, rq_timeout, 1);
  char body[400];
  snprintf(body, sizeof(body),
           "upstream timed out: cluster=%s endpoint=%s sent no response within "
           "request_timeout_ms (%u ms)",
           conn->cluster->config->name, ms_upstream_endpoint(upstream),
           ms_http_config(conn)->request_timeout_ms);
  ms_log(MS_LOG_WARN, "http: %s", body);
  ms_upstream_close(upstream);
  conn->upstream = NULL;
  ms_http_respond(conn, 504, "Gateway Timeout", body);
}

static const ms_upstream_callbacks upstream_callbacks = {
    .on_ready = on_upstream_ready,
    .on_failed = on_upstream_failed,
    .on_event = on_upstream_event,
    .on_timeout = on_upstream_timeout,
};
