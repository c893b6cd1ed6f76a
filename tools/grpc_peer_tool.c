/* grpc_peer_tool.c: our gRPC client and server as a command, for the interop
 * test against @grpc/grpc-js (grpc_node_test.sh).
 *
 *   grpc_peer_tool client ADDRESS CA CRT KEY EXPECT_URI
 *       calls "/test.Echo/Bidi" on a server (tests/node/grpc_peer_server.js)
 *       and checks echoes, statuses, identity, UNIMPLEMENTED, 100 streams.
 *   grpc_peer_tool server CA CRT KEY PORT_FILE
 *       serves grpc_test_util.h's echo server on 127.0.0.1:0, requiring a
 *       client certificate, until SIGTERM.
 * Exit status 0 when every check passed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "certs/certs.h"
#include "common/file.h"
#include "xds/grpc/grpc_test_util.h"

#define BIDI "/test.Echo/Bidi"
#define TIMEOUT_MS 10000

static uv_loop_t loop;
static int passed, failed;

static void check(bool ok, const char *what, const char *detail) {
  if (ok) {
    passed++;
    printf("ok: %s\n", what);
  } else {
    failed++;
    printf("FAIL: %s: %s\n", what, detail);
  }
}

static void send_text(ms_grpc_call *call, const char *text) {
  ms_grpc_call_send(call, (const uint8_t *)text, strlen(text));
}

static SSL_CTX *client_ctx(const char *ca, const char *crt, const char *key) {
  SSL_CTX *ctx = NULL;
  char err[MS_ERR_LEN];
  if (ms_client_ctx_load_files(ca, crt, key, &ctx, err, sizeof(err)) != 0) {
    fprintf(stderr, "grpc_peer_tool: %s\n", err);
    exit(2);
  }
  return ctx;
}

static int run_client(const char *address, const char *ca, const char *crt, const char *key,
                      const char *expect_uri) {
  SSL_CTX *ctx = client_ctx(ca, crt, key);
  grpc_test_channel_state state = {0};
  ms_grpc_channel_options options = {
      .address = address, .ssl_ctx = ctx, .server_name = "localhost", .connect_timeout_ms = 5000};
  extern const ms_grpc_channel_callbacks *grpc_peer_tool_state_callbacks;
  ms_grpc_channel *channel = NULL;
  if (ms_grpc_channel_new(&loop, &options, grpc_peer_tool_state_callbacks, &state, &channel) != 0)
    return 2;
  char detail[1200];
  bool ready = grpc_test_run_until(&loop, &state.ready, TIMEOUT_MS);
  check(ready, "the channel is READY", state.reason);
  if (!ready) return 1;

  grpc_test_call echo = {0};
  grpc_test_call_start(channel, BIDI, &echo);
  send_text(echo.call, "hello");
  send_text(echo.call, "world");
  size_t mib = 1 << 20;
  uint8_t *big = malloc(mib);
  memset(big, 'm', mib);
  ms_grpc_call_send(echo.call, big, mib);
  free(big);
  ms_grpc_call_close_send(echo.call);
  grpc_test_run_until(&loop, &echo.closed, TIMEOUT_MS);
  snprintf(detail, sizeof(detail), "%d messages, %zu bytes, status %d \"%s\"", echo.messages,
           echo.bytes, echo.status, echo.message);
  check(echo.closed && echo.messages == 3 && echo.bytes == 10 + mib && echo.last[0] == 'm',
        "echo of three messages, the last 1 MiB", detail);
  check(echo.status == MS_GRPC_OK, "half-close ends with OK", detail);

  grpc_test_call status = {0};
  grpc_test_call_start(channel, BIDI, &status);
  send_text(status.call, "finish:9:node says no, 100% sure");
  grpc_test_run_until(&loop, &status.closed, TIMEOUT_MS);
  snprintf(detail, sizeof(detail), "status %d \"%s\"", status.status, status.message);
  check(status.status == MS_GRPC_FAILED_PRECONDITION &&
            strcmp(status.message, "node says no, 100% sure") == 0,
        "status and message set by the server", detail);

  grpc_test_call who = {0};
  grpc_test_call_start(channel, BIDI, &who);
  send_text(who.call, "identity");
  ms_grpc_call_close_send(who.call);
  grpc_test_run_until(&loop, &who.closed, TIMEOUT_MS);
  check(who.messages == 1 && strcmp(who.last, expect_uri) == 0,
        "the server saw our certificate's URI SAN", who.last);

  grpc_test_call unknown = {0};
  grpc_test_call_start(channel, "/test.Echo/Nope", &unknown);
  ms_grpc_call_close_send(unknown.call);
  grpc_test_run_until(&loop, &unknown.closed, TIMEOUT_MS);
  snprintf(detail, sizeof(detail), "status %d \"%s\"", unknown.status, unknown.message);
  check(unknown.status == MS_GRPC_UNIMPLEMENTED, "unknown method is UNIMPLEMENTED", detail);

  enum { CALLS = 100, EACH = 5 };
  static grpc_test_call calls[CALLS];
  for (int i = 0; i < CALLS; i++) {
    grpc_test_call_start(channel, BIDI, &calls[i]);
    for (int m = 0; m < EACH; m++) {
      char text[48];
      snprintf(text, sizeof(text), "call %d message %d", i, m);
      send_text(calls[i].call, text);
    }
    ms_grpc_call_close_send(calls[i].call);
  }
  int good = 0;
  for (int i = 0; i < CALLS; i++) {
    grpc_test_run_until(&loop, &calls[i].closed, TIMEOUT_MS);
    char want[48];
    snprintf(want, sizeof(want), "call %d message %d", i, EACH - 1);
    good += calls[i].status == MS_GRPC_OK && calls[i].messages == EACH &&
            strcmp(calls[i].last, want) == 0;
  }
  snprintf(detail, sizeof(detail), "%d of %d right", good, CALLS);
  check(good == CALLS, "100 concurrent streams of 5 messages each", detail);

  check(!state.closed, "the channel stayed up", state.reason);
  ms_grpc_channel_close(channel);
  grpc_test_close_loop(&loop);
  SSL_CTX_free(ctx);
  printf("C client: %d passed, %d failed\n", passed, failed);
  return failed == 0 && grpc_test_failures == 0 ? 0 : 1;
}

static void on_state(ms_grpc_channel *channel, ms_grpc_channel_state state, const char *reason,
                     void *arg) {
  grpc_test_channel_state *record = arg;
  record->ready |= state == MS_GRPC_CHANNEL_READY;
  if (state == MS_GRPC_CHANNEL_CLOSED) {
    record->closed = true;
    snprintf(record->reason, sizeof(record->reason), "%s", reason);
  }
}
static const ms_grpc_channel_callbacks state_callbacks = {.on_state = on_state};
const ms_grpc_channel_callbacks *grpc_peer_tool_state_callbacks = &state_callbacks;

/* ---- server --------------------------------------------------------------- */

static SSL_CTX *server_ctx(const char *ca, const char *crt, const char *key) {
  char err[MS_ERR_LEN];
  char *ca_pem = NULL, *crt_pem = NULL, *key_pem = NULL;
  size_t ca_len, crt_len, key_len;
  STACK_OF(X509) *trusted = NULL, *chain = NULL;
  EVP_PKEY *private_key = NULL;
  if (ms_file_read(ca, &ca_pem, &ca_len, err, sizeof(err)) != 0 ||
      ms_file_read(crt, &crt_pem, &crt_len, err, sizeof(err)) != 0 ||
      ms_file_read(key, &key_pem, &key_len, err, sizeof(err)) != 0 ||
      ms_pem_parse_chain(ca_pem, ca_len, ca, &trusted, err, sizeof(err)) != 0 ||
      ms_pem_parse_chain(crt_pem, crt_len, crt, &chain, err, sizeof(err)) != 0 ||
      ms_pem_parse_key(key_pem, key_len, NULL, key, &private_key, err, sizeof(err)) != 0) {
    fprintf(stderr, "grpc_peer_tool: %s\n", err);
    exit(2);
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0));
  SSL_CTX_use_PrivateKey(ctx, private_key);
  for (size_t i = 0; i < sk_X509_num(trusted); i++)
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), sk_X509_value(trusted, i));
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  sk_X509_pop_free(trusted, X509_free);
  sk_X509_pop_free(chain, X509_free);
  EVP_PKEY_free(private_key);
  free(ca_pem);
  free(crt_pem);
  free(key_pem);
  return ctx;
}

static void on_signal(uv_signal_t *signal, int signum) {
  grpc_test_server *server = signal->data;
  ms_grpc_server_close(server->server);
  uv_close((uv_handle_t *)signal, NULL);
}

static int run_server(const char *ca, const char *crt, const char *key, const char *port_file) {
  SSL_CTX *ctx = server_ctx(ca, crt, key);
  grpc_test_server server;
  grpc_test_server_start(&server, &loop, ctx, 0);
  char tmp[1024];
  snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
  FILE *file = fopen(tmp, "w");
  if (file == NULL || fprintf(file, "%u", server.port) < 0 || fclose(file) != 0 ||
      rename(tmp, port_file) != 0) {
    perror(port_file);
    return 2;
  }
  printf("grpc_peer_tool: listening on 127.0.0.1:%u\n", server.port);
  fflush(stdout);
  uv_signal_t signal;
  uv_signal_init(&loop, &signal);
  signal.data = &server;
  uv_signal_start(&signal, on_signal, SIGTERM);
  uv_run(&loop, UV_RUN_DEFAULT);
  grpc_test_close_loop(&loop);
  SSL_CTX_free(ctx);
  printf("grpc_peer_tool: served %d calls\n", server.calls);
  return grpc_test_failures == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  uv_loop_init(&loop);
  if (argc == 7 && strcmp(argv[1], "client") == 0)
    return run_client(argv[2], argv[3], argv[4], argv[5], argv[6]);
  if (argc == 6 && strcmp(argv[1], "server") == 0)
    return run_server(argv[2], argv[3], argv[4], argv[5]);
  fprintf(stderr,
          "usage: grpc_peer_tool client ADDRESS CA CRT KEY EXPECT_URI\n"
          "       grpc_peer_tool server CA CRT KEY PORT_FILE\n");
  return 2;
}
