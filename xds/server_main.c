/* server_main.c: the xds-server command (docs/xds-server.md). Flags are a
 * table of {name, parser}; SIGTERM and SIGINT close the server and the loop
 * drains before exit. Exit codes: 0 after a clean shutdown, 1 when the server
 * cannot start, 2 for bad usage. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certs/certs.h"
#include "sidecar/log.h"
#include "xds/server.h"

#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: xds-server --tls-cert FILE --tls-key FILE --ca-cert FILE --ca-key FILE [options]\n"
    "  --listen IP:PORT          ADS over gRPC over mTLS (default 127.0.0.1:18000)\n"
    "  --tls-cert FILE           the server's certificate chain (PEM)\n"
    "  --tls-key FILE            the server's private key (PEM)\n"
    "  --client-ca FILE          CAs of the sidecars' bootstrap certificates (their\n"
    "                            spiffe:// URI SAN is the identity they prove)\n"
    "  --accept-workload-certificates\n"
    "                            also accept certificates this server issued as\n"
    "                            bootstrap credentials (off: they prove nothing here)\n"
    "  --serve-workload-keys     serve the SDS Secret \"default\" with a key made here,\n"
    "                            for Envoy clients (off: sidecars send CSRs over\n"
    "                            Istio's CA API and keep their keys)\n"
    "  --ca-cert FILE            the workload CA certificate (ECDSA or RSA; watched)\n"
    "  --ca-key FILE             its private key (watched)\n"
    "  --config-dir DIR          JSON files of clusters, endpoints, listeners (watched)\n"
    "  --trust-domain NAME       SPIFFE trust domain (default cluster.local)\n"
    "  --cert-ttl DURATION       issued certificates' lifetime (default 1h)\n"
    "  --ca-overlap DURATION     an old CA stays in the bundle this long (default 2x TTL)\n"
    "  --status-address IP:PORT  GET /status (default 127.0.0.1:18001; \"off\" for none)\n"
    "  --csr-rate-limit N        CreateCertificate calls per SPIFFE ID and minute\n"
    "                            (and the burst; default 10; 0: no limit)\n"
    "  --debounce-ms N           quiet time after a file change before reloading (100)\n"
    "  --jwks-file FILE          a JSON Web Key Set verifying service-account tokens (watched)\n"
    "  --jwks-url URL            fetch it from https://... or \"kubernetes\" (the API server)\n"
    "  --jwks-ca FILE            CAs of the URL's server (kubernetes: the pod's ca.crt)\n"
    "  --jwks-token FILE         token sent to the URL (kubernetes: the pod's own)\n"
    "  --jwks-refresh DURATION   fetch the URL this often (default 5m)\n"
    "  --token-issuer ISS        the tokens' \"iss\"; required with --jwks-file or --jwks-url\n"
    "  --token-audience AUD      an \"aud\" tokens must hold (default mtls-sidecar)\n"
    "  --token-skew DURATION     clock skew allowed for exp and nbf (default 60s)\n"
    "  --log-level LEVEL         debug, info, warn or error (default info)\n"
    "durations: 90s, 15m, 24h, 30d, or plain seconds\n";

typedef struct flags {
  ms_xds_server_options options;
  const char *log_level;
} flags;

typedef int (*flag_parser)(flags *f, const char *value);

static int set_listen(flags *f, const char *v) {
  f->options.listen_address = v;
  return 0;
}
static int set_tls_cert(flags *f, const char *v) {
  f->options.tls_cert = v;
  return 0;
}
static int set_tls_key(flags *f, const char *v) {
  f->options.tls_key = v;
  return 0;
}
static int set_client_ca(flags *f, const char *v) {
  f->options.client_ca = v;
  return 0;
}
static int set_ca_cert(flags *f, const char *v) {
  f->options.ca_cert = v;
  return 0;
}
static int set_ca_key(flags *f, const char *v) {
  f->options.ca_key = v;
  return 0;
}
static int set_config_dir(flags *f, const char *v) {
  f->options.config_dir = v;
  return 0;
}
static int set_trust_domain(flags *f, const char *v) {
  f->options.trust_domain = v;
  return 0;
}
static int set_cert_ttl(flags *f, const char *v) {
  return ms_duration_parse(v, &f->options.cert_ttl_seconds) != 0 || f->options.cert_ttl_seconds < 2
             ? -1
             : 0;
}
static int set_ca_overlap(flags *f, const char *v) {
  return ms_duration_parse(v, &f->options.ca_overlap_seconds) != 0 ? -1 : 0;
}
static int set_status_address(flags *f, const char *v) {
  f->options.status_address = strcmp(v, "off") == 0 ? NULL : v;
  return 0;
}
static int set_debounce(flags *f, const char *v) {
  char *end = NULL;
  long ms = strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || ms < 1 || ms > 60000) return -1;
  f->options.debounce_ms = (uint32_t)ms;
  return 0;
}
static int set_jwks_file(flags *f, const char *v) {
  f->options.jwks_file = v;
  return 0;
}
static int set_jwks_url(flags *f, const char *v) {
  f->options.jwks_url = v;
  return 0;
}
static int set_jwks_ca(flags *f, const char *v) {
  f->options.jwks_ca = v;
  return 0;
}
static int set_jwks_token(flags *f, const char *v) {
  f->options.jwks_token = v;
  return 0;
}
static int set_jwks_refresh(flags *f, const char *v) {
  return ms_duration_parse(v, &f->options.jwks_refresh_seconds) != 0 ||
                 f->options.jwks_refresh_seconds < 1
             ? -1
             : 0;
}
static int set_token_issuer(flags *f, const char *v) {
  f->options.token_issuer = v;
  return 0;
}
static int set_token_audience(flags *f, const char *v) {
  f->options.token_audience = v;
  return 0;
}
static int set_token_skew(flags *f, const char *v) {
  return ms_duration_parse(v, &f->options.token_skew_seconds) != 0 ? -1 : 0;
}
static int set_csr_rate_limit(flags *f, const char *v) {
  char *end = NULL;
  long n = strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || n < 0 || n > 1000000) return -1;
  f->options.csr_rate_limit = n == 0 ? -1 : (int)n;
  return 0;
}
static int set_log_level(flags *f, const char *v) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++) {
    if (strcmp(v, names[i]) == 0) {
      ms_log_set_level((ms_log_level)i);
      return 0;
    }
  }
  return -1;
}

static const struct {
  const char *name;
  flag_parser parse;
} flag_table[] = {
    {"--listen", set_listen},
    {"--tls-cert", set_tls_cert},
    {"--tls-key", set_tls_key},
    {"--client-ca", set_client_ca},
    {"--ca-cert", set_ca_cert},
    {"--ca-key", set_ca_key},
    {"--config-dir", set_config_dir},
    {"--trust-domain", set_trust_domain},
    {"--cert-ttl", set_cert_ttl},
    {"--ca-overlap", set_ca_overlap},
    {"--status-address", set_status_address},
    {"--debounce-ms", set_debounce},
    {"--jwks-file", set_jwks_file},
    {"--jwks-url", set_jwks_url},
    {"--jwks-ca", set_jwks_ca},
    {"--jwks-token", set_jwks_token},
    {"--jwks-refresh", set_jwks_refresh},
    {"--token-issuer", set_token_issuer},
    {"--token-audience", set_token_audience},
    {"--token-skew", set_token_skew},
    {"--csr-rate-limit", set_csr_rate_limit},
    {"--log-level", set_log_level},
};

/* Flags that take no value. */
static bool *switch_of(flags *f, const char *arg) {
  if (strcmp(arg, "--accept-workload-certificates") == 0)
    return &f->options.accept_workload_certificates;
  if (strcmp(arg, "--serve-workload-keys") == 0) return &f->options.serve_workload_keys;
  return NULL;
}

static int parse_flags(int argc, char **argv, flags *f) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      fputs(usage_text, stdout);
      exit(0);
    }
    bool *on = switch_of(f, arg);
    if (on != NULL) {
      *on = true;
      continue;
    }
    const char *eq = strchr(arg, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    size_t k = 0;
    size_t count = sizeof(flag_table) / sizeof(flag_table[0]);
    while (k < count && !(strlen(flag_table[k].name) == name_len &&
                          strncmp(flag_table[k].name, arg, name_len) == 0))
      k++;
    if (k == count) {
      fprintf(stderr, "xds-server: unknown flag %s\n%s", arg, usage_text);
      return -1;
    }
    const char *value = eq != NULL ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (value == NULL || flag_table[k].parse(f, value) != 0) {
      fprintf(stderr, "xds-server: bad or missing value for %s%s%s\n", flag_table[k].name,
              value != NULL ? ": " : "", value != NULL ? value : "");
      return -1;
    }
  }
  return 0;
}

static ms_xds_server *server;

static void on_signal(uv_signal_t *handle, int signum) {
  ms_log(MS_LOG_INFO, "xds-server: %s received, shutting down",
         signum == SIGTERM ? "SIGTERM" : "SIGINT");
  ms_xds_server_close(server);
  server = NULL;
  uv_close((uv_handle_t *)handle->data, NULL);
  uv_close((uv_handle_t *)handle, NULL);
}

int main(int argc, char **argv) {
  flags f = {.options = {.listen_address = "127.0.0.1:18000", .status_address = "127.0.0.1:18001"}};
  if (parse_flags(argc, argv, &f) != 0) return EXIT_USAGE;
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  uv_loop_init(&loop);
  char err[1024];
  if (ms_xds_server_new(&loop, &f.options, &server, err, sizeof(err)) != 0) {
    ms_log(MS_LOG_ERROR, "xds-server: %s", err);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return EXIT_FAILURE;
  }
  ms_log(MS_LOG_INFO, "xds-server: serving ADS on %s (port %u), status on %s (port %u)",
         f.options.listen_address, ms_xds_server_port(server),
         f.options.status_address != NULL ? f.options.status_address : "off",
         ms_xds_server_status_port(server));
  uv_signal_t sigterm, sigint;
  uv_signal_init(&loop, &sigterm);
  uv_signal_init(&loop, &sigint);
  sigterm.data = &sigint;
  sigint.data = &sigterm;
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_run(&loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&loop);
  if (rc != 0)
    ms_log(MS_LOG_ERROR, "xds-server: the loop did not close cleanly: %s", uv_strerror(rc));
  ms_log(MS_LOG_INFO, "xds-server: stopped");
  return rc == 0 ? 0 : EXIT_FAILURE;
}
