/* ads_client_state.c: see ads_client_state.h. */
#include "xds/ads/ads_client_state.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "xds/proto/type_urls.h"

/* google.rpc.Code INVALID_ARGUMENT, what Envoy puts in a NACK. */
#define NACK_CODE 3

/* ---- backoff ---------------------------------------------------------------- */

uint64_t ms_ads_backoff_ms(uint32_t failures, uint64_t initial_ms, uint64_t max_ms,
                           uint32_t random) {
  uint64_t base = initial_ms;
  for (uint32_t i = 0; i < failures && base < max_ms; i++)
    base *= 2;
  if (base > max_ms) base = max_ms;
  uint64_t delay = base / 2 + (uint64_t)random % (base + 1);
  return delay > max_ms ? max_ms : delay;
}

uint32_t ms_ads_random_u32(void) {
  uint32_t value = 0;
  RAND_bytes((uint8_t *)&value, sizeof(value));
  return value;
}

/* ---- small helpers ---------------------------------------------------------- */

/* Replaces *slot with a copy of `value` (NULL: ""). Returns 0 or
 * UV_ENOMEM (then *slot is unchanged). */
static int set_string(char **slot, const char *value) {
  char *copy = strdup(value != NULL ? value : "");
  if (copy == NULL) return UV_ENOMEM;
  free(*slot);
  *slot = copy;
  return 0;
}

static void free_strings(char **strings, size_t count) {
  for (size_t i = 0; strings != NULL && i < count; i++)
    free(strings[i]);
  free(strings);
}

/* ---- the node ------------------------------------------------------------- */

int ms_ads_node_init(ms_ads_node *out, const ms_ads_node_options *options, const char *user_agent,
                     const char *user_agent_version) {
  ms_ads_node node = {0};
  size_t count = options->metadata_count;
  bool ok =
      set_string(&node.id, options->id) == 0 && set_string(&node.cluster, options->cluster) == 0 &&
      set_string(&node.user_agent_name, user_agent ? user_agent : "mtls-sidecar") == 0 &&
      (user_agent_version == NULL || set_string(&node.user_agent_version, user_agent_version) == 0);
  if (ok && count > 0) {
    node.metadata_keys = calloc(count, sizeof(char *));
    node.metadata_values = calloc(count, sizeof(char *));
    ok = node.metadata_keys != NULL && node.metadata_values != NULL;
    for (size_t i = 0; ok && i < count; i++) {
      node.metadata_count = i + 1; /* a half-copied entry is freed with the rest */
      ok = set_string(&node.metadata_keys[i], options->metadata[i].key) == 0 &&
           set_string(&node.metadata_values[i], options->metadata[i].value) == 0;
    }
  }
  if (!ok) {
    ms_ads_node_cleanup(&node);
    return UV_ENOMEM;
  }
  *out = node;
  return 0;
}

void ms_ads_node_cleanup(ms_ads_node *node) {
  free(node->id);
  free(node->cluster);
  free(node->user_agent_name);
  free(node->user_agent_version);
  free_strings(node->metadata_keys, node->metadata_count);
  free_strings(node->metadata_values, node->metadata_count);
  memset(node, 0, sizeof(*node));
}

/* ---- requests ------------------------------------------------------------- */

int ms_ads_request_encode(const ms_ads_request *request, uint8_t **out_bytes, size_t *out_len) {
  Envoy__Service__Discovery__V3__DiscoveryRequest message =
      ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
  message.type_url = (char *)request->type_url;
  message.version_info = (char *)(request->version_info ? request->version_info : "");
  message.response_nonce = (char *)(request->response_nonce ? request->response_nonce : "");
  message.resource_names = (char **)request->resource_names;
  message.n_resource_names = request->resource_name_count;

  Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
  if (request->error_message != NULL) {
    status.code = NACK_CODE;
    status.message = (char *)request->error_message;
    message.error_detail = &status;
  }

  /* The node's metadata: a Struct of string Values, built on the heap for
   * the length of this function. */
  const ms_ads_node *from = request->node;
  Envoy__Config__Core__V3__Node node = ENVOY__CONFIG__CORE__V3__NODE__INIT;
  Google__Protobuf__Struct metadata = GOOGLE__PROTOBUF__STRUCT__INIT;
  Google__Protobuf__Struct__FieldsEntry *entries = NULL, **entry_pointers = NULL;
  Google__Protobuf__Value *values = NULL;
  if (from != NULL) {
    node.id = from->id;
    node.cluster = from->cluster;
    node.user_agent_name = from->user_agent_name;
    if (from->user_agent_version != NULL) {
      node.user_agent_version_type_case =
          ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_VERSION;
      node.user_agent_version = from->user_agent_version;
    }
    if (from->metadata_count > 0) {
      size_t count = from->metadata_count;
      entries = calloc(count, sizeof(*entries));
      entry_pointers = calloc(count, sizeof(*entry_pointers));
      values = calloc(count, sizeof(*values));
      if (entries == NULL || entry_pointers == NULL || values == NULL) {
        free(entries);
        free(entry_pointers);
        free(values);
        return UV_ENOMEM;
      }
      for (size_t i = 0; i < count; i++) {
        google__protobuf__value__init(&values[i]);
        values[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        values[i].string_value = from->metadata_values[i];
        google__protobuf__struct__fields_entry__init(&entries[i]);
        entries[i].key = from->metadata_keys[i];
        entries[i].value = &values[i];
        entry_pointers[i] = &entries[i];
      }
      metadata.fields = entry_pointers;
      metadata.n_fields = count;
      node.metadata = &metadata;
    }
    message.node = &node;
  }

  size_t len = envoy__service__discovery__v3__discovery_request__get_packed_size(&message);
  uint8_t *bytes = malloc(len > 0 ? len : 1);
  if (bytes != NULL) envoy__service__discovery__v3__discovery_request__pack(&message, bytes);
  free(entries);
  free(entry_pointers);
  free(values);
  if (bytes == NULL) return UV_ENOMEM;
  *out_bytes = bytes;
  *out_len = len;
  return 0;
}

/* ---- per-type state --------------------------------------------------------- */

ms_ads_type *ms_ads_type_new(const char *type_url) {
  ms_ads_type *type = calloc(1, sizeof(*type));
  if (type == NULL) return NULL;
  if (set_string(&type->type_url, type_url) != 0 || set_string(&type->version_info, "") != 0 ||
      set_string(&type->nonce, "") != 0) {
    ms_ads_type_free(type);
    return NULL;
  }
  type->wildcard_capable = strcmp(type_url, MS_XDS_TYPE_URL_CLUSTER) == 0 ||
                           strcmp(type_url, MS_XDS_TYPE_URL_LISTENER) == 0;
  return type;
}

void ms_ads_type_free(ms_ads_type *type) {
  if (type == NULL) return;
  free(type->type_url);
  free_strings(type->names, type->name_count);
  free(type->version_info);
  free(type->nonce);
  free(type->nack_message);
  free(type->nack_version);
  free(type);
}

int ms_ads_type_rank(const char *type_url) {
  static const char *const order[] = {
      MS_XDS_TYPE_URL_CLUSTER,
      MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT,
      MS_XDS_TYPE_URL_LISTENER,
      MS_XDS_TYPE_URL_SECRET,
  };
  for (int i = 0; i < (int)(sizeof(order) / sizeof(order[0])); i++)
    if (strcmp(type_url, order[i]) == 0) return i;
  return (int)(sizeof(order) / sizeof(order[0]));
}

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int ms_ads_type_set_names(ms_ads_type *type, const char *const *names, size_t count,
                          bool *out_changed) {
  char **copy = NULL;
  size_t unique = 0;
  if (count > 0) {
    copy = calloc(count, sizeof(char *));
    if (copy == NULL) return UV_ENOMEM;
    for (size_t i = 0; i < count; i++) {
      if ((copy[i] = strdup(names[i] != NULL ? names[i] : "")) == NULL) {
        free_strings(copy, i);
        return UV_ENOMEM;
      }
    }
    qsort(copy, count, sizeof(char *), compare_strings);
    for (size_t i = 0; i < count; i++) {
      if (unique > 0 && strcmp(copy[unique - 1], copy[i]) == 0)
        free(copy[i]);
      else
        copy[unique++] = copy[i];
    }
  }
  bool subscribed = unique > 0 || type->wildcard_capable;
  bool changed = subscribed != type->subscribed || unique != type->name_count;
  for (size_t i = 0; !changed && i < unique; i++)
    changed = strcmp(copy[i], type->names[i]) != 0;
  free_strings(type->names, type->name_count);
  type->names = copy;
  type->name_count = unique;
  type->subscribed = subscribed;
  *out_changed = changed;
  return 0;
}

bool ms_ads_type_needs_request(const ms_ads_type *type) {
  return type->requested || type->subscribed;
}

int ms_ads_type_ack(ms_ads_type *type, const char *version_info, const char *nonce) {
  char *version = strdup(version_info ? version_info : "");
  char *new_nonce = strdup(nonce ? nonce : "");
  if (version == NULL || new_nonce == NULL) {
    free(version);
    free(new_nonce);
    return UV_ENOMEM;
  }
  free(type->version_info);
  free(type->nonce);
  type->version_info = version;
  type->nonce = new_nonce;
  type->acks++;
  return 0;
}

int ms_ads_type_nack(ms_ads_type *type, const char *version_info, const char *nonce,
                     const char *message) {
  char *refused = strdup(version_info ? version_info : "");
  char *new_nonce = strdup(nonce ? nonce : "");
  char *text = strdup(message ? message : "");
  if (refused == NULL || new_nonce == NULL || text == NULL) {
    free(refused);
    free(new_nonce);
    free(text);
    return UV_ENOMEM;
  }
  free(type->nack_version);
  free(type->nonce);
  free(type->nack_message);
  type->nack_version = refused;
  type->nonce = new_nonce;
  type->nack_message = text;
  type->nacks++;
  return 0;
}

void ms_ads_type_stream_reset(ms_ads_type *type) {
  type->nonce[0] = '\0';
  type->requested = false;
}

void ms_ads_type_request(const ms_ads_type *type, const ms_ads_node *node,
                         const char *error_message, ms_ads_request *out) {
  *out = (ms_ads_request){
      .type_url = type->type_url,
      .version_info = type->version_info,
      .response_nonce = type->nonce,
      .resource_names = (const char *const *)type->names,
      .resource_name_count = type->name_count,
      .node = node,
      .error_message = error_message,
  };
}
