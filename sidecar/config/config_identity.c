/* The "identity" section:
 *
 *   "identity": {
 *     "ca_address": "istiod.istio-system.svc:15012",
 *     "tls": {"trusted_ca": "mesh-ca.crt", "server_name": "istiod.istio-system.svc"},
 *     "token_file": "/var/run/secrets/tokens/istio-token",
 *     "trust_domain": "cluster.local",
 *     "requested_ttl_seconds": 86400,
 *     "certificate_secret": "default",
 *     "trust_bundle_secret": "ROOTCA"
 *   }
 *
 * Every key is optional: `{}` asks the control plane of "xds" (its address
 * and "tls") for a certificate, proving who we are with the bootstrap
 * certificate. */
#include "sidecar/config/config_identity.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/config/config_tls.h"
#include "sidecar/config/config_xds.h"

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))
#define FIELD(name) offsetof(ms_identity_config, name)
/* A year: what a workload certificate may ask for at most. */
#define MS_IDENTITY_MAX_TTL_SECONDS (366u * 86400u)

static void parse_identity_tls(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                               void *field) {
  ms_identity_config *identity = field;
  ms_config_parse_tls(schema, value, key, &identity->tls);
  identity->tls_set = true;
}

static void parse_spiffe_id(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                            void *field) {
  const char *text;
  if (!ms_schema_read_string(schema, value, &text)) return;
  if (strncmp(text, "spiffe://", 9) != 0 || strchr(text + 9, '/') == NULL) {
    ms_schema_error(
        schema, "\"%s\": expected a SPIFFE ID, like \"spiffe://cluster.local/ns/shop/sa/orders\"",
        text);
    return;
  }
  ms_schema_parse_string(schema, value, key, field);
}

static const ms_schema_key identity_keys[] = {
    {"ca_address", ms_config_parse_upstream_address, FIELD(ca_address), 0, 0, NULL},
    {"tls", parse_identity_tls, 0, 0, 0, NULL},
    {"token_file", ms_schema_parse_path, FIELD(token_file), 0, 0, NULL},
    {"spiffe_id", parse_spiffe_id, FIELD(spiffe_id), 0, 0, NULL},
    {"trust_domain", ms_schema_parse_string, FIELD(trust_domain), 0, 0, NULL},
    {"requested_ttl_seconds", ms_schema_parse_uint32, FIELD(requested_ttl_seconds), 1,
     MS_IDENTITY_MAX_TTL_SECONDS, NULL},
    {"trust_bundle_file", ms_schema_parse_path, FIELD(trust_bundle_file), 0, 0, NULL},
    {"certificate_secret", ms_schema_parse_string, FIELD(certificate_secret), 0, 0, NULL},
    {"trust_bundle_secret", ms_schema_parse_string, FIELD(trust_bundle_secret), 0, 0, NULL},
};

void ms_config_identity_init(ms_identity_config *identity) {
  ms_config_tls_init(&identity->tls);
  identity->requested_ttl_seconds = 86400;
}

void ms_config_parse_identity(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                              void *field) {
  ms_identity_config *identity = field;
  ms_schema_object(schema, value, identity_keys, COUNT(identity_keys), identity);
  identity->enabled = true;
}

static void default_string(ms_schema *schema, char **field, const char *text) {
  if (*field == NULL) *field = ms_schema_strdup(schema, text);
}

void ms_config_identity_finish(ms_schema *schema, ms_config *config) {
  ms_identity_config *identity = &config->identity;
  if (!identity->enabled) return;
  default_string(schema, &identity->trust_domain, "cluster.local");
  default_string(schema, &identity->certificate_secret, "default");
  default_string(schema, &identity->trust_bundle_secret, "ROOTCA");
  size_t saved = ms_schema_push_key(schema, "identity");
  if (identity->ca_address.text == NULL && !config->xds.enabled)
    ms_schema_error_at(schema, "ca_address",
                       "required without an \"xds\" section; set it to the CA's \"host:port\"");
  if (!identity->tls_set && !config->xds.enabled)
    ms_schema_error_at(schema, "tls",
                       "required without an \"xds\" section; set at least the CA's trusted_ca");
  if (identity->certificate_secret && identity->trust_bundle_secret &&
      strcmp(identity->certificate_secret, identity->trust_bundle_secret) == 0)
    ms_schema_error_at(schema, "trust_bundle_secret",
                       "must differ from certificate_secret (\"%s\")",
                       identity->certificate_secret);
  ms_schema_pop(schema, saved);
}

void ms_config_identity_cleanup(ms_identity_config *identity) {
  ms_address_cleanup(&identity->ca_address);
  ms_config_tls_cleanup(&identity->tls);
  free(identity->token_file);
  free(identity->spiffe_id);
  free(identity->trust_domain);
  free(identity->trust_bundle_file);
  free(identity->certificate_secret);
  free(identity->trust_bundle_secret);
}

const ms_address *ms_identity_ca_address(const ms_config *config) {
  if (config->identity.ca_address.text) return &config->identity.ca_address;
  return config->xds.enabled ? &config->xds.address : NULL;
}

const ms_cluster_tls_config *ms_identity_tls(const ms_config *config) {
  return config->identity.tls_set ? &config->identity.tls : &config->xds.tls;
}

bool ms_identity_owns_secret(const ms_config *config, const char *name) {
  const ms_identity_config *identity = &config->identity;
  return identity->enabled && name &&
         ((identity->certificate_secret && strcmp(name, identity->certificate_secret) == 0) ||
          (identity->trust_bundle_secret && strcmp(name, identity->trust_bundle_secret) == 0));
}
