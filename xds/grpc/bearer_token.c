#include "xds/grpc/bearer_token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/mem.h>

#include "certs/certs.h"

#define PREFIX "Bearer "

static int read_all(int fd, char *buffer, size_t capacity, size_t *out_len) {
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buffer + len, capacity - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    len += (size_t)n;
    if (len == capacity) break;
  }
  *out_len = len;
  return 0;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int ms_bearer_token_read(const char *path, char **out_header, const char **out_token, char *err,
                         size_t err_len) {
  size_t prefix = strlen(PREFIX);
  /* One byte more than allowed, to tell a file that is too large. */
  char *header = ms_secure_alloc(prefix + MS_BEARER_TOKEN_MAX_BYTES + 2);
  if (header == NULL) {
    snprintf(err, err_len, "out of memory reading the token file %s", path);
    return -1;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  size_t len = 0;
  int rc = fd < 0 ? -errno : read_all(fd, header + prefix, MS_BEARER_TOKEN_MAX_BYTES + 1, &len);
  if (fd >= 0) close(fd);
  const char *problem = NULL;
  char *token = header + prefix;
  while (len > 0 && is_space(token[len - 1]))
    len--;
  size_t start = 0;
  while (start < len && is_space(token[start]))
    start++;
  if (rc != 0)
    problem = strerror(-rc);
  else if (len > MS_BEARER_TOKEN_MAX_BYTES)
    problem = "larger than 16 KiB; is it a token?";
  else if (len == start)
    problem = "the file is empty";
  for (size_t i = start; problem == NULL && i < len; i++)
    if ((unsigned char)token[i] < 0x21 || token[i] == 0x7f)
      problem = "a space or control character inside the token; is it a token?";
  if (problem) {
    snprintf(err, err_len, "token_file %s: %s", path, problem);
    ms_secure_free(header);
    return -1;
  }
  memmove(token, token + start, len - start);
  token[len - start] = '\0';
  memcpy(header, PREFIX, prefix);
  *out_header = header;
  if (out_token) *out_token = token;
  return 0;
}
