/* server.c: xds-server's lifetime (server.h): options, the TLS context, the
 * gRPC server that accepts ADS calls, pushing to streams, and the helpers
 * its parts share (server_internal.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <openssl/mem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <protobuf-c/protobuf-c.h>

#include "certs/certs.h"
#include "common/log.h"
#include "xds-server/server_internal.h"
#include "xds/proto/type_urls.h"

#define NODE_TABLE_SIZE 4096

int64_t xds_now_ms(void) {
  struct timeval now;
  gettimeofday(&now, NULL);
  return (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000;
}

size_t xds_hash_string(const char *text, size_t size) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; c++) {
    h ^= *c;
    h *= 1099511628211ULL;
  }
  return (size_t)(h % size);
}

/* ---- resources ------------------------------------------------------------------- */

int xds_resource_init(xds_resource *out, const char *name, const void *message) {
  const ProtobufCMessage *pb = message;
  memset(out, 0, sizeof(*out));
  out->len = protobuf_c_message_get_packed_size(pb);
  out->bytes = malloc(out->len > 0 ? out->len : 1);
  out->name = strdup(name);
  if (out->bytes == NULL || out->name == NULL) {
    xds_resource_cleanup(out);
    return -1;
  }
  protobuf_c_message_pack(pb, out->bytes);
  SHA256(out->bytes, out->len, out->hash);
  return 0;
}

void xds_resource_cleanup(xds_resource *resource) {
  if (resource->secret && resource->bytes != NULL) OPENSSL_cleanse(resource->bytes, resource->len);
  free(resource->bytes);
  free(resource->name);
  memset(resource, 0, sizeof(*resource));
}

const xds_resource *xds_resource_set_find(const xds_resource_set *set, const char *name) {
  size_t low = 0, high = set->count;
  while (low < high) {
    size_t mid = low + (high - low) / 2;
    int cmp = strcmp(set->items[mid].name, name);
    if (cmp == 0) return &set->items[mid];
    if (cmp < 0)
      low = mid + 1;
    else
      high = mid;
  }
  return NULL;
}

void xds_digest_init(xds_digest *digest) {
  SHA256_Init(&digest->sha);
}

void xds_digest_add(xds_digest *digest, const xds_resource *resource) {
  SHA256_Update(&digest->sha, resource->name, strlen(resource->name) + 1);
  SHA256_Update(&digest->sha, resource->hash, sizeof(resource->hash));
}

uint64_t xds_digest_final(xds_digest *digest) {
  uint8_t hash[SHA256_DIGEST_LENGTH];
  SHA256_Final(hash, &digest->sha);
  uint64_t value = 0;
  for (int i = 0; i < 8; i++)
    value = value << 8 | hash[i];
  return value;
}

bool xds_resource_set_update_version(xds_resource_set *set) {
  xds_digest digest;
  xds_digest_init(&digest);
  for (size_t i = 0; i < set->count; i++)
    xds_digest_add(&digest, &set->items[i]);
  char version[XDS_VERSION_LEN];
  snprintf(version, sizeof(version), "%016" PRIx64, xds_digest_final(&digest));
  bool changed = strcmp(version, set->version) != 0;
  memcpy(set->version, version, sizeof(version));
  return changed;
}

/* ---- pushing --------------------------------------------------------------------- */

void xds_server_push_type(ms_xds_server *server, xds_type type) {
  size_t pushed = 0;
  for (xds_stream *stream = server->streams; stream != NULL; stream = stream->next) {
    if (!stream->types[type].subscribed) continue;
    xds_stream_push(stream, type);
    pushed++;
  }
  if (pushed > 0)
    ms_log(MS_LOG_DEBUG, "xds: %s checked on %zu stream%s", xds_type_name(type), pushed,
           ms_plural(pushed));
}

/* ---- the gRPC side --------------------------------------------------------------- */

static int on_call(ms_grpc_server_call *call, const char *method_path, const ms_grpc_peer *peer,
                   void *arg) {
  ms_xds_server *server = arg;
  if (strcmp(method_path, MS_ISTIO_CA_METHOD) == 0)
    return server->closing ? MS_GRPC_UNAVAILABLE : xds_csr_call_accept(server, call, peer);
  if (strcmp(method_path, MS_XDS_ADS_METHOD) != 0) {
    char escaped[MS_LOG_ESCAPED_LEN];
    ms_log(MS_LOG_WARN, "xds: %s called %s: unimplemented", peer->address,
           ms_log_escape(method_path, MS_LOG_ESCAPE_MAX, escaped, sizeof(escaped)));
    return MS_GRPC_UNIMPLEMENTED;
  }
  if (server->closing) return MS_GRPC_UNAVAILABLE;
  xds_identity identity;
  char err[MS_ERR_LEN];
  int status = xds_auth_identify(server, call, &identity, err, sizeof(err));
  if (status != MS_GRPC_OK) {
    ms_log(MS_LOG_WARN, "xds: refusing a stream from %s: %s", peer->address, err);
    ms_grpc_server_call_finish(call, status, err);
    return status;
  }
  xds_stream *stream = xds_stream_new(server, call, peer, &identity);
  if (stream == NULL) return MS_GRPC_RESOURCE_EXHAUSTED;
  ms_grpc_server_call_set_handler(call, &xds_stream_callbacks, stream);
  return MS_GRPC_OK;
}

static void on_connection_closed(ms_grpc_server *grpc, const ms_grpc_peer *peer, const char *reason,
                                 void *arg) {
  ms_log(MS_LOG_INFO, "xds: connection from %s closed: %s", peer->address, reason);
}

static const ms_grpc_server_callbacks grpc_callbacks = {
    .on_call = on_call,
    .on_connection_closed = on_connection_closed,
};

static char *copy_option(const char *text) {
  return text != NULL ? strdup(text) : NULL;
}

static void free_options(ms_xds_server_options *o) {
  free((char *)o->listen_address);
  free((char *)o->tls_cert);
  free((char *)o->tls_key);
  free((char *)o->client_ca);
  free((char *)o->ca_cert);
  free((char *)o->ca_key);
  free((char *)o->config_dir);
  free((char *)o->trust_domain);
  free((char *)o->status_address);
  free((char *)o->health_address);
  free((char *)o->jwks_file);
  free((char *)o->jwks_url);
  free((char *)o->jwks_ca);
  free((char *)o->jwks_token);
  free((char *)o->token_issuer);
  free((char *)o->token_audience);
  free((char *)o->webhook_address);
  free((char *)o->webhook_cert);
  free((char *)o->webhook_key);
  free((char *)o->inject_image);
  free((char *)o->inject_tag);
  free((char *)o->inject_config_map);
  free((char *)o->control_plane_namespace);
}

static void server_maybe_free(ms_xds_server *server) {
  if (!server->closing || server->open_handles > 0) return;
  if (server->has_files) xds_files_cleanup(&server->files);
  xds_ca_cleanup(&server->ca);
  if (server->has_jwks) xds_jwks_cleanup(&server->jwks);
  xds_rate_cleanup(&server->csr_rate);
  free(server->node_table);
  xds_serving_cleanup(&server->serving);
  if (server->has_webhook) xds_webhook_cleanup(&server->webhook);
  free_options(&server->options);
  free(server);
}

void xds_server_handle_closed(ms_xds_server *server) {
  server->open_handles--;
  server_maybe_free(server);
}

int ms_xds_server_new(uv_loop_t *loop, const ms_xds_server_options *options,
                      ms_xds_server **out_server, char *err, size_t err_len) {
  if (options->listen_address == NULL || options->tls_cert == NULL || options->tls_key == NULL ||
      options->ca_cert == NULL || options->ca_key == NULL) {
    snprintf(err, err_len,
             "a listen address, --tls-cert, --tls-key, --ca-cert and --ca-key are all required");
    return -1;
  }
  ms_xds_server *server = calloc(1, sizeof(*server));
  if (server == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  server->loop = loop;
  server->started_at_ms = xds_now_ms();
  ms_xds_server_options *o = &server->options;
  *o = *options;
  o->listen_address = copy_option(options->listen_address);
  o->tls_cert = copy_option(options->tls_cert);
  o->tls_key = copy_option(options->tls_key);
  o->client_ca = copy_option(options->client_ca);
  o->ca_cert = copy_option(options->ca_cert);
  o->ca_key = copy_option(options->ca_key);
  o->config_dir = copy_option(options->config_dir);
  o->trust_domain =
      copy_option(options->trust_domain != NULL ? options->trust_domain : "cluster.local");
  o->status_address = copy_option(options->status_address);
  o->health_address = copy_option(options->health_address);
  o->jwks_file = copy_option(options->jwks_file);
  o->jwks_url = copy_option(options->jwks_url);
  o->jwks_ca = copy_option(options->jwks_ca);
  o->jwks_token = copy_option(options->jwks_token);
  o->token_issuer = copy_option(options->token_issuer);
  o->token_audience =
      copy_option(options->token_audience != NULL ? options->token_audience : "mtls-sidecar");
  o->webhook_address = copy_option(options->webhook_address);
  o->webhook_cert = copy_option(options->webhook_cert);
  o->webhook_key = copy_option(options->webhook_key);
  o->inject_image = copy_option(options->inject_image);
  o->inject_tag = copy_option(options->inject_tag);
  o->inject_config_map = copy_option(options->inject_config_map);
  o->control_plane_namespace = copy_option(options->control_plane_namespace);
  if (o->token_skew_seconds <= 0) o->token_skew_seconds = 60;
  server->trust_domain = (char *)o->trust_domain;
  server->cert_ttl_seconds = options->cert_ttl_seconds > 0 ? options->cert_ttl_seconds : 3600;
  if (o->ca_overlap_seconds <= 0) o->ca_overlap_seconds = 2 * server->cert_ttl_seconds;
  if (o->debounce_ms == 0) o->debounce_ms = 100;
  if (o->client_ca == NULL && !o->accept_workload_certificates && o->jwks_file == NULL &&
      o->jwks_url == NULL) {
    snprintf(err, err_len,
             "no way for sidecars to prove who they are: give --client-ca (the CA of their "
             "bootstrap certificates), a token key set (--jwks-file or --jwks-url), or "
             "--accept-workload-certificates");
    server->closing = true;
    server_maybe_free(server);
    return -1;
  }
  server->node_table_size = NODE_TABLE_SIZE;
  server->node_table = calloc(NODE_TABLE_SIZE, sizeof(xds_node *));
  int csr_rate = o->csr_rate_limit == 0 ? XDS_CSR_DEFAULT_RATE_LIMIT : o->csr_rate_limit;
  if (server->node_table == NULL || o->listen_address == NULL || o->trust_domain == NULL ||
      o->token_audience == NULL ||
      xds_rate_init(&server->csr_rate, csr_rate > 0 ? csr_rate : 0, csr_rate,
                    XDS_CSR_MAX_TRACKED_IDENTITIES) != 0) {
    snprintf(err, err_len, "out of memory");
    server->closing = true;
    server_maybe_free(server);
    return -1;
  }

  /* The CA first: the TLS context may trust it. Then the files, then the
   * listeners. Past this point a failure closes what was started. */
  if (xds_ca_init(&server->ca, server, loop, o->ca_cert, o->ca_key, o->ca_overlap_seconds,
                  o->debounce_ms, err, err_len) != 0) {
    server->closing = true;
    server_maybe_free(server);
    return -1;
  }
  if (o->config_dir != NULL) {
    server->has_files = true;
    if (xds_files_init(&server->files, server, loop, o->config_dir, o->debounce_ms, err, err_len) !=
        0) {
      server->has_files = false;
      goto fail;
    }
  } else {
    /* Nothing from files: empty sets, with the empty set's version. */
    for (int type = 0; type < XDS_TYPE_SDS; type++)
      xds_resource_set_update_version(&server->files.sets[type]);
  }
  if (o->jwks_file != NULL || o->jwks_url != NULL) {
    if (o->token_issuer == NULL) {
      snprintf(err, err_len,
               "--token-issuer is required with --jwks-file or --jwks-url: the \"iss\" the "
               "tokens carry, like https://kubernetes.default.svc.cluster.local");
      goto fail;
    }
    server->has_jwks = true;
    if (xds_jwks_init(&server->jwks, server, loop, o, err, err_len) != 0) {
      server->has_jwks = false;
      goto fail;
    }
  }
  if (xds_serving_init(&server->serving, server, XDS_SERVING_ADS, err, err_len) != 0) goto fail;
  ms_grpc_server_options grpc_options = {
      .address = o->listen_address,
      .ssl_ctx = server->serving.ctx,
      .max_message_bytes =
          o->max_request_bytes ? o->max_request_bytes : MS_XDS_DEFAULT_MAX_REQUEST_BYTES,
      .max_concurrent_streams = o->max_streams_per_connection,
      .max_connections = o->max_connections,
      .max_connections_per_peer = o->max_connections_per_peer,
      .max_buffered_bytes = o->max_buffered_bytes,
      .max_queued_bytes = o->max_queued_bytes,
  };
  int rc = ms_grpc_server_new(loop, &grpc_options, &grpc_callbacks, server, &server->grpc);
  if (rc != 0) {
    snprintf(err, err_len, "cannot listen on %s (--listen): %s", o->listen_address,
             uv_strerror(rc));
    goto fail;
  }
  server->port = ms_grpc_server_port(server->grpc);
  if (o->status_address != NULL &&
      xds_status_start(server, o->status_address, true, &server->status, &server->status_port, err,
                       err_len) != 0)
    goto fail;
  if (o->health_address != NULL &&
      xds_status_start(server, o->health_address, false, &server->health, &server->health_port, err,
                       err_len) != 0)
    goto fail;
  if (o->webhook_address != NULL) {
    if (xds_webhook_start(&server->webhook, server, err, err_len) != 0) goto fail;
    server->has_webhook = true;
  }
  xds_serving_watch(&server->serving, loop, o->debounce_ms);
  *out_server = server;
  return 0;
fail:
  ms_xds_server_close(server);
  return -1;
}

uint16_t ms_xds_server_port(const ms_xds_server *server) {
  return server->port;
}

uint16_t ms_xds_server_status_port(const ms_xds_server *server) {
  return server->status_port;
}

uint16_t ms_xds_server_webhook_port(const ms_xds_server *server) {
  return server->has_webhook ? server->webhook.port : 0;
}

uint16_t ms_xds_server_health_port(const ms_xds_server *server) {
  return server->health_port;
}

void ms_xds_server_drain(ms_xds_server *server) {
  if (server == NULL || server->draining) return;
  server->draining = true;
}

int ms_xds_server_ready_reason(ms_xds_server *server, char *why, size_t why_len) {
  if (why_len > 0) why[0] = '\0';
  if (server->closing || server->draining) {
    snprintf(why, why_len, "draining: shutting down");
    return -1;
  }
  X509 *ca = server->ca.current.cert;
  if (X509_cmp_current_time(X509_get0_notAfter(ca)) < 0) {
    snprintf(why, why_len, "the workload CA's certificate (--ca-cert) has expired");
    return -1;
  }
  if (X509_cmp_current_time(X509_get0_notBefore(ca)) > 0) {
    snprintf(why, why_len, "the workload CA's certificate (--ca-cert) is not valid yet");
    return -1;
  }
  const char *unloaded = server->has_files ? xds_files_first_unloaded(&server->files) : NULL;
  if (unloaded != NULL) {
    snprintf(why, why_len,
             "resource file %s has never loaded (its resources are not served; see /status "
             "file_errors)",
             unloaded);
    return -1;
  }
  if (server->has_jwks && xds_jwks_current(&server->jwks) == NULL) {
    xds_jwks_why_none(&server->jwks, why, why_len);
    return -1;
  }
  return 0;
}

size_t ms_xds_server_stream_count(const ms_xds_server *server) {
  return server->stream_count;
}

void ms_xds_server_close(ms_xds_server *server) {
  if (server == NULL || server->closing) return;
  server->closing = true;
  /* Every stream's on_cancel runs in here and frees it (and its node). */
  ms_grpc_server_close(server->grpc);
  server->grpc = NULL;
  xds_status_close(server->status);
  server->status = NULL;
  xds_status_close(server->health);
  server->health = NULL;
  xds_serving_close(&server->serving);
  if (server->has_webhook) xds_webhook_close(&server->webhook);
  if (server->has_files) xds_files_close(&server->files);
  xds_ca_close(&server->ca);
  if (server->has_jwks) xds_jwks_close(&server->jwks);
  server_maybe_free(server);
}
