/* secure_mem.c: memory for key material (locked in RAM, left out of core
 * dumps, wiped when freed), new P-256 keys, and a key's PEM written straight
 * into such memory. */
#include <stdalign.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/pem.h>

#include "certs/certs.h"
#include "certs/internal.h"

/* Each allocation is a mapping of its own: this header at the start of the
 * first page, the caller's bytes right after it (aligned for any type). */
typedef struct secure_header {
  size_t map_len; /* bytes mapped, a whole number of pages */
  bool locked;    /* mlock succeeded */
} secure_header;

#define SECURE_HEADER_SIZE \
  ((sizeof(secure_header) + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t))

static secure_header *header_of(const void *bytes) {
  return (secure_header *)((uint8_t *)bytes - SECURE_HEADER_SIZE);
}

void *ms_secure_alloc(size_t len) {
  long page_size = sysconf(_SC_PAGESIZE);
  size_t page = page_size > 0 ? (size_t)page_size : 4096;
  if (len > SIZE_MAX - SECURE_HEADER_SIZE - page) return NULL;
  size_t map_len = (SECURE_HEADER_SIZE + len + page - 1) / page * page;
  /* Anonymous mappings start zeroed. */
  void *map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return NULL;
  secure_header *header = map;
  header->map_len = map_len;
  /* Refused when RLIMIT_MEMLOCK is too small: the memory is still good,
   * only swappable, and ms_secure_locked says so. */
  header->locked = mlock(map, map_len) == 0;
#ifdef MADV_DONTDUMP
  (void)madvise(map, map_len, MADV_DONTDUMP);
#endif
  return (uint8_t *)map + SECURE_HEADER_SIZE;
}

void ms_secure_free(void *bytes) {
  if (bytes == NULL) return;
  secure_header *header = header_of(bytes);
  size_t map_len = header->map_len;
  bool locked = header->locked;
  OPENSSL_cleanse(header, map_len);
  if (locked) munlock(header, map_len);
  munmap(header, map_len);
}

bool ms_secure_locked(const void *bytes) {
  return bytes != NULL && header_of(bytes)->locked;
}

char *ms_secure_strdup(const char *text) {
  if (text == NULL) return NULL;
  size_t len = strlen(text);
  char *copy = ms_secure_alloc(len + 1);
  if (copy != NULL) memcpy(copy, text, len + 1);
  return copy;
}

int ms_key_new_p256(EVP_PKEY **out_key, char *err, size_t err_len) {
  EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  EVP_PKEY *key = EVP_PKEY_new();
  if (ec == NULL || key == NULL || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(key, ec)) {
    char reason[128];
    ms_err_set(err, err_len, "cannot make a P-256 key: %s", ms_err_reason(reason, sizeof(reason)));
    EC_KEY_free(ec);
    EVP_PKEY_free(key);
    return -1;
  }
  *out_key = key;
  return 0;
}

int ms_key_pem_secure(EVP_PKEY *key, char **out_pem, char *err, size_t err_len) {
  /* BoringSSL's own buffers (the DER, the growing BIO) are wiped by
   * OPENSSL_free when released; the BIO's final buffer is wiped here. */
  BIO *bio = BIO_new(BIO_s_mem());
  const uint8_t *data = NULL;
  size_t len = 0;
  if (key == NULL || bio == NULL ||
      !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) ||
      !BIO_mem_contents(bio, &data, &len)) {
    char reason[128];
    ms_err_set(err, err_len, "cannot encode the private key as PEM: %s",
               key == NULL ? "no key given" : ms_err_reason(reason, sizeof(reason)));
    ms_bio_free_wiped(bio);
    return -1;
  }
  char *pem = ms_secure_alloc(len + 1);
  if (pem == NULL) {
    ms_err_set(err, err_len, "cannot map memory for the private key");
    ms_bio_free_wiped(bio);
    return -1;
  }
  memcpy(pem, data, len);
  pem[len] = '\0';
  ms_bio_free_wiped(bio);
  *out_pem = pem;
  return 0;
}
