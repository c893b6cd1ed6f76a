/* grpc_tls_test.c: connections that must fail, each cleanly and alone: a
 * client without a certificate, a client that does not trust the server,
 * garbage bytes, HTTP/2 garbage inside TLS, a refused port, a silent
 * server; and the ones that must work: a host name with several addresses,
 * keepalive PINGs on an idle channel. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "xds/grpc/grpc_test_util.h"

#define BIDI "/test.Echo/Bidi"
#define TIMEOUT_MS 10000

static grpc_test_pki pki;
static uv_loop_t loop;
static grpc_test_server server;

/* A working channel that must stay unharmed by the others' failures. */
static ms_grpc_channel *good;
static grpc_test_channel_state good_state;

static void check_good_channel_works(void) {
  grpc_test_call call = {0};
  grpc_test_call_start(good, BIDI, &call);
  CHECK(ms_grpc_call_send(call.call, (const uint8_t *)"still here", 10) == 0);
  ms_grpc_call_close_send(call.call);
  CHECK(grpc_test_run_until(&loop, &call.closed, TIMEOUT_MS));
  CHECK(call.status == MS_GRPC_OK && call.messages == 1);
  CHECK(!good_state.closed);
}

static void test_no_client_certificate(void) {
  int closed = server.connections_closed;
  grpc_test_channel_state state;
  ms_grpc_channel *channel =
      grpc_test_channel_new(&loop, pki.anonymous_ctx, server.port, 0, &state);
  grpc_test_call call = {0};
  grpc_test_call_start(channel, BIDI, &call);
  CHECK(grpc_test_run_until(&loop, &state.closed, TIMEOUT_MS));
  CHECK(!state.ready);
  CHECK_CONTAINS(state.reason, "127.0.0.1");
  CHECK_CONTAINS(state.reason, "client_certificate_rejected");
  CHECK(call.closed && call.status == MS_GRPC_UNAVAILABLE);
  CHECK(grpc_test_run_until_count(&loop, &server.connections_closed, closed + 1, TIMEOUT_MS));
  CHECK_CONTAINS(server.last_reason, "TLS handshake with 127.0.0.1");
  CHECK_CONTAINS(server.last_reason, "CERTIFICATE");
  ms_grpc_channel_close(channel);
  printf("no client certificate: client: %s\n  server: %s\n", state.reason, server.last_reason);
}

static void test_untrusted_server(void) {
  grpc_test_channel_state state;
  ms_grpc_channel *channel =
      grpc_test_channel_new(&loop, pki.untrusting_ctx, server.port, 0, &state);
  CHECK(grpc_test_run_until(&loop, &state.closed, TIMEOUT_MS));
  CHECK_CONTAINS(state.reason, "unknown_ca");
  ms_grpc_channel_close(channel);
  printf("untrusted server: %s\n", state.reason);
}

static int raw_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  CHECK(connect(fd, (struct sockaddr *)&address, sizeof(address)) == 0);
  return fd;
}

static void test_garbage(void) {
  int closed = server.connections_closed;
  int fd = raw_connect(server.port);
  const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01\xff\xff garbage garbage";
  CHECK(write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk));
  CHECK(grpc_test_run_until_count(&loop, &server.connections_closed, closed + 1, TIMEOUT_MS));
  CHECK_CONTAINS(server.last_reason, "TLS handshake with 127.0.0.1");
  char buf[256];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
  }
  CHECK(n == 0 || n < 0); /* the server closed it */
  close(fd);
  printf("garbage: %s\n", server.last_reason);
  check_good_channel_works();
}

/* A blocking BoringSSL client in a thread: a proper handshake with ALPN h2,
 * then bytes that are not HTTP/2. */
static atomic_bool h2_garbage_done;
static atomic_int h2_garbage_read_result;

static void *h2_garbage_thread(void *arg) {
  uint16_t port = *(uint16_t *)arg;
  int fd = raw_connect(port);
  SSL *ssl = SSL_new(pki.client_ctx);
  static const uint8_t alpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl, alpn, sizeof(alpn));
  SSL_set_tlsext_host_name(ssl, "localhost");
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) == 1) {
    const char junk[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x09\xff\x00\x00\x00\x07junk";
    SSL_write(ssl, junk, sizeof(junk));
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
    }
    atomic_store(&h2_garbage_read_result, n);
  }
  SSL_free(ssl);
  close(fd);
  ERR_clear_error();
  atomic_store(&h2_garbage_done, true);
  return NULL;
}

static void test_h2_garbage(void) {
  int closed = server.connections_closed;
  pthread_t thread;
  uint16_t port = server.port;
  CHECK(pthread_create(&thread, NULL, h2_garbage_thread, &port) == 0);
  CHECK(grpc_test_run_until_count(&loop, &server.connections_closed, closed + 1, TIMEOUT_MS));
  for (int i = 0; i < 200 && !atomic_load(&h2_garbage_done); i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_sleep(10);
  }
  pthread_join(thread, NULL);
  CHECK(atomic_load(&h2_garbage_done));
  CHECK_CONTAINS(server.last_reason, "HTTP/2");
  printf("HTTP/2 garbage: %s\n", server.last_reason);
  check_good_channel_works();
}

static void test_refused_and_silent(void) {
  /* A port nobody listens on. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET};
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  socklen_t length = sizeof(address);
  CHECK(bind(fd, (struct sockaddr *)&address, sizeof(address)) == 0);
  CHECK(getsockname(fd, (struct sockaddr *)&address, &length) == 0);
  uint16_t port = ntohs(address.sin_port);
  grpc_test_channel_state state;
  ms_grpc_channel *channel = grpc_test_channel_new(&loop, pki.client_ctx, port, 0, &state);
  CHECK(grpc_test_run_until(&loop, &state.closed, TIMEOUT_MS));
  CHECK_CONTAINS(state.reason, "connection refused");
  ms_grpc_channel_close(channel);
  printf("refused: %s\n", state.reason);

  /* A server that accepts TCP (the backlog does) and never answers. */
  CHECK(listen(fd, 8) == 0);
  char text[32];
  snprintf(text, sizeof(text), "127.0.0.1:%u", port);
  memset(&state, 0, sizeof(state));
  ms_grpc_channel_options options = {
      .address = text, .ssl_ctx = pki.client_ctx, .connect_timeout_ms = 300};
  extern const ms_grpc_channel_callbacks *grpc_tls_test_state_callbacks;
  CHECK(ms_grpc_channel_new(&loop, &options, grpc_tls_test_state_callbacks, &state, &channel) == 0);
  CHECK(grpc_test_run_until(&loop, &state.closed, TIMEOUT_MS));
  CHECK_CONTAINS(state.reason, "timed out after 300 ms (in the TLS handshake)");
  ms_grpc_channel_close(channel);
  close(fd);
  printf("silent: %s\n", state.reason);

  /* Bad options. */
  options.address = "no-port";
  CHECK(ms_grpc_channel_new(&loop, &options, NULL, NULL, &channel) == UV_EINVAL);
  options.address = text;
  options.ssl_ctx = NULL;
  CHECK(ms_grpc_channel_new(&loop, &options, NULL, NULL, &channel) == UV_EINVAL);
}

static void on_state(ms_grpc_channel *channel, ms_grpc_channel_state state, const char *reason,
                     void *arg) {
  grpc_test_channel_state *record = arg;
  record->state = state;
  record->ready |= state == MS_GRPC_CHANNEL_READY;
  if (state == MS_GRPC_CHANNEL_CLOSED) {
    record->closed = true;
    snprintf(record->reason, sizeof(record->reason), "%s", reason);
  }
}
static const ms_grpc_channel_callbacks state_callbacks = {.on_state = on_state};
const ms_grpc_channel_callbacks *grpc_tls_test_state_callbacks = &state_callbacks;

static void test_host_name_and_keepalive(void) {
  /* "localhost" may resolve to ::1 first, where nobody listens: the next
   * address is tried. PINGs every 50 ms keep an idle channel READY. */
  char text[32];
  snprintf(text, sizeof(text), "localhost:%u", server.port);
  grpc_test_channel_state state = {0};
  ms_grpc_channel_options options = {
      .address = text,
      .ssl_ctx = pki.client_ctx,
      .keepalive_interval_ms = 50,
      .keepalive_timeout_ms = 1000,
  };
  ms_grpc_channel *channel = NULL;
  CHECK(ms_grpc_channel_new(&loop, &options, &state_callbacks, &state, &channel) == 0);
  CHECK(grpc_test_run_until(&loop, &state.ready, TIMEOUT_MS));
  bool never = false;
  grpc_test_run_until(&loop, &never, 400);
  CHECK(state.ready && !state.closed);
  ms_grpc_channel_close(channel);
}

int main(void) {
  grpc_test_pki_init(&pki);
  uv_loop_init(&loop);
  grpc_test_server_start(&server, &loop, pki.server_ctx, 0);
  good = grpc_test_channel_new(&loop, pki.client_ctx, server.port, 0, &good_state);
  CHECK(grpc_test_run_until(&loop, &good_state.ready, TIMEOUT_MS));

  test_no_client_certificate();
  test_untrusted_server();
  test_garbage();
  test_h2_garbage();
  test_refused_and_silent();
  test_host_name_and_keepalive();
  check_good_channel_works();

  ms_grpc_channel_close(good);
  ms_grpc_server_close(server.server);
  grpc_test_close_loop(&loop);
  grpc_test_pki_cleanup(&pki);
  return grpc_test_finish("grpc_tls_test");
}
