/* server_node.c: the nodes xds-server knows, by node.id: the SPIFFE ID each
 * one gets, its certificate (the Secret "default", issued when first asked
 * for, the key made here and kept only in memory), and its rotation at
 * 50-70% of the lifetime, pushed to every stream of the node that subscribed
 * to the Secret. A node lives while it has streams. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "certs/certs.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "sidecar/log.h"
#include "xds/server_internal.h"

#define RETRY_AFTER_FAILURE_MS 10000

/* ---- identity ------------------------------------------------------------------ */

/* spiffe_segment_ok: a SPIFFE path segment of letters, digits, '.', '-', '_'
 * (not "." or ".."). */
static bool spiffe_segment_ok(const char *text, size_t len) {
  if (len == 0 || len > 253) return false;
  if ((len == 1 && text[0] == '.') || (len == 2 && text[0] == '.' && text[1] == '.')) return false;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '-' || c == '_'))
      return false;
  }
  return true;
}

int xds_node_spiffe_id(const char *trust_domain, const char *node_id,
                       const char *metadata_namespace, const char *metadata_service_account,
                       char *out, size_t out_len, char *err, size_t err_len) {
  if (node_id == NULL || node_id[0] == '\0') {
    snprintf(err, err_len, "the first request of a stream must carry node.id");
    return -1;
  }
  /* From node.id: "SERVICE_ACCOUNT.NAMESPACE", or Istio's
   * "sidecar~IP~POD.NAMESPACE~DOMAIN" (namespace only), or a bare name (the
   * service account, in namespace "default"). */
  const char *sa = node_id, *ns = "default";
  size_t sa_len = strlen(node_id), ns_len = strlen(ns);
  const char *tilde = strchr(node_id, '~');
  if (tilde != NULL) {
    const char *third = strchr(tilde + 1, '~');
    const char *dot = third != NULL ? strchr(third + 1, '.') : NULL;
    sa = "default";
    sa_len = strlen(sa);
    if (dot != NULL) {
      ns = dot + 1;
      ns_len = strcspn(ns, ".~");
    }
  } else {
    const char *dot = strchr(node_id, '.');
    if (dot != NULL) {
      sa_len = (size_t)(dot - node_id);
      ns = dot + 1;
      ns_len = strlen(ns);
    }
  }
  if (metadata_namespace != NULL && metadata_namespace[0] != '\0') {
    ns = metadata_namespace;
    ns_len = strlen(ns);
  }
  if (metadata_service_account != NULL && metadata_service_account[0] != '\0') {
    sa = metadata_service_account;
    sa_len = strlen(sa);
  }
  if (!spiffe_segment_ok(trust_domain, strlen(trust_domain))) {
    snprintf(err, err_len, "the trust domain \"%s\" is not a valid SPIFFE trust domain",
             trust_domain);
    return -1;
  }
  if (!spiffe_segment_ok(ns, ns_len) || !spiffe_segment_ok(sa, sa_len)) {
    snprintf(err, err_len,
             "node \"%s\": namespace \"%.*s\" and service account \"%.*s\" must be non-empty "
             "and made of letters, digits, '.', '-' and '_' to form a SPIFFE ID (set node.id to "
             "SERVICE_ACCOUNT.NAMESPACE or the node metadata NAMESPACE and SERVICE_ACCOUNT)",
             node_id, (int)(ns_len > 64 ? 64 : ns_len), ns, (int)(sa_len > 64 ? 64 : sa_len), sa);
    return -1;
  }
  int n = snprintf(out, out_len, "spiffe://%s/ns/%.*s/sa/%.*s", trust_domain, (int)ns_len, ns,
                   (int)sa_len, sa);
  if (n < 0 || (size_t)n >= out_len) {
    snprintf(err, err_len, "node \"%s\": the SPIFFE ID would be too long", node_id);
    return -1;
  }
  return 0;
}

/* ---- the table --------------------------------------------------------------------- */

static size_t hash_id(const char *id, size_t size) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (const unsigned char *c = (const unsigned char *)id; *c != '\0'; c++) {
    h ^= *c;
    h *= 1099511628211ULL;
  }
  return (size_t)(h % size);
}

static void on_node_timer_closed(uv_handle_t *handle) {
  xds_node *node = handle->data;
  xds_resource_cleanup(&node->certificate);
  free(node->id);
  free(node->log_id);
  free(node->spiffe_id);
  free(node);
}

xds_node *xds_node_acquire(ms_xds_server *server, const char *id, const char *spiffe_id,
                           xds_stream *stream) {
  size_t bucket = hash_id(id, server->node_table_size);
  xds_node *node = server->node_table[bucket];
  while (node != NULL && strcmp(node->id, id) != 0)
    node = node->hash_next;
  if (node == NULL) {
    node = calloc(1, sizeof(*node));
    if (node == NULL) return NULL;
    char escaped[MS_LOG_ESCAPED_LEN];
    node->id = strdup(id);
    node->log_id = strdup(ms_log_escape(id, MS_LOG_ESCAPE_MAX, escaped, sizeof(escaped)));
    node->spiffe_id = strdup(spiffe_id);
    if (node->id == NULL || node->log_id == NULL || node->spiffe_id == NULL) {
      free(node->id);
      free(node->log_id);
      free(node->spiffe_id);
      free(node);
      return NULL;
    }
    node->server = server;
    uv_timer_init(server->loop, &node->rotate_timer);
    node->rotate_timer.data = node;
    node->hash_next = server->node_table[bucket];
    server->node_table[bucket] = node;
    server->node_count++;
  } else if (strcmp(node->spiffe_id, spiffe_id) != 0) {
    /* The same node.id with other metadata: the identity of its first stream
     * stands while it has streams. */
    ms_log(MS_LOG_WARN, "node %s: a new stream asks for %s, keeping %s", node->log_id, spiffe_id,
           node->spiffe_id);
  }
  stream->node_next = node->streams;
  node->streams = stream;
  node->stream_count++;
  return node;
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
  xds_node **link = &server->node_table[hash_id(node->id, server->node_table_size)];
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
