/* handshake_test.c: real handshakes in memory (a BIO pair) between a client
 * context from ms_client_ctx_new and a BoringSSL server, checking peer name
 * checks and what ms_tls_describe_failure says for each common failure. */
#include "certs/test_util.h"

typedef struct server_options {
  const char *cert; /* <cert>.crt / <cert>.key in the test folder */
  bool require_client_cert;
  bool require_sni; /* alert unrecognized_name without SNI */
  bool reject_sni;  /* alert unrecognized_name with any SNI */
  uint16_t min_version, max_version;
} server_options;

static X509 *client_ca; /* the CA the server trusts for client certificates */

static int servername(SSL *ssl, int *out_alert, void *arg) {
  const server_options *options = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if ((name == NULL && options->require_sni) || (name != NULL && options->reject_sni)) {
    *out_alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *server_ctx(const server_options *options) {
  char err[MS_ERR_LEN], name[64];
  ms_tls_settings settings = {.verify = false};
  ms_tls_material material;
  snprintf(name, sizeof(name), "%s.crt", options->cert);
  settings.certificate = test_path(name);
  snprintf(name, sizeof(name), "%s.key", options->cert);
  settings.private_key = test_path(name);
  if (ms_tls_material_load(&settings, &material, err, sizeof(err)) != 0) {
    fprintf(stderr, "server material: %s\n", err);
    exit(1);
  }
  STACK_OF(X509) *chain = NULL;
  EVP_PKEY *key = NULL;
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  if (ms_pem_parse_chain(material.certificate_pem, material.certificate_len, "server", &chain, err,
                         sizeof(err)) != 0 ||
      ms_pem_parse_key(material.private_key_pem, material.private_key_len, NULL, "server", &key,
                       err, sizeof(err)) != 0 ||
      !SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0)) || !SSL_CTX_use_PrivateKey(ctx, key)) {
    fprintf(stderr, "server ctx: %s\n", err);
    exit(1);
  }
  sk_X509_pop_free(chain, X509_free);
  EVP_PKEY_free(key);
  ms_tls_material_cleanup(&material);
  if (options->require_client_cert) {
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), client_ca);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  }
  SSL_CTX_set_tlsext_servername_callback(ctx, servername);
  SSL_CTX_set_tlsext_servername_arg(ctx, (void *)options);
  if (options->min_version) SSL_CTX_set_min_proto_version(ctx, options->min_version);
  if (options->max_version) SSL_CTX_set_max_proto_version(ctx, options->max_version);
  return ctx;
}

/* What one handshake gave, from the client's side. */
typedef struct outcome {
  bool ok;
  ms_tls_failure failure;
  char line[MS_ERR_LEN];
} outcome;

static int new_sessions = 0;

static int count_session(SSL *ssl, SSL_SESSION *session) {
  new_sessions++;
  return 0; /* not kept */
}

/* drive runs the handshake, then one read on the client so that a TLS 1.3
 * server's rejection of our certificate (which arrives after the client
 * finished) and session tickets are seen. Returns 0 or the SSL error. */
static int drive(SSL *client, SSL *server) {
  bool client_done = false, server_done = false, server_failed = false;
  for (int i = 0; i < 20 && !(client_done && (server_done || server_failed)); i++) {
    if (!client_done) {
      int rc = SSL_do_handshake(client);
      int error = SSL_get_error(client, rc);
      if (rc == 1) {
        client_done = true;
      } else if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
        return error;
      }
    }
    if (!server_done && !server_failed) {
      int rc = SSL_do_handshake(server);
      int error = SSL_get_error(server, rc);
      server_done = rc == 1;
      server_failed = rc != 1 && error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE;
      ERR_clear_error(); /* the server's errors are not the client's */
    }
  }
  if (!client_done) return SSL_ERROR_SYSCALL;
  if (server_done) {
    SSL_write(server, "ok", 2);
    ERR_clear_error();
  }
  char buf[8];
  int rc = SSL_read(client, buf, sizeof(buf));
  return rc > 0 ? 0 : SSL_get_error(client, rc);
}

/* handshake connects a client built from `settings` to a server made from
 * `server_options`, with `check` and `sni` on the client's SSL. */
static outcome handshake(const ms_tls_settings *settings, const server_options *options,
                         const ms_peer_check *check, const char *sni) {
  outcome result;
  memset(&result, 0, sizeof(result));
  char err[MS_ERR_LEN];
  ms_tls_material material;
  SSL_CTX *client_ctx = NULL;
  if (ms_tls_material_load(settings, &material, err, sizeof(err)) != 0 ||
      ms_client_ctx_new(settings, &material, &client_ctx, NULL, NULL, NULL, err, sizeof(err)) !=
          0) {
    fprintf(stderr, "client ctx: %s\n", err);
    exit(1);
  }
  ms_tls_material_cleanup(&material);
  SSL_CTX_sess_set_new_cb(client_ctx, count_session);
  SSL_CTX *ctx = server_ctx(options);
  SSL *client = SSL_new(client_ctx), *server = SSL_new(ctx);
  BIO *client_bio = NULL, *server_bio = NULL;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client, client_bio, client_bio);
  SSL_set_bio(server, server_bio, server_bio);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  if (sni != NULL) SSL_set_tlsext_host_name(client, sni);
  if (check != NULL) CHECK(ms_ssl_set_peer_check(client, check) == 0);

  int error = drive(client, server);
  result.ok = error == 0;
  if (!result.ok) {
    result.failure =
        ms_tls_describe_failure(client, error, sni != NULL, result.line, sizeof(result.line));
    printf("%-27s %s\n", ms_tls_failure_name(result.failure), result.line); /* for the log */
  }
  CHECK(ERR_peek_error() == 0); /* the describer drained the queue */
  SSL_free(client);
  SSL_free(server);
  SSL_CTX_free(client_ctx);
  SSL_CTX_free(ctx);
  return result;
}

#define EXPECT_FAILURE(result, kind)                                                    \
  do {                                                                                  \
    outcome got_ = (result);                                                            \
    CHECK(!got_.ok);                                                                    \
    if (got_.failure != (kind)) {                                                       \
      fprintf(stderr, "%s:%d: got %s, want %s: %s\n", __FILE__, __LINE__,               \
              ms_tls_failure_name(got_.failure), ms_tls_failure_name(kind), got_.line); \
      test_failures++;                                                                  \
    }                                                                                   \
  } while (0)

static void test_names(void) {
  ms_tls_settings settings = test_client_settings();
  server_options options = {.cert = "server"};
  ms_peer_check by_host = {.host = "server.test"};
  new_sessions = 0;
  outcome r = handshake(&settings, &options, &by_host, "server.test");
  if (!r.ok) fprintf(stderr, "unexpected: %s\n", r.line);
  CHECK(r.ok);
  CHECK(new_sessions > 0); /* callers' new-session callbacks fire */

  ms_peer_check by_ip = {.host = "127.0.0.1"};
  r = handshake(&settings, &options, &by_ip, NULL);
  CHECK(r.ok);

  ms_peer_check wrong_host = {.host = "other.test"};
  r = handshake(&settings, &options, &wrong_host, "other.test");
  EXPECT_FAILURE(r, MS_TLS_FAILURE_NAME_MISMATCH);
  CHECK_CONTAINS(r.line,
                 "certificate is not valid for other.test: certificate has [DNS:server.test");
  CHECK_CONTAINS(r.line, "hint:");

  const char *good_uri[] = {"URI:spiffe://td/ns/x/sa/nope", "URI:spiffe://td/ns/x/sa/server"};
  ms_peer_check by_uri = {.match_sans = good_uri, .match_san_count = 2};
  r = handshake(&settings, &options, &by_uri, NULL);
  CHECK(r.ok);

  const char *bad_uri[] = {"URI:spiffe://td/ns/x/sa/y"};
  ms_peer_check wrong_uri = {.host = "server.test", .match_sans = bad_uri, .match_san_count = 1};
  r = handshake(&settings, &options, &wrong_uri, NULL);
  EXPECT_FAILURE(r, MS_TLS_FAILURE_NAME_MISMATCH);
  CHECK_CONTAINS(r.line,
                 "no subject alt name matched: wanted [URI:spiffe://td/ns/x/sa/y], "
                 "certificate has [DNS:server.test, IP:127.0.0.1, "
                 "URI:spiffe://td/ns/x/sa/server]");

  server_options wildcard = {.cert = "wildcard"};
  const char *one_label[] = {"DNS:api.svc.test"};
  ms_peer_check dns_one = {.match_sans = one_label, .match_san_count = 1};
  CHECK(handshake(&settings, &wildcard, &dns_one, NULL).ok);
  const char *two_labels[] = {"DNS:a.api.svc.test"};
  ms_peer_check dns_two = {.match_sans = two_labels, .match_san_count = 1};
  EXPECT_FAILURE(handshake(&settings, &wildcard, &dns_two, NULL), MS_TLS_FAILURE_NAME_MISMATCH);
  const char *ip_san[] = {"IP:127.0.0.1"};
  ms_peer_check by_ip_san = {.match_sans = ip_san, .match_san_count = 1};
  CHECK(handshake(&settings, &options, &by_ip_san, NULL).ok);

  /* Without verification the check is a no-op. */
  settings.verify = false;
  r = handshake(&settings, &options, &wrong_uri, NULL);
  CHECK(r.ok);
}

static void test_trust(void) {
  ms_tls_settings settings = test_client_settings();
  ms_peer_check check = {.host = "server.test"};
  server_options stranger = {.cert = "stranger"};
  outcome r = handshake(&settings, &stranger, &check, "server.test");
  EXPECT_FAILURE(r, MS_TLS_FAILURE_UNKNOWN_CA);
  CHECK_CONTAINS(r.line, "sent alert unknown_ca (48)");
  CHECK_CONTAINS(r.line, "hint: the upstream's certificate does not chain to trusted_ca");

  server_options expired = {.cert = "server_expired"};
  r = handshake(&settings, &expired, &check, "server.test");
  EXPECT_FAILURE(r, MS_TLS_FAILURE_EXPIRED);
  CHECK_CONTAINS(r.line, "expired at");

  server_options revoked = {.cert = "server"};
  settings.crl = test_path("server.crl");
  r = handshake(&settings, &revoked, &check, "server.test");
  EXPECT_FAILURE(r, MS_TLS_FAILURE_OTHER);
  CHECK_CONTAINS(r.line, "revoked");
}

static void test_sni_and_protocol(void) {
  ms_tls_settings settings = test_client_settings();
  server_options needs_sni = {.cert = "server", .require_sni = true};
  outcome r = handshake(&settings, &needs_sni, NULL, NULL);
  EXPECT_FAILURE(r, MS_TLS_FAILURE_SNI_REQUIRED);
  CHECK_CONTAINS(r.line, "received alert unrecognized_name (112)");
  CHECK_CONTAINS(r.line, "hint: the upstream may require SNI; sni is off or the endpoint is an IP");
  CHECK(strcmp(ms_tls_failure_name(r.failure), "sni_required") == 0);

  server_options rejects = {.cert = "server", .reject_sni = true};
  r = handshake(&settings, &rejects, NULL, "nobody.test");
  EXPECT_FAILURE(r, MS_TLS_FAILURE_OTHER);
  CHECK_CONTAINS(r.line, "does not serve the name sent in SNI");

  settings.max_version = TLS1_2_VERSION;
  server_options tls13 = {.cert = "server", .min_version = TLS1_3_VERSION};
  r = handshake(&settings, &tls13, NULL, NULL);
  EXPECT_FAILURE(r, MS_TLS_FAILURE_PROTOCOL);
  CHECK_CONTAINS(r.line, "protocol_version (70)");
}

static void test_client_certificates(void) {
  server_options mtls = {.cert = "server", .require_client_cert = true};
  ms_tls_settings settings = test_client_settings();
  CHECK(handshake(&settings, &mtls, NULL, NULL).ok);

  settings.certificate = NULL;
  settings.private_key = NULL;
  outcome r = handshake(&settings, &mtls, NULL, NULL); /* TLS 1.3: certificate_required */
  EXPECT_FAILURE(r, MS_TLS_FAILURE_CLIENT_CERT);
  CHECK_CONTAINS(r.line, "certificate_required (116)");
  CHECK_CONTAINS(r.line, "requires a client certificate");

  settings.max_version = TLS1_2_VERSION; /* TLS 1.2: handshake_failure */
  r = handshake(&settings, &mtls, NULL, NULL);
  EXPECT_FAILURE(r, MS_TLS_FAILURE_CLIENT_CERT);
  CHECK_CONTAINS(r.line, "requires a client certificate");

  settings = test_client_settings();
  settings.certificate = test_path("stranger.crt"); /* issued by a CA the server ignores */
  settings.private_key = test_path("stranger.key");
  r = handshake(&settings, &mtls, NULL, NULL);
  EXPECT_FAILURE(r, MS_TLS_FAILURE_CLIENT_CERT);
  CHECK_CONTAINS(r.line, "received alert");
}

/* lone_client starts a client handshake whose peer is `*out_peer`, the
 * other end of a BIO pair that the test writes to (or closes) by hand. */
static SSL *lone_client(SSL_CTX **out_ctx, BIO **out_peer) {
  char err[MS_ERR_LEN];
  ms_tls_settings settings = test_client_settings();
  ms_tls_material material;
  CHECK(ms_tls_material_load(&settings, &material, err, sizeof(err)) == 0);
  CHECK(ms_client_ctx_new(&settings, &material, out_ctx, NULL, NULL, NULL, err, sizeof(err)) == 0);
  ms_tls_material_cleanup(&material);
  SSL *client = SSL_new(*out_ctx);
  BIO *client_bio = NULL;
  BIO_new_bio_pair(&client_bio, 0, out_peer, 0);
  SSL_set_bio(client, client_bio, client_bio);
  SSL_set_connect_state(client);
  int rc = SSL_do_handshake(client);
  CHECK(SSL_get_error(client, rc) == SSL_ERROR_WANT_READ);
  return client;
}

static void test_connection_closed(void) {
  char line[MS_ERR_LEN];
  SSL_CTX *ctx = NULL;
  BIO *peer_bio = NULL;
  SSL *client = lone_client(&ctx, &peer_bio);
  BIO_shutdown_wr(peer_bio); /* the peer closes without a word */
  int rc = SSL_do_handshake(client);
  int error = SSL_get_error(client, rc);
  ms_tls_failure failure = ms_tls_describe_failure(client, error, false, line, sizeof(line));
  printf("%-27s %s\n", ms_tls_failure_name(failure), line);
  if (failure != MS_TLS_FAILURE_CONNECTION_CLOSED) fprintf(stderr, "got: %s\n", line);
  CHECK(failure == MS_TLS_FAILURE_CONNECTION_CLOSED);
  CHECK_CONTAINS(line, "closed");
  SSL_free(client);
  BIO_free(peer_bio);
  SSL_CTX_free(ctx);

  CHECK(strcmp(ms_tls_failure_name(MS_TLS_FAILURE_TIMEOUT), "timeout") == 0);
  CHECK(strcmp(ms_tls_failure_name(MS_TLS_FAILURE_COUNT), "handshake_failure") == 0);
}

/* not_tls_answer has the client read `answer` (or, when NULL, its own
 * ClientHello sent back) and describes the failure, with the first bytes
 * when `show_bytes`. */
static ms_tls_failure not_tls_answer(const char *answer, bool show_bytes, char *line,
                                     size_t line_len) {
  SSL_CTX *ctx = NULL;
  BIO *peer_bio = NULL;
  SSL *client = lone_client(&ctx, &peer_bio);
  uint8_t bytes[2048];
  size_t len = 0;
  if (answer != NULL) {
    len = strlen(answer);
    memcpy(bytes, answer, len);
  } else {
    int n = BIO_read(peer_bio, bytes, sizeof(bytes)); /* an echo */
    CHECK(n > 0);
    len = n > 0 ? (size_t)n : 0;
  }
  CHECK(BIO_write(peer_bio, bytes, (int)len) == (int)len);
  int rc = SSL_do_handshake(client);
  int error = SSL_get_error(client, rc);
  ms_tls_failure failure =
      ms_tls_describe_failure_seen(client, error, true, show_bytes ? bytes : NULL,
                                   show_bytes ? (len < 16 ? len : 16) : 0, line, line_len);
  printf("%-27s %s\n", ms_tls_failure_name(failure), line);
  CHECK(ERR_peek_error() == 0);
  SSL_free(client);
  BIO_free(peer_bio);
  SSL_CTX_free(ctx);
  return failure;
}

static void test_not_tls(void) {
  char line[MS_ERR_LEN];
  const char *http = "HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n";
  CHECK(not_tls_answer(http, true, line, sizeof(line)) == MS_TLS_FAILURE_NOT_TLS);
  CHECK_CONTAINS(line, "WRONG_VERSION_NUMBER");
  CHECK_CONTAINS(line,
                 "hint: the upstream answered with something that is not TLS (it looks like "
                 "HTTP: \"HTTP/1.1 400\"); is the port a plaintext one?");
  /* Without the bytes (the xDS client's transport), BoringSSL's reason. */
  CHECK(not_tls_answer(http, false, line, sizeof(line)) == MS_TLS_FAILURE_NOT_TLS);
  CHECK_CONTAINS(line, "is not TLS; is the port a plaintext one?");
  CHECK(not_tls_answer("SSH-2.0-OpenSSH_9.2p1 Debian\r\n", true, line, sizeof(line)) ==
        MS_TLS_FAILURE_NOT_TLS);
  CHECK_CONTAINS(line, "(it begins \"SSH-2.0-OpenSSH_\")");
  CHECK(not_tls_answer("\x01\x02\x03\x04\x05\x06", true, line, sizeof(line)) ==
        MS_TLS_FAILURE_NOT_TLS);
  CHECK_CONTAINS(line, "(it begins with the bytes 01 02 03 04 05 06)");
  /* A TCP echo sends our ClientHello back: a TLS record, but not a server's. */
  CHECK(not_tls_answer(NULL, true, line, sizeof(line)) == MS_TLS_FAILURE_NOT_TLS);
  CHECK_CONTAINS(line, "sent our own ClientHello back");
  CHECK(strcmp(ms_tls_failure_name(MS_TLS_FAILURE_NOT_TLS), "not_tls") == 0);

  const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
  CHECK(ms_tls_record_type(hello, sizeof(hello)) == 22);
  CHECK(ms_tls_record_type((const uint8_t *)"GET / HTTP/1.1", 14) == 0);
  CHECK(ms_tls_record_type(hello, 2) == 0);
}

/* write_crl writes a CRL of `pki` revoking `revoked`. */
static void write_crl(test_pki *pki, X509 *revoked, const char *name) {
  X509_CRL *crl = X509_CRL_new();
  ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL) - 60);
  ASN1_TIME *next = ASN1_TIME_set(NULL, time(NULL) + 86400);
  X509_REVOKED *entry = X509_REVOKED_new();
  CHECK(X509_CRL_set_version(crl, X509_CRL_VERSION_2) &&
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(pki->ca)) &&
        X509_CRL_set1_lastUpdate(crl, now) && X509_CRL_set1_nextUpdate(crl, next) &&
        X509_REVOKED_set_serialNumber(entry, X509_get0_serialNumber(revoked)) &&
        X509_REVOKED_set_revocationDate(entry, now) && X509_CRL_add0_revoked(crl, entry) &&
        X509_CRL_sort(crl) && X509_CRL_sign(crl, pki->ca_key, EVP_sha256()));
  FILE *file = fopen(test_path(name), "w");
  CHECK(file != NULL && PEM_write_X509_CRL(file, crl));
  if (file != NULL) fclose(file);
  ASN1_TIME_free(now);
  ASN1_TIME_free(next);
  X509_CRL_free(crl);
}

int main(void) {
  test_pki pki, other;
  test_pki_init(&pki, "Handshake CA");
  test_pki_init(&other, "Stranger CA");
  client_ca = pki.ca;
  test_write_ca(&pki, "ca.crt");
  int64_t now = (int64_t)time(NULL);
  X509 *server = NULL;
  test_issue(&pki, "server", "server.test", "spiffe://td/ns/x/sa/server", "127.0.0.1", 0, 3600,
             NULL, &server);
  write_crl(&pki, server, "server.crl");
  X509_free(server);
  test_issue(&pki, "wildcard", "*.svc.test", NULL, NULL, 0, 3600, NULL, NULL);
  test_issue(&pki, "client", "client.test", "spiffe://td/ns/x/sa/client", NULL, 0, 3600, NULL,
             NULL);
  test_issue(&pki, "server_expired", "server.test", NULL, NULL, now - 48 * 3600, 24 * 3600, NULL,
             NULL);
  test_issue(&other, "stranger", "server.test", NULL, NULL, 0, 3600, NULL, NULL);

  test_names();
  test_trust();
  test_sni_and_protocol();
  test_client_certificates();
  test_connection_closed();
  test_not_tls();

  test_pki_cleanup(&pki);
  test_pki_cleanup(&other);
  return test_finish("handshake_test");
}
