#include "sidecar/xds/xds_secrets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/proto/type_urls.h"

static bool inline_or_none(const ms_xds_data_source *data) {
  return data->kind == MS_XDS_DATA_INLINE || data->kind == MS_XDS_DATA_NONE;
}

bool ms_xds_secret_by_name(const ms_xds_secret *secret) {
  if (secret->kind == MS_XDS_SECRET_TLS_CERTIFICATE)
    return inline_or_none(&secret->certificate.certificate_chain) &&
           inline_or_none(&secret->certificate.private_key) &&
           inline_or_none(&secret->certificate.password);
  return inline_or_none(&secret->validation.trusted_ca) && inline_or_none(&secret->validation.crl);
}

static const char *bytes_of(const ms_xds_data_source *data) {
  return data->kind == MS_XDS_DATA_INLINE ? data->bytes : NULL;
}

static int add_secret(ms_secret_set *set, const ms_xds_secret *secret) {
  if (!ms_xds_secret_by_name(secret)) return 0;
  ms_secret entry = {.name = secret->name};
  if (secret->kind == MS_XDS_SECRET_TLS_CERTIFICATE) {
    entry.certificate_pem = (char *)bytes_of(&secret->certificate.certificate_chain);
    entry.private_key_pem = (char *)bytes_of(&secret->certificate.private_key);
    entry.password = (char *)bytes_of(&secret->certificate.password);
  } else {
    entry.trusted_ca_pem = (char *)bytes_of(&secret->validation.trusted_ca);
    entry.crl_pem = (char *)bytes_of(&secret->validation.crl);
  }
  return ms_secret_set_add(set, &entry);
}

ms_secret_set *ms_xds_secret_set_new(const ms_xds_secret *secrets, size_t count) {
  ms_secret_set *set = ms_secret_set_new();
  for (size_t i = 0; set && i < count; i++) {
    if (add_secret(set, &secrets[i]) != 0) {
      ms_secret_set_free(set);
      return NULL;
    }
  }
  return set;
}

static bool same_names(const ms_xds_validation_context *a, const ms_xds_validation_context *b) {
  if (a->match_subject_alt_name_count != b->match_subject_alt_name_count) return false;
  for (size_t i = 0; i < a->match_subject_alt_name_count; i++)
    if (strcmp(a->match_subject_alt_names[i], b->match_subject_alt_names[i]) != 0) return false;
  return true;
}

/* same_shape: replacing `old` by `new` changes bytes only. */
static bool same_shape(const ms_xds_secret *old, const ms_xds_secret *new) {
  if (old->kind != new->kind || !ms_xds_secret_by_name(old) || !ms_xds_secret_by_name(new))
    return false;
  if (old->kind == MS_XDS_SECRET_TLS_CERTIFICATE)
    return (old->certificate.password.kind == MS_XDS_DATA_NONE) ==
           (new->certificate.password.kind == MS_XDS_DATA_NONE);
  const ms_xds_validation_context *a = &old->validation, *b = &new->validation;
  return a->verify == b->verify && a->max_verify_depth == b->max_verify_depth &&
         (a->crl.kind == MS_XDS_DATA_NONE) == (b->crl.kind == MS_XDS_DATA_NONE) &&
         (a->trusted_ca.kind == MS_XDS_DATA_NONE) == (b->trusted_ca.kind == MS_XDS_DATA_NONE) &&
         same_names(a, b);
}

int ms_xds_secrets_rotation(const ms_xds_secret *current, size_t current_count,
                            const Google__Protobuf__Any *const *resources, size_t count,
                            ms_secret_set **out_set, char *err, size_t err_len) {
  ms_xds_secret *decoded = calloc(count ? count : 1, sizeof(*decoded));
  if (decoded == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  size_t n = 0;
  int rc = 1;
  for (; n < count && rc == 1; n++) {
    ms_xds_resource resource;
    if (ms_xds_resource_decode_any(resources[n], MS_XDS_TYPE_URL_SECRET, &resource, err, err_len) !=
        0) {
      rc = -1;
      break;
    }
    decoded[n] = resource.as.secret;
    const ms_xds_secret *old = NULL;
    for (size_t i = 0; i < current_count && !old; i++)
      if (strcmp(current[i].name, decoded[n].name) == 0) old = &current[i];
    for (size_t j = 0; j < n && rc == 1; j++)
      if (strcmp(decoded[j].name, decoded[n].name) == 0) rc = 0; /* the full path says why */
    if (old == NULL || !same_shape(old, &decoded[n])) rc = 0;
  }
  ms_secret_set *set = NULL;
  if (rc == 1 && count > 0) {
    set = ms_xds_secret_set_new(current, current_count);
    for (size_t i = 0; set && i < count; i++) {
      if (add_secret(set, &decoded[i]) != 0) {
        ms_secret_set_free(set);
        set = NULL;
      }
    }
    if (set == NULL) {
      snprintf(err, err_len, "out of memory");
      rc = -1;
    }
  } else if (rc == 1) {
    rc = 0; /* nothing to rotate: let the full path handle an empty response */
  }
  for (size_t i = 0; i < n; i++)
    ms_xds_secret_cleanup(&decoded[i]);
  free(decoded);
  if (rc == 1) *out_set = set;
  return rc;
}
