/* jwks.c: JSON Web Key Sets (RFC 7517): the RSA and P-256 public keys that
 * verify service-account tokens, and the strict base64url they are written
 * in. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>

#include "certs/certs.h"
#include "certs/internal.h"

/* A Kubernetes cluster publishes a handful of keys; a megabyte is not a key
 * set. */
#define MS_JWKS_MAX (1024 * 1024)

/* RSA keys below this are refused (RFC 7518 section 3.3), above it are not
 * something BoringSSL verifies with. */
#define MS_RSA_MIN_BITS 2048
#define MS_RSA_MAX_BITS 16384

static int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

int ms_base64url_decode(const char *text, size_t len, uint8_t **out, size_t *out_len) {
  if (len % 4 == 1) return -1; /* six bits cannot end a byte */
  size_t decoded_len = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
  uint8_t *bytes = malloc(decoded_len + 1);
  if (bytes == NULL) return -1;
  uint32_t bits = 0;
  size_t used = 0, pending = 0;
  for (size_t i = 0; i < len; i++) {
    int value = base64url_value(text[i]);
    if (value < 0) {
      free(bytes);
      return -1;
    }
    bits = (bits << 6) | (uint32_t)value;
    pending += 6;
    if (pending >= 8) {
      pending -= 8;
      bytes[used++] = (uint8_t)(bits >> pending);
      bits &= (1u << pending) - 1;
    }
  }
  if (bits != 0) { /* the unused low bits of the last character */
    free(bytes);
    return -1;
  }
  bytes[used] = '\0';
  *out = bytes;
  *out_len = used;
  return 0;
}

/* decode_bignum decodes the base64url member `name` of `jwk` as an unsigned
 * big-endian integer. Returns NULL when absent or not base64url. */
static BIGNUM *decode_bignum(const cJSON *jwk, const char *name, size_t *out_bytes) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(jwk, name);
  uint8_t *bytes = NULL;
  size_t len = 0;
  if (!cJSON_IsString(item) ||
      ms_base64url_decode(item->valuestring, strlen(item->valuestring), &bytes, &len) != 0 ||
      len == 0) {
    free(bytes);
    return NULL;
  }
  BIGNUM *bn = BN_bin2bn(bytes, len, NULL);
  free(bytes);
  if (out_bytes != NULL) *out_bytes = len;
  return bn;
}

/* The result of reading one key: usable, skipped (why says why), or an
 * error (err says why). */
typedef enum jwk_result { JWK_USABLE, JWK_SKIPPED, JWK_ERROR } jwk_result;

static jwk_result read_rsa(const cJSON *jwk, const char *name, EVP_PKEY **out, char *why,
                           size_t why_len, char *err, size_t err_len) {
  BIGNUM *n = decode_bignum(jwk, "n", NULL), *e = decode_bignum(jwk, "e", NULL);
  RSA *rsa = NULL;
  EVP_PKEY *key = NULL;
  if (n == NULL || e == NULL) {
    ms_err_set(err, err_len, "%s: n and e must be base64url (no padding)", name);
    goto error;
  }
  unsigned bits = BN_num_bits(n);
  if (bits < MS_RSA_MIN_BITS || bits > MS_RSA_MAX_BITS) {
    ms_err_set(why, why_len, "%s is an RSA key of %u bits (%d to %d are accepted)", name, bits,
               MS_RSA_MIN_BITS, MS_RSA_MAX_BITS);
    BN_free(n);
    BN_free(e);
    return JWK_SKIPPED;
  }
  if ((rsa = RSA_new()) == NULL || !RSA_set0_key(rsa, n, e, NULL)) {
    ms_err_set(err, err_len, "%s: out of memory", name);
    goto error;
  }
  n = e = NULL; /* owned by rsa */
  if (!RSA_check_key(rsa)) {
    ms_err_set(err, err_len, "%s is not a valid RSA public key", name);
    goto error;
  }
  if ((key = EVP_PKEY_new()) == NULL || !EVP_PKEY_assign_RSA(key, rsa)) {
    ms_err_set(err, err_len, "%s: out of memory", name);
    goto error;
  }
  *out = key;
  return JWK_USABLE;

error:
  ERR_clear_error();
  BN_free(n);
  BN_free(e);
  RSA_free(rsa);
  EVP_PKEY_free(key);
  return JWK_ERROR;
}

static jwk_result read_ec(const cJSON *jwk, const char *name, EVP_PKEY **out, char *why,
                          size_t why_len, char *err, size_t err_len) {
  const cJSON *crv = cJSON_GetObjectItemCaseSensitive(jwk, "crv");
  char quoted[80];
  if (!cJSON_IsString(crv) || strcmp(crv->valuestring, "P-256") != 0) {
    ms_err_set(
        why, why_len, "%s is an EC key on curve %s (only P-256 is accepted)", name,
        ms_quote_untrusted(cJSON_IsString(crv) ? crv->valuestring : "", quoted, sizeof(quoted)));
    return JWK_SKIPPED;
  }
  size_t x_len = 0, y_len = 0;
  BIGNUM *x = decode_bignum(jwk, "x", &x_len), *y = decode_bignum(jwk, "y", &y_len);
  EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  EVP_PKEY *key = EVP_PKEY_new();
  jwk_result result = JWK_ERROR;
  if (x == NULL || y == NULL || x_len != 32 || y_len != 32) {
    ms_err_set(err, err_len, "%s: x and y must be 32 bytes each in base64url (no padding)", name);
  } else if (ec == NULL || key == NULL) {
    ms_err_set(err, err_len, "%s: out of memory", name);
  } else if (!EC_KEY_set_public_key_affine_coordinates(ec, x, y)) {
    ms_err_set(err, err_len, "%s: (x, y) is not a point on P-256", name);
  } else if (EVP_PKEY_assign_EC_KEY(key, ec)) {
    ec = NULL; /* owned by key */
    *out = key;
    key = NULL;
    result = JWK_USABLE;
  }
  ERR_clear_error();
  BN_free(x);
  BN_free(y);
  EC_KEY_free(ec);
  EVP_PKEY_free(key);
  return result;
}

/* read_jwk reads keys[index] into `out`. */
static jwk_result read_jwk(const cJSON *jwk, size_t index, ms_jwk *out, char *why, size_t why_len,
                           char *err, size_t err_len) {
  char name[200], quoted[80];
  const cJSON *kid = cJSON_GetObjectItemCaseSensitive(jwk, "kid");
  const cJSON *kty = cJSON_GetObjectItemCaseSensitive(jwk, "kty");
  const cJSON *use = cJSON_GetObjectItemCaseSensitive(jwk, "use");
  const cJSON *alg = cJSON_GetObjectItemCaseSensitive(jwk, "alg");
  if (!cJSON_IsObject(jwk)) {
    ms_err_set(err, err_len, "keys[%zu] is not a JSON object", index);
    return JWK_ERROR;
  }
  if (kid != NULL && (!cJSON_IsString(kid) || strlen(kid->valuestring) >= sizeof(out->kid))) {
    ms_err_set(err, err_len, "keys[%zu]: kid must be a string of at most %zu bytes", index,
               sizeof(out->kid) - 1);
    return JWK_ERROR;
  }
  if (kid != NULL) {
    snprintf(name, sizeof(name), "keys[%zu] (kid %s)", index,
             ms_quote_untrusted(kid->valuestring, quoted, sizeof(quoted)));
  } else {
    snprintf(name, sizeof(name), "keys[%zu]", index);
  }
  if (!cJSON_IsString(kty)) {
    ms_err_set(err, err_len, "%s has no kty", name);
    return JWK_ERROR;
  }
  if (cJSON_GetObjectItemCaseSensitive(jwk, "d") != NULL) {
    ms_err_set(err, err_len, "%s holds a private key (\"d\"); publish public keys only", name);
    return JWK_ERROR;
  }
  if (use != NULL && (!cJSON_IsString(use) || strcmp(use->valuestring, "sig") != 0)) {
    ms_err_set(why, why_len, "%s is not for signatures (use is not \"sig\")", name);
    return JWK_SKIPPED;
  }
  bool rsa = strcmp(kty->valuestring, "RSA") == 0, ec = strcmp(kty->valuestring, "EC") == 0;
  if (!rsa && !ec) {
    ms_err_set(why, why_len, "%s has kty %s (only RSA and EC are accepted)", name,
               ms_quote_untrusted(kty->valuestring, quoted, sizeof(quoted)));
    return JWK_SKIPPED;
  }
  const char *wanted_alg = rsa ? "RS256" : "ES256";
  if (alg != NULL && (!cJSON_IsString(alg) || strcmp(alg->valuestring, wanted_alg) != 0)) {
    ms_err_set(why, why_len, "%s is for an alg other than %s", name, wanted_alg);
    return JWK_SKIPPED;
  }
  jwk_result result = rsa ? read_rsa(jwk, name, &out->key, why, why_len, err, err_len)
                          : read_ec(jwk, name, &out->key, why, why_len, err, err_len);
  if (result != JWK_USABLE) return result;
  out->type = rsa ? EVP_PKEY_RSA : EVP_PKEY_EC;
  out->has_kid = kid != NULL;
  if (kid != NULL) snprintf(out->kid, sizeof(out->kid), "%s", kid->valuestring);
  return JWK_USABLE;
}

int ms_jwks_parse(const char *json, size_t len, ms_jwks **out, char *err, size_t err_len) {
  if (json == NULL || len > MS_JWKS_MAX) {
    ms_err_set(err, err_len, "the key set is missing or larger than %d bytes", MS_JWKS_MAX);
    return -1;
  }
  cJSON *root = cJSON_ParseWithLength(json, len);
  const cJSON *array = cJSON_GetObjectItemCaseSensitive(root, "keys");
  if (root == NULL || !cJSON_IsArray(array)) {
    ms_err_set(err, err_len, "the key set is not a JSON object with a \"keys\" array");
    cJSON_Delete(root);
    return -1;
  }
  size_t total = (size_t)cJSON_GetArraySize(array);
  ms_jwks *keys = calloc(1, sizeof(*keys));
  if (keys == NULL || (total > 0 && (keys->keys = calloc(total, sizeof(ms_jwk))) == NULL)) {
    ms_err_set(err, err_len, "cannot read the key set: out of memory");
    cJSON_Delete(root);
    ms_jwks_free(keys);
    return -1;
  }
  char why[300] = "", skipped[300] = "";
  size_t index = 0;
  const cJSON *jwk = NULL;
  cJSON_ArrayForEach(jwk, array) {
    jwk_result result =
        read_jwk(jwk, index++, &keys->keys[keys->count], why, sizeof(why), err, err_len);
    if (result == JWK_ERROR) {
      cJSON_Delete(root);
      ms_jwks_free(keys);
      return -1;
    }
    if (result == JWK_USABLE) keys->count++;
    if (result == JWK_SKIPPED && skipped[0] == '\0') memcpy(skipped, why, sizeof(why));
  }
  cJSON_Delete(root);
  if (keys->count == 0) {
    ms_err_set(err, err_len,
               "the key set holds no usable key (RSA of 2048 bits or more, or EC P-256, for "
               "signatures)%s%s",
               skipped[0] != '\0' ? ": " : "", skipped);
    ms_jwks_free(keys);
    return -1;
  }
  *out = keys;
  return 0;
}

size_t ms_jwks_count(const ms_jwks *keys) {
  return keys != NULL ? keys->count : 0;
}

void ms_jwks_free(ms_jwks *keys) {
  if (keys == NULL) return;
  for (size_t i = 0; i < keys->count; i++)
    EVP_PKEY_free(keys->keys[i].key);
  free(keys->keys);
  free(keys);
}
