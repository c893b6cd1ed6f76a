/* ads_client.c: the ADS client's life on the loop (ads_client.h). The pure
 * parts (backoff, per-type state, request encoding) are in
 * ads_client_state.c.
 *
 * States, one function each:
 *   CONNECTING  start_attempt: a new channel and its stream; the first
 *               requests are queued at once and leave when it connects.
 *   CONNECTED   on_channel_state READY; responses arrive in on_message.
 *   BACKOFF     end_attempt: the channel is closed, the timer runs;
 *               on_backoff_timer starts the next attempt.
 *   CLOSED      ms_ads_client_close; the client is freed in the timer's
 *               close callback.
 * A failure we notice ourselves (a response that does not decode, a request
 * we cannot send) goes through fail_stream, which cancels the stream from
 * the timer, so that no callback ever runs inside a public function. */
#include "xds/ads/ads_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certs/certs.h"
#include "common/log.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "xds/ads/ads_client_state.h"
#include "xds/grpc/bearer_token.h"
#include "xds/grpc/grpc.h"
#include "xds/proto/pb_depth.h"
#include "xds/proto/type_urls.h"

#define DEFAULT_INITIAL_BACKOFF_MS 500
#define DEFAULT_MAX_BACKOFF_MS 30000
#define WHY_LEN 768

struct ms_ads_client {
  uv_loop_t *loop;
  ms_ads_client_state state;
  ms_ads_client_callbacks callbacks;
  void *arg;

  /* Options, copied. */
  ms_grpc_channel_options channel_options; /* its strings are the ones below */
  char *address;
  char *server_name;
  char *user_agent_header;
  char *token_file; /* NULL: no authorization header */
  uint64_t initial_backoff_ms, max_backoff_ms;
  ms_ads_node node;

  /* Types, in the order first subscribed. */
  ms_ads_type **types;
  size_t type_count;

  /* The current attempt. */
  ms_grpc_channel *channel;
  ms_grpc_call *call;
  bool node_sent;                      /* the stream's first request went out */
  uint64_t stream_responses;           /* responses on this stream */
  char *stream_error;                  /* set by fail_stream: why we cancel */
  const ms_ads_type *in_callback_type; /* on_response runs for it */

  uv_timer_t timer; /* BACKOFF; also fail_stream's deferred cancel */
  uint32_t failures;
  uint64_t retry_delay_ms;
  uint64_t streams, responses;
  char last_disconnect[WHY_LEN];
};

static void start_attempt(ms_ads_client *client);

const char *ms_ads_client_state_name(ms_ads_client_state state) {
  switch (state) {
    case MS_ADS_CLIENT_CONNECTING:
      return "CONNECTING";
    case MS_ADS_CLIENT_CONNECTED:
      return "CONNECTED";
    case MS_ADS_CLIENT_BACKOFF:
      return "BACKOFF";
    case MS_ADS_CLIENT_CLOSED:
      return "CLOSED";
  }
  return "UNKNOWN";
}

static ms_ads_type *find_type(const ms_ads_client *client, const char *type_url) {
  for (size_t i = 0; i < client->type_count; i++)
    if (strcmp(client->types[i]->type_url, type_url) == 0) return client->types[i];
  return NULL;
}

/* ---- failing the stream from the loop --------------------------------------- */

static void on_cancel_timer(uv_timer_t *timer) {
  ms_ads_client *client = timer->data;
  /* on_close runs inside and moves to BACKOFF. */
  if (client->call != NULL) ms_grpc_call_cancel(client->call);
}

/* fail_stream ends the current stream soon with `reason` (the first reason
 * wins); responses still arriving until then are ignored. */
static void fail_stream(ms_ads_client *client, const char *reason) {
  if (client->call == NULL || client->stream_error != NULL) return;
  client->stream_error = strdup(reason);
  if (client->stream_error == NULL) client->stream_error = strdup("out of memory");
  uv_timer_start(&client->timer, on_cancel_timer, 0, 0);
}

/* ---- requests ------------------------------------------------------------- */

/* send_message puts `request` on the stream, with the node when it is the stream's
 * first. Returns 0, or a negative errno after failing the stream. */
static int send_message(ms_ads_client *client, ms_ads_request *request) {
  if (client->call == NULL || client->stream_error != NULL) return UV_ENOTCONN;
  request->node = client->node_sent ? NULL : &client->node;
  uint8_t *bytes = NULL;
  size_t len = 0;
  int rc = ms_ads_request_encode(request, &bytes, &len);
  if (rc == 0) rc = ms_grpc_call_send(client->call, bytes, len);
  free(bytes);
  if (rc != 0) {
    char reason[300];
    snprintf(reason, sizeof(reason), "could not send a DiscoveryRequest for %s: %s",
             request->type_url, uv_strerror(rc));
    fail_stream(client, reason);
    return rc;
  }
  client->node_sent = true;
  return 0;
}

/* Sends `type`'s next request and marks the type requested. */
static void send_request(ms_ads_client *client, ms_ads_type *type, const char *error_message) {
  ms_ads_request request;
  ms_ads_type_request(type, NULL, error_message, &request);
  if (send_message(client, &request) == 0) type->requested = true;
}

/* Answers a response of a type never requested on this stream with a
 * NACK, without keeping any state for it. */
static void send_unexpected_nack(ms_ads_client *client, const char *type_url, const char *nonce) {
  char message[400];
  snprintf(message, sizeof(message), "unexpected type: %s was not subscribed", type_url);
  ms_ads_request request = {
      .type_url = type_url,
      .version_info = "",
      .response_nonce = nonce,
      .error_message = message,
  };
  send_message(client, &request);
}

/* The stream's first requests: every subscribed type, CDS, EDS, LDS, SDS,
 * then the rest in the order subscribed. */
static void send_initial_requests(ms_ads_client *client) {
  for (int rank = 0; rank <= ms_ads_type_rank(""); rank++) {
    for (size_t i = 0; i < client->type_count; i++) {
      ms_ads_type *type = client->types[i];
      if (type->subscribed && ms_ads_type_rank(type->type_url) == rank)
        send_request(client, type, NULL);
    }
  }
}

/* ---- responses ------------------------------------------------------------ */

static void handle_response(ms_ads_client *client,
                            const Envoy__Service__Discovery__V3__DiscoveryResponse *response) {
  ms_ads_type *type = find_type(client, response->type_url);
  if (type == NULL || !type->requested) {
    send_unexpected_nack(client, response->type_url, response->nonce);
    return;
  }
  client->in_callback_type = type;
  char *error =
      client->callbacks.on_response(client, response->type_url, response->version_info,
                                    (const Google__Protobuf__Any *const *)response->resources,
                                    response->n_resources, client->arg);
  client->in_callback_type = NULL;
  if (client->state == MS_ADS_CLIENT_CLOSED) {
    free(error);
    return;
  }
  /* The callback may have sent other types' requests or closed the client,
   * never ended this stream: send_request checks what is left of it. */
  int rc = error == NULL ? ms_ads_type_ack(type, response->version_info, response->nonce)
                         : ms_ads_type_nack(type, response->version_info, response->nonce, error);
  if (rc != 0)
    fail_stream(client, "out of memory recording a response");
  else
    send_request(client, type, error);
  free(error);
}

static void on_message(ms_grpc_call *call, const uint8_t *bytes, size_t len, void *arg) {
  ms_ads_client *client = arg;
  if (client->stream_error != NULL) return; /* the stream is being cancelled */
  /* Behind the nesting guard, as every message from the control plane; the
   * resources inside (Any's bytes) get theirs when they are decoded. */
  char err[200];
  Envoy__Service__Discovery__V3__DiscoveryResponse *response = (void *)ms_pb_unpack_guarded(
      &envoy__service__discovery__v3__discovery_response__descriptor, bytes, len, err, sizeof(err));
  if (response == NULL) {
    char reason[260];
    snprintf(reason, sizeof(reason), "protocol error: a DiscoveryResponse did not decode: %s", err);
    fail_stream(client, reason);
    return;
  }
  client->responses++;
  client->stream_responses++;
  if (response->type_url[0] == '\0')
    fail_stream(client, "protocol error: a DiscoveryResponse without a type_url");
  else
    handle_response(client, response);
  envoy__service__discovery__v3__discovery_response__free_unpacked(response, NULL);
}

/* ---- the end of an attempt, backoff ------------------------------------------ */

static void on_backoff_timer(uv_timer_t *timer) {
  start_attempt(timer->data);
}

/* end_attempt closes the channel, schedules the next attempt and reports
 * `why`. */
static void end_attempt(ms_ads_client *client, const char *why) {
  client->call = NULL;
  ms_grpc_channel_close(client->channel);
  client->channel = NULL;
  free(client->stream_error);
  client->stream_error = NULL;
  if (client->stream_responses > 0) client->failures = 0;
  client->retry_delay_ms = ms_ads_backoff_ms(client->failures, client->initial_backoff_ms,
                                             client->max_backoff_ms, ms_ads_random_u32());
  client->failures++;
  client->state = MS_ADS_CLIENT_BACKOFF;
  uv_timer_start(&client->timer, on_backoff_timer, client->retry_delay_ms, 0);
  snprintf(client->last_disconnect, sizeof(client->last_disconnect),
           "ADS stream to %s ended: %s; retrying in %llu ms", client->address, why,
           (unsigned long long)client->retry_delay_ms);
  if (client->callbacks.on_connection)
    client->callbacks.on_connection(client, false, client->last_disconnect, client->arg);
}

static void on_call_close(ms_grpc_call *call, int grpc_status, const char *grpc_message,
                          void *arg) {
  ms_ads_client *client = arg;
  if (client->state == MS_ADS_CLIENT_CLOSED) return;
  char why[WHY_LEN - 100];
  if (client->stream_error != NULL) {
    snprintf(why, sizeof(why), "%s", client->stream_error);
  } else {
    /* The control plane's words: escaped, as they end up in a log line. */
    char message[MS_LOG_ESCAPED_LEN];
    snprintf(why, sizeof(why), "%s%s%s", ms_grpc_status_name(grpc_status),
             grpc_message[0] ? ": " : "",
             ms_log_escape(grpc_message, MS_LOG_ESCAPE_MAX, message, sizeof(message)));
  }
  uv_timer_stop(&client->timer); /* a pending fail_stream cancel */
  end_attempt(client, why);
}

static const ms_grpc_call_callbacks call_callbacks = {
    .on_message = on_message,
    .on_close = on_call_close,
};

static void on_channel_state(ms_grpc_channel *channel, ms_grpc_channel_state state,
                             const char *reason, void *arg) {
  ms_ads_client *client = arg;
  /* CLOSED comes after the call's on_close, which closed the channel. */
  if (state != MS_GRPC_CHANNEL_READY || client->state != MS_ADS_CLIENT_CONNECTING) return;
  client->state = MS_ADS_CLIENT_CONNECTED;
  if (client->callbacks.on_connection)
    client->callbacks.on_connection(client, true, NULL, client->arg);
}

static const ms_grpc_channel_callbacks channel_callbacks = {.on_state = on_channel_state};

/* start_call starts the stream on `channel`, with the token when there is
 * one. A token that cannot be read is `token_error` (the attempt fails with
 * it once the stream is open). */
static int start_call(ms_ads_client *client, ms_grpc_channel *channel, ms_grpc_call **call,
                      char *token_error, size_t token_error_len) {
  if (client->token_file == NULL)
    return ms_grpc_call_start(channel, MS_XDS_ADS_METHOD, &call_callbacks, client, call);
  char *header = NULL;
  if (ms_bearer_token_read(client->token_file, &header, NULL, token_error, token_error_len) != 0)
    return ms_grpc_call_start(channel, MS_XDS_ADS_METHOD, &call_callbacks, client, call);
  ms_grpc_metadata authorization = {"authorization", header};
  int rc = ms_grpc_call_start_with_metadata(channel, MS_XDS_ADS_METHOD, &authorization, 1,
                                            &call_callbacks, client, call);
  ms_secure_free(header);
  return rc;
}

/* open_stream makes a new channel and starts the stream on it. Returns 0 or
 * a negative errno (nothing left open). */
static int open_stream(ms_ads_client *client) {
  ms_grpc_channel *channel = NULL;
  ms_grpc_call *call = NULL;
  int rc = ms_grpc_channel_new(client->loop, &client->channel_options, &channel_callbacks, client,
                               &channel);
  if (rc != 0) return rc;
  char token_error[400] = "";
  rc = start_call(client, channel, &call, token_error, sizeof(token_error));
  if (rc != 0) {
    ms_grpc_channel_close(channel);
    return rc;
  }
  client->channel = channel;
  client->call = call;
  client->node_sent = false;
  client->stream_responses = 0;
  client->streams++;
  client->state = MS_ADS_CLIENT_CONNECTING;
  for (size_t i = 0; i < client->type_count; i++)
    ms_ads_type_stream_reset(client->types[i]);
  if (token_error[0]) fail_stream(client, token_error);
  return 0;
}

static void start_attempt(ms_ads_client *client) {
  int rc = open_stream(client);
  if (rc != 0) {
    char why[160];
    snprintf(why, sizeof(why), "could not start a channel: %s", uv_strerror(rc));
    client->stream_responses = 0;
    end_attempt(client, why);
    return;
  }
  send_initial_requests(client);
}

/* ---- public functions ------------------------------------------------------- */

static void client_free(ms_ads_client *client) {
  for (size_t i = 0; i < client->type_count; i++)
    ms_ads_type_free(client->types[i]);
  free(client->types);
  ms_ads_node_cleanup(&client->node);
  SSL_CTX_free(client->channel_options.ssl_ctx);
  free(client->address);
  free(client->server_name);
  free(client->user_agent_header);
  free(client->token_file);
  free(client->stream_error);
  free(client);
}

static void on_timer_closed(uv_handle_t *handle) {
  client_free(handle->data);
}

/* Copies the options into `client`. Returns 0 or UV_ENOMEM. */
static int configure(ms_ads_client *client, const ms_ads_client_options *options) {
  const char *agent = options->user_agent ? options->user_agent : "mtls-sidecar";
  size_t header_len =
      strlen(agent) + 2 + (options->user_agent_version ? strlen(options->user_agent_version) : 0);
  client->address = strdup(options->address);
  client->server_name = options->server_name ? strdup(options->server_name) : NULL;
  client->user_agent_header = malloc(header_len);
  client->token_file = options->token_file ? strdup(options->token_file) : NULL;
  if (client->address == NULL || (options->server_name && client->server_name == NULL) ||
      (options->token_file && client->token_file == NULL) || client->user_agent_header == NULL ||
      ms_ads_node_init(&client->node, &options->node, agent, options->user_agent_version) != 0)
    return UV_ENOMEM;
  snprintf(client->user_agent_header, header_len, "%s%s%s", agent,
           options->user_agent_version ? "/" : "",
           options->user_agent_version ? options->user_agent_version : "");
  SSL_CTX_up_ref(options->ssl_ctx);
  client->channel_options = (ms_grpc_channel_options){
      .address = client->address,
      .ssl_ctx = options->ssl_ctx,
      .server_name = client->server_name,
      .max_message_bytes = options->max_message_bytes,
      .keepalive_interval_ms = options->keepalive_interval_ms,
      .keepalive_timeout_ms = options->keepalive_timeout_ms,
      .connect_timeout_ms = options->connect_timeout_ms,
      .user_agent = client->user_agent_header,
  };
  client->initial_backoff_ms =
      options->initial_backoff_ms ? options->initial_backoff_ms : DEFAULT_INITIAL_BACKOFF_MS;
  client->max_backoff_ms =
      options->max_backoff_ms ? options->max_backoff_ms : DEFAULT_MAX_BACKOFF_MS;
  if (client->max_backoff_ms < client->initial_backoff_ms)
    client->max_backoff_ms = client->initial_backoff_ms;
  return 0;
}

int ms_ads_client_new(uv_loop_t *loop, const ms_ads_client_options *options,
                      const ms_ads_client_callbacks *callbacks, void *arg,
                      ms_ads_client **out_client) {
  if (options == NULL || options->address == NULL || options->ssl_ctx == NULL ||
      callbacks == NULL || callbacks->on_response == NULL)
    return UV_EINVAL;
  ms_ads_client *client = calloc(1, sizeof(*client));
  if (client == NULL) return UV_ENOMEM;
  client->loop = loop;
  client->callbacks = *callbacks;
  client->arg = arg;
  int rc = configure(client, options);
  if (rc != 0) {
    client_free(client);
    return rc;
  }
  /* Before the first stream: a token that cannot be read fails it through
   * the timer. */
  uv_timer_init(loop, &client->timer);
  client->timer.data = client;
  rc = open_stream(client); /* no types yet: nothing to send */
  if (rc != 0) {
    uv_close((uv_handle_t *)&client->timer, on_timer_closed);
    return rc;
  }
  *out_client = client;
  return 0;
}

void ms_ads_client_set_ssl_ctx(ms_ads_client *client, SSL_CTX *ssl_ctx) {
  if (client == NULL || ssl_ctx == NULL) return;
  SSL_CTX_up_ref(ssl_ctx);
  SSL_CTX_free(client->channel_options.ssl_ctx);
  client->channel_options.ssl_ctx = ssl_ctx; /* the channel under way holds its own */
}

int ms_ads_client_subscribe(ms_ads_client *client, const char *type_url, const char *const *names,
                            size_t count) {
  if (type_url == NULL || type_url[0] == '\0' || (count > 0 && names == NULL)) return UV_EINVAL;
  ms_ads_type *type = find_type(client, type_url);
  bool added = false;
  if (type == NULL) {
    ms_ads_type **grown = realloc(client->types, (client->type_count + 1) * sizeof(*grown));
    if (grown == NULL) return UV_ENOMEM;
    client->types = grown;
    if ((type = ms_ads_type_new(type_url)) == NULL) return UV_ENOMEM;
    added = true;
  }
  bool changed = false;
  if (ms_ads_type_set_names(type, names, count, &changed) != 0) {
    if (added) ms_ads_type_free(type);
    return UV_ENOMEM;
  }
  if (added) client->types[client->type_count++] = type;
  /* Inside on_response for this type, its ACK or NACK carries the names. */
  if (changed && client->state != MS_ADS_CLIENT_BACKOFF && client->state != MS_ADS_CLIENT_CLOSED &&
      client->in_callback_type != type && ms_ads_type_needs_request(type))
    send_request(client, type, NULL);
  return 0;
}

void ms_ads_client_get_status(const ms_ads_client *client, ms_ads_client_status *out) {
  *out = (ms_ads_client_status){
      .state = client->state,
      .failures = client->failures,
      .retry_delay_ms = client->state == MS_ADS_CLIENT_BACKOFF ? client->retry_delay_ms : 0,
      .streams = client->streams,
      .responses = client->responses,
      .last_disconnect = client->last_disconnect,
  };
}

int ms_ads_client_type_status(const ms_ads_client *client, const char *type_url,
                              ms_ads_type_status *out) {
  const ms_ads_type *type = find_type(client, type_url);
  if (type == NULL) return UV_ENOENT;
  *out = (ms_ads_type_status){
      .type_url = type->type_url,
      .subscribed = type->subscribed,
      .wildcard = type->subscribed && type->name_count == 0,
      .names = (const char *const *)type->names,
      .name_count = type->name_count,
      .version_info = type->version_info,
      .nonce = type->nonce,
      .nack_message = type->nack_message,
      .nack_version = type->nack_version,
      .acks = type->acks,
      .nacks = type->nacks,
  };
  return 0;
}

void ms_ads_client_close(ms_ads_client *client) {
  if (client == NULL || client->state == MS_ADS_CLIENT_CLOSED) return;
  client->state = MS_ADS_CLIENT_CLOSED;
  client->call = NULL;
  ms_grpc_channel_close(client->channel); /* on_call_close returns early */
  client->channel = NULL;
  uv_close((uv_handle_t *)&client->timer, on_timer_closed);
}
