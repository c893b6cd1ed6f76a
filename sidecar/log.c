#include "sidecar/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = MS_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void ms_log_set_level(ms_log_level level) {
  atomic_store(&min_level, level);
}

size_t ms_log_timestamp(char *buf, size_t len) {
  struct timeval now;
  gettimeofday(&now, NULL);
  struct tm utc;
  gmtime_r(&now.tv_sec, &utc);
  size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &utc);
  int more = snprintf(buf + n, len - n, ".%03dZ", (int)(now.tv_usec / 1000));
  return more > 0 && (size_t)more < len - n ? n + (size_t)more : n;
}

void ms_log(ms_log_level level, const char *format, ...) {
  if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed)) return;
  char line[1024];
  size_t len = ms_log_timestamp(line, sizeof(line));
  len += (size_t)snprintf(line + len, sizeof(line) - len, " %s ", level_names[level]);
  va_list args;
  va_start(args, format);
  int written = vsnprintf(line + len, sizeof(line) - len - 1, format, args);
  va_end(args);
  if (written < 0) return;
  len += (size_t)written;
  if (len > sizeof(line) - 2) len = sizeof(line) - 2;
  line[len++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, line, len);
  (void)ignored;
}
