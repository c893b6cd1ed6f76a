/* grpc_scale_test.c: 10,000 concurrent streams in one process (10 channels
 * of 1,000), each open at once and answered, then all finished; prints the
 * heap held per open stream (client and server sides together). */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "xds/grpc/grpc_test_util.h"

#define BIDI "/test.Echo/Bidi"
#define CHANNELS 10
#define PER_CHANNEL 1000
#define STREAMS (CHANNELS * PER_CHANNEL)
#define TIMEOUT_MS 60000

typedef struct counters {
  int echoed, closed, ok;
} counters;

static void on_message(ms_grpc_call *call, const uint8_t *bytes, size_t len, void *arg) {
  ((counters *)arg)->echoed++;
}

static void on_close(ms_grpc_call *call, int status, const char *message, void *arg) {
  counters *c = arg;
  c->closed++;
  c->ok += status == MS_GRPC_OK;
}

static const ms_grpc_call_callbacks callbacks = {.on_message = on_message, .on_close = on_close};

int main(void) {
  grpc_test_pki pki;
  uv_loop_t loop;
  grpc_test_server server;
  grpc_test_pki_init(&pki);
  uv_loop_init(&loop);
  grpc_test_server_start(&server, &loop, pki.server_ctx, 0);

  ms_grpc_channel *channels[CHANNELS];
  grpc_test_channel_state states[CHANNELS];
  for (int i = 0; i < CHANNELS; i++) {
    channels[i] = grpc_test_channel_new(&loop, pki.client_ctx, server.port, 0, &states[i]);
    CHECK(grpc_test_run_until(&loop, &states[i].ready, TIMEOUT_MS));
  }
  size_t heap_before = mallinfo2().uordblks;

  static ms_grpc_call *calls[STREAMS];
  counters counts = {0};
  for (int i = 0; i < STREAMS; i++) {
    CHECK(ms_grpc_call_start(channels[i % CHANNELS], BIDI, &callbacks, &counts, &calls[i]) == 0);
    CHECK(ms_grpc_call_send(calls[i], (const uint8_t *)"hi", 2) == 0);
  }
  CHECK(grpc_test_run_until_count(&loop, &counts.echoed, STREAMS, TIMEOUT_MS));
  CHECK(server.calls == STREAMS);
  CHECK(counts.closed == 0);
  size_t heap_open = mallinfo2().uordblks;
  if (heap_open > heap_before)
    printf(
        "grpc_scale_test: %d open streams hold %zu bytes of heap: %zu bytes per stream "
        "(client and server together)\n",
        STREAMS, heap_open - heap_before, (heap_open - heap_before) / STREAMS);

  for (int i = 0; i < STREAMS; i++)
    ms_grpc_call_close_send(calls[i]);
  CHECK(grpc_test_run_until_count(&loop, &counts.closed, STREAMS, TIMEOUT_MS));
  CHECK(counts.ok == STREAMS);
  for (int i = 0; i < CHANNELS; i++) {
    CHECK(!states[i].closed);
    ms_grpc_channel_close(channels[i]);
  }
  ms_grpc_server_close(server.server);
  grpc_test_close_loop(&loop);
  grpc_test_pki_cleanup(&pki);
  return grpc_test_finish("grpc_scale_test");
}
