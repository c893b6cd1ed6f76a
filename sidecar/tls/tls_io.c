#include "sidecar/tls/tls_io.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ms_tls_io_init(ms_tls_io *io, int fd, ms_tls_io_scratch *scratch) {
  memset(io, 0, sizeof(*io));
  io->fd = fd;
  io->scratch = scratch;
}

void ms_tls_io_cleanup(ms_tls_io *io) {
  if (io->in_on_heap) free(io->in);
  if (io->out_on_heap) free(io->out);
  io->in = io->out = NULL;
  io->in_on_heap = io->out_on_heap = false;
  io->in_len = io->in_offset = io->out_len = io->out_capacity = 0;
}

/* keep_first copies what fits of the bytes just read into io->first. */
static void keep_first(ms_tls_io *io, size_t n) {
  size_t room = sizeof(io->first) - io->first_len;
  if (n > room) n = room;
  memcpy(io->first + io->first_len, io->scratch->in, n);
  io->first_len += (uint8_t)n;
}

static int fill(ms_tls_io *io) {
  if (io->in_on_heap) {
    free(io->in);
    io->in_on_heap = false;
  }
  io->in = NULL;
  io->in_offset = io->in_len = 0;
  for (;;) {
    ssize_t n = read(io->fd, io->scratch->in, sizeof(io->scratch->in));
    if (n > 0) {
      io->in = io->scratch->in;
      io->in_len = (size_t)n;
      if (io->first_len < sizeof(io->first)) keep_first(io, (size_t)n);
      /* A short read emptied the socket: another would only say EAGAIN,
       * unless the upstream hung up, whose FIN (or error) is still to be
       * read and will not be announced again. */
      if ((size_t)n < sizeof(io->scratch->in) && !io->hup) io->drained = true;
      return 1;
    }
    if (n == 0) {
      io->eof = true;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      io->drained = true;
      return -1;
    }
    io->error = errno;
    return -2;
  }
}

static int bio_read(BIO *bio, char *buf, int len) {
  ms_tls_io *io = BIO_get_data(bio);
  BIO_clear_retry_flags(bio);
  if (!ms_tls_io_buffered_in(io)) {
    if (io->eof) return 0;
    if (io->error) return -1;
    if (io->drained) {
      BIO_set_retry_read(bio);
      return -1;
    }
    int rc = fill(io);
    if (rc == 0) return 0;
    if (rc == -1) BIO_set_retry_read(bio);
    if (rc < 0) return -1;
  }
  size_t n = io->in_len - io->in_offset;
  if (n > (size_t)len) n = (size_t)len;
  memcpy(buf, io->in + io->in_offset, n);
  io->in_offset += n;
  return (int)n;
}

/* Everything BoringSSL writes is taken: the connection decides when to
 * write it out and stops producing while the socket is full. */
static int bio_write(BIO *bio, const char *data, int len) {
  ms_tls_io *io = BIO_get_data(bio);
  BIO_clear_retry_flags(bio);
  size_t n = (size_t)len;
  if (!io->out_on_heap && io->out_len + n <= sizeof(io->scratch->out)) {
    io->out = io->scratch->out;
    memcpy(io->out + io->out_len, data, n);
    io->out_len += n;
    return len;
  }
  if (!io->out_on_heap || io->out_len + n > io->out_capacity) {
    size_t capacity = io->out_capacity ? io->out_capacity : 16 * 1024;
    while (capacity < io->out_len + n)
      capacity *= 2;
    char *grown = io->out_on_heap ? realloc(io->out, capacity) : malloc(capacity);
    if (grown == NULL) return -1;
    if (!io->out_on_heap && io->out_len) memcpy(grown, io->out, io->out_len);
    io->out = grown;
    io->out_capacity = capacity;
    io->out_on_heap = true;
  }
  memcpy(io->out + io->out_len, data, n);
  io->out_len += n;
  return len;
}

static long bio_ctrl(BIO *bio, int cmd, long larg, void *parg) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

static void make_method(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "ms_tls_io");
  if (m == NULL) return;
  BIO_meth_set_read(m, bio_read);
  BIO_meth_set_write(m, bio_write);
  BIO_meth_set_ctrl(m, bio_ctrl);
  method = m;
}

BIO *ms_tls_io_bio_new(ms_tls_io *io) {
  pthread_once(&method_once, make_method);
  if (method == NULL) return NULL;
  BIO *bio = BIO_new(method);
  if (bio == NULL) return NULL;
  BIO_set_data(bio, io);
  BIO_set_init(bio, 1);
  return bio;
}

int ms_tls_io_flush(ms_tls_io *io) {
  size_t written = 0;
  while (written < io->out_len) {
    ssize_t n = write(io->fd, io->out + written, io->out_len - written);
    if (n > 0) {
      written += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    io->error = n < 0 ? errno : EPIPE;
    return -1;
  }
  if (written == io->out_len) {
    if (io->out_on_heap) free(io->out);
    io->out = NULL;
    io->out_len = io->out_capacity = 0;
    io->out_on_heap = false;
    return 1;
  }
  memmove(io->out, io->out + written, io->out_len - written);
  io->out_len -= written;
  return 0;
}

int ms_tls_io_park(ms_tls_io *io) {
  if (!io->in_on_heap && ms_tls_io_buffered_in(io)) {
    size_t n = io->in_len - io->in_offset;
    char *copy = malloc(n);
    if (copy == NULL) return -1;
    memcpy(copy, io->in + io->in_offset, n);
    io->in = copy;
    io->in_offset = 0;
    io->in_len = n;
    io->in_on_heap = true;
  }
  if (!io->out_on_heap && io->out_len) {
    char *copy = malloc(io->out_len);
    if (copy == NULL) return -1;
    memcpy(copy, io->out, io->out_len);
    io->out = copy;
    io->out_capacity = io->out_len;
    io->out_on_heap = true;
  }
  return 0;
}
