/* test_util.h: a tiny check macro and fixtures for the certs/ tests. Each
 * test binary includes it once. */
#ifndef MS_CERTS_TEST_UTIL_H
#define MS_CERTS_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "certs/certs.h"

static int test_failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      test_failures++;                                                         \
    }                                                                          \
  } while (0)

/* CHECK_CONTAINS checks that `text` contains `part`, printing both if not. */
#define CHECK_CONTAINS(text, part)                                                      \
  do {                                                                                  \
    const char *text_ = (text);                                                         \
    if (text_ == NULL || strstr(text_, (part)) == NULL) {                               \
      fprintf(stderr, "%s:%d: expected \"%s\" in \"%s\"\n", __FILE__, __LINE__, (part), \
              text_ != NULL ? text_ : "(null)");                                        \
      test_failures++;                                                                  \
    }                                                                                   \
  } while (0)

/* test_finish prints the summary and returns the exit code. */
static inline int test_finish(const char *name) {
  if (ERR_peek_error() != 0) {
    fprintf(stderr, "%s: BoringSSL error queue not empty at exit\n", name);
    ERR_print_errors_fp(stderr);
    test_failures++;
  }
  if (test_failures > 0) {
    fprintf(stderr, "%s: %d check(s) failed\n", name, test_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

/* test_dir returns a fresh folder under TEST_TMPDIR (or /tmp). */
static inline const char *test_dir(void) {
  static char dir[512];
  if (dir[0] != '\0') return dir;
  const char *base = getenv("TEST_TMPDIR");
  snprintf(dir, sizeof(dir), "%s/certs_test.XXXXXX", base != NULL ? base : "/tmp");
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    exit(1);
  }
  return dir;
}

/* test_path returns "<test_dir>/<name>"; the same name always gives the
 * same pointer, valid until the process exits. */
static inline const char *test_path(const char *name) {
  static char paths[64][600];
  static size_t count = 0;
  char path[600];
  snprintf(path, sizeof(path), "%s/%s", test_dir(), name);
  for (size_t i = 0; i < count; i++) {
    if (strcmp(paths[i], path) == 0) return paths[i];
  }
  if (count == 64) {
    fprintf(stderr, "test_path: too many paths\n");
    exit(1);
  }
  memcpy(paths[count], path, sizeof(path));
  return paths[count++];
}

static inline void test_write_file(const char *path, const char *text) {
  FILE *file = fopen(path, "w");
  if (file == NULL || fputs(text, file) < 0 || fclose(file) != 0) {
    perror(path);
    exit(1);
  }
}

/* A CA and what it issued, for the tests. */
typedef struct test_pki {
  X509 *ca;
  EVP_PKEY *ca_key;
} test_pki;

static inline void test_pki_init(test_pki *pki, const char *cn) {
  char err[MS_ERR_LEN];
  if (ms_ca_new(cn, 86400, &pki->ca, &pki->ca_key, err, sizeof(err)) != 0) {
    fprintf(stderr, "ms_ca_new: %s\n", err);
    exit(1);
  }
}

static inline void test_pki_cleanup(test_pki *pki) {
  X509_free(pki->ca);
  EVP_PKEY_free(pki->ca_key);
}

/* test_issue issues a leaf with one DNS name, one URI and an IP (any may be
 * NULL) and writes it to <name>.crt / <name>.key; the key is encrypted when
 * password is set. */
static inline void test_issue(test_pki *pki, const char *name, const char *dns, const char *uri,
                              const char *ip, int64_t not_before, int64_t ttl, const char *password,
                              X509 **out_cert) {
  const char *dns_list[1] = {dns}, *uri_list[1] = {uri}, *ip_list[1] = {ip};
  ms_issue_request request = {
      .common_name = name,
      .dns = dns_list,
      .dns_count = dns != NULL,
      .ips = ip_list,
      .ip_count = ip != NULL,
      .uris = uri_list,
      .uri_count = uri != NULL,
      .client = true,
      .server = true,
      .not_before = not_before,
      .ttl_seconds = ttl,
  };
  char err[MS_ERR_LEN], crt[700], key_path[700];
  X509 *cert = NULL;
  EVP_PKEY *key = NULL;
  snprintf(crt, sizeof(crt), "%s/%s.crt", test_dir(), name);
  snprintf(key_path, sizeof(key_path), "%s/%s.key", test_dir(), name);
  if (ms_cert_issue(&request, pki->ca, pki->ca_key, &cert, &key, err, sizeof(err)) != 0 ||
      ms_pem_write_cert(crt, cert, NULL, err, sizeof(err)) != 0 ||
      ms_pem_write_key_encrypted(key_path, key, password, err, sizeof(err)) != 0) {
    fprintf(stderr, "issuing %s: %s\n", name, err);
    exit(1);
  }
  EVP_PKEY_free(key);
  if (out_cert != NULL) {
    *out_cert = cert;
  } else {
    X509_free(cert);
  }
}

/* test_write_ca writes the CA certificate to <name>. */
static inline void test_write_ca(test_pki *pki, const char *name) {
  char err[MS_ERR_LEN];
  if (ms_pem_write_cert(test_path(name), pki->ca, NULL, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
}

/* test_client_settings: the client settings most tests start from, naming
 * client.crt, client.key and ca.crt in the test folder. */
static inline ms_tls_settings test_client_settings(void) {
  ms_tls_settings settings = {
      .certificate = test_path("client.crt"),
      .private_key = test_path("client.key"),
      .trusted_ca = test_path("ca.crt"),
      .verify = true,
      .verify_depth = 2,
      .min_version = TLS1_2_VERSION,
      .max_version = TLS1_3_VERSION,
      .session_reuse = true,
  };
  return settings;
}

#endif
