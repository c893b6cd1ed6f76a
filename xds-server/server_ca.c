/* server_ca.c: the workload CA of xds-server. It loads --ca-cert/--ca-key,
 * signs each node's certificate, serves the trust bundle as the Secret
 * "ROOTCA", and watches the two files: when they hold a new CA (a new
 * certificate whose key matches), the new CA signs from then on while the old
 * one stays in the bundle for the overlap period, then leaves it. A reload
 * that fails (unreadable, key and certificate not matching: perhaps the
 * second file is not written yet) keeps the CA in use and is retried at the
 * next change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"
#include "common/file.h"
#include "common/log.h"
#include "common/time.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "xds-server/server_internal.h"

static void entry_cleanup(xds_ca_entry *entry) {
  X509_free(entry->cert);
  sk_X509_pop_free(entry->chain, X509_free);
  EVP_PKEY_free(entry->key);
  memset(entry, 0, sizeof(*entry));
}

/* load_entry reads and checks the CA files into `out`. */
static int load_entry(const char *cert_path, const char *key_path, xds_ca_entry *out, char *err,
                      size_t err_len) {
  char *cert_pem = NULL, *key_pem = NULL;
  size_t cert_len = 0, key_len = 0;
  STACK_OF(X509) *chain = NULL;
  EVP_PKEY *key = NULL;
  int rc = -1;
  if (ms_file_read(cert_path, &cert_pem, &cert_len, err, err_len) != 0 ||
      ms_pem_parse_chain(cert_pem, cert_len, cert_path, &chain, err, err_len) != 0 ||
      ms_file_read(key_path, &key_pem, &key_len, err, err_len) != 0 ||
      ms_pem_parse_key(key_pem, key_len, NULL, key_path, &key, err, err_len) != 0)
    goto done;
  X509 *cert = sk_X509_value(chain, 0);
  if (X509_check_ca(cert) == 0) {
    snprintf(err, err_len, "%s is not a CA certificate (no basicConstraints CA:TRUE)", cert_path);
    goto done;
  }
  if (!ms_key_matches_cert(key, cert)) {
    snprintf(err, err_len, "the CA key %s does not match the CA certificate %s", key_path,
             cert_path);
    goto done;
  }
  ms_cert_info info;
  if (ms_cert_info_init(&info, cert) != 0) {
    snprintf(err, err_len, "out of memory");
    goto done;
  }
  memset(out, 0, sizeof(*out));
  snprintf(out->fingerprint, sizeof(out->fingerprint), "%s", info.sha256_hex);
  ms_cert_info_cleanup(&info);
  X509_up_ref(cert);
  out->cert = cert;
  out->chain = chain;
  out->key = key;
  chain = NULL;
  key = NULL;
  rc = 0;
done:
  if (key_pem != NULL) OPENSSL_cleanse(key_pem, key_len);
  free(key_pem);
  free(cert_pem);
  sk_X509_pop_free(chain, X509_free);
  EVP_PKEY_free(key);
  return rc;
}

/* trust_anchor is what goes into the bundle for an entry: the last
 * certificate of its file (the root, when the CA is an intermediate). */
static X509 *trust_anchor(const xds_ca_entry *entry) {
  return sk_X509_value(entry->chain, sk_X509_num(entry->chain) - 1);
}

/* rebuild_bundle makes the trust bundle from the current and retiring CAs:
 * its PEM (bundle_pem) and the "ROOTCA" Secret holding it. */
static int rebuild_bundle(xds_ca *ca) {
  BIO *bio = BIO_new(BIO_s_mem());
  if (bio == NULL) return -1;
  bool ok = PEM_write_bio_X509(bio, trust_anchor(&ca->current));
  for (size_t i = 0; ok && i < ca->retiring_count; i++)
    ok = PEM_write_bio_X509(bio, trust_anchor(&ca->retiring[i]));
  const uint8_t *pem = NULL;
  size_t pem_len = 0;
  char *bundle_pem = NULL;
  if (!ok || !BIO_mem_contents(bio, &pem, &pem_len) ||
      (bundle_pem = strndup((const char *)pem, pem_len)) == NULL) {
    BIO_free(bio);
    return -1;
  }
  Envoy__Config__Core__V3__DataSource trusted_ca = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  trusted_ca.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
  trusted_ca.inline_bytes.data = (uint8_t *)pem;
  trusted_ca.inline_bytes.len = pem_len;
  Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext validation =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
  validation.trusted_ca = &trusted_ca;
  Envoy__Extensions__TransportSockets__Tls__V3__Secret secret =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
  secret.name = MS_XDS_SECRET_TRUST_BUNDLE;
  secret.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT;
  secret.validation_context = &validation;
  xds_resource bundle;
  int rc = xds_resource_init(&bundle, MS_XDS_SECRET_TRUST_BUNDLE, &secret);
  BIO_free(bio);
  if (rc != 0) {
    free(bundle_pem);
    return -1;
  }
  xds_resource_cleanup(&ca->bundle);
  ca->bundle = bundle;
  free(ca->bundle_pem);
  ca->bundle_pem = bundle_pem;
  return 0;
}

static void on_retire(uv_timer_t *timer);

/* schedule_retirement sets the timer for the next CA to leave the bundle. */
static void schedule_retirement(xds_ca *ca) {
  int64_t earliest = 0;
  for (size_t i = 0; i < ca->retiring_count; i++)
    if (earliest == 0 || ca->retiring[i].retire_at_ms < earliest)
      earliest = ca->retiring[i].retire_at_ms;
  if (earliest == 0) {
    uv_timer_stop(&ca->retire_timer);
    return;
  }
  int64_t delay_ms = earliest - xds_now_ms();
  uv_timer_start(&ca->retire_timer, on_retire, delay_ms > 0 ? (uint64_t)delay_ms : 0, 0);
}

/* on_retire drops the CAs whose overlap is over from the bundle. */
static void on_retire(uv_timer_t *timer) {
  xds_ca *ca = timer->data;
  int64_t now = xds_now_ms();
  size_t kept = 0;
  for (size_t i = 0; i < ca->retiring_count; i++) {
    if (ca->retiring[i].retire_at_ms <= now) {
      ms_log(MS_LOG_INFO, "ca: the old CA %.16s... left the trust bundle",
             ca->retiring[i].fingerprint);
      entry_cleanup(&ca->retiring[i]);
    } else {
      ca->retiring[kept++] = ca->retiring[i];
    }
  }
  if (kept == ca->retiring_count) {
    schedule_retirement(ca);
    return;
  }
  ca->retiring_count = kept;
  if (rebuild_bundle(ca) != 0) ms_log(MS_LOG_ERROR, "ca: out of memory rebuilding the bundle");
  schedule_retirement(ca);
  xds_server_client_trust_changed(ca->server);
  xds_server_push_type(ca->server, XDS_TYPE_SDS);
}

void xds_ca_reload(xds_ca *ca) {
  xds_ca_entry next;
  char err[MS_ERR_LEN];
  if (load_entry(ca->cert_path, ca->key_path, &next, err, sizeof(err)) != 0) {
    if (strcmp(err, ca->last_error) != 0)
      ms_log(MS_LOG_WARN, "ca: reload failed, keeping the CA in use: %s", err);
    snprintf(ca->last_error, sizeof(ca->last_error), "%s", err);
    return;
  }
  ca->last_error[0] = '\0';
  if (strcmp(next.fingerprint, ca->current.fingerprint) == 0) {
    entry_cleanup(&next);
    return;
  }
  xds_ca_entry *grown = realloc(ca->retiring, (ca->retiring_count + 1) * sizeof(*grown));
  if (grown == NULL) {
    ms_log(MS_LOG_ERROR, "ca: out of memory rotating the CA");
    entry_cleanup(&next);
    return;
  }
  ca->retiring = grown;
  /* A CA rolled back to while still in the bundle leaves the retiring list. */
  size_t kept = 0;
  for (size_t i = 0; i < ca->retiring_count; i++) {
    if (strcmp(ca->retiring[i].fingerprint, next.fingerprint) == 0)
      entry_cleanup(&ca->retiring[i]);
    else
      ca->retiring[kept++] = ca->retiring[i];
  }
  xds_ca_entry old = ca->current;
  EVP_PKEY_free(old.key); /* a retired CA signs nothing */
  old.key = NULL;
  old.retire_at_ms = xds_now_ms() + ca->overlap_seconds * 1000;
  ca->retiring[kept++] = old;
  ca->retiring_count = kept;
  ca->current = next;
  ca->rotations++;
  if (rebuild_bundle(ca) != 0) ms_log(MS_LOG_ERROR, "ca: out of memory rebuilding the bundle");
  xds_server_client_trust_changed(ca->server);
  char retire[32];
  ms_time_rfc3339(old.retire_at_ms / 1000, retire, sizeof(retire));
  ms_log(MS_LOG_INFO,
         "ca: rotated to a new CA (sha256 %.16s...); new certificates are signed by it; the old "
         "CA (sha256 %.16s...) stays in the trust bundle until %s",
         ca->current.fingerprint, old.fingerprint, retire);
  schedule_retirement(ca);
  xds_server_push_type(ca->server, XDS_TYPE_SDS);
}

static void on_files_changed(void *arg) {
  xds_ca_reload(arg);
}

static void on_handle_closed(uv_handle_t *handle) {
  xds_ca *ca = handle->data;
  xds_server_handle_closed(ca->server);
}

int xds_ca_init(xds_ca *ca, ms_xds_server *server, uv_loop_t *loop, const char *cert_path,
                const char *key_path, int64_t overlap_seconds, uint32_t debounce_ms, char *err,
                size_t err_len) {
  memset(ca, 0, sizeof(*ca));
  ca->server = server;
  ca->overlap_seconds = overlap_seconds;
  char load_err[MS_ERR_LEN];
  if (load_entry(cert_path, key_path, &ca->current, load_err, sizeof(load_err)) != 0) {
    snprintf(err, err_len, "the workload CA (--ca-cert, --ca-key): %s", load_err);
    return -1;
  }
  ca->cert_path = strdup(cert_path);
  ca->key_path = strdup(key_path);
  char *dirs[2] = {xds_dir_of(cert_path), xds_dir_of(key_path)};
  if (ca->cert_path == NULL || ca->key_path == NULL || dirs[0] == NULL || dirs[1] == NULL ||
      rebuild_bundle(ca) != 0) {
    free(dirs[0]);
    free(dirs[1]);
    xds_ca_cleanup(ca);
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  uv_timer_init(loop, &ca->retire_timer);
  ca->retire_timer.data = ca;
  ca->open_handles = 1;
  server->open_handles++;
  xds_watch_start(&ca->watch, server, loop, (const char *const *)dirs, 2, debounce_ms, "ca",
                  on_files_changed, ca);
  free(dirs[0]);
  free(dirs[1]);
  return 0;
}

void xds_ca_close(xds_ca *ca) {
  xds_watch_close(&ca->watch);
  if (ca->open_handles == 0) return;
  uv_close((uv_handle_t *)&ca->retire_timer, on_handle_closed);
  ca->open_handles = 0;
}

void xds_ca_cleanup(xds_ca *ca) {
  entry_cleanup(&ca->current);
  for (size_t i = 0; i < ca->retiring_count; i++)
    entry_cleanup(&ca->retiring[i]);
  free(ca->retiring);
  xds_resource_cleanup(&ca->bundle);
  free(ca->bundle_pem);
  free(ca->cert_path);
  free(ca->key_path);
  memset(ca, 0, sizeof(*ca));
}

/* last_segment returns what follows the last '/' of a SPIFFE ID. */
static const char *last_segment(const char *spiffe_id) {
  const char *slash = strrchr(spiffe_id, '/');
  return slash != NULL ? slash + 1 : spiffe_id;
}

/* sign_leaf signs a leaf for `spiffe_id` good for `ttl_seconds` with the
 * current CA: for `public_key` when given, else for a new key (*out_key). */
static int sign_leaf(xds_ca *ca, const char *spiffe_id, EVP_PKEY *public_key, int64_t ttl_seconds,
                     X509 **out_cert, EVP_PKEY **out_key, char *err, size_t err_len) {
  const char *uris[1] = {spiffe_id};
  char common_name[64];
  snprintf(common_name, sizeof(common_name), "%s", last_segment(spiffe_id));
  ms_issue_request request = {
      .common_name = common_name,
      .uris = uris,
      .uri_count = 1,
      .client = true,
      .server = true,
      /* Backdated 5 minutes for clock skew; valid until now + TTL. */
      .ttl_seconds = ttl_seconds,
  };
  if (public_key != NULL)
    return ms_cert_issue_for_key(&request, public_key, ca->current.cert, ca->current.key, out_cert,
                                 err, err_len);
  return ms_cert_issue(&request, ca->current.cert, ca->current.key, out_cert, out_key, err,
                       err_len);
}

/* is_intermediate: the CA's certificate is not self-issued. */
static bool is_intermediate(const xds_ca_entry *entry) {
  return X509_NAME_cmp(X509_get_subject_name(entry->cert), X509_get_issuer_name(entry->cert)) != 0;
}

/* pem_of returns the PEM of `cert`, malloc'd, or NULL. */
static char *pem_of(X509 *cert) {
  BIO *bio = BIO_new(BIO_s_mem());
  const uint8_t *pem = NULL;
  size_t len = 0;
  char *text = NULL;
  if (bio != NULL && PEM_write_bio_X509(bio, cert) && BIO_mem_contents(bio, &pem, &len))
    text = strndup((const char *)pem, len);
  BIO_free(bio);
  return text;
}

int xds_ca_issue(xds_ca *ca, const char *spiffe_id, int64_t ttl_seconds, X509 **out_cert,
                 EVP_PKEY **out_key, char **out_chain_pem, char *err, size_t err_len) {
  X509 *cert = NULL;
  EVP_PKEY *key = NULL;
  if (sign_leaf(ca, spiffe_id, NULL, ttl_seconds, &cert, &key, err, err_len) != 0) return -1;
  BIO *bio = BIO_new(BIO_s_mem());
  bool ok = bio != NULL && PEM_write_bio_X509(bio, cert);
  /* An intermediate CA sends its chain along. */
  if (ok && is_intermediate(&ca->current)) {
    for (size_t i = 0; ok && i < sk_X509_num(ca->current.chain); i++)
      ok = PEM_write_bio_X509(bio, sk_X509_value(ca->current.chain, i));
  }
  const uint8_t *pem = NULL;
  size_t pem_len = 0;
  char *chain = NULL;
  if (ok && BIO_mem_contents(bio, &pem, &pem_len) && (chain = malloc(pem_len + 1)) != NULL) {
    memcpy(chain, pem, pem_len);
    chain[pem_len] = '\0';
  }
  BIO_free(bio);
  if (chain == NULL) {
    X509_free(cert);
    EVP_PKEY_free(key);
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  *out_cert = cert;
  *out_key = key;
  *out_chain_pem = chain;
  return 0;
}

void xds_issued_cleanup(xds_issued *issued) {
  X509_free(issued->cert);
  for (size_t i = 0; i < issued->pem_count; i++)
    free(issued->pems[i]);
  free(issued->pems);
  memset(issued, 0, sizeof(*issued));
}

int xds_ca_issue_for_key(xds_ca *ca, const char *spiffe_id, EVP_PKEY *public_key,
                         int64_t ttl_seconds, xds_issued *out, char *err, size_t err_len) {
  xds_issued issued = {0};
  if (sign_leaf(ca, spiffe_id, public_key, ttl_seconds, &issued.cert, NULL, err, err_len) != 0)
    return -1;
  /* The leaf, the CA's certificates below its trust anchor (the signing CA
   * and any intermediate above it when the CA is an intermediate), then the
   * bundle: Istio's convention, root last. */
  size_t intermediates = is_intermediate(&ca->current) ? sk_X509_num(ca->current.chain) - 1 : 0;
  issued.pems = calloc(intermediates + 2, sizeof(char *));
  bool ok = issued.pems != NULL && (issued.pems[issued.pem_count++] = pem_of(issued.cert)) != NULL;
  for (size_t i = 0; ok && i < intermediates; i++)
    ok = (issued.pems[issued.pem_count++] = pem_of(sk_X509_value(ca->current.chain, i))) != NULL;
  ok = ok && (issued.pems[issued.pem_count++] = strdup(ca->bundle_pem)) != NULL;
  if (!ok) {
    xds_issued_cleanup(&issued);
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  *out = issued;
  return 0;
}

static cJSON *entry_json(const xds_ca_entry *entry) {
  ms_cert_info info;
  if (ms_cert_info_init(&info, entry->cert) != 0) return cJSON_CreateNull();
  char *text = ms_cert_info_to_json(&info);
  ms_cert_info_cleanup(&info);
  cJSON *json = text != NULL ? cJSON_Parse(text) : NULL;
  free(text);
  if (json == NULL) return cJSON_CreateNull();
  if (entry->retire_at_ms != 0) {
    char when[32];
    ms_time_rfc3339(entry->retire_at_ms / 1000, when, sizeof(when));
    cJSON_AddStringToObject(json, "leaves_bundle_at", when);
  }
  return json;
}

void xds_ca_status(const xds_ca *ca, void *cjson_object) {
  cJSON *out = cjson_object;
  cJSON_AddItemToObject(out, "current", entry_json(&ca->current));
  cJSON *retiring = cJSON_AddArrayToObject(out, "retiring");
  for (size_t i = 0; i < ca->retiring_count; i++)
    cJSON_AddItemToArray(retiring, entry_json(&ca->retiring[i]));
  cJSON_AddNumberToObject(out, "bundle_size", (double)(1 + ca->retiring_count));
  cJSON_AddNumberToObject(out, "rotations", (double)ca->rotations);
  cJSON_AddStringToObject(out, "cert_file", ca->cert_path);
  if (ca->last_error[0] != '\0') cJSON_AddStringToObject(out, "last_error", ca->last_error);
}
