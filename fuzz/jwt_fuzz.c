/* jwt_fuzz.c: Kubernetes service-account tokens (certs/jwt.c), as xds-server
 * checks a caller's (ms_jwt_verify) and the sidecar reads its own
 * (ms_jwt_peek_claims).
 *
 * Two modes. Bit 0 of the first byte clear: the rest is a token, as it came,
 * peeked and verified against a fixed key set (it cannot carry a valid
 * signature, so verify must refuse it). Bit 0 set: the rest is a JOSE header
 * and a claims set (JSON, split at the first newline) that this target
 * signs with ES256 and the key set's one private key, so that the fuzzer
 * reaches every claim check behind the signature. The property checked: a
 * token that verifies also peeks, with the same claims. */
#include <openssl/bn.h>
#include <openssl/digest.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/nid.h>
#include <openssl/sha.h>
#include <string.h>

#include "certs/certs.h"
#include "fuzz/fuzz_util.h"

static EC_KEY *signing_key;
static ms_jwks *keys;

/* base64url without padding of `len` bytes into `out` (4/3 len + 4). */
static size_t base64url(const uint8_t *bytes, size_t len, char *out) {
  size_t n = EVP_EncodeBlock((uint8_t *)out, bytes, len);
  while (n > 0 && out[n - 1] == '=')
    n--;
  for (size_t i = 0; i < n; i++)
    out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
  out[n] = '\0';
  return n;
}

/* The key set: one P-256 key made from a fixed scalar. */
static void init_keys(void) {
  uint8_t scalar[SHA256_DIGEST_LENGTH];
  SHA256((const uint8_t *)"mtls-sidecar fuzz key", 21, scalar);
  signing_key = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  const EC_GROUP *group = EC_KEY_get0_group(signing_key);
  BIGNUM *d = BN_bin2bn(scalar, sizeof(scalar), NULL);
  EC_POINT *point = EC_POINT_new(group);
  FUZZ_CHECK(d && point && EC_POINT_mul(group, point, d, NULL, NULL, NULL));
  FUZZ_CHECK(EC_KEY_set_private_key(signing_key, d) && EC_KEY_set_public_key(signing_key, point));
  uint8_t encoded[65];
  FUZZ_CHECK(EC_POINT_point2oct(group, point, POINT_CONVERSION_UNCOMPRESSED, encoded,
                                sizeof(encoded), NULL) == sizeof(encoded));
  char x[64], y[64], json[512];
  base64url(encoded + 1, 32, x);
  base64url(encoded + 33, 32, y);
  snprintf(json, sizeof(json),
           "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"fuzz\",\"use\":\"sig\","
           "\"alg\":\"ES256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
           x, y);
  char err[MS_ERR_LEN];
  FUZZ_CHECK(ms_jwks_parse(json, strlen(json), &keys, err, sizeof(err)) == 0);
  BN_free(d);
  EC_POINT_free(point);
}

/* sign returns "header.claims.signature" (caller frees). */
static char *sign(const uint8_t *header, size_t header_len, const uint8_t *claims,
                  size_t claims_len) {
  char *token = malloc(2 * (header_len + claims_len) + 200);
  FUZZ_CHECK(token != NULL);
  size_t n = base64url(header, header_len, token);
  token[n++] = '.';
  n += base64url(claims, claims_len, token + n);
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256((const uint8_t *)token, n, digest);
  ECDSA_SIG *sig = ECDSA_do_sign(digest, sizeof(digest), signing_key);
  FUZZ_CHECK(sig != NULL);
  uint8_t raw[64];
  FUZZ_CHECK(BN_bn2bin_padded(raw, 32, sig->r) && BN_bn2bin_padded(raw + 32, 32, sig->s));
  ECDSA_SIG_free(sig);
  token[n++] = '.';
  base64url(raw, sizeof(raw), token + n);
  return token;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (keys == NULL) init_keys();
  fuzz_input in = {data, size};
  uint8_t mode = fuzz_take_byte(&in);
  char *token;
  if (mode & 1) {
    const uint8_t *newline = memchr(in.data, '\n', in.len);
    size_t header_len = newline ? (size_t)(newline - in.data) : in.len;
    size_t claims_at = newline ? header_len + 1 : in.len;
    token = sign(in.data, header_len, in.data + claims_at, in.len - claims_at);
  } else {
    token = fuzz_strndup(in.data, in.len);
  }
  ms_jwt_expect expect = {.issuer = "https://kubernetes.default.svc.cluster.local",
                          .audience = "istio-ca",
                          .now = 1750000000,
                          .skew_seconds = 60};
  char err[MS_ERR_LEN] = "";
  ms_jwt_claims verified, peeked;
  int verify_rc = ms_jwt_verify(token, keys, &expect, &verified, err, sizeof(err));
  if (verify_rc != 0) FUZZ_CHECK(err[0] != '\0');
  int peek_rc = ms_jwt_peek_claims(token, &peeked, err, sizeof(err));
  if (verify_rc == 0) {
    FUZZ_CHECK(peek_rc == 0);
    FUZZ_CHECK(strcmp(verified.subject, peeked.subject) == 0);
    FUZZ_CHECK(strcmp(verified.namespace_name, peeked.namespace_name) == 0);
    FUZZ_CHECK(strcmp(verified.service_account, peeked.service_account) == 0);
    FUZZ_CHECK(strcmp(verified.pod, peeked.pod) == 0);
    FUZZ_CHECK(verified.expires_at == peeked.expires_at);
  }
  free(token);
  return 0;
}
