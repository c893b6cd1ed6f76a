/* issue.c: making CA and leaf certificates (ECDSA P-256, SHA-256), writing
 * them as PEM files, and parsing durations. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"
#include "certs/internal.h"
#include "common/file.h"

/* Certificates start five minutes in the past so that a peer whose clock is
 * a little behind accepts them. */
#define MS_BACKDATE_SECONDS 300

static bool set_random_serial(X509 *cert) {
  uint8_t bytes[16];
  RAND_bytes(bytes, sizeof(bytes));
  bytes[sizeof(bytes) - 1] |= 0x01; /* never zero; BN_bin2bn makes it positive */
  BIGNUM *bn = BN_bin2bn(bytes, sizeof(bytes), NULL);
  ASN1_INTEGER *serial = bn == NULL ? NULL : BN_to_ASN1_INTEGER(bn, NULL);
  bool ok = serial != NULL && X509_set_serialNumber(cert, serial);
  ASN1_INTEGER_free(serial);
  BN_free(bn);
  return ok;
}

static bool set_validity(X509 *cert, int64_t not_before, int64_t not_after) {
  ASN1_TIME *from = ASN1_TIME_set(NULL, (time_t)not_before);
  ASN1_TIME *to = ASN1_TIME_set(NULL, (time_t)not_after);
  bool ok =
      from != NULL && to != NULL && X509_set1_notBefore(cert, from) && X509_set1_notAfter(cert, to);
  ASN1_TIME_free(from);
  ASN1_TIME_free(to);
  return ok;
}

static bool set_common_name(X509 *cert, const char *common_name) {
  X509_NAME *name = X509_get_subject_name(cert);
  return X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const uint8_t *)common_name, -1, -1,
                                    0) == 1;
}

static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
  bool ok = ext != NULL && X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok;
}

bool ms_general_names_push(GENERAL_NAMES *names, int type, const void *data, size_t len) {
  GENERAL_NAME *name = GENERAL_NAME_new();
  ASN1_STRING *value =
      ASN1_STRING_type_new(type == GEN_IPADD ? V_ASN1_OCTET_STRING : V_ASN1_IA5STRING);
  if (name == NULL || value == NULL || !ASN1_STRING_set(value, data, (int)len)) {
    GENERAL_NAME_free(name);
    ASN1_STRING_free(value);
    return false;
  }
  name->type = type;
  if (type == GEN_IPADD) {
    name->d.iPAddress = value;
  } else {
    name->d.ia5 = value; /* dNSName and uniformResourceIdentifier are IA5Strings */
  }
  if (!sk_GENERAL_NAME_push(names, name)) {
    GENERAL_NAME_free(name);
    return false;
  }
  return true;
}

/* add_sans builds the subjectAltName extension by hand, so that a URI with a
 * comma in it is not mistaken for two values. */
static int add_sans(X509 *cert, const ms_issue_request *request, char *err, size_t err_len) {
  if (request->dns_count + request->ip_count + request->uri_count == 0) return 0;
  GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
  bool ok = names != NULL;
  for (size_t i = 0; ok && i < request->dns_count; i++) {
    ok = ms_general_names_push(names, GEN_DNS, request->dns[i], strlen(request->dns[i]));
  }
  for (size_t i = 0; ok && i < request->ip_count; i++) {
    unsigned char addr[16];
    size_t len = 0;
    if (inet_pton(AF_INET, request->ips[i], addr) == 1) {
      len = 4;
    } else if (inet_pton(AF_INET6, request->ips[i], addr) == 1) {
      len = 16;
    } else {
      ms_err_set(err, err_len, "\"%s\" is not an IP address", request->ips[i]);
      GENERAL_NAMES_free(names);
      return -1;
    }
    ok = ms_general_names_push(names, GEN_IPADD, addr, len);
  }
  for (size_t i = 0; ok && i < request->uri_count; i++) {
    ok = ms_general_names_push(names, GEN_URI, request->uris[i], strlen(request->uris[i]));
  }
  ok = ok && X509_add1_ext_i2d(cert, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1;
  GENERAL_NAMES_free(names);
  if (!ok) {
    ERR_clear_error();
    ms_err_set(err, err_len, "cannot add subject alternative names: out of memory");
    return -1;
  }
  return 0;
}

/* new_cert starts a v3 certificate for `key` with a random serial, a
 * validity period and a CN. */
static X509 *new_cert(EVP_PKEY *key, const char *common_name, int64_t not_before,
                      int64_t not_after) {
  X509 *cert = X509_new();
  if (cert == NULL || !X509_set_version(cert, X509_VERSION_3) || !set_random_serial(cert) ||
      !set_validity(cert, not_before, not_after) || !set_common_name(cert, common_name) ||
      !X509_set_pubkey(cert, key)) {
    X509_free(cert);
    return NULL;
  }
  return cert;
}

int ms_ca_new(const char *common_name, int64_t ttl_seconds, X509 **out_cert, EVP_PKEY **out_key,
              char *err, size_t err_len) {
  if (ttl_seconds <= 0) {
    ms_err_set(err, err_len, "the CA's lifetime must be positive");
    return -1;
  }
  int64_t now = (int64_t)time(NULL);
  EVP_PKEY *key = NULL;
  if (ms_key_new_p256(&key, err, err_len) != 0) return -1;
  X509 *cert = new_cert(key, common_name, now - MS_BACKDATE_SECONDS, now + ttl_seconds);
  if (cert == NULL || !X509_set_issuer_name(cert, X509_get_subject_name(cert)) ||
      !add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE") ||
      !add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") ||
      !add_ext(cert, cert, NID_subject_key_identifier, "hash") ||
      !add_ext(cert, cert, NID_authority_key_identifier, "keyid:always") ||
      !X509_sign(cert, key, EVP_sha256())) {
    char reason[128];
    ms_err_set(err, err_len, "cannot make a CA certificate: %s",
               ms_err_reason(reason, sizeof(reason)));
    X509_free(cert);
    EVP_PKEY_free(key);
    return -1;
  }
  *out_cert = cert;
  *out_key = key;
  return 0;
}

/* sign_leaf makes the leaf certificate for `public_key` that `request` asks
 * for, signed by the CA: the one signing path of ms_cert_issue and
 * ms_cert_issue_for_key. Returns 0 with *out_cert (the caller's), or -1 with
 * a message in err. */
static int sign_leaf(const ms_issue_request *request, EVP_PKEY *public_key, X509 *ca_cert,
                     EVP_PKEY *ca_key, X509 **out_cert, char *err, size_t err_len) {
  char reason[128];
  if (request->ttl_seconds <= 0) {
    ms_err_set(err, err_len, "the certificate's lifetime must be positive");
    return -1;
  }
  if (!ms_key_matches_cert(ca_key, ca_cert)) {
    ms_err_set(err, err_len, "the CA key does not match the CA certificate");
    return -1;
  }
  int64_t not_before =
      request->not_before != 0 ? request->not_before : (int64_t)time(NULL) - MS_BACKDATE_SECONDS;
  int64_t not_after = not_before + MS_BACKDATE_SECONDS + request->ttl_seconds;
  const char *common_name = request->common_name != NULL ? request->common_name : "workload";
  char usages[32] = "";
  if (request->server) strcat(usages, "serverAuth");
  if (request->client) strcat(usages, request->server ? ",clientAuth" : "clientAuth");

  X509 *cert = new_cert(public_key, common_name, not_before, not_after);
  if (cert == NULL || !X509_set_issuer_name(cert, X509_get_subject_name(ca_cert)) ||
      !add_ext(cert, ca_cert, NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(cert, ca_cert, NID_key_usage, "critical,digitalSignature") ||
      (usages[0] != '\0' && !add_ext(cert, ca_cert, NID_ext_key_usage, usages)) ||
      !add_ext(cert, ca_cert, NID_subject_key_identifier, "hash") ||
      !add_ext(cert, ca_cert, NID_authority_key_identifier, "keyid:always")) {
    ms_err_set(err, err_len, "cannot make a certificate: %s",
               ms_err_reason(reason, sizeof(reason)));
    X509_free(cert);
    return -1;
  }
  if (add_sans(cert, request, err, err_len) != 0) {
    X509_free(cert);
    return -1;
  }
  if (!X509_sign(cert, ca_key, EVP_sha256())) {
    ms_err_set(err, err_len, "cannot sign the certificate: %s",
               ms_err_reason(reason, sizeof(reason)));
    X509_free(cert);
    return -1;
  }
  *out_cert = cert;
  return 0;
}

int ms_cert_issue(const ms_issue_request *request, X509 *ca_cert, EVP_PKEY *ca_key, X509 **out_cert,
                  EVP_PKEY **out_key, char *err, size_t err_len) {
  EVP_PKEY *key = NULL;
  if (ms_key_new_p256(&key, err, err_len) != 0) return -1;
  if (sign_leaf(request, key, ca_cert, ca_key, out_cert, err, err_len) != 0) {
    EVP_PKEY_free(key);
    return -1;
  }
  *out_key = key;
  return 0;
}

int ms_cert_issue_for_key(const ms_issue_request *request, EVP_PKEY *public_key, X509 *ca_cert,
                          EVP_PKEY *ca_key, X509 **out_cert, char *err, size_t err_len) {
  if (public_key == NULL) {
    ms_err_set(err, err_len, "no public key to certify");
    return -1;
  }
  return sign_leaf(request, public_key, ca_cert, ca_key, out_cert, err, err_len);
}

/* write_atomic writes the memory BIO's bytes to `path` (ms_file_write_atomic). */
static int write_atomic(const char *path, BIO *bio, mode_t mode, char *err, size_t err_len) {
  const uint8_t *data = NULL;
  size_t len = 0;
  BIO_mem_contents(bio, &data, &len);
  return ms_file_write_atomic(path, data, len, mode, err, err_len);
}

int ms_pem_write_cert(const char *path, X509 *cert, X509 *chain_next, char *err, size_t err_len) {
  BIO *bio = BIO_new(BIO_s_mem());
  if (bio == NULL || !PEM_write_bio_X509(bio, cert) ||
      (chain_next != NULL && !PEM_write_bio_X509(bio, chain_next))) {
    ERR_clear_error();
    ms_err_set(err, err_len, "cannot write %s: out of memory", path);
    BIO_free(bio);
    return -1;
  }
  int rc = write_atomic(path, bio, 0644, err, err_len);
  BIO_free(bio);
  return rc;
}

int ms_pem_write_key_encrypted(const char *path, EVP_PKEY *key, const char *password, char *err,
                               size_t err_len) {
  BIO *bio = BIO_new(BIO_s_mem());
  const EVP_CIPHER *cipher = password != NULL ? EVP_aes_256_cbc() : NULL;
  size_t password_len = password != NULL ? strlen(password) : 0;
  if (password_len > INT_MAX) password_len = INT_MAX;
  if (bio == NULL || !PEM_write_bio_PrivateKey(bio, key, cipher, (uint8_t *)password,
                                               (int)password_len, NULL, NULL)) {
    char reason[128];
    ms_err_set(err, err_len, "cannot encode the key for %s: %s", path,
               ms_err_reason(reason, sizeof(reason)));
    ms_bio_free_wiped(bio);
    return -1;
  }
  int rc = write_atomic(path, bio, 0600, err, err_len);
  ms_bio_free_wiped(bio);
  return rc;
}

int ms_pem_write_key(const char *path, EVP_PKEY *key, char *err, size_t err_len) {
  return ms_pem_write_key_encrypted(path, key, NULL, err, err_len);
}

int ms_duration_parse(const char *text, int64_t *out_seconds) {
  if (text == NULL || text[0] < '0' || text[0] > '9') return -1;
  errno = 0;
  char *end = NULL;
  long long value = strtoll(text, &end, 10);
  if (errno != 0 || value < 0) return -1;
  int64_t unit = 1;
  if (end[0] != '\0') {
    if (end[1] != '\0') return -1;
    switch (end[0]) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      default:
        return -1;
    }
  }
  if (value > INT64_MAX / unit) return -1;
  *out_seconds = (int64_t)value * unit;
  return 0;
}
