/* certs_test.c: issuing, PEM round trips, key matching, inspection and
 * durations, through the real functions. */
#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/sha.h>

#include "certs/test_util.h"
#include "common/file.h"
#include "common/time.h"

static void test_duration_parse(void) {
  int64_t s = -1;
  CHECK(ms_duration_parse("90s", &s) == 0 && s == 90);
  CHECK(ms_duration_parse("15m", &s) == 0 && s == 900);
  CHECK(ms_duration_parse("24h", &s) == 0 && s == 86400);
  CHECK(ms_duration_parse("30d", &s) == 0 && s == 30 * 86400);
  CHECK(ms_duration_parse("42", &s) == 0 && s == 42);
  CHECK(ms_duration_parse("87600h", &s) == 0 && s == 87600LL * 3600);
  s = 7;
  CHECK(ms_duration_parse("", &s) == -1);
  CHECK(ms_duration_parse("h", &s) == -1);
  CHECK(ms_duration_parse("-1h", &s) == -1);
  CHECK(ms_duration_parse("1x", &s) == -1);
  CHECK(ms_duration_parse("1hh", &s) == -1);
  CHECK(ms_duration_parse("1 h", &s) == -1);
  CHECK(ms_duration_parse("99999999999999999999d", &s) == -1);
  CHECK(ms_duration_parse("999999999999999999d", &s) == -1);
  CHECK(ms_duration_parse(NULL, &s) == -1);
  CHECK(s == 7); /* untouched on failure */
}

static void test_rfc3339(void) {
  char buf[32];
  ms_time_rfc3339(0, buf, sizeof(buf));
  CHECK(strcmp(buf, "1970-01-01T00:00:00Z") == 0);
  ms_time_rfc3339(1795428000, buf, sizeof(buf));
  CHECK(strcmp(buf, "2026-11-23T10:00:00Z") == 0);
}

/* expected_serial_hex writes the serial's DER bytes in hex, as `openssl x509
 * -serial` does (whole bytes, no leading zero byte). */
static void expected_serial_hex(X509 *cert, char *buf, size_t len) {
  const ASN1_INTEGER *serial = X509_get0_serialNumber(cert);
  const unsigned char *data = ASN1_STRING_get0_data(serial);
  int n = ASN1_STRING_length(serial), i = 0;
  size_t used = 0;
  buf[0] = '\0';
  while (i < n - 1 && data[i] == 0)
    i++;
  for (; i < n && used + 3 < len; i++)
    used += snprintf(buf + used, len - used, "%02x", data[i]);
}

static void test_issue_and_inspect(void) {
  char err[MS_ERR_LEN];
  test_pki pki;
  test_pki_init(&pki, "Test CA");
  const char *dns[] = {"orders.shop.svc", "*.orders.test"};
  const char *ips[] = {"10.1.2.3", "::1"};
  const char *uris[] = {"spiffe://shop.test/ns/shop/sa/orders"};
  ms_issue_request request = {
      .common_name = "orders",
      .dns = dns,
      .dns_count = 2,
      .ips = ips,
      .ip_count = 2,
      .uris = uris,
      .uri_count = 1,
      .client = true,
      .ttl_seconds = 3600,
  };
  X509 *cert = NULL;
  EVP_PKEY *key = NULL;
  CHECK(ms_cert_issue(&request, pki.ca, pki.ca_key, &cert, &key, err, sizeof(err)) == 0);
  CHECK(cert != NULL && key != NULL);
  CHECK(ms_key_matches_cert(key, cert));
  CHECK(!ms_key_matches_cert(key, pki.ca));
  CHECK(ms_key_matches_cert(pki.ca_key, pki.ca));

  /* The certificate chains to the CA. */
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *store_ctx = X509_STORE_CTX_new();
  X509_STORE_add_cert(store, pki.ca);
  X509_STORE_CTX_init(store_ctx, store, cert, NULL);
  CHECK(X509_verify_cert(store_ctx) == 1);
  X509_STORE_CTX_free(store_ctx);
  X509_STORE_free(store);

  ms_cert_info info;
  CHECK(ms_cert_info_init(&info, cert) == 0);
  CHECK(strcmp(info.subject, "CN=orders") == 0);
  CHECK(strcmp(info.issuer, "CN=Test CA") == 0);
  CHECK(!info.is_ca);
  CHECK(info.san_count == 5);
  if (info.san_count == 5) {
    CHECK(strcmp(info.sans[0], "DNS:orders.shop.svc") == 0);
    CHECK(strcmp(info.sans[1], "DNS:*.orders.test") == 0);
    CHECK(strcmp(info.sans[2], "IP:10.1.2.3") == 0);
    CHECK(strcmp(info.sans[3], "IP:::1") == 0);
    CHECK(strcmp(info.sans[4], "URI:spiffe://shop.test/ns/shop/sa/orders") == 0);
  }
  char serial[80];
  expected_serial_hex(cert, serial, sizeof(serial));
  CHECK(strcmp(info.serial_hex, serial) == 0);
  CHECK(strlen(info.serial_hex) >= 25 && strlen(info.serial_hex) <= 32);

  uint8_t *der = NULL;
  int der_len = i2d_X509(cert, &der);
  uint8_t digest[SHA256_DIGEST_LENGTH];
  char fingerprint[65];
  SHA256(der, (size_t)der_len, digest);
  OPENSSL_free(der);
  for (int i = 0; i < 32; i++)
    snprintf(fingerprint + 2 * i, 3, "%02x", digest[i]);
  CHECK(strcmp(info.sha256_hex, fingerprint) == 0);

  int64_t now = (int64_t)time(NULL);
  CHECK(info.not_before <= now - 299 && info.not_before >= now - 310);
  CHECK(info.not_after - info.not_before == 3600 + 300);

  char *json = ms_cert_info_to_json(&info);
  cJSON *root = json != NULL ? cJSON_Parse(json) : NULL;
  CHECK(root != NULL);
  if (root != NULL) {
    cJSON *item = cJSON_GetObjectItem(root, "serial_number");
    CHECK(cJSON_IsString(item) && strcmp(item->valuestring, serial) == 0);
    item = cJSON_GetObjectItem(root, "subject_alt_names");
    CHECK(cJSON_IsArray(item) && cJSON_GetArraySize(item) == 5);
    item = cJSON_GetObjectItem(root, "expiration_time");
    CHECK(cJSON_IsString(item) && strlen(item->valuestring) == 20 && item->valuestring[19] == 'Z');
    item = cJSON_GetObjectItem(root, "days_until_expiration");
    CHECK(cJSON_IsNumber(item) && item->valuedouble == 0);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(root, "is_ca")));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(root, "sha256_fingerprint")));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(root, "valid_from")));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(root, "issuer")));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(root, "subject")));
  }
  cJSON_Delete(root);
  free(json);
  ms_cert_info_cleanup(&info);
  CHECK(info.sans == NULL && info.san_count == 0);
  ms_cert_info_cleanup(&info); /* twice is fine */

  ms_cert_info ca_info;
  CHECK(ms_cert_info_init(&ca_info, pki.ca) == 0);
  CHECK(ca_info.is_ca && ca_info.san_count == 0 && ca_info.sans == NULL);
  CHECK(strcmp(ca_info.subject, ca_info.issuer) == 0);
  ms_cert_info_cleanup(&ca_info);

  /* PEM round trip: leaf then CA in one file, key in another. */
  const char *crt_path = test_path("orders.crt"), *key_path = test_path("orders.key");
  CHECK(ms_pem_write_cert(crt_path, cert, pki.ca, err, sizeof(err)) == 0);
  CHECK(ms_pem_write_key(key_path, key, err, sizeof(err)) == 0);
  struct stat st;
  CHECK(stat(key_path, &st) == 0 && (st.st_mode & 0777) == 0600);
  char *pem = NULL;
  size_t len = 0;
  STACK_OF(X509) *chain = NULL;
  CHECK(ms_file_read(crt_path, &pem, &len, err, sizeof(err)) == 0);
  CHECK(ms_pem_parse_chain(pem, len, crt_path, &chain, err, sizeof(err)) == 0);
  CHECK(chain != NULL && sk_X509_num(chain) == 2);
  if (chain != NULL && sk_X509_num(chain) == 2) {
    CHECK(X509_cmp(sk_X509_value(chain, 0), cert) == 0);
    CHECK(X509_cmp(sk_X509_value(chain, 1), pki.ca) == 0);
  }
  sk_X509_pop_free(chain, X509_free);
  free(pem);
  EVP_PKEY *parsed = NULL;
  CHECK(ms_file_read(key_path, &pem, &len, err, sizeof(err)) == 0);
  CHECK(strstr(pem, "ENCRYPTED") == NULL);
  CHECK(ms_pem_parse_key(pem, len, NULL, key_path, &parsed, err, sizeof(err)) == 0);
  CHECK(ms_key_matches_cert(parsed, cert));
  EVP_PKEY_free(parsed);
  free(pem);

  /* An encrypted key needs its password. */
  CHECK(ms_pem_write_key_encrypted(key_path, key, "s3cret", err, sizeof(err)) == 0);
  CHECK(ms_file_read(key_path, &pem, &len, err, sizeof(err)) == 0);
  CHECK_CONTAINS(pem, "ENCRYPTED");
  parsed = NULL;
  CHECK(ms_pem_parse_key(pem, len, NULL, key_path, &parsed, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "encrypted");
  CHECK_CONTAINS(err, key_path);
  CHECK(ms_pem_parse_key(pem, len, "wrong", key_path, &parsed, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "wrong password");
  CHECK(parsed == NULL);
  CHECK(ms_pem_parse_key(pem, len, "s3cret", key_path, &parsed, err, sizeof(err)) == 0);
  CHECK(ms_key_matches_cert(parsed, cert));
  EVP_PKEY_free(parsed);
  free(pem);

  X509_free(cert);
  EVP_PKEY_free(key);
  test_pki_cleanup(&pki);
}

static void test_bad_input(void) {
  char err[MS_ERR_LEN];
  STACK_OF(X509) *chain = NULL;
  EVP_PKEY *key = NULL;
  CHECK(ms_pem_parse_chain("", 0, "empty.pem", &chain, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "empty.pem holds no PEM certificate");
  const char *broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  CHECK(ms_pem_parse_chain(broken, strlen(broken), "broken.pem", &chain, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "cannot parse certificate 1 in broken.pem");
  CHECK(chain == NULL);
  CHECK(ms_pem_parse_key("hello", 5, NULL, "k.pem", &key, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "k.pem holds no PEM private key");
  CHECK(key == NULL);

  char *data = NULL;
  size_t len = 0;
  CHECK(ms_file_read("/nonexistent/x.pem", &data, &len, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "cannot open /nonexistent/x.pem");
  CHECK(ms_file_read("/dev", &data, &len, err, sizeof(err)) == -1);
  CHECK(data == NULL);

  test_pki pki;
  test_pki_init(&pki, "Bad Input CA");
  const char *ips[] = {"not-an-ip"};
  ms_issue_request request = {.ips = ips, .ip_count = 1, .ttl_seconds = 60};
  X509 *cert = NULL;
  CHECK(ms_cert_issue(&request, pki.ca, pki.ca_key, &cert, &key, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "\"not-an-ip\" is not an IP address");
  request.ip_count = 0;
  request.ttl_seconds = 0;
  CHECK(ms_cert_issue(&request, pki.ca, pki.ca_key, &cert, &key, err, sizeof(err)) == -1);
  CHECK(cert == NULL && key == NULL);
  CHECK(ms_pem_write_cert("/nonexistent/dir/x.crt", pki.ca, NULL, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "/nonexistent/dir/x.crt");
  test_pki_cleanup(&pki);
}

static void test_serials_differ(void) {
  test_pki pki;
  test_pki_init(&pki, "Serial CA");
  X509 *a = NULL, *b = NULL;
  test_issue(&pki, "serial_a", "a.test", NULL, NULL, 0, 60, NULL, &a);
  test_issue(&pki, "serial_b", "b.test", NULL, NULL, 0, 60, NULL, &b);
  CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(a), X509_get0_serialNumber(b)) != 0);
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(a), NULL);
  CHECK(bn != NULL && !BN_is_negative(bn) && BN_num_bits(bn) <= 128 && BN_num_bits(bn) > 96);
  BN_free(bn);
  X509_free(a);
  X509_free(b);
  test_pki_cleanup(&pki);
}

int main(void) {
  test_duration_parse();
  test_rfc3339();
  test_issue_and_inspect();
  test_bad_input();
  test_serials_differ();
  return test_finish("certs_test");
}
