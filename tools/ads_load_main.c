/* ads_load_main.c: ads_load, the xds-server benchmark (docs/xds-server.md).
 *
 *   ads_load --address 127.0.0.1:18000 --ca CA.crt --cert CLIENT.crt --key CLIENT.key
 *            [--streams 10000] [--channels 100] [--server-pid PID]
 *            [--rotate-ca CA.crt,CA.key] [--config-file DIR/ads_load.json] [--rounds 3]
 *   ads_load --csr N ... [--channels M] [--concurrency C] [--server-pid PID]
 *            [--jwks-out FILE [--token-issuer ISS] [--token-audience AUD]
 *             [--trust-domain TD]] [--spiffe-id ID]
 *
 * With --csr, the CreateCertificate benchmark instead (ms_csr_bench_run):
 * N sidecars with their own keys and CSRs (made first, timed apart) over M
 * channels; one round trip, signings per second, the time for all N, the
 * server's CPU per signing.
 *
 * Opens N ADS streams over M channels (ads_load.h), waits until every one
 * has its first CDS, EDS and SDS responses, then for each round: with
 * --rotate-ca writes a new CA over the server's watched --ca-cert/--ca-key
 * and measures the time until every stream received the new bundle (SDS);
 * with --config-file writes a cluster with a new connect_timeout into the
 * server's config directory and measures the time until every stream
 * received the new CDS version. With --server-pid it reads the server's RSS
 * before and after the streams opened: memory per stream = delta / N.
 * Exit status 0 when every stream got every change within --timeout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certs/certs.h"
#include "tools/ads_load.h"

static uv_loop_t loop;
static ms_ads_load *load;

static void usage(void) {
  fprintf(stderr,
          "usage: ads_load --address HOST:PORT --ca CA --cert CRT --key KEY [--streams N]\n"
          "       [--channels M] [--server-pid PID] [--rotate-ca CRT,KEY]\n"
          "       [--config-file FILE] [--rounds R] [--timeout-ms MS]\n"
          "       ads_load --csr N --address HOST:PORT --ca CA --cert CRT --key KEY\n"
          "       [--channels M] [--concurrency C] [--server-pid PID] [--jwks-out FILE\n"
          "       [--token-issuer ISS] [--token-audience AUD] [--trust-domain TD]]\n"
          "       [--spiffe-id ID]\n");
  exit(2);
}

/* rss_kib returns a process's VmRSS in KiB, or -1. */
static long rss_kib(const char *pid) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%s/status", pid);
  FILE *f = fopen(path, "r");
  long kib = -1;
  while (f != NULL && fgets(line, sizeof(line), f) != NULL)
    if (strncmp(line, "VmRSS:", 6) == 0) kib = strtol(line + 6, NULL, 10);
  if (f != NULL) fclose(f);
  return kib;
}

static void on_tick(uv_timer_t *timer) {}

typedef bool (*done_fn)(void *arg);

static bool run_until(done_fn done, void *arg, uint64_t timeout_ms) {
  uv_timer_t tick;
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, on_tick, 2, 2);
  uint64_t deadline = uv_now(&loop) + timeout_ms;
  while (!done(arg) && uv_now(&loop) < deadline)
    uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  return done(arg);
}

static int wanted;

static bool all_ready(void *arg) {
  ms_ads_load_stats stats;
  ms_ads_load_stats_get(load, &stats);
  return stats.ready + stats.closed >= wanted;
}

static bool all_updated(void *arg) {
  return ms_ads_load_updated(load, *(ms_ads_load_type *)arg, NULL) >= wanted;
}

static bool settle(void *arg) {
  return false;
}

static SSL_CTX *client_ctx(const char *ca, const char *crt, const char *key) {
  SSL_CTX *ctx = NULL;
  char err[MS_ERR_LEN];
  if (ms_client_ctx_load_files(ca, crt, key, &ctx, err, sizeof(err)) != 0) {
    fprintf(stderr, "ads_load: %s\n", err);
    exit(1);
  }
  return ctx;
}

/* rotate_ca writes a new CA over the server's CA files (key first). */
static int rotate_ca(const char *paths, int round) {
  char crt[1024], key[1024];
  const char *comma = strchr(paths, ',');
  if (comma == NULL) return -1;
  snprintf(crt, sizeof(crt), "%.*s", (int)(comma - paths), paths);
  snprintf(key, sizeof(key), "%s", comma + 1);
  X509 *cert;
  EVP_PKEY *pkey;
  char err[MS_ERR_LEN], cn[64];
  snprintf(cn, sizeof(cn), "ads_load CA %d", round);
  int rc = ms_ca_new(cn, 86400, &cert, &pkey, err, sizeof(err));
  if (rc == 0)
    rc = ms_pem_write_key(key, pkey, err, sizeof(err)) ||
         ms_pem_write_cert(crt, cert, NULL, err, sizeof(err));
  if (rc != 0) fprintf(stderr, "ads_load: %s\n", err);
  if (rc == 0) {
    X509_free(cert);
    EVP_PKEY_free(pkey);
  }
  return rc;
}

static int write_config(const char *path, int round) {
  char tmp[1100];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL) return -1;
  fprintf(f,
          "{\"@type\": \"type.googleapis.com/envoy.config.cluster.v3.Cluster\",\n"
          " \"name\": \"ads-load-trigger\", \"type\": \"STATIC\", \"connect_timeout\": \"%ds\"}\n",
          round + 1);
  return fclose(f) == 0 && rename(tmp, path) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *address = NULL, *ca = NULL, *crt = NULL, *key = NULL, *pid = NULL;
  const char *rotate = NULL, *config_file = NULL;
  int streams = 10000, channels = 100, rounds = 3;
  uint64_t timeout_ms = 30000;
  ms_csr_bench_options csr = {
      .concurrency = 1000,
      .token_issuer = "https://kubernetes.default.svc.cluster.local",
      .token_audience = "mtls-sidecar",
      .trust_domain = "cluster.local",
      .spiffe_id = "spiffe://cluster.local/ns/default/sa/bootstrap",
  };
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) usage();
    const char *name = argv[i], *value = argv[++i];
    if (strcmp(name, "--address") == 0)
      address = value;
    else if (strcmp(name, "--ca") == 0)
      ca = value;
    else if (strcmp(name, "--cert") == 0)
      crt = value;
    else if (strcmp(name, "--key") == 0)
      key = value;
    else if (strcmp(name, "--streams") == 0)
      streams = atoi(value);
    else if (strcmp(name, "--channels") == 0)
      channels = atoi(value);
    else if (strcmp(name, "--server-pid") == 0)
      pid = value;
    else if (strcmp(name, "--rotate-ca") == 0)
      rotate = value;
    else if (strcmp(name, "--config-file") == 0)
      config_file = value;
    else if (strcmp(name, "--rounds") == 0)
      rounds = atoi(value);
    else if (strcmp(name, "--timeout-ms") == 0)
      timeout_ms = (uint64_t)atoll(value);
    else if (strcmp(name, "--csr") == 0)
      csr.sidecars = atoi(value);
    else if (strcmp(name, "--concurrency") == 0)
      csr.concurrency = atoi(value);
    else if (strcmp(name, "--jwks-out") == 0)
      csr.jwks_out = value;
    else if (strcmp(name, "--token-issuer") == 0)
      csr.token_issuer = value;
    else if (strcmp(name, "--token-audience") == 0)
      csr.token_audience = value;
    else if (strcmp(name, "--trust-domain") == 0)
      csr.trust_domain = value;
    else if (strcmp(name, "--spiffe-id") == 0)
      csr.spiffe_id = value;
    else
      usage();
  }
  if (address == NULL || ca == NULL || crt == NULL || key == NULL || streams < 1 || channels < 1)
    usage();
  uv_loop_init(&loop);
  SSL_CTX *ctx = client_ctx(ca, crt, key);
  if (csr.sidecars > 0) {
    csr.address = address;
    csr.ssl_ctx = ctx;
    csr.channels = channels;
    csr.server_pid = pid;
    csr.timeout_ms = timeout_ms;
    int rc = ms_csr_bench_run(&loop, &csr);
    for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; i++)
      uv_sleep(10);
    SSL_CTX_free(ctx);
    return rc == 0 ? 0 : 1;
  }
  long rss_before = pid != NULL ? rss_kib(pid) : -1;
  wanted = streams;
  ms_ads_load_options options = {
      .address = address, .ssl_ctx = ctx, .streams = streams, .channels = channels};
  if (ms_ads_load_start(&loop, &options, &load) != 0) {
    fprintf(stderr, "ads_load: cannot start\n");
    return 1;
  }
  uint64_t start = uv_now(&loop);
  bool ready = run_until(all_ready, NULL, timeout_ms);
  ms_ads_load_stats stats;
  ms_ads_load_stats_get(load, &stats);
  printf("streams: %d on %d channels; ready: %d in %llu ms; closed: %d%s%s\n", streams, channels,
         stats.ready, (unsigned long long)(uv_now(&loop) - start), stats.closed,
         stats.closed > 0 ? "; last reason: " : "",
         stats.closed > 0 ? stats.last_close_reason : "");
  int failed = !ready || stats.ready < streams;
  run_until(settle, NULL, 1000); /* let ACKs land and the heap settle */
  if (pid != NULL) {
    long rss_after = rss_kib(pid);
    printf("server RSS: %ld KiB before, %ld KiB with %d streams: %.1f KiB per stream\n", rss_before,
           rss_after, streams, (double)(rss_after - rss_before) / streams);
  }
  for (int round = 0; round < rounds && !failed; round++) {
    struct {
      const char *what;
      const char *arg;
      ms_ads_load_type type;
    } triggers[2] = {{"CA rotation (SDS bundle)", rotate, MS_ADS_LOAD_SDS},
                     {"config change (CDS)", config_file, MS_ADS_LOAD_CDS}};
    for (int t = 0; t < 2; t++) {
      if (triggers[t].arg == NULL) continue;
      ms_ads_load_mark(load);
      int rc = t == 0 ? rotate_ca(triggers[t].arg, round) : write_config(triggers[t].arg, round);
      if (rc != 0) {
        failed = 1;
        break;
      }
      bool all = run_until(all_updated, &triggers[t].type, timeout_ms);
      int64_t last_ms = 0;
      int updated = ms_ads_load_updated(load, triggers[t].type, &last_ms);
      printf("round %d: %s reached %d/%d streams, the last after %lld ms\n", round + 1,
             triggers[t].what, updated, streams, (long long)last_ms);
      failed |= !all;
      run_until(settle, NULL, 500);
    }
  }
  ms_ads_load_close(load);
  for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; i++)
    uv_sleep(10);
  SSL_CTX_free(ctx);
  return failed ? 1 : 0;
}
