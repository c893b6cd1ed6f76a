/* tls_io.h: BoringSSL's transport for an upstream socket, built for few
 * system calls.
 *
 * With a plain socket BIO, BoringSSL reads every record with two read(2)
 * calls (header, then body) and writes every record with its own write(2).
 * This BIO instead reads ahead up to MS_TLS_IO_CHUNK bytes at a time and
 * collects everything BoringSSL writes during one operation, which the
 * connection then sends with one write(2) (ms_tls_io_flush).
 *
 * The bytes live in the worker's scratch buffers while an event is being
 * handled; whatever is left when the connection returns to the loop is moved
 * to the heap (ms_tls_io_park), so an idle connection holds no buffer. Runs
 * on the owning worker's thread only. */
#ifndef MS_TLS_IO_H
#define MS_TLS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/bio.h>

#define MS_TLS_IO_CHUNK (256 * 1024)

/* The worker's scratch space, shared by all its connections. */
typedef struct ms_tls_io_scratch {
  char in[MS_TLS_IO_CHUNK];
  char out[MS_TLS_IO_CHUNK + 16 * 1024]; /* one chunk of plaintext, sealed, and then some */
} ms_tls_io_scratch;

typedef struct ms_tls_io {
  int fd;
  ms_tls_io_scratch *scratch;
  char *in; /* read-ahead not yet consumed: scratch->in or heap */
  size_t in_offset;
  size_t in_len;
  bool in_on_heap;
  bool drained; /* the last read(2) emptied the socket: wait for an event */
  bool hup;     /* the upstream hung up: read on to the end, short reads or not */
  bool eof;     /* the upstream sent FIN */
  int error;    /* errno of a failed read or write, or 0 */
  char *out;    /* sealed bytes not yet written: scratch->out or heap */
  size_t out_len;
  size_t out_capacity;
  bool out_on_heap;
  uint8_t first[16]; /* the upstream's first bytes, for a diagnosis of a failed handshake */
  uint8_t first_len;
} ms_tls_io;

/* ms_tls_io_init prepares `io` for socket `fd`. */
void ms_tls_io_init(ms_tls_io *io, int fd, ms_tls_io_scratch *scratch);

/* ms_tls_io_cleanup frees whatever `io` parked on the heap. */
void ms_tls_io_cleanup(ms_tls_io *io);

/* ms_tls_io_bio_new returns a BIO over `io` (which must outlive it), or NULL
 * when memory ran out. Hand it to SSL_set_bio. */
BIO *ms_tls_io_bio_new(ms_tls_io *io);

/* ms_tls_io_readable: an event said the socket is readable (and, with
 * `hup`, that the upstream hung up); read(2) again. */
static inline void ms_tls_io_readable(ms_tls_io *io, bool hup) {
  io->drained = false;
  if (hup) io->hup = true;
}

/* ms_tls_io_flush writes the collected bytes. Returns 1 when all are out, 0
 * when the socket is full (the rest stays; wait for it to be writable), or
 * -1 on a socket error (io->error says which). */
int ms_tls_io_flush(ms_tls_io *io);

/* ms_tls_io_pending_out: bytes are waiting for the socket. */
static inline bool ms_tls_io_pending_out(const ms_tls_io *io) {
  return io->out_len != 0;
}

/* ms_tls_io_pending_bytes: how many. */
static inline size_t ms_tls_io_pending_bytes(const ms_tls_io *io) {
  return io->out_len;
}

/* ms_tls_io_buffered_in: read-ahead bytes BoringSSL has not consumed. */
static inline bool ms_tls_io_buffered_in(const ms_tls_io *io) {
  return io->in_offset < io->in_len;
}

/* ms_tls_io_park moves what is left in the worker's scratch to the heap.
 * Call it before returning to the loop. Returns 0, or -1 when memory ran
 * out. */
int ms_tls_io_park(ms_tls_io *io);

#endif
