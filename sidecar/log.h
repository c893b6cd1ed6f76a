/* log.h: one line per event on stderr, "2026-11-23T10:00:00.123Z info what: details".
 * Safe from any thread: each line goes out in a single write(2). Never pass
 * key material to it. */
#ifndef MS_LOG_H
#define MS_LOG_H

#include <stddef.h>

typedef enum ms_log_level {
  MS_LOG_DEBUG = 0,
  MS_LOG_INFO,
  MS_LOG_WARN,
  MS_LOG_ERROR,
} ms_log_level;

/* ms_log_set_level drops lines below `level` (default MS_LOG_INFO). */
void ms_log_set_level(ms_log_level level);

/* ms_log writes one line (truncated at 1 KiB). */
/* ms_log_timestamp writes the time now as "2026-11-23T17:04:50.123Z" (UTC,
 * milliseconds) and returns its length; `len` of 32 is plenty. */
size_t ms_log_timestamp(char *buf, size_t len);

void ms_log(ms_log_level level, const char *format, ...) __attribute__((format(printf, 2, 3)));

#endif
