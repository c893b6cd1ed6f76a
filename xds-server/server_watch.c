/* server_watch.c: watching files for xds-server's parts (the CA, the
 * configuration directory, the token key set). It watches directories, not
 * files: a Kubernetes volume swaps its `..data` symlink inside the directory,
 * and editors and cert-manager replace files by rename, which a watch on the
 * file itself would lose. Any event restarts a quiet-period timer; when it
 * fires the owner reloads (comparing contents, so a spurious event costs a
 * few reads). */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "xds-server/server_internal.h"

static void on_settled(uv_timer_t *timer) {
  xds_watch *watch = timer->data;
  watch->on_change(watch->arg);
}

static void on_event(uv_fs_event_t *handle, const char *filename, int events, int status) {
  xds_watch *watch = handle->data;
  if (status < 0) {
    ms_log(MS_LOG_WARN, "%s: watching failed: %s", watch->what, uv_strerror(status));
    return;
  }
  uv_timer_start(&watch->debounce, on_settled, watch->debounce_ms, 0);
}

static void on_handle_closed(uv_handle_t *handle) {
  xds_watch *watch = handle->data;
  xds_server_handle_closed(watch->server);
}

char *xds_dir_of(const char *path) {
  char *copy = strdup(path);
  if (copy == NULL) return NULL;
  char *dir = strdup(dirname(copy));
  free(copy);
  return dir;
}

void xds_watch_start(xds_watch *watch, ms_xds_server *server, uv_loop_t *loop,
                     const char *const *dirs, int dir_count, uint32_t debounce_ms, const char *what,
                     void (*on_change)(void *arg), void *arg) {
  memset(watch, 0, sizeof(*watch));
  watch->server = server;
  watch->what = what;
  watch->debounce_ms = debounce_ms;
  watch->on_change = on_change;
  watch->arg = arg;
  uv_timer_init(loop, &watch->debounce);
  watch->debounce.data = watch;
  server->open_handles++;
  for (int i = 0; i < dir_count && watch->watcher_count < XDS_WATCH_MAX_DIRS; i++) {
    bool seen = false;
    for (int j = 0; j < i; j++)
      seen = seen || strcmp(dirs[i], dirs[j]) == 0;
    if (seen) continue;
    uv_fs_event_t *handle = &watch->watchers[watch->watcher_count++];
    uv_fs_event_init(loop, handle);
    handle->data = watch;
    server->open_handles++;
    int rc = uv_fs_event_start(handle, on_event, dirs[i], 0);
    if (rc != 0)
      ms_log(MS_LOG_WARN, "%s: cannot watch %s (%s): changes need a restart", what, dirs[i],
             uv_strerror(rc));
  }
  watch->started = true;
}

void xds_watch_close(xds_watch *watch) {
  if (!watch->started) return;
  watch->started = false;
  uv_close((uv_handle_t *)&watch->debounce, on_handle_closed);
  for (int i = 0; i < watch->watcher_count; i++)
    uv_close((uv_handle_t *)&watch->watchers[i], on_handle_closed);
}
