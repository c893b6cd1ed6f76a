/* inject_apply.c: RFC 6902 JSON Patch ("add", "remove", "replace", "test")
 * over RFC 6901 JSON Pointers, applied to a copy (ms_inject_apply,
 * inject.h). The command applies the patches ms_inject_patch makes with it;
 * the webhook's caller (the API server) applies them with its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "inject/inject.h"

/* next_token copies the pointer's token that starts at *cursor (after its
 * '/') into a new string, unescaping ~1 and ~0, and moves *cursor past it.
 * NULL for a bad escape or no memory. */
static char *next_token(const char **cursor) {
  const char *start = *cursor;
  size_t len = strcspn(start, "/");
  char *token = malloc(len + 1);
  if (token == NULL) return NULL;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    if (start[i] != '~') {
      token[n++] = start[i];
    } else if (i + 1 < len && (start[i + 1] == '0' || start[i + 1] == '1')) {
      token[n++] = start[i + 1] == '0' ? '~' : '/';
      i++;
    } else {
      free(token);
      return NULL;
    }
  }
  token[n] = '\0';
  *cursor = start + len;
  return token;
}

/* array_index reads an array index token: digits, no leading zero; -1
 * otherwise. */
static long array_index(const char *token) {
  if (token[0] == '\0' || (token[0] == '0' && token[1] != '\0')) return -1;
  long value = 0;
  for (const char *c = token; *c; c++) {
    if (*c < '0' || *c > '9' || value > 100000000) return -1;
    value = value * 10 + (*c - '0');
  }
  return value;
}

/* child_of returns the member or element `token` of `node`, or NULL. */
static cJSON *child_of(cJSON *node, const char *token) {
  if (cJSON_IsObject(node)) return cJSON_GetObjectItemCaseSensitive(node, token);
  if (cJSON_IsArray(node)) {
    long index = array_index(token);
    return index < 0 ? NULL : cJSON_GetArrayItem(node, (int)index);
  }
  return NULL;
}

/* resolve finds the parent of `path`'s last token in `root` and that token
 * (the caller frees it). -1 with a sentence when the path is malformed or a
 * parent is missing. A path of "" (the whole document) gives a NULL parent
 * and token. */
static int resolve(cJSON *root, const char *path, cJSON **out_parent, char **out_token, char *err,
                   size_t err_len) {
  *out_parent = NULL;
  *out_token = NULL;
  if (path[0] == '\0') return 0;
  if (path[0] != '/') {
    ms_err_set(err, err_len, "path \"%.128s\" does not start with '/'", path);
    return -1;
  }
  cJSON *node = root;
  const char *cursor = path + 1;
  for (;;) {
    char *token = next_token(&cursor);
    if (token == NULL) {
      ms_err_set(err, err_len, "path \"%.128s\" has a '~' that is not ~0 or ~1", path);
      return -1;
    }
    if (*cursor == '\0') {
      *out_parent = node;
      *out_token = token;
      return 0;
    }
    cursor++; /* the '/' */
    node = child_of(node, token);
    free(token);
    if (node == NULL) {
      ms_err_set(err, err_len, "path \"%.128s\": a parent does not exist", path);
      return -1;
    }
  }
}

/* apply_one applies operation `op` to *document (which it may replace). */
static int apply_one(cJSON **document, const cJSON *op, char *err, size_t err_len) {
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(op, "op");
  const cJSON *path = cJSON_GetObjectItemCaseSensitive(op, "path");
  const cJSON *value = cJSON_GetObjectItemCaseSensitive(op, "value");
  if (!cJSON_IsString(name) || !cJSON_IsString(path)) {
    ms_err_set(err, err_len, "an operation needs \"op\" and \"path\" strings");
    return -1;
  }
  const char *kind = name->valuestring;
  bool adds = strcmp(kind, "add") == 0, replaces = strcmp(kind, "replace") == 0,
       removes = strcmp(kind, "remove") == 0, tests = strcmp(kind, "test") == 0;
  if (!adds && !replaces && !removes && !tests) {
    ms_err_set(err, err_len, "op \"%.32s\" is not one this applies (add, remove, replace, test)",
               kind);
    return -1;
  }
  if (!removes && value == NULL) {
    ms_err_set(err, err_len, "op \"%s\" needs a \"value\"", kind);
    return -1;
  }
  cJSON *parent;
  char *token;
  if (resolve(*document, path->valuestring, &parent, &token, err, err_len) != 0) return -1;
  int rc = -1;
  cJSON *target = parent == NULL ? *document : child_of(parent, token);
  if (tests) {
    if (target == NULL)
      ms_err_set(err, err_len, "test: \"%.128s\" does not exist", path->valuestring);
    else if (!cJSON_Compare(target, value, true))
      ms_err_set(err, err_len, "test: \"%.128s\" is not the value given", path->valuestring);
    else
      rc = 0;
    free(token);
    return rc;
  }
  if (target == NULL &&
      (removes || replaces || (adds && !cJSON_IsObject(parent) && !cJSON_IsArray(parent)))) {
    ms_err_set(err, err_len, "%s: \"%.128s\" does not exist", kind, path->valuestring);
    free(token);
    return -1;
  }
  cJSON *copy = removes ? NULL : cJSON_Duplicate(value, true);
  if (!removes && copy == NULL) {
    ms_err_set(err, err_len, "out of memory");
    free(token);
    return -1;
  }
  if (copy != NULL && copy->string != NULL) { /* the copy of "value" carries that name */
    if (!(copy->type & cJSON_StringIsConst)) cJSON_free(copy->string);
    copy->string = NULL;
    copy->type &= ~cJSON_StringIsConst;
  }
  if (parent == NULL) { /* the whole document */
    if (removes) {
      ms_err_set(err, err_len, "remove: the whole document cannot be removed");
      free(token);
      return -1;
    }
    cJSON_Delete(*document);
    *document = copy;
    free(token);
    return 0;
  }
  if (removes) {
    cJSON_Delete(cJSON_DetachItemViaPointer(parent, target));
    rc = 0;
  } else if (cJSON_IsObject(parent) && target != NULL) { /* replace, or add over a member */
    rc = cJSON_ReplaceItemInObjectCaseSensitive(parent, token, copy) ? 0 : -1;
  } else if (replaces) { /* an array's element */
    rc = cJSON_ReplaceItemViaPointer(parent, target, copy) ? 0 : -1;
  } else if (cJSON_IsObject(parent)) { /* add a new member */
    rc = cJSON_AddItemToObject(parent, token, copy) ? 0 : -1;
  } else { /* add into an array: "-" appends, an index inserts before */
    int size = cJSON_GetArraySize(parent);
    long index = strcmp(token, "-") == 0 ? size : array_index(token);
    if (index < 0 || index > size) {
      ms_err_set(err, err_len, "add: index \"%.32s\" is outside the array of %d", token, size);
      cJSON_Delete(copy);
      free(token);
      return -1;
    }
    rc = (index == size ? cJSON_AddItemToArray(parent, copy)
                        : cJSON_InsertItemInArray(parent, (int)index, copy))
             ? 0
             : -1;
  }
  if (rc != 0) {
    ms_err_set(err, err_len, "out of memory");
    cJSON_Delete(copy);
  }
  free(token);
  return rc;
}

int ms_inject_apply(const cJSON *document, const cJSON *patch, cJSON **out_document, char *err,
                    size_t err_len) {
  *out_document = NULL;
  if (!cJSON_IsArray(patch)) {
    ms_err_set(err, err_len, "a JSON Patch is an array of operations");
    return -1;
  }
  cJSON *copy = cJSON_Duplicate(document, true);
  if (copy == NULL) {
    ms_err_set(err, err_len, "out of memory");
    return -1;
  }
  int index = 0;
  const cJSON *op;
  cJSON_ArrayForEach(op, patch) {
    char reason[400] = "";
    if (apply_one(&copy, op, reason, sizeof(reason)) != 0) {
      ms_err_set(err, err_len, "JSON Patch operation %d: %s", index, reason);
      cJSON_Delete(copy);
      return -1;
    }
    index++;
  }
  *out_document = copy;
  return 0;
}
