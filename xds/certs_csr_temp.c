/* certs_csr_temp.c: TEMPORARY stand-ins for ms_csr_new, ms_csr_parse and
 * ms_cert_issue_for_key (certs.h) until branch issue9-certs lands them in
 * certs/; then this file and //xds:certs_csr_temp go. Minimal: enough for
 * the CA API's tests and benchmark. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"

int ms_cert_issue_for_key(const ms_issue_request *request, EVP_PKEY *public_key, X509 *ca_cert,
                          EVP_PKEY *ca_key, X509 **out_cert, char *err, size_t err_len) {
  X509 *cert = NULL;
  EVP_PKEY *unused = NULL;
  if (ms_cert_issue(request, ca_cert, ca_key, &cert, &unused, err, err_len) != 0) return -1;
  EVP_PKEY_free(unused);
  int ski = X509_get_ext_by_NID(cert, NID_subject_key_identifier, -1);
  if (ski >= 0) X509_EXTENSION_free(X509_delete_ext(cert, ski));
  if (!X509_set_pubkey(cert, public_key) || !X509_sign(cert, ca_key, EVP_sha256())) {
    ERR_clear_error();
    X509_free(cert);
    snprintf(err, err_len, "cannot sign the certificate");
    return -1;
  }
  *out_cert = cert;
  return 0;
}

int ms_csr_new(EVP_PKEY *key, const char *spiffe_id, char **out_pem, char *err, size_t err_len) {
  X509_REQ *req = X509_REQ_new();
  STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
  GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
  GENERAL_NAME *name = GENERAL_NAME_new();
  ASN1_IA5STRING *uri = ASN1_IA5STRING_new();
  BIO *bio = BIO_new(BIO_s_mem());
  bool ok = req != NULL && exts != NULL && names != NULL && name != NULL && uri != NULL &&
            bio != NULL && ASN1_STRING_set(uri, spiffe_id, (int)strlen(spiffe_id));
  if (ok) {
    name->type = GEN_URI;
    name->d.uniformResourceIdentifier = uri;
    uri = NULL;
    ok = sk_GENERAL_NAME_push(names, name);
    if (ok) name = NULL;
  }
  X509_EXTENSION *ext = ok ? X509V3_EXT_i2d(NID_subject_alt_name, 0, names) : NULL;
  ok = ext != NULL && sk_X509_EXTENSION_push(exts, ext);
  if (!ok) X509_EXTENSION_free(ext);
  ok = ok && X509_REQ_set_version(req, 0) && X509_REQ_set_pubkey(req, key) &&
       X509_REQ_add_extensions(req, exts) && X509_REQ_sign(req, key, EVP_sha256()) &&
       PEM_write_bio_X509_REQ(bio, req);
  const uint8_t *pem = NULL;
  size_t len = 0;
  char *text = NULL;
  if (ok && BIO_mem_contents(bio, &pem, &len)) text = strndup((const char *)pem, len);
  BIO_free(bio);
  ASN1_IA5STRING_free(uri);
  GENERAL_NAME_free(name);
  GENERAL_NAMES_free(names);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);
  ERR_clear_error();
  if (text == NULL) {
    snprintf(err, err_len, "cannot make a CSR");
    return -1;
  }
  *out_pem = text;
  return 0;
}

void ms_csr_info_cleanup(ms_csr_info *info) {
  EVP_PKEY_free(info->public_key);
  for (size_t i = 0; i < info->uri_count; i++)
    free(info->uris[i]);
  free(info->uris);
  memset(info, 0, sizeof(*info));
}

int ms_csr_parse(const char *pem, size_t len, ms_csr_info *out, char *err, size_t err_len) {
  if (len > 65536) {
    snprintf(err, err_len, "the CSR is over 64 KiB");
    return -1;
  }
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  X509_REQ *req = bio != NULL ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  ERR_clear_error();
  if (req == NULL) {
    snprintf(err, err_len, "not a PEM certificate signing request");
    return -1;
  }
  ms_csr_info info = {0};
  info.public_key = X509_REQ_get_pubkey(req);
  int rc = -1;
  if (info.public_key == NULL || X509_REQ_verify(req, info.public_key) != 1) {
    snprintf(err, err_len, "the CSR's signature does not verify with its own key");
    goto done;
  }
  STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
  for (size_t i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
    X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
    int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
    if (nid == NID_basic_constraints) {
      BASIC_CONSTRAINTS *bc = X509V3_EXT_d2i(ext);
      if (bc != NULL && bc->ca) info.asks_ca = true;
      BASIC_CONSTRAINTS_free(bc);
    } else if (nid == NID_subject_alt_name) {
      GENERAL_NAMES *names = X509V3_EXT_d2i(ext);
      for (size_t k = 0; k < sk_GENERAL_NAME_num(names); k++) {
        GENERAL_NAME *name = sk_GENERAL_NAME_value(names, k);
        if (name->type != GEN_URI) {
          info.other_san_count++;
          continue;
        }
        char **grown = realloc(info.uris, (info.uri_count + 1) * sizeof(char *));
        if (grown == NULL) break;
        info.uris = grown;
        info.uris[info.uri_count++] =
            strndup((const char *)ASN1_STRING_get0_data(name->d.uniformResourceIdentifier),
                    (size_t)ASN1_STRING_length(name->d.uniformResourceIdentifier));
      }
      GENERAL_NAMES_free(names);
    }
  }
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  *out = info;
  info.public_key = NULL;
  info.uris = NULL;
  info.uri_count = 0;
  rc = 0;
done:
  ms_csr_info_cleanup(&info);
  X509_REQ_free(req);
  ERR_clear_error();
  return rc;
}

int ms_key_new_p256(EVP_PKEY **out_key, char *err, size_t err_len) {
  EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  EVP_PKEY *key = EVP_PKEY_new();
  if (ec == NULL || key == NULL || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(key, ec)) {
    EC_KEY_free(ec);
    EVP_PKEY_free(key);
    snprintf(err, err_len, "cannot make a P-256 key");
    return -1;
  }
  *out_key = key;
  return 0;
}
