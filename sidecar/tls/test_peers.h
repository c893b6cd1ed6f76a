/* test_peers.h: a mutual-TLS client and server in one process, for the unit
 * tests of the sidecar's TLS transport (tls_io_test) and of the pool that
 * keeps such connections (//sidecar/upstream:pool_test).
 *
 * The certificates are made at start with the certs library (a CA, a
 * server certificate for TEST_PEERS_SERVER_NAME and a client certificate,
 * both from it); nothing is read from files. The client is the sidecar's
 * own: an ms_tls_context built from in-memory PEM, SNI and the peer check
 * set, its records through ms_tls_io on one end of a socketpair. The server
 * is plain BoringSSL on the other end, asking for the client's
 * certificate. Test-only: every failure ends the process (CHECK). */
#ifndef MS_TLS_TEST_PEERS_H
#define MS_TLS_TEST_PEERS_H

#include <stdint.h>

#include <openssl/ssl.h>

#include "sidecar/tls/tls_context.h"
#include "sidecar/tls/tls_io.h"

#define TEST_PEERS_SERVER_NAME "upstream.test"

typedef struct test_peers {
  ms_tls_context *client; /* reference held */
  SSL_CTX *server;
} test_peers;

/* test_peers_init makes the certificates and both contexts, for TLS 1.2 up
 * to `max_version` (TLS1_2_VERSION or TLS1_3_VERSION). */
void test_peers_init(test_peers *peers, uint16_t max_version);

/* test_peers_cleanup drops both contexts. */
void test_peers_cleanup(test_peers *peers);

/* test_socketpair makes a connected pair of non-blocking stream sockets,
 * fds[0] for the client and fds[1] for the server. With `buffer` > 0 each
 * socket's send and receive buffers are that small (the kernel rounds it
 * up), so that writes of more stop part way. */
void test_socketpair(int fds[2], int buffer);

/* test_client_new returns the client's SSL on the context `context`
 * (peers->client, or another built the same way), reading and writing
 * through `io` (ms_tls_io_init'ed on the client's socket; it must outlive
 * the SSL, which the caller frees). */
SSL *test_client_new(ms_tls_context *context, ms_tls_io *io);

/* test_server_new returns the server's SSL on socket `fd` (the caller
 * frees it). */
SSL *test_server_new(const test_peers *peers, int fd);

/* test_handshake runs both handshakes to the end, driving the client as
 * the sidecar does: what it seals is flushed, and after the server wrote,
 * the socket is read again (ms_tls_io_readable, as an event says). The
 * client's last flight is out when it returns. */
void test_handshake(SSL *client, ms_tls_io *io, SSL *server);

#endif
