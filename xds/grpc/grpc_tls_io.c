/* grpc_tls_io.c: one TLS connection carrying an HTTP/2 session, on a
 * non-blocking socket watched by uv_poll (like sidecar/l4/relay.c).
 *
 * States: IDLE -> CONNECTING (client) -> HANDSHAKING -> OPEN -> CLOSED.
 * In OPEN, readable bytes go SSL_read -> nghttp2_session_mem_recv; pending
 * frames go nghttp2_session_mem_send -> a gather buffer -> SSL_write. When
 * the socket is full the gather buffer waits for UV_WRITABLE and nothing more
 * is pulled from nghttp2 (which then holds the frames, and flow control
 * holds the peers). Writes requested by the API are deferred to a
 * uv_prepare_t so that many sends coalesce into few TLS records and nghttp2
 * callbacks never nest. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/net.h"
#include "xds/grpc/grpc_internal.h"

#define READ_CHUNK 16384
#define READS_PER_EVENT 16
#define GATHER_LIMIT 65536

static void on_poll(uv_poll_t *poll, int status, int events);
static void io_flush(ms_grpc_io *io);

/* ---- helpers -------------------------------------------------------------- */

static void set_events(ms_grpc_io *io, int wanted) {
  if (!io->poll_open || uv_is_closing((uv_handle_t *)&io->poll) || wanted == io->events) return;
  io->events = wanted;
  if (wanted == 0)
    uv_poll_stop(&io->poll);
  else
    uv_poll_start(&io->poll, wanted, on_poll);
}

static void fail_format(ms_grpc_io *io, const char *format, ...) {
  char reason[800];
  va_list args;
  va_start(args, format);
  vsnprintf(reason, sizeof(reason), format, args);
  va_end(args);
  ms_grpc_io_fail(io, reason);
}

int ms_grpc_io_on_nghttp2_error(nghttp2_session *session, int lib_error_code, const char *msg,
                                size_t len, void *user_data) {
  ms_grpc_io *io = user_data; /* the first member of the session's owner */
  if (len >= sizeof(io->nghttp2_error)) len = sizeof(io->nghttp2_error) - 1;
  memcpy(io->nghttp2_error, msg, len);
  io->nghttp2_error[len] = '\0';
  return 0;
}

int ms_grpc_h2_settings(nghttp2_session *session, bool server, uint32_t max_concurrent_streams) {
  nghttp2_settings_entry entries[2];
  size_t count = 0;
  entries[count++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20};
  if (server)
    entries[count++] =
        (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_concurrent_streams};
  else
    entries[count++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  int rc = nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, entries, count);
  if (rc != 0) return rc;
  return nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, 16 << 20);
}

/* ---- closing -------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *handle) {
  ms_grpc_io *io = handle->data;
  if (--io->open_handles > 0) return;
  SSL_free(io->ssl);
  io->ssl = NULL;
  nghttp2_session_del(io->session);
  io->session = NULL;
  free(io->out);
  io->out = NULL;
  free(io->addresses);
  io->addresses = NULL;
  if (io->fd >= 0) close(io->fd);
  io->fd = -1;
  io->callbacks->on_closed(io);
}

void ms_grpc_io_close(ms_grpc_io *io) {
  if (io->state == MS_GRPC_IO_CLOSED) return;
  io->state = MS_GRPC_IO_CLOSED;
  uv_close((uv_handle_t *)&io->timer, on_handle_closed);
  uv_close((uv_handle_t *)&io->prepare, on_handle_closed);
  /* A poll already closing (between two connect attempts) finishes in
   * on_poll_closed_for_retry. */
  if (io->poll_open && !uv_is_closing((uv_handle_t *)&io->poll))
    uv_close((uv_handle_t *)&io->poll, on_handle_closed);
}

void ms_grpc_io_fail(ms_grpc_io *io, const char *reason) {
  if (io->state == MS_GRPC_IO_CLOSED) return;
  ms_grpc_io_close(io);
  io->callbacks->on_error(io, reason);
}

/* ---- setup ---------------------------------------------------------------- */

static void on_prepare(uv_prepare_t *prepare) {
  ms_grpc_io *io = prepare->data;
  uv_prepare_stop(prepare);
  io->flush_scheduled = false;
  if (io->state == MS_GRPC_IO_OPEN && !io->write_blocked) io_flush(io);
}

void ms_grpc_io_init(ms_grpc_io *io, uv_loop_t *loop, SSL *ssl, nghttp2_session *session,
                     const ms_grpc_io_callbacks *callbacks) {
  io->loop = loop;
  io->callbacks = callbacks;
  io->state = MS_GRPC_IO_IDLE;
  io->fd = -1;
  io->ssl = ssl;
  io->session = session;
  uv_timer_init(loop, &io->timer);
  io->timer.data = io;
  uv_prepare_init(loop, &io->prepare);
  io->prepare.data = io;
  io->open_handles = 2;
  /* Partial writes let one SSL_write carry what the socket takes; the
   * gather buffer may move between retries. */
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

void ms_grpc_io_schedule_flush(ms_grpc_io *io) {
  if (io->state == MS_GRPC_IO_CLOSED || io->flush_scheduled) return;
  io->flush_scheduled = true;
  uv_prepare_start(&io->prepare, on_prepare);
}

static void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Watches `fd` with the io's poll handle. Returns 0 or a negative errno. */
static int watch(ms_grpc_io *io, int fd) {
  int rc = uv_poll_init(io->loop, &io->poll, fd);
  if (rc != 0) return rc;
  io->fd = fd;
  io->poll.data = io;
  io->poll_open = true;
  io->open_handles++;
  io->events = 0;
  return 0;
}

/* ---- connecting (client) -------------------------------------------------- */

static void connect_next(ms_grpc_io *io);
static void start_handshake(ms_grpc_io *io);

static void on_poll_closed_for_retry(uv_handle_t *handle) {
  ms_grpc_io *io = handle->data;
  io->poll_open = false;
  if (io->state == MS_GRPC_IO_CLOSED) {
    on_handle_closed(handle);
    return;
  }
  io->open_handles--;
  close(io->fd);
  io->fd = -1;
  connect_next(io);
}

static void connect_next(ms_grpc_io *io) {
  while (io->address_next < io->address_count) {
    const struct sockaddr *address = (const struct sockaddr *)&io->addresses[io->address_next++];
    socklen_t length =
        address->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    ms_net_format(address, io->peer_address, sizeof(io->peer_address));
    int fd = socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      io->connect_error = -errno;
      continue;
    }
    set_nodelay(fd);
    if (connect(fd, address, length) != 0 && errno != EINPROGRESS) {
      io->connect_error = -errno;
      close(fd);
      continue;
    }
    int rc = watch(io, fd);
    if (rc != 0) {
      close(fd);
      fail_format(io, "connecting to %s failed: %s", io->peer_address, uv_strerror(rc));
      return;
    }
    io->state = MS_GRPC_IO_CONNECTING;
    set_events(io, UV_WRITABLE);
    return;
  }
  fail_format(io, "connecting to %s failed: %s", io->peer_address,
              uv_strerror(io->connect_error ? io->connect_error : UV_EADDRNOTAVAIL));
}

void ms_grpc_io_connect(ms_grpc_io *io, const struct sockaddr_storage *addresses, size_t count) {
  io->addresses = malloc(count * sizeof(*addresses));
  if (io->addresses == NULL) {
    ms_grpc_io_fail(io, "out of memory connecting");
    return;
  }
  memcpy(io->addresses, addresses, count * sizeof(*addresses));
  io->address_count = count;
  io->address_next = 0;
  connect_next(io);
}

/* The socket's pending error as a negative errno, or 0. libuv reports
 * POLLERR as UV_EBADF, so the socket is asked what really happened. Reading
 * SO_ERROR clears it: ask once. */
static int socket_error(int fd) {
  int error = 0;
  socklen_t length = sizeof(error);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
  return -error;
}

/* poll_error: the socket's pending error, else the poll's status. */
static int poll_error(int fd, int status) {
  int error = socket_error(fd);
  return error != 0 ? error : status;
}

static void connect_done(ms_grpc_io *io, int status) {
  int error = socket_error(io->fd);
  if (error == 0) error = status;
  if (error == 0) {
    start_handshake(io);
    return;
  }
  io->connect_error = error;
  set_events(io, 0);
  uv_close((uv_handle_t *)&io->poll, on_poll_closed_for_retry);
}

/* ---- accepting (server) --------------------------------------------------- */

void ms_grpc_io_accept(ms_grpc_io *io, int fd) {
  struct sockaddr_storage address;
  socklen_t length = sizeof(address);
  if (getpeername(fd, (struct sockaddr *)&address, &length) == 0)
    ms_net_format((struct sockaddr *)&address, io->peer_address, sizeof(io->peer_address));
  set_nodelay(fd);
  int rc = watch(io, fd);
  if (rc != 0) {
    close(fd);
    fail_format(io, "accepting %s failed: %s", io->peer_address, uv_strerror(rc));
    return;
  }
  start_handshake(io);
}

/* ---- TLS handshake -------------------------------------------------------- */

static void do_handshake(ms_grpc_io *io) {
  int rc = SSL_do_handshake(io->ssl);
  if (rc == 1) {
    const uint8_t *protocol = NULL;
    unsigned protocol_len = 0;
    SSL_get0_alpn_selected(io->ssl, &protocol, &protocol_len);
    if (protocol_len != 2 || memcmp(protocol, "h2", 2) != 0) {
      fail_format(io, "TLS handshake with %s: the peer did not agree to HTTP/2 (ALPN \"h2\")",
                  io->peer_address);
      return;
    }
    io->state = MS_GRPC_IO_OPEN;
    set_events(io, UV_READABLE);
    io->callbacks->on_open(io);
    if (io->state == MS_GRPC_IO_OPEN) io_flush(io);
    return;
  }
  int error = SSL_get_error(io->ssl, rc);
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
    set_events(io, error == SSL_ERROR_WANT_READ ? UV_READABLE : UV_WRITABLE);
    return;
  }
  char description[600];
  ms_tls_failure failure =
      ms_tls_describe_failure(io->ssl, error, io->sni_sent, description, sizeof(description));
  fail_format(io, "TLS handshake with %s failed (%s): %s", io->peer_address,
              ms_tls_failure_name(failure), description);
}

static void start_handshake(ms_grpc_io *io) {
  if (!SSL_set_fd(io->ssl, io->fd)) {
    ERR_clear_error();
    ms_grpc_io_fail(io, "out of memory starting TLS");
    return;
  }
  io->state = MS_GRPC_IO_HANDSHAKING;
  do_handshake(io);
}

/* ---- HTTP/2 over TLS ------------------------------------------------------ */

static void fail_h2(ms_grpc_io *io, const char *what, ssize_t rv) {
  if (io->nghttp2_error[0] != '\0')
    fail_format(io, "HTTP/2 error %s %s: %s (%s)", what, io->peer_address,
                nghttp2_strerror((int)rv), io->nghttp2_error);
  else
    fail_format(io, "HTTP/2 error %s %s: %s", what, io->peer_address, nghttp2_strerror((int)rv));
}

static void read_failed(ms_grpc_io *io, int ssl_error, int rc) {
  if (ssl_error == SSL_ERROR_ZERO_RETURN) {
    fail_format(io, "%s closed the connection", io->peer_address);
  } else if (ssl_error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
    if (rc == 0 || errno == 0)
      fail_format(io, "%s closed the connection", io->peer_address);
    else
      fail_format(io, "reading from %s failed: %s", io->peer_address, strerror(errno));
  } else if (!io->got_data) {
    /* TLS 1.3: the server checks our certificate after our side of the
     * handshake is done, so its refusal arrives here. */
    char description[600];
    ms_tls_failure failure =
        ms_tls_describe_failure(io->ssl, ssl_error, io->sni_sent, description, sizeof(description));
    fail_format(io, "TLS handshake with %s failed (%s) after our side was done: %s",
                io->peer_address, ms_tls_failure_name(failure), description);
  } else {
    unsigned long code = ERR_peek_error();
    const char *reason = code ? ERR_reason_error_string(code) : NULL;
    fail_format(io, "TLS error reading from %s: %s", io->peer_address,
                reason ? reason : "unknown error");
  }
  ERR_clear_error();
}

static void io_read(ms_grpc_io *io) {
  uint8_t buf[READ_CHUNK];
  for (int i = 0; i < READS_PER_EVENT || SSL_pending(io->ssl) > 0; i++) {
    errno = 0;
    int n = SSL_read(io->ssl, buf, sizeof(buf));
    if (n > 0) {
      io->got_data = true;
      ssize_t rv = nghttp2_session_mem_recv(io->session, buf, (size_t)n);
      if (io->state != MS_GRPC_IO_OPEN) return;
      if (rv < 0) {
        fail_h2(io, "from", rv);
        return;
      }
      continue;
    }
    int error = SSL_get_error(io->ssl, n);
    if (error == SSL_ERROR_WANT_READ) break;
    if (error == SSL_ERROR_WANT_WRITE) {
      io->write_blocked = true;
      set_events(io, UV_READABLE | UV_WRITABLE);
      return;
    }
    read_failed(io, error, n);
    return;
  }
  /* Send what reading produced: SETTINGS and PING acknowledgements, window
   * updates, answers. */
  if (!io->write_blocked) io_flush(io);
}

/* Appends to the gather buffer. Returns false when memory ran out. */
static bool gather(ms_grpc_io *io, const uint8_t *data, size_t len) {
  if (io->out_len + len > io->out_capacity) {
    size_t capacity = io->out_capacity ? io->out_capacity : 16384;
    while (capacity < io->out_len + len)
      capacity *= 2;
    uint8_t *grown = realloc(io->out, capacity);
    if (grown == NULL) return false;
    io->out = grown;
    io->out_capacity = capacity;
  }
  memcpy(io->out + io->out_len, data, len);
  io->out_len += len;
  return true;
}

static void session_done(ms_grpc_io *io) {
  if (io->nghttp2_error[0] != '\0')
    fail_format(io, "HTTP/2 session with %s ended: %s", io->peer_address, io->nghttp2_error);
  else
    fail_format(io, "HTTP/2 session with %s ended (GOAWAY)", io->peer_address);
}

static void io_flush(ms_grpc_io *io) {
  for (;;) {
    while (io->out_offset < io->out_len) {
      errno = 0;
      int n = SSL_write(io->ssl, io->out + io->out_offset, (int)(io->out_len - io->out_offset));
      if (n > 0) {
        io->out_offset += (size_t)n;
        continue;
      }
      int error = SSL_get_error(io->ssl, n);
      if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
        io->write_blocked = true;
        set_events(io, UV_READABLE | UV_WRITABLE);
        return;
      }
      unsigned long code = ERR_peek_error();
      const char *reason = code ? ERR_reason_error_string(code) : strerror(errno);
      ERR_clear_error();
      fail_format(io, "writing to %s failed: %s", io->peer_address,
                  reason ? reason : "unknown error");
      return;
    }
    io->out_len = io->out_offset = 0;
    while (io->out_len < GATHER_LIMIT) {
      const uint8_t *data = NULL;
      ssize_t n = nghttp2_session_mem_send(io->session, &data);
      if (io->state != MS_GRPC_IO_OPEN) return; /* a callback closed us */
      if (n < 0) {
        fail_h2(io, "sending to", n);
        return;
      }
      if (n == 0) break;
      if (!gather(io, data, (size_t)n)) {
        ms_grpc_io_fail(io, "out of memory writing");
        return;
      }
    }
    if (io->out_len == 0) break;
  }
  /* Idle connections hold no write buffer. */
  free(io->out);
  io->out = NULL;
  io->out_capacity = 0;
  io->write_blocked = false;
  set_events(io, UV_READABLE);
  if (!nghttp2_session_want_read(io->session) && !nghttp2_session_want_write(io->session))
    session_done(io);
}

static void on_poll(uv_poll_t *poll, int status, int events) {
  ms_grpc_io *io = poll->data;
  switch (io->state) {
    case MS_GRPC_IO_CONNECTING:
      connect_done(io, status);
      return;
    case MS_GRPC_IO_HANDSHAKING:
      /* On an error too: an alert may wait in the socket before it. */
      do_handshake(io);
      if (status < 0 && io->state == MS_GRPC_IO_HANDSHAKING)
        fail_format(io, "TLS handshake with %s failed: %s", io->peer_address,
                    uv_strerror(poll_error(io->fd, status)));
      return;
    case MS_GRPC_IO_OPEN:
      if (status < 0) {
        /* Read what came before the error (a TLS alert, say), then fail. */
        io_read(io);
        if (io->state == MS_GRPC_IO_OPEN)
          fail_format(io, "connection to %s failed: %s", io->peer_address,
                      uv_strerror(poll_error(io->fd, status)));
        return;
      }
      if (events & UV_WRITABLE) {
        io->write_blocked = false;
        io_flush(io);
        if (io->state != MS_GRPC_IO_OPEN) return;
      }
      if (events & (UV_READABLE | UV_DISCONNECT)) io_read(io);
      return;
    case MS_GRPC_IO_IDLE:
    case MS_GRPC_IO_CLOSED:
      return;
  }
}
