/* csr.c: PKCS#10 certificate signing requests, as Istio's CA API carries
 * them: making one for a workload's key and SPIFFE ID, and reading what one
 * asks for. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"
#include "certs/internal.h"

/* A request is a few hundred bytes; anything near this is not one. */
#define MS_CSR_MAX (64 * 1024)

/* check_key_kind accepts an ECDSA P-256 key or an RSA key of 2048..4096
 * bits. Returns 0, or -1 with the reason in err, `what` naming the key. */
static int check_key_kind(EVP_PKEY *key, const char *what, char *err, size_t err_len) {
  switch (EVP_PKEY_id(key)) {
    case EVP_PKEY_EC: {
      const EC_GROUP *group = EC_KEY_get0_group(EVP_PKEY_get0_EC_KEY(key));
      if (group != NULL && EC_GROUP_get_curve_name(group) == NID_X9_62_prime256v1) return 0;
      ms_err_set(err, err_len, "%s is an EC key on a curve other than P-256", what);
      return -1;
    }
    case EVP_PKEY_RSA: {
      unsigned bits = EVP_PKEY_bits(key);
      if (bits >= 2048 && bits <= 4096) return 0;
      ms_err_set(err, err_len, "%s is an RSA key of %u bits; only 2048 to 4096 bits are accepted",
                 what, bits);
      return -1;
    }
    default:
      ms_err_set(err, err_len, "%s is neither an ECDSA P-256 nor an RSA key", what);
      return -1;
  }
}

/* add_uri_san requests the subjectAltName extension with the one URI. */
static bool add_uri_san(X509_REQ *req, const char *uri) {
  GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
  X509_EXTENSION *ext = NULL;
  STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
  bool ok =
      names != NULL && exts != NULL && ms_general_names_push(names, GEN_URI, uri, strlen(uri));
  ok = ok && (ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, names)) != NULL;
  ok = ok && sk_X509_EXTENSION_push(exts, ext);
  if (ok) ext = NULL; /* owned by exts */
  ok = ok && X509_REQ_add_extensions(req, exts);
  X509_EXTENSION_free(ext);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  GENERAL_NAMES_free(names);
  return ok;
}

int ms_csr_new(EVP_PKEY *key, const char *spiffe_id, char **out_pem, char *err, size_t err_len) {
  if (key == NULL || spiffe_id == NULL || spiffe_id[0] == '\0') {
    ms_err_set(err, err_len, "a certificate request needs a key and a SPIFFE ID");
    return -1;
  }
  if (check_key_kind(key, "the request's key", err, err_len) != 0) return -1;
  char reason[128];
  X509_REQ *req = X509_REQ_new();
  BIO *bio = BIO_new(BIO_s_mem());
  const uint8_t *data = NULL;
  size_t len = 0;
  char *pem = NULL;
  if (req == NULL || bio == NULL || !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
      !X509_REQ_set_pubkey(req, key) || !add_uri_san(req, spiffe_id) ||
      !X509_REQ_sign(req, key, EVP_sha256()) || !PEM_write_bio_X509_REQ(bio, req) ||
      !BIO_mem_contents(bio, &data, &len) || (pem = malloc(len + 1)) == NULL) {
    ms_err_set(err, err_len, "cannot make a certificate request: %s",
               ms_err_reason(reason, sizeof(reason))[0] != '\0' ? reason : "out of memory");
    X509_REQ_free(req);
    BIO_free(bio);
    return -1;
  }
  memcpy(pem, data, len);
  pem[len] = '\0';
  X509_REQ_free(req);
  BIO_free(bio);
  *out_pem = pem;
  return 0;
}

/* read_req parses the one PEM CERTIFICATE REQUEST block in `pem`. Returns
 * the request (the caller's) or NULL with the reason in err. */
static X509_REQ *read_req(const char *pem, size_t len, char *err, size_t err_len) {
  if (len > MS_CSR_MAX) {
    ms_err_set(err, err_len, "the certificate request is %zu bytes, more than the %d allowed", len,
               MS_CSR_MAX);
    return NULL;
  }
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  X509_REQ *req = bio == NULL ? NULL : PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
  BIO_free(bio);
  if (req != NULL) return req;
  char reason[128];
  uint32_t code = ERR_peek_last_error();
  bool no_block = ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE;
  ms_err_reason(reason, sizeof(reason));
  if (memmem(pem, len, "-----BEGIN ", 11) == NULL) {
    ms_err_set(err, err_len, "the certificate request is not PEM (no -----BEGIN line)");
  } else if (no_block) {
    ms_err_set(err, err_len, "the PEM holds no CERTIFICATE REQUEST block");
  } else {
    ms_err_set(err, err_len, "the certificate request does not parse: %s",
               reason[0] != '\0' ? reason : "out of memory");
  }
  return NULL;
}

/* read_sans adds what a subjectAltName extension asks for to `out`. */
static int read_sans(X509_EXTENSION *ext, ms_csr_info *out, char *err, size_t err_len) {
  GENERAL_NAMES *names = X509V3_EXT_d2i(ext);
  if (names == NULL) {
    ERR_clear_error();
    ms_err_set(err, err_len, "the request's subjectAltName extension does not parse");
    return -1;
  }
  size_t total = sk_GENERAL_NAME_num(names);
  char **uris = realloc(out->uris, (out->uri_count + total + 1) * sizeof(char *));
  if (uris == NULL) {
    GENERAL_NAMES_free(names);
    ms_err_set(err, err_len, "cannot read the certificate request: out of memory");
    return -1;
  }
  out->uris = uris;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < total; i++) {
    const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_URI) {
      out->other_san_count++;
      continue;
    }
    const ASN1_IA5STRING *value = name->d.uniformResourceIdentifier;
    size_t len = (size_t)ASN1_STRING_length(value);
    const uint8_t *data = ASN1_STRING_get0_data(value);
    char *uri = NULL;
    if (memchr(data, '\0', len) != NULL) {
      ms_err_set(err, err_len, "a URI SAN of the request holds a NUL byte");
      rc = -1;
    } else if ((uri = malloc(len + 1)) == NULL) {
      ms_err_set(err, err_len, "cannot read the certificate request: out of memory");
      rc = -1;
    } else {
      memcpy(uri, data, len);
      uri[len] = '\0';
      out->uris[out->uri_count++] = uri;
    }
  }
  GENERAL_NAMES_free(names);
  return rc;
}

/* read_extensions fills the SANs and asks_ca of `out` from the request's
 * extensionRequest attribute (a request without one asks for nothing). */
static int read_extensions(X509_REQ *req, ms_csr_info *out, char *err, size_t err_len) {
  bool has_attr = X509_REQ_get_attr_by_NID(req, NID_ext_req, -1) >= 0 ||
                  X509_REQ_get_attr_by_NID(req, NID_ms_ext_req, -1) >= 0;
  if (!has_attr) return 0;
  STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
  if (exts == NULL) {
    ERR_clear_error();
    ms_err_set(err, err_len, "the request's extensionRequest attribute does not parse");
    return -1;
  }
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < sk_X509_EXTENSION_num(exts); i++) {
    X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
    int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
    if (nid == NID_subject_alt_name) {
      rc = read_sans(ext, out, err, err_len);
    } else if (nid == NID_basic_constraints) {
      BASIC_CONSTRAINTS *constraints = X509V3_EXT_d2i(ext);
      if (constraints == NULL) {
        ERR_clear_error();
        ms_err_set(err, err_len, "the request's basicConstraints extension does not parse");
        rc = -1;
      } else {
        out->asks_ca = out->asks_ca || constraints->ca;
        BASIC_CONSTRAINTS_free(constraints);
      }
    }
  }
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  return rc;
}

int ms_csr_parse(const char *pem, size_t len, ms_csr_info *out, char *err, size_t err_len) {
  X509_REQ *req = read_req(pem, len, err, err_len);
  if (req == NULL) return -1;
  ms_csr_info info = {0};
  info.public_key = X509_REQ_get_pubkey(req);
  if (info.public_key == NULL) {
    ERR_clear_error();
    ms_err_set(err, err_len, "the request's public key does not parse");
    goto fail;
  }
  /* The key's kind first: verifying with an oversized key costs time. */
  if (check_key_kind(info.public_key, "the request's key", err, err_len) != 0) goto fail;
  if (X509_REQ_verify(req, info.public_key) != 1) {
    ERR_clear_error();
    ms_err_set(err, err_len, "the request's signature does not verify with its own key");
    goto fail;
  }
  if (read_extensions(req, &info, err, err_len) != 0) goto fail;
  X509_REQ_free(req);
  *out = info;
  return 0;

fail:
  X509_REQ_free(req);
  ms_csr_info_cleanup(&info);
  return -1;
}

void ms_csr_info_cleanup(ms_csr_info *info) {
  if (info == NULL) return;
  EVP_PKEY_free(info->public_key);
  ms_strv_free(info->uris, info->uri_count);
  memset(info, 0, sizeof(*info));
}
