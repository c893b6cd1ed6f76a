/* grpc_test_util.c: see grpc_test_util.h. */
#include "xds/grpc/grpc_test_util.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "certs/certs.h"

int grpc_test_failures = 0;

void grpc_test_check_contains(const char *file, int line, const char *text, const char *part) {
  if (text == NULL || strstr(text, part) == NULL) {
    fprintf(stderr, "%s:%d: expected \"%s\" in \"%s\"\n", file, line, part,
            text != NULL ? text : "(null)");
    grpc_test_failures++;
  }
}

void grpc_test_die(const char *what, const char *err) {
  fprintf(stderr, "%s: %s\n", what, err);
  exit(1);
}

static void issue(grpc_test_pki *pki, const char *cn, const char *dns, const char *ip,
                  const char *uri, X509 **out_cert, EVP_PKEY **out_key) {
  const char *dns_list[1] = {dns}, *ip_list[1] = {ip}, *uri_list[1] = {uri};
  ms_issue_request request = {
      .common_name = cn,
      .dns = dns_list,
      .dns_count = dns != NULL,
      .ips = ip_list,
      .ip_count = ip != NULL,
      .uris = uri_list,
      .uri_count = uri != NULL,
      .client = true,
      .server = true,
      .ttl_seconds = 3600,
  };
  char err[MS_ERR_LEN];
  if (ms_cert_issue(&request, pki->ca, pki->ca_key, out_cert, out_key, err, sizeof(err)) != 0)
    grpc_test_die("ms_cert_issue", err);
}

SSL_CTX *grpc_test_ctx_new(X509 *cert, EVP_PKEY *key, X509 *trusted, int verify) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  if (ctx == NULL || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
      (cert != NULL &&
       (!SSL_CTX_use_certificate(ctx, cert) || !SSL_CTX_use_PrivateKey(ctx, key))) ||
      !X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), trusted))
    grpc_test_die("SSL_CTX", "setup failed");
  SSL_CTX_set_verify(ctx, verify, NULL);
  SSL_CTX_set_info_callback(ctx, ms_tls_info_callback);
  return ctx;
}

void grpc_test_pki_init(grpc_test_pki *pki) {
  char err[MS_ERR_LEN];
  memset(pki, 0, sizeof(*pki));
  if (ms_ca_new("grpc test CA", 3600, &pki->ca, &pki->ca_key, err, sizeof(err)) != 0)
    grpc_test_die("ms_ca_new", err);
  X509 *other_ca, *server_cert, *client_cert;
  EVP_PKEY *other_key, *server_key, *client_key;
  if (ms_ca_new("another CA", 3600, &other_ca, &other_key, err, sizeof(err)) != 0)
    grpc_test_die("ms_ca_new", err);
  issue(pki, "xds-server", "localhost", "127.0.0.1", NULL, &server_cert, &server_key);
  issue(pki, "sidecar", NULL, NULL, GRPC_TEST_CLIENT_URI, &client_cert, &client_key);
  pki->server_ctx = grpc_test_ctx_new(server_cert, server_key, pki->ca,
                                      SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
  pki->client_ctx = grpc_test_ctx_new(client_cert, client_key, pki->ca, SSL_VERIFY_PEER);
  pki->anonymous_ctx = grpc_test_ctx_new(NULL, NULL, pki->ca, SSL_VERIFY_PEER);
  pki->untrusting_ctx = grpc_test_ctx_new(client_cert, client_key, other_ca, SSL_VERIFY_PEER);
  X509_free(other_ca);
  EVP_PKEY_free(other_key);
  X509_free(server_cert);
  EVP_PKEY_free(server_key);
  X509_free(client_cert);
  EVP_PKEY_free(client_key);
}

void grpc_test_pki_cleanup(grpc_test_pki *pki) {
  SSL_CTX_free(pki->server_ctx);
  SSL_CTX_free(pki->client_ctx);
  SSL_CTX_free(pki->anonymous_ctx);
  SSL_CTX_free(pki->untrusting_ctx);
  X509_free(pki->ca);
  EVP_PKEY_free(pki->ca_key);
}

static void on_deadline(uv_timer_t *timer) {
  *(bool *)timer->data = true;
}

static bool run_until(uv_loop_t *loop, const bool *flag, const int *count, int want,
                      uint64_t timeout_ms) {
  bool expired = false;
  uv_timer_t deadline;
  uv_timer_init(loop, &deadline);
  deadline.data = &expired;
  uv_timer_start(&deadline, on_deadline, timeout_ms, 0);
  while (!expired && !(flag != NULL ? *flag : *count >= want))
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&deadline, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return flag != NULL ? *flag : *count >= want;
}

bool grpc_test_run_until(uv_loop_t *loop, const bool *flag, uint64_t timeout_ms) {
  return run_until(loop, flag, NULL, 0, timeout_ms);
}

bool grpc_test_run_until_count(uv_loop_t *loop, const int *count, int want, uint64_t timeout_ms) {
  return run_until(loop, NULL, count, want, timeout_ms);
}

static void on_tick(uv_timer_t *timer) {}

bool grpc_test_run_until_done(uv_loop_t *loop, bool (*done)(void *arg), void *arg,
                              uint64_t timeout_ms) {
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, on_tick, 5, 5);
  uint64_t deadline = uv_now(loop) + timeout_ms;
  while (!done(arg) && uv_now(loop) < deadline)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return done(arg);
}

static void count_handle(uv_handle_t *handle, void *arg) {
  if (!uv_is_closing(handle)) {
    fprintf(stderr, "handle of type %s still open\n", uv_handle_type_name(handle->type));
    (*(int *)arg)++;
  }
}

void grpc_test_close_loop(uv_loop_t *loop) {
  for (int i = 0; i < 100 && uv_run(loop, UV_RUN_NOWAIT) != 0; i++)
    uv_sleep(50);
  int open = 0;
  uv_walk(loop, count_handle, &open);
  CHECK(open == 0);
  CHECK(uv_loop_close(loop) == 0);
}

int grpc_test_finish(const char *name) {
  if (ERR_peek_error() != 0) ERR_clear_error(); /* describe() drains it; others may not */
  if (grpc_test_failures > 0) {
    fprintf(stderr, "%s: %d check(s) failed\n", name, grpc_test_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

/* ---- the echo server ------------------------------------------------------ */

static void echo_message(ms_grpc_server_call *call, const uint8_t *bytes, size_t len,
                         void *user_data) {
  char text[256];
  size_t n = len < sizeof(text) - 1 ? len : sizeof(text) - 1;
  memcpy(text, bytes, n);
  text[n] = '\0';
  if (strncmp(text, "finish:", 7) == 0) {
    char *end = NULL;
    long status = strtol(text + 7, &end, 10);
    ms_grpc_server_call_finish(call, (int)status, *end == ':' ? end + 1 : "");
  } else if (strcmp(text, "identity") == 0) {
    const ms_grpc_peer *peer = ms_grpc_server_call_peer(call);
    const char *uri = "none";
    for (size_t i = 0; i < peer->certificate_info.san_count; i++)
      if (strncmp(peer->certificate_info.sans[i], "URI:", 4) == 0)
        uri = peer->certificate_info.sans[i] + 4;
    ms_grpc_server_call_send(call, (const uint8_t *)uri, strlen(uri));
  } else if (strncmp(text, "big:", 4) == 0) {
    size_t size = strtoul(text + 4, NULL, 10);
    uint8_t *big = malloc(size);
    memset(big, 'x', size);
    ms_grpc_server_call_send(call, big, size);
    free(big);
  } else {
    CHECK(ms_grpc_server_call_send(call, bytes, len) == 0);
  }
}

static void echo_half_close(ms_grpc_server_call *call, void *user_data) {
  CHECK(ms_grpc_server_call_finish(call, MS_GRPC_OK, "bye") == 0);
}

static void echo_cancel(ms_grpc_server_call *call, void *user_data) {
  grpc_test_server *server = user_data;
  server->cancels++;
}

static const ms_grpc_server_call_callbacks echo_handler = {
    .on_message = echo_message,
    .on_half_close = echo_half_close,
    .on_cancel = echo_cancel,
};

static int echo_on_call(ms_grpc_server_call *call, const char *method, const ms_grpc_peer *peer,
                        void *arg) {
  grpc_test_server *server = arg;
  if (strcmp(method, "/test.Echo/Bidi") != 0) return MS_GRPC_UNIMPLEMENTED;
  server->calls++;
  server->last_uri[0] = '\0';
  for (size_t i = 0; i < peer->certificate_info.san_count; i++)
    if (strncmp(peer->certificate_info.sans[i], "URI:", 4) == 0)
      snprintf(server->last_uri, sizeof(server->last_uri), "%s",
               peer->certificate_info.sans[i] + 4);
  CHECK(peer->certificate != NULL);
  CHECK_CONTAINS(peer->address, "127.0.0.1:");
  ms_grpc_server_call_set_handler(call, &echo_handler, server);
  return MS_GRPC_OK;
}

static void echo_connection_closed(ms_grpc_server *grpc_server, const ms_grpc_peer *peer,
                                   const char *reason, void *arg) {
  grpc_test_server *server = arg;
  server->connections_closed++;
  snprintf(server->last_reason, sizeof(server->last_reason), "%s", reason);
}

void grpc_test_server_start(grpc_test_server *server, uv_loop_t *loop, SSL_CTX *ctx,
                            size_t max_message_bytes) {
  ms_grpc_server_options options = {
      .address = "127.0.0.1:0",
      .ssl_ctx = ctx,
      .max_message_bytes = max_message_bytes,
      .max_concurrent_streams = 1000, /* grpc_scale_test: 1,000 per channel */
  };
  grpc_test_server_start_with(server, loop, &options);
}

void grpc_test_server_start_with(grpc_test_server *server, uv_loop_t *loop,
                                 const ms_grpc_server_options *options) {
  memset(server, 0, sizeof(*server));
  ms_grpc_server_callbacks callbacks = {
      .on_call = echo_on_call,
      .on_connection_closed = echo_connection_closed,
  };
  int rc = ms_grpc_server_new(loop, options, &callbacks, server, &server->server);
  if (rc != 0) grpc_test_die("ms_grpc_server_new", uv_strerror(rc));
  server->port = ms_grpc_server_port(server->server);
}

/* ---- client helpers ------------------------------------------------------- */

static void record_message(ms_grpc_call *call, const uint8_t *bytes, size_t len, void *arg) {
  grpc_test_call *record = arg;
  record->messages++;
  record->bytes += len;
  size_t n = len < sizeof(record->last) - 1 ? len : sizeof(record->last) - 1;
  memcpy(record->last, bytes, n);
  record->last[n] = '\0';
  if (record->echo_back) CHECK(ms_grpc_call_send(call, bytes, len) == 0);
}

static void record_close(ms_grpc_call *call, int status, const char *message, void *arg) {
  grpc_test_call *record = arg;
  CHECK(!record->closed); /* exactly once */
  record->closed = true;
  record->status = status;
  record->call = NULL;
  snprintf(record->message, sizeof(record->message), "%s", message);
}

static const ms_grpc_call_callbacks record_callbacks = {
    .on_message = record_message,
    .on_close = record_close,
};

void grpc_test_call_start(ms_grpc_channel *channel, const char *path, grpc_test_call *record) {
  int rc = ms_grpc_call_start(channel, path, &record_callbacks, record, &record->call);
  if (rc != 0) grpc_test_die("ms_grpc_call_start", uv_strerror(rc));
}

static void record_state(ms_grpc_channel *channel, ms_grpc_channel_state state, const char *reason,
                         void *arg) {
  grpc_test_channel_state *record = arg;
  record->state = state;
  if (state == MS_GRPC_CHANNEL_READY) record->ready = true;
  if (state == MS_GRPC_CHANNEL_CLOSED) {
    CHECK(!record->closed);
    record->closed = true;
    snprintf(record->reason, sizeof(record->reason), "%s", reason ? reason : "(null)");
  }
}

ms_grpc_channel *grpc_test_channel_new(uv_loop_t *loop, SSL_CTX *ctx, uint16_t port,
                                       size_t max_message_bytes, grpc_test_channel_state *state) {
  char address[32];
  snprintf(address, sizeof(address), "127.0.0.1:%u", port);
  memset(state, 0, sizeof(*state));
  ms_grpc_channel_options options = {
      .address = address,
      .ssl_ctx = ctx,
      .server_name = "localhost",
      .max_message_bytes = max_message_bytes,
      .connect_timeout_ms = 5000,
  };
  ms_grpc_channel_callbacks callbacks = {.on_state = record_state};
  ms_grpc_channel *channel = NULL;
  int rc = ms_grpc_channel_new(loop, &options, &callbacks, state, &channel);
  if (rc != 0) grpc_test_die("ms_grpc_channel_new", uv_strerror(rc));
  return channel;
}
