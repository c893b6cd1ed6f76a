/* ads_client_test_driver.c: runs the ADS client (ads_client.h) against
 * tests/node/ads_test_server.js, a real ADS server on @grpc/grpc-js with
 * Envoy's own protos, playing the plan in ads_client_node_test.sh; then
 * checks what the client saw and what the server recorded.
 *
 *   ads_client_test_driver ADDRESS CA CRT KEY SERVER_LOG
 *
 * As the sidecar would, it subscribes to every cluster and listener, asks
 * for the endpoints of the clusters it accepted, and NACKs a CDS response
 * whose version is "2". It stops when the server ends the stream with
 * "plan complete" (or after 25 s). Exit status 0 when every check passed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "certs/certs.h"
#include "common/file.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "xds/ads/ads_client.h"
#include "xds/proto/type_urls.h"

#define TIMEOUT_MS 25000
#define INITIAL_BACKOFF_MS 200
#define MAX_BACKOFF_MS 2000
#define MAX_EVENTS 64

static int passed, failed;

static void check(bool ok, const char *what, const char *detail) {
  if (ok) {
    passed++;
    printf("ok: %s\n", what);
  } else {
    failed++;
    printf("FAIL: %s: %s\n", what, detail ? detail : "");
  }
}

/* ---- what the client reported ----------------------------------------------- */

typedef struct event {
  bool connected;
  uint64_t at_ms;
  uint32_t failures;
  uint64_t delay_ms;
  char why[512];
} event;

static struct {
  uv_loop_t *loop;
  event events[MAX_EVENTS];
  int event_count;
  int connected_count;
  bool done, timed_out;
  char last_cds_version[64];
  int unexpected_delivered; /* SDS responses: never subscribed */
} seen;

static char *on_response(ms_ads_client *client, const char *type_url, const char *version_info,
                         const Google__Protobuf__Any *const *resources, size_t count, void *arg) {
  printf("response: %s version %s, %zu resources\n", type_url, version_info, count);
  if (strcmp(type_url, MS_XDS_TYPE_URL_SECRET) == 0) seen.unexpected_delivered++;
  if (strcmp(type_url, MS_XDS_TYPE_URL_CLUSTER) != 0) return NULL;
  const char *names[16];
  Envoy__Config__Cluster__V3__Cluster *clusters[16] = {0};
  size_t n = 0;
  for (size_t i = 0; i < count && n < 16; i++) {
    clusters[n] = envoy__config__cluster__v3__cluster__unpack(NULL, resources[i]->value.len,
                                                              resources[i]->value.data);
    if (clusters[n] != NULL) {
      names[n] = clusters[n]->name;
      n++;
    }
  }
  char *error = NULL;
  if (strcmp(version_info, "2") == 0) {
    error = malloc(128);
    snprintf(error, 128, "cluster %s: rejected by the test driver", n > 0 ? names[n - 1] : "?");
  } else {
    snprintf(seen.last_cds_version, sizeof(seen.last_cds_version), "%s", version_info);
    ms_ads_client_subscribe(client, MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT, names, n);
  }
  for (size_t i = 0; i < n; i++)
    envoy__config__cluster__v3__cluster__free_unpacked(clusters[i], NULL);
  return error;
}

static void check_type_state(ms_ads_client *client);

static void on_connection(ms_ads_client *client, bool connected, const char *why, void *arg) {
  printf("%s%s\n", connected ? "connected" : "disconnected: ", connected ? "" : why);
  if (seen.event_count == MAX_EVENTS) return;
  event *e = &seen.events[seen.event_count++];
  e->connected = connected;
  e->at_ms = uv_now(seen.loop);
  if (connected) {
    seen.connected_count++;
    return;
  }
  ms_ads_client_status status;
  ms_ads_client_get_status(client, &status);
  e->failures = status.failures;
  e->delay_ms = status.retry_delay_ms;
  snprintf(e->why, sizeof(e->why), "%s", why);
  if (strstr(why, "plan complete") != NULL) {
    seen.done = true;
    check_type_state(client);
    ms_ads_client_close(client);
  }
}

/* ---- setup ------------------------------------------------------------------ */

static SSL_CTX *client_ctx(const char *ca, const char *crt, const char *key) {
  SSL_CTX *ctx = NULL;
  char err[MS_ERR_LEN];
  if (ms_client_ctx_load_files(ca, crt, key, &ctx, err, sizeof(err)) != 0) {
    fprintf(stderr, "ads_client_test_driver: %s\n", err);
    exit(2);
  }
  return ctx;
}

static void on_deadline(uv_timer_t *timer) {
  seen.timed_out = true;
  ms_ads_client_close(timer->data);
}

/* ---- checks of the client's side -------------------------------------------- */

static void check_events(void) {
  char detail[600];
  check(seen.done, "the server played its plan to the end (\"plan complete\")", NULL);
  snprintf(detail, sizeof(detail), "%d", seen.connected_count);
  check(seen.connected_count == 4,
        "four streams connected (start, after restart, after garbage, after oversized)", detail);

  bool lost = false, garbage = false, oversized = false, refused = false, bounds = true,
       waited = true;
  for (int i = 0; i < seen.event_count; i++) {
    const event *e = &seen.events[i];
    if (e->connected) continue;
    lost |= strstr(e->why, "UNAVAILABLE") != NULL;
    refused |= strstr(e->why, "refused") != NULL;
    garbage |= strstr(e->why, "did not decode") != NULL;
    oversized |= strstr(e->why, "RESOURCE_EXHAUSTED") != NULL;
    /* The delay for the n-th failure in a row lies within its bounds. */
    uint64_t base = INITIAL_BACKOFF_MS;
    for (uint32_t f = 1; f < e->failures && base < MAX_BACKOFF_MS; f++)
      base *= 2;
    if (base > MAX_BACKOFF_MS) base = MAX_BACKOFF_MS;
    uint64_t high = base * 3 / 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : base * 3 / 2;
    if (e->delay_ms < base / 2 || e->delay_ms > high) {
      snprintf(detail, sizeof(detail), "failure %u: delay %llu not in [%llu, %llu]", e->failures,
               (unsigned long long)e->delay_ms, (unsigned long long)base / 2,
               (unsigned long long)high);
      bounds = false;
    }
    /* The next attempt waited for it (its outcome comes later still). */
    if (i + 1 < seen.event_count && seen.events[i + 1].at_ms + 2 < e->at_ms + e->delay_ms)
      waited = false;
  }
  check(bounds, "every reconnect delay within initial 200 ms doubling to 2 s, +-50%", detail);
  check(waited, "every reconnect attempt waited for its delay", NULL);
  check(lost, "the server's restart was reported as a lost stream (UNAVAILABLE)", NULL);
  check(refused, "attempts while the server was down were reported (connection refused)", NULL);
  check(seen.unexpected_delivered == 0,
        "a response of a type never subscribed is not handed to the callback", NULL);
  check(garbage, "a response that does not decode ended the stream (protocol error)", NULL);
  check(oversized, "a response over max_message_bytes ended the stream (RESOURCE_EXHAUSTED)", NULL);

  /* The first disconnect followed a stream that got responses: the delay
   * starts again from the initial backoff. */
  for (int i = 0; i < seen.event_count; i++) {
    if (seen.events[i].connected) continue;
    snprintf(detail, sizeof(detail), "failures %u", seen.events[i].failures);
    check(seen.events[i].failures == 1, "the first reconnect uses the initial backoff", detail);
    break;
  }
}

static void check_type_state(ms_ads_client *client) {
  ms_ads_type_status cds, eds;
  char detail[400];
  bool have = ms_ads_client_type_status(client, MS_XDS_TYPE_URL_CLUSTER, &cds) == 0 &&
              ms_ads_client_type_status(client, MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT, &eds) == 0;
  check(have, "type status for CDS and EDS", NULL);
  if (!have) return;
  snprintf(detail, sizeof(detail), "version %s, nack %s for %s, acks %llu nacks %llu",
           cds.version_info, cds.nack_message ? cds.nack_message : "(none)",
           cds.nack_version ? cds.nack_version : "", (unsigned long long)cds.acks,
           (unsigned long long)cds.nacks);
  check(strcmp(cds.version_info, "4") == 0 && cds.nacks == 1 && cds.acks == 3 && cds.nack_message &&
            strcmp(cds.nack_message, "cluster c: rejected by the test driver") == 0 &&
            strcmp(cds.nack_version, "2") == 0 && cds.wildcard,
        "CDS: accepted 4 (5 was oversized), the NACK of version 2 remembered", detail);
  snprintf(detail, sizeof(detail), "version %s, %zu names", eds.version_info, eds.name_count);
  check(strcmp(eds.version_info, "1") == 0 && eds.name_count == 1 &&
            strcmp(eds.names[0], "a") == 0 && !eds.wildcard,
        "EDS: accepted 1, subscribed to [a]", detail);
}

/* ---- checks of what the server recorded ------------------------------------- */

static const char *string_of(const cJSON *object, const char *key) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
  return cJSON_IsString(item) ? item->valuestring : "";
}

static void check_server_log(const char *path) {
  char err[MS_ERR_LEN];
  char *text = NULL;
  size_t len = 0;
  if (ms_file_read(path, &text, &len, err, sizeof(err)) != 0) {
    check(false, "the server's log can be read", err);
    return;
  }
  bool complete = false;
  int per_stream[8] = {0};
  char order[8][256] = {{0}};
  /* Room for the three streams' orders whole, with their labels. */
  char detail[3 * sizeof(order[0]) + 40];
  bool node_ok = true, node_only_first = true, nack_ok = false, empty_nonces = true;
  for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
    cJSON *record = cJSON_Parse(line);
    if (record == NULL) continue;
    const char *kind = string_of(record, "event");
    complete |= strcmp(kind, "plan_complete") == 0;
    if (strcmp(kind, "request") != 0) {
      cJSON_Delete(record);
      continue;
    }
    int stream = cJSON_GetObjectItemCaseSensitive(record, "stream")->valueint;
    if (stream < 1 || stream > 7) stream = 7;
    const char *type_url = string_of(record, "type_url");
    const char *short_name = strrchr(type_url, '.') ? strrchr(type_url, '.') + 1 : type_url;
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(record, "node");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(record, "error_detail");
    bool first = per_stream[stream]++ == 0;
    if (per_stream[stream] <= 3) {
      strncat(order[stream], short_name, sizeof(order[stream]) - strlen(order[stream]) - 2);
      strcat(order[stream], " ");
    }
    if (first) {
      const cJSON *metadata = cJSON_GetObjectItemCaseSensitive(node, "metadata");
      bool ok = cJSON_IsObject(node) && strcmp(string_of(node, "id"), "sidecar~orders-1") == 0 &&
                strcmp(string_of(node, "cluster"), "orders") == 0 &&
                strcmp(string_of(node, "user_agent_name"), "mtls-sidecar") == 0 &&
                strcmp(string_of(node, "user_agent_version"), "0.0.1-test") == 0 &&
                strcmp(string_of(metadata, "namespace"), "shop") == 0 &&
                strcmp(string_of(metadata, "pod"), "orders-1") == 0;
      if (!ok) {
        node_ok = false;
        snprintf(detail, sizeof(detail), "stream %d: %s", stream, line);
      }
      /* A new stream's first requests carry no nonce. */
    } else if (!cJSON_IsNull(node)) {
      node_only_first = false;
    }
    if (stream >= 2 && per_stream[stream] <= 3 &&
        strcmp(string_of(record, "response_nonce"), "") != 0)
      empty_nonces = false;
    if (cJSON_IsObject(error) && strcmp(short_name, "Cluster") == 0) {
      nack_ok =
          cJSON_GetObjectItemCaseSensitive(error, "code")->valueint == 3 &&
          strcmp(string_of(error, "message"), "cluster c: rejected by the test driver") == 0 &&
          strcmp(string_of(record, "version_info"), "1") == 0 &&
          strcmp(string_of(record, "response_nonce"), "c2") == 0;
    }
    cJSON_Delete(record);
  }
  free(text);
  check(complete, "the server logged plan_complete", NULL);
  check(node_ok, "the first request of every stream carries the whole node", detail);
  check(node_only_first, "no other request carries the node", NULL);
  check(nack_ok, "the NACK: code 3, the driver's message, the previous version, the nonce", NULL);
  snprintf(detail, sizeof(detail), "stream 2: %s; stream 3: %s; stream 4: %s", order[2], order[3],
           order[4]);
  check(strcmp(order[2], "Cluster ClusterLoadAssignment Listener ") == 0 &&
            strcmp(order[3], "Cluster ClusterLoadAssignment Listener ") == 0 &&
            strcmp(order[4], "Cluster ClusterLoadAssignment Listener ") == 0,
        "after a reconnect: CDS, EDS, LDS", detail);
  check(empty_nonces, "after a reconnect the first requests carry an empty nonce", NULL);
  snprintf(detail, sizeof(detail), "%d, %d, %d, %d", per_stream[1], per_stream[2], per_stream[3],
           per_stream[4]);
  check(per_stream[1] == 10 && per_stream[2] == 3 && per_stream[3] == 4 && per_stream[4] == 3,
        "exactly the requests due: 10, 3, 4 and 3 per stream (no duplicates)", detail);
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s ADDRESS CA CRT KEY SERVER_LOG\n", argv[0]);
    return 2;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  seen.loop = &loop;
  SSL_CTX *ctx = client_ctx(argv[2], argv[3], argv[4]);
  const ms_ads_metadata_entry metadata[] = {{"namespace", "shop"}, {"pod", "orders-1"}};
  ms_ads_client_options options = {
      .address = argv[1],
      .server_name = "localhost",
      .ssl_ctx = ctx,
      .node = {.id = "sidecar~orders-1",
               .cluster = "orders",
               .metadata = metadata,
               .metadata_count = 2},
      .user_agent_version = "0.0.1-test",
      .initial_backoff_ms = INITIAL_BACKOFF_MS,
      .max_backoff_ms = MAX_BACKOFF_MS,
      .keepalive_interval_ms = 10000,
      .connect_timeout_ms = 5000,
      .max_message_bytes = 64 << 10,
  };
  static const ms_ads_client_callbacks callbacks = {.on_response = on_response,
                                                    .on_connection = on_connection};
  ms_ads_client *client = NULL;
  int rc = ms_ads_client_new(&loop, &options, &callbacks, NULL, &client);
  if (rc != 0) {
    fprintf(stderr, "ms_ads_client_new: %s\n", uv_strerror(rc));
    return 2;
  }
  ms_ads_client_subscribe(client, MS_XDS_TYPE_URL_CLUSTER, NULL, 0);
  ms_ads_client_subscribe(client, MS_XDS_TYPE_URL_LISTENER, NULL, 0);

  /* A deadline that does not keep the loop alive by itself. */
  uv_timer_t deadline;
  uv_timer_init(&loop, &deadline);
  deadline.data = client;
  uv_timer_start(&deadline, on_deadline, TIMEOUT_MS, 0);
  uv_unref((uv_handle_t *)&deadline);
  while (!seen.done && !seen.timed_out && uv_run(&loop, UV_RUN_ONCE) != 0) {
  }
  check(!seen.timed_out, "finished within 25 s", NULL);
  uv_close((uv_handle_t *)&deadline, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  check(uv_loop_close(&loop) == 0, "the loop closed cleanly", NULL);
  SSL_CTX_free(ctx);
  check_events();
  check_server_log(argv[5]);
  printf("ads_client_test_driver: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
