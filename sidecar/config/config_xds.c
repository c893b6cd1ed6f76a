/* The "xds" section:
 *
 *   "xds": {
 *     "address": "xds.mesh.svc:18000",
 *     "tls": {"certificate": "bootstrap.crt", "private_key": "bootstrap.key",
 *             "trusted_ca": "mesh-ca.crt", "server_name": "xds.mesh.svc"},
 *     "node": {"id": "orders-7d9c", "cluster": "orders",
 *              "metadata": {"NAMESPACE": "shop", "SERVICE_ACCOUNT": "orders"}},
 *     "initial_fetch_timeout_ms": 15000,
 *     "backup_path": "/var/lib/mtls-sidecar/xds.json"
 *   }
 *
 * "tls" takes the same keys as a cluster's. */
#include "sidecar/config/config_xds.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/config/config_tls.h"

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static void parse_metadata(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                           void *field) {
  ms_xds_bootstrap *xds = field;
  if (!cJSON_IsObject(value)) {
    ms_schema_error(schema, "expected an object of strings, like {\"NAMESPACE\": \"shop\"}");
    return;
  }
  size_t count = (size_t)cJSON_GetArraySize(value);
  char **keys = calloc(count ? count : 1, sizeof(char *));
  char **values = calloc(count ? count : 1, sizeof(char *));
  size_t n = 0;
  if (keys == NULL || values == NULL) {
    schema->out_of_memory = true;
  } else {
    for (const cJSON *item = value->child; item; item = item->next) {
      if (!cJSON_IsString(item)) {
        size_t saved = ms_schema_push_key(schema, item->string);
        ms_schema_error(schema, "expected a string");
        ms_schema_pop(schema, saved);
        continue;
      }
      keys[n] = strdup(item->string);
      values[n] = strdup(item->valuestring);
      if (keys[n] == NULL || values[n] == NULL) schema->out_of_memory = true;
      n++;
    }
  }
  ms_schema_strings_free(xds->metadata_keys, xds->metadata_count);
  ms_schema_strings_free(xds->metadata_values, xds->metadata_count);
  xds->metadata_keys = keys;
  xds->metadata_values = values;
  xds->metadata_count = n;
}

static const ms_schema_key node_keys[] = {
    {"id", ms_schema_parse_string, offsetof(ms_xds_bootstrap, node_id), 0, 0, NULL},
    {"cluster", ms_schema_parse_string, offsetof(ms_xds_bootstrap, node_cluster), 0, 0, NULL},
    {"metadata", parse_metadata, 0, 0, 0, NULL},
};

static void parse_node(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                       void *field) {
  ms_schema_object(schema, value, node_keys, COUNT(node_keys), field);
}

static const ms_schema_key xds_keys[] = {
    {"address", ms_config_parse_upstream_address, offsetof(ms_xds_bootstrap, address), 0, 0,
     "the control plane's \"host:port\""},
    {"tls", ms_config_parse_tls, offsetof(ms_xds_bootstrap, tls), 0, 0,
     "the certificate the sidecar presents to the control plane and the CA it trusts"},
    {"node", parse_node, 0, 0, 0, NULL},
    {"initial_fetch_timeout_ms", ms_schema_parse_uint32,
     offsetof(ms_xds_bootstrap, initial_fetch_timeout_ms), 1, UINT32_MAX, NULL},
    {"backup_path", ms_schema_parse_path, offsetof(ms_xds_bootstrap, backup_path), 0, 0, NULL},
};

/* The sidecar's --node-id, put in force over every file's node.id. */
static char *node_id_override;

void ms_config_set_node_id(const char *node_id) {
  free(node_id_override);
  node_id_override = node_id != NULL ? strdup(node_id) : NULL;
}

void ms_config_xds_init(ms_xds_bootstrap *xds) {
  ms_config_tls_init(&xds->tls);
  xds->initial_fetch_timeout_ms = 15000;
}

void ms_config_parse_xds(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                         void *field) {
  ms_xds_bootstrap *xds = field;
  ms_schema_object(schema, value, xds_keys, COUNT(xds_keys), xds);
  xds->enabled = true;
  if (node_id_override != NULL) {
    free(xds->node_id);
    xds->node_id = strdup(node_id_override);
    if (xds->node_id == NULL) schema->out_of_memory = true;
  } else if (xds->node_id == NULL) {
    size_t saved = ms_schema_push_key(schema, "node");
    ms_schema_error_at(schema, "id",
                       "required; the node's identity for the control plane, e.g. the pod's "
                       "name (or give it with sidecar --node-id)");
    ms_schema_pop(schema, saved);
  }
  if (xds->node_cluster == NULL && xds->node_id != NULL) {
    xds->node_cluster = strdup(xds->node_id);
    if (xds->node_cluster == NULL) schema->out_of_memory = true;
  }
}

void ms_config_xds_cleanup(ms_xds_bootstrap *xds) {
  ms_address_cleanup(&xds->address);
  ms_config_tls_cleanup(&xds->tls);
  free(xds->node_id);
  free(xds->node_cluster);
  ms_schema_strings_free(xds->metadata_keys, xds->metadata_count);
  ms_schema_strings_free(xds->metadata_values, xds->metadata_count);
  free(xds->backup_path);
}
