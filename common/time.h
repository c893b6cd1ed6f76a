/* time.h: times as text. */
#ifndef MS_TIME_H
#define MS_TIME_H

#include <stddef.h>
#include <stdint.h>

/* ms_time_rfc3339 writes `unix_seconds` as "2026-11-23T10:00:00Z" into `buf`
 * (at least 21 bytes); a time gmtime cannot express is written as the plain
 * number. */
void ms_time_rfc3339(int64_t unix_seconds, char *buf, size_t len);

#endif
