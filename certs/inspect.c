/* inspect.c: what a certificate says (subject, SANs, serial, validity,
 * fingerprint), as a struct and as JSON. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/digest.h>
#include <openssl/mem.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"
#include "certs/internal.h"
#include "common/time.h"

int ms_asn1_time_to_unix(const ASN1_TIME *time, int64_t *out_seconds) {
  ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
  int days = 0, seconds = 0;
  int ok = epoch != NULL && ASN1_TIME_diff(&days, &seconds, epoch, time);
  ASN1_TIME_free(epoch);
  if (!ok) return -1;
  *out_seconds = (int64_t)days * 86400 + seconds;
  return 0;
}

int ms_name_oneline(const X509_NAME *name, char *buf, size_t len) {
  BIO *bio = BIO_new(BIO_s_mem());
  if (bio == NULL) return -1;
  const uint8_t *data = NULL;
  size_t data_len = 0;
  if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0 ||
      !BIO_mem_contents(bio, &data, &data_len)) {
    BIO_free(bio);
    return -1;
  }
  if (data_len >= len) data_len = len - 1;
  if (data_len) memcpy(buf, data, data_len); /* an empty name has no contents at all */
  buf[data_len] = '\0';
  BIO_free(bio);
  return 0;
}

/* san_string makes "PREFIX:value" from an ASN1 string, replacing control
 * bytes so that a hostile certificate cannot forge log lines. */
static char *san_string(const char *prefix, const ASN1_STRING *value) {
  const unsigned char *data = ASN1_STRING_get0_data(value);
  size_t len = (size_t)ASN1_STRING_length(value);
  size_t prefix_len = strlen(prefix);
  char *out = malloc(prefix_len + len + 1);
  if (out == NULL) return NULL;
  memcpy(out, prefix, prefix_len);
  for (size_t i = 0; i < len; i++) {
    out[prefix_len + i] = (data[i] < 0x20 || data[i] == 0x7f) ? '?' : (char)data[i];
  }
  out[prefix_len + len] = '\0';
  return out;
}

static char *san_ip(const ASN1_OCTET_STRING *value) {
  char text[INET6_ADDRSTRLEN + 3] = "IP:";
  const unsigned char *data = ASN1_STRING_get0_data(value);
  int len = ASN1_STRING_length(value);
  int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
  if (family == 0 || inet_ntop(family, data, text + 3, sizeof(text) - 3) == NULL) {
    strcpy(text, "IP:<invalid>");
  }
  return strdup(text);
}

void ms_strv_free(char **strings, size_t count) {
  if (strings == NULL) return;
  for (size_t i = 0; i < count; i++)
    free(strings[i]);
  free(strings);
}

int ms_cert_sans(X509 *cert, char ***out_sans, size_t *out_count) {
  GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  size_t total = names == NULL ? 0 : sk_GENERAL_NAME_num(names);
  char **sans = NULL;
  size_t count = 0;
  if (total > 0) {
    sans = calloc(total, sizeof(char *));
    if (sans == NULL) goto fail;
  }
  for (size_t i = 0; i < total; i++) {
    const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
    char *text = NULL;
    switch (name->type) {
      case GEN_DNS:
        text = san_string("DNS:", name->d.dNSName);
        break;
      case GEN_URI:
        text = san_string("URI:", name->d.uniformResourceIdentifier);
        break;
      case GEN_EMAIL:
        text = san_string("EMAIL:", name->d.rfc822Name);
        break;
      case GEN_IPADD:
        text = san_ip(name->d.iPAddress);
        break;
      default:
        continue; /* other name forms are not used for matching */
    }
    if (text == NULL) goto fail;
    sans[count++] = text;
  }
  GENERAL_NAMES_free(names);
  if (count == 0) {
    free(sans);
    sans = NULL;
  }
  *out_sans = sans;
  *out_count = count;
  return 0;

fail:
  GENERAL_NAMES_free(names);
  ms_strv_free(sans, count);
  return -1;
}

void ms_sans_format(const char *const *sans, size_t count, char *buf, size_t len) {
  size_t used = 0;
  if (len == 0) return;
  buf[0] = '\0';
  used += (size_t)snprintf(buf, len, "[");
  for (size_t i = 0; i < count && used < len; i++) {
    used += (size_t)snprintf(buf + used, len - used, "%s%s", i > 0 ? ", " : "", sans[i]);
  }
  if (used < len) snprintf(buf + used, len - used, "]");
}

static int serial_hex(X509 *cert, char *buf, size_t len) {
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
  char *hex = bn == NULL ? NULL : BN_bn2hex(bn);
  BN_free(bn);
  if (hex == NULL) return -1;
  size_t j = 0;
  for (size_t i = 0; hex[i] != '\0' && j + 1 < len; i++) {
    char c = hex[i];
    buf[j++] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
  }
  buf[j] = '\0';
  OPENSSL_free(hex);
  return 0;
}

static bool cert_is_ca(X509 *cert) {
  BASIC_CONSTRAINTS *constraints = X509_get_ext_d2i(cert, NID_basic_constraints, NULL, NULL);
  bool is_ca = constraints != NULL && constraints->ca;
  BASIC_CONSTRAINTS_free(constraints);
  return is_ca;
}

int ms_cert_info_init(ms_cert_info *out, X509 *cert) {
  ms_cert_info info;
  memset(&info, 0, sizeof(info));
  uint8_t digest[32];
  unsigned digest_len = 0;
  if (ms_name_oneline(X509_get_subject_name(cert), info.subject, sizeof(info.subject)) != 0 ||
      ms_name_oneline(X509_get_issuer_name(cert), info.issuer, sizeof(info.issuer)) != 0 ||
      serial_hex(cert, info.serial_hex, sizeof(info.serial_hex)) != 0 ||
      !X509_digest(cert, EVP_sha256(), digest, &digest_len) || digest_len != sizeof(digest)) {
    ERR_clear_error();
    return -1;
  }
  for (size_t i = 0; i < sizeof(digest); i++) {
    snprintf(info.sha256_hex + 2 * i, 3, "%02x", digest[i]);
  }
  /* An unparsable time was rejected when the certificate was parsed. */
  if (ms_asn1_time_to_unix(X509_get0_notBefore(cert), &info.not_before) != 0 ||
      ms_asn1_time_to_unix(X509_get0_notAfter(cert), &info.not_after) != 0) {
    ERR_clear_error();
    return -1;
  }
  info.is_ca = cert_is_ca(cert);
  if (ms_cert_sans(cert, &info.sans, &info.san_count) != 0) return -1;
  *out = info;
  return 0;
}

void ms_cert_info_cleanup(ms_cert_info *info) {
  if (info == NULL) return;
  ms_strv_free(info->sans, info->san_count);
  memset(info, 0, sizeof(*info));
}

void ms_cert_info_array_free(ms_cert_info *infos, size_t count) {
  if (infos == NULL) return;
  for (size_t i = 0; i < count; i++)
    ms_cert_info_cleanup(&infos[i]);
  free(infos);
}

/* floor_div rounds towards minus infinity, so that a certificate that expired
 * an hour ago is -1 days from expiring, not 0. */
static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t ms_cert_days_until_expiration(const ms_cert_info *info, int64_t now) {
  return floor_div(info->not_after - now, 86400);
}

char *ms_cert_info_to_json(const ms_cert_info *info) {
  char valid_from[32], expiration[32];
  ms_time_rfc3339(info->not_before, valid_from, sizeof(valid_from));
  ms_time_rfc3339(info->not_after, expiration, sizeof(expiration));
  int64_t days_left = ms_cert_days_until_expiration(info, (int64_t)time(NULL));

  cJSON *root = cJSON_CreateObject();
  cJSON *sans = cJSON_CreateArray();
  bool ok = root != NULL && sans != NULL;
  for (size_t i = 0; ok && i < info->san_count; i++) {
    cJSON *san = cJSON_CreateString(info->sans[i]);
    ok = san != NULL;
    if (ok) cJSON_AddItemToArray(sans, san);
  }
  ok = ok && cJSON_AddStringToObject(root, "subject", info->subject) != NULL &&
       cJSON_AddStringToObject(root, "issuer", info->issuer) != NULL &&
       cJSON_AddStringToObject(root, "serial_number", info->serial_hex) != NULL &&
       cJSON_AddStringToObject(root, "sha256_fingerprint", info->sha256_hex) != NULL &&
       cJSON_AddStringToObject(root, "valid_from", valid_from) != NULL &&
       cJSON_AddStringToObject(root, "expiration_time", expiration) != NULL &&
       cJSON_AddNumberToObject(root, "days_until_expiration", (double)days_left) != NULL;
  if (ok) {
    cJSON_AddItemToObject(root, "subject_alt_names", sans);
    sans = NULL;
    ok = cJSON_AddBoolToObject(root, "is_ca", info->is_ca) != NULL;
  }
  char *text = ok ? cJSON_Print(root) : NULL;
  cJSON_Delete(sans);
  cJSON_Delete(root);
  return text;
}
