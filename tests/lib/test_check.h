/* test_check.h: what the unit tests in C share to check and to read their
 * fixtures. Test-only (//tests/lib:test_check); every failure prints where it
 * happened and ends the test process with status 1. */
#ifndef MS_TEST_CHECK_H
#define MS_TEST_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#define CHECK_STR(actual, expected) check_str(__FILE__, __LINE__, #actual, (actual), (expected))
#define CHECK_INT(actual, expected) check_int(__FILE__, __LINE__, #actual, (actual), (expected))

/* check_str: `actual` equals `expected` (both NULL counts as equal); else
 * prints `what` with both, as from file:line, and ends the process. */
void check_str(const char *file, int line, const char *what, const char *actual,
               const char *expected);

/* check_int: the same for integers. */
void check_int(const char *file, int line, const char *what, long long actual, long long expected);

/* test_read_file returns the contents of DIR/NAME, malloc'd (the caller
 * frees it), its length in *out_len; a file that cannot be read ends the
 * process. */
uint8_t *test_read_file(const char *dir, const char *name, size_t *out_len);

#endif
