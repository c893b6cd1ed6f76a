/* csr_test.c: certificate requests made, parsed and issued for, and the
 * requests a CA must refuse. */
#include <openssl/ec_key.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "certs/test_csr.h"
#include "certs/test_util.h"

#define SPIFFE_ID "spiffe://shop.test/ns/shop/sa/orders"

static EVP_PKEY *rsa_key(unsigned bits) {
  RSA *rsa = RSA_new();
  BIGNUM *e = BN_new();
  EVP_PKEY *key = EVP_PKEY_new();
  if (rsa == NULL || e == NULL || key == NULL || !BN_set_word(e, RSA_F4) ||
      !RSA_generate_key_ex(rsa, (int)bits, e, NULL) || !EVP_PKEY_assign_RSA(key, rsa)) {
    fprintf(stderr, "cannot make an RSA key\n");
    exit(1);
  }
  BN_free(e);
  return key;
}

static EVP_PKEY *p256_key(void) {
  char err[MS_ERR_LEN];
  EVP_PKEY *key = NULL;
  if (ms_key_new_p256(&key, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  return key;
}

/* request_pem makes a request by hand, as another client might: `sans` in
 * OpenSSL's config form ("DNS:a,URI:b", or NULL), CA:TRUE when `ca`. */
static char *request_pem(EVP_PKEY *key, const char *sans, bool ca) {
  char *pem = ms_test_csr_pem(key, sans, ca);
  CHECK(pem != NULL);
  return pem;
}

/* round_trip: a request made for `key` parses, and the certificate issued
 * for it carries the request's key and URI. */
static void round_trip(EVP_PKEY *key) {
  char err[MS_ERR_LEN];
  test_pki pki;
  test_pki_init(&pki, "CSR CA");
  char *pem = NULL;
  CHECK(ms_csr_new(key, SPIFFE_ID, &pem, err, sizeof(err)) == 0);
  CHECK_CONTAINS(pem, "-----BEGIN CERTIFICATE REQUEST-----");
  CHECK(strstr(pem, "PRIVATE") == NULL);

  ms_csr_info info;
  CHECK(ms_csr_parse(pem, strlen(pem), &info, err, sizeof(err)) == 0);
  CHECK(info.uri_count == 1 && strcmp(info.uris[0], SPIFFE_ID) == 0);
  CHECK(info.other_san_count == 0);
  CHECK(!info.asks_ca);
  CHECK(EVP_PKEY_cmp(info.public_key, key) == 1);

  ms_issue_request request = {
      .uris = (const char *const *)info.uris,
      .uri_count = info.uri_count,
      .client = true,
      .server = true,
      .ttl_seconds = 3600,
  };
  X509 *cert = NULL;
  CHECK(ms_cert_issue_for_key(&request, info.public_key, pki.ca, pki.ca_key, &cert, err,
                              sizeof(err)) == 0);
  EVP_PKEY *certified = cert != NULL ? X509_get_pubkey(cert) : NULL;
  CHECK(certified != NULL && EVP_PKEY_cmp(certified, info.public_key) == 1);
  EVP_PKEY_free(certified);
  CHECK(ms_key_matches_cert(key, cert));
  CHECK(X509_verify(cert, pki.ca_key) == 1);
  ms_cert_info cert_info;
  CHECK(ms_cert_info_init(&cert_info, cert) == 0);
  CHECK(cert_info.san_count == 1 && strcmp(cert_info.sans[0], "URI:" SPIFFE_ID) == 0);
  CHECK(!cert_info.is_ca);
  ms_cert_info_cleanup(&cert_info);

  /* The shared signing path refuses what ms_cert_issue refuses. */
  X509 *untouched = NULL;
  request.ttl_seconds = 0;
  CHECK(ms_cert_issue_for_key(&request, info.public_key, pki.ca, pki.ca_key, &untouched, err,
                              sizeof(err)) == -1);
  CHECK_CONTAINS(err, "lifetime");
  CHECK(ms_cert_issue_for_key(&request, NULL, pki.ca, pki.ca_key, &untouched, err, sizeof(err)) ==
        -1);
  CHECK(untouched == NULL);

  X509_free(cert);
  ms_csr_info_cleanup(&info);
  free(pem);
  test_pki_cleanup(&pki);
}

static void test_round_trips(void) {
  EVP_PKEY *ec = p256_key(), *rsa = rsa_key(2048);
  round_trip(ec);
  round_trip(rsa);
  EVP_PKEY_free(ec);
  EVP_PKEY_free(rsa);
}

static void test_tampered_signature(void) {
  char err[MS_ERR_LEN];
  EVP_PKEY *key = p256_key();
  char *pem = NULL;
  CHECK(ms_csr_new(key, SPIFFE_ID, &pem, err, sizeof(err)) == 0);
  BIO *in = BIO_new_mem_buf(pem, (int)strlen(pem));
  X509_REQ *req = PEM_read_bio_X509_REQ(in, NULL, NULL, NULL);
  uint8_t *der = NULL;
  int der_len = req != NULL ? i2d_X509_REQ(req, &der) : -1;
  CHECK(der_len > 0);
  der[der_len - 1] ^= 0x01; /* the last byte of the signature's s */
  BIO *out = BIO_new(BIO_s_mem());
  CHECK(PEM_write_bio(out, "CERTIFICATE REQUEST", "", der, der_len) > 0);
  const uint8_t *data = NULL;
  size_t len = 0;
  BIO_mem_contents(out, &data, &len);
  ms_csr_info info = {0};
  CHECK(ms_csr_parse((const char *)data, len, &info, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "signature does not verify");
  CHECK(info.public_key == NULL && info.uris == NULL);
  BIO_free(out);
  OPENSSL_free(der);
  X509_REQ_free(req);
  BIO_free(in);
  free(pem);
  EVP_PKEY_free(key);
}

static void test_other_sans_and_ca(void) {
  char err[MS_ERR_LEN];
  EVP_PKEY *key = p256_key();
  char *pem =
      request_pem(key, "DNS:orders.shop.svc,URI:" SPIFFE_ID ",DNS:*.shop.test,IP:10.0.0.1", true);
  ms_csr_info info;
  CHECK(ms_csr_parse(pem, strlen(pem), &info, err, sizeof(err)) == 0);
  CHECK(info.uri_count == 1 && strcmp(info.uris[0], SPIFFE_ID) == 0);
  CHECK(info.other_san_count == 3);
  CHECK(info.asks_ca);
  ms_csr_info_cleanup(&info);
  free(pem);

  /* No extensions at all: a request for nothing, which the caller refuses. */
  pem = request_pem(key, NULL, false);
  CHECK(ms_csr_parse(pem, strlen(pem), &info, err, sizeof(err)) == 0);
  CHECK(info.uri_count == 0 && info.other_san_count == 0 && !info.asks_ca);
  ms_csr_info_cleanup(&info);
  free(pem);
  EVP_PKEY_free(key);
}

static void test_refused_keys(void) {
  char err[MS_ERR_LEN];
  ms_csr_info info = {0};
  EVP_PKEY *small = rsa_key(1024);
  char *pem = request_pem(small, "URI:" SPIFFE_ID, false);
  CHECK(ms_csr_parse(pem, strlen(pem), &info, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "RSA key of 1024 bits");
  free(pem);
  char *untouched = NULL;
  CHECK(ms_csr_new(small, SPIFFE_ID, &untouched, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "1024");
  CHECK(untouched == NULL);
  EVP_PKEY_free(small);

  EC_KEY *ec = EC_KEY_new_by_curve_name(NID_secp384r1);
  EVP_PKEY *p384 = EVP_PKEY_new();
  CHECK(ec != NULL && EC_KEY_generate_key(ec) && EVP_PKEY_assign_EC_KEY(p384, ec));
  pem = request_pem(p384, "URI:" SPIFFE_ID, false);
  CHECK(ms_csr_parse(pem, strlen(pem), &info, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "P-256");
  free(pem);
  EVP_PKEY_free(p384);

  EVP_PKEY *key = p256_key();
  CHECK(ms_csr_new(key, "", &untouched, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "SPIFFE ID");
  EVP_PKEY_free(key);
}

static void test_garbage(void) {
  char err[MS_ERR_LEN];
  ms_csr_info info = {0};
  const char *text = "hello, I am a certificate request";
  CHECK(ms_csr_parse(text, strlen(text), &info, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "not PEM");

  const char *broken =
      "-----BEGIN CERTIFICATE REQUEST-----\nTUlJQmFhYWFh\n-----END CERTIFICATE REQUEST-----\n";
  CHECK(ms_csr_parse(broken, strlen(broken), &info, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "does not parse");

  test_pki pki;
  test_pki_init(&pki, "Not a CSR");
  BIO *bio = BIO_new(BIO_s_mem());
  CHECK(PEM_write_bio_X509(bio, pki.ca));
  const uint8_t *data = NULL;
  size_t len = 0;
  BIO_mem_contents(bio, &data, &len);
  CHECK(ms_csr_parse((const char *)data, len, &info, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "no CERTIFICATE REQUEST");
  BIO_free(bio);
  test_pki_cleanup(&pki);

  size_t big_len = 64 * 1024 + 1;
  char *big = malloc(big_len);
  memset(big, 'A', big_len);
  CHECK(ms_csr_parse(big, big_len, &info, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "more than");
  free(big);
  CHECK(info.public_key == NULL && info.uris == NULL);
  ms_csr_info_cleanup(NULL);
}

int main(void) {
  test_round_trips();
  test_tampered_signature();
  test_other_sans_and_ca();
  test_refused_keys();
  test_garbage();
  return test_finish("csr_test");
}
