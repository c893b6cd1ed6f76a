/* The identity agent's checks of a CA's answer, its request encoding and
 * the choice of its SPIFFE ID: everything without a loop (identity.c runs
 * them). */
#include "sidecar/identity/identity_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>
#include <openssl/x509.h>

#include "common/file.h"
#include "common/time.h"
#include "istio/v1/auth/ca.pb-c.h"
#include "xds/grpc/bearer_token.h"

/* Allowed clock difference between us and the CA for not_before. */
#define MS_IDENTITY_SKEW_SECONDS 60

void ms_identity_answer_cleanup(ms_identity_answer *answer) {
  free(answer->chain_pem);
  free(answer->roots_pem);
  ms_cert_info_cleanup(&answer->leaf);
  memset(answer, 0, sizeof(*answer));
}

int ms_identity_request_encode(const char *csr_pem, int64_t ttl_seconds, uint8_t **out_bytes,
                               size_t *out_len) {
  Istio__V1__Auth__IstioCertificateRequest request;
  istio__v1__auth__istio_certificate_request__init(&request);
  request.csr = (char *)csr_pem;
  request.validity_duration = ttl_seconds;
  size_t len = istio__v1__auth__istio_certificate_request__get_packed_size(&request);
  uint8_t *bytes = malloc(len ? len : 1);
  if (bytes == NULL) return -1;
  istio__v1__auth__istio_certificate_request__pack(&request, bytes);
  *out_bytes = bytes;
  *out_len = len;
  return 0;
}

/* join writes elements [from, to) of the chain as one PEM text. */
static char *join(char **elements, size_t from, size_t to) {
  size_t len = 1;
  for (size_t i = from; i < to; i++)
    len += strlen(elements[i]) + 1;
  char *text = malloc(len), *at = text;
  for (size_t i = from; text && i < to; i++) {
    size_t n = strlen(elements[i]);
    memcpy(at, elements[i], n);
    at += n;
    if (n == 0 || elements[i][n - 1] != '\n') *at++ = '\n';
  }
  if (text) *at = '\0';
  return text;
}

static int check_names(const ms_cert_info *leaf, const char *spiffe_id, char *err, size_t err_len) {
  const char *uri = NULL;
  size_t uris = 0;
  for (size_t i = 0; i < leaf->san_count; i++) {
    if (strncmp(leaf->sans[i], "URI:", 4) != 0) continue;
    uris++;
    uri = leaf->sans[i] + 4;
  }
  if (uris != 1) {
    snprintf(err, err_len, "the certificate has %zu URI SANs; expected exactly one, %s", uris,
             spiffe_id);
    return -1;
  }
  if (strcmp(uri, spiffe_id) != 0) {
    snprintf(err, err_len, "the certificate is for %s, not for us (%s)", uri, spiffe_id);
    return -1;
  }
  return 0;
}

static int check_validity(const ms_cert_info *leaf, int64_t now, char *err, size_t err_len) {
  char when[32];
  if (leaf->not_after <= now) {
    ms_time_rfc3339(leaf->not_after, when, sizeof(when));
    snprintf(err, err_len, "the certificate expired at %s", when);
    return -1;
  }
  if (leaf->not_before > now + MS_IDENTITY_SKEW_SECONDS) {
    ms_time_rfc3339(leaf->not_before, when, sizeof(when));
    snprintf(err, err_len, "the certificate is not valid before %s (is a clock wrong?)", when);
    return -1;
  }
  return 0;
}

/* check_chain verifies chain[0] with chain[1..] as intermediates against
 * the roots, at `now`. */
static int check_chain(STACK_OF(X509) *chain, STACK_OF(X509) *roots, int64_t now, char *err,
                       size_t err_len) {
  X509_STORE *store = X509_STORE_new();
  STACK_OF(X509) *untrusted = sk_X509_new_null();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  int rc = -1;
  if (store == NULL || untrusted == NULL || ctx == NULL) {
    snprintf(err, err_len, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < sk_X509_num(roots); i++)
    X509_STORE_add_cert(store, sk_X509_value(roots, i));
  for (size_t i = 1; i < sk_X509_num(chain); i++)
    sk_X509_push(untrusted, sk_X509_value(chain, i)); /* borrowed: freed with sk_X509_free */
  if (!X509_STORE_CTX_init(ctx, store, sk_X509_value(chain, 0), untrusted)) {
    snprintf(err, err_len, "out of memory");
    goto done;
  }
  X509_STORE_CTX_set_time(ctx, 0, (time_t)now);
  if (X509_verify_cert(ctx) == 1) {
    rc = 0;
  } else {
    snprintf(err, err_len, "the certificate does not chain to the trust bundle: %s",
             X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
  }
done:
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);
  X509_STORE_free(store);
  return rc;
}

/* check_parsed runs every check on the parsed chain and roots. */
static int check_parsed(STACK_OF(X509) *chain, STACK_OF(X509) *roots, EVP_PKEY *key,
                        const char *spiffe_id, int64_t now, ms_cert_info *leaf, char *err,
                        size_t err_len) {
  X509 *cert = sk_X509_value(chain, 0);
  if (!ms_key_matches_cert(key, cert)) {
    snprintf(err, err_len, "the certificate is for another key than the one we asked for");
    return -1;
  }
  if (ms_cert_info_init(leaf, cert) != 0) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  if (check_names(leaf, spiffe_id, err, err_len) != 0 ||
      check_validity(leaf, now, err, err_len) != 0 ||
      check_chain(chain, roots, now, err, err_len) != 0) {
    ms_cert_info_cleanup(leaf);
    return -1;
  }
  return 0;
}

int ms_identity_check_answer(const uint8_t *bytes, size_t len, EVP_PKEY *key, const char *spiffe_id,
                             const char *trust_bundle, int64_t now, ms_identity_answer *out,
                             char *err, size_t err_len) {
  Istio__V1__Auth__IstioCertificateResponse *response =
      istio__v1__auth__istio_certificate_response__unpack(NULL, len, bytes);
  if (response == NULL) {
    snprintf(err, err_len, "the answer (%zu bytes) is not an IstioCertificateResponse", len);
    return -1;
  }
  size_t n = response->n_cert_chain;
  size_t chain_end = n >= 2 ? n - 1 : n; /* the last element is the roots */
  ms_identity_answer answer = {0};
  STACK_OF(X509) *chain = NULL, *roots = NULL;
  int rc = -1;
  if (n == 0 || (n == 1 && trust_bundle == NULL)) {
    snprintf(err, err_len,
             "the answer has %zu certificate%s; expected the leaf first and the roots last", n,
             n == 1 ? "" : "s");
    goto done;
  }
  answer.chain_pem = join(response->cert_chain, 0, chain_end);
  answer.roots_pem = trust_bundle ? strdup(trust_bundle) : join(response->cert_chain, n - 1, n);
  if (answer.chain_pem == NULL || answer.roots_pem == NULL) {
    snprintf(err, err_len, "out of memory");
    goto done;
  }
  if (ms_pem_parse_chain(answer.chain_pem, strlen(answer.chain_pem), "the certificate chain",
                         &chain, err, err_len) != 0 ||
      ms_pem_parse_chain(answer.roots_pem, strlen(answer.roots_pem),
                         trust_bundle ? "identity.trust_bundle_file" : "the roots", &roots, err,
                         err_len) != 0)
    goto done;
  rc = check_parsed(chain, roots, key, spiffe_id, now, &answer.leaf, err, err_len);
done:
  sk_X509_pop_free(chain, X509_free);
  sk_X509_pop_free(roots, X509_free);
  istio__v1__auth__istio_certificate_response__free_unpacked(response, NULL);
  if (rc == 0)
    *out = answer;
  else
    ms_identity_answer_cleanup(&answer);
  return rc;
}

/* ---- who we are ---------------------------------------------------------- */

/* from_certificate finds the single spiffe:// URI SAN of the bootstrap
 * certificate. Returns 1 when found, 0 when there is none to look at, -1
 * with a reason. */
static int from_certificate(const ms_tls_settings *settings, char **out, char *err,
                            size_t err_len) {
  char *pem = NULL;
  size_t len = 0;
  if (settings->certificate_pem) {
    pem = strdup(settings->certificate_pem);
    len = pem ? strlen(pem) : 0;
  } else if (settings->certificate == NULL ||
             ms_file_read(settings->certificate, &pem, &len, err, err_len) != 0) {
    return settings->certificate ? -1 : 0;
  }
  STACK_OF(X509) *chain = NULL;
  ms_cert_info info = {0};
  int rc =
      pem && ms_pem_parse_chain(pem, len, "the bootstrap certificate", &chain, err, err_len) == 0 &&
              ms_cert_info_init(&info, sk_X509_value(chain, 0)) == 0
          ? 0
          : -1;
  free(pem);
  sk_X509_pop_free(chain, X509_free);
  const char *found = NULL;
  size_t count = 0;
  for (size_t i = 0; rc == 0 && i < info.san_count; i++) {
    if (strncmp(info.sans[i], "URI:spiffe://", 13) != 0) continue;
    found = info.sans[i] + 4;
    count++;
  }
  if (rc == 0 && count == 1) *out = strdup(found);
  ms_cert_info_cleanup(&info);
  if (rc != 0) return -1;
  return count == 1 && *out ? 1 : 0;
}

static int from_token(const ms_identity_config *identity, char **out, char *err, size_t err_len) {
  char *header = NULL;
  const char *token = NULL;
  if (ms_bearer_token_read(identity->token_file, &header, &token, err, err_len) != 0) return -1;
  ms_jwt_claims claims;
  char why[MS_ERR_LEN];
  int rc = ms_jwt_peek_claims(token, &claims, why, sizeof(why));
  ms_secure_free(header);
  if (rc != 0) {
    snprintf(err, err_len, "identity.token_file: %s", why);
    return -1;
  }
  size_t len = strlen(identity->trust_domain) + strlen(claims.namespace_name) +
               strlen(claims.service_account) + 32;
  *out = malloc(len);
  if (*out == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  snprintf(*out, len, "spiffe://%s/ns/%s/sa/%s", identity->trust_domain, claims.namespace_name,
           claims.service_account);
  return 0;
}

int ms_identity_find_spiffe_id(const ms_config *config, char **out, const char **out_source,
                               char *err, size_t err_len) {
  const ms_identity_config *identity = &config->identity;
  if (identity->spiffe_id) {
    *out_source = "configuration";
    *out = strdup(identity->spiffe_id);
    return *out ? 0 : -1;
  }
  int found = from_certificate(&ms_identity_tls(config)->settings, out, err, err_len);
  if (found < 0) return -1;
  if (found == 1) {
    *out_source = "certificate";
    return 0;
  }
  if (identity->token_file) {
    *out_source = "token";
    return from_token(identity, out, err, err_len);
  }
  snprintf(err, err_len,
           "identity: no SPIFFE ID to ask for: set identity.spiffe_id, or present a bootstrap "
           "certificate with one spiffe:// URI SAN, or give identity.token_file");
  return -1;
}

uint64_t ms_identity_renewal_delay_ms(int64_t issued_at, int64_t not_before, int64_t not_after,
                                      int64_t now_ms, uint32_t random) {
  int64_t start = issued_at > not_before ? issued_at : not_before;
  int64_t lifetime_ms = (not_after - start) * 1000;
  if (lifetime_ms < 0) lifetime_ms = 0;
  /* 50% + [0, 20%) of the lifetime. */
  int64_t at_ms =
      start * 1000 + lifetime_ms / 2 + (int64_t)((lifetime_ms / 5) * (random / 4294967296.0));
  int64_t delay = at_ms - now_ms;
  return delay < 1000 ? 1000 : (uint64_t)delay;
}
