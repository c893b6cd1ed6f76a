/* server_ads.c: one ADS stream of xds-server (state of the world). The first
 * DiscoveryRequest names the node, which gives the stream its identity (and
 * its certificate, server_node.c). Each request goes through the per-type
 * state machine (server_state.h); a response goes out when the machine says
 * so, or when what the subscription covers changed (xds_stream_push). A
 * CDS, EDS or LDS response carries its file set's version; an SDS response a
 * digest of what it holds. A response with the version and content of the
 * last one is never sent again. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/mem.h>

#include "common/log.h"
#include "common/time.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "xds-server/server_internal.h"
#include "xds/proto/pb_depth.h"

#define CONTROL_PLANE_ID "mtls-sidecar xds-server"

static void stream_free(xds_stream *stream, const char *why) {
  ms_xds_server *server = stream->server;
  if (stream->prev != NULL)
    stream->prev->next = stream->next;
  else
    server->streams = stream->next;
  if (stream->next != NULL) stream->next->prev = stream->prev;
  server->stream_count--;
  double seconds = (double)(xds_now_ms() - stream->connected_at_ms) / 1000.0;
  if (stream->node != NULL) {
    ms_log(MS_LOG_INFO,
           "ads: node %s disconnected from %s (%s, after %.1fs, %" PRIu64 " response%s)",
           stream->node->log_id, stream->peer_address, why, seconds, stream->responses,
           ms_plural(stream->responses));
    xds_node_release(stream->node, stream);
  } else {
    ms_log(MS_LOG_INFO, "ads: stream from %s closed before naming its node (%s)",
           stream->peer_address, why);
  }
  for (int i = 0; i < XDS_TYPE_COUNT; i++)
    xds_type_state_cleanup(&stream->types[i]);
  free(stream->node_cluster);
  free(stream);
}

xds_stream *xds_stream_new(ms_xds_server *server, ms_grpc_server_call *call,
                           const ms_grpc_peer *peer, const xds_identity *identity) {
  xds_stream *stream = calloc(1, sizeof(*stream));
  if (stream == NULL) return NULL;
  stream->server = server;
  stream->identity = *identity;
  stream->call = call;
  stream->connected_at_ms = xds_now_ms();
  snprintf(stream->peer_address, sizeof(stream->peer_address), "%s", peer->address);
  for (size_t i = 0; i < peer->certificate_info.san_count; i++) {
    if (strncmp(peer->certificate_info.sans[i], "URI:", 4) == 0) {
      snprintf(stream->bootstrap_spiffe_id, sizeof(stream->bootstrap_spiffe_id), "%s",
               peer->certificate_info.sans[i] + 4);
      break;
    }
  }
  stream->next = server->streams;
  if (server->streams != NULL) server->streams->prev = stream;
  server->streams = stream;
  server->stream_count++;
  return stream;
}

/* ---- responses ----------------------------------------------------------------- */

/* gather lists what the stream's subscription to `type` covers, into
 * `out` (capacity `max`); returns the count, or SIZE_MAX when more than
 * `max` would be needed. */
static size_t gather(xds_stream *stream, xds_type type, const xds_resource **out, size_t max) {
  ms_xds_server *server = stream->server;
  const xds_type_state *state = &stream->types[type];
  size_t count = 0;
  if (type == XDS_TYPE_SDS) {
    static const char *const secrets[] = {MS_XDS_SECRET_CERTIFICATE, MS_XDS_SECRET_TRUST_BUNDLE};
    for (int i = 0; i < 2; i++) {
      if (!xds_type_state_wants(state, secrets[i])) continue;
      /* Keys are made by the sidecars unless the operator says otherwise. */
      if (i == 0 && !server->options.serve_workload_keys) continue;
      const xds_resource *resource =
          i == 0 ? xds_node_certificate(stream->node) : &server->ca.bundle;
      if (resource != NULL && count < max) out[count++] = resource;
    }
    return count;
  }
  if (!server->has_files) return 0;
  const xds_resource_set *set = &server->files.sets[type];
  if (state->wildcard) {
    if (set->count > max) return SIZE_MAX;
    for (size_t i = 0; i < set->count; i++)
      out[count++] = &set->items[i];
    return count;
  }
  for (size_t i = 0; i < state->name_count; i++) {
    const xds_resource *resource = xds_resource_set_find(set, state->names[i]);
    if (resource == NULL) continue;
    if (count == max) return SIZE_MAX;
    out[count++] = resource;
  }
  return count;
}

/* digest_of: what a response holds, to tell whether it changed. */
static uint64_t digest_of(const xds_resource *const *resources, size_t count) {
  xds_digest digest;
  xds_digest_init(&digest);
  for (size_t i = 0; i < count; i++)
    xds_digest_add(&digest, resources[i]);
  return xds_digest_final(&digest);
}

/* respond sends the stream's `type` response if `force`, or if its version
 * or its content changed since the last one. A CDS, EDS or LDS response's
 * version is its file set's (every node that runs a version of the set ACKs
 * the string the log and /status show); an SDS response's, which holds the
 * node's own certificate, is the digest of what it holds. */
static void respond(xds_stream *stream, xds_type type, bool force) {
  xds_type_state *state = &stream->types[type];
  if (stream->node == NULL || !state->subscribed) return;
  size_t max = type == XDS_TYPE_SDS ? 2 : 64;
  const xds_resource *stack[64];
  const xds_resource **resources = stack;
  size_t count;
  while ((count = gather(stream, type, resources, max)) == SIZE_MAX) {
    if (resources != stack) free(resources);
    max *= 4;
    if ((resources = malloc(max * sizeof(*resources))) == NULL) {
      ms_log(MS_LOG_ERROR, "ads: out of memory answering node %s", stream->node->log_id);
      return;
    }
  }
  uint64_t digest = digest_of(resources, count);
  char version[XDS_VERSION_LEN], nonce[XDS_NONCE_LEN];
  if (type == XDS_TYPE_SDS)
    snprintf(version, sizeof(version), "%016" PRIx64, digest);
  else
    snprintf(version, sizeof(version), "%s", stream->server->files.sets[type].version);
  if (!force && state->sent && digest == state->sent_digest &&
      strcmp(version, state->sent_version) == 0)
    goto done;

  Google__Protobuf__Any *anys = calloc(count + 1, sizeof(*anys));
  Google__Protobuf__Any **any_list = calloc(count + 1, sizeof(*any_list));
  uint8_t *bytes = NULL;
  if (anys == NULL || any_list == NULL) goto oom;
  for (size_t i = 0; i < count; i++) {
    google__protobuf__any__init(&anys[i]);
    anys[i].type_url = (char *)xds_type_url(type);
    anys[i].value.data = resources[i]->bytes;
    anys[i].value.len = resources[i]->len;
    any_list[i] = &anys[i];
  }
  snprintf(nonce, sizeof(nonce), "%" PRIu64, ++stream->nonce_counter);
  Envoy__Config__Core__V3__ControlPlane control_plane =
      ENVOY__CONFIG__CORE__V3__CONTROL_PLANE__INIT;
  control_plane.identifier = CONTROL_PLANE_ID;
  Envoy__Service__Discovery__V3__DiscoveryResponse response =
      ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
  response.version_info = version;
  response.type_url = (char *)xds_type_url(type);
  response.nonce = nonce;
  response.n_resources = count;
  response.resources = any_list;
  response.control_plane = &control_plane;
  size_t len = envoy__service__discovery__v3__discovery_response__get_packed_size(&response);
  if ((bytes = malloc(len)) == NULL) goto oom;
  envoy__service__discovery__v3__discovery_response__pack(&response, bytes);
  int rc = ms_grpc_server_call_send(stream->call, bytes, len);
  /* The key's bytes were in there for a certificate. */
  if (type == XDS_TYPE_SDS) OPENSSL_cleanse(bytes, len);
  if (rc != 0) {
    ms_log(MS_LOG_WARN, "ads: node %s: cannot send %s: %s", stream->node->log_id,
           xds_type_name(type), uv_strerror(rc));
  } else {
    xds_type_state_on_sent(state, version, nonce, digest, xds_now_ms());
    stream->responses++;
    ms_log(MS_LOG_DEBUG, "ads: node %s: sent %s version %s (%zu resource%s, nonce %s)",
           stream->node->log_id, xds_type_name(type), version, count, ms_plural(count), nonce);
  }
  goto cleanup;
oom:
  ms_log(MS_LOG_ERROR, "ads: out of memory answering node %s", stream->node->log_id);
cleanup:
  free(bytes);
  free(anys);
  free(any_list);
done:
  if (resources != stack) free(resources);
}

void xds_stream_push(xds_stream *stream, xds_type type) {
  respond(stream, type, false);
}

/* ---- requests ------------------------------------------------------------------- */

/* metadata_string returns node.metadata[key] when it is a string. */
static const char *metadata_string(const Envoy__Config__Core__V3__Node *node, const char *key) {
  if (node->metadata == NULL) return NULL;
  for (size_t i = 0; i < node->metadata->n_fields; i++) {
    const Google__Protobuf__Struct__FieldsEntry *entry = node->metadata->fields[i];
    if (strcmp(entry->key, key) == 0 && entry->value != NULL &&
        entry->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
      return entry->value->string_value;
  }
  return NULL;
}

/* identify attaches the stream to its node from the first request: what
 * the node claims must agree with what the caller proved. Returns 0, or -1
 * having finished the call. */
static int identify(xds_stream *stream,
                    const Envoy__Service__Discovery__V3__DiscoveryRequest *req) {
  ms_xds_server *server = stream->server;
  const char *id = req->node != NULL ? req->node->id : NULL;
  char err[MS_ERR_LEN];
  xds_node_claims claims;
  if (xds_node_claims_parse(
          id, req->node != NULL ? metadata_string(req->node, "NAMESPACE") : NULL,
          req->node != NULL ? metadata_string(req->node, "SERVICE_ACCOUNT") : NULL, &claims, err,
          sizeof(err)) != 0) {
    char escaped[MS_LOG_ESCAPED_LEN];
    ms_log(MS_LOG_WARN, "ads: refusing the stream from %s: %s", stream->peer_address,
           ms_log_escape(err, MS_LOG_ESCAPE_MAX * 2, escaped, sizeof(escaped)));
    ms_grpc_server_call_finish(stream->call, MS_GRPC_INVALID_ARGUMENT, err);
    return -1;
  }
  const char *spiffe_id = stream->identity.spiffe_id;
  int rc = xds_node_claims_check(&claims, &stream->identity, err, sizeof(err));
  if (rc == 0 && (stream->node_cluster = strdup(req->node->cluster)) == NULL) rc = -2;
  if (rc == 0)
    rc = xds_node_acquire(server, id, spiffe_id, stream, &stream->node, err, sizeof(err));
  if (rc == -2) {
    ms_grpc_server_call_finish(stream->call, MS_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return -1;
  }
  if (rc != 0) {
    char escaped_id[MS_LOG_ESCAPED_LEN];
    ms_log_escape(id, MS_LOG_ESCAPE_MAX, escaped_id, sizeof(escaped_id));
    ms_log(MS_LOG_WARN, "ads: refusing node %s from %s: %s", escaped_id, stream->peer_address, err);
    char message[sizeof("node : ") + 64 + MS_ERR_LEN]; /* room for all of err */
    snprintf(message, sizeof(message), "node %.64s: %s", id, err);
    ms_grpc_server_call_finish(stream->call, MS_GRPC_PERMISSION_DENIED, message);
    return -1;
  }
  char cluster[MS_LOG_ESCAPED_LEN];
  ms_log(MS_LOG_INFO, "ads: node %s (cluster \"%s\") connected from %s as %s (proved by %s)",
         stream->node->log_id,
         ms_log_escape(stream->node_cluster, MS_LOG_ESCAPE_MAX, cluster, sizeof(cluster)),
         stream->peer_address, spiffe_id, xds_proof_name(stream->identity.proof));
  return 0;
}

static void on_message(ms_grpc_server_call *call, const uint8_t *bytes, size_t len,
                       void *user_data) {
  xds_stream *stream = user_data;
  /* Behind the nesting guard: node.metadata is a Struct, which nests
   * without end, and protobuf-c recurses once per level. */
  char err[200];
  Envoy__Service__Discovery__V3__DiscoveryRequest *req = (void *)ms_pb_unpack_guarded(
      &envoy__service__discovery__v3__discovery_request__descriptor, bytes, len, err, sizeof(err));
  if (req == NULL) {
    ms_log(MS_LOG_WARN, "ads: %s sent a message that is not a DiscoveryRequest we accept: %s",
           stream->peer_address, err);
    stream->server->requests_refused++;
    ms_grpc_server_call_finish(call, MS_GRPC_INVALID_ARGUMENT, err);
    stream_free(stream, "bad request");
    return;
  }
  stream->requests++;
  if (stream->node == NULL && identify(stream, req) != 0) {
    envoy__service__discovery__v3__discovery_request__free_unpacked(req, NULL);
    stream_free(stream, "refused");
    return;
  }
  xds_type type;
  if (xds_type_from_url(req->type_url, &type) != 0) {
    char type_url[MS_LOG_ESCAPED_LEN];
    ms_log(MS_LOG_WARN, "ads: node %s asked for type %s, which is not served: ignored",
           stream->node->log_id,
           ms_log_escape(req->type_url, MS_LOG_ESCAPE_MAX, type_url, sizeof(type_url)));
    envoy__service__discovery__v3__discovery_request__free_unpacked(req, NULL);
    return;
  }
  xds_request request = {
      .version_info = req->version_info,
      .response_nonce = req->response_nonce,
      .names = (const char *const *)req->resource_names,
      .name_count = req->n_resource_names,
      .has_error = req->error_detail != NULL,
      .error_code = req->error_detail != NULL ? req->error_detail->code : 0,
      .error_message = req->error_detail != NULL ? req->error_detail->message : NULL,
  };
  xds_request_kind kind;
  bool must_respond = false;
  if (xds_type_state_on_request(&stream->types[type], type, &request, xds_now_ms(), &kind,
                                &must_respond) != 0)
    ms_log(MS_LOG_ERROR, "ads: out of memory on a request of node %s", stream->node->log_id);
  /* The client's strings, escaped for the log line. */
  const char *name = xds_type_name(type);
  const char *id = stream->node->log_id;
  char version[MS_LOG_ESCAPED_LEN], detail[MS_LOG_ESCAPED_LEN * 2];
  switch (kind) {
    case XDS_REQUEST_INITIAL:
      ms_log(MS_LOG_DEBUG, "ads: node %s subscribed to %s (%zu name%s)", id, name,
             req->n_resource_names, ms_plural(req->n_resource_names));
      break;
    case XDS_REQUEST_ACK:
      ms_log(MS_LOG_INFO, "ads: node %s ACK %s version %s", id, name,
             ms_log_escape(req->version_info, MS_LOG_ESCAPE_MAX, version, sizeof(version)));
      break;
    case XDS_REQUEST_NACK:
      ms_log(MS_LOG_WARN, "ads: node %s NACK %s version %s (keeps %s): %s", id, name,
             stream->types[type].nacked_version,
             req->version_info[0] != '\0'
                 ? ms_log_escape(req->version_info, MS_LOG_ESCAPE_MAX, version, sizeof(version))
                 : "nothing",
             ms_log_escape(request.error_message, MS_LOG_ESCAPE_MAX * 2, detail, sizeof(detail)));
      break;
    case XDS_REQUEST_STALE:
      ms_log(MS_LOG_DEBUG, "ads: node %s: stale %s request (nonce %s) ignored", id, name,
             ms_log_escape(req->response_nonce, MS_LOG_ESCAPE_MAX, version, sizeof(version)));
      break;
  }
  envoy__service__discovery__v3__discovery_request__free_unpacked(req, NULL);
  /* An initial request is always answered; new names only when the content
   * differs. */
  if (must_respond) respond(stream, type, kind == XDS_REQUEST_INITIAL);
}

static void on_half_close(ms_grpc_server_call *call, void *user_data) {
  ms_grpc_server_call_finish(call, MS_GRPC_OK, NULL);
  stream_free(user_data, "the client ended the stream");
}

static void on_cancel(ms_grpc_server_call *call, void *user_data) {
  xds_stream *stream = user_data;
  stream_free(stream,
              stream->server->closing ? "server shutting down" : "connection lost or cancelled");
}

const ms_grpc_server_call_callbacks xds_stream_callbacks = {
    .on_message = on_message,
    .on_half_close = on_half_close,
    .on_cancel = on_cancel,
};

/* ---- status ---------------------------------------------------------------------- */

static void add_time(cJSON *object, const char *key, int64_t ms) {
  char when[32];
  ms_time_rfc3339(ms / 1000, when, sizeof(when));
  cJSON_AddStringToObject(object, key, when);
}

void xds_stream_status(const xds_stream *stream, void *cjson_object) {
  cJSON *out = cjson_object;
  cJSON_AddStringToObject(out, "id", stream->node != NULL ? stream->node->id : "");
  cJSON_AddStringToObject(out, "cluster", stream->node_cluster != NULL ? stream->node_cluster : "");
  cJSON_AddStringToObject(out, "peer_address", stream->peer_address);
  add_time(out, "connected_since", stream->connected_at_ms);
  cJSON_AddStringToObject(out, "bootstrap_spiffe_id", stream->bootstrap_spiffe_id);
  cJSON_AddStringToObject(out, "proof", xds_proof_name(stream->identity.proof));
  if (stream->node != NULL) xds_node_status(stream->node, out);
  cJSON_AddNumberToObject(out, "requests", (double)stream->requests);
  cJSON_AddNumberToObject(out, "responses", (double)stream->responses);
  cJSON *types = cJSON_AddObjectToObject(out, "types");
  for (int i = 0; i < XDS_TYPE_COUNT; i++) {
    const xds_type_state *state = &stream->types[i];
    if (!state->subscribed) continue;
    cJSON *t = cJSON_AddObjectToObject(types, xds_type_name((xds_type)i));
    cJSON_AddStringToObject(t, "type_url", xds_type_url((xds_type)i));
    if (state->wildcard) {
      cJSON_AddStringToObject(t, "subscribed", "*");
    } else {
      cJSON *names = cJSON_AddArrayToObject(t, "subscribed");
      for (size_t n = 0; n < state->name_count; n++)
        cJSON_AddItemToArray(names, cJSON_CreateString(state->names[n]));
    }
    cJSON_AddStringToObject(t, "acked_version", state->acked_version);
    cJSON_AddStringToObject(t, "sent_version", state->sent_version);
    cJSON_AddStringToObject(t, "sent_nonce", state->sent_nonce);
    cJSON_AddBoolToObject(t, "synced",
                          state->sent && strcmp(state->acked_version, state->sent_version) == 0);
    cJSON_AddNumberToObject(t, "acks", (double)state->ack_count);
    cJSON_AddNumberToObject(t, "nacks", (double)state->nack_count);
    if (state->nack_count > 0) {
      cJSON *nack = cJSON_AddObjectToObject(t, "last_nack");
      cJSON_AddStringToObject(nack, "version", state->nacked_version);
      cJSON_AddStringToObject(nack, "message",
                              state->nack_message != NULL ? state->nack_message : "");
      cJSON_AddNumberToObject(nack, "code", state->nack_code);
      add_time(nack, "at", state->nacked_at_ms);
    }
  }
}
