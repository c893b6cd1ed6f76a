/* client_ctx.c: a client SSL_CTX built from one cluster's TLS settings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "certs/certs.h"
#include "certs/internal.h"

void ms_tls_info_callback(const SSL *ssl, int type, int value) {
  if ((type & SSL_CB_ALERT) == 0) return;
  ms_ssl_state *state = ms_ssl_state_get(ssl, true);
  if (state == NULL) return;
  int description = value & 0xff;
  bool fatal = (value >> 8) == SSL3_AL_FATAL;
  if (type & SSL_CB_READ) {
    state->alert_received = description;
    state->alert_received_fatal = fatal;
  } else {
    state->alert_sent = description;
    state->alert_sent_fatal = fatal;
  }
}

/* certificate_requested runs on the client only when the server asked for a
 * certificate; the describer uses that to tell "no certificate configured"
 * apart from "certificate refused". */
static int certificate_requested(SSL *ssl, void *arg) {
  ms_ssl_state *state = ms_ssl_state_get(ssl, true);
  if (state != NULL) state->certificate_requested = true;
  return 1;
}

static bool version_supported(uint16_t version) {
  return version == 0 || version == TLS1_2_VERSION || version == TLS1_3_VERSION;
}

static int set_versions(SSL_CTX *ctx, const ms_tls_settings *settings, char *err, size_t err_len) {
  if (!version_supported(settings->min_version) || !version_supported(settings->max_version)) {
    ms_err_set(err, err_len, "unsupported TLS version range 0x%04x..0x%04x: use TLSv1.2 or TLSv1.3",
               settings->min_version, settings->max_version);
    return -1;
  }
  if (settings->min_version != 0 && settings->max_version != 0 &&
      settings->min_version > settings->max_version) {
    ms_err_set(err, err_len, "the minimum TLS version is above the maximum");
    return -1;
  }
  if ((settings->min_version != 0 && !SSL_CTX_set_min_proto_version(ctx, settings->min_version)) ||
      (settings->max_version != 0 && !SSL_CTX_set_max_proto_version(ctx, settings->max_version))) {
    ERR_clear_error();
    ms_err_set(err, err_len, "cannot set the TLS version range: out of memory");
    return -1;
  }
  return 0;
}

static int set_algorithms(SSL_CTX *ctx, const ms_tls_settings *settings, char *err,
                          size_t err_len) {
  char reason[128];
  if (settings->ciphers != NULL && !SSL_CTX_set_strict_cipher_list(ctx, settings->ciphers)) {
    ms_err_reason(reason, sizeof(reason));
    ms_err_set(err, err_len,
               "invalid ciphers \"%s\": %s (use BoringSSL names, e.g. "
               "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256)",
               settings->ciphers, reason[0] != '\0' ? reason : "unknown name");
    return -1;
  }
  if (settings->curves != NULL && !SSL_CTX_set1_curves_list(ctx, settings->curves)) {
    ms_err_reason(reason, sizeof(reason));
    ms_err_set(err, err_len, "invalid curves \"%s\": %s (e.g. X25519:P-256:P-384)",
               settings->curves, reason[0] != '\0' ? reason : "unknown name");
    return -1;
  }
  if (settings->alpn != NULL && settings->alpn_len > 0 &&
      SSL_CTX_set_alpn_protos(ctx, settings->alpn, settings->alpn_len) != 0) {
    ms_err_set(err, err_len, "invalid ALPN protocol list");
    return -1;
  }
  return 0;
}

/* add_crls adds every CRL in the PEM text to the store. */
static int add_crls(X509_STORE *store, const ms_tls_settings *settings,
                    const ms_tls_material *material, char *err, size_t err_len) {
  char reason[128];
  const char *what = settings->crl != NULL ? settings->crl : "crl";
  BIO *bio = BIO_new_mem_buf(material->crl_pem, (int)material->crl_len);
  int count = 0;
  if (bio == NULL) {
    ms_err_set(err, err_len, "cannot parse %s: out of memory", what);
    return -1;
  }
  for (;;) {
    X509_CRL *crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
    if (crl == NULL) {
      uint32_t code = ERR_peek_last_error();
      if (ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        break;
      }
      ms_err_set(err, err_len, "cannot parse CRL %d in %s: %s", count + 1, what,
                 ms_err_reason(reason, sizeof(reason)));
      BIO_free(bio);
      return -1;
    }
    int ok = X509_STORE_add_crl(store, crl);
    X509_CRL_free(crl);
    if (!ok) {
      ms_err_set(err, err_len, "cannot add CRL %d of %s: %s", count + 1, what,
                 ms_err_reason(reason, sizeof(reason)));
      BIO_free(bio);
      return -1;
    }
    count++;
  }
  BIO_free(bio);
  if (count == 0) {
    ms_err_set(err, err_len, "%s holds no PEM CRL (no \"BEGIN X509 CRL\" block)", what);
    return -1;
  }
  /* Every certificate of the chain is checked, not only the leaf (Envoy's
   * default, only_verify_leaf_cert_crl false): a revoked intermediate is
   * refused, and so is a chain through a CA that has no CRL here
   * (X509_V_ERR_UNABLE_TO_GET_CRL), since its certificates could not be
   * checked. */
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  return 0;
}

/* set_trust loads the CA bundle (and CRL) into the context's store and
 * describes each CA. */
static int set_trust(SSL_CTX *ctx, const ms_tls_settings *settings, const ms_tls_material *material,
                     ms_cert_info **out_infos, size_t *out_count, char *err, size_t err_len) {
  const char *what = settings->trusted_ca != NULL ? settings->trusted_ca : "trusted_ca";
  STACK_OF(X509) *cas = NULL;
  ms_cert_info *infos = NULL;
  size_t count = 0;
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  if (ms_pem_parse_chain(material->trusted_ca_pem, material->trusted_ca_len, what, &cas, err,
                         err_len) != 0) {
    return -1;
  }
  infos = calloc(sk_X509_num(cas), sizeof(ms_cert_info));
  if (infos == NULL) goto oom;
  for (size_t i = 0; i < sk_X509_num(cas); i++) {
    X509 *ca = sk_X509_value(cas, i);
    if (!X509_STORE_add_cert(store, ca)) {
      uint32_t code = ERR_peek_last_error();
      if (ERR_GET_LIB(code) != ERR_LIB_X509 ||
          ERR_GET_REASON(code) != X509_R_CERT_ALREADY_IN_HASH_TABLE) {
        goto oom;
      }
      ERR_clear_error(); /* a bundle may list a CA twice */
    }
    if (ms_cert_info_init(&infos[count], ca) != 0) goto oom;
    count++;
  }
  if (material->crl_pem != NULL && add_crls(store, settings, material, err, err_len) != 0) {
    goto fail;
  }
  sk_X509_pop_free(cas, X509_free);
  *out_infos = infos;
  *out_count = count;
  return 0;

oom:
  ERR_clear_error();
  ms_err_set(err, err_len, "cannot load %s: out of memory", what);
fail:
  ms_cert_info_array_free(infos, count);
  sk_X509_pop_free(cas, X509_free);
  return -1;
}

/* check_validity refuses a client certificate outside its validity period:
 * an upstream would reject it anyway, with a less helpful alert. */
static int check_validity(X509 *leaf, const char *what, char *err, size_t err_len) {
  int64_t not_before = 0, not_after = 0;
  if (ms_asn1_time_to_unix(X509_get0_notBefore(leaf), &not_before) != 0 ||
      ms_asn1_time_to_unix(X509_get0_notAfter(leaf), &not_after) != 0) {
    ERR_clear_error();
    ms_err_set(err, err_len, "client certificate %s has an unreadable validity period", what);
    return -1;
  }
  int64_t now = (int64_t)time(NULL);
  char when[32];
  if (now > not_after) {
    ms_time_rfc3339(not_after, when, sizeof(when));
    ms_err_set(err, err_len,
               "client certificate %s expired at %s (%lld hours ago): issue a new one", what, when,
               (long long)((now - not_after) / 3600));
    return -1;
  }
  if (now < not_before) {
    ms_time_rfc3339(not_before, when, sizeof(when));
    ms_err_set(err, err_len,
               "client certificate %s is not yet valid: valid from %s (check the clock)", what,
               when);
    return -1;
  }
  return 0;
}

static int set_certificate(SSL_CTX *ctx, const ms_tls_settings *settings,
                           const ms_tls_material *material, ms_cert_info *out_leaf, char *err,
                           size_t err_len) {
  const char *cert_path =
      settings->certificate != NULL ? settings->certificate : "(given in memory)";
  const char *key_path =
      settings->private_key != NULL ? settings->private_key : "(given in memory)";
  STACK_OF(X509) *chain = NULL;
  EVP_PKEY *key = NULL;
  int rc = -1;
  if (material->private_key_pem == NULL) {
    ms_err_set(err, err_len, "certificate %s is set but private_key is not", cert_path);
    return -1;
  }
  if (ms_pem_parse_chain(material->certificate_pem, material->certificate_len, cert_path, &chain,
                         err, err_len) != 0 ||
      ms_pem_parse_key(material->private_key_pem, material->private_key_len, material->password,
                       key_path, &key, err, err_len) != 0) {
    goto done;
  }
  X509 *leaf = sk_X509_value(chain, 0);
  if (!ms_key_matches_cert(key, leaf)) {
    ms_err_set(err, err_len, "private key %s does not match certificate %s", key_path, cert_path);
    goto done;
  }
  if (check_validity(leaf, cert_path, err, err_len) != 0) goto done;
  bool ok = SSL_CTX_use_certificate(ctx, leaf) && SSL_CTX_use_PrivateKey(ctx, key);
  for (size_t i = 1; ok && i < sk_X509_num(chain); i++) {
    ok = SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i));
  }
  if (!ok || !SSL_CTX_check_private_key(ctx)) {
    char reason[128];
    ms_err_set(err, err_len, "cannot use certificate %s with key %s: %s", cert_path, key_path,
               ms_err_reason(reason, sizeof(reason)));
    goto done;
  }
  if (out_leaf != NULL && ms_cert_info_init(out_leaf, leaf) != 0) {
    ms_err_set(err, err_len, "cannot describe certificate %s: out of memory", cert_path);
    goto done;
  }
  rc = 0;
done:
  sk_X509_pop_free(chain, X509_free);
  EVP_PKEY_free(key);
  return rc;
}

int ms_client_ctx_new(const ms_tls_settings *settings, const ms_tls_material *material,
                      SSL_CTX **out_ctx, ms_cert_info *out_leaf, ms_cert_info **out_cas,
                      size_t *out_ca_count, char *err, size_t err_len) {
  ms_cert_info leaf;
  memset(&leaf, 0, sizeof(leaf));
  ms_cert_info *cas = NULL;
  size_t ca_count = 0;
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  if (ctx == NULL) {
    ERR_clear_error();
    ms_err_set(err, err_len, "cannot create a TLS context: out of memory");
    return -1;
  }
  if (settings->verify && material->trusted_ca_pem == NULL) {
    ms_err_set(err, err_len, "verify is on but trusted_ca is not set");
    goto fail;
  }
  if (set_versions(ctx, settings, err, err_len) != 0 ||
      set_algorithms(ctx, settings, err, err_len) != 0) {
    goto fail;
  }
  if (material->trusted_ca_pem != NULL &&
      set_trust(ctx, settings, material, &cas, &ca_count, err, err_len) != 0) {
    goto fail;
  }
  if (settings->verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, ms_verify_callback);
    if (settings->verify_depth > 0) SSL_CTX_set_verify_depth(ctx, settings->verify_depth);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  }
  if (material->certificate_pem != NULL &&
      set_certificate(ctx, settings, material, &leaf, err, err_len) != 0) {
    goto fail;
  }
  if (settings->session_reuse) {
    /* No internal cache: callers store sessions through their new-session
     * callback, which fires only with SSL_SESS_CACHE_CLIENT. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }
  SSL_CTX_set_info_callback(ctx, ms_tls_info_callback);
  SSL_CTX_set_cert_cb(ctx, certificate_requested, NULL);

  *out_ctx = ctx;
  if (out_leaf != NULL) {
    *out_leaf = leaf;
  } else {
    ms_cert_info_cleanup(&leaf);
  }
  if (out_cas != NULL) {
    *out_cas = cas;
    if (out_ca_count != NULL) *out_ca_count = ca_count;
  } else {
    ms_cert_info_array_free(cas, ca_count);
  }
  return 0;

fail:
  ms_cert_info_cleanup(&leaf);
  ms_cert_info_array_free(cas, ca_count);
  SSL_CTX_free(ctx);
  return -1;
}

int ms_client_ctx_load(const ms_tls_settings *settings, SSL_CTX **out_ctx, char *err,
                       size_t err_len) {
  ms_tls_material material;
  if (ms_tls_material_load(settings, &material, err, err_len) != 0) return -1;
  int rc = ms_client_ctx_new(settings, &material, out_ctx, NULL, NULL, NULL, err, err_len);
  ms_tls_material_cleanup(&material);
  return rc;
}
