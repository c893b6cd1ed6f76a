/* ads_client_test.c: the ADS client's parts that need no server: the
 * reconnect backoff and its jitter bounds, DiscoveryRequest encoding (node,
 * names, NACK), the per-type state through subscribe, ACK, NACK and a new
 * stream; and the client's life without a server: bad options, closing at
 * once, failing attempts with growing delays, closing from a callback. The
 * exchange with a real server is //xds/ads:ads_client_node_test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "xds/ads/ads_client.h"
#include "xds/ads/ads_client_state.h"
#include "xds/proto/type_urls.h"

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

#define CHECK_STR(a, b) CHECK((a) != NULL && strcmp((a), (b)) == 0)

/* ---- backoff ---------------------------------------------------------------- */

static void test_backoff_bounds(void) {
  const uint64_t initial = 500, max = 30000;
  static const uint32_t randoms[] = {0,   1,    249,   250,        251,       499,
                                     500, 1000, 12345, 0x7fffffff, 0xffffffff};
  for (uint32_t n = 0; n < 70; n++) {
    uint64_t base = n < 16 ? initial << n : max;
    if (base > max) base = max;
    uint64_t low = base / 2, high = base * 3 / 2 > max ? max : base * 3 / 2;
    for (size_t r = 0; r < sizeof(randoms) / sizeof(randoms[0]); r++) {
      uint64_t delay = ms_ads_backoff_ms(n, initial, max, randoms[r]);
      if (delay < low || delay > high) {
        fprintf(stderr, "failures %u random %u: %llu not in [%llu, %llu]\n", n, randoms[r],
                (unsigned long long)delay, (unsigned long long)low, (unsigned long long)high);
        failures++;
      }
    }
  }
  /* The first wait is 0.5 s +-50%; it doubles; it stops at 30 s. */
  CHECK(ms_ads_backoff_ms(0, initial, max, 0) == 250);
  CHECK(ms_ads_backoff_ms(0, initial, max, 500) == 750);
  CHECK(ms_ads_backoff_ms(1, initial, max, 0) == 500);
  CHECK(ms_ads_backoff_ms(1, initial, max, 1000) == 1500);
  CHECK(ms_ads_backoff_ms(6, initial, max, 0) == 15000);
  CHECK(ms_ads_backoff_ms(7, initial, max, 0) == 15000); /* base capped at 30000 */
  CHECK(ms_ads_backoff_ms(7, initial, max, 0xffffffff) <= max);
  CHECK(ms_ads_backoff_ms(4000000000u, initial, max, 7) >= max / 2); /* no overflow */

  /* Jitter spreads: over many draws both halves of the range are used. */
  srand(1);
  int below = 0, above = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t delay = ms_ads_backoff_ms(2, initial, max, (uint32_t)rand());
    below += delay < 2000;
    above += delay > 2000;
  }
  CHECK(below > 300 && above > 300);
}

/* ---- requests ------------------------------------------------------------- */

static Envoy__Service__Discovery__V3__DiscoveryRequest *round_trip(const ms_ads_request *request) {
  uint8_t *bytes = NULL;
  size_t len = 0;
  CHECK(ms_ads_request_encode(request, &bytes, &len) == 0);
  Envoy__Service__Discovery__V3__DiscoveryRequest *decoded =
      envoy__service__discovery__v3__discovery_request__unpack(NULL, len, bytes);
  free(bytes);
  if (decoded == NULL) {
    fprintf(stderr, "the request did not decode\n");
    exit(1);
  }
  return decoded;
}

static void test_request_encoding(void) {
  const ms_ads_metadata_entry metadata[] = {{"namespace", "shop"}, {"pod", "orders-1"}};
  ms_ads_node_options node_options = {
      .id = "sidecar~10.0.0.1~orders-1.shop",
      .cluster = "orders",
      .metadata = metadata,
      .metadata_count = 2,
  };
  ms_ads_node node;
  CHECK(ms_ads_node_init(&node, &node_options, NULL, "1.2.3") == 0);
  const char *names[] = {"a", "b"};
  ms_ads_request request = {
      .type_url = MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT,
      .version_info = "7",
      .response_nonce = "n9",
      .resource_names = names,
      .resource_name_count = 2,
      .node = &node,
      .error_message = "endpoints a: port 0",
  };
  Envoy__Service__Discovery__V3__DiscoveryRequest *decoded = round_trip(&request);
  CHECK_STR(decoded->type_url, MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT);
  CHECK_STR(decoded->version_info, "7");
  CHECK_STR(decoded->response_nonce, "n9");
  CHECK(decoded->n_resource_names == 2);
  CHECK_STR(decoded->resource_names[1], "b");
  CHECK(decoded->error_detail != NULL && decoded->error_detail->code == 3);
  if (decoded->error_detail) CHECK_STR(decoded->error_detail->message, "endpoints a: port 0");
  CHECK(decoded->node != NULL);
  if (decoded->node != NULL) {
    Envoy__Config__Core__V3__Node *n = decoded->node;
    CHECK_STR(n->id, "sidecar~10.0.0.1~orders-1.shop");
    CHECK_STR(n->cluster, "orders");
    CHECK_STR(n->user_agent_name, "mtls-sidecar");
    CHECK(n->user_agent_version_type_case ==
          ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_VERSION);
    CHECK_STR(n->user_agent_version, "1.2.3");
    CHECK(n->metadata != NULL && n->metadata->n_fields == 2);
    if (n->metadata != NULL && n->metadata->n_fields == 2) {
      CHECK_STR(n->metadata->fields[1]->key, "pod");
      CHECK(n->metadata->fields[1]->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE);
      CHECK_STR(n->metadata->fields[1]->value->string_value, "orders-1");
    }
  }
  envoy__service__discovery__v3__discovery_request__free_unpacked(decoded, NULL);

  /* An ACK, not the stream's first: no node, no error_detail, wildcard. */
  ms_ads_request ack = {.type_url = MS_XDS_TYPE_URL_CLUSTER, .version_info = "3"};
  decoded = round_trip(&ack);
  CHECK(decoded->node == NULL && decoded->error_detail == NULL);
  CHECK(decoded->n_resource_names == 0);
  CHECK_STR(decoded->response_nonce, "");
  envoy__service__discovery__v3__discovery_request__free_unpacked(decoded, NULL);

  /* A node without metadata or version. */
  ms_ads_node bare;
  CHECK(ms_ads_node_init(&bare, &(ms_ads_node_options){.id = "x"}, "agent", NULL) == 0);
  ack.node = &bare;
  decoded = round_trip(&ack);
  CHECK(decoded->node != NULL && decoded->node->metadata == NULL);
  if (decoded->node) {
    CHECK_STR(decoded->node->user_agent_name, "agent");
    CHECK_STR(decoded->node->cluster, "");
    CHECK(decoded->node->user_agent_version_type_case ==
          ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE__NOT_SET);
  }
  envoy__service__discovery__v3__discovery_request__free_unpacked(decoded, NULL);
  ms_ads_node_cleanup(&bare);
  ms_ads_node_cleanup(&node);
}

/* ---- per-type state --------------------------------------------------------- */

static void test_wildcard_type(void) {
  ms_ads_type *cds = ms_ads_type_new(MS_XDS_TYPE_URL_CLUSTER);
  CHECK(cds->wildcard_capable && !cds->subscribed && !ms_ads_type_needs_request(cds));
  bool changed = false;
  CHECK(ms_ads_type_set_names(cds, NULL, 0, &changed) == 0);
  CHECK(changed && cds->subscribed && cds->name_count == 0);
  CHECK(ms_ads_type_needs_request(cds));
  CHECK(ms_ads_type_set_names(cds, NULL, 0, &changed) == 0 && !changed);
  CHECK_STR(cds->version_info, "");
  CHECK_STR(cds->nonce, "");
  ms_ads_type_free(cds);

  ms_ads_type *lds = ms_ads_type_new(MS_XDS_TYPE_URL_LISTENER);
  CHECK(lds->wildcard_capable);
  ms_ads_type_free(lds);
}

static void test_named_type(void) {
  ms_ads_type *eds = ms_ads_type_new(MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT);
  CHECK(!eds->wildcard_capable);
  bool changed = false;
  const char *names[] = {"b", "a", "b"};
  CHECK(ms_ads_type_set_names(eds, names, 3, &changed) == 0 && changed);
  CHECK(eds->subscribed && eds->name_count == 2);
  CHECK_STR(eds->names[0], "a");
  CHECK_STR(eds->names[1], "b");
  const char *same[] = {"a", "b"};
  CHECK(ms_ads_type_set_names(eds, same, 2, &changed) == 0 && !changed);
  const char *fewer[] = {"a"};
  CHECK(ms_ads_type_set_names(eds, fewer, 1, &changed) == 0 && changed);
  const char *other[] = {"c"};
  CHECK(ms_ads_type_set_names(eds, other, 1, &changed) == 0 && changed);

  /* Responses: ACK takes version and nonce; NACK keeps the version. */
  eds->requested = true;
  CHECK(ms_ads_type_ack(eds, "1", "n1") == 0);
  CHECK_STR(eds->version_info, "1");
  CHECK_STR(eds->nonce, "n1");
  CHECK(eds->acks == 1 && eds->nacks == 0 && eds->nack_message == NULL);
  CHECK(ms_ads_type_nack(eds, "2", "n2", "endpoints c: no port") == 0);
  CHECK_STR(eds->version_info, "1");
  CHECK_STR(eds->nonce, "n2");
  CHECK_STR(eds->nack_message, "endpoints c: no port");
  CHECK_STR(eds->nack_version, "2");
  CHECK(eds->nacks == 1);

  ms_ads_request request;
  ms_ads_type_request(eds, NULL, "endpoints c: no port", &request);
  CHECK_STR(request.version_info, "1");
  CHECK_STR(request.response_nonce, "n2");
  CHECK(request.resource_name_count == 1 && strcmp(request.resource_names[0], "c") == 0);
  CHECK_STR(request.error_message, "endpoints c: no port");

  /* A new stream: the version stays, the nonce goes. */
  ms_ads_type_stream_reset(eds);
  CHECK(!eds->requested);
  CHECK_STR(eds->version_info, "1");
  CHECK_STR(eds->nonce, "");
  CHECK(ms_ads_type_ack(eds, "3", "n3") == 0 && eds->acks == 2);
  CHECK_STR(eds->nack_message, "endpoints c: no port"); /* the last NACK is kept */

  /* Unsubscribe: goes out when the type was requested on this stream. */
  CHECK(ms_ads_type_set_names(eds, NULL, 0, &changed) == 0 && changed && !eds->subscribed);
  eds->requested = true;
  CHECK(ms_ads_type_needs_request(eds));
  eds->requested = false;
  CHECK(!ms_ads_type_needs_request(eds));
  ms_ads_type_free(eds);
}

static void test_rank(void) {
  CHECK(ms_ads_type_rank(MS_XDS_TYPE_URL_CLUSTER) <
        ms_ads_type_rank(MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT));
  CHECK(ms_ads_type_rank(MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT) <
        ms_ads_type_rank(MS_XDS_TYPE_URL_LISTENER));
  CHECK(ms_ads_type_rank(MS_XDS_TYPE_URL_LISTENER) < ms_ads_type_rank(MS_XDS_TYPE_URL_SECRET));
  CHECK(ms_ads_type_rank(MS_XDS_TYPE_URL_SECRET) < ms_ads_type_rank("type.googleapis.com/x.Y"));
}

/* ---- the client without a server -------------------------------------------- */

static char *ack_all(ms_ads_client *client, const char *type_url, const char *version_info,
                     const Google__Protobuf__Any *const *resources, size_t count, void *arg) {
  return NULL;
}

typedef struct attempts {
  int down;
  uint64_t delays[8];
  char why[1024];
  int close_after; /* close the client from the callback after this many */
} attempts;

static void on_connection(ms_ads_client *client, bool connected, const char *why, void *arg) {
  attempts *record = arg;
  CHECK(!connected);
  if (connected) return;
  ms_ads_client_status status;
  ms_ads_client_get_status(client, &status);
  CHECK(status.state == MS_ADS_CLIENT_BACKOFF);
  CHECK_STR(status.last_disconnect, why);
  if (record->down < 8) record->delays[record->down] = status.retry_delay_ms;
  record->down++;
  snprintf(record->why, sizeof(record->why), "%s", why);
  if (record->down == record->close_after) ms_ads_client_close(client);
}

static void on_run_for_timer(uv_timer_t *timer) {
  *(bool *)timer->data = true;
}

/* Runs `loop` for `ms` (a timer keeps it from blocking), or until it has
 * nothing left to do. */
static void run_for(uv_loop_t *loop, uint64_t ms) {
  bool done = false;
  uv_timer_t timer;
  uv_timer_init(loop, &timer);
  timer.data = &done;
  uv_timer_start(&timer, on_run_for_timer, ms, 0);
  uv_unref((uv_handle_t *)&timer);
  while (!done && uv_run(loop, UV_RUN_ONCE) != 0) {
  }
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

static void close_loop(uv_loop_t *loop) {
  run_for(loop, 2000);
  CHECK(uv_run(loop, UV_RUN_NOWAIT) == 0);
  CHECK(uv_loop_close(loop) == 0);
}

static void test_client_without_server(void) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  static const ms_ads_client_callbacks callbacks = {.on_response = ack_all,
                                                    .on_connection = on_connection};
  uv_loop_t loop;
  uv_loop_init(&loop);
  ms_ads_client *client = NULL;

  /* Options that cannot work. */
  ms_ads_client_options bad = {.address = "no port", .ssl_ctx = ctx};
  CHECK(ms_ads_client_new(&loop, &bad, &callbacks, NULL, &client) == UV_EINVAL && !client);
  bad.address = NULL;
  CHECK(ms_ads_client_new(&loop, &bad, &callbacks, NULL, &client) == UV_EINVAL);
  bad = (ms_ads_client_options){.address = "127.0.0.1:1"};
  CHECK(ms_ads_client_new(&loop, &bad, &callbacks, NULL, &client) == UV_EINVAL);
  ms_ads_client_callbacks no_response = {0};
  bad.ssl_ctx = ctx;
  CHECK(ms_ads_client_new(&loop, &bad, &no_response, NULL, &client) == UV_EINVAL);

  /* Closed before the loop ever ran; subscriptions kept until then. */
  attempts none = {0};
  ms_ads_client_options options = {.address = "127.0.0.1:1", .ssl_ctx = ctx, .node = {.id = "n"}};
  CHECK(ms_ads_client_new(&loop, &options, &callbacks, &none, &client) == 0);
  CHECK(ms_ads_client_subscribe(client, MS_XDS_TYPE_URL_CLUSTER, NULL, 0) == 0);
  CHECK(ms_ads_client_subscribe(client, "", NULL, 0) == UV_EINVAL);
  ms_ads_type_status type_status;
  CHECK(ms_ads_client_type_status(client, MS_XDS_TYPE_URL_CLUSTER, &type_status) == 0);
  CHECK(type_status.subscribed && type_status.wildcard);
  CHECK(ms_ads_client_type_status(client, MS_XDS_TYPE_URL_SECRET, &type_status) == UV_ENOENT);
  ms_ads_client_status status;
  ms_ads_client_get_status(client, &status);
  CHECK(status.state == MS_ADS_CLIENT_CONNECTING && status.streams == 1);
  ms_ads_client_close(client);
  ms_ads_client_close(NULL);
  run_for(&loop, 100);
  CHECK(none.down == 0);

  /* Nobody listens on port 1: every attempt fails; the delays grow within
   * their bounds (initial 20 ms, max 80 ms); closing from the callback
   * stops everything. */
  attempts refused = {.close_after = 5};
  options.initial_backoff_ms = 20;
  options.max_backoff_ms = 80;
  CHECK(ms_ads_client_new(&loop, &options, &callbacks, &refused, &client) == 0);
  CHECK(ms_ads_client_subscribe(client, MS_XDS_TYPE_URL_CLUSTER, NULL, 0) == 0);
  run_for(&loop, 3000);
  CHECK(refused.down == 5);
  for (int i = 0; i < 5 && i < refused.down; i++) {
    uint64_t base = i == 0 ? 20 : i == 1 ? 40 : 80;
    uint64_t high = base * 3 / 2 > 80 ? 80 : base * 3 / 2;
    CHECK(refused.delays[i] >= base / 2 && refused.delays[i] <= high);
  }
  if (strstr(refused.why, "ADS stream to 127.0.0.1:1 ended: UNAVAILABLE") == NULL ||
      strstr(refused.why, "; retrying in ") == NULL) {
    fprintf(stderr, "unexpected reason: %s\n", refused.why);
    failures++;
  }
  close_loop(&loop);
  SSL_CTX_free(ctx);
}

int main(void) {
  test_backoff_bounds();
  test_request_encoding();
  test_wildcard_type();
  test_named_type();
  test_rank();
  test_client_without_server();
  if (failures) {
    fprintf(stderr, "ads_client_test: %d failures\n", failures);
    return 1;
  }
  printf("ads_client_test: all passed\n");
  return 0;
}
