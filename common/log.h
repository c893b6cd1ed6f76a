/* log.h: one line per event on stderr, "2026-11-23T10:00:00.123Z info what: details".
 * Safe from any thread: each line goes out in a single write(2). Never pass
 * key material to it. */
#ifndef MS_LOG_H
#define MS_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum ms_log_level {
  MS_LOG_DEBUG = 0,
  MS_LOG_INFO,
  MS_LOG_WARN,
  MS_LOG_ERROR,
} ms_log_level;

/* ms_log_set_level drops lines below `level` (default MS_LOG_INFO). */
void ms_log_set_level(ms_log_level level);

/* ms_log_timestamp writes the time now as "2026-11-23T17:04:50.123Z" (UTC,
 * milliseconds) and returns its length; `len` of 32 is plenty. */
size_t ms_log_timestamp(char *buf, size_t len);

/* ms_log writes one line (truncated at 1 KiB). Strings that come from a peer
 * (a node's id, a control plane's grpc-message, a method path) go through
 * ms_log_escape first, so that one event stays one line that cannot be
 * forged. */
void ms_log(ms_log_level level, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* ms_plural returns "s" unless `count` is 1, for "%zu cluster%s" (so that a
 * line never says "1 clusters"). */
static inline const char *ms_plural(unsigned long long count) {
  return count == 1 ? "" : "s";
}

/* A limit on how often a repeated event is logged: at most one line per
 * interval, saying how many events it stands for. Zeroed is ready. */
typedef struct ms_log_limit {
  uint64_t next_ms; /* no line before this */
  uint64_t count;   /* events since the last line */
} ms_log_limit;

/* ms_log_limit_tick counts one event at `now_ms` (any monotonic clock, such
 * as uv_now). Returns 0 when no line should be written now, else how many
 * events the line stands for (this one and those not logged since the last
 * line); the next line is allowed `interval_ms` later. */
uint64_t ms_log_limit_tick(ms_log_limit *limit, uint64_t now_ms, uint64_t interval_ms);

/* The size of an ms_log_escape buffer that holds MS_LOG_ESCAPE_MAX input bytes
 * escaped (4 bytes each at worst), "..." and the NUL. */
#define MS_LOG_ESCAPE_MAX 128
#define MS_LOG_ESCAPED_LEN (MS_LOG_ESCAPE_MAX * 4 + 4)

/* ms_log_escape copies the NUL-terminated `in` (NULL: "") into `out`
 * (`out_len` bytes, at least 8) for a log line or a message: printable ASCII
 * as is, '"' and '\' preceded by '\', every other byte (control characters,
 * DEL, bytes of UTF-8 sequences) as \xNN. Only the first `max` bytes of `in`
 * are copied, and only what fits; either cut ends with "...". Returns `out`,
 * so that it can be an argument of ms_log. */
const char *ms_log_escape(const char *in, size_t max, char *out, size_t out_len);

#endif
