/* access_log.h: a worker's access log files, one JSON line per request.
 *
 * Each HTTP listener with "access_log" names a file (or "-", standard
 * output). A worker opens each file once, O_APPEND, on first use, and
 * writes every line with one write(2): lines from several workers never
 * interleave (they are far below a page and the file is in append mode).
 * A file that cannot be opened is reported once and then skipped.
 * ms_access_line builds a line with JSON escaping. Worker thread only. */
#ifndef MS_ACCESS_LOG_H
#define MS_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ms_access_logs ms_access_logs;

ms_access_logs *ms_access_logs_new(void);
void ms_access_logs_free(ms_access_logs *logs); /* accepts NULL */

/* ms_access_logs_write appends `line` (ending in a newline) to `path`. */
void ms_access_logs_write(ms_access_logs *logs, const char *path, const char *line, size_t len);

/* A line under construction, in a fixed buffer; what does not fit is cut
 * (the line stays valid JSON). */
typedef struct ms_access_line {
  char buf[4096];
  size_t len;
  bool first;
} ms_access_line;

void ms_access_line_begin(ms_access_line *line);
void ms_access_line_string(ms_access_line *line, const char *key, const char *value, size_t len);
void ms_access_line_number(ms_access_line *line, const char *key, double value);
void ms_access_line_bool(ms_access_line *line, const char *key, bool value);
/* ms_access_line_end closes the object and adds the newline. */
void ms_access_line_end(ms_access_line *line);

#endif
