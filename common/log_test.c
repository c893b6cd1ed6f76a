/* log_test.c: ms_log_escape (log.h): a peer's string with a newline and an
 * ANSI escape stays one printable line; quotes and backslashes are escaped;
 * the length cap and the buffer cut with "...". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static int failures;

static void check_escape(const char *in, size_t max, size_t out_len, const char *want) {
  char out[256];
  memset(out, 'Z', sizeof(out));
  const char *got = ms_log_escape(in, max, out, out_len);
  if (got != out || strcmp(out, want) != 0 || strlen(out) >= out_len) {
    fprintf(stderr, "ms_log_escape(max %zu, out_len %zu): got \"%s\", want \"%s\"\n", max, out_len,
            out, want);
    failures++;
  }
}

int main(void) {
  /* A node id that would start a forged line, colored. */
  check_escape("n1\n2026-01-01T00:00:00.000Z info forged\x1b[31m", 200, 256,
               "n1\\x0a2026-01-01T00:00:00.000Z info forged\\x1b[31m");
  check_escape("say \"hi\" \\ bye", 200, 256, "say \\\"hi\\\" \\\\ bye");
  check_escape("caf\xc3\xa9\x7f", 200, 256, "caf\\xc3\\xa9\\x7f");
  check_escape(NULL, 200, 256, "");
  check_escape("", 200, 256, "");
  /* The length cap: 5 bytes of 8, then "...". */
  check_escape("abcdefgh", 5, 256, "abcde...");
  check_escape("abcde", 5, 256, "abcde");
  /* The buffer: 12 bytes hold "abcdefgh..." and no more. */
  check_escape("abcdefghijklmnop", 200, 12, "abcdefgh...");
  check_escape("abcdefghijk", 200, 12, "abcdefghijk");
  check_escape("\n\n\n\n", 200, 12, "\\x0a\\x0a...");
  /* Every byte, escaped, is printable ASCII without a newline. */
  char all[256];
  for (int i = 1; i < 256; i++)
    all[i - 1] = (char)i;
  all[255] = '\0';
  char out[MS_LOG_ESCAPED_LEN * 2];
  ms_log_escape(all, 255, out, sizeof(out));
  for (const char *c = out; *c != '\0'; c++) {
    if (*c < 0x20 || *c >= 0x7f) {
      fprintf(stderr, "byte 0x%02x left unescaped\n", (unsigned char)*c);
      failures++;
    }
  }
  /* One line a second at most, counting what it stands for. */
  ms_log_limit limit = {0};
  uint64_t lines = 0, counted = 0;
  for (uint64_t ms = 1000; ms < 4000; ms += 10) {
    uint64_t n = ms_log_limit_tick(&limit, ms, 1000);
    lines += n > 0;
    counted += n;
  }
  if (lines != 3 || counted != 201 || limit.count != 99) {
    fprintf(stderr, "ms_log_limit_tick: %llu lines for %llu events, %llu pending\n",
            (unsigned long long)lines, (unsigned long long)counted,
            (unsigned long long)limit.count);
    failures++;
  }
  if (failures == 0) printf("log_test: ok\n");
  return failures == 0 ? 0 : 1;
}
