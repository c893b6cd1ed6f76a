/* admin_build.h (private to the admin endpoint's bodies: admin_json.c,
 * admin_stats.c, admin_config.c): building a JSON body with cJSON.
 *
 * cJSON returns NULL when memory runs out, and its Add functions do nothing
 * on a NULL parent; these wrappers remember the failure in *ok so that a body
 * is checked once, at the end, instead of after every member. */
#ifndef MS_ADMIN_BUILD_H
#define MS_ADMIN_BUILD_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "sidecar/admin/admin_json.h"

static inline cJSON *put_object(cJSON *parent, const char *name, bool *ok) {
  cJSON *item = cJSON_AddObjectToObject(parent, name);
  if (!item) *ok = false;
  return item;
}

static inline cJSON *put_array(cJSON *parent, const char *name, bool *ok) {
  cJSON *item = cJSON_AddArrayToObject(parent, name);
  if (!item) *ok = false;
  return item;
}

static inline void put_number(cJSON *parent, const char *name, double value, bool *ok) {
  if (!cJSON_AddNumberToObject(parent, name, value)) *ok = false;
}

static inline void put_bool(cJSON *parent, const char *name, bool value, bool *ok) {
  if (!cJSON_AddBoolToObject(parent, name, value)) *ok = false;
}

/* put_string adds `value`, or null when `value` is NULL. */
static inline void put_string(cJSON *parent, const char *name, const char *value, bool *ok) {
  cJSON *item =
      value ? cJSON_AddStringToObject(parent, name, value) : cJSON_AddNullToObject(parent, name);
  if (!item) *ok = false;
}

/* append appends `item` to `array`; a failure deletes `item`. Returns it. */
static inline cJSON *append(cJSON *array, cJSON *item, bool *ok) {
  if (!item || !cJSON_AddItemToArray(array, item)) {
    cJSON_Delete(item);
    *ok = false;
    return NULL;
  }
  return item;
}

static inline int finish_json(cJSON *json, bool ok, ms_admin_response *out) {
  if (!ok) {
    cJSON_Delete(json);
    return -ENOMEM;
  }
  return ms_admin_response_take_json(200, json, out);
}

static inline int respond_text(int status, const char *content_type, const char *text,
                               ms_admin_response *out) {
  memset(out, 0, sizeof(*out));
  out->body = strdup(text);
  if (!out->body) return -ENOMEM;
  out->status = status;
  out->content_type = content_type;
  out->body_len = strlen(text);
  return 0;
}

static inline long long load(const atomic_llong *counter) {
  return atomic_load_explicit(counter, memory_order_relaxed);
}

#endif
