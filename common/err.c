/* err.c: err.h's message setter. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

void ms_err_set(char *err, size_t err_len, const char *format, ...) {
  if (err == NULL || err_len == 0) return;
  va_list args;
  va_start(args, format);
  vsnprintf(err, err_len, format, args);
  va_end(args);
}
