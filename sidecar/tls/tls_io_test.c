/* tls_io_test: the sidecar's TLS BIO (tls_io.h) between two real peers
 * (test_peers.h): a client as the sidecar dials, through ms_tls_io on one
 * end of a socketpair, and a BoringSSL server on the other.
 *
 * Each event of the client ends as a connection's event does: what is left
 * in the worker's scratch buffers is parked (ms_tls_io_park), then the
 * scratch is scribbled over, as another connection's event would reuse it.
 * So a byte that was not parked is a byte lost, and a record that does not
 * open. */
#include "sidecar/tls/tls_io.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "sidecar/tls/test_peers.h"
#include "tests/lib/test_check.h"

#define RECORD (16 * 1024)

static test_peers peers;
static ms_tls_io_scratch *scratch;

/* One connection: the client's SSL over `io` on fds[0], the server's on
 * fds[1]. */
typedef struct conn {
  int fds[2];
  ms_tls_io io;
  SSL *client, *server;
} conn;

static void conn_open(conn *c, int buffer) {
  test_socketpair(c->fds, buffer);
  ms_tls_io_init(&c->io, c->fds[0], scratch);
  c->client = test_client_new(peers.client, &c->io);
  c->server = test_server_new(&peers, c->fds[1]);
}

static void conn_close(conn *c) {
  SSL_free(c->client);
  SSL_free(c->server);
  ms_tls_io_cleanup(&c->io);
  close(c->fds[0]);
  if (c->fds[1] >= 0) close(c->fds[1]);
  ERR_clear_error();
}

/* end_event ends an event of the client: its leftovers to the heap, and
 * the scratch to another connection. */
static void end_event(conn *c) {
  CHECK(ms_tls_io_park(&c->io) == 0);
  memset(scratch->in, 0x5a, sizeof(scratch->in));
  memset(scratch->out, 0x5a, sizeof(scratch->out));
}

/* The stream's bytes: byte i of it is pattern_at(i). */
static uint8_t pattern_at(size_t i) {
  return (uint8_t)(i % 251);
}

static void pattern(uint8_t *bytes, size_t len, size_t offset) {
  for (size_t i = 0; i < len; i++)
    bytes[i] = pattern_at(offset + i);
}

static bool is_pattern(const uint8_t *bytes, size_t len, size_t offset) {
  for (size_t i = 0; i < len; i++)
    if (bytes[i] != pattern_at(offset + i)) return false;
  return true;
}

/* server_write writes the stream from `*sent` on until `total` or until
 * the socket is full. */
static void server_write(conn *c, size_t *sent, size_t total) {
  uint8_t chunk[RECORD];
  while (*sent < total) {
    size_t n = total - *sent < RECORD ? total - *sent : RECORD;
    pattern(chunk, n, *sent);
    int rc = SSL_write(c->server, chunk, (int)n);
    if (rc <= 0) {
      CHECK_INT(SSL_get_error(c->server, rc), SSL_ERROR_WANT_WRITE);
      return;
    }
    *sent += (size_t)rc;
  }
}

/* server_read reads what the server can and checks it continues the
 * stream at `*received`. */
static void server_read(conn *c, size_t *received) {
  uint8_t got[RECORD];
  for (;;) {
    int rc = SSL_read(c->server, got, sizeof(got));
    if (rc <= 0) {
      CHECK_INT(SSL_get_error(c->server, rc), SSL_ERROR_WANT_READ);
      return;
    }
    CHECK(is_pattern(got, (size_t)rc, *received));
    *received += (size_t)rc;
  }
}

/* A slow reader: the upstream sends 1 MiB, and each event of the client
 * opens one record only. The rest of what one read(2) brought (up to
 * MS_TLS_IO_CHUNK) waits on the heap between events, and every byte
 * arrives, in order. */
static void test_slow_reader_loses_nothing(void) {
  conn c;
  conn_open(&c, 0);
  test_handshake(c.client, &c.io, c.server);
  const size_t total = 1 << 20;
  size_t sent = 0, received = 0;
  int parked = 0;
  for (int event = 0; received < total && event < 10000; event++) {
    server_write(&c, &sent, total);
    ms_tls_io_readable(&c.io, false);
    uint8_t got[RECORD];
    int rc = SSL_read(c.client, got, sizeof(got));
    if (rc > 0) {
      CHECK(is_pattern(got, (size_t)rc, received));
      received += (size_t)rc;
    } else {
      CHECK_INT(SSL_get_error(c.client, rc), SSL_ERROR_WANT_READ);
    }
    end_event(&c);
    if (c.io.in_on_heap) parked++;
  }
  CHECK_INT((long long)received, (long long)total);
  CHECK(parked > 0); /* records did wait on the heap */
  /* All read: nothing is left over, and nothing waits to go out. */
  CHECK(!ms_tls_io_buffered_in(&c.io));
  CHECK(!c.io.out_on_heap);
  conn_close(&c);
}

/* Partial writes: the client seals more than the socket takes. What the
 * socket did not take stays, in order, parked across events (and grows
 * when more is sealed meanwhile) until the server has read everything. */
static void test_partial_writes_keep_the_rest(void) {
  conn c;
  conn_open(&c, 4096);
  test_handshake(c.client, &c.io, c.server);
  static uint8_t data[320 * 1024];
  pattern(data, sizeof(data), 0);
  const size_t first = 256 * 1024;
  CHECK_INT(SSL_write(c.client, data, (int)first), (int)first);
  size_t pending = ms_tls_io_pending_bytes(&c.io);
  CHECK(pending > first); /* sealed: records and their overhead */
  size_t received = 0;
  bool partial = false, grown = false;
  for (int event = 0; event < 100000; event++) {
    int rc = ms_tls_io_flush(&c.io);
    CHECK(rc >= 0);
    if (rc == 1) break;
    partial = true;
    CHECK(ms_tls_io_pending_out(&c.io));
    CHECK(ms_tls_io_pending_bytes(&c.io) < pending); /* some went out, the rest stays */
    pending = ms_tls_io_pending_bytes(&c.io);
    end_event(&c);
    CHECK(c.io.out_on_heap);
    if (!grown) {
      /* More sealed while the rest waits on the heap: it goes after it. */
      CHECK_INT(SSL_write(c.client, data + first, (int)(sizeof(data) - first)),
                (int)(sizeof(data) - first));
      CHECK(ms_tls_io_pending_bytes(&c.io) > pending);
      pending = ms_tls_io_pending_bytes(&c.io);
      grown = true;
    }
    server_read(&c, &received);
  }
  CHECK(partial && grown);
  CHECK(!ms_tls_io_pending_out(&c.io));
  CHECK(!c.io.out_on_heap); /* written out: the heap buffer is gone */
  server_read(&c, &received);
  CHECK_INT((long long)received, (long long)sizeof(data));
  conn_close(&c);
}

/* bytes_waiting tells whether the client's socket holds unread bytes. */
static bool bytes_waiting(const conn *c) {
  char byte;
  return recv(c->fds[0], &byte, 1, MSG_PEEK) == 1;
}

/* A short read emptied the socket: no read(2) until an event says there is
 * more (ms_tls_io_readable); an EAGAIN says the same. */
static void test_no_read_after_a_short_one(void) {
  conn c;
  conn_open(&c, 0);
  test_handshake(c.client, &c.io, c.server);
  uint8_t got[64];
  CHECK_INT(SSL_write(c.server, "one", 3), 3);
  ms_tls_io_readable(&c.io, false);
  CHECK_INT(SSL_read(c.client, got, sizeof(got)), 3);
  CHECK(c.io.drained);
  CHECK_INT(SSL_write(c.server, "two", 3), 3);
  int rc = SSL_read(c.client, got, sizeof(got));
  CHECK_INT(SSL_get_error(c.client, rc), SSL_ERROR_WANT_READ);
  CHECK(bytes_waiting(&c)); /* not read: no event said so */
  ms_tls_io_readable(&c.io, false);
  CHECK_INT(SSL_read(c.client, got, sizeof(got)), 3);
  CHECK(memcmp(got, "two", 3) == 0);
  /* An event with nothing behind it: one EAGAIN, then drained again. */
  ms_tls_io_readable(&c.io, false);
  rc = SSL_read(c.client, got, sizeof(got));
  CHECK_INT(SSL_get_error(c.client, rc), SSL_ERROR_WANT_READ);
  CHECK(c.io.drained && !c.io.eof && c.io.error == 0);
  end_event(&c);
  conn_close(&c);
}

/* The upstream hung up (the event said so): a short read does not stop
 * the reading, so its FIN is seen without another event (none will come).
 * A FIN without close_notify is a truncation, not a clean end. */
static void test_hangup_is_read_to_the_end(void) {
  conn c;
  conn_open(&c, 0);
  test_handshake(c.client, &c.io, c.server);
  CHECK_INT(SSL_write(c.server, "last", 4), 4);
  CHECK(shutdown(c.fds[1], SHUT_WR) == 0);
  ms_tls_io_readable(&c.io, true);
  uint8_t got[64];
  CHECK_INT(SSL_read(c.client, got, sizeof(got)), 4);
  CHECK(!c.io.drained);
  int rc = SSL_read(c.client, got, sizeof(got));
  CHECK(rc <= 0);
  int error = SSL_get_error(c.client, rc);
  CHECK(error != SSL_ERROR_WANT_READ && error != SSL_ERROR_ZERO_RETURN);
  CHECK(c.io.eof);
  conn_close(&c);
}

/* close_notify both ways: the client sees a clean end, and its own
 * close_notify reaches the server through the BIO. */
static void test_close_notify(void) {
  conn c;
  conn_open(&c, 0);
  test_handshake(c.client, &c.io, c.server);
  CHECK(SSL_shutdown(c.server) >= 0);
  ms_tls_io_readable(&c.io, false);
  uint8_t got[64];
  int rc = SSL_read(c.client, got, sizeof(got));
  CHECK_INT(SSL_get_error(c.client, rc), SSL_ERROR_ZERO_RETURN);
  CHECK(!c.io.eof); /* the socket is still open */
  CHECK(SSL_shutdown(c.client) >= 0);
  CHECK(ms_tls_io_pending_out(&c.io));
  CHECK_INT(ms_tls_io_flush(&c.io), 1);
  rc = SSL_read(c.server, got, sizeof(got));
  CHECK_INT(SSL_get_error(c.server, rc), SSL_ERROR_ZERO_RETURN);
  /* Then the FIN: the end of the socket, seen once read. */
  CHECK(shutdown(c.fds[1], SHUT_WR) == 0);
  ms_tls_io_readable(&c.io, true);
  rc = SSL_read(c.client, got, sizeof(got));
  CHECK(rc <= 0);
  conn_close(&c);
}

/* A socket error is kept (io->error) and ends the writing. */
static void test_write_error(void) {
  conn c;
  conn_open(&c, 0);
  test_handshake(c.client, &c.io, c.server);
  close(c.fds[1]);
  c.fds[1] = -1;
  CHECK_INT(SSL_write(c.client, "lost", 4), 4);
  CHECK_INT(ms_tls_io_flush(&c.io), -1);
  CHECK_INT(c.io.error, EPIPE);
  conn_close(&c);
}

/* The first bytes the upstream sent are kept, for a failed handshake's
 * diagnosis: a TLS record, or what a server that is not TLS said. */
static void test_first_bytes_kept(void) {
  conn c;
  conn_open(&c, 0);
  test_handshake(c.client, &c.io, c.server);
  CHECK_INT(c.io.first_len, 16);
  CHECK_INT(c.io.first[0], 0x16); /* a handshake record: the ServerHello */
  conn_close(&c);

  conn_open(&c, 0);
  c.io.drained = true; /* as the upstream starts TLS: nothing to read before our ClientHello */
  const char *answer = "HTTP/1.1 400 Bad Request\r\n\r\n";
  CHECK_INT(write(c.fds[1], answer, strlen(answer)), (long long)strlen(answer));
  int rc = SSL_do_handshake(c.client);
  CHECK_INT(SSL_get_error(c.client, rc), SSL_ERROR_WANT_READ);
  CHECK_INT(ms_tls_io_flush(&c.io), 1); /* the ClientHello */
  ms_tls_io_readable(&c.io, false);
  rc = SSL_do_handshake(c.client);
  CHECK(rc != 1);
  CHECK_INT(c.io.first_len, 16);
  CHECK(memcmp(c.io.first, answer, 16) == 0);
  conn_close(&c);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* as the sidecar: a write to a closed socket is EPIPE */
  scratch = malloc(sizeof(*scratch));
  CHECK(scratch != NULL);
  test_peers_init(&peers, TLS1_3_VERSION);
  SSL_CTX_set_mode(peers.server, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  test_slow_reader_loses_nothing();
  test_partial_writes_keep_the_rest();
  test_no_read_after_a_short_one();
  test_hangup_is_read_to_the_end();
  test_close_notify();
  test_write_error();
  test_first_bytes_kept();
  test_peers_cleanup(&peers);
  free(scratch);
  CHECK(ERR_peek_error() == 0);
  printf("tls_io_test: all checks passed\n");
  return 0;
}
