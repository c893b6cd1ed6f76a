#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
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

uint64_t ms_log_limit_tick(ms_log_limit *limit, uint64_t now_ms, uint64_t interval_ms) {
  limit->count++;
  if (now_ms < limit->next_ms) return 0;
  uint64_t count = limit->count;
  limit->count = 0;
  limit->next_ms = now_ms + interval_ms;
  return count;
}

/* escape_byte writes the escaped form of `c` into `piece` (4 bytes) and
 * returns its length. */
static size_t escape_byte(unsigned char c, char *piece) {
  static const char hex[] = "0123456789abcdef";
  if (c == '"' || c == '\\') {
    piece[0] = '\\';
    piece[1] = (char)c;
    return 2;
  }
  if (c >= 0x20 && c < 0x7f) {
    piece[0] = (char)c;
    return 1;
  }
  piece[0] = '\\';
  piece[1] = 'x';
  piece[2] = hex[c >> 4];
  piece[3] = hex[c & 0xf];
  return 4;
}

const char *ms_log_escape(const char *in, size_t max, char *out, size_t out_len) {
  const unsigned char *c = (const unsigned char *)(in != NULL ? in : "");
  /* Does all of it fit? The count stops as soon as it does not. */
  size_t need = 0, n = 0;
  char piece[4];
  while (c[n] != '\0' && n < max && need < out_len)
    need += escape_byte(c[n++], piece);
  bool whole = c[n] == '\0' && need < out_len;
  size_t used = 0;
  for (n = 0; c[n] != '\0'; n++) {
    size_t piece_len = escape_byte(c[n], piece);
    if (!whole && (n == max || used + piece_len + 4 > out_len)) break;
    memcpy(out + used, piece, piece_len);
    used += piece_len;
  }
  if (!whole) {
    memcpy(out + used, "...", 3);
    used += 3;
  }
  out[used] = '\0';
  return out;
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
