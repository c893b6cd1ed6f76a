/* server_main.c: the xds-server command (docs/xds-server.md). Flags are a
 * table of {name, parser}; SIGTERM and SIGINT close the server (after
 * --drain-delay, while /readyz fails and everything else is served) and the
 * loop drains before exit. Exit codes: 0 after a clean shutdown, 1 when the server
 * cannot start, 2 for bad usage. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "certs/certs.h"
#include "common/log.h"
#include "common/version.h"
#include "xds-server/server.h"

#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: xds-server --tls-cert FILE --tls-key FILE --ca-cert FILE --ca-key FILE\n"
    "                  (--client-ca FILE | --jwks-file FILE | --jwks-url URL |\n"
    "                   --accept-workload-certificates) [options]\n"
    "       xds-server --version | --help\n"
    "required:\n"
    "  --tls-cert FILE           the server's certificate chain (PEM)\n"
    "  --tls-key FILE            the server's private key (PEM)\n"
    "  --ca-cert FILE            the workload CA certificate (ECDSA or RSA; watched)\n"
    "  --ca-key FILE             its private key (watched)\n"
    "  and at least one way for sidecars to prove who they are:\n"
    "  --client-ca FILE          CAs of the sidecars' bootstrap certificates (their\n"
    "                            spiffe:// URI SAN is the identity they prove)\n"
    "  --jwks-file FILE          a JSON Web Key Set verifying service-account tokens (watched)\n"
    "  --jwks-url URL            fetch it from https://... or \"kubernetes\" (the API server)\n"
    "  --accept-workload-certificates\n"
    "                            also accept certificates this server issued as\n"
    "                            bootstrap credentials (off: they prove nothing here)\n"
    "options (default in brackets):\n"
    "  --listen IP:PORT          ADS over gRPC over mTLS; port 0 picks one [127.0.0.1:18000]\n"
    "  --status-address IP:PORT  GET /status (and /healthz, /readyz), or \"off\" for none\n"
    "                            [127.0.0.1:18001]\n"
    "  --health-address IP:PORT  GET /healthz and /readyz only, for probes from outside\n"
    "                            the pod [none]\n"
    "  --drain-delay DURATION    after SIGTERM, fail /readyz and keep serving this long\n"
    "                            before shutting down; 0s: at once [0s]\n"
    "  --config-dir DIR          JSON files of clusters, endpoints, listeners (watched)\n"
    "                            [none: nothing but secrets is served]\n"
    "  --serve-workload-keys     serve the SDS Secret \"default\" with a key made here,\n"
    "                            for Envoy clients [off: sidecars send CSRs over\n"
    "                            Istio's CA API and keep their keys]\n"
    "  --trust-domain NAME       SPIFFE trust domain [cluster.local]\n"
    "  --cert-ttl DURATION       issued certificates' lifetime, at least 2s [1h]\n"
    "  --ca-overlap DURATION     an old CA stays in the bundle this long [2 x --cert-ttl]\n"
    "  --csr-rate-limit N        CreateCertificate calls per SPIFFE ID and minute, and\n"
    "                            the burst; 0: no limit [10]\n"
    "  --debounce-ms N           quiet time after a file change before reloading,\n"
    "                            1 to 60000 [100]\n"
    "  --jwks-ca FILE            CAs of the URL's server [kubernetes: the pod's ca.crt;\n"
    "                            required for any other URL]\n"
    "  --jwks-token FILE         token sent to the URL [kubernetes: the pod's own; else none]\n"
    "  --jwks-refresh DURATION   fetch the URL this often [5m]\n"
    "  --token-issuer ISS        the tokens' \"iss\" [none; required with --jwks-file or\n"
    "                            --jwks-url]\n"
    "  --token-audience AUD      an \"aud\" tokens must hold [mtls-sidecar]\n"
    "  --token-skew DURATION     clock skew allowed for exp, nbf and iat [60s]\n"
    "  --max-connections N       open connections in all [10000]\n"
    "  --max-connections-per-peer N  open connections from one IP address [256]\n"
    "  --max-streams-per-connection N  concurrent ADS streams per connection [100]\n"
    "  --max-request-bytes N     the largest DiscoveryRequest [1048576]\n"
    "  --max-buffered-bytes N    unfinished requests one connection may hold [16777216]\n"
    "  --max-queued-bytes N      unsent responses one connection may hold [16777216]\n"
    "admission webhook (off unless --webhook-address is given; docs/xds-server.md):\n"
    "  --webhook-address IP:PORT  HTTPS POST /inject, /inject-namespace, /validate\n"
    "                            (AdmissionReview v1) [none; deploy: 0.0.0.0:15017]\n"
    "  --webhook-cert FILE       its certificate chain (PEM; watched) [--tls-cert]\n"
    "  --webhook-key FILE        its private key (watched) [--tls-key]\n"
    "  --webhook-max-body-bytes N  the largest AdmissionReview; more is 413 [1048576]\n"
    "  --webhook-max-connections N  open webhook connections; the oldest idle one is\n"
    "                            closed for a new one [256]\n"
    "  --webhook-request-timeout DURATION  for the handshake and each whole request [10s]\n"
    "  --webhook-idle-timeout DURATION  a keep-alive connection between reviews [120s]\n"
    "  --inject-image REPO       the sidecar image's repository [mtls-sidecar]\n"
    "  --inject-tag TAG          its tag, and the status annotation [this version]\n"
    "  --inject-config-map NAME  the sidecar's bootstrap ConfigMap [mtls-sidecar-config]\n"
    "  --namespace NS            the control plane's namespace, never injected\n"
    "                            [mtls-system]\n"
    "  (--token-audience is the audience of the token projected into injected pods)\n"
    "  --log-level LEVEL         debug, info, warn or error [info]\n"
    "  --version                 print the version and exit\n"
    "durations: 90s, 15m, 24h, 30d, or plain seconds. Flags take their value as\n"
    "--flag VALUE or --flag=VALUE. SIGTERM or SIGINT ends every stream (after\n"
    "--drain-delay) and exits 0; a second one ends them at once.\n"
    "See docs/xds-server.md.\n";

/* How durations are written, for the error messages. */
#define DURATION_FORMS ", like 90s, 15m, 24h, 30d or plain seconds"

typedef struct flags {
  ms_xds_server_options options;
  const char *log_level;
  int64_t drain_delay_seconds;
} flags;

/* A flag's parser stores `value` and returns 0, or -1 when the value is not
 * one the flag's table entry accepts. */
typedef int (*flag_parser)(flags *f, const char *value);

#define SET_TEXT(function, field)                \
  static int function(flags *f, const char *v) { \
    f->options.field = v;                        \
    return 0;                                    \
  }
SET_TEXT(set_listen, listen_address)
SET_TEXT(set_tls_cert, tls_cert)
SET_TEXT(set_tls_key, tls_key)
SET_TEXT(set_client_ca, client_ca)
SET_TEXT(set_ca_cert, ca_cert)
SET_TEXT(set_ca_key, ca_key)
SET_TEXT(set_config_dir, config_dir)
SET_TEXT(set_trust_domain, trust_domain)
SET_TEXT(set_jwks_file, jwks_file)
SET_TEXT(set_jwks_url, jwks_url)
SET_TEXT(set_jwks_ca, jwks_ca)
SET_TEXT(set_jwks_token, jwks_token)
SET_TEXT(set_token_issuer, token_issuer)
SET_TEXT(set_token_audience, token_audience)
SET_TEXT(set_webhook_address, webhook_address)
SET_TEXT(set_webhook_cert, webhook_cert)
SET_TEXT(set_webhook_key, webhook_key)
SET_TEXT(set_inject_image, inject_image)
SET_TEXT(set_inject_tag, inject_tag)
SET_TEXT(set_inject_config_map, inject_config_map)
SET_TEXT(set_namespace, control_plane_namespace)
#undef SET_TEXT

static int set_status_address(flags *f, const char *v) {
  f->options.status_address = strcmp(v, "off") == 0 ? NULL : v;
  return 0;
}

static int set_health_address(flags *f, const char *v) {
  f->options.health_address = v;
  return 0;
}

static int set_drain_delay(flags *f, const char *v) {
  int64_t seconds;
  if (ms_duration_parse(v, &seconds) != 0 || seconds < 0 || seconds > 3600) return -1;
  f->drain_delay_seconds = seconds;
  return 0;
}

/* Durations of at least `min` seconds (0 in the options means "the
 * default", so no duration flag takes 0). */
#define SET_DURATION(function, field, min)                                 \
  static int function(flags *f, const char *v) {                           \
    int64_t seconds;                                                       \
    if (ms_duration_parse(v, &seconds) != 0 || seconds < (min)) return -1; \
    f->options.field = seconds;                                            \
    return 0;                                                              \
  }
SET_DURATION(set_cert_ttl, cert_ttl_seconds, 2)
SET_DURATION(set_ca_overlap, ca_overlap_seconds, 1)
SET_DURATION(set_jwks_refresh, jwks_refresh_seconds, 1)
SET_DURATION(set_token_skew, token_skew_seconds, 1)
#undef SET_DURATION

/* parse_number reads a whole number from `min` to `max`. Returns 0 or -1. */
static int parse_number(const char *v, unsigned long long min, unsigned long long max,
                        unsigned long long *out) {
  char *end = NULL;
  if (*v < '0' || *v > '9') return -1;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (errno != 0 || *end != '\0' || n < min || n > max) return -1;
  *out = n;
  return 0;
}
#define SET_COUNT(function, field, min, max)               \
  static int function(flags *f, const char *v) {           \
    unsigned long long n;                                  \
    if (parse_number(v, (min), (max), &n) != 0) return -1; \
    f->options.field = (__typeof__(f->options.field))n;    \
    return 0;                                              \
  }
SET_COUNT(set_debounce, debounce_ms, 1, 60000)
SET_COUNT(set_max_connections, max_connections, 1, 1000000)
SET_COUNT(set_max_connections_per_peer, max_connections_per_peer, 1, 1000000)
SET_COUNT(set_max_streams, max_streams_per_connection, 1, 1000000)
SET_COUNT(set_max_request_bytes, max_request_bytes, 1, (unsigned long long)1 << 32)
SET_COUNT(set_max_buffered_bytes, max_buffered_bytes, 1, (unsigned long long)1 << 40)
SET_COUNT(set_max_queued_bytes, max_queued_bytes, 1, (unsigned long long)1 << 40)
SET_COUNT(set_webhook_max_body, webhook_max_body_bytes, 1024, (unsigned long long)1 << 30)
SET_COUNT(set_webhook_max_connections, webhook_max_connections, 1, 1000000)
#undef SET_COUNT

static int set_webhook_timeout(flags *f, const char *v) {
  int64_t seconds;
  if (ms_duration_parse(v, &seconds) != 0 || seconds < 1 || seconds > 600) return -1;
  f->options.webhook_request_timeout_ms = (uint64_t)seconds * 1000;
  return 0;
}

static int set_webhook_idle_timeout(flags *f, const char *v) {
  int64_t seconds;
  if (ms_duration_parse(v, &seconds) != 0 || seconds < 1 || seconds > 3600) return -1;
  f->options.webhook_idle_timeout_ms = (uint64_t)seconds * 1000;
  return 0;
}

static int set_csr_rate_limit(flags *f, const char *v) {
  unsigned long long n;
  if (parse_number(v, 0, 1000000, &n) != 0) return -1;
  f->options.csr_rate_limit = n == 0 ? -1 : (int)n; /* -1 in the options: no limit */
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

/* The flags that take a value: name, parser, and what the value may be (for
 * the message that refuses one; NULL for text that is checked when it is
 * used, such as a file name). */
static const struct {
  const char *name;
  flag_parser parse;
  const char *accepted;
} flag_table[] = {
    {"--listen", set_listen, NULL},
    {"--tls-cert", set_tls_cert, NULL},
    {"--tls-key", set_tls_key, NULL},
    {"--client-ca", set_client_ca, NULL},
    {"--ca-cert", set_ca_cert, NULL},
    {"--ca-key", set_ca_key, NULL},
    {"--config-dir", set_config_dir, NULL},
    {"--trust-domain", set_trust_domain, NULL},
    {"--cert-ttl", set_cert_ttl, "a duration of at least 2s" DURATION_FORMS},
    {"--ca-overlap", set_ca_overlap, "a duration of at least 1s" DURATION_FORMS},
    {"--status-address", set_status_address, NULL},
    {"--health-address", set_health_address, NULL},
    {"--drain-delay", set_drain_delay, "a duration from 0s to 1h" DURATION_FORMS},
    {"--debounce-ms", set_debounce, "a whole number of milliseconds from 1 to 60000"},
    {"--jwks-file", set_jwks_file, NULL},
    {"--jwks-url", set_jwks_url, NULL},
    {"--jwks-ca", set_jwks_ca, NULL},
    {"--jwks-token", set_jwks_token, NULL},
    {"--jwks-refresh", set_jwks_refresh, "a duration of at least 1s" DURATION_FORMS},
    {"--token-issuer", set_token_issuer, NULL},
    {"--token-audience", set_token_audience, NULL},
    {"--token-skew", set_token_skew, "a duration of at least 1s" DURATION_FORMS},
    {"--csr-rate-limit", set_csr_rate_limit,
     "a whole number from 0 (no limit) to 1000000 calls a minute"},
    {"--max-connections", set_max_connections, "a whole number from 1 to 1000000"},
    {"--max-connections-per-peer", set_max_connections_per_peer,
     "a whole number from 1 to 1000000"},
    {"--max-streams-per-connection", set_max_streams, "a whole number from 1 to 1000000"},
    {"--max-request-bytes", set_max_request_bytes,
     "a whole number of bytes from 1 to 4294967296 (4 GiB)"},
    {"--max-buffered-bytes", set_max_buffered_bytes,
     "a whole number of bytes from 1 to 1099511627776 (1 TiB)"},
    {"--max-queued-bytes", set_max_queued_bytes,
     "a whole number of bytes from 1 to 1099511627776 (1 TiB)"},
    {"--webhook-address", set_webhook_address, NULL},
    {"--webhook-cert", set_webhook_cert, NULL},
    {"--webhook-key", set_webhook_key, NULL},
    {"--webhook-max-body-bytes", set_webhook_max_body,
     "a whole number of bytes from 1024 to 1073741824 (1 GiB)"},
    {"--webhook-max-connections", set_webhook_max_connections, "a whole number from 1 to 1000000"},
    {"--webhook-request-timeout", set_webhook_timeout, "a duration from 1s to 10m" DURATION_FORMS},
    {"--webhook-idle-timeout", set_webhook_idle_timeout, "a duration from 1s to 1h" DURATION_FORMS},
    {"--inject-image", set_inject_image, NULL},
    {"--inject-tag", set_inject_tag, NULL},
    {"--inject-config-map", set_inject_config_map, NULL},
    {"--namespace", set_namespace, NULL},
    {"--log-level", set_log_level, "debug, info, warn or error"},
};

/* Flags that take no value. */
static bool *switch_of(flags *f, const char *arg) {
  if (strcmp(arg, "--accept-workload-certificates") == 0)
    return &f->options.accept_workload_certificates;
  if (strcmp(arg, "--serve-workload-keys") == 0) return &f->options.serve_workload_keys;
  return NULL;
}

/* parse_flags reads argv into `f`. Returns 0; 1 after --help or --version
 * (printed: exit 0); -1 after a usage error (printed: exit 2). */
static int parse_flags(int argc, char **argv, flags *f) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      fputs(usage_text, stdout);
      return 1;
    }
    if (strcmp(arg, "--version") == 0) {
      printf("xds-server %s (%s)\n", MS_VERSION, OPENSSL_VERSION_TEXT);
      return 1;
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
      fprintf(stderr, "xds-server: unknown flag %s (xds-server --help lists them)\n", arg);
      return -1;
    }
    const char *name = flag_table[k].name, *accepted = flag_table[k].accepted;
    const char *value = eq != NULL ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (value == NULL) {
      fprintf(stderr, "xds-server: %s needs a value%s%s\n", name, accepted != NULL ? ": " : "",
              accepted != NULL ? accepted : "");
      return -1;
    }
    if (flag_table[k].parse(f, value) != 0) {
      char escaped[MS_LOG_ESCAPED_LEN];
      fprintf(stderr, "xds-server: %s \"%s\" is not accepted: give %s\n", name,
              ms_log_escape(value, MS_LOG_ESCAPE_MAX, escaped, sizeof(escaped)), accepted);
      return -1;
    }
  }
  return 0;
}

/* check_required says which required flags are missing. Returns 0 when none
 * is, else -1 (printed: exit 2). --listen and --status-address have
 * defaults; the ways to prove an identity are checked by the server. */
static int check_required(const ms_xds_server_options *o) {
  const char *missing[4];
  size_t count = 0;
  if (o->tls_cert == NULL) missing[count++] = "--tls-cert";
  if (o->tls_key == NULL) missing[count++] = "--tls-key";
  if (o->ca_cert == NULL) missing[count++] = "--ca-cert";
  if (o->ca_key == NULL) missing[count++] = "--ca-key";
  if (count == 0) return 0;
  fprintf(stderr, "xds-server: ");
  for (size_t i = 0; i < count; i++)
    fprintf(stderr, "%s%s", i == 0 ? "" : i + 1 == count ? " and " : ", ", missing[i]);
  fprintf(stderr, " %s required (xds-server --help lists every flag)\n", count == 1 ? "is" : "are");
  return -1;
}

static ms_xds_server *server;
static int64_t drain_delay_seconds;
static uv_signal_t sigterm, sigint;
static uv_timer_t drain_timer;

static void shut_down(void) {
  ms_xds_server_close(server);
  server = NULL;
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_close((uv_handle_t *)&sigint, NULL);
  uv_close((uv_handle_t *)&drain_timer, NULL);
}

static void on_drained(uv_timer_t *timer) {
  (void)timer;
  ms_log(MS_LOG_INFO, "xds-server: the drain delay is over, shutting down");
  shut_down();
}

/* on_signal: the first SIGTERM or SIGINT starts the drain delay (when there
 * is one): /readyz fails while streams, new connections and signing go on,
 * so that the endpoints still routing to this replica are updated before it
 * goes. The end of the delay, or a second signal, shuts down. */
static void on_signal(uv_signal_t *handle, int signum) {
  (void)handle;
  const char *name = signum == SIGTERM ? "SIGTERM" : "SIGINT";
  if (drain_delay_seconds > 0 && !uv_is_active((uv_handle_t *)&drain_timer)) {
    ms_log(MS_LOG_INFO,
           "xds-server: %s received; draining: /readyz fails, and streams and new connections "
           "are served for %lld s more (--drain-delay); a second signal shuts down at once",
           name, (long long)drain_delay_seconds);
    ms_xds_server_drain(server);
    uv_timer_start(&drain_timer, on_drained, (uint64_t)drain_delay_seconds * 1000, 0);
    return;
  }
  ms_log(MS_LOG_INFO, "xds-server: %s received, shutting down", name);
  shut_down();
}

int main(int argc, char **argv) {
  flags f = {.options = {.listen_address = "127.0.0.1:18000", .status_address = "127.0.0.1:18001"}};
  int parsed = parse_flags(argc, argv, &f);
  if (parsed != 0) return parsed > 0 ? 0 : EXIT_USAGE;
  if (check_required(&f.options) != 0) return EXIT_USAGE;
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
  if (f.options.webhook_address != NULL)
    ms_log(MS_LOG_INFO, "xds-server: admission webhook (HTTPS) on %s (port %u)",
           f.options.webhook_address, ms_xds_server_webhook_port(server));
  if (f.options.health_address != NULL)
    ms_log(MS_LOG_INFO, "xds-server: health checks (/healthz, /readyz) on %s (port %u)",
           f.options.health_address, ms_xds_server_health_port(server));
  drain_delay_seconds = f.drain_delay_seconds;
  uv_timer_init(&loop, &drain_timer);
  uv_signal_init(&loop, &sigterm);
  uv_signal_init(&loop, &sigint);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_run(&loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&loop);
  if (rc != 0)
    ms_log(MS_LOG_ERROR, "xds-server: the loop did not close cleanly: %s", uv_strerror(rc));
  ms_log(MS_LOG_INFO, "xds-server: stopped");
  return rc == 0 ? 0 : EXIT_FAILURE;
}
