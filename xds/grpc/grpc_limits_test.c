/* grpc_limits_test.c: the server's limits (grpc.h, ms_grpc_server_options)
 * against our own client on loopback, one behaviour each, every refusal
 * counted in ms_grpc_server_stats, and after each a well-formed client
 * served:
 *   - connections per IP address and in total: refused right after accept;
 *   - 1,000 streams opened at once on one connection: 100 served, the rest
 *     refused with REFUSED_STREAM (UNAVAILABLE for the client);
 *   - unfinished messages past the connection's budget: GOAWAY;
 *   - responses queued past the connection's bound: the send fails with
 *     UV_ENOBUFS and the connection closes. */
#include <stdlib.h>
#include <string.h>

#include "xds/grpc/grpc_internal.h"
#include "xds/grpc/grpc_test_util.h"

#define BIDI "/test.Echo/Bidi"
#define TIMEOUT_MS 10000

static grpc_test_pki pki;
static uv_loop_t loop;

static void start_server(grpc_test_server *server, ms_grpc_server_options options) {
  options.address = "127.0.0.1:0";
  options.ssl_ctx = pki.server_ctx;
  grpc_test_server_start_with(server, &loop, &options);
}

static ms_grpc_server_stats stats_of(const grpc_test_server *server) {
  ms_grpc_server_stats stats;
  ms_grpc_server_get_stats(server->server, &stats);
  return stats;
}

/* A new channel gets an echo: the server still serves. */
static void check_served(const grpc_test_server *server) {
  grpc_test_channel_state state;
  ms_grpc_channel *channel = grpc_test_channel_new(&loop, pki.client_ctx, server->port, 0, &state);
  grpc_test_call call = {0};
  grpc_test_call_start(channel, BIDI, &call);
  CHECK(ms_grpc_call_send(call.call, (const uint8_t *)"still there?", 12) == 0);
  CHECK(grpc_test_run_until_count(&loop, &call.messages, 1, TIMEOUT_MS));
  CHECK(strcmp(call.last, "still there?") == 0);
  ms_grpc_channel_close(channel);
}

static void test_connection_limits(void) {
  grpc_test_server server;
  start_server(&server, (ms_grpc_server_options){.max_connections_per_peer = 3});
  grpc_test_channel_state states[5];
  ms_grpc_channel *channels[5];
  for (int i = 0; i < 5; i++) {
    channels[i] = grpc_test_channel_new(&loop, pki.client_ctx, server.port, 0, &states[i]);
    /* One at a time: which ones are refused is then known. */
    CHECK(grpc_test_run_until(&loop, i < 3 ? &states[i].ready : &states[i].closed, TIMEOUT_MS));
  }
  ms_grpc_server_stats stats = stats_of(&server);
  CHECK(stats.max_connections_per_peer == 3);
  CHECK(stats.connections == 3);
  CHECK(stats.connections_accepted == 3);
  CHECK(stats.connections_refused_per_peer == 2);
  CHECK(stats.connections_refused == 0);
  /* One leaves: there is room again. */
  ms_grpc_channel_close(channels[0]);
  for (int i = 0; i < 20 && stats_of(&server).connections > 2; i++)
    uv_run(&loop, UV_RUN_ONCE);
  check_served(&server);
  for (int i = 1; i < 5; i++)
    ms_grpc_channel_close(channels[i]);
  ms_grpc_server_close(server.server);

  start_server(&server, (ms_grpc_server_options){.max_connections = 2});
  for (int i = 0; i < 3; i++) {
    channels[i] = grpc_test_channel_new(&loop, pki.client_ctx, server.port, 0, &states[i]);
    CHECK(grpc_test_run_until(&loop, i < 2 ? &states[i].ready : &states[i].closed, TIMEOUT_MS));
  }
  stats = stats_of(&server);
  CHECK(stats.connections == 2);
  CHECK(stats.connections_refused == 1);
  CHECK(stats.connections_refused_per_peer == 0);
  for (int i = 0; i < 3; i++)
    ms_grpc_channel_close(channels[i]);
  ms_grpc_server_close(server.server);
}

/* A client that ignores SETTINGS_MAX_CONCURRENT_STREAMS: an nghttp2 session
 * that assumes the server allows 100,000 streams, over the same TLS pump as
 * ours (grpc_internal.h), that submits its requests before the handshake is
 * over, so that they all leave in its first flight. */
typedef struct greedy_client {
  ms_grpc_io io; /* first: the session's user_data */
  int ok, refused, other;
  bool done;
} greedy_client;

static void greedy_open(ms_grpc_io *io) {}
static void greedy_error(ms_grpc_io *io, const char *reason) {}
static void greedy_closed(ms_grpc_io *io) {
  ((greedy_client *)io)->done = true;
}

static const ms_grpc_io_callbacks greedy_io = {
    .on_open = greedy_open, .on_error = greedy_error, .on_closed = greedy_closed};

static int greedy_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                               void *user_data) {
  greedy_client *client = user_data;
  if (error_code == NGHTTP2_REFUSED_STREAM)
    client->refused++;
  else if (error_code == NGHTTP2_NO_ERROR)
    client->ok++;
  else
    client->other++;
  return 0;
}

static void greedy_start(greedy_client *client, uint16_t port, int streams) {
  nghttp2_session_callbacks *callbacks;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, greedy_stream_close);
  nghttp2_option *option;
  nghttp2_option_new(&option);
  nghttp2_option_set_peer_max_concurrent_streams(option, 100000);
  nghttp2_session *session;
  CHECK(nghttp2_session_client_new2(&session, callbacks, client, option) == 0);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  CHECK(ms_grpc_h2_settings(session, false, 0) == 0);
  static const char *const names[] = {":method",    ":scheme",      ":path",
                                      ":authority", "content-type", "te"};
  static const char *const values[] = {"POST",    "https", BIDI, "localhost", "application/grpc",
                                       "trailers"};
  nghttp2_nv headers[6];
  for (int i = 0; i < 6; i++)
    headers[i] = (nghttp2_nv){(uint8_t *)names[i], (uint8_t *)values[i], strlen(names[i]),
                              strlen(values[i]), NGHTTP2_NV_FLAG_NONE};
  /* No body: END_STREAM on the HEADERS, and the echo server answers "bye". */
  for (int i = 0; i < streams; i++)
    CHECK(nghttp2_submit_request(session, NULL, headers, 6, NULL, NULL) > 0);
  SSL *ssl = SSL_new(pki.client_ctx);
  static const uint8_t alpn[] = {2, 'h', '2'};
  SSL_set_connect_state(ssl);
  CHECK(SSL_set_alpn_protos(ssl, alpn, sizeof(alpn)) == 0);
  ms_grpc_io_init(&client->io, &loop, ssl, session, &greedy_io);
  struct sockaddr_storage address;
  memset(&address, 0, sizeof(address));
  uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&address);
  ms_grpc_io_connect(&client->io, &address, 1);
}

static void test_stream_limit(void) {
  grpc_test_server server;
  start_server(&server, (ms_grpc_server_options){0}); /* the default: 100 */
  CHECK(stats_of(&server).max_concurrent_streams == 100);
  static greedy_client client;
  memset(&client, 0, sizeof(client));
  greedy_start(&client, server.port, 1000);
  for (int i = 0; i < 200 && client.ok + client.refused + client.other < 1000 && !client.done; i++)
    uv_run(&loop, UV_RUN_ONCE);
  ms_grpc_server_stats stats = stats_of(&server);
  printf("streams: %d served, %d refused, %d otherwise (server counted %llu refused)\n", client.ok,
         client.refused, client.other, (unsigned long long)stats.streams_refused);
  CHECK(client.ok >= 100);
  CHECK(client.refused >= 1);
  CHECK(client.ok + client.refused == 1000);
  CHECK(stats.streams_refused == (uint64_t)client.refused);
  CHECK(server.calls == client.ok);
  check_served(&server);
  ms_grpc_io_close(&client.io);
  CHECK(grpc_test_run_until(&loop, &client.done, TIMEOUT_MS));
  ms_grpc_server_close(server.server);
}

static void test_buffered_limit(void) {
  grpc_test_server server;
  start_server(&server, (ms_grpc_server_options){.max_buffered_bytes = 256 << 10});
  grpc_test_channel_state state;
  ms_grpc_channel *channel = grpc_test_channel_new(&loop, pki.client_ctx, server.port, 0, &state);
  CHECK(grpc_test_run_until(&loop, &state.ready, TIMEOUT_MS));
  /* Three 1 MiB messages at once: within the message limit (4 MiB), but
   * while they arrive the connection holds more than 256 KiB of them. */
  size_t mib = 1 << 20;
  uint8_t *data = calloc(1, mib);
  grpc_test_call calls[3] = {{0}};
  for (int i = 0; i < 3; i++) {
    grpc_test_call_start(channel, BIDI, &calls[i]);
    CHECK(ms_grpc_call_send(calls[i].call, data, mib) == 0);
  }
  free(data);
  /* The GOAWAY (ENHANCE_YOUR_CALM) is best effort: the server closes with
   * the client's data unread, and the reset may overtake it. */
  CHECK(grpc_test_run_until(&loop, &state.closed, TIMEOUT_MS));
  CHECK(grpc_test_run_until_count(&loop, &server.connections_closed, 1, TIMEOUT_MS));
  CHECK_CONTAINS(server.last_reason, "bytes of unfinished messages, over the limit of 262144");
  ms_grpc_server_stats stats = stats_of(&server);
  CHECK(stats.closed_over_buffered == 1);
  CHECK(stats.buffered_bytes == 0);
  CHECK(server.cancels == 3);
  check_served(&server);
  ms_grpc_channel_close(channel);
  ms_grpc_server_close(server.server);
}

static void test_queued_limit(void) {
  grpc_test_server server;
  start_server(&server, (ms_grpc_server_options){.max_queued_bytes = 4 << 20});
  grpc_test_channel_state state;
  ms_grpc_channel *channel = grpc_test_channel_new(&loop, pki.client_ctx, server.port, 0, &state);
  CHECK(grpc_test_run_until(&loop, &state.ready, TIMEOUT_MS));
  /* 20 requests for 1 MB each arrive together: the answers pile up faster
   * than the socket takes them. */
  grpc_test_call call = {0};
  grpc_test_call_start(channel, BIDI, &call);
  for (int i = 0; i < 20; i++)
    CHECK(ms_grpc_call_send(call.call, (const uint8_t *)"big:1000000", 11) == 0);
  CHECK(grpc_test_run_until(&loop, &state.closed, TIMEOUT_MS));
  CHECK(grpc_test_run_until_count(&loop, &server.connections_closed, 1, TIMEOUT_MS));
  CHECK_CONTAINS(server.last_reason, "does not read");
  ms_grpc_server_stats stats = stats_of(&server);
  CHECK(stats.closed_over_queued == 1);
  CHECK(stats.queued_bytes == 0);
  CHECK(call.bytes < 5 * 1000000);
  check_served(&server);
  ms_grpc_channel_close(channel);
  ms_grpc_server_close(server.server);
}

int main(void) {
  grpc_test_pki_init(&pki);
  uv_loop_init(&loop);
  test_connection_limits();
  test_stream_limit();
  test_buffered_limit();
  test_queued_limit();
  grpc_test_close_loop(&loop);
  grpc_test_pki_cleanup(&pki);
  return grpc_test_finish("grpc_limits_test");
}
