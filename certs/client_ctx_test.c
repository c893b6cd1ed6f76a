/* client_ctx_test.c: client contexts built from files, as the sidecar builds
 * them: keys and passwords, expiry, trust store, CRL, digests. */
#include <openssl/x509v3.h>

#include "certs/test_util.h"
#include "common/file.h"

/* build loads the material of `settings` and builds a context; returns what
 * ms_client_ctx_new returned (or the load's failure) with the message in err. */
static int build(const ms_tls_settings *settings, SSL_CTX **out_ctx, ms_cert_info *out_leaf,
                 ms_cert_info **out_cas, size_t *out_ca_count, char *err, size_t err_len) {
  ms_tls_material material;
  if (ms_tls_material_load(settings, &material, err, err_len) != 0) return -2;
  int rc = ms_client_ctx_new(settings, &material, out_ctx, out_leaf, out_cas, out_ca_count, err,
                             err_len);
  ms_tls_material_cleanup(&material);
  return rc;
}

static void test_good_context(void) {
  char err[MS_ERR_LEN] = "";
  ms_tls_settings settings = test_client_settings();
  static const uint8_t alpn[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  settings.alpn = alpn;
  settings.alpn_len = sizeof(alpn);
  settings.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305";
  settings.curves = "X25519:P-256";
  SSL_CTX *ctx = NULL;
  ms_cert_info leaf, *cas = NULL;
  size_t ca_count = 0;
  int rc = build(&settings, &ctx, &leaf, &cas, &ca_count, err, sizeof(err));
  if (rc != 0) fprintf(stderr, "unexpected: %s\n", err);
  CHECK(rc == 0);
  if (rc != 0) return;
  CHECK(ctx != NULL);
  CHECK(SSL_CTX_get_verify_mode(ctx) == SSL_VERIFY_PEER);
  CHECK(SSL_CTX_get_min_proto_version(ctx) == TLS1_2_VERSION);
  CHECK(SSL_CTX_get_session_cache_mode(ctx) ==
        (SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL));
  CHECK(SSL_CTX_get0_certificate(ctx) != NULL);
  CHECK(strcmp(leaf.subject, "CN=client") == 0);
  CHECK(leaf.san_count == 2);
  CHECK(ca_count == 1 && cas != NULL && cas[0].is_ca);
  if (ca_count == 1) CHECK(strcmp(cas[0].subject, "CN=Client Test CA") == 0);
  ms_cert_info_cleanup(&leaf);
  ms_cert_info_array_free(cas, ca_count);
  SSL_CTX_free(ctx);

  /* No client certificate: the leaf comes back zeroed. */
  settings.certificate = NULL;
  settings.private_key = NULL;
  settings.session_reuse = false;
  memset(&leaf, 0xff, sizeof(leaf));
  CHECK(build(&settings, &ctx, &leaf, NULL, NULL, err, sizeof(err)) == 0);
  CHECK(leaf.san_count == 0 && leaf.sans == NULL && leaf.subject[0] == '\0');
  CHECK(SSL_CTX_get0_certificate(ctx) == NULL);
  CHECK(SSL_CTX_get_session_cache_mode(ctx) == SSL_SESS_CACHE_OFF);
  SSL_CTX_free(ctx);

  /* No verification and no CA is fine too. */
  settings.trusted_ca = NULL;
  settings.verify = false;
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == 0);
  CHECK(SSL_CTX_get_verify_mode(ctx) == SSL_VERIFY_NONE);
  SSL_CTX_free(ctx);
}

static void test_refusals(void) {
  char err[MS_ERR_LEN];
  SSL_CTX *ctx = NULL;
  ms_tls_settings settings = test_client_settings();

  settings.private_key = test_path("other.key");
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "does not match certificate");
  CHECK_CONTAINS(err, "other.key");

  settings = test_client_settings();
  settings.certificate = test_path("expired.crt");
  settings.private_key = test_path("expired.key");
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "expired");
  CHECK_CONTAINS(err, "expired.crt");
  CHECK_CONTAINS(err, "Z ("); /* the RFC 3339 expiry date */

  settings.certificate = test_path("future.crt");
  settings.private_key = test_path("future.key");
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "not yet valid");

  settings = test_client_settings();
  settings.trusted_ca = NULL;
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -2);
  CHECK_CONTAINS(err, "trusted_ca");

  settings = test_client_settings();
  settings.trusted_ca = test_path("missing.crt");
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -2);
  CHECK_CONTAINS(err, "missing.crt");

  settings = test_client_settings();
  settings.trusted_ca = test_path("client.key"); /* not a certificate */
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "holds no PEM certificate");

  settings = test_client_settings();
  settings.private_key = NULL;
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -2);
  CHECK_CONTAINS(err, "private_key is not");

  settings = test_client_settings();
  settings.ciphers = "NOT-A-CIPHER";
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "invalid ciphers \"NOT-A-CIPHER\"");

  settings = test_client_settings();
  settings.curves = "P-999";
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "invalid curves");

  settings = test_client_settings();
  settings.min_version = 0x0301;
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "TLS version");
  ERR_clear_error();
}

static void test_encrypted_key(void) {
  char err[MS_ERR_LEN];
  SSL_CTX *ctx = NULL;
  ms_tls_settings settings = test_client_settings();
  settings.certificate = test_path("locked.crt");
  settings.private_key = test_path("locked.key");

  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "is encrypted and no password_file is set");

  test_write_file(test_path("wrong.pass"), "nope\n");
  settings.password_file = test_path("wrong.pass");
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "wrong password");

  test_write_file(test_path("right.pass"), "correct horse\nsecond line ignored\n");
  settings.password_file = test_path("right.pass");
  int rc = build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err));
  if (rc != 0) fprintf(stderr, "unexpected: %s\n", err);
  CHECK(rc == 0);
  if (rc == 0) SSL_CTX_free(ctx);

  test_write_file(test_path("empty.pass"), "\n");
  settings.password_file = test_path("empty.pass");
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -2);
  CHECK_CONTAINS(err, "is empty");
}

static void test_material_digest(void) {
  char err[MS_ERR_LEN];
  ms_tls_settings settings = test_client_settings();
  ms_tls_material a, b;
  CHECK(ms_tls_material_load(&settings, &a, err, sizeof(err)) == 0);
  CHECK(ms_tls_material_load(&settings, &b, err, sizeof(err)) == 0);
  CHECK(memcmp(a.digest, b.digest, sizeof(a.digest)) == 0);
  CHECK(a.certificate_len > 0 && a.private_key_len > 0 && a.trusted_ca_len > 0);
  CHECK(a.password == NULL && a.crl_pem == NULL);
  ms_tls_material_cleanup(&b);
  settings.verify_depth = 3;
  CHECK(ms_tls_material_load(&settings, &b, err, sizeof(err)) == 0);
  CHECK(memcmp(a.digest, b.digest, sizeof(a.digest)) != 0);
  ms_tls_material_cleanup(&b);
  settings = test_client_settings();
  settings.certificate = test_path("other.crt");
  settings.private_key = test_path("other.key");
  CHECK(ms_tls_material_load(&settings, &b, err, sizeof(err)) == 0);
  CHECK(memcmp(a.digest, b.digest, sizeof(a.digest)) != 0);
  ms_tls_material_cleanup(&b);
  /* What is checked of the peer's names is part of the digest too. */
  static const char *const sans[] = {"URI:spiffe://shop/orders"};
  static const char *const other_sans[] = {"URI:spiffe://shop/payments"};
  const ms_tls_settings changes[] = {
      {.server_name = "orders.shop"},
      {.send_sni = true},
      {.match_sans = sans, .match_san_count = 1},
  };
  for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
    settings = test_client_settings();
    settings.server_name = changes[i].server_name;
    settings.send_sni = changes[i].send_sni;
    settings.match_sans = changes[i].match_sans;
    settings.match_san_count = changes[i].match_san_count;
    CHECK(ms_tls_material_load(&settings, &b, err, sizeof(err)) == 0);
    CHECK(memcmp(a.digest, b.digest, sizeof(a.digest)) != 0);
    ms_tls_material_cleanup(&b);
  }
  ms_tls_material c;
  settings = test_client_settings();
  settings.match_sans = sans;
  settings.match_san_count = 1;
  CHECK(ms_tls_material_load(&settings, &b, err, sizeof(err)) == 0);
  settings.match_sans = other_sans;
  CHECK(ms_tls_material_load(&settings, &c, err, sizeof(err)) == 0);
  CHECK(memcmp(b.digest, c.digest, sizeof(b.digest)) != 0);
  ms_tls_material_cleanup(&c);
  ms_tls_material_cleanup(&b);
  ms_tls_material_cleanup(&a);
  CHECK(a.private_key_pem == NULL && a.private_key_len == 0 && a.certificate_pem == NULL);
}

/* write_crl writes a CRL of the test CA that revokes `revoked` (or nothing). */
static void write_crl(test_pki *pki, X509 *revoked, const char *name) {
  X509_CRL *crl = X509_CRL_new();
  ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL) - 60);
  ASN1_TIME *next = ASN1_TIME_set(NULL, time(NULL) + 86400);
  CHECK(X509_CRL_set_version(crl, X509_CRL_VERSION_2));
  CHECK(X509_CRL_set_issuer_name(crl, X509_get_subject_name(pki->ca)));
  CHECK(X509_CRL_set1_lastUpdate(crl, now) && X509_CRL_set1_nextUpdate(crl, next));
  if (revoked != NULL) {
    X509_REVOKED *entry = X509_REVOKED_new();
    CHECK(X509_REVOKED_set_serialNumber(entry, X509_get0_serialNumber(revoked)));
    CHECK(X509_REVOKED_set_revocationDate(entry, now));
    CHECK(X509_CRL_add0_revoked(crl, entry));
    X509_CRL_sort(crl);
  }
  CHECK(X509_CRL_sign(crl, pki->ca_key, EVP_sha256()));
  FILE *file = fopen(test_path(name), "w");
  CHECK(file != NULL && PEM_write_X509_CRL(file, crl));
  if (file != NULL) fclose(file);
  ASN1_TIME_free(now);
  ASN1_TIME_free(next);
  X509_CRL_free(crl);
}

/* Material from the control plane comes in memory: the same bytes give the
 * same digest as from files (so contexts are still shared by content), and
 * the context builds. A mismatched key is refused the same way. */
static void test_material_in_memory(void) {
  char err[MS_ERR_LEN];
  ms_tls_settings files = test_client_settings();
  ms_tls_material from_files, from_memory;
  CHECK(ms_tls_material_load(&files, &from_files, err, sizeof(err)) == 0);

  ms_tls_settings memory = test_client_settings();
  memory.certificate = memory.private_key = memory.trusted_ca = NULL;
  memory.certificate_pem = from_files.certificate_pem;
  memory.private_key_pem = from_files.private_key_pem;
  memory.trusted_ca_pem = from_files.trusted_ca_pem;
  CHECK(ms_tls_material_load(&memory, &from_memory, err, sizeof(err)) == 0);
  CHECK(memcmp(from_files.digest, from_memory.digest, sizeof(from_files.digest)) == 0);
  SSL_CTX *ctx = NULL;
  CHECK(ms_client_ctx_new(&memory, &from_memory, &ctx, NULL, NULL, NULL, err, sizeof(err)) == 0);
  SSL_CTX_free(ctx);
  ms_tls_material_cleanup(&from_memory);

  char *other_key = NULL;
  size_t other_len = 0;
  CHECK(ms_file_read(test_path("other.key"), &other_key, &other_len, err, sizeof(err)) == 0);
  memory.private_key_pem = other_key;
  CHECK(ms_tls_material_load(&memory, &from_memory, err, sizeof(err)) == 0);
  ctx = NULL;
  CHECK(ms_client_ctx_new(&memory, &from_memory, &ctx, NULL, NULL, NULL, err, sizeof(err)) != 0);
  CHECK(ctx == NULL);
  ms_tls_material_cleanup(&from_memory);
  free(other_key);

  memory.private_key_pem = NULL; /* a certificate without its key */
  CHECK(ms_tls_material_load(&memory, &from_memory, err, sizeof(err)) != 0);
  CHECK_CONTAINS(err, "private_key");
  ms_tls_material_cleanup(&from_files);
}

static void test_crl(test_pki *pki) {
  char err[MS_ERR_LEN];
  SSL_CTX *ctx = NULL;
  ms_tls_settings settings = test_client_settings();
  write_crl(pki, NULL, "empty.crl");
  settings.crl = test_path("empty.crl");
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == 0);
  SSL_CTX_free(ctx);
  settings.crl = test_path("ca.crt"); /* a certificate, not a CRL */
  CHECK(build(&settings, &ctx, NULL, NULL, NULL, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "holds no PEM CRL");
}

/* Problems as ms_tls_settings_check reports them: "key: message" lines. */
typedef struct problem_lines {
  char lines[8][MS_ERR_LEN + 32];
  size_t count;
} problem_lines;

static void collect(void *arg, const char *key, const char *message) {
  problem_lines *problems = arg;
  if (problems->count < 8)
    snprintf(problems->lines[problems->count++], sizeof(problems->lines[0]), "%s: %s",
             key ? key : "(tls)", message);
}

/* check_all runs ms_tls_settings_check and returns the problems, each
 * checked to start with one of the keys in `keys` (in order). */
static problem_lines check_all(const ms_tls_settings *settings, const char *const *keys,
                               size_t key_count) {
  problem_lines problems = {.count = 0};
  size_t count = ms_tls_settings_check(settings, collect, &problems);
  CHECK(count == problems.count);
  if (count != key_count) {
    fprintf(stderr, "want %zu problems, got %zu:\n", key_count, count);
    for (size_t i = 0; i < problems.count; i++)
      fprintf(stderr, "  %s\n", problems.lines[i]);
    test_failures++;
    return problems;
  }
  for (size_t i = 0; i < key_count; i++) {
    size_t n = strlen(keys[i]);
    if (strncmp(problems.lines[i], keys[i], n) != 0 || problems.lines[i][n] != ':') {
      fprintf(stderr, "problem %zu: want key %s, got %s\n", i, keys[i], problems.lines[i]);
      test_failures++;
    }
  }
  CHECK(ERR_peek_error() == 0);
  return problems;
}

static void test_every_problem(void) {
  ms_tls_settings settings = test_client_settings();
  CHECK(ms_tls_settings_check(&settings, collect, &(problem_lines){.count = 0}) == 0);

  /* Two files missing: both, each under its key. */
  settings.certificate = test_path("missing.crt");
  settings.trusted_ca = test_path("missing-ca.crt");
  static const char *const missing[] = {"certificate", "trusted_ca"};
  problem_lines got = check_all(&settings, missing, 2);
  CHECK_CONTAINS(got.lines[0], "missing.crt: No such file or directory");
  CHECK_CONTAINS(got.lines[1], "missing-ca.crt: No such file or directory");

  /* A key that matches nothing, an expired certificate, a CA file that is
   * no PEM, bad ciphers and curves: all of them. */
  settings = test_client_settings();
  settings.certificate = test_path("expired.crt");
  settings.private_key = test_path("other.key");
  settings.trusted_ca = test_path("other.key");
  settings.ciphers = "NOT-A-CIPHER";
  settings.curves = "P-999";
  static const char *const many[] = {"ciphers", "curves", "trusted_ca", "private_key",
                                     "certificate"};
  got = check_all(&settings, many, 5);
  CHECK_CONTAINS(got.lines[3], "does not match certificate");
  CHECK_CONTAINS(got.lines[4], "expired");

  /* An unreadable key file and a password file that is missing. */
  settings = test_client_settings();
  settings.private_key = test_path("missing.key");
  settings.password_file = test_path("missing.pass");
  static const char *const key_and_password[] = {"private_key", "password_file"};
  check_all(&settings, key_and_password, 2);

  /* The first problem alone, as before, for the callers that stop there. */
  char err[MS_ERR_LEN];
  SSL_CTX *ctx = NULL;
  settings = test_client_settings();
  settings.certificate = test_path("missing.crt");
  settings.trusted_ca = test_path("missing-ca.crt");
  CHECK(ms_client_ctx_load(&settings, &ctx, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "missing.crt");
}

int main(void) {
  test_pki pki, other;
  test_pki_init(&pki, "Client Test CA");
  test_pki_init(&other, "Other CA");
  test_write_ca(&pki, "ca.crt");
  int64_t now = (int64_t)time(NULL);
  test_issue(&pki, "client", "client.test", "spiffe://td/ns/a/sa/client", NULL, 0, 3600, NULL,
             NULL);
  test_issue(&pki, "other", "other.test", NULL, NULL, 0, 3600, NULL, NULL);
  test_issue(&pki, "expired", "expired.test", NULL, NULL, now - 48 * 3600, 24 * 3600, NULL, NULL);
  test_issue(&pki, "future", "future.test", NULL, NULL, now + 3600, 3600, NULL, NULL);
  test_issue(&other, "locked", "locked.test", NULL, NULL, 0, 3600, "correct horse", NULL);

  test_good_context();
  test_refusals();
  test_encrypted_key();
  test_material_digest();
  test_material_in_memory();
  test_crl(&pki);
  test_every_problem();

  test_pki_cleanup(&pki);
  test_pki_cleanup(&other);
  return test_finish("client_ctx_test");
}
