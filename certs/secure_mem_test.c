/* secure_mem_test.c: locked memory for key material, and keys written
 * into it. */
#include <stdalign.h>
#include <stdint.h>
#include <sys/resource.h>

#include "certs/test_util.h"

static bool all_zero(const uint8_t *bytes, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (bytes[i] != 0) return false;
  }
  return true;
}

static void test_alloc_free(void) {
  size_t sizes[] = {0, 1, 100, 4096, 10000};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    uint8_t *bytes = ms_secure_alloc(sizes[i]);
    CHECK(bytes != NULL);
    if (bytes == NULL) continue;
    CHECK((uintptr_t)bytes % alignof(max_align_t) == 0);
    CHECK(all_zero(bytes, sizes[i]));
    memset(bytes, 0xa5, sizes[i]);
    ms_secure_free(bytes);
  }
  ms_secure_free(NULL);
  CHECK(!ms_secure_locked(NULL));
  CHECK(ms_secure_alloc(SIZE_MAX - 16) == NULL);
}

static void test_strdup(void) {
  char *copy = ms_secure_strdup("s3cret password");
  CHECK(copy != NULL && strcmp(copy, "s3cret password") == 0);
  ms_secure_free(copy);
  copy = ms_secure_strdup("");
  CHECK(copy != NULL && copy[0] == '\0');
  ms_secure_free(copy);
  CHECK(ms_secure_strdup(NULL) == NULL);
}

/* The memory is locked whenever RLIMIT_MEMLOCK leaves room for a page. */
static void test_locked(void) {
  struct rlimit limit;
  CHECK(getrlimit(RLIMIT_MEMLOCK, &limit) == 0);
  void *bytes = ms_secure_alloc(64);
  if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= 64 * 1024) {
    CHECK(ms_secure_locked(bytes));
  } else {
    printf("RLIMIT_MEMLOCK is %llu bytes: not checking that memory is locked\n",
           (unsigned long long)limit.rlim_cur);
  }
  ms_secure_free(bytes);
}

/* With no memory lock allowed the memory is still handed out (unlocked).
 * Lowers the limit for the rest of the process: runs last. */
static void test_lock_refused(void) {
  struct rlimit none = {0, 0};
  CHECK(setrlimit(RLIMIT_MEMLOCK, &none) == 0);
  char *text = ms_secure_strdup("still usable");
  CHECK(text != NULL && strcmp(text, "still usable") == 0);
  if (geteuid() != 0) CHECK(!ms_secure_locked(text)); /* root may lock past the limit */
  ms_secure_free(text);
}

static void test_key_pem(void) {
  char err[MS_ERR_LEN];
  EVP_PKEY *key = NULL;
  CHECK(ms_key_new_p256(&key, err, sizeof(err)) == 0);
  char *pem = NULL;
  CHECK(ms_key_pem_secure(key, &pem, err, sizeof(err)) == 0);
  CHECK(pem != NULL && strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
  EVP_PKEY *parsed = NULL;
  CHECK(ms_pem_parse_key(pem, strlen(pem), NULL, "the secure PEM", &parsed, err, sizeof(err)) == 0);
  CHECK(parsed != NULL && EVP_PKEY_cmp(parsed, key) == 1);
  EVP_PKEY_free(parsed);
  ms_secure_free(pem);

  /* A public key has no private half to write. */
  EVP_PKEY *public_only = EVP_PKEY_new();
  EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  CHECK(EC_KEY_set_public_key(ec, EC_KEY_get0_public_key(EVP_PKEY_get0_EC_KEY(key))));
  CHECK(EVP_PKEY_assign_EC_KEY(public_only, ec));
  char *untouched = NULL;
  CHECK(ms_key_pem_secure(public_only, &untouched, err, sizeof(err)) == -1);
  CHECK_CONTAINS(err, "cannot encode the private key");
  CHECK(untouched == NULL);
  EVP_PKEY_free(public_only);
  EVP_PKEY_free(key);
}

int main(void) {
  test_alloc_free();
  test_strdup();
  test_locked();
  test_key_pem();
  test_lock_refused();
  return test_finish("secure_mem_test");
}
