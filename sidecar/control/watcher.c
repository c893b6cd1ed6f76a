/* Certificate files: watch the folders that hold them (a Kubernetes Secret
 * or ConfigMap volume swaps its `..data` symlink inside the folder, and
 * editors and cert-manager replace files by rename), wait for the burst of
 * events to settle, then reload. The files are the clusters' and those the
 * source and the identity agent read themselves (their `files` hooks: the
 * control plane's and the CA's TLS files, the identity's trust bundle);
 * ms_server_reload rebuilds the clusters' contexts, then calls their
 * `files_changed`. Only events naming a watched file or a `..` entry
 * (Kubernetes' swap) count: other files in the folder, such as a log, do
 * not. Every reload compares contents, so a spurious event costs only a few
 * file reads. */
#include <libgen.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sidecar/control/server_internal.h"

#define MS_RELOAD_SETTLE_MS 200

static void on_settled(uv_timer_t *timer) {
  ms_server *server = timer->data;
  ms_log(MS_LOG_DEBUG, "certificate files changed; reloading");
  ms_server_reload(server);
}

static bool concerns_us(const ms_watch *watch, const char *filename) {
  if (filename == NULL || strncmp(filename, "..", 2) == 0) return true;
  for (size_t i = 0; i < watch->name_count; i++)
    if (strcmp(watch->names[i], filename) == 0) return true;
  return false;
}

static void on_change(uv_fs_event_t *event, const char *filename, int events, int status) {
  ms_watch *watch = event->data;
  if (status < 0 || !concerns_us(watch, filename)) return;
  uv_timer_start(&watch->server->reload_timer, on_settled, MS_RELOAD_SETTLE_MS, 0);
}

static ms_watch *find_watch(ms_server *server, const char *directory) {
  for (ms_watch *w = server->watches; w; w = w->next)
    if (strcmp(w->directory, directory) == 0) return w;
  return NULL;
}

static void add_name(ms_watch *watch, const char *name) {
  for (size_t i = 0; i < watch->name_count; i++)
    if (strcmp(watch->names[i], name) == 0) return;
  char **names = realloc(watch->names, (watch->name_count + 1) * sizeof(char *));
  if (names == NULL) return;
  watch->names = names;
  if ((names[watch->name_count] = strdup(name)) != NULL) watch->name_count++;
}

static void on_watch_closed(uv_handle_t *handle) {
  ms_watch *watch = handle->data;
  free(watch->directory);
  for (size_t i = 0; i < watch->name_count; i++)
    free(watch->names[i]);
  free(watch->names);
  free(watch);
}

static void add(ms_server *server, const char *path) {
  if (path == NULL) return;
  char *for_dir = strdup(path), *for_base = strdup(path);
  if (for_dir == NULL || for_base == NULL) goto done;
  const char *directory = dirname(for_dir);
  ms_watch *watch = find_watch(server, directory);
  if (watch == NULL) {
    watch = calloc(1, sizeof(*watch));
    if (watch == NULL || (watch->directory = strdup(directory)) == NULL) {
      free(watch);
      goto done;
    }
    watch->server = server;
    uv_fs_event_init(server->loop, &watch->event);
    watch->event.data = watch;
    int rc = uv_fs_event_start(&watch->event, on_change, directory, 0);
    if (rc != 0)
      ms_log(MS_LOG_WARN, "cannot watch %s: %s; reload with SIGHUP", directory, uv_strerror(rc));
    watch->next = server->watches;
    server->watches = watch;
  }
  add_name(watch, basename(for_base));
done:
  free(for_dir);
  free(for_base);
}

static void unwatch_all(ms_server *server) {
  while (server->watches) {
    ms_watch *watch = server->watches;
    server->watches = watch->next;
    uv_close((uv_handle_t *)&watch->event, on_watch_closed);
  }
}

void ms_watcher_init(ms_server *server) {
  uv_timer_init(server->loop, &server->reload_timer);
  server->reload_timer.data = server;
  ms_watcher_follow(server);
}

static void watch_path(const char *path, void *arg) {
  add(arg, path);
}

void ms_watcher_follow(ms_server *server) {
  unwatch_all(server);
  if (!server->config->watch_certificates) return;
  if (server->source.files) server->source.files(server->source.arg, watch_path, server);
  if (server->identity.files) server->identity.files(server->identity.arg, watch_path, server);
  for (size_t i = 0; i < server->config->cluster_count; i++) {
    const ms_tls_settings *s = &server->config->clusters[i].tls.settings;
    add(server, s->certificate);
    add(server, s->private_key);
    add(server, s->trusted_ca);
    add(server, s->crl);
    add(server, s->password_file);
  }
}

void ms_watcher_stop(ms_server *server) {
  unwatch_all(server);
  uv_close((uv_handle_t *)&server->reload_timer, NULL);
}
