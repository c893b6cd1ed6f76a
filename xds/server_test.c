/* server_test.c: xds-server in-process against 200 simulated ADS clients
 * (server_load.h) over our gRPC client, on loopback: every stream gets CDS,
 * EDS and SDS and ACKs; an edited file reaches all of them (and only CDS
 * changes); a CA rotation through the watched CA files reaches all of them;
 * /status counts them; everything closes cleanly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "certs/certs.h"
#include "xds/grpc_test_util.h"
#include "xds/server.h"
#include "xds/server_load.h"

#define STREAMS 200
#define CHANNELS 4

static uv_loop_t loop;
static char dir[512];

static void die(const char *what, const char *err) {
  fprintf(stderr, "%s: %s\n", what, err);
  exit(1);
}

static void path_of(char *out, size_t len, const char *name) {
  snprintf(out, len, "%s/%s", dir, name);
}

static void write_text(const char *name, const char *text) {
  char path[1024], tmp[1100];
  path_of(path, sizeof(path), name);
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
    die("write", path);
}

/* write_ca makes a CA and writes it to ca/ca.crt and ca/ca.key. */
static void write_ca(const char *cn, X509 **out_cert, EVP_PKEY **out_key) {
  char err[MS_ERR_LEN], crt[1024], key[1024];
  if (ms_ca_new(cn, 86400, out_cert, out_key, err, sizeof(err)) != 0) die("ms_ca_new", err);
  path_of(crt, sizeof(crt), "ca/ca.crt");
  path_of(key, sizeof(key), "ca/ca.key");
  if (ms_pem_write_key(key, *out_key, err, sizeof(err)) != 0 ||
      ms_pem_write_cert(crt, *out_cert, NULL, err, sizeof(err)) != 0)
    die("write CA", err);
}

static void issue(X509 *ca, EVP_PKEY *ca_key, const char *uri, bool server, X509 **cert,
                  EVP_PKEY **key) {
  const char *dns[1] = {"localhost"}, *ips[1] = {"127.0.0.1"}, *uris[1] = {uri};
  ms_issue_request request = {
      .common_name = server ? "xds-server" : "bootstrap",
      .dns = dns,
      .dns_count = server,
      .ips = ips,
      .ip_count = server,
      .uris = uris,
      .uri_count = uri != NULL,
      .client = !server,
      .server = server,
      .ttl_seconds = 3600,
  };
  char err[MS_ERR_LEN];
  if (ms_cert_issue(&request, ca, ca_key, cert, key, err, sizeof(err)) != 0) die("issue", err);
}

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
  const char *tmp = getenv("TEST_TMPDIR");
  snprintf(dir, sizeof(dir), "%s/server_test", tmp != NULL ? tmp : "/tmp");
  char path[1024];
  mkdir(dir, 0700);
  path_of(path, sizeof(path), "ca");
  mkdir(path, 0700);
  path_of(path, sizeof(path), "conf");
  mkdir(path, 0700);
  uv_loop_init(&loop);

  X509 *ca, *server_cert, *client_cert;
  EVP_PKEY *ca_key, *server_key, *client_key;
  write_ca("first CA", &ca, &ca_key);
  issue(ca, ca_key, NULL, true, &server_cert, &server_key);
  issue(ca, ca_key, "spiffe://cluster.local/ns/default/sa/bootstrap", false, &client_cert,
        &client_key);
  char err[MS_ERR_LEN], server_crt[1024], server_key_path[1024], ca_crt[1024], ca_key_path[1024],
      conf[1024];
  path_of(server_crt, sizeof(server_crt), "server.crt");
  path_of(server_key_path, sizeof(server_key_path), "server.key");
  path_of(ca_crt, sizeof(ca_crt), "ca/ca.crt");
  path_of(ca_key_path, sizeof(ca_key_path), "ca/ca.key");
  path_of(conf, sizeof(conf), "conf");
  if (ms_pem_write_cert(server_crt, server_cert, NULL, err, sizeof(err)) != 0 ||
      ms_pem_write_key(server_key_path, server_key, err, sizeof(err)) != 0)
    die("write server", err);
  write_text("conf/backend.json", config("1s"));

  SSL_CTX *client_ctx = SSL_CTX_new(TLS_method());
  SSL_CTX_use_certificate(client_ctx, client_cert);
  SSL_CTX_use_PrivateKey(client_ctx, client_key);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx), ca);
  SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL);

  ms_xds_server_options options = {
      .listen_address = "127.0.0.1:0",
      .tls_cert = server_crt,
      .tls_key = server_key_path,
      .ca_cert = ca_crt,
      .ca_key = ca_key_path,
      .config_dir = conf,
      .status_address = "127.0.0.1:0",
      .debounce_ms = 50,
      /* The load's callers present a certificate of the workload CA and
       * take their keys from the server (Envoy's way). */
      .accept_workload_certificates = true,
      .serve_workload_keys = true,
  };
  ms_xds_server *server = NULL;
  if (ms_xds_server_new(&loop, &options, &server, err, sizeof(err)) != 0)
    die("ms_xds_server_new", err);
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
  write_text("conf/backend.json", config("2s"));
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
  write_ca("second CA", &new_ca, &new_ca_key);
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
  X509_free(ca);
  X509_free(new_ca);
  X509_free(server_cert);
  X509_free(client_cert);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(new_ca_key);
  EVP_PKEY_free(server_key);
  EVP_PKEY_free(client_key);
  return grpc_test_finish("server_test");
}
