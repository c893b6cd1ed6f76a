/* file.c: reading a whole file and replacing one atomically. */
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ms_file_write_atomic(const char *path, const void *bytes, size_t len, mode_t mode, char *err,
                         size_t err_len) {
  const uint8_t *data = bytes;
  size_t path_len = strlen(path);
  char *temp = malloc(path_len + 16);
  if (temp == NULL) {
    snprintf(err, err_len, "cannot write %s: out of memory", path);
    return -1;
  }
  snprintf(temp, path_len + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(temp);
  if (fd < 0) {
    snprintf(err, err_len, "cannot create a file next to %s: %s", path, strerror(errno));
    free(temp);
    return -1;
  }
  size_t done = 0;
  int rc = fchmod(fd, mode);
  while (rc == 0 && done < len) {
    ssize_t n = write(fd, data + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      rc = -1;
    else
      done += (size_t)n;
  }
  if (rc == 0) rc = fsync(fd);
  if (close(fd) != 0) rc = -1;
  if (rc == 0) rc = rename(temp, path);
  if (rc != 0) {
    snprintf(err, err_len, "cannot write %s: %s", path, strerror(errno));
    unlink(temp);
  }
  free(temp);
  return rc == 0 ? 0 : -1;
}

int ms_file_read(const char *path, char **out_data, size_t *out_len, char *err, size_t err_len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MS_FILE_MAX) {
    snprintf(err, err_len, "cannot read %s: not a regular file of at most %d bytes", path,
             MS_FILE_MAX);
    close(fd);
    return -1;
  }
  size_t capacity = (size_t)st.st_size + 1, len = 0;
  char *data = malloc(capacity);
  if (data == NULL) {
    snprintf(err, err_len, "cannot read %s: out of memory", path);
    close(fd);
    return -1;
  }
  for (;;) {
    if (len + 1 == capacity) break; /* the file grew while we read: keep what fits */
    ssize_t n = read(fd, data + len, capacity - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
      explicit_bzero(data, len);
      free(data);
      close(fd);
      return -1;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  close(fd);
  data[len] = '\0';
  *out_data = data;
  *out_len = len;
  return 0;
}
