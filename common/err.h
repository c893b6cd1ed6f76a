/* err.h: the sentence a failing function leaves for its caller, in the
 * `char *err, size_t err_len` pair that ends the parameters of the layers
 * that return 0 / -1 (docs/architecture.md, "Errors"). */
#ifndef MS_ERR_H
#define MS_ERR_H

#include <stddef.h>

/* ms_err_set formats a message into `err` (`err_len` bytes, cut to fit and
 * always NUL-terminated); an `err` that is NULL or of no room is left as
 * it is. */
void ms_err_set(char *err, size_t err_len, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#endif
