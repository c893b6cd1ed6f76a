/* Certificate files: watch the folders that hold them (a Kubernetes Secret
 * volume swaps its `..data` symlink inside the folder, and editors and
 * cert-manager replace files by rename), wait for the burst of events to
 * settle, then reload. The reload compares contents, so a spurious event
 * costs only a few file reads. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/log.h"
#include "sidecar/server_internal.h"

#define MS_RELOAD_SETTLE_MS 200

static void on_settled(uv_timer_t *timer) {
  ms_server *server = timer->data;
  ms_log(MS_LOG_INFO, "certificate files changed; reloading");
  ms_server_reload(server);
}

static void on_change(uv_fs_event_t *event, const char *filename, int events, int status) {
  ms_watch *watch = event->data;
  if (status < 0) return;
  uv_timer_start(&watch->server->reload_timer, on_settled, MS_RELOAD_SETTLE_MS, 0);
}

static bool has_directory(ms_server *server, const char *directory) {
  for (size_t i = 0; i < server->watch_count; i++)
    if (strcmp(server->watches[i].directory, directory) == 0) return true;
  return false;
}

static void add(ms_server *server, const char *path, size_t capacity) {
  if (path == NULL || server->watch_count == capacity) return;
  char *copy = strdup(path);
  if (copy == NULL) return;
  char *directory = strdup(dirname(copy));
  free(copy);
  if (directory == NULL || has_directory(server, directory)) {
    free(directory);
    return;
  }
  ms_watch *watch = &server->watches[server->watch_count];
  watch->server = server;
  watch->directory = directory;
  uv_fs_event_init(server->loop, &watch->event);
  watch->event.data = watch;
  int rc = uv_fs_event_start(&watch->event, on_change, directory, 0);
  if (rc != 0)
    ms_log(MS_LOG_WARN, "cannot watch %s: %s; reload with SIGHUP", directory, uv_strerror(rc));
  server->watch_count++;
}

int ms_watcher_start(ms_server *server) {
  uv_timer_init(server->loop, &server->reload_timer);
  server->reload_timer.data = server;
  if (!server->config->watch_certificates) return 0;
  size_t capacity = server->config->cluster_count * 5;
  server->watches = calloc(capacity ? capacity : 1, sizeof(ms_watch));
  if (server->watches == NULL) return UV_ENOMEM;
  for (size_t i = 0; i < server->config->cluster_count; i++) {
    const ms_tls_settings *s = &server->config->clusters[i].tls.settings;
    add(server, s->certificate, capacity);
    add(server, s->private_key, capacity);
    add(server, s->trusted_ca, capacity);
    add(server, s->crl, capacity);
    add(server, s->password_file, capacity);
  }
  return 0;
}

static void on_watch_closed(uv_handle_t *handle) {
  ms_watch *watch = handle->data;
  free(watch->directory);
  watch->directory = NULL;
}

void ms_watcher_stop(ms_server *server) {
  for (size_t i = 0; i < server->watch_count; i++)
    uv_close((uv_handle_t *)&server->watches[i].event, on_watch_closed);
  uv_close((uv_handle_t *)&server->reload_timer, NULL);
}
