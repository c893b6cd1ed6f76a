/* test_csr.c: see test_csr.h. */
#include "certs/test_csr.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* push_extension adds the extension `nid` = `value` to `exts`. */
static bool push_extension(STACK_OF(X509_EXTENSION) *exts, int nid, const char *value) {
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, NULL, nid, value);
  if (ext == NULL) return false;
  if (!sk_X509_EXTENSION_push(exts, ext)) {
    X509_EXTENSION_free(ext);
    return false;
  }
  return true;
}

char *ms_test_csr_pem(EVP_PKEY *key, const char *sans, bool ca) {
  X509_REQ *req = X509_REQ_new();
  STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
  BIO *bio = BIO_new(BIO_s_mem());
  char *pem = NULL;
  bool ok = req != NULL && exts != NULL && bio != NULL && X509_REQ_set_pubkey(req, key) &&
            (sans == NULL || push_extension(exts, NID_subject_alt_name, sans)) &&
            (!ca || push_extension(exts, NID_basic_constraints, "critical,CA:TRUE")) &&
            (sk_X509_EXTENSION_num(exts) == 0 || X509_REQ_add_extensions(req, exts)) &&
            X509_REQ_sign(req, key, EVP_sha256()) && PEM_write_bio_X509_REQ(bio, req);
  const uint8_t *data = NULL;
  size_t len = 0;
  if (ok && BIO_mem_contents(bio, &data, &len)) pem = strndup((const char *)data, len);
  BIO_free(bio);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);
  return pem;
}
