/* grpc_test_util.h: fixtures for the //xds/grpc tests: a CA made at test
 * time, server and client contexts, a bounded loop runner, a tiny check
 * macro. Test-only. */
#ifndef MS_GRPC_TEST_UTIL_H
#define MS_GRPC_TEST_UTIL_H

#include <stdbool.h>
#include <stdio.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "xds/grpc/grpc.h"

extern int grpc_test_failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      grpc_test_failures++;                                                    \
    }                                                                          \
  } while (0)

#define CHECK_CONTAINS(text, part) grpc_test_check_contains(__FILE__, __LINE__, (text), (part))

void grpc_test_check_contains(const char *file, int line, const char *text, const char *part);

/* grpc_test_die prints "WHAT: ERR" and ends the test process with status 1:
 * for fixtures that cannot be made, where no check makes sense. */
void grpc_test_die(const char *what, const char *err);

/* The URI SAN of the client certificate. */
#define GRPC_TEST_CLIENT_URI "spiffe://test.local/ns/default/sa/sidecar"

/* Contexts made at test time from one CA. */
typedef struct grpc_test_pki {
  X509 *ca;
  EVP_PKEY *ca_key;
  SSL_CTX *server_ctx;     /* localhost / 127.0.0.1; requires a client certificate */
  SSL_CTX *client_ctx;     /* presents GRPC_TEST_CLIENT_URI; verifies the server */
  SSL_CTX *anonymous_ctx;  /* verifies the server, presents nothing */
  SSL_CTX *untrusting_ctx; /* presents the client certificate, trusts another CA */
} grpc_test_pki;

void grpc_test_pki_init(grpc_test_pki *pki);

/* grpc_test_ctx_new returns a new TLS 1.2+ context that presents `cert` and
 * `key` (both NULL: nothing), trusts `trusted` and verifies with `verify`
 * (SSL_VERIFY_*); it records alerts with ms_tls_info_callback. Dies on
 * failure. The caller owns the context; `cert`, `key` and `trusted` stay
 * the caller's. */
SSL_CTX *grpc_test_ctx_new(X509 *cert, EVP_PKEY *key, X509 *trusted, int verify);
void grpc_test_pki_cleanup(grpc_test_pki *pki);

/* grpc_test_run_until runs `loop` until *flag is true or `timeout_ms`
 * passes. Returns whether the flag came true. */
bool grpc_test_run_until(uv_loop_t *loop, const bool *flag, uint64_t timeout_ms);

/* grpc_test_run_until_count: the same for *count >= want. */
bool grpc_test_run_until_count(uv_loop_t *loop, const int *count, int want, uint64_t timeout_ms);

/* grpc_test_run_until_done: the same until done(arg) is true, checked
 * after each turn of the loop (a short repeating timer makes it turn). */
bool grpc_test_run_until_done(uv_loop_t *loop, bool (*done)(void *arg), void *arg,
                              uint64_t timeout_ms);

/* grpc_test_close_loop runs the loop until every handle is closed (at most
 * 5 s) and checks that it closes cleanly. */
void grpc_test_close_loop(uv_loop_t *loop);

/* An echo server on 127.0.0.1:0 serving "/test.Echo/Bidi": each message
 * comes back, except "finish:N:text" (finishes with status N and text),
 * "identity" (answers the client certificate's first URI SAN) and "big:N"
 * (answers N bytes of 'x'); a half-close finishes with OK "bye". Any other
 * method is UNIMPLEMENTED. */
typedef struct grpc_test_server {
  ms_grpc_server *server;
  uint16_t port;
  int calls, cancels, connections_closed;
  char last_uri[256];     /* the URI SAN on_call saw last */
  char last_reason[1024]; /* of on_connection_closed */
} grpc_test_server;

void grpc_test_server_start(grpc_test_server *server, uv_loop_t *loop, SSL_CTX *ctx,
                            size_t max_message_bytes);

/* grpc_test_server_start_with starts the echo server with `options`
 * (address and ssl_ctx included). */
void grpc_test_server_start_with(grpc_test_server *server, uv_loop_t *loop,
                                 const ms_grpc_server_options *options);

/* What a client call received. */
typedef struct grpc_test_call {
  ms_grpc_call *call;
  int messages;
  size_t bytes;
  char last[256]; /* the start of the last message, NUL-terminated */
  bool closed;
  int status;
  char message[256];
  bool echo_back; /* send every message received back (ping-pong) */
} grpc_test_call;

/* grpc_test_call_start starts a call recording into `record`; exits on
 * failure. */
void grpc_test_call_start(ms_grpc_channel *channel, const char *path, grpc_test_call *record);

/* grpc_test_channel_new opens a channel to 127.0.0.1:port, server name
 * "localhost"; exits on failure. `state` receives changes, `reason` the
 * CLOSED reason (may be NULL). */
typedef struct grpc_test_channel_state {
  ms_grpc_channel_state state;
  bool ready, closed;
  char reason[1024];
} grpc_test_channel_state;

ms_grpc_channel *grpc_test_channel_new(uv_loop_t *loop, SSL_CTX *ctx, uint16_t port,
                                       size_t max_message_bytes, grpc_test_channel_state *state);

/* grpc_test_finish prints the summary and returns the exit code. */
int grpc_test_finish(const char *name);

#endif
