/* jwt.c: verifying Kubernetes service-account tokens (compact JWS, RS256 or
 * ES256) against a JWKS, and reading their kubernetes.io claims. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/digest.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>

#include "certs/certs.h"
#include "certs/internal.h"
#include "common/time.h"

/* A service-account token is about a kilobyte. */
#define MS_JWT_MAX (16 * 1024)

/* The three base64url parts of a compact JWS. */
typedef struct jws_parts {
  const char *header, *payload, *signature;
  size_t header_len, payload_len, signature_len;
} jws_parts;

static int split_token(const char *token, jws_parts *out, char *err, size_t err_len) {
  size_t len = token != NULL ? strnlen(token, MS_JWT_MAX + 1) : 0;
  if (len == 0 || len > MS_JWT_MAX) {
    ms_err_set(err, err_len, "the token is empty or longer than %d bytes", MS_JWT_MAX);
    return -1;
  }
  const char *dot1 = memchr(token, '.', len);
  const char *dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
  if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL ||
      dot1 == token || dot2 == dot1 + 1) {
    ms_err_set(err, err_len, "the token is not a compact JWS (header.payload.signature)");
    return -1;
  }
  out->header = token;
  out->header_len = (size_t)(dot1 - token);
  out->payload = dot1 + 1;
  out->payload_len = (size_t)(dot2 - out->payload);
  out->signature = dot2 + 1;
  out->signature_len = len - (size_t)(out->signature - token);
  return 0;
}

/* decode_object decodes one base64url part as a JSON object. Returns it
 * (the caller deletes it) or NULL with the reason; `what` names the part. */
static cJSON *decode_object(const char *text, size_t len, const char *what, char *err,
                            size_t err_len) {
  uint8_t *bytes = NULL;
  size_t bytes_len = 0;
  if (ms_base64url_decode(text, len, &bytes, &bytes_len) != 0) {
    ms_err_set(err, err_len, "the token's %s is not base64url (unpadded)", what);
    return NULL;
  }
  /* The decoder NUL-terminates; a NUL inside would hide what follows it. */
  cJSON *json = memchr(bytes, '\0', bytes_len) != NULL
                    ? NULL
                    : cJSON_ParseWithOpts((const char *)bytes, NULL, true);
  free(bytes);
  if (!cJSON_IsObject(json)) {
    ms_err_set(err, err_len, "the token's %s is not a JSON object", what);
    cJSON_Delete(json);
    return NULL;
  }
  return json;
}

/* check_header reads the header's alg (RS256 or ES256) into *out_type
 * (EVP_PKEY_RSA or EVP_PKEY_EC) and its kid (borrowed, NULL when absent). */
static int check_header(const cJSON *header, int *out_type, const char **out_kid, char *err,
                        size_t err_len) {
  char quoted[80];
  const cJSON *alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
  const cJSON *kid = cJSON_GetObjectItemCaseSensitive(header, "kid");
  if (!cJSON_IsString(alg)) {
    ms_err_set(err, err_len, "the token's header has no alg");
    return -1;
  }
  if (strcmp(alg->valuestring, "RS256") == 0) {
    *out_type = EVP_PKEY_RSA;
  } else if (strcmp(alg->valuestring, "ES256") == 0) {
    *out_type = EVP_PKEY_EC;
  } else if (strcmp(alg->valuestring, "none") == 0) {
    ms_err_set(err, err_len,
               "the token is unsigned (alg \"none\"); only RS256 and ES256 are "
               "accepted");
    return -1;
  } else {
    ms_err_set(err, err_len, "the token's alg %s is refused; only RS256 and ES256 are accepted",
               ms_quote_untrusted(alg->valuestring, quoted, sizeof(quoted)));
    return -1;
  }
  if (cJSON_GetObjectItemCaseSensitive(header, "crit") != NULL) {
    ms_err_set(err, err_len, "the token's header has crit parameters, which are not supported");
    return -1;
  }
  if (kid != NULL && !cJSON_IsString(kid)) {
    ms_err_set(err, err_len, "the token's kid is not a string");
    return -1;
  }
  *out_kid = kid != NULL ? kid->valuestring : NULL;
  return 0;
}

/* es256_to_der turns a JWS ES256 signature (r || s, 32 bytes each) into the
 * DER ECDSA-Sig-Value BoringSSL verifies. Returns 0 with *out_der (free with
 * OPENSSL_free), or -1. */
static int es256_to_der(const uint8_t *raw, uint8_t **out_der, size_t *out_len) {
  ECDSA_SIG *sig = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
  int ok = sig != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(sig, r, s);
  if (!ok) {
    BN_free(r);
    BN_free(s);
  }
  ok = ok && ECDSA_SIG_to_bytes(out_der, out_len, sig);
  ECDSA_SIG_free(sig);
  return ok ? 0 : -1;
}

/* verify_with checks one SHA-256 signature (PKCS#1 v1.5 or DER ECDSA). */
static bool verify_with(EVP_PKEY *key, const jws_parts *parts, const uint8_t *sig, size_t sig_len) {
  EVP_MD_CTX ctx;
  EVP_MD_CTX_init(&ctx);
  size_t input_len = parts->header_len + 1 + parts->payload_len; /* "header.payload" */
  bool ok = EVP_DigestVerifyInit(&ctx, NULL, EVP_sha256(), NULL, key) &&
            EVP_DigestVerify(&ctx, sig, sig_len, (const uint8_t *)parts->header, input_len);
  EVP_MD_CTX_cleanup(&ctx);
  ERR_clear_error();
  return ok;
}

/* check_signature verifies the token with the key named by kid, or with
 * each key of the algorithm's type when there is no kid. */
static int check_signature(const ms_jwks *keys, const jws_parts *parts, int type, const char *kid,
                           char *err, size_t err_len) {
  const char *alg = type == EVP_PKEY_RSA ? "RS256" : "ES256";
  const char *kind = type == EVP_PKEY_RSA ? "RSA" : "EC";
  char quoted[80] = "";
  if (kid != NULL) ms_quote_untrusted(kid, quoted, sizeof(quoted));
  uint8_t *raw = NULL, *der = NULL;
  size_t raw_len = 0, der_len = 0;
  if (ms_base64url_decode(parts->signature, parts->signature_len, &raw, &raw_len) != 0) {
    ms_err_set(err, err_len, "the token's signature is not base64url (unpadded)");
    return -1;
  }
  if (type == EVP_PKEY_EC && raw_len != 64) {
    ms_err_set(err, err_len, "the token's ES256 signature is %zu bytes, not 64 (r || s)", raw_len);
    free(raw);
    return -1;
  }
  if (type == EVP_PKEY_EC && es256_to_der(raw, &der, &der_len) != 0) {
    ms_err_set(err, err_len, "cannot verify the token: out of memory");
    free(raw);
    return -1;
  }
  const uint8_t *sig = der != NULL ? der : raw;
  size_t sig_len = der != NULL ? der_len : raw_len;
  size_t named = 0, tried = 0;
  bool verified = false;
  for (size_t i = 0; !verified && keys != NULL && i < keys->count; i++) {
    const ms_jwk *key = &keys->keys[i];
    if (kid != NULL && (!key->has_kid || strcmp(key->kid, kid) != 0)) continue;
    named++;
    if (key->type != type) continue;
    tried++;
    verified = verify_with(key->key, parts, sig, sig_len);
  }
  free(raw);
  OPENSSL_free(der);
  if (verified) return 0;
  if (kid != NULL && named == 0) {
    ms_err_set(err, err_len,
               "no key in the key set has the token's kid %s (the signing key may have been "
               "rotated: refresh the key set)",
               quoted);
  } else if (tried == 0 && kid != NULL) {
    ms_err_set(err, err_len, "the key with kid %s is not an %s key, as the token's alg %s needs",
               quoted, kind, alg);
  } else if (tried == 0) {
    ms_err_set(err, err_len, "the key set holds no %s key for the token's alg %s", kind, alg);
  } else if (kid != NULL) {
    ms_err_set(err, err_len, "the token's signature does not verify with the key with kid %s",
               quoted);
  } else {
    ms_err_set(err, err_len, "the token's signature does not verify with any of the %zu %s keys",
               tried, kind);
  }
  return -1;
}

/* read_time reads the numeric date claim `name`: 0 with *present set (and
 * *out when present), or -1 when it is not a number of seconds. */
static int read_time(const cJSON *claims, const char *name, bool *present, int64_t *out, char *err,
                     size_t err_len) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, name);
  *present = item != NULL;
  if (item == NULL) return 0;
  if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble < 0 ||
      item->valuedouble > 1e15) {
    ms_err_set(err, err_len, "the token's %s claim is not a time in seconds", name);
    return -1;
  }
  *out = (int64_t)item->valuedouble;
  return 0;
}

/* k8s_name_ok tells whether `name` is a Kubernetes object name: a DNS label
 * (namespaces) or a DNS subdomain (service accounts, pods), so that it can
 * go into a SPIFFE ID unchanged. */
static bool k8s_name_ok(const char *name, bool label) {
  size_t len = strlen(name);
  if (len == 0 || len > (label ? 63u : 253u)) return false;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    bool edge = i == 0 || i == len - 1 || name[i - 1] == '.' || name[i + 1] == '.';
    if (alnum) continue;
    if (c == '-' && !edge) continue;
    if (c == '.' && !label && !edge) continue;
    return false;
  }
  return true;
}

/* copy_name copies the string member `key` of `object` into buf after
 * checking it is a Kubernetes name; `what` names it in the error. */
static int copy_name(const cJSON *object, const char *key, bool label, char *buf, size_t len,
                     const char *what, char *err, size_t err_len) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
  char quoted[80];
  if (!cJSON_IsString(item)) {
    ms_err_set(err, err_len, "the token has no %s claim (a string)", what);
    return -1;
  }
  if (strlen(item->valuestring) >= len) {
    ms_err_set(err, err_len, "the token's %s claim is longer than %zu bytes", what, len - 1);
    return -1;
  }
  if (!k8s_name_ok(item->valuestring, label)) {
    ms_err_set(err, err_len, "the token's %s claim %s is not a Kubernetes name", what,
               ms_quote_untrusted(item->valuestring, quoted, sizeof(quoted)));
    return -1;
  }
  memcpy(buf, item->valuestring, strlen(item->valuestring) + 1);
  return 0;
}

/* read_claims fills `out` from the kubernetes.io claims, sub and exp (0
 * when absent), checking that sub agrees with the kubernetes.io claims. */
static int read_claims(const cJSON *claims, ms_jwt_claims *out, char *err, size_t err_len) {
  ms_jwt_claims result = {0};
  const cJSON *k8s = cJSON_GetObjectItemCaseSensitive(claims, "kubernetes.io");
  const cJSON *account = cJSON_GetObjectItemCaseSensitive(k8s, "serviceaccount");
  const cJSON *pod = cJSON_GetObjectItemCaseSensitive(k8s, "pod");
  const cJSON *sub = cJSON_GetObjectItemCaseSensitive(claims, "sub");
  char expected[sizeof(result.namespace_name) + sizeof(result.service_account) + 32];
  char quoted[80];
  bool has_exp = false;
  if (!cJSON_IsObject(k8s) || !cJSON_IsObject(account)) {
    ms_err_set(err, err_len,
               "the token has no kubernetes.io claims naming a service account (not "
               "a Kubernetes service-account token)");
    return -1;
  }
  if (copy_name(k8s, "namespace", true, result.namespace_name, sizeof(result.namespace_name),
                "kubernetes.io.namespace", err, err_len) != 0 ||
      copy_name(account, "name", false, result.service_account, sizeof(result.service_account),
                "kubernetes.io.serviceaccount.name", err, err_len) != 0 ||
      (pod != NULL && copy_name(pod, "name", false, result.pod, sizeof(result.pod),
                                "kubernetes.io.pod.name", err, err_len) != 0) ||
      read_time(claims, "exp", &has_exp, &result.expires_at, err, err_len) != 0) {
    return -1;
  }
  snprintf(expected, sizeof(expected), "system:serviceaccount:%s:%s", result.namespace_name,
           result.service_account);
  if (!cJSON_IsString(sub) || strcmp(sub->valuestring, expected) != 0) {
    ms_err_set(
        err, err_len, "the token's sub %s disagrees with its kubernetes.io claims (%s)",
        ms_quote_untrusted(cJSON_IsString(sub) ? sub->valuestring : "", quoted, sizeof(quoted)),
        expected);
    return -1;
  }
  if (strlen(expected) >= sizeof(result.subject)) {
    ms_err_set(err, err_len, "the token's sub is longer than %zu bytes",
               sizeof(result.subject) - 1);
    return -1;
  }
  memcpy(result.subject, expected, strlen(expected) + 1);
  *out = result;
  return 0;
}

/* check_issuer_audience checks iss and aud against what is expected. */
static int check_issuer_audience(const cJSON *claims, const ms_jwt_expect *expect, char *err,
                                 size_t err_len) {
  const cJSON *iss = cJSON_GetObjectItemCaseSensitive(claims, "iss");
  const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud");
  char quoted[80], list[300] = "[";
  if (!cJSON_IsString(iss) || strcmp(iss->valuestring, expect->issuer) != 0) {
    ms_err_set(err, err_len, "the token's iss is %s, not \"%s\"",
               cJSON_IsString(iss) ? ms_quote_untrusted(iss->valuestring, quoted, sizeof(quoted))
                                   : "missing",
               expect->issuer);
    return -1;
  }
  if (cJSON_IsString(aud)) {
    if (strcmp(aud->valuestring, expect->audience) == 0) return 0;
    ms_quote_untrusted(aud->valuestring, list + 1, sizeof(list) - 2);
  } else if (cJSON_IsArray(aud)) {
    const cJSON *item = NULL;
    size_t used = 1;
    cJSON_ArrayForEach(item, aud) {
      if (!cJSON_IsString(item)) continue;
      if (strcmp(item->valuestring, expect->audience) == 0) return 0;
      if (used + 4 < sizeof(list)) {
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", used > 1 ? ", " : "",
                                 ms_quote_untrusted(item->valuestring, quoted, sizeof(quoted)));
      }
    }
  } else {
    ms_err_set(err, err_len, "the token has no aud claim (a string or an array of strings)");
    return -1;
  }
  size_t used = strnlen(list, sizeof(list) - 2);
  snprintf(list + used, sizeof(list) - used, "]");
  ms_err_set(err, err_len, "the token's aud is %s, not \"%s\"", list, expect->audience);
  return -1;
}

/* check_times checks exp (required), nbf and iat against expect's clock. */
static int check_times(const cJSON *claims, const ms_jwt_expect *expect, char *err,
                       size_t err_len) {
  int64_t skew = expect->skew_seconds > 0 ? expect->skew_seconds : 0;
  int64_t exp = 0, nbf = 0, iat = 0;
  bool has_exp = false, has_nbf = false, has_iat = false;
  char when[32], now[32];
  ms_time_rfc3339(expect->now, now, sizeof(now));
  if (read_time(claims, "exp", &has_exp, &exp, err, err_len) != 0 ||
      read_time(claims, "nbf", &has_nbf, &nbf, err, err_len) != 0 ||
      read_time(claims, "iat", &has_iat, &iat, err, err_len) != 0) {
    return -1;
  }
  if (!has_exp) {
    ms_err_set(err, err_len, "the token has no exp claim; tokens that never expire are refused");
    return -1;
  }
  if (exp <= expect->now - skew) {
    ms_time_rfc3339(exp, when, sizeof(when));
    ms_err_set(err, err_len, "the token expired at %s (now %s, skew %llds)", when, now,
               (long long)skew);
    return -1;
  }
  if (has_nbf && nbf > expect->now + skew) {
    ms_time_rfc3339(nbf, when, sizeof(when));
    ms_err_set(err, err_len, "the token is not valid before %s (now %s, skew %llds)", when, now,
               (long long)skew);
    return -1;
  }
  if (has_iat && iat > expect->now + skew) {
    ms_time_rfc3339(iat, when, sizeof(when));
    ms_err_set(err, err_len, "the token was issued in the future, at %s (now %s, skew %llds)", when,
               now, (long long)skew);
    return -1;
  }
  return 0;
}

int ms_jwt_verify(const char *token, const ms_jwks *keys, const ms_jwt_expect *expect,
                  ms_jwt_claims *out, char *err, size_t err_len) {
  if (expect == NULL || expect->issuer == NULL || expect->audience == NULL) {
    ms_err_set(err, err_len, "cannot verify a token without an expected issuer and audience");
    return -1;
  }
  jws_parts parts;
  if (split_token(token, &parts, err, err_len) != 0) return -1;
  cJSON *header = decode_object(parts.header, parts.header_len, "header", err, err_len);
  if (header == NULL) return -1;
  int type = 0;
  const char *kid = NULL;
  int rc = check_header(header, &type, &kid, err, err_len);
  if (rc == 0) rc = check_signature(keys, &parts, type, kid, err, err_len);
  cJSON_Delete(header);
  if (rc != 0) return -1;
  /* The claims are read only once the signature has verified. */
  cJSON *claims = decode_object(parts.payload, parts.payload_len, "payload", err, err_len);
  if (claims == NULL) return -1;
  ms_jwt_claims result;
  rc = check_issuer_audience(claims, expect, err, err_len);
  if (rc == 0) rc = check_times(claims, expect, err, err_len);
  if (rc == 0) rc = read_claims(claims, &result, err, err_len);
  cJSON_Delete(claims);
  if (rc != 0) return -1;
  *out = result;
  return 0;
}

int ms_jwt_peek_claims(const char *token, ms_jwt_claims *out, char *err, size_t err_len) {
  jws_parts parts;
  if (split_token(token, &parts, err, err_len) != 0) return -1;
  cJSON *claims = decode_object(parts.payload, parts.payload_len, "payload", err, err_len);
  if (claims == NULL) return -1;
  ms_jwt_claims result;
  int rc = read_claims(claims, &result, err, err_len);
  cJSON_Delete(claims);
  if (rc != 0) return -1;
  *out = result;
  return 0;
}
