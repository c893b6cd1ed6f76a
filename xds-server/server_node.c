/* server_node.c: the nodes xds-server knows, by node.id, each bound to the
 * identity its first stream proved (server_auth.c): its certificate (the Secret "default", issued
 * when first asked for, the key made here and kept only in memory), and its rotation at 50-70% of
 * the lifetime, pushed to every stream of the node that subscribed to the Secret. A node lives
 * while it has streams. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "certs/certs.h"
#include "common/log.h"
#include "common/time.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "xds-server/server_internal.h"

#define RETRY_AFTER_FAILURE_MS 10000

/* ---- the table --------------------------------------------------------------------- */

static void on_node_timer_closed(uv_handle_t *handle) {
  xds_node *node = handle->data;
  xds_resource_cleanup(&node->certificate);
  free(node->id);
  free(node->log_id);
  free(node->spiffe_id);
  free(node);
}

int xds_node_acquire(ms_xds_server *server, const char *id, const char *spiffe_id,
                     xds_stream *stream, xds_node **out_node, char *err, size_t err_len) {
  size_t bucket = xds_hash_string(id, server->node_table_size);
  xds_node *node = server->node_table[bucket];
  while (node != NULL && strcmp(node->id, id) != 0)
    node = node->hash_next;
  if (node != NULL && strcmp(node->spiffe_id, spiffe_id) != 0) {
    /* Another identity's node: its certificate and streams are not ours. */
    snprintf(err, err_len, "node id in use by another identity (%s); the caller proved %s",
             node->spiffe_id, spiffe_id);
    return -1;
  }
  if (node == NULL) {
    node = calloc(1, sizeof(*node));
    if (node == NULL) return -2;
    char escaped[MS_LOG_ESCAPED_LEN];
    node->id = strdup(id);
    node->log_id = strdup(ms_log_escape(id, MS_LOG_ESCAPE_MAX, escaped, sizeof(escaped)));
    node->spiffe_id = strdup(spiffe_id);
    if (node->id == NULL || node->log_id == NULL || node->spiffe_id == NULL) {
      free(node->id);
      free(node->log_id);
      free(node->spiffe_id);
      free(node);
      return -2;
    }
    node->server = server;
    uv_timer_init(server->loop, &node->rotate_timer);
    node->rotate_timer.data = node;
    node->hash_next = server->node_table[bucket];
    server->node_table[bucket] = node;
    server->node_count++;
  }
  stream->node_next = node->streams;
  node->streams = stream;
  node->stream_count++;
  *out_node = node;
  return 0;
}

void xds_node_release(xds_node *node, xds_stream *stream) {
  for (xds_stream **link = &node->streams; *link != NULL; link = &(*link)->node_next) {
    if (*link == stream) {
      *link = stream->node_next;
      node->stream_count--;
      break;
    }
  }
  if (node->stream_count > 0) return;
  ms_xds_server *server = node->server;
  xds_node **link = &server->node_table[xds_hash_string(node->id, server->node_table_size)];
  while (*link != node)
    link = &(*link)->hash_next;
  *link = node->hash_next;
  server->node_count--;
  node->closing = true;
  uv_close((uv_handle_t *)&node->rotate_timer, on_node_timer_closed);
}

/* ---- certificates ------------------------------------------------------------------ */

static void on_rotate(uv_timer_t *timer);

/* secret_new packs the "default" Secret: the chain and the key as inline
 * PEM. The key's PEM is wiped from memory once packed. */
static int secret_new(xds_resource *out, const char *chain_pem, EVP_PKEY *key) {
  BIO *bio = BIO_new(BIO_s_mem());
  const uint8_t *key_pem = NULL;
  size_t key_len = 0;
  if (bio == NULL || !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) ||
      !BIO_mem_contents(bio, &key_pem, &key_len)) {
    BIO_free(bio);
    return -1;
  }
  Envoy__Config__Core__V3__DataSource chain = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  chain.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
  chain.inline_bytes.data = (uint8_t *)chain_pem;
  chain.inline_bytes.len = strlen(chain_pem);
  Envoy__Config__Core__V3__DataSource private_key = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  private_key.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
  private_key.inline_bytes.data = (uint8_t *)key_pem;
  private_key.inline_bytes.len = key_len;
  Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate tls =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
  tls.certificate_chain = &chain;
  tls.private_key = &private_key;
  Envoy__Extensions__TransportSockets__Tls__V3__Secret secret =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
  secret.name = MS_XDS_SECRET_CERTIFICATE;
  secret.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE;
  secret.tls_certificate = &tls;
  out->secret = true;
  int rc = xds_resource_init(out, MS_XDS_SECRET_CERTIFICATE, &secret);
  out->secret = true;
  OPENSSL_cleanse((void *)key_pem, key_len);
  BIO_free(bio);
  return rc;
}

/* issue makes a new certificate for the node and schedules its rotation.
 * Returns 0, or -1 (logged, retried later). */
static int issue(xds_node *node) {
  ms_xds_server *server = node->server;
  X509 *cert = NULL;
  EVP_PKEY *key = NULL;
  char *chain = NULL;
  char err[MS_ERR_LEN];
  xds_resource secret;
  if (xds_ca_issue(&server->ca, node->spiffe_id, server->cert_ttl_seconds, &cert, &key, &chain, err,
                   sizeof(err)) != 0 ||
      (secret_new(&secret, chain, key) != 0 && snprintf(err, sizeof(err), "out of memory") > 0)) {
    X509_free(cert);
    EVP_PKEY_free(key);
    free(chain);
    snprintf(node->last_error, sizeof(node->last_error), "%s", err);
    ms_log(MS_LOG_ERROR, "node %s: cannot issue a certificate for %s: %s", node->log_id,
           node->spiffe_id, err);
    uv_timer_start(&node->rotate_timer, on_rotate, RETRY_AFTER_FAILURE_MS, 0);
    return -1;
  }
  ms_cert_info info;
  bool have_info = ms_cert_info_init(&info, cert) == 0;
  bool rotated = node->has_certificate;
  xds_resource_cleanup(&node->certificate);
  node->certificate = secret;
  node->has_certificate = true;
  node->last_error[0] = '\0';
  node->issued_count++;
  node->issued_at = (int64_t)time(NULL);
  node->not_after = have_info ? info.not_after : node->issued_at + server->cert_ttl_seconds;
  snprintf(node->serial_hex, sizeof(node->serial_hex), "%s", have_info ? info.serial_hex : "?");
  snprintf(node->issuer, sizeof(node->issuer), "%s", have_info ? info.issuer : "?");
  if (have_info) ms_cert_info_cleanup(&info);
  X509_free(cert);
  EVP_PKEY_free(key);
  free(chain);

  /* Rotate at 50-70% of the lifetime, jittered per node and issuance. */
  uint32_t random = 0;
  RAND_bytes((uint8_t *)&random, sizeof(random));
  int64_t lifetime_ms = (node->not_after - node->issued_at) * 1000;
  if (lifetime_ms < 1000) lifetime_ms = 1000;
  int64_t delay_ms =
      lifetime_ms / 2 + (int64_t)((double)lifetime_ms * 0.2 * (random / 4294967296.0));
  node->rotates_at = node->issued_at + delay_ms / 1000;
  uv_timer_start(&node->rotate_timer, on_rotate, (uint64_t)delay_ms, 0);

  char expiry[32];
  ms_time_rfc3339(node->not_after, expiry, sizeof(expiry));
  ms_log(MS_LOG_INFO, "node %s: certificate %s for %s (serial %s, expires %s, rotates in %.1fs)",
         node->log_id, rotated ? "rotated" : "issued", node->spiffe_id, node->serial_hex, expiry,
         (double)delay_ms / 1000.0);
  return 0;
}

static void on_rotate(uv_timer_t *timer) {
  xds_node *node = timer->data;
  if (node->closing || issue(node) != 0) return;
  for (xds_stream *stream = node->streams; stream != NULL; stream = stream->node_next)
    if (xds_type_state_wants(&stream->types[XDS_TYPE_SDS], MS_XDS_SECRET_CERTIFICATE))
      xds_stream_push(stream, XDS_TYPE_SDS);
}

const xds_resource *xds_node_certificate(xds_node *node) {
  if (!node->has_certificate && issue(node) != 0) return NULL;
  return &node->certificate;
}

void xds_node_status(const xds_node *node, void *cjson_object) {
  cJSON *out = cjson_object;
  cJSON_AddStringToObject(out, "spiffe_id", node->spiffe_id);
  if (!node->has_certificate && node->last_error[0] == '\0') return;
  cJSON *cert = cJSON_AddObjectToObject(out, "certificate");
  if (node->has_certificate) {
    char when[32];
    cJSON_AddStringToObject(cert, "serial_number", node->serial_hex);
    cJSON_AddStringToObject(cert, "issuer", node->issuer);
    ms_time_rfc3339(node->issued_at, when, sizeof(when));
    cJSON_AddStringToObject(cert, "issued_at", when);
    ms_time_rfc3339(node->not_after, when, sizeof(when));
    cJSON_AddStringToObject(cert, "expiration_time", when);
    ms_time_rfc3339(node->rotates_at, when, sizeof(when));
    cJSON_AddStringToObject(cert, "rotates_at", when);
    cJSON_AddNumberToObject(cert, "issued_count", (double)node->issued_count);
  }
  if (node->last_error[0] != '\0') cJSON_AddStringToObject(cert, "last_error", node->last_error);
}
