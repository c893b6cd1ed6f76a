/* server_files.c: the configuration directory of xds-server. Every *.json
 * file in it holds Envoy resources (docs/xds-server.md): one resource with
 * "@type", a {"resources": [...]} object, or an array of resources. The
 * directory is watched; after a quiet period (debounce) every file is read
 * again, those whose bytes changed are parsed, and a file that does not parse
 * keeps its last good resources while its error is logged and shown in
 * /status. The served sets are then rebuilt, and each type whose set changed
 * is pushed to the streams that subscribe to it. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <openssl/sha.h>

#include "certs/certs.h"
#include "common/file.h"
#include "common/log.h"
#include "common/time.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "xds-server/server_internal.h"
#include "xds/proto/json_pb.h"

#define MAX_FILE_BYTES (16 << 20)

/* One resource of a file, tagged with its type. */
typedef struct file_resource {
  xds_type type;
  xds_resource resource;
} file_resource;

struct xds_file {
  char *name; /* within the directory */
  uint8_t content_hash[32];
  bool parsed_once; /* has had good content at least once */
  file_resource *resources;
  size_t count;
  char *error;      /* the last parse error, NULL when the file is good */
  char *duplicates; /* resources also defined by an earlier file, NULL if none */
  int64_t loaded_at_ms;
  bool seen; /* found in this scan */
  xds_file *next;
};

static void free_resources(file_resource *resources, size_t count) {
  for (size_t i = 0; i < count; i++)
    xds_resource_cleanup(&resources[i].resource);
  free(resources);
}

static void file_free(xds_file *file) {
  free_resources(file->resources, file->count);
  free(file->error);
  free(file->duplicates);
  free(file->name);
  free(file);
}

/* ---- parsing one file ------------------------------------------------------------ */

/* resource_name returns the name a resource is served under. */
static const char *resource_name(xds_type type, const ProtobufCMessage *message) {
  switch (type) {
    case XDS_TYPE_CDS:
      return ((const Envoy__Config__Cluster__V3__Cluster *)message)->name;
    case XDS_TYPE_EDS:
      return ((const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *)message)->cluster_name;
    case XDS_TYPE_LDS:
      return ((const Envoy__Config__Listener__V3__Listener *)message)->name;
    default:
      return "";
  }
}

/* parse_resource converts one resource object; `path` names it. */
static int parse_resource(const cJSON *json, const char *path, file_resource *out, char *err,
                          size_t err_len) {
  ProtobufCMessage *message = NULL;
  if (ms_json_pb_parse_any(json, path, NULL, &message, err, err_len) != 0) return -1;
  const char *full_name = message->descriptor->name;
  char url[256];
  snprintf(url, sizeof(url), "type.googleapis.com/%s",
           full_name[0] == '.' ? full_name + 1 : full_name);
  xds_type type;
  int rc = -1;
  const char *prefix = path[0] != '\0' ? path : "the resource";
  if (xds_type_from_url(url, &type) != 0 || type == XDS_TYPE_SDS) {
    snprintf(err, err_len,
             "%s: a %s cannot be served from a file (Cluster, ClusterLoadAssignment or Listener; "
             "secrets come from the CA)",
             prefix, full_name);
  } else if (resource_name(type, message)[0] == '\0') {
    snprintf(err, err_len, "%s: the %s has no %s", prefix, full_name,
             type == XDS_TYPE_EDS ? "cluster_name" : "name");
  } else if (xds_resource_init(&out->resource, resource_name(type, message), message) != 0) {
    snprintf(err, err_len, "out of memory");
  } else {
    out->type = type;
    rc = 0;
  }
  protobuf_c_message_free_unpacked(message, NULL);
  return rc;
}

/* parse_file turns a file's text into resources. Returns 0, or -1 with the
 * first problem in `err`. */
static int parse_file(const char *text, file_resource **out, size_t *out_count, char *err,
                      size_t err_len) {
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(text, &end, true);
  if (root == NULL) {
    /* Line and column of where parsing stopped. */
    int line = 1, column = 1;
    const char *stop = end != NULL ? end : cJSON_GetErrorPtr();
    for (const char *c = text; stop != NULL && c < stop && *c != '\0'; c++) {
      if (*c == '\n') {
        line++;
        column = 1;
      } else {
        column++;
      }
    }
    snprintf(err, err_len, "not valid JSON (line %d, column %d)", line, column);
    return -1;
  }
  const cJSON *list = NULL;
  bool single = false;
  if (cJSON_IsArray(root)) {
    list = root;
  } else if (cJSON_IsObject(root) && cJSON_GetObjectItemCaseSensitive(root, "@type") != NULL) {
    single = true;
  } else if (cJSON_IsObject(root)) {
    const cJSON *member;
    cJSON_ArrayForEach(member, root) {
      if (strcmp(member->string, "resources") != 0) {
        snprintf(err, err_len,
                 "%s: unknown key (a file holds one resource with \"@type\", or "
                 "{\"resources\": [...]})",
                 member->string);
        cJSON_Delete(root);
        return -1;
      }
    }
    list = cJSON_GetObjectItemCaseSensitive(root, "resources");
    if (!cJSON_IsArray(list)) {
      snprintf(err, err_len, "resources: expected an array of resources");
      cJSON_Delete(root);
      return -1;
    }
  } else {
    snprintf(err, err_len, "expected an object or an array of resources");
    cJSON_Delete(root);
    return -1;
  }
  size_t total = single ? 1 : (size_t)cJSON_GetArraySize(list);
  file_resource *resources = calloc(total + 1, sizeof(*resources));
  if (resources == NULL) {
    snprintf(err, err_len, "out of memory");
    cJSON_Delete(root);
    return -1;
  }
  size_t count = 0;
  int rc = 0;
  if (single) {
    rc = parse_resource(root, "", &resources[0], err, err_len);
    count = rc == 0;
  } else {
    const cJSON *item;
    cJSON_ArrayForEach(item, list) {
      char path[32];
      snprintf(path, sizeof(path), "resources[%zu]", count);
      if ((rc = parse_resource(item, path, &resources[count], err, err_len)) != 0) break;
      count++;
    }
  }
  cJSON_Delete(root);
  /* Two resources of one type and name in one file. */
  for (size_t i = 0; rc == 0 && i < count; i++) {
    for (size_t j = i + 1; j < count; j++) {
      if (resources[i].type == resources[j].type &&
          strcmp(resources[i].resource.name, resources[j].resource.name) == 0) {
        snprintf(err, err_len, "resources[%zu]: %s \"%s\" is defined twice", j,
                 xds_type_name(resources[j].type), resources[j].resource.name);
        rc = -1;
        break;
      }
    }
  }
  if (rc != 0) {
    free_resources(resources, count);
    return -1;
  }
  *out = resources;
  *out_count = count;
  return 0;
}

/* ---- scanning the directory ----------------------------------------------------- */

static bool is_config_file(const char *name) {
  size_t len = strlen(name);
  return name[0] != '.' && len > 5 && strcmp(name + len - 5, ".json") == 0;
}

/* load_file reads one file; returns true when its resources changed. */
static bool load_file(xds_files *files, xds_file *file) {
  char path[4096], err[1024];
  snprintf(path, sizeof(path), "%s/%s", files->dir, file->name);
  char *text = NULL;
  size_t len = 0;
  struct stat st;
  if (stat(path, &st) == 0 && st.st_size > MAX_FILE_BYTES) {
    snprintf(err, sizeof(err), "larger than %d bytes", MAX_FILE_BYTES);
  } else if (ms_file_read(path, &text, &len, err, sizeof(err)) == 0) {
    uint8_t hash[32];
    SHA256((const uint8_t *)text, len, hash);
    if (file->parsed_once || file->error != NULL) {
      if (memcmp(hash, file->content_hash, sizeof(hash)) == 0) {
        free(text);
        return false;
      }
    }
    memcpy(file->content_hash, hash, sizeof(hash));
    file_resource *resources = NULL;
    size_t count = 0;
    int rc = parse_file(text, &resources, &count, err, sizeof(err));
    free(text);
    if (rc == 0) {
      free_resources(file->resources, file->count);
      file->resources = resources;
      file->count = count;
      file->parsed_once = true;
      file->loaded_at_ms = xds_now_ms();
      if (file->error != NULL)
        ms_log(MS_LOG_INFO, "files: %s is valid again (%zu resource%s)", file->name, count,
               ms_plural(count));
      else
        ms_log(MS_LOG_INFO, "files: loaded %s (%zu resource%s)", file->name, count,
               ms_plural(count));
      free(file->error);
      file->error = NULL;
      return true;
    }
  }
  char *error = strdup(err);
  ms_log(MS_LOG_ERROR, "files: %s: %s; %s", file->name, err,
         file->parsed_once ? "keeping its last good version" : "nothing served from it");
  free(file->error);
  file->error = error;
  return false;
}

/* insert_file adds a file to the list in name order. */
static xds_file *insert_file(xds_files *files, const char *name) {
  xds_file *file = calloc(1, sizeof(*file));
  if (file == NULL || (file->name = strdup(name)) == NULL) {
    free(file);
    return NULL;
  }
  xds_file **link = &files->files;
  while (*link != NULL && strcmp((*link)->name, name) < 0)
    link = &(*link)->next;
  file->next = *link;
  *link = file;
  return file;
}

static int compare_resources(const void *a, const void *b) {
  return strcmp(((const xds_resource *)a)->name, ((const xds_resource *)b)->name);
}

/* rebuild_set makes the served set of `type` from the files (the first file
 * by name wins a duplicate). Returns true when the set changed. */
static bool rebuild_set(xds_files *files, xds_type type) {
  size_t total = 0;
  for (xds_file *f = files->files; f != NULL; f = f->next)
    for (size_t i = 0; i < f->count; i++)
      total += f->resources[i].type == type;
  xds_resource *items = calloc(total + 1, sizeof(*items));
  if (items == NULL) {
    ms_log(MS_LOG_ERROR, "files: out of memory rebuilding %s", xds_type_name(type));
    return false;
  }
  size_t count = 0;
  for (xds_file *f = files->files; f != NULL; f = f->next) {
    for (size_t i = 0; i < f->count; i++) {
      const xds_resource *r = &f->resources[i].resource;
      if (f->resources[i].type != type) continue;
      bool duplicate = false;
      for (size_t k = 0; k < count && !duplicate; k++)
        duplicate = strcmp(items[k].name, r->name) == 0;
      if (duplicate) {
        char note[512];
        snprintf(note, sizeof(note), "%s \"%s\" is also defined in an earlier file; ignored here",
                 xds_type_name(type), r->name);
        if (f->duplicates == NULL) {
          f->duplicates = strdup(note);
          ms_log(MS_LOG_WARN, "files: %s: %s", f->name, note);
        }
        continue;
      }
      /* Borrow: names and bytes stay owned by the file; copied below. */
      items[count] = *r;
      items[count].name = strdup(r->name);
      items[count].bytes = malloc(r->len > 0 ? r->len : 1);
      if (items[count].name == NULL || items[count].bytes == NULL) {
        free(items[count].name);
        free(items[count].bytes);
        continue;
      }
      memcpy(items[count].bytes, r->bytes, r->len);
      count++;
    }
  }
  qsort(items, count, sizeof(*items), compare_resources);
  xds_resource_set *set = &files->sets[type];
  for (size_t i = 0; i < set->count; i++)
    xds_resource_cleanup(&set->items[i]);
  free(set->items);
  set->items = items;
  set->count = count;
  return xds_resource_set_update_version(set);
}

void xds_files_reload(xds_files *files) {
  DIR *dir = opendir(files->dir);
  if (dir == NULL) {
    ms_log(MS_LOG_ERROR, "files: cannot read the directory %s: %s; serving what was loaded",
           files->dir, strerror(errno));
    return;
  }
  files->reloads++;
  for (xds_file *f = files->files; f != NULL; f = f->next)
    f->seen = false;
  bool changed = false;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (!is_config_file(entry->d_name)) continue;
    xds_file *file = files->files;
    while (file != NULL && strcmp(file->name, entry->d_name) != 0)
      file = file->next;
    if (file == NULL && (file = insert_file(files, entry->d_name)) == NULL) {
      ms_log(MS_LOG_ERROR, "files: out of memory");
      continue;
    }
    file->seen = true;
    changed |= load_file(files, file);
  }
  closedir(dir);
  for (xds_file **link = &files->files; *link != NULL;) {
    xds_file *file = *link;
    if (file->seen) {
      link = &file->next;
      continue;
    }
    ms_log(MS_LOG_INFO, "files: %s was removed (%zu resource%s no longer served)", file->name,
           file->count, ms_plural(file->count));
    changed |= file->count > 0;
    *link = file->next;
    file_free(file);
  }
  if (!changed) return;
  for (xds_file *f = files->files; f != NULL; f = f->next) {
    free(f->duplicates);
    f->duplicates = NULL;
  }
  for (int type = 0; type < XDS_TYPE_SDS; type++) {
    if (!rebuild_set(files, (xds_type)type)) continue;
    ms_log(MS_LOG_INFO, "files: %s now version %s (%zu resource%s)", xds_type_name((xds_type)type),
           files->sets[type].version, files->sets[type].count, ms_plural(files->sets[type].count));
    xds_server_push_type(files->server, (xds_type)type);
  }
}

static void on_dir_changed(void *arg) {
  xds_files_reload(arg);
}

int xds_files_init(xds_files *files, ms_xds_server *server, uv_loop_t *loop, const char *dir,
                   uint32_t debounce_ms, char *err, size_t err_len) {
  memset(files, 0, sizeof(*files));
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(err, err_len, "the configuration directory %s (--config-dir) %s", dir,
             stat(dir, &st) != 0 ? strerror(errno) : "is not a directory");
    return -1;
  }
  files->server = server;
  files->dir = strdup(dir);
  if (files->dir == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  for (int type = 0; type < XDS_TYPE_SDS; type++)
    rebuild_set(files, (xds_type)type);
  xds_files_reload(files);
  const char *dirs[1] = {dir};
  xds_watch_start(&files->watch, server, loop, dirs, 1, debounce_ms, "files", on_dir_changed,
                  files);
  return 0;
}

void xds_files_close(xds_files *files) {
  xds_watch_close(&files->watch);
}

void xds_files_cleanup(xds_files *files) {
  while (files->files != NULL) {
    xds_file *next = files->files->next;
    file_free(files->files);
    files->files = next;
  }
  for (int type = 0; type < XDS_TYPE_SDS; type++) {
    for (size_t i = 0; i < files->sets[type].count; i++)
      xds_resource_cleanup(&files->sets[type].items[i]);
    free(files->sets[type].items);
  }
  free(files->dir);
  memset(files, 0, sizeof(*files));
}

const char *xds_files_first_unloaded(const xds_files *files) {
  for (const xds_file *file = files->files; file != NULL; file = file->next)
    if (!file->parsed_once) return file->name;
  return NULL;
}

void xds_files_status(const xds_files *files, void *cjson_object) {
  cJSON *out = cjson_object;
  cJSON *resources = cJSON_AddObjectToObject(out, "resources");
  for (int type = 0; type < XDS_TYPE_SDS; type++) {
    const xds_resource_set *set = &files->sets[type];
    cJSON *t = cJSON_AddObjectToObject(resources, xds_type_name((xds_type)type));
    cJSON_AddStringToObject(t, "version", set->version);
    cJSON *names = cJSON_AddArrayToObject(t, "names");
    for (size_t i = 0; i < set->count; i++)
      cJSON_AddItemToArray(names, cJSON_CreateString(set->items[i].name));
  }
  cJSON_AddStringToObject(out, "config_dir", files->dir);
  cJSON *list = cJSON_AddArrayToObject(out, "files");
  cJSON *errors = cJSON_AddArrayToObject(out, "file_errors");
  for (const xds_file *f = files->files; f != NULL; f = f->next) {
    cJSON *item = cJSON_CreateObject();
    cJSON_AddStringToObject(item, "file", f->name);
    cJSON_AddStringToObject(item, "status", f->error != NULL ? "error" : "ok");
    cJSON_AddNumberToObject(item, "resources", (double)f->count);
    if (f->loaded_at_ms != 0) {
      char when[32];
      ms_time_rfc3339(f->loaded_at_ms / 1000, when, sizeof(when));
      cJSON_AddStringToObject(item, "loaded_at", when);
    }
    if (f->error != NULL) {
      cJSON_AddStringToObject(item, "error", f->error);
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "file", f->name);
      cJSON_AddStringToObject(e, "error", f->error);
      cJSON_AddBoolToObject(e, "serving_last_good_version", f->parsed_once);
      cJSON_AddItemToArray(errors, e);
    }
    if (f->duplicates != NULL) {
      cJSON_AddStringToObject(item, "warning", f->duplicates);
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "file", f->name);
      cJSON_AddStringToObject(e, "error", f->duplicates);
      cJSON_AddItemToArray(errors, e);
    }
    cJSON_AddItemToArray(list, item);
  }
}
