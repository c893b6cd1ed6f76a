/* server_test.c: xds-server in-process against 200 simulated ADS clients
 * (ads_load.h) over our gRPC client, on loopback: every stream gets CDS,
 * EDS and SDS and ACKs; an edited file reaches all of them (and only CDS
 * changes); a CA rotation through the watched CA files reaches all of them;
 * /status counts them; everything closes cleanly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "certs/certs.h"
#include "tools/ads_load.h"
#include "xds-server/server.h"
#include "xds-server/server_test_util.h"
#include "xds/grpc/grpc_test_util.h"

#define STREAMS 200
#define CHANNELS 4

static uv_loop_t loop;
static const char *config(const char *timeout) {
  static char text[1024];
  snprintf(text, sizeof(text),
           "{\"resources\": [\n"
           " {\"@type\": \"type.googleapis.com/envoy.config.cluster.v3.Cluster\",\n"
           "  \"name\": \"backend\", \"type\": \"EDS\", \"connect_timeout\": \"%s\",\n"
           "  \"eds_cluster_config\": {\"eds_config\": {\"ads\": {}}}},\n"
           " {\"@type\": \"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\",\n"
           "  \"cluster_name\": \"backend\", \"endpoints\": [{\"lb_endpoints\": [{\"endpoint\":\n"
           "   {\"address\": {\"socket_address\": {\"address\": \"127.0.0.1\", \"port_value\": "
           "8080}}}}]}]}\n"
           "]}\n",
           timeout);
  return text;
}

static bool run_until(bool (*done)(void *), void *arg, uint64_t timeout_ms) {
  return grpc_test_run_until_done(&loop, done, arg, timeout_ms);
}

static ms_ads_load *load;

static bool all_ready(void *arg) {
  ms_ads_load_stats stats;
  ms_ads_load_stats_get(load, &stats);
  return stats.ready == STREAMS || stats.closed > 0 || stats.channels_closed > 0;
}

static bool all_updated(void *arg) {
  return ms_ads_load_updated(load, *(ms_ads_load_type *)arg, NULL) == STREAMS;
}

int main(void) {
  server_test_dir_init("server_test");
  server_test_mkdir("conf");
  uv_loop_init(&loop);

  server_test_pki pki;
  server_test_pki_init(&pki, "first CA");
  X509 *client_cert;
  EVP_PKEY *client_key;
  server_test_issue(pki.ca, pki.ca_key, "spiffe://cluster.local/ns/default/sa/bootstrap", false,
                    &client_cert, &client_key);
  char err[MS_ERR_LEN], conf[1024];
  server_test_path(conf, sizeof(conf), "conf");
  server_test_write_text("conf/backend.json", config("1s"));

  SSL_CTX *client_ctx = grpc_test_ctx_new(client_cert, client_key, pki.ca, SSL_VERIFY_PEER);

  ms_xds_server_options options = server_test_pki_options(&pki);
  options.config_dir = conf;
  options.status_address = "127.0.0.1:0";
  options.debounce_ms = 50;
  /* The load's callers present a certificate of the workload CA and take
   * their keys from the server (Envoy's way). */
  options.accept_workload_certificates = true;
  options.serve_workload_keys = true;
  ms_xds_server *server = NULL;
  if (ms_xds_server_new(&loop, &options, &server, err, sizeof(err)) != 0)
    grpc_test_die("ms_xds_server_new", err);
  CHECK(ms_xds_server_status_port(server) != 0);

  char address[64];
  snprintf(address, sizeof(address), "127.0.0.1:%u", ms_xds_server_port(server));
  ms_ads_load_options load_options = {
      .address = address,
      .ssl_ctx = client_ctx,
      .streams = STREAMS,
      .channels = CHANNELS,
  };
  CHECK(ms_ads_load_start(&loop, &load_options, &load) == 0);
  uint64_t start = uv_now(&loop);
  bool ready = run_until(all_ready, NULL, 20000);
  ms_ads_load_stats stats;
  ms_ads_load_stats_get(load, &stats);
  printf("%d streams ready in %llu ms (%llu responses)\n", stats.ready,
         (unsigned long long)(uv_now(&loop) - start), (unsigned long long)stats.responses);
  CHECK(ready && stats.ready == STREAMS);
  if (stats.closed > 0 || stats.channels_closed > 0)
    fprintf(stderr, "closed: %s\n", stats.last_close_reason);
  CHECK(ms_xds_server_stream_count(server) == STREAMS);

  /* A config change reaches every stream, on CDS only. */
  ms_ads_load_mark(load);
  server_test_write_text("conf/backend.json", config("2s"));
  ms_ads_load_type cds = MS_ADS_LOAD_CDS, sds = MS_ADS_LOAD_SDS;
  CHECK(run_until(all_updated, &cds, 5000));
  int64_t last_ms = 0;
  int updated = ms_ads_load_updated(load, MS_ADS_LOAD_CDS, &last_ms);
  printf("config change: %d streams updated, the last after %lld ms\n", updated,
         (long long)last_ms);
  CHECK(last_ms < 1000);
  CHECK(ms_ads_load_updated(load, MS_ADS_LOAD_EDS, NULL) == 0);
  CHECK(ms_ads_load_updated(load, MS_ADS_LOAD_SDS, NULL) == 0);

  /* A CA rotation reaches every stream (the bundle) within 5 s. */
  ms_ads_load_mark(load);
  X509 *new_ca;
  EVP_PKEY *new_ca_key;
  server_test_write_ca("second CA", "ca/ca.crt", "ca/ca.key", &new_ca, &new_ca_key);
  CHECK(run_until(all_updated, &sds, 5000));
  updated = ms_ads_load_updated(load, MS_ADS_LOAD_SDS, &last_ms);
  printf("CA rotation: %d streams updated, the last after %lld ms\n", updated, (long long)last_ms);
  CHECK(updated == STREAMS);

  char *json = ms_xds_server_status_json(server);
  cJSON *status = cJSON_Parse(json);
  CHECK(status != NULL);
  const cJSON *ca_status = cJSON_GetObjectItem(status, "ca");
  CHECK(cJSON_GetObjectItem(ca_status, "rotations")->valuedouble == 1);
  CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(ca_status, "retiring")) == 1);
  CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(status, "nodes")) == STREAMS);
  CHECK_CONTAINS(json, "\"spiffe_id\":\t\"spiffe://cluster.local/ns/default/sa/bootstrap\"");
  cJSON_Delete(status);
  free(json);

  ms_ads_load_close(load);
  ms_xds_server_close(server);
  grpc_test_close_loop(&loop);
  SSL_CTX_free(client_ctx);
  server_test_pki_cleanup(&pki);
  X509_free(new_ca);
  X509_free(client_cert);
  EVP_PKEY_free(new_ca_key);
  EVP_PKEY_free(client_key);
  return grpc_test_finish("server_test");
}
