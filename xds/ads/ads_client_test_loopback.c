/* ads_client_test_loopback.c: the ADS client's callbacks calling back into
 * it, against a minimal ADS responder on our own gRPC server (the real
 * server is //xds/ads:ads_client_node_test's): a subscription changed inside
 * on_response for the same type rides on its ACK; closing the client inside
 * on_response (with a NACK message returned) sends nothing more, fires no
 * further callback and leaks nothing (ASan). */
#include <stdlib.h>
#include <string.h>

#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "xds/ads/ads_client.h"
#include "xds/grpc/grpc_test_util.h"
#include "xds/proto/type_urls.h"

#define TIMEOUT_MS 5000

/* ---- the responder: answers each type's first request of a stream with
 * version "1" and one empty resource, and records every request ---------- */

typedef struct recorded {
  char type_url[128];
  char version_info[32];
  char nonce[32];
  size_t name_count;
  char names[64];
  bool node, error;
} recorded;

static recorded requests[64];
static int request_count;

static void answer(ms_grpc_server_call *call, const char *type_url) {
  Google__Protobuf__Any resource = GOOGLE__PROTOBUF__ANY__INIT;
  resource.type_url = (char *)type_url;
  Google__Protobuf__Any *resources[] = {&resource};
  Envoy__Service__Discovery__V3__DiscoveryResponse response =
      ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
  response.type_url = (char *)type_url;
  response.version_info = "1";
  response.nonce = "nonce-1";
  response.resources = resources;
  response.n_resources = 1;
  uint8_t bytes[512];
  size_t len = envoy__service__discovery__v3__discovery_response__pack(&response, bytes);
  ms_grpc_server_call_send(call, bytes, len);
}

static void on_server_message(ms_grpc_server_call *call, const uint8_t *bytes, size_t len,
                              void *user_data) {
  Envoy__Service__Discovery__V3__DiscoveryRequest *request =
      envoy__service__discovery__v3__discovery_request__unpack(NULL, len, bytes);
  CHECK(request != NULL);
  if (request == NULL || request_count == 64) return;
  recorded *r = &requests[request_count++];
  snprintf(r->type_url, sizeof(r->type_url), "%s", request->type_url);
  snprintf(r->version_info, sizeof(r->version_info), "%s", request->version_info);
  snprintf(r->nonce, sizeof(r->nonce), "%s", request->response_nonce);
  r->name_count = request->n_resource_names;
  for (size_t i = 0; i < request->n_resource_names; i++) {
    strncat(r->names, request->resource_names[i], sizeof(r->names) - strlen(r->names) - 2);
    strcat(r->names, ",");
  }
  r->node = request->node != NULL;
  r->error = request->error_detail != NULL;
  if (request->response_nonce[0] == '\0') answer(call, request->type_url);
  envoy__service__discovery__v3__discovery_request__free_unpacked(request, NULL);
}

static void on_server_cancel(ms_grpc_server_call *call, void *user_data) {}

static const ms_grpc_server_call_callbacks server_call_callbacks = {
    .on_message = on_server_message,
    .on_cancel = on_server_cancel,
};

static int on_call(ms_grpc_server_call *call, const char *method_path, const ms_grpc_peer *peer,
                   void *arg) {
  if (strcmp(method_path, MS_XDS_ADS_METHOD) != 0) return MS_GRPC_UNIMPLEMENTED;
  ms_grpc_server_call_set_handler(call, &server_call_callbacks, NULL);
  return MS_GRPC_OK;
}

/* ---- clients -------------------------------------------------------------- */

static struct {
  int responses;
  int connections;
  int callbacks_after_close;
  bool closed;
  bool acked;
} seen;

static void on_connection(ms_ads_client *client, bool connected, const char *why, void *arg) {
  seen.connections++;
  if (seen.closed) seen.callbacks_after_close++;
}

/* Widens the EDS subscription from inside the EDS callback. */
static char *widen(ms_ads_client *client, const char *type_url, const char *version_info,
                   const Google__Protobuf__Any *const *resources, size_t count, void *arg) {
  seen.responses++;
  CHECK(count == 1 && strcmp(resources[0]->type_url, type_url) == 0);
  const char *names[] = {"b", "a"};
  CHECK(ms_ads_client_subscribe(client, type_url, names, 2) == 0);
  seen.acked = true;
  return NULL;
}

/* Closes the client from inside on_response, refusing the response. */
static char *close_inside(ms_ads_client *client, const char *type_url, const char *version_info,
                          const Google__Protobuf__Any *const *resources, size_t count, void *arg) {
  seen.responses++;
  if (seen.closed) seen.callbacks_after_close++;
  ms_ads_client_close(client);
  seen.closed = true;
  return strdup("closing: this message must be freed, not sent");
}

static ms_ads_client *new_client(uv_loop_t *loop, SSL_CTX *ctx, uint16_t port,
                                 char *(*on_response)(ms_ads_client *, const char *, const char *,
                                                      const Google__Protobuf__Any *const *, size_t,
                                                      void *)) {
  char address[32];
  snprintf(address, sizeof(address), "127.0.0.1:%u", port);
  ms_ads_client_options options = {
      .address = address,
      .server_name = "localhost",
      .ssl_ctx = ctx,
      .node = {.id = "loopback"},
  };
  ms_ads_client_callbacks callbacks = {.on_response = on_response, .on_connection = on_connection};
  ms_ads_client *client = NULL;
  CHECK(ms_ads_client_new(loop, &options, &callbacks, NULL, &client) == 0);
  return client;
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

int main(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  grpc_test_pki pki;
  grpc_test_pki_init(&pki);
  ms_grpc_server_options server_options = {.address = "127.0.0.1:0", .ssl_ctx = pki.server_ctx};
  ms_grpc_server_callbacks server_callbacks = {.on_call = on_call};
  ms_grpc_server *server = NULL;
  CHECK(ms_grpc_server_new(&loop, &server_options, &server_callbacks, NULL, &server) == 0);
  uint16_t port = ms_grpc_server_port(server);

  /* 1. Subscribing inside on_response for the same type: the ACK carries
   *    the new names; no separate request. */
  ms_ads_client *client = new_client(&loop, pki.client_ctx, port, widen);
  const char *first[] = {"a"};
  CHECK(ms_ads_client_subscribe(client, MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT, first, 1) == 0);
  CHECK(grpc_test_run_until(&loop, &seen.acked, TIMEOUT_MS));
  CHECK(grpc_test_run_until_count(&loop, &request_count, 2, TIMEOUT_MS));
  run_for(&loop, 100);
  CHECK(request_count == 2);
  CHECK(requests[0].node && strcmp(requests[0].names, "a,") == 0 &&
        strcmp(requests[0].nonce, "") == 0);
  CHECK(!requests[1].node && !requests[1].error && strcmp(requests[1].names, "a,b,") == 0);
  CHECK(strcmp(requests[1].version_info, "1") == 0 && strcmp(requests[1].nonce, "nonce-1") == 0);
  ms_ads_type_status status;
  CHECK(ms_ads_client_type_status(client, MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT, &status) == 0);
  CHECK(status.acks == 1 && status.name_count == 2 && strcmp(status.version_info, "1") == 0);
  CHECK(seen.connections == 1); /* connected, never lost */
  ms_ads_client_close(client);
  run_for(&loop, 50);

  /* 2. Closing inside on_response: nothing more goes out or comes back. */
  memset(&seen, 0, sizeof(seen));
  request_count = 0;
  client = new_client(&loop, pki.client_ctx, port, close_inside);
  CHECK(ms_ads_client_subscribe(client, MS_XDS_TYPE_URL_CLUSTER, NULL, 0) == 0);
  CHECK(grpc_test_run_until(&loop, &seen.closed, TIMEOUT_MS));
  run_for(&loop, 200);
  CHECK(seen.responses == 1 && seen.callbacks_after_close == 0);
  CHECK(request_count == 1 && requests[0].node);

  ms_grpc_server_close(server);
  grpc_test_close_loop(&loop);
  grpc_test_pki_cleanup(&pki);
  return grpc_test_finish("ads_client_test_loopback");
}
