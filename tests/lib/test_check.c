#include "tests/lib/test_check.h"

#include <string.h>

void check_str(const char *file, int line, const char *what, const char *actual,
               const char *expected) {
  if (actual == NULL && expected == NULL) return;
  if (actual != NULL && expected != NULL && strcmp(actual, expected) == 0) return;
  fprintf(stderr, "%s:%d: %s is\n  \"%s\"\nexpected\n  \"%s\"\n", file, line, what,
          actual ? actual : "(null)", expected ? expected : "(null)");
  exit(1);
}

void check_int(const char *file, int line, const char *what, long long actual, long long expected) {
  if (actual == expected) return;
  fprintf(stderr, "%s:%d: %s is %lld, expected %lld\n", file, line, what, actual, expected);
  exit(1);
}

uint8_t *test_read_file(const char *dir, const char *name, size_t *out_len) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *file = fopen(path, "rb");
  if (file == NULL) {
    perror(path);
    exit(1);
  }
  CHECK(fseek(file, 0, SEEK_END) == 0);
  long size = ftell(file);
  CHECK(size >= 0);
  rewind(file);
  uint8_t *data = malloc(size > 0 ? (size_t)size : 1);
  CHECK(data != NULL);
  CHECK(fread(data, 1, (size_t)size, file) == (size_t)size);
  fclose(file);
  *out_len = (size_t)size;
  return data;
}
