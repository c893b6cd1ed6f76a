#include "sidecar/tls/test_peers.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "certs/certs.h"
#include "tests/lib/test_check.h"

/* pem_of returns the PEM text of `cert` or, when it is NULL, of `key`
 * (malloc'd). */
static char *pem_of(X509 *cert, EVP_PKEY *key) {
  BIO *bio = BIO_new(BIO_s_mem());
  CHECK(bio != NULL);
  CHECK(cert ? PEM_write_bio_X509(bio, cert)
             : PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL));
  const uint8_t *bytes;
  size_t len;
  CHECK(BIO_mem_contents(bio, &bytes, &len));
  char *text = malloc(len + 1);
  CHECK(text != NULL);
  memcpy(text, bytes, len);
  text[len] = '\0';
  BIO_free(bio);
  return text;
}

void test_peers_init(test_peers *peers, uint16_t max_version) {
  char err[256];
  X509 *ca = NULL, *server_cert = NULL, *client_cert = NULL;
  EVP_PKEY *ca_key = NULL, *server_key = NULL, *client_key = NULL;
  CHECK(ms_ca_new("test peers CA", 3600, &ca, &ca_key, err, sizeof(err)) == 0);
  const char *dns[] = {TEST_PEERS_SERVER_NAME};
  ms_issue_request server = {.common_name = TEST_PEERS_SERVER_NAME,
                             .dns = dns,
                             .dns_count = 1,
                             .server = true,
                             .ttl_seconds = 3600};
  ms_issue_request client = {.common_name = "test client", .client = true, .ttl_seconds = 3600};
  CHECK(ms_cert_issue(&server, ca, ca_key, &server_cert, &server_key, err, sizeof(err)) == 0);
  CHECK(ms_cert_issue(&client, ca, ca_key, &client_cert, &client_key, err, sizeof(err)) == 0);

  /* The client, as the sidecar builds a cluster's context. */
  char *certificate = pem_of(client_cert, NULL), *key = pem_of(NULL, client_key);
  char *trusted_ca = pem_of(ca, NULL);
  ms_tls_settings settings = {
      .certificate_pem = certificate,
      .private_key_pem = key,
      .trusted_ca_pem = trusted_ca,
      .verify = true,
      .verify_depth = 3,
      .min_version = TLS1_2_VERSION,
      .max_version = max_version,
      .session_reuse = true,
  };
  ms_tls_material material;
  if (ms_tls_material_load(&settings, &material, err, sizeof(err)) != 0 ||
      ms_tls_context_new(&settings, &material, &peers->client, err, sizeof(err)) != 0) {
    fprintf(stderr, "test peers: the client's context: %s\n", err);
    exit(1);
  }
  ms_tls_material_cleanup(&material);
  free(certificate);
  free(key);
  free(trusted_ca);

  /* The server: its certificate, and the CA for the client's. */
  peers->server = SSL_CTX_new(TLS_method());
  CHECK(peers->server != NULL);
  CHECK(SSL_CTX_use_certificate(peers->server, server_cert));
  CHECK(SSL_CTX_use_PrivateKey(peers->server, server_key));
  CHECK(X509_STORE_add_cert(SSL_CTX_get_cert_store(peers->server), ca));
  SSL_CTX_set_verify(peers->server, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  CHECK(SSL_CTX_set_max_proto_version(peers->server, max_version));
  X509_free(ca);
  X509_free(server_cert);
  X509_free(client_cert);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(server_key);
  EVP_PKEY_free(client_key);
}

void test_peers_cleanup(test_peers *peers) {
  ms_tls_context_free(peers->client);
  SSL_CTX_free(peers->server);
  memset(peers, 0, sizeof(*peers));
}

void test_socketpair(int fds[2], int buffer) {
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
  for (int i = 0; buffer > 0 && i < 2; i++) {
    CHECK(setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer)) == 0);
    CHECK(setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer)) == 0);
  }
}

SSL *test_client_new(ms_tls_context *context, ms_tls_io *io) {
  static const ms_peer_check check = {.host = TEST_PEERS_SERVER_NAME};
  SSL *ssl = SSL_new(context->ssl_ctx);
  CHECK(ssl != NULL);
  BIO *bio = ms_tls_io_bio_new(io);
  CHECK(bio != NULL);
  SSL_set_bio(ssl, bio, bio);
  SSL_set_connect_state(ssl);
  CHECK(SSL_set_tlsext_host_name(ssl, TEST_PEERS_SERVER_NAME));
  CHECK(ms_ssl_set_peer_check(ssl, &check) == 0);
  return ssl;
}

SSL *test_server_new(const test_peers *peers, int fd) {
  SSL *ssl = SSL_new(peers->server);
  CHECK(ssl != NULL);
  CHECK(SSL_set_fd(ssl, fd));
  SSL_set_accept_state(ssl);
  return ssl;
}

/* step runs one side's handshake once; returns whether it is done. */
static bool step(SSL *ssl, const char *side) {
  int rc = SSL_do_handshake(ssl);
  if (rc == 1) return true;
  int error = SSL_get_error(ssl, rc);
  if (error != SSL_ERROR_WANT_READ) {
    fprintf(stderr, "test peers: the %s's handshake failed (SSL error %d)\n", side, error);
    ERR_print_errors_fp(stderr);
    exit(1);
  }
  return false;
}

void test_handshake(SSL *client, ms_tls_io *io, SSL *server) {
  bool client_done = false, server_done = false;
  for (int round = 0; round < 50 && !(client_done && server_done); round++) {
    if (!client_done) client_done = step(client, "client");
    CHECK(ms_tls_io_flush(io) == 1);
    if (!server_done) server_done = step(server, "server");
    ms_tls_io_readable(io, false);
  }
  CHECK(client_done && server_done);
  CHECK(!ms_tls_io_pending_out(io));
}
