/* identity.trust_bundle_file as the identity agent last read it
 * (identity_internal.h): the last good bundle, what it holds, and whether
 * the file's bytes changed since. No loop, no server: identity.c decides
 * what a change puts in force. */
#include "sidecar/identity/identity_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "common/file.h"
#include "common/time.h"
#include "sidecar/control/cert_expiry.h"

/* parse fills `cas` with the certificates of `pem` (at least one). */
static int parse(const char *pem, size_t len, ms_cert_info **out_cas, size_t *out_count, char *err,
                 size_t err_len) {
  STACK_OF(X509) *chain = NULL;
  if (ms_pem_parse_chain(pem, len, "identity.trust_bundle_file", &chain, err, err_len) != 0)
    return -1;
  size_t count = sk_X509_num(chain);
  ms_cert_info *cas = calloc(count, sizeof(*cas));
  int rc = cas ? 0 : -1;
  for (size_t i = 0; rc == 0 && i < count; i++)
    if (ms_cert_info_init(&cas[i], sk_X509_value(chain, i)) != 0) rc = -1;
  sk_X509_pop_free(chain, X509_free);
  if (rc != 0) {
    ms_cert_info_array_free(cas, count);
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  *out_cas = cas;
  *out_count = count;
  return 0;
}

int ms_identity_bundle_read(ms_identity_bundle *bundle, const char *path, char *err,
                            size_t err_len) {
  char *pem = NULL;
  size_t len = 0;
  if (ms_file_read(path, &pem, &len, err, err_len) != 0) {
    snprintf(bundle->last_error, sizeof(bundle->last_error), "%s", err);
    bundle->seen_any = false; /* whatever comes next is new */
    return -1;
  }
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256((const uint8_t *)pem, len, digest);
  if (bundle->seen_any && memcmp(digest, bundle->seen, sizeof(digest)) == 0) {
    free(pem);
    return 0;
  }
  memcpy(bundle->seen, digest, sizeof(digest));
  bundle->seen_any = true;
  if (bundle->pem && strcmp(bundle->pem, pem) == 0) { /* back after a failed read */
    free(pem);
    bundle->last_error[0] = '\0';
    return 0;
  }
  ms_cert_info *cas = NULL;
  size_t count = 0;
  if (parse(pem, len, &cas, &count, err, err_len) != 0) {
    free(pem);
    snprintf(bundle->last_error, sizeof(bundle->last_error), "%s", err);
    return -1;
  }
  free(bundle->pem);
  ms_cert_info_array_free(bundle->cas, bundle->ca_count);
  bundle->pem = pem;
  bundle->cas = cas;
  bundle->ca_count = count;
  bundle->last_error[0] = '\0';
  return 1;
}

int ms_identity_bundle_describe(const ms_identity_bundle *bundle, char *out, size_t out_len) {
  int64_t first_end = 0;
  for (size_t i = 0; i < bundle->ca_count; i++)
    if (i == 0 || bundle->cas[i].not_after < first_end) first_end = bundle->cas[i].not_after;
  char when[32] = "";
  if (bundle->ca_count) ms_time_rfc3339(first_end, when, sizeof(when));
  size_t used = (size_t)snprintf(out, out_len, "%zu certificate%s (serial", bundle->ca_count,
                                 bundle->ca_count == 1 ? "" : "s");
  for (size_t i = 0; i < bundle->ca_count && used < out_len; i++)
    used += (size_t)snprintf(out + used, out_len - used, "%s%s", i ? "," : " ",
                             bundle->cas[i].serial_hex);
  if (used < out_len) snprintf(out + used, out_len - used, "; the first expires %s)", when);
  return 0;
}

cJSON *ms_identity_bundle_json(const ms_identity_bundle *bundle, const char *path, int64_t now,
                               uint32_t warn_percent) {
  cJSON *json = cJSON_CreateObject();
  cJSON *certificates = json ? cJSON_AddArrayToObject(json, "certificates") : NULL;
  if (certificates == NULL) {
    cJSON_Delete(json);
    return NULL;
  }
  cJSON_AddStringToObject(json, "file", path);
  for (size_t i = 0; i < bundle->ca_count; i++) {
    char *text = ms_cert_info_to_json(&bundle->cas[i]);
    cJSON *item = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (item == NULL) continue;
    ms_cert_expiry_add_json(item, "state", &bundle->cas[i], now, warn_percent);
    cJSON_AddItemToArray(certificates, item);
  }
  if (bundle->last_error[0])
    cJSON_AddStringToObject(json, "last_error", bundle->last_error);
  else
    cJSON_AddNullToObject(json, "last_error");
  return json;
}

void ms_identity_bundle_cleanup(ms_identity_bundle *bundle) {
  free(bundle->pem);
  ms_cert_info_array_free(bundle->cas, bundle->ca_count);
  memset(bundle, 0, sizeof(*bundle));
}
