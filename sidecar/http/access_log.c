#include "sidecar/http/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

typedef struct log_file {
  char *path;
  int fd; /* -1: could not be opened (reported once) */
  struct log_file *next;
} log_file;

struct ms_access_logs {
  log_file *files;
};

ms_access_logs *ms_access_logs_new(void) {
  return calloc(1, sizeof(ms_access_logs));
}

void ms_access_logs_free(ms_access_logs *logs) {
  if (logs == NULL) return;
  while (logs->files) {
    log_file *file = logs->files;
    logs->files = file->next;
    if (file->fd > STDERR_FILENO) close(file->fd);
    free(file->path);
    free(file);
  }
  free(logs);
}

static log_file *open_file(ms_access_logs *logs, const char *path) {
  for (log_file *file = logs->files; file; file = file->next)
    if (strcmp(file->path, path) == 0) return file;
  log_file *file = calloc(1, sizeof(*file));
  if (file == NULL || (file->path = strdup(path)) == NULL) {
    free(file);
    return NULL;
  }
  if (strcmp(path, "-") == 0) {
    file->fd = STDOUT_FILENO;
  } else {
    file->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (file->fd < 0)
      ms_log(MS_LOG_ERROR, "access log %s: cannot open: %s; not logging to it", path,
             strerror(errno));
  }
  file->next = logs->files;
  logs->files = file;
  return file;
}

void ms_access_logs_write(ms_access_logs *logs, const char *path, const char *line, size_t len) {
  log_file *file = open_file(logs, path);
  if (file == NULL || file->fd < 0) return;
  ssize_t n;
  do
    n = write(file->fd, line, len);
  while (n < 0 && errno == EINTR);
}

/* ---- lines ------------------------------------------------------------------ */

#define ROOM (sizeof(((ms_access_line *)0)->buf) - 3) /* keep room for "}\n" */

static void put(ms_access_line *line, const char *text, size_t len) {
  if (line->len + len > ROOM) len = line->len < ROOM ? ROOM - line->len : 0;
  memcpy(line->buf + line->len, text, len);
  line->len += len;
}

static void key(ms_access_line *line, const char *name) {
  if (!line->first) put(line, ",", 1);
  line->first = false;
  put(line, "\"", 1);
  put(line, name, strlen(name));
  put(line, "\":", 2);
}

void ms_access_line_begin(ms_access_line *line) {
  line->len = 0;
  line->first = true;
  put(line, "{", 1);
}

void ms_access_line_string(ms_access_line *line, const char *name, const char *value, size_t len) {
  key(line, name);
  if (value == NULL) {
    put(line, "null", 4);
    return;
  }
  /* The quotes and a whole escape go in together or not at all. */
  put(line, "\"", 1);
  for (size_t i = 0; i < len && line->len + 8 < ROOM; i++) {
    unsigned char c = (unsigned char)value[i];
    char escaped[8];
    if (c == '"' || c == '\\') {
      escaped[0] = '\\';
      escaped[1] = (char)c;
      put(line, escaped, 2);
    } else if (c < 0x20 || c == 0x7f) {
      put(line, escaped, (size_t)snprintf(escaped, sizeof(escaped), "\\u%04x", c));
    } else {
      put(line, (const char *)&c, 1);
    }
  }
  put(line, "\"", 1);
}

void ms_access_line_number(ms_access_line *line, const char *name, double value) {
  char text[32];
  key(line, name);
  put(line, text, (size_t)snprintf(text, sizeof(text), "%.15g", value));
}

void ms_access_line_bool(ms_access_line *line, const char *name, bool value) {
  key(line, name);
  put(line, value ? "true" : "false", value ? 4 : 5);
}

void ms_access_line_end(ms_access_line *line) {
  line->buf[line->len++] = '}';
  line->buf[line->len++] = '\n';
}
