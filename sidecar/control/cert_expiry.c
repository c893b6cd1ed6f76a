/* A certificate's state and the client credentials (cert_expiry.h). */
#include "sidecar/control/cert_expiry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- one certificate -------------------------------------------------------- */

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static const char *const state_names[] = {"valid", "expiring", "expired", "not_yet_valid"};

const char *ms_cert_state_name(ms_cert_state state) {
  return (size_t)state < COUNT(state_names) ? state_names[state] : "unknown";
}

/* warn_at returns the first second at which `info` has passed
 * `warn_percent` of its lifetime. */
static int64_t warn_at(const ms_cert_info *info, uint32_t warn_percent) {
  int64_t lifetime = info->not_after - info->not_before;
  if (lifetime <= 0) return info->not_before;
  return info->not_before + (lifetime * (int64_t)warn_percent + 99) / 100;
}

ms_cert_state ms_cert_state_at(const ms_cert_info *info, int64_t now, uint32_t warn_percent) {
  if (now < info->not_before) return MS_CERT_NOT_YET_VALID;
  if (now > info->not_after) return MS_CERT_EXPIRED;
  if (now >= warn_at(info, warn_percent)) return MS_CERT_EXPIRING;
  return MS_CERT_VALID;
}

int64_t ms_cert_state_next_change(const ms_cert_info *info, int64_t now, uint32_t warn_percent) {
  const int64_t instants[] = {info->not_before, warn_at(info, warn_percent), info->not_after + 1};
  for (size_t i = 0; i < COUNT(instants); i++)
    if (instants[i] > now) return instants[i];
  return INT64_MAX;
}

int ms_cert_expiry_add_json(cJSON *object, const char *state_member, const ms_cert_info *info,
                            int64_t now, uint32_t warn_percent) {
  ms_cert_state state = ms_cert_state_at(info, now, warn_percent);
  bool ok = cJSON_AddNumberToObject(object, "days_until_expiration",
                                    (double)ms_cert_days_until_expiration(info, now)) != NULL &&
            cJSON_AddNumberToObject(object, "seconds_until_expiration",
                                    (double)(info->not_after - now)) != NULL &&
            cJSON_AddStringToObject(object, state_member, ms_cert_state_name(state)) != NULL;
  return ok ? 0 : -1;
}

/* ---- where a certificate in use comes from -------------------------------- */

static const char *const source_names[] = {"file", "inline", "sds", "identity", "xds_client"};

const char *ms_cert_source_name(ms_cert_source source) {
  return (size_t)source < COUNT(source_names) ? source_names[source] : "unknown";
}

/* ---- credentials ---------------------------------------------------------------- */

/* name_of returns a copy of `path`, else "<key>.<member>". */
static char *name_of(const char *path, const char *key, const char *member) {
  if (path != NULL) return strdup(path);
  size_t len = strlen(key) + strlen(member) + 2;
  char *name = malloc(len);
  if (name != NULL) snprintf(name, len, "%s.%s", key, member);
  return name;
}

int ms_cert_credential_load(const ms_tls_settings *settings, const char *key,
                            ms_cert_credential *out, char *err, size_t err_len) {
  memset(out, 0, sizeof(*out));
  char why[MS_ERR_LEN];
  ms_tls_material material;
  int rc = ms_tls_material_load(settings, &material, why, sizeof(why));
  if (rc == 0) {
    memcpy(out->digest, material.digest, sizeof(out->digest));
    rc = ms_client_ctx_new(settings, &material, &out->ssl_ctx, &out->leaf, &out->cas,
                           &out->ca_count, why, sizeof(why));
    ms_tls_material_cleanup(&material);
  }
  if (rc != 0) {
    ms_cert_credential_cleanup(out);
    snprintf(err, err_len, "%s: %s", key, why);
    return -1;
  }
  out->certificate_name = name_of(settings->certificate, key, "certificate_pem");
  out->trusted_ca_name = name_of(settings->trusted_ca, key, "trusted_ca_pem");
  if (out->certificate_name == NULL || out->trusted_ca_name == NULL) {
    ms_cert_credential_cleanup(out);
    snprintf(err, err_len, "%s: out of memory", key);
    return -1;
  }
  return 0;
}

int ms_cert_credential_reload(const ms_tls_settings *settings, const char *key,
                              ms_cert_credential *credential, char *err, size_t err_len) {
  ms_tls_material material;
  char why[MS_ERR_LEN];
  if (ms_tls_material_load(settings, &material, why, sizeof(why)) != 0) {
    snprintf(err, err_len, "%s: %s", key, why);
    return -1;
  }
  bool same = memcmp(material.digest, credential->digest, sizeof(material.digest)) == 0;
  ms_tls_material_cleanup(&material);
  if (same) return 0;
  ms_cert_credential next;
  if (ms_cert_credential_load(settings, key, &next, err, err_len) != 0) return -1;
  ms_cert_credential_cleanup(credential);
  *credential = next;
  return 1;
}

void ms_cert_credential_visit(const ms_cert_credential *credential, ms_cert_use_visit visit,
                              void *arg) {
  ms_cert_use use = {.source = MS_CERT_SOURCE_XDS_CLIENT};
  if (credential->leaf.serial_hex[0]) {
    use.info = &credential->leaf;
    use.name = credential->certificate_name;
    visit(&use, arg);
  }
  use.is_ca = true;
  use.name = credential->trusted_ca_name;
  for (size_t i = 0; i < credential->ca_count; i++) {
    use.info = &credential->cas[i];
    visit(&use, arg);
  }
}

void ms_cert_credential_cleanup(ms_cert_credential *credential) {
  if (credential == NULL) return;
  SSL_CTX_free(credential->ssl_ctx);
  ms_cert_info_cleanup(&credential->leaf);
  ms_cert_info_array_free(credential->cas, credential->ca_count);
  free(credential->certificate_name);
  free(credential->trusted_ca_name);
  memset(credential, 0, sizeof(*credential));
}
