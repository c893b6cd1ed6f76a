#include "sidecar/xds/xds_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/mem.h>

#include "common/name_index.h"
#include "sidecar/xds/xds_secrets.h"
#include "sidecar/xds/xds_state_internal.h"

ms_xds_state *ms_xds_state_new(void) {
  return calloc(1, sizeof(ms_xds_state));
}

static void raw_free(raw_list *list) {
  for (size_t i = 0; i < list->count; i++) {
    Google__Protobuf__Any *any = list->items[i];
    if (any) {
      if (any->value.data) OPENSSL_cleanse(any->value.data, any->value.len); /* secrets */
      free(any->value.data);
      free(any->type_url);
      free(any);
    }
    free(list->names[i]);
  }
  free(list->items);
  free(list->names);
  memset(list, 0, sizeof(*list));
}

static Google__Protobuf__Any *raw_copy(const Google__Protobuf__Any *from) {
  Google__Protobuf__Any *any = calloc(1, sizeof(*any));
  if (any == NULL) return NULL;
  google__protobuf__any__init(any);
  any->type_url = strdup(from->type_url ? from->type_url : "");
  any->value.len = from->value.len;
  any->value.data = malloc(from->value.len ? from->value.len : 1);
  if (any->type_url == NULL || any->value.data == NULL) {
    free(any->type_url);
    free(any->value.data);
    free(any);
    return NULL;
  }
  if (from->value.len) memcpy(any->value.data, from->value.data, from->value.len);
  return any;
}

static int raw_append(raw_list *list, const Google__Protobuf__Any *any, const char *name) {
  list->items[list->count] = raw_copy(any);
  list->names[list->count] = strdup(name);
  list->count++;
  return list->items[list->count - 1] && list->names[list->count - 1] ? 0 : -1;
}

/* Keeps copies of the accepted `resources` (named `names`): they replace
 * the whole list (CDS, LDS) or the items of the same names (EDS, SDS). */
static int raw_keep(raw_list *list, bool replace_all, const Google__Protobuf__Any *const *resources,
                    const char *const *names, size_t count) {
  size_t capacity = (replace_all ? 0 : list->count) + count + 1;
  raw_list next = {calloc(capacity, sizeof(void *)), calloc(capacity, sizeof(char *)), 0};
  int rc = next.items && next.names ? 0 : -1;
  for (size_t i = 0; rc == 0 && !replace_all && i < list->count; i++) {
    bool replaced = false;
    for (size_t j = 0; j < count && !replaced; j++)
      replaced = strcmp(list->names[i], names[j]) == 0;
    if (!replaced) rc = raw_append(&next, list->items[i], list->names[i]);
  }
  for (size_t j = 0; rc == 0 && j < count; j++)
    rc = raw_append(&next, resources[j], names[j]);
  if (rc != 0) {
    raw_free(&next);
    return -1;
  }
  raw_free(list);
  *list = next;
  return 0;
}

void ms_xds_state_free(ms_xds_state *state) {
  if (state == NULL) return;
  for (int k = 0; k < 4; k++)
    raw_free(&state->raw[k]);
  for (size_t i = 0; i < state->cluster_count; i++)
    ms_xds_cluster_cleanup(&state->clusters[i].cluster);
  for (size_t i = 0; i < state->listener_count; i++)
    ms_xds_listener_cleanup(&state->listeners[i]);
  for (size_t i = 0; i < state->endpoint_count; i++)
    ms_xds_endpoints_cleanup(&state->endpoints[i]);
  for (size_t i = 0; i < state->secret_count; i++)
    ms_xds_secret_cleanup(&state->secrets[i]);
  free(state->clusters);
  free(state->listeners);
  free(state->endpoints);
  free(state->secrets);
  free(state->local_secrets[0]);
  free(state->local_secrets[1]);
  free(state);
}

int ms_xds_state_set_local_secrets(ms_xds_state *state, const char *certificate,
                                   const char *trust_bundle) {
  const char *names[2] = {certificate, trust_bundle};
  for (int i = 0; i < 2; i++) {
    free(state->local_secrets[i]);
    state->local_secrets[i] = names[i] ? strdup(names[i]) : NULL;
    if (names[i] && state->local_secrets[i] == NULL) return -1;
  }
  return 0;
}

bool ms_xds_state_is_local(const ms_xds_state *state, const char *name) {
  for (int i = 0; name && i < 2; i++)
    if (state->local_secrets[i] && strcmp(state->local_secrets[i], name) == 0) return true;
  return false;
}

/* ---- lookups ------------------------------------------------------------ */

const ms_xds_endpoints *ms_xds_state_find_endpoints(const ms_xds_state *state, const char *name) {
  for (size_t i = 0; i < state->endpoint_count; i++)
    if (strcmp(state->endpoints[i].cluster_name, name) == 0) return &state->endpoints[i];
  return NULL;
}

const ms_xds_secret *ms_xds_state_find_secret(const ms_xds_state *state, const char *name,
                                              ms_xds_secret_kind kind) {
  for (size_t i = 0; i < state->secret_count; i++)
    if (strcmp(state->secrets[i].name, name) == 0 && state->secrets[i].kind == kind)
      return &state->secrets[i];
  return NULL;
}

bool ms_xds_needs_validation_secret(const ms_xds_upstream_tls *tls) {
  return tls->validation_source == MS_XDS_TLS_SOURCE_SDS ||
         tls->validation_source == MS_XDS_TLS_SOURCE_COMBINED;
}

static bool has_secrets(const ms_xds_state *state, const ms_xds_cluster *cluster) {
  const ms_xds_upstream_tls *tls = &cluster->tls;
  if (tls->certificate_source == MS_XDS_TLS_SOURCE_SDS &&
      !ms_xds_state_is_local(state, tls->certificate_sds_name) &&
      !ms_xds_state_find_secret(state, tls->certificate_sds_name, MS_XDS_SECRET_TLS_CERTIFICATE))
    return false;
  if (ms_xds_needs_validation_secret(tls) &&
      !ms_xds_state_is_local(state, tls->validation_sds_name) &&
      !ms_xds_state_find_secret(state, tls->validation_sds_name, MS_XDS_SECRET_VALIDATION_CONTEXT))
    return false;
  return true;
}

/* Live: its secrets and (EDS) at least one endpoint are here. A cluster is
 * never put in force without them; the initial fetch timeout only decides
 * when the sidecar stops waiting for it to report ready. */
bool ms_xds_state_is_live(const ms_xds_state *state, const held_cluster *held) {
  if (!has_secrets(state, &held->cluster)) return false;
  if (held->cluster.type != MS_XDS_DISCOVERY_EDS) return true;
  const ms_xds_endpoints *eds = ms_xds_state_find_endpoints(state, held->cluster.eds_service_name);
  return eds != NULL && eds->endpoint_count > 0;
}

/* ---- updates ------------------------------------------------------------ */

static int decode_all(ms_xds_kind kind, const Google__Protobuf__Any *const *resources, size_t count,
                      ms_xds_resource **out, char *err, size_t err_len) {
  ms_xds_resource *decoded = calloc(count ? count : 1, sizeof(*decoded));
  if (decoded == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  const char *type_url = ms_xds_kind_type_url(kind);
  ms_name_index seen = {0};
  size_t n = 0;
  if (ms_name_index_init(&seen, count) != 0) {
    snprintf(err, err_len, "out of memory");
    goto fail;
  }
  for (; n < count; n++) {
    if (ms_xds_resource_decode_any(resources[n], type_url, &decoded[n], err, err_len) != 0) break;
    const char *name = ms_xds_resource_name(&decoded[n]);
    if (ms_name_index_put(&seen, name, n) != MS_NAME_INDEX_NONE) {
      snprintf(err, err_len, "%s \"%s\": the name appears twice in one response",
               ms_xds_kind_name(kind), name);
      n++;
      goto fail;
    }
    if (kind == MS_XDS_KIND_CLUSTER && !decoded[n].as.cluster.tls.present) {
      snprintf(err, err_len,
               "cluster \"%s\": transport_socket: none; this sidecar originates TLS only: give "
               "the cluster an envoy.transport_sockets.tls UpstreamTlsContext",
               name);
      n++;
      goto fail;
    }
  }
  if (n == count) {
    ms_name_index_cleanup(&seen);
    *out = decoded;
    return 0;
  }
  /* decode failed at n: it cleaned up after itself */
fail:
  ms_name_index_cleanup(&seen);
  for (size_t j = 0; j < n && j < count; j++)
    ms_xds_resource_cleanup(&decoded[j]);
  free(decoded);
  return -1;
}

static void replace_clusters(ms_xds_state *state, ms_xds_resource *decoded, size_t count) {
  held_cluster *clusters = calloc(count ? count : 1, sizeof(*clusters));
  if (clusters == NULL) return; /* keep the old ones; the caller reports memory */
  ms_name_index previous = {0};
  if (ms_name_index_init(&previous, state->cluster_count) != 0) {
    free(clusters);
    return;
  }
  for (size_t j = 0; j < state->cluster_count; j++)
    ms_name_index_put(&previous, state->clusters[j].cluster.name, j);
  for (size_t i = 0; i < count; i++) {
    clusters[i].cluster = decoded[i].as.cluster;
    size_t j = ms_name_index_get(&previous, clusters[i].cluster.name);
    if (j != MS_NAME_INDEX_NONE) {
      clusters[i].since_ms = state->clusters[j].since_ms;
      clusters[i].timed_out = state->clusters[j].timed_out;
    }
  }
  ms_name_index_cleanup(&previous);
  for (size_t i = 0; i < state->cluster_count; i++)
    ms_xds_cluster_cleanup(&state->clusters[i].cluster);
  free(state->clusters);
  state->clusters = clusters;
  state->cluster_count = count;
}

static void replace_listeners(ms_xds_state *state, ms_xds_resource *decoded, size_t count) {
  ms_xds_listener *listeners = calloc(count ? count : 1, sizeof(*listeners));
  if (listeners == NULL) return;
  for (size_t i = 0; i < count; i++)
    listeners[i] = decoded[i].as.listener;
  for (size_t i = 0; i < state->listener_count; i++)
    ms_xds_listener_cleanup(&state->listeners[i]);
  free(state->listeners);
  state->listeners = listeners;
  state->listener_count = count;
}

/* EDS and SDS: replace by name, add what is new. */
static int merge_named(void **items, size_t *count, size_t size, const char *(*name_of)(void *),
                       void (*cleanup)(void *), ms_xds_resource *decoded, size_t n,
                       void *(*payload)(ms_xds_resource *)) {
  char *array = realloc(*items, (*count + n ? *count + n : 1) * size);
  if (array == NULL) return -1;
  *items = array;
  /* Where each item goes, found before anything is freed (the index
   * borrows the names of the items it holds). */
  ms_name_index held = {0};
  size_t *targets = calloc(n ? n : 1, sizeof(size_t));
  if (targets == NULL || ms_name_index_init(&held, *count + n) != 0) {
    free(targets);
    return -1;
  }
  for (size_t j = 0; j < *count; j++)
    ms_name_index_put(&held, name_of(array + j * size), j);
  size_t appended = *count;
  for (size_t i = 0; i < n; i++) {
    const char *name = name_of(payload(&decoded[i]));
    targets[i] = ms_name_index_get(&held, name);
    if (targets[i] == MS_NAME_INDEX_NONE) ms_name_index_put(&held, name, targets[i] = appended++);
  }
  ms_name_index_cleanup(&held);
  for (size_t i = 0; i < n; i++) {
    void *item = payload(&decoded[i]);
    if (targets[i] < *count) cleanup(array + targets[i] * size);
    memcpy(array + targets[i] * size, item, size);
  }
  *count = appended;
  free(targets);
  return 0;
}

static const char *endpoints_name(void *p) {
  return ((ms_xds_endpoints *)p)->cluster_name;
}
static const char *secret_name(void *p) {
  return ((ms_xds_secret *)p)->name;
}
static void endpoints_cleanup(void *p) {
  ms_xds_endpoints_cleanup(p);
}
static void secret_cleanup(void *p) {
  ms_xds_secret_cleanup(p);
}
static void *endpoints_of(ms_xds_resource *r) {
  return &r->as.endpoints;
}
static void *secret_of(ms_xds_resource *r) {
  return &r->as.secret;
}

int ms_xds_state_update(ms_xds_state *state, ms_xds_kind kind,
                        const Google__Protobuf__Any *const *resources, size_t count, char *err,
                        size_t err_len) {
  ms_xds_resource *decoded = NULL;
  if (decode_all(kind, resources, count, &decoded, err, err_len) != 0) return -1;
  const char **names = calloc(count + 1, sizeof(char *));
  for (size_t i = 0; names && i < count; i++)
    names[i] = ms_xds_resource_name(&decoded[i]);
  bool replace_all = kind == MS_XDS_KIND_CLUSTER || kind == MS_XDS_KIND_LISTENER;
  int rc = names ? raw_keep(&state->raw[kind], replace_all, resources, names, count) : -1;
  free(names);
  if (rc != 0) {
    snprintf(err, err_len, "out of memory");
    for (size_t i = 0; i < count; i++)
      ms_xds_resource_cleanup(&decoded[i]);
    free(decoded);
    return -1;
  }
  switch (kind) {
    case MS_XDS_KIND_CLUSTER:
      replace_clusters(state, decoded, count);
      break;
    case MS_XDS_KIND_LISTENER:
      replace_listeners(state, decoded, count);
      break;
    case MS_XDS_KIND_ENDPOINTS:
      rc = merge_named((void **)&state->endpoints, &state->endpoint_count, sizeof(ms_xds_endpoints),
                       endpoints_name, endpoints_cleanup, decoded, count, endpoints_of);
      break;
    case MS_XDS_KIND_SECRET:
      rc = merge_named((void **)&state->secrets, &state->secret_count, sizeof(ms_xds_secret),
                       secret_name, secret_cleanup, decoded, count, secret_of);
      break;
  }
  free(decoded);
  if (rc != 0) snprintf(err, err_len, "out of memory");
  return rc;
}

ms_xds_state *ms_xds_state_clone(const ms_xds_state *state) {
  ms_xds_state *clone = ms_xds_state_new();
  if (clone && ms_xds_state_set_local_secrets(clone, state->local_secrets[0],
                                              state->local_secrets[1]) != 0) {
    ms_xds_state_free(clone);
    return NULL;
  }
  /* Secrets and endpoints first: the order does not matter to the result,
   * but it is the order Envoy warms in. */
  static const ms_xds_kind order[] = {MS_XDS_KIND_SECRET, MS_XDS_KIND_ENDPOINTS,
                                      MS_XDS_KIND_CLUSTER, MS_XDS_KIND_LISTENER};
  char err[256];
  for (size_t k = 0; clone && k < 4; k++) {
    const raw_list *raw = &state->raw[order[k]];
    if (ms_xds_state_update(clone, order[k], (const Google__Protobuf__Any *const *)raw->items,
                            raw->count, err, sizeof(err)) != 0) {
      ms_xds_state_free(clone);
      return NULL;
    }
  }
  /* Decoded again from the same bytes in the same order: position i is the
   * same cluster. */
  for (size_t i = 0; clone && i < clone->cluster_count && i < state->cluster_count; i++) {
    clone->clusters[i].since_ms = state->clusters[i].since_ms;
    clone->clusters[i].timed_out = state->clusters[i].timed_out;
  }
  return clone;
}

const ms_xds_secret *ms_xds_state_secrets(const ms_xds_state *state, size_t *out_count) {
  *out_count = state->secret_count;
  return state->secrets;
}

const Google__Protobuf__Any *const *ms_xds_state_raw(const ms_xds_state *state, ms_xds_kind kind,
                                                     size_t *out_count) {
  *out_count = state->raw[kind].count;
  return (const Google__Protobuf__Any *const *)state->raw[kind].items;
}

const char **ms_xds_state_wanted(const ms_xds_state *state, ms_xds_kind kind, size_t *out_count) {
  const char **names = calloc(state->cluster_count * 2 + 1, sizeof(char *));
  size_t n = 0;
  for (size_t i = 0; names && i < state->cluster_count; i++) {
    const ms_xds_cluster *c = &state->clusters[i].cluster;
    const char *candidates[2] = {NULL, NULL};
    if (kind == MS_XDS_KIND_ENDPOINTS && c->type == MS_XDS_DISCOVERY_EDS)
      candidates[0] = c->eds_service_name;
    if (kind == MS_XDS_KIND_SECRET) {
      if (c->tls.certificate_source == MS_XDS_TLS_SOURCE_SDS)
        candidates[0] = c->tls.certificate_sds_name;
      if (ms_xds_needs_validation_secret(&c->tls)) candidates[1] = c->tls.validation_sds_name;
    }
    for (int k = 0; k < 2; k++) {
      if (candidates[k] == NULL || ms_xds_state_is_local(state, candidates[k])) continue;
      size_t j = 0;
      while (j < n && strcmp(names[j], candidates[k]) != 0)
        j++;
      if (j == n) names[n++] = candidates[k];
    }
  }
  *out_count = n;
  return names;
}

size_t ms_xds_state_expire_warming(ms_xds_state *state, uint64_t now_ms, uint64_t timeout_ms) {
  size_t expired = 0;
  for (size_t i = 0; i < state->cluster_count; i++) {
    held_cluster *held = &state->clusters[i];
    if (held->since_ms == 0) held->since_ms = now_ms ? now_ms : 1;
    if (!held->timed_out && !ms_xds_state_is_live(state, held) &&
        now_ms - held->since_ms >= timeout_ms) {
      held->timed_out = true;
      expired++;
    }
  }
  return expired;
}

void ms_xds_state_counts(const ms_xds_state *state, size_t *out_clusters, size_t *out_warming,
                         size_t *out_listeners) {
  size_t warming = 0;
  for (size_t i = 0; i < state->cluster_count; i++)
    if (!ms_xds_state_is_live(state, &state->clusters[i]) && !state->clusters[i].timed_out)
      warming++;
  *out_clusters = state->cluster_count;
  *out_warming = warming;
  *out_listeners = state->listener_count;
}
