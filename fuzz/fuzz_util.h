/* fuzz_util.h: what the fuzz targets share: reading the fuzzer's bytes as
 * choices (a mode byte, split points) and a check that aborts, so that a
 * broken property is a finding like a sanitizer report. Header-only: each
 * target is one .c file plus this. */
#ifndef MS_FUZZ_UTIL_H
#define MS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                      \
    }                                                                               \
  } while (0)

/* The bytes not consumed yet. */
typedef struct fuzz_input {
  const uint8_t *data;
  size_t len;
} fuzz_input;

/* fuzz_take_byte consumes one byte (0 once the input is used up). */
static inline uint8_t fuzz_take_byte(fuzz_input *in) {
  if (in->len == 0) return 0;
  in->len--;
  return *in->data++;
}

/* Split points, as reads split a stream: a small generator seeded from the
 * input, so that the fuzzer chooses them and a replay sees the same ones. */
typedef struct fuzz_splitter {
  uint32_t state;
} fuzz_splitter;

static inline fuzz_splitter fuzz_splitter_from(fuzz_input *in) {
  uint32_t seed = fuzz_take_byte(in);
  seed = seed << 8 | fuzz_take_byte(in);
  return (fuzz_splitter){seed * 2654435761u + 1};
}

/* fuzz_next_piece returns how many of `remaining` (> 0) bytes to pass next:
 * mostly 1..16 bytes, sometimes all that is left. */
static inline size_t fuzz_next_piece(fuzz_splitter *splitter, size_t remaining) {
  uint32_t x = splitter->state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  splitter->state = x;
  size_t piece = (x & 7) == 0 ? remaining : 1 + (x >> 8) % 16;
  return piece < remaining ? piece : remaining;
}

/* fuzz_strndup copies `len` bytes into a new NUL-terminated string (a NUL
 * inside stays: what a C caller of a string API would see). */
static inline char *fuzz_strndup(const uint8_t *data, size_t len) {
  char *text = malloc(len + 1);
  if (text == NULL) abort();
  for (size_t i = 0; i < len; i++)
    text[i] = (char)data[i];
  text[len] = '\0';
  return text;
}

#endif
