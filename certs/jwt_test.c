/* jwt_test.c: service-account tokens made here with BoringSSL (RS256,
 * ES256, and the forgeries a verifier must refuse), checked against a JWKS
 * made from the same keys. */
#include <cjson/cJSON.h>
#include <openssl/base64.h>
#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>

#include "certs/test_util.h"

#define ISSUER "https://kubernetes.default.svc.cluster.local"
#define AUDIENCE "istio-ca"
#define NOW 1795428000 /* 2026-11-23T10:00:00Z */

/* The keys the tests sign with: rsa and ec are in the key set, rotated is
 * not. */
static EVP_PKEY *rsa, *ec, *rotated;
static ms_jwks *keys;

static char *b64url(const uint8_t *bytes, size_t len) {
  size_t max = 0;
  CHECK(EVP_EncodedLength(&max, len));
  char *text = malloc(max);
  size_t n = EVP_EncodeBlock((uint8_t *)text, bytes, len);
  while (n > 0 && text[n - 1] == '=')
    n--;
  text[n] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (text[i] == '+') text[i] = '-';
    if (text[i] == '/') text[i] = '_';
  }
  return text;
}

static char *b64url_bn(const BIGNUM *bn, size_t width) {
  uint8_t bytes[1024];
  size_t len = width != 0 ? width : BN_num_bytes(bn);
  CHECK(BN_bn2bin_padded(bytes, len, bn));
  return b64url(bytes, len);
}

static EVP_PKEY *new_rsa(unsigned bits) {
  RSA *key = RSA_new();
  BIGNUM *e = BN_new();
  EVP_PKEY *pkey = EVP_PKEY_new();
  CHECK(BN_set_word(e, RSA_F4) && RSA_generate_key_ex(key, (int)bits, e, NULL) &&
        EVP_PKEY_assign_RSA(pkey, key));
  BN_free(e);
  return pkey;
}

static EVP_PKEY *new_ec(int nid) {
  EC_KEY *key = EC_KEY_new_by_curve_name(nid);
  EVP_PKEY *pkey = EVP_PKEY_new();
  CHECK(EC_KEY_generate_key(key) && EVP_PKEY_assign_EC_KEY(pkey, key));
  return pkey;
}

/* jwk_add appends the public JWK of `key` to `array`. */
static void jwk_add(cJSON *array, EVP_PKEY *key, const char *kid, const char *use) {
  cJSON *jwk = cJSON_CreateObject();
  if (kid != NULL) cJSON_AddStringToObject(jwk, "kid", kid);
  if (use != NULL) cJSON_AddStringToObject(jwk, "use", use);
  char *a = NULL, *b = NULL;
  if (EVP_PKEY_id(key) == EVP_PKEY_RSA) {
    const BIGNUM *n = NULL, *e = NULL;
    RSA_get0_key(EVP_PKEY_get0_RSA(key), &n, &e, NULL);
    cJSON_AddStringToObject(jwk, "kty", "RSA");
    cJSON_AddStringToObject(jwk, "alg", "RS256");
    cJSON_AddStringToObject(jwk, "n", a = b64url_bn(n, 0));
    cJSON_AddStringToObject(jwk, "e", b = b64url_bn(e, 0));
  } else {
    const EC_KEY *ec_key = EVP_PKEY_get0_EC_KEY(key);
    const EC_GROUP *group = EC_KEY_get0_group(ec_key);
    BIGNUM *x = BN_new(), *y = BN_new();
    CHECK(EC_POINT_get_affine_coordinates_GFp(group, EC_KEY_get0_public_key(ec_key), x, y, NULL));
    bool p256 = EC_GROUP_get_curve_name(group) == NID_X9_62_prime256v1;
    cJSON_AddStringToObject(jwk, "kty", "EC");
    cJSON_AddStringToObject(jwk, "crv", p256 ? "P-256" : "P-384");
    cJSON_AddStringToObject(jwk, "x", a = b64url_bn(x, p256 ? 32 : 48));
    cJSON_AddStringToObject(jwk, "y", b = b64url_bn(y, p256 ? 32 : 48));
    BN_free(x);
    BN_free(y);
  }
  free(a);
  free(b);
  cJSON_AddItemToArray(array, jwk);
}

static char *jwks_text(cJSON *array) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddItemToObject(root, "keys", array);
  char *text = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return text;
}

/* The claims of a test token; zero times and NULL strings are left out. */
typedef struct claims {
  const char *iss, *aud_json, *sub, *ns, *sa, *pod;
  int64_t exp, nbf, iat;
  bool no_k8s;
} claims;

static claims good_claims(void) {
  claims c = {
      .iss = ISSUER,
      .aud_json = "[\"" AUDIENCE "\"]",
      .sub = "system:serviceaccount:shop:orders",
      .ns = "shop",
      .sa = "orders",
      .pod = "orders-7d9f-abcde",
      .exp = NOW + 3600,
      .nbf = NOW - 60,
      .iat = NOW - 60,
  };
  return c;
}

static char *payload_json(const claims *c) {
  char *text = malloc(4096);
  size_t used = (size_t)snprintf(text, 4096, "{\"iss\":\"%s\"", c->iss);
#define ADD(...) used += (size_t)snprintf(text + used, 4096 - used, __VA_ARGS__)
  if (c->aud_json != NULL) ADD(",\"aud\":%s", c->aud_json);
  if (c->sub != NULL) ADD(",\"sub\":\"%s\"", c->sub);
  if (c->exp != 0) ADD(",\"exp\":%lld", (long long)c->exp);
  if (c->nbf != 0) ADD(",\"nbf\":%lld", (long long)c->nbf);
  if (c->iat != 0) ADD(",\"iat\":%lld", (long long)c->iat);
  if (!c->no_k8s) {
    ADD(",\"kubernetes.io\":{\"namespace\":\"%s\",\"serviceaccount\":{\"name\":\"%s\",\"uid\":"
        "\"2d1c-11\"}",
        c->ns, c->sa);
    if (c->pod != NULL) ADD(",\"pod\":{\"name\":\"%s\",\"uid\":\"99aa\"}", c->pod);
    ADD("}");
  }
  ADD("}");
#undef ADD
  return text;
}

/* sign_input signs "header.payload" with `key` as JWS does: PKCS#1 v1.5 for
 * RSA, r || s for P-256. */
static char *sign_input(const char *input, EVP_PKEY *key) {
  EVP_MD_CTX ctx;
  EVP_MD_CTX_init(&ctx);
  uint8_t sig[512];
  size_t sig_len = sizeof(sig);
  CHECK(EVP_DigestSignInit(&ctx, NULL, EVP_sha256(), NULL, key) &&
        EVP_DigestSign(&ctx, sig, &sig_len, (const uint8_t *)input, strlen(input)));
  EVP_MD_CTX_cleanup(&ctx);
  if (EVP_PKEY_id(key) == EVP_PKEY_EC) {
    ECDSA_SIG *der = ECDSA_SIG_from_bytes(sig, sig_len);
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(der, &r, &s);
    CHECK(BN_bn2bin_padded(sig, 32, r) && BN_bn2bin_padded(sig + 32, 32, s));
    sig_len = 64;
    ECDSA_SIG_free(der);
  }
  return b64url(sig, sig_len);
}

/* make_token builds "header.payload.signature" from the JSON texts; `key`
 * NULL leaves the signature empty. */
static char *make_token(const char *header, const char *payload, EVP_PKEY *key) {
  char *h = b64url((const uint8_t *)header, strlen(header));
  char *p = b64url((const uint8_t *)payload, strlen(payload));
  size_t len = strlen(h) + strlen(p) + 2;
  char *input = malloc(len);
  snprintf(input, len, "%s.%s", h, p);
  char *s = key != NULL ? sign_input(input, key) : strdup("");
  char *token = malloc(len + strlen(s) + 1);
  sprintf(token, "%s.%s", input, s);
  free(h);
  free(p);
  free(input);
  free(s);
  return token;
}

static char *token_for(const claims *c, EVP_PKEY *key, const char *header) {
  char *payload = payload_json(c);
  char *token = make_token(header, payload, key);
  free(payload);
  return token;
}

static const ms_jwt_expect expect = {
    .issuer = ISSUER, .audience = AUDIENCE, .now = NOW, .skew_seconds = 60};

#define RS256 "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"typ\":\"JWT\"}"
#define ES256 "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"typ\":\"JWT\"}"

/* verify_fails checks that `token` is refused with `reason` in the error,
 * that the output is untouched, and that the error does not quote the
 * token. Frees the token. */
static void verify_fails(char *token, const char *reason, int line) {
  char err[MS_ERR_LEN] = "";
  ms_jwt_claims out;
  memset(&out, 0x5a, sizeof(out));
  if (ms_jwt_verify(token, keys, &expect, &out, err, sizeof(err)) != -1) {
    fprintf(stderr, "line %d: token accepted\n", line);
    test_failures++;
  }
  if (strstr(err, reason) == NULL) {
    fprintf(stderr, "line %d: expected \"%s\" in \"%s\"\n", line, reason, err);
    test_failures++;
  }
  CHECK(((uint8_t *)&out)[0] == 0x5a);
  const char *signature = strrchr(token, '.');
  if (signature != NULL && strlen(signature + 1) >= 8) {
    char tail[16];
    memcpy(tail, signature + strlen(signature) - 8, 8);
    tail[8] = '\0';
    CHECK(strstr(err, tail) == NULL);
  }
  free(token);
}
#define VERIFY_FAILS(token, reason) verify_fails((token), (reason), __LINE__)

static void test_valid(void) {
  char err[MS_ERR_LEN];
  claims c = good_claims();
  ms_jwt_claims out;
  char *token = token_for(&c, rsa, RS256);
  CHECK(ms_jwt_verify(token, keys, &expect, &out, err, sizeof(err)) == 0);
  CHECK(strcmp(out.subject, "system:serviceaccount:shop:orders") == 0);
  CHECK(strcmp(out.namespace_name, "shop") == 0);
  CHECK(strcmp(out.service_account, "orders") == 0);
  CHECK(strcmp(out.pod, "orders-7d9f-abcde") == 0);
  CHECK(out.expires_at == NOW + 3600);
  free(token);

  c.aud_json = "\"" AUDIENCE "\""; /* a plain string */
  c.pod = NULL;
  token = token_for(&c, ec, ES256);
  CHECK(ms_jwt_verify(token, keys, &expect, &out, err, sizeof(err)) == 0);
  CHECK(strcmp(out.service_account, "orders") == 0 && out.pod[0] == '\0');
  free(token);

  /* No kid: every key of the alg's type is tried. */
  c.aud_json = "[\"api\",\"" AUDIENCE "\"]";
  token = token_for(&c, rsa, "{\"alg\":\"RS256\"}");
  CHECK(ms_jwt_verify(token, keys, &expect, &out, err, sizeof(err)) == 0);
  free(token);

  /* Within the skew on each side. */
  c = good_claims();
  c.exp = NOW - 30;
  c.nbf = NOW + 30;
  c.iat = NOW + 30;
  token = token_for(&c, ec, ES256);
  CHECK(ms_jwt_verify(token, keys, &expect, &out, err, sizeof(err)) == 0);
  free(token);
}

static void test_times(void) {
  claims c = good_claims();
  c.exp = NOW - 120;
  VERIFY_FAILS(token_for(&c, rsa, RS256), "the token expired at 2026-11-23T09:58:00Z");
  c = good_claims();
  c.exp = 0;
  VERIFY_FAILS(token_for(&c, rsa, RS256), "no exp claim");
  c = good_claims();
  c.nbf = NOW + 600;
  VERIFY_FAILS(token_for(&c, rsa, RS256), "not valid before 2026-11-23T10:10:00Z");
  c = good_claims();
  c.iat = NOW + 600;
  VERIFY_FAILS(token_for(&c, ec, ES256), "issued in the future");
  char *token =
      make_token(RS256, "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",\"exp\":\"x\"}", rsa);
  VERIFY_FAILS(token, "exp claim is not a time");
}

static void test_issuer_audience(void) {
  claims c = good_claims();
  c.aud_json = "[\"other\",\"api\"]";
  VERIFY_FAILS(token_for(&c, rsa, RS256), "aud is [\"other\", \"api\"], not \"istio-ca\"");
  c.aud_json = "\"other\"";
  VERIFY_FAILS(token_for(&c, rsa, RS256), "aud is [\"other\"], not \"istio-ca\"");
  c.aud_json = NULL;
  VERIFY_FAILS(token_for(&c, rsa, RS256), "no aud claim");
  c = good_claims();
  c.iss = "https://evil.example";
  VERIFY_FAILS(token_for(&c, rsa, RS256), "iss is \"https://evil.example\", not \"" ISSUER "\"");
}

static void test_forgeries(void) {
  claims c = good_claims();

  /* A flipped signature byte. */
  char *token = token_for(&c, rsa, RS256);
  char *sig = strrchr(token, '.') + 10;
  *sig = *sig == 'A' ? 'B' : 'A';
  VERIFY_FAILS(token, "signature does not verify with the key with kid \"rsa-1\"");
  token = token_for(&c, ec, "{\"alg\":\"ES256\"}");
  sig = strrchr(token, '.') + 10;
  *sig = *sig == 'A' ? 'B' : 'A';
  VERIFY_FAILS(token, "does not verify with any of the 1 EC keys");

  /* Unsigned. */
  VERIFY_FAILS(token_for(&c, NULL, "{\"alg\":\"none\",\"typ\":\"JWT\"}"),
               "unsigned (alg \"none\")");

  /* HS256 keyed with the RSA public key: the classic algorithm confusion. */
  BIO *bio = BIO_new(BIO_s_mem());
  CHECK(PEM_write_bio_PUBKEY(bio, rsa));
  const uint8_t *secret = NULL;
  size_t secret_len = 0;
  BIO_mem_contents(bio, &secret, &secret_len);
  const char *header = "{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}";
  char *payload = payload_json(&c);
  char *h = b64url((const uint8_t *)header, strlen(header));
  char *p = b64url((const uint8_t *)payload, strlen(payload));
  char input[4096];
  snprintf(input, sizeof(input), "%s.%s", h, p);
  uint8_t mac[32];
  unsigned mac_len = 0;
  CHECK(HMAC(EVP_sha256(), secret, secret_len, (const uint8_t *)input, strlen(input), mac,
             &mac_len) != NULL);
  char *m = b64url(mac, mac_len);
  token = malloc(strlen(input) + strlen(m) + 2);
  sprintf(token, "%s.%s", input, m);
  VERIFY_FAILS(token, "alg \"HS256\" is refused");
  free(m);
  free(h);
  free(p);
  free(payload);
  BIO_free(bio);

  VERIFY_FAILS(token_for(&c, rsa, "{\"alg\":\"PS256\"}"), "alg \"PS256\" is refused");
  VERIFY_FAILS(token_for(&c, rsa, "{\"typ\":\"JWT\"}"), "no alg");
  VERIFY_FAILS(token_for(&c, rsa, "{\"alg\":\"RS256\",\"crit\":[\"exp\"]}"), "crit");

  /* Keys: an unknown kid, a rotated key, a kid of the wrong type. */
  VERIFY_FAILS(token_for(&c, rsa, "{\"alg\":\"RS256\",\"kid\":\"rsa-9\"}"),
               "no key in the key set has the token's kid \"rsa-9\"");
  VERIFY_FAILS(token_for(&c, rotated, "{\"alg\":\"RS256\"}"),
               "does not verify with any of the 1 RSA keys");
  VERIFY_FAILS(token_for(&c, rotated, RS256), "does not verify with the key with kid \"rsa-1\"");
  VERIFY_FAILS(token_for(&c, ec, "{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}"),
               "kid \"rsa-1\" is not an EC key");
  /* An RS256 signature presented as ES256. */
  token = token_for(&c, rsa, "{\"alg\":\"ES256\"}");
  VERIFY_FAILS(token, "ES256 signature is 256 bytes, not 64");
}

static void test_kubernetes_claims(void) {
  claims c = good_claims();
  c.no_k8s = true;
  VERIFY_FAILS(token_for(&c, rsa, RS256), "no kubernetes.io claims");
  c = good_claims();
  c.sub = "system:serviceaccount:shop:admin";
  VERIFY_FAILS(token_for(&c, rsa, RS256),
               "sub \"system:serviceaccount:shop:admin\" disagrees with its kubernetes.io claims "
               "(system:serviceaccount:shop:orders)");
  c.sub = NULL;
  VERIFY_FAILS(token_for(&c, rsa, RS256), "disagrees");
  c = good_claims();
  c.ns = "shop/../kube-system";
  c.sub = "system:serviceaccount:shop/../kube-system:orders";
  VERIFY_FAILS(token_for(&c, rsa, RS256), "not a Kubernetes name");

  /* A name longer than the claim buffers: an error, not a truncation. */
  char long_name[300];
  memset(long_name, 'a', sizeof(long_name) - 1);
  long_name[sizeof(long_name) - 1] = '\0';
  char sub[400];
  snprintf(sub, sizeof(sub), "system:serviceaccount:shop:%s", long_name);
  c = good_claims();
  c.sa = long_name;
  c.sub = sub;
  VERIFY_FAILS(token_for(&c, rsa, RS256), "serviceaccount.name claim is longer than 253 bytes");
  long_name[253] = '\0'; /* the longest names Kubernetes allows fit every buffer */
  snprintf(sub, sizeof(sub), "system:serviceaccount:shop:%s", long_name);
  char ns[64];
  memset(ns, 'n', 63);
  ns[63] = '\0';
  char sub2[420];
  snprintf(sub2, sizeof(sub2), "system:serviceaccount:%s:%s", ns, long_name);
  c.ns = ns;
  c.sub = sub2;
  char err[MS_ERR_LEN];
  ms_jwt_claims out;
  char *token = token_for(&c, rsa, RS256);
  CHECK(ms_jwt_verify(token, keys, &expect, &out, err, sizeof(err)) == 0);
  CHECK(strcmp(out.subject, sub2) == 0 && strlen(out.service_account) == 253);
  free(token);
}

static void test_malformed(void) {
  char *big = malloc(17 * 1024);
  memset(big, 'A', 17 * 1024 - 1);
  big[17 * 1024 - 1] = '\0';
  VERIFY_FAILS(big, "longer than 16384 bytes");
  VERIFY_FAILS(strdup("abc.def"), "not a compact JWS");
  VERIFY_FAILS(strdup("a.b.c.d"), "not a compact JWS");
  VERIFY_FAILS(strdup(".payload.sig"), "not a compact JWS");

  claims c = good_claims();
  char *token = token_for(&c, rsa, RS256);
  char *padded = malloc(strlen(token) + 3);
  char *dot = strchr(token, '.');
  sprintf(padded, "%.*s==%s", (int)(dot - token), token, dot); /* padding is not base64url */
  VERIFY_FAILS(padded, "header is not base64url");
  token[1] = '+'; /* standard base64, not URL-safe */
  VERIFY_FAILS(token, "header is not base64url");
  token = token_for(&c, rsa, RS256);
  strrchr(token, '.')[1] = '*';
  VERIFY_FAILS(token, "signature is not base64url");
  token = token_for(&c, rsa, RS256);
  dot = strrchr(token, '.');
  dot[-1] = '!';
  VERIFY_FAILS(token, "signature does not verify"); /* the payload's signature covers the text */
  VERIFY_FAILS(make_token("[1,2]", "{}", rsa), "header is not a JSON object");

  /* Verification needs expectations. */
  char err[MS_ERR_LEN];
  ms_jwt_claims out;
  ms_jwt_expect none = {0};
  token = token_for(&c, rsa, RS256);
  CHECK(ms_jwt_verify(token, keys, &none, &out, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "expected issuer and audience");
  free(token);
}

static void test_jwks(void) {
  char err[MS_ERR_LEN];
  ms_jwks *set = NULL;
  EVP_PKEY *small = new_rsa(1024), *p384 = new_ec(NID_secp384r1);
  cJSON *array = cJSON_CreateArray();
  jwk_add(array, small, "small", "sig");
  jwk_add(array, p384, "p384", NULL);
  jwk_add(array, rsa, "enc", "enc");
  cJSON_AddItemToArray(array, cJSON_Parse("{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}"));
  char *text = jwks_text(cJSON_Duplicate(array, true));
  CHECK(ms_jwks_parse(text, strlen(text), &set, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "no usable key");
  CHECK_CONTAINS(err, "RSA key of 1024 bits");
  CHECK(set == NULL);
  free(text);

  /* The same with one usable key among them. */
  jwk_add(array, ec, "ec-1", "sig");
  text = jwks_text(array);
  CHECK(ms_jwks_parse(text, strlen(text), &set, err, sizeof(err)) == 0);
  CHECK(ms_jwks_count(set) == 1);
  ms_jwks_free(set);
  free(text);

  const char *bad[][2] = {
      {"not json", "not a JSON object with a \"keys\" array"},
      {"{\"keys\":{}}", "\"keys\" array"},
      {"{\"keys\":[]}", "no usable key"},
      {"{\"keys\":[7]}", "keys[0] is not a JSON object"},
      {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB=\",\"e\":\"AQAB\"}]}",
       "n and e must be base64url"},
      {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQAB\",\"y\":\"AQAB\"}]}",
       "x and y must be 32 bytes"},
      {"{\"keys\":[{\"kid\":\"k\",\"kty\":\"EC\",\"crv\":\"P-256\",\"d\":\"AA\"}]}",
       "keys[0] (kid \"k\") holds a private key"},
      {"{\"keys\":[{\"n\":\"AQAB\"}]}", "has no kty"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    set = NULL;
    CHECK(ms_jwks_parse(bad[i][0], strlen(bad[i][0]), &set, err, sizeof(err)) == -1);
    CHECK_CONTAINS(err, bad[i][1]);
    CHECK(set == NULL);
  }
  /* A point off the curve. */
  char x[44], y[44];
  memset(x, 'A', 43);
  memset(y, 'A', 43);
  x[42] = 'E'; /* x = 1, y = 1 */
  y[42] = 'E';
  x[43] = y[43] = '\0';
  char doc[300];
  snprintf(doc, sizeof(doc),
           "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}", x, y);
  CHECK(ms_jwks_parse(doc, strlen(doc), &set, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "not a point on P-256");
  CHECK(ms_jwks_count(NULL) == 0);
  ms_jwks_free(NULL);
  EVP_PKEY_free(small);
  EVP_PKEY_free(p384);
}

static void test_peek(void) {
  char err[MS_ERR_LEN];
  ms_jwt_claims out;
  claims c = good_claims();
  c.exp = NOW - 100000; /* peeking checks neither time nor signature */
  char *token = token_for(&c, rotated, "{\"alg\":\"RS256\",\"kid\":\"gone\"}");
  CHECK(ms_jwt_peek_claims(token, &out, err, sizeof(err)) == 0);
  CHECK(strcmp(out.namespace_name, "shop") == 0 && strcmp(out.service_account, "orders") == 0);
  CHECK(strcmp(out.subject, "system:serviceaccount:shop:orders") == 0);
  CHECK(out.expires_at == NOW - 100000);
  free(token);
  c.no_k8s = true;
  token = token_for(&c, rsa, RS256);
  CHECK(ms_jwt_peek_claims(token, &out, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "no kubernetes.io claims");
  free(token);
  CHECK(ms_jwt_peek_claims("garbage", &out, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "not a compact JWS");
  CHECK(ms_jwt_peek_claims("a.b?.c", &out, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "payload is not base64url");
}

int main(void) {
  char err[MS_ERR_LEN];
  rsa = new_rsa(2048);
  ec = new_ec(NID_X9_62_prime256v1);
  rotated = new_rsa(2048);
  cJSON *array = cJSON_CreateArray();
  jwk_add(array, rsa, "rsa-1", "sig");
  jwk_add(array, ec, "ec-1", NULL);
  char *text = jwks_text(array);
  if (ms_jwks_parse(text, strlen(text), &keys, err, sizeof(err)) != 0) {
    fprintf(stderr, "ms_jwks_parse: %s\n", err);
    return 1;
  }
  free(text);
  CHECK(ms_jwks_count(keys) == 2);

  test_valid();
  test_times();
  test_issuer_audience();
  test_forgeries();
  test_kubernetes_claims();
  test_malformed();
  test_jwks();
  test_peek();

  ms_jwks_free(keys);
  EVP_PKEY_free(rsa);
  EVP_PKEY_free(ec);
  EVP_PKEY_free(rotated);
  return test_finish("jwt_test");
}
