/* file.h: reading a whole file and replacing one atomically, for the
 * certificate tools, the sidecar's xDS backup and the control plane. */
#ifndef MS_FILE_H
#define MS_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* The largest file ms_file_read takes. No certificate, key, CA bundle or
 * configuration comes near it; a bigger file is a mistake (a device, a log
 * file) rather than material. */
#define MS_FILE_MAX (16 * 1024 * 1024)

/* ms_file_read reads a whole regular file of at most MS_FILE_MAX bytes. On success
 * *out_data (NUL-terminated, caller frees) and *out_len are set and 0 is
 * returned; else -1 with a message naming the file in `err`. A failed read
 * wipes what it had read. */
int ms_file_read(const char *path, char **out_data, size_t *out_len, char *err, size_t err_len);

/* ms_file_write_atomic writes `len` bytes to `path` with `mode` through a
 * temporary file in the same folder (fsync, then rename), so that a reader
 * sees the old file or the new one, never half of one. Returns 0, or -1 with
 * a message in `err`. */
int ms_file_write_atomic(const char *path, const void *bytes, size_t len, mode_t mode, char *err,
                         size_t err_len);

#endif
