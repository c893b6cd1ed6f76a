/* The backup file:
 *
 *   {"format": "mtls-sidecar/xds-backup/1",
 *    "resources": [{"type_url": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
 *                   "value": "<base64 of the protobuf bytes>"}, ...]}
 */
#include "sidecar/xds/xds_backup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/base64.h>
#include <openssl/mem.h>

#include "certs/certs.h"
#include "common/file.h"

#define MS_XDS_BACKUP_FORMAT "mtls-sidecar/xds-backup/1"

/* Free cJSON text that may hold key material. */
static void wipe_free(char *text) {
  if (text == NULL) return;
  OPENSSL_cleanse(text, strlen(text));
  free(text);
}

/* A cJSON tree that may hold key material: wipe every string first. */
static void wipe_tree(cJSON *node) {
  for (cJSON *item = node; item; item = item->next) {
    if (cJSON_IsString(item) && item->valuestring)
      OPENSSL_cleanse(item->valuestring, strlen(item->valuestring));
    wipe_tree(item->child);
  }
}

static void delete_wiped(cJSON *json) {
  if (json == NULL) return;
  wipe_tree(json->child);
  cJSON_Delete(json);
}

static cJSON *encode_any(const Google__Protobuf__Any *any) {
  size_t encoded_len = 0;
  if (!EVP_EncodedLength(&encoded_len, any->value.len)) return NULL;
  char *encoded = malloc(encoded_len);
  if (encoded == NULL) return NULL;
  EVP_EncodeBlock((uint8_t *)encoded, any->value.data, any->value.len);
  cJSON *item = cJSON_CreateObject();
  cJSON *value = cJSON_CreateString(encoded);
  wipe_free(encoded);
  if (item == NULL || value == NULL || !cJSON_AddStringToObject(item, "type_url", any->type_url)) {
    cJSON_Delete(item);
    delete_wiped(value);
    return NULL;
  }
  cJSON_AddItemToObject(item, "value", value);
  return item;
}

int ms_xds_backup_write(const ms_xds_state *state, const char *path, char *err, size_t err_len) {
  cJSON *json = cJSON_CreateObject();
  cJSON *resources = cJSON_AddArrayToObject(json, "resources");
  bool ok = json && resources && cJSON_AddStringToObject(json, "format", MS_XDS_BACKUP_FORMAT);
  static const ms_xds_kind kinds[] = {MS_XDS_KIND_SECRET, MS_XDS_KIND_ENDPOINTS,
                                      MS_XDS_KIND_CLUSTER, MS_XDS_KIND_LISTENER};
  for (size_t k = 0; ok && k < 4; k++) {
    size_t count = 0;
    const Google__Protobuf__Any *const *raw = ms_xds_state_raw(state, kinds[k], &count);
    for (size_t i = 0; ok && i < count; i++) {
      cJSON *item = encode_any(raw[i]);
      ok = item != NULL;
      if (ok) cJSON_AddItemToArray(resources, item);
    }
  }
  char *text = ok ? cJSON_PrintUnformatted(json) : NULL;
  delete_wiped(json);
  if (text == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  int rc = ms_file_write_atomic(path, text, strlen(text), 0600, err, err_len);
  wipe_free(text);
  return rc;
}

/* decode_any fills `any` from one entry; the caller frees its fields. */
static int decode_any(const cJSON *item, Google__Protobuf__Any *any, size_t index, char *err,
                      size_t err_len) {
  const cJSON *type_url = cJSON_GetObjectItemCaseSensitive(item, "type_url");
  const cJSON *value = cJSON_GetObjectItemCaseSensitive(item, "value");
  if (!cJSON_IsString(type_url) || !cJSON_IsString(value)) {
    snprintf(err, err_len, "resources[%zu]: expected {\"type_url\": ..., \"value\": ...}", index);
    return -1;
  }
  size_t encoded_len = strlen(value->valuestring), max_len = 0;
  if (!EVP_DecodedLength(&max_len, encoded_len)) max_len = 0;
  any->type_url = strdup(type_url->valuestring);
  any->value.data = malloc(max_len + 1);
  if (any->type_url == NULL || any->value.data == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  if (!EVP_DecodeBase64(any->value.data, &any->value.len, max_len,
                        (const uint8_t *)value->valuestring, encoded_len)) {
    snprintf(err, err_len, "resources[%zu].value: not base64", index);
    return -1;
  }
  return 0;
}

static void any_cleanup(Google__Protobuf__Any *any) {
  if (any->value.data) OPENSSL_cleanse(any->value.data, any->value.len);
  free(any->value.data);
  free(any->type_url);
}

/* load_kind applies every entry of `kind` to `state`. */
static int load_kind(ms_xds_state *state, const cJSON *resources, ms_xds_kind kind, char *err,
                     size_t err_len) {
  size_t total = (size_t)cJSON_GetArraySize(resources);
  Google__Protobuf__Any *anys = calloc(total + 1, sizeof(*anys));
  const Google__Protobuf__Any **pointers = calloc(total + 1, sizeof(*pointers));
  size_t count = 0, index = 0;
  int rc = anys && pointers ? 0 : -1;
  if (rc != 0) snprintf(err, err_len, "out of memory");
  for (const cJSON *item = resources->child; rc == 0 && item; item = item->next, index++) {
    const cJSON *type_url = cJSON_GetObjectItemCaseSensitive(item, "type_url");
    ms_xds_kind item_kind;
    if (!cJSON_IsString(type_url) ||
        ms_xds_kind_from_type_url(type_url->valuestring, &item_kind) != 0) {
      snprintf(err, err_len, "resources[%zu].type_url: not a resource type this sidecar takes",
               index);
      rc = -1;
      break;
    }
    if (item_kind != kind) continue;
    google__protobuf__any__init(&anys[count]);
    rc = decode_any(item, &anys[count], index, err, err_len);
    pointers[count] = &anys[count];
    count++;
  }
  if (rc == 0) rc = ms_xds_state_update(state, kind, pointers, count, err, err_len);
  for (size_t i = 0; anys && i < count; i++)
    any_cleanup(&anys[i]);
  free(anys);
  free(pointers);
  return rc;
}

int ms_xds_backup_read(const char *path, ms_xds_state **out, char *err, size_t err_len) {
  char *text = NULL;
  size_t len = 0;
  char why[256];
  if (ms_file_read(path, &text, &len, why, sizeof(why)) != 0) {
    snprintf(err, err_len, "%s", why);
    return -1;
  }
  cJSON *json = cJSON_ParseWithLength(text, len);
  OPENSSL_cleanse(text, len);
  free(text);
  const cJSON *format = cJSON_GetObjectItemCaseSensitive(json, "format");
  const cJSON *resources = cJSON_GetObjectItemCaseSensitive(json, "resources");
  if (!cJSON_IsString(format) || strcmp(format->valuestring, MS_XDS_BACKUP_FORMAT) != 0 ||
      !cJSON_IsArray(resources)) {
    snprintf(err, err_len, "%s: not a backup file of this sidecar (format %s)", path,
             MS_XDS_BACKUP_FORMAT);
    delete_wiped(json);
    return -1;
  }
  ms_xds_state *state = ms_xds_state_new();
  int rc = state ? 0 : -1;
  if (rc != 0) snprintf(err, err_len, "out of memory");
  static const ms_xds_kind kinds[] = {MS_XDS_KIND_SECRET, MS_XDS_KIND_ENDPOINTS,
                                      MS_XDS_KIND_CLUSTER, MS_XDS_KIND_LISTENER};
  for (size_t k = 0; rc == 0 && k < 4; k++) {
    char why_kind[512];
    rc = load_kind(state, resources, kinds[k], why_kind, sizeof(why_kind));
    if (rc != 0) snprintf(err, err_len, "%s: %s", path, why_kind);
  }
  delete_wiped(json);
  if (rc != 0) {
    ms_xds_state_free(state);
    return -1;
  }
  *out = state;
  return 0;
}
