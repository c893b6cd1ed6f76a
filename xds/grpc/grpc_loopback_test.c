/* grpc_loopback_test.c: our client against our server over mutual TLS on
 * loopback, in one process: streaming both ways, large and over-limit
 * messages, statuses and messages, unknown methods, cancellation, closing
 * with calls open, 200 concurrent streams. */
#include <stdlib.h>
#include <string.h>

#include "xds/grpc/grpc_test_util.h"

#define BIDI "/test.Echo/Bidi"
#define TIMEOUT_MS 10000

static grpc_test_pki pki;
static uv_loop_t loop;
static grpc_test_server server;

static void send_text(ms_grpc_call *call, const char *text) {
  CHECK(ms_grpc_call_send(call, (const uint8_t *)text, strlen(text)) == 0);
}

static void test_ready_and_streaming(ms_grpc_channel *channel, grpc_test_channel_state *state) {
  CHECK(grpc_test_run_until(&loop, &state->ready, TIMEOUT_MS));
  CHECK(ms_grpc_channel_get_state(channel) == MS_GRPC_CHANNEL_READY);

  /* Many messages of many sizes both ways, then a half-close. */
  grpc_test_call call = {0};
  grpc_test_call_start(channel, BIDI, &call);
  size_t sent_bytes = 0;
  uint8_t payload[70000];
  for (size_t i = 0; i < sizeof(payload); i++)
    payload[i] = (uint8_t)(i * 7);
  for (int i = 0; i < 300; i++) {
    size_t len = (size_t)(i * 233) % sizeof(payload);
    CHECK(ms_grpc_call_send(call.call, payload, len) == 0);
    sent_bytes += len;
  }
  send_text(call.call, "last one");
  sent_bytes += 8;
  CHECK(grpc_test_run_until_count(&loop, &call.messages, 301, TIMEOUT_MS));
  CHECK(call.bytes == sent_bytes);
  CHECK(strcmp(call.last, "last one") == 0);
  CHECK(!call.closed);
  ms_grpc_call_close_send(call.call);
  CHECK(grpc_test_run_until(&loop, &call.closed, TIMEOUT_MS));
  CHECK(call.status == MS_GRPC_OK);
  CHECK(strcmp(call.message, "bye") == 0);

  /* Ping-pong: the client answers each echo until 500 round trips. */
  grpc_test_call pong = {.echo_back = true};
  grpc_test_call_start(channel, BIDI, &pong);
  send_text(pong.call, "ping");
  CHECK(grpc_test_run_until_count(&loop, &pong.messages, 500, TIMEOUT_MS));
  ms_grpc_call_cancel(pong.call);
  CHECK(pong.closed && pong.status == MS_GRPC_CANCELLED);
}

static void test_large_and_over_limit(ms_grpc_channel *channel) {
  /* 1 MiB each way. */
  grpc_test_call big = {0};
  grpc_test_call_start(channel, BIDI, &big);
  size_t mib = 1 << 20;
  uint8_t *data = malloc(mib);
  memset(data, 'm', mib);
  CHECK(ms_grpc_call_send(big.call, data, mib) == 0);
  ms_grpc_call_close_send(big.call);
  CHECK(grpc_test_run_until(&loop, &big.closed, TIMEOUT_MS));
  CHECK(big.messages == 1 && big.bytes == mib);
  CHECK(big.status == MS_GRPC_OK);

  /* Over the server's limit (2 MiB): RESOURCE_EXHAUSTED, the handler is
   * told. */
  int cancels = server.cancels;
  grpc_test_call over = {0};
  grpc_test_call_start(channel, BIDI, &over);
  uint8_t *huge = malloc(3 * mib);
  memset(huge, 'h', 3 * mib);
  CHECK(ms_grpc_call_send(over.call, huge, 3 * mib) == 0);
  CHECK(grpc_test_run_until(&loop, &over.closed, TIMEOUT_MS));
  CHECK(over.status == MS_GRPC_RESOURCE_EXHAUSTED);
  CHECK_CONTAINS(over.message, "larger than the limit");
  CHECK(server.cancels == cancels + 1);
  free(huge);
  free(data);
}

static void test_client_limit(void) {
  /* Over the client's limit (64 KiB): the client cancels with
   * RESOURCE_EXHAUSTED and the server's handler hears of it. */
  grpc_test_channel_state state;
  ms_grpc_channel *small = grpc_test_channel_new(&loop, pki.client_ctx, server.port, 65536, &state);
  grpc_test_call call = {0};
  grpc_test_call_start(small, BIDI, &call);
  send_text(call.call, "big:65536");
  CHECK(grpc_test_run_until_count(&loop, &call.messages, 1, TIMEOUT_MS));
  int cancels = server.cancels;
  send_text(call.call, "big:65537");
  CHECK(grpc_test_run_until(&loop, &call.closed, TIMEOUT_MS));
  CHECK(call.status == MS_GRPC_RESOURCE_EXHAUSTED);
  CHECK_CONTAINS(call.message, "65537");
  CHECK(grpc_test_run_until_count(&loop, &server.cancels, cancels + 1, TIMEOUT_MS));
  CHECK(state.ready && !state.closed);
  ms_grpc_channel_close(small);
}

static void test_statuses(ms_grpc_channel *channel) {
  grpc_test_call call = {0};
  grpc_test_call_start(channel, BIDI, &call);
  send_text(call.call, "hello");
  send_text(call.call, "finish:7:denied, 100% sure \xc3\xa9");
  CHECK(grpc_test_run_until(&loop, &call.closed, TIMEOUT_MS));
  CHECK(call.messages == 1);
  CHECK(call.status == MS_GRPC_PERMISSION_DENIED);
  CHECK(strcmp(call.message, "denied, 100% sure \xc3\xa9") == 0);

  /* Finishing before any message: a trailers-only response. */
  grpc_test_call only = {0};
  grpc_test_call_start(channel, BIDI, &only);
  send_text(only.call, "finish:5:");
  CHECK(grpc_test_run_until(&loop, &only.closed, TIMEOUT_MS));
  CHECK(only.status == MS_GRPC_NOT_FOUND && only.messages == 0);
  CHECK(strcmp(only.message, "") == 0);

  grpc_test_call unknown = {0};
  grpc_test_call_start(channel, "/test.Echo/Nope", &unknown);
  CHECK(grpc_test_run_until(&loop, &unknown.closed, TIMEOUT_MS));
  CHECK(unknown.status == MS_GRPC_UNIMPLEMENTED);
  CHECK_CONTAINS(unknown.message, "/test.Echo/Nope");

  /* The server saw who called. */
  grpc_test_call who = {0};
  grpc_test_call_start(channel, BIDI, &who);
  send_text(who.call, "identity");
  CHECK(grpc_test_run_until_count(&loop, &who.messages, 1, TIMEOUT_MS));
  CHECK(strcmp(who.last, GRPC_TEST_CLIENT_URI) == 0);
  CHECK(strcmp(server.last_uri, GRPC_TEST_CLIENT_URI) == 0);
  ms_grpc_call_close_send(who.call);
  CHECK(grpc_test_run_until(&loop, &who.closed, TIMEOUT_MS));
  CHECK(who.status == MS_GRPC_OK);
}

static void test_cancel(ms_grpc_channel *channel) {
  grpc_test_call call = {0};
  grpc_test_call_start(channel, BIDI, &call);
  send_text(call.call, "one");
  CHECK(grpc_test_run_until_count(&loop, &call.messages, 1, TIMEOUT_MS));
  int cancels = server.cancels;
  ms_grpc_call_cancel(call.call);
  CHECK(call.closed); /* before cancel returned */
  CHECK(call.status == MS_GRPC_CANCELLED);
  CHECK(grpc_test_run_until_count(&loop, &server.cancels, cancels + 1, TIMEOUT_MS));

  /* Cancelled before its HEADERS left. */
  grpc_test_call early = {0};
  grpc_test_call_start(channel, BIDI, &early);
  ms_grpc_call_cancel(early.call);
  CHECK(early.closed && early.status == MS_GRPC_CANCELLED);

  /* The channel still works. */
  grpc_test_call after = {0};
  grpc_test_call_start(channel, BIDI, &after);
  ms_grpc_call_close_send(after.call);
  CHECK(grpc_test_run_until(&loop, &after.closed, TIMEOUT_MS));
  CHECK(after.status == MS_GRPC_OK);
}

static void test_concurrent(ms_grpc_channel *channel) {
  enum { CALLS = 200, EACH = 5 };
  static grpc_test_call calls[CALLS];
  int before = server.calls;
  for (int i = 0; i < CALLS; i++) {
    grpc_test_call_start(channel, BIDI, &calls[i]);
    for (int m = 0; m < EACH; m++) {
      char text[48];
      snprintf(text, sizeof(text), "call %d message %d", i, m);
      send_text(calls[i].call, text);
    }
  }
  /* All open at once: each has had its echoes before any is closed. */
  int closed = 0;
  for (int i = 0; i < CALLS; i++) {
    CHECK(grpc_test_run_until_count(&loop, &calls[i].messages, EACH, TIMEOUT_MS));
  }
  CHECK(server.calls == before + CALLS);
  for (int i = 0; i < CALLS; i++)
    ms_grpc_call_close_send(calls[i].call);
  for (int i = 0; i < CALLS; i++) {
    CHECK(grpc_test_run_until(&loop, &calls[i].closed, TIMEOUT_MS));
    char want[48];
    snprintf(want, sizeof(want), "call %d message %d", i, EACH - 1);
    CHECK(strcmp(calls[i].last, want) == 0);
    closed += calls[i].status == MS_GRPC_OK;
  }
  CHECK(closed == CALLS);
}

static void test_closing_with_calls_open(void) {
  /* The channel closes: its calls end with CANCELLED before close returns. */
  grpc_test_channel_state state;
  ms_grpc_channel *channel = grpc_test_channel_new(&loop, pki.client_ctx, server.port, 0, &state);
  grpc_test_call call = {0};
  grpc_test_call_start(channel, BIDI, &call);
  send_text(call.call, "x");
  CHECK(grpc_test_run_until_count(&loop, &call.messages, 1, TIMEOUT_MS));
  int cancels = server.cancels;
  ms_grpc_channel_close(channel);
  CHECK(call.closed && call.status == MS_GRPC_CANCELLED);
  CHECK(!state.closed); /* a close we asked for is not reported */
  CHECK(grpc_test_run_until_count(&loop, &server.cancels, cancels + 1, TIMEOUT_MS));

  /* The server closes: the client's calls end UNAVAILABLE, the channel
   * reports CLOSED, the handlers on_cancel before close returns. */
  channel = grpc_test_channel_new(&loop, pki.client_ctx, server.port, 0, &state);
  grpc_test_call a = {0}, b = {0};
  grpc_test_call_start(channel, BIDI, &a);
  grpc_test_call_start(channel, BIDI, &b);
  send_text(a.call, "a");
  send_text(b.call, "b");
  CHECK(grpc_test_run_until_count(&loop, &b.messages, 1, TIMEOUT_MS));
  CHECK(grpc_test_run_until_count(&loop, &a.messages, 1, TIMEOUT_MS));
  cancels = server.cancels;
  ms_grpc_server_close(server.server);
  CHECK(server.cancels == cancels + 2);
  CHECK(grpc_test_run_until(&loop, &state.closed, TIMEOUT_MS));
  CHECK(a.closed && a.status == MS_GRPC_UNAVAILABLE);
  CHECK(b.closed && b.status == MS_GRPC_UNAVAILABLE);
  CHECK_CONTAINS(state.reason, "127.0.0.1");
  grpc_test_call late = {0};
  CHECK(ms_grpc_call_start(channel, BIDI, &(ms_grpc_call_callbacks){.on_close = NULL}, NULL,
                           &late.call) == UV_EINVAL);
  ms_grpc_channel_close(channel);
}

int main(void) {
  grpc_test_pki_init(&pki);
  uv_loop_init(&loop);
  grpc_test_server_start(&server, &loop, pki.server_ctx, 2 << 20);

  grpc_test_channel_state state;
  ms_grpc_channel *channel = grpc_test_channel_new(&loop, pki.client_ctx, server.port, 0, &state);
  test_ready_and_streaming(channel, &state);
  test_large_and_over_limit(channel);
  test_client_limit();
  test_statuses(channel);
  test_cancel(channel);
  test_concurrent(channel);
  CHECK(!state.closed);
  ms_grpc_channel_close(channel);
  test_closing_with_calls_open();

  grpc_test_close_loop(&loop);
  grpc_test_pki_cleanup(&pki);
  return grpc_test_finish("grpc_loopback_test");
}
