/* time.c: times as text. */
#include "common/time.h"

#include <stdio.h>
#include <time.h>

void ms_time_rfc3339(int64_t unix_seconds, char *buf, size_t len) {
  time_t t = (time_t)unix_seconds;
  struct tm tm;
  if (len == 0) return;
  if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
    snprintf(buf, len, "%lld", (long long)unix_seconds);
  }
}
