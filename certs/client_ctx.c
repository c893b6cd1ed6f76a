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
#include "common/time.h"

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

static int set_versions(SSL_CTX *ctx, const ms_tls_settings *settings, ms_tls_problems *problems) {
  if (!version_supported(settings->min_version) || !version_supported(settings->max_version))
    return ms_tls_problem(problems, "protocols",
                          "unsupported TLS version range 0x%04x..0x%04x: use TLSv1.2 or TLSv1.3",
                          settings->min_version, settings->max_version);
  if (settings->min_version != 0 && settings->max_version != 0 &&
      settings->min_version > settings->max_version)
    return ms_tls_problem(problems, "protocols", "the minimum TLS version is above the maximum");
  if ((settings->min_version != 0 && !SSL_CTX_set_min_proto_version(ctx, settings->min_version)) ||
      (settings->max_version != 0 && !SSL_CTX_set_max_proto_version(ctx, settings->max_version))) {
    ERR_clear_error();
    return ms_tls_problem(problems, "protocols", "cannot set the TLS version range: out of memory");
  }
  return 0;
}

static int set_algorithms(SSL_CTX *ctx, const ms_tls_settings *settings,
                          ms_tls_problems *problems) {
  char reason[128];
  size_t before = problems->count;
  if (settings->ciphers != NULL && !SSL_CTX_set_strict_cipher_list(ctx, settings->ciphers)) {
    ms_err_reason(reason, sizeof(reason));
    ms_tls_problem(problems, "ciphers",
                   "invalid ciphers \"%s\": %s (use BoringSSL names, e.g. "
                   "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256)",
                   settings->ciphers, reason[0] != '\0' ? reason : "unknown name");
    if (!ms_tls_go_on(problems)) return -1;
  }
  if (settings->curves != NULL && !SSL_CTX_set1_curves_list(ctx, settings->curves)) {
    ms_err_reason(reason, sizeof(reason));
    ms_tls_problem(problems, "curves", "invalid curves \"%s\": %s (e.g. X25519:P-256:P-384)",
                   settings->curves, reason[0] != '\0' ? reason : "unknown name");
    if (!ms_tls_go_on(problems)) return -1;
  }
  if (settings->alpn != NULL && settings->alpn_len > 0 &&
      SSL_CTX_set_alpn_protos(ctx, settings->alpn, settings->alpn_len) != 0)
    ms_tls_problem(problems, "alpn", "invalid ALPN protocol list");
  return problems->count > before ? -1 : 0;
}

/* add_crls adds every CRL in the PEM text to the store. */
static int add_crls(X509_STORE *store, const ms_tls_settings *settings,
                    const ms_tls_material *material, ms_tls_problems *problems) {
  char reason[128];
  const char *what = settings->crl != NULL ? settings->crl : "crl";
  const char *key = settings->crl_pem != NULL ? "crl_pem" : "crl";
  BIO *bio = BIO_new_mem_buf(material->crl_pem, (int)material->crl_len);
  int count = 0;
  if (bio == NULL) return ms_tls_problem(problems, key, "cannot parse %s: out of memory", what);
  for (;;) {
    X509_CRL *crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
    if (crl == NULL) {
      uint32_t code = ERR_peek_last_error();
      if (ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        break;
      }
      BIO_free(bio);
      return ms_tls_problem(problems, key, "cannot parse CRL %d in %s: %s", count + 1, what,
                            ms_err_reason(reason, sizeof(reason)));
    }
    int ok = X509_STORE_add_crl(store, crl);
    X509_CRL_free(crl);
    if (!ok) {
      BIO_free(bio);
      return ms_tls_problem(problems, key, "cannot add CRL %d of %s: %s", count + 1, what,
                            ms_err_reason(reason, sizeof(reason)));
    }
    count++;
  }
  BIO_free(bio);
  if (count == 0)
    return ms_tls_problem(problems, key, "%s holds no PEM CRL (no \"BEGIN X509 CRL\" block)", what);
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
                     ms_cert_info **out_infos, size_t *out_count, ms_tls_problems *problems) {
  const char *what = settings->trusted_ca != NULL ? settings->trusted_ca : "trusted_ca";
  const char *key = settings->trusted_ca_pem != NULL ? "trusted_ca_pem" : "trusted_ca";
  STACK_OF(X509) *cas = NULL;
  ms_cert_info *infos = NULL;
  size_t count = 0;
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  char why[MS_ERR_LEN];
  if (ms_pem_parse_chain(material->trusted_ca_pem, material->trusted_ca_len, what, &cas, why,
                         sizeof(why)) != 0) {
    ms_tls_problem(problems, key, "%s", why);
    if (ms_tls_go_on(problems) && material->crl_pem != NULL)
      add_crls(store, settings, material, problems);
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
  if (material->crl_pem != NULL && add_crls(store, settings, material, problems) != 0) goto fail;
  sk_X509_pop_free(cas, X509_free);
  *out_infos = infos;
  *out_count = count;
  return 0;

oom:
  ERR_clear_error();
  ms_tls_problem(problems, key, "cannot load %s: out of memory", what);
fail:
  ms_cert_info_array_free(infos, count);
  sk_X509_pop_free(cas, X509_free);
  return -1;
}

/* check_validity refuses a client certificate outside its validity period:
 * an upstream would reject it anyway, with a less helpful alert. */
static int check_validity(X509 *leaf, const char *what, const char *key,
                          ms_tls_problems *problems) {
  int64_t not_before = 0, not_after = 0;
  if (ms_asn1_time_to_unix(X509_get0_notBefore(leaf), &not_before) != 0 ||
      ms_asn1_time_to_unix(X509_get0_notAfter(leaf), &not_after) != 0) {
    ERR_clear_error();
    return ms_tls_problem(problems, key, "client certificate %s has an unreadable validity period",
                          what);
  }
  int64_t now = (int64_t)time(NULL);
  char when[32];
  if (now > not_after) {
    ms_time_rfc3339(not_after, when, sizeof(when));
    return ms_tls_problem(problems, key,
                          "client certificate %s expired at %s (%lld hours ago): issue a new one",
                          what, when, (long long)((now - not_after) / 3600));
  }
  if (now < not_before) {
    ms_time_rfc3339(not_before, when, sizeof(when));
    return ms_tls_problem(problems, key,
                          "client certificate %s is not yet valid: valid from %s (check the clock)",
                          what, when);
  }
  return 0;
}

/* set_certificate parses the client chain and its key, checks that they
 * match and that the certificate is within its validity, and puts them in
 * the context. Going on, each of the two is checked on its own. */
static int set_certificate(SSL_CTX *ctx, const ms_tls_settings *settings,
                           const ms_tls_material *material, ms_cert_info *out_leaf,
                           ms_tls_problems *problems) {
  const char *cert_path =
      settings->certificate != NULL ? settings->certificate : "(given in memory)";
  const char *key_path =
      settings->private_key != NULL ? settings->private_key : "(given in memory)";
  const char *cert_key = settings->certificate_pem != NULL ? "certificate_pem" : "certificate";
  const char *key_key = settings->private_key_pem != NULL ? "private_key_pem" : "private_key";
  STACK_OF(X509) *chain = NULL;
  EVP_PKEY *key = NULL;
  size_t before = problems->count;
  char why[MS_ERR_LEN];
  if (material->certificate_pem != NULL && material->private_key_pem == NULL &&
      !ms_tls_go_on(problems))
    return ms_tls_problem(problems, key_key, "certificate %s is set but private_key is not",
                          cert_path);
  if (material->certificate_pem != NULL &&
      ms_pem_parse_chain(material->certificate_pem, material->certificate_len, cert_path, &chain,
                         why, sizeof(why)) != 0)
    ms_tls_problem(problems, cert_key, "%s", why);
  if (material->private_key_pem != NULL && (chain != NULL || ms_tls_go_on(problems)) &&
      ms_pem_parse_key(material->private_key_pem, material->private_key_len, material->password,
                       key_path, &key, why, sizeof(why)) != 0)
    ms_tls_problem(problems, key_key, "%s", why);
  X509 *leaf = chain != NULL ? sk_X509_value(chain, 0) : NULL;
  if (leaf != NULL && key != NULL && !ms_key_matches_cert(key, leaf))
    ms_tls_problem(problems, key_key, "private key %s does not match certificate %s", key_path,
                   cert_path);
  if (leaf != NULL && (problems->count == before || ms_tls_go_on(problems)))
    check_validity(leaf, cert_path, cert_key, problems);
  if (problems->count > before || leaf == NULL || key == NULL) goto done;
  bool ok = SSL_CTX_use_certificate(ctx, leaf) && SSL_CTX_use_PrivateKey(ctx, key);
  for (size_t i = 1; ok && i < sk_X509_num(chain); i++) {
    ok = SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i));
  }
  if (!ok || !SSL_CTX_check_private_key(ctx)) {
    char reason[128];
    ms_tls_problem(problems, key_key, "cannot use certificate %s with key %s: %s", cert_path,
                   key_path, ms_err_reason(reason, sizeof(reason)));
    goto done;
  }
  if (out_leaf != NULL && ms_cert_info_init(out_leaf, leaf) != 0)
    ms_tls_problem(problems, cert_key, "cannot describe certificate %s: out of memory", cert_path);
done:
  sk_X509_pop_free(chain, X509_free);
  EVP_PKEY_free(key);
  return problems->count > before || leaf == NULL || key == NULL ? -1 : 0;
}

/* build_ctx is ms_client_ctx_new reporting to `problems`. */
static int build_ctx(const ms_tls_settings *settings, const ms_tls_material *material,
                     ms_tls_problems *problems, SSL_CTX **out_ctx, ms_cert_info *out_leaf,
                     ms_cert_info **out_cas, size_t *out_ca_count) {
  ms_cert_info leaf;
  memset(&leaf, 0, sizeof(leaf));
  ms_cert_info *cas = NULL;
  size_t ca_count = 0;
  size_t before = problems->count;
  bool go_on = ms_tls_go_on(problems);
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  if (ctx == NULL) {
    ERR_clear_error();
    return ms_tls_problem(problems, NULL, "cannot create a TLS context: out of memory");
  }
  /* Going on, a missing CA was reported while loading the material. */
  if (settings->verify && material->trusted_ca_pem == NULL && !go_on) {
    ms_tls_problem(problems, "trusted_ca", "verify is on but trusted_ca is not set");
    goto fail;
  }
  if ((set_versions(ctx, settings, problems) != 0 ||
       set_algorithms(ctx, settings, problems) != 0) &&
      !go_on) {
    goto fail;
  }
  if (material->trusted_ca_pem != NULL &&
      set_trust(ctx, settings, material, &cas, &ca_count, problems) != 0 && !go_on) {
    goto fail;
  }
  if (settings->verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, ms_verify_callback);
    if (settings->verify_depth > 0) SSL_CTX_set_verify_depth(ctx, settings->verify_depth);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  }
  if ((material->certificate_pem != NULL || (go_on && material->private_key_pem != NULL)) &&
      set_certificate(ctx, settings, material, &leaf, problems) != 0 && !go_on) {
    goto fail;
  }
  if (problems->count > before) goto fail;
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

int ms_client_ctx_new(const ms_tls_settings *settings, const ms_tls_material *material,
                      SSL_CTX **out_ctx, ms_cert_info *out_leaf, ms_cert_info **out_cas,
                      size_t *out_ca_count, char *err, size_t err_len) {
  ms_tls_problems problems = {.err = err, .err_len = err_len};
  return build_ctx(settings, material, &problems, out_ctx, out_leaf, out_cas, out_ca_count);
}

size_t ms_tls_settings_check(const ms_tls_settings *settings, ms_tls_problem_fn report, void *arg) {
  ms_tls_problems problems = {.report = report, .arg = arg};
  ms_tls_material material;
  memset(&material, 0, sizeof(material));
  ms_tls_material_collect(settings, &material, &problems);
  SSL_CTX *ctx = NULL;
  if (build_ctx(settings, &material, &problems, &ctx, NULL, NULL, NULL) == 0) SSL_CTX_free(ctx);
  ms_tls_material_cleanup(&material);
  ERR_clear_error();
  return problems.count;
}

int ms_client_ctx_load(const ms_tls_settings *settings, SSL_CTX **out_ctx, char *err,
                       size_t err_len) {
  ms_tls_material material;
  if (ms_tls_material_load(settings, &material, err, err_len) != 0) return -1;
  int rc = ms_client_ctx_new(settings, &material, out_ctx, NULL, NULL, NULL, err, err_len);
  ms_tls_material_cleanup(&material);
  return rc;
}

int ms_client_ctx_load_files(const char *trusted_ca, const char *certificate,
                             const char *private_key, SSL_CTX **out_ctx, char *err,
                             size_t err_len) {
  ms_tls_settings settings = {
      .certificate = certificate,
      .private_key = private_key,
      .trusted_ca = trusted_ca,
      .verify = true,
      .verify_depth = 4,
      .min_version = TLS1_2_VERSION,
      .max_version = TLS1_3_VERSION,
  };
  return ms_client_ctx_load(&settings, out_ctx, err, err_len);
}
