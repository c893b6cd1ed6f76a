/* replay_main.c: a main for a fuzz target outside libFuzzer. Each argument is
 * a file or a folder (every regular file in it, in name order); each file's
 * bytes are passed once to LLVMFuzzerTestOneInput. Built with gcc as a
 * cc_test, under the sanitizers of --config=asan, it replays the target's
 * seed corpus (fuzz/corpus/TARGET) in every `bazel test`. Exits 1 when an
 * argument cannot be read or holds no input; a finding aborts (sanitizer,
 * or the target's own check). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* replay_file passes the file's bytes to the target, in a buffer of exactly
 * their size (so that ASan sees a read past the end). Returns 0 or -1. */
static int replay_file(const char *path) {
  FILE *file = fopen(path, "rb");
  if (file == NULL) {
    perror(path);
    return -1;
  }
  size_t capacity = 4096, len = 0;
  uint8_t *bytes = malloc(capacity);
  size_t n;
  while (bytes && (n = fread(bytes + len, 1, capacity - len, file)) > 0) {
    len += n;
    if (len == capacity) {
      capacity *= 2;
      uint8_t *grown = realloc(bytes, capacity);
      if (grown == NULL) free(bytes);
      bytes = grown;
    }
  }
  fclose(file);
  if (bytes == NULL) {
    fprintf(stderr, "%s: out of memory\n", path);
    return -1;
  }
  uint8_t *exact = malloc(len > 0 ? len : 1);
  if (exact == NULL) {
    free(bytes);
    return -1;
  }
  memcpy(exact, bytes, len);
  free(bytes);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

/* replay_path replays a file, or every regular file of a folder. Returns the
 * number of inputs replayed, or -1. */
static int replay_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    perror(path);
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) return replay_file(path) == 0 ? 1 : -1;
  struct dirent **entries;
  int count = scandir(path, &entries, NULL, by_name);
  if (count < 0) {
    perror(path);
    return -1;
  }
  int replayed = 0;
  for (int i = 0; i < count; i++) {
    char file[4096];
    snprintf(file, sizeof(file), "%s/%s", path, entries[i]->d_name);
    if (entries[i]->d_name[0] != '.' && stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
      if (replay_file(file) != 0) replayed = -1;
      if (replayed >= 0) replayed++;
    }
    free(entries[i]);
  }
  free(entries);
  return replayed;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE_OR_FOLDER...\n", argv[0]);
    return 2;
  }
  int total = 0;
  for (int i = 1; i < argc; i++) {
    int replayed = replay_path(argv[i]);
    if (replayed <= 0) {
      fprintf(stderr, "%s: %s\n", argv[i], replayed == 0 ? "no input" : "cannot be replayed");
      return 1;
    }
    total += replayed;
  }
  printf("%s: %d inputs replayed\n", argv[0], total);
  return 0;
}
