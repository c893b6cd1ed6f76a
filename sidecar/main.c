/* sidecar: originates mutual TLS for the application next to it.
 *
 *   sidecar --config FILE              run
 *   sidecar --validate --config FILE   check the config and its certificates, then exit
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/log.h"
#include "common/version.h"
#include "sidecar/admin/admin.h"
#include "sidecar/config/config.h"
#include "sidecar/control/config_check.h"
#include "sidecar/control/server.h"
#include "sidecar/identity/identity.h"
#include "sidecar/xds/xds_source.h"

static void usage(FILE *to) {
  fprintf(to,
          "usage: sidecar --config FILE [--validate] [--log-level debug|info|warn|error]\n"
          "               [--node-id ID] [--health-address HOST:PORT]\n"
          "       sidecar --version | --help\n"
          "\n"
          "  --config FILE     the JSON configuration (README.md, docs/configuration.md;\n"
          "                    examples/sidecar.json to start from)\n"
          "  --validate        check the configuration, its certificates and its ports, then\n"
          "                    exit: 0 when valid, 1 with every problem listed\n"
          "  --log-level L     the least important lines to print (default info)\n"
          "  --node-id ID      the xDS node id, over the file's xds.node.id (Envoy's\n"
          "                    --service-node): an injected pod passes its name\n"
          "  --health-address HOST:PORT\n"
          "                    also answer GET /ready there, and nothing else, for the\n"
          "                    kubelet's probes (the admin endpoint stays on loopback)\n"
          "  --version         print the version and exit\n"
          "\n"
          "signals:\n"
          "  SIGHUP            reload the configuration file and every certificate, key and\n"
          "                    CA; a file with problems is refused (each one logged) and the\n"
          "                    configuration in force stays\n"
          "  SIGTERM, SIGINT   drain: stop accepting, let connections finish for up to\n"
          "                    drain_timeout_ms, exit 0; a second SIGINT stops at once\n"
          "\n"
          "admin endpoint (admin.address, default 127.0.0.1:15000):\n"
          "  GET  /ready              200 LIVE when serving, else 503 and why (also while\n"
          "                           draining, and with no listener at all)\n"
          "  GET  /server_info        version, state, uptime, workers, config path\n"
          "  GET  /clusters           clusters and endpoints: TLS generation, ejections,\n"
          "                           connections, failures, last errors\n"
          "  GET  /certs              every TLS context in use: certificates and expiry\n"
          "  GET  /config_dump        the configuration in force (keys redacted), xDS status\n"
          "  GET  /stats              counters and latency quantiles (JSON)\n"
          "  GET  /stats/prometheus   the same for Prometheus\n"
          "  POST /quitquitquit       drain and exit, like SIGTERM\n");
}

/* print_problems writes each problem on its own line, then their count
 * with `outcome` ("; not started"). */
static void print_problems(const char *config_path, const ms_config_errors *problems,
                           const char *outcome) {
  for (size_t i = 0; i < problems->count; i++)
    fprintf(stderr, "%s\n", problems->lines[i]);
  fprintf(stderr, "%s: %zu problem%s%s\n", config_path, problems->count, ms_plural(problems->count),
          outcome);
}

/* --validate: the file was read; now what it names outside itself
 * (certificates, ports), every problem listed. Returns the exit code. */
static int validate(const char *config_path, const ms_config *config) {
  ms_config_errors problems = {0}, notes = {0};
  size_t count = ms_config_check_outside(config, true, &problems, &notes);
  for (size_t i = 0; i < notes.count; i++)
    printf("%s\n", notes.lines[i]);
  if (count)
    print_problems(config_path, &problems, "");
  else
    printf("%s: valid (%zu listener%s, %zu cluster%s)\n", config_path, config->listener_count,
           ms_plural(config->listener_count), config->cluster_count,
           ms_plural(config->cluster_count));
  ms_config_errors_cleanup(&problems);
  ms_config_errors_cleanup(&notes);
  return count ? 1 : 0;
}

/* not_started lists every problem of a configuration that could not be
 * put in force (the first one found, `err`, alone when the checks find
 * none: memory, a worker that did not start). */
static void not_started(const char *config_path, const ms_config *config, const char *err) {
  ms_config_errors problems = {0};
  if (ms_config_check_outside(config, false, &problems, NULL) == 0 || problems.count == 0)
    ms_config_errors_add(&problems, "%s", err);
  print_problems(config_path, &problems, "; not started");
  ms_config_errors_cleanup(&problems);
}

/* The admin endpoint reads the server, so the server does not call it: it
 * gets this attachment (ms_server_attachment), which it starts before its
 * workers and closes when it stops. */
typedef struct admin_attachment {
  uv_loop_t *loop;
  const ms_address *address;        /* the configuration's admin.address, read at start */
  ms_admin *admin;                  /* NULL: not listening */
  const ms_address *health_address; /* --health-address; NULL: none */
  ms_admin *health;                 /* NULL: not listening */
} admin_attachment;

static int admin_start(void *arg, ms_server *server, char *err, size_t err_len) {
  admin_attachment *attachment = arg;
  int rc = ms_admin_start(attachment->loop, attachment->address, server, &attachment->admin);
  if (rc != 0) {
    snprintf(err, err_len, "admin.address: cannot listen on %s: %s", attachment->address->text,
             uv_strerror(rc));
    return -1;
  }
  if (attachment->health_address != NULL &&
      (rc = ms_admin_health_start(attachment->loop, attachment->health_address, server,
                                  &attachment->health)) != 0) {
    snprintf(err, err_len, "--health-address: cannot listen on %s: %s",
             attachment->health_address->text, uv_strerror(rc));
    ms_admin_close(attachment->admin);
    attachment->admin = NULL;
    return -1;
  }
  return 0;
}

static void admin_close(void *arg) {
  admin_attachment *attachment = arg;
  ms_admin_close(attachment->admin);
  attachment->admin = NULL;
  ms_admin_close(attachment->health);
  attachment->health = NULL;
}

static int parse_level(const char *text, ms_log_level *out) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++)
    if (strcmp(text, names[i]) == 0) {
      *out = (ms_log_level)i;
      return 0;
    }
  return -1;
}

int main(int argc, char **argv) {
  static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                          {"validate", no_argument, NULL, 'v'},
                                          {"log-level", required_argument, NULL, 'l'},
                                          {"node-id", required_argument, NULL, 'n'},
                                          {"health-address", required_argument, NULL, 'a'},
                                          {"version", no_argument, NULL, 'V'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
  const char *config_path = NULL;
  bool validating = false;
  ms_log_level level = MS_LOG_INFO;
  static ms_address health_address; /* static: the early returns below leave it reachable */
  char err[MS_ERR_LEN];
  int option;
  while ((option = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
    switch (option) {
      case 'c':
        config_path = optarg;
        break;
      case 'v':
        validating = true;
        break;
      case 'l':
        if (parse_level(optarg, &level) != 0) {
          fprintf(stderr,
                  "sidecar: --log-level \"%s\" is not accepted: give debug, info, warn or error\n",
                  optarg);
          return 2;
        }
        break;
      case 'n':
        if (optarg[0] == '\0') {
          fprintf(stderr, "sidecar: --node-id needs a non-empty ID\n");
          return 2;
        }
        ms_config_set_node_id(optarg);
        break;
      case 'a':
        ms_address_cleanup(&health_address);
        if (ms_address_parse(optarg, &health_address, err, sizeof(err)) != 0) {
          fprintf(stderr, "sidecar: --health-address \"%s\": %s\n", optarg, err);
          return 2;
        }
        break;
      case 'V':
        printf("sidecar %s (%s)\n", MS_VERSION, OPENSSL_VERSION_TEXT);
        return 0;
      case 'h':
        usage(stdout);
        return 0;
      default: /* getopt_long said what was wrong */
        fprintf(stderr, "sidecar --help lists the options\n");
        return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "sidecar: unexpected argument \"%s\" (sidecar --help lists the options)\n",
            argv[optind]);
    return 2;
  }
  if (config_path == NULL) {
    fprintf(stderr, "sidecar: --config FILE is required (sidecar --help lists the options)\n");
    return 2;
  }
  ms_log_set_level(level);

  ms_config *config = NULL;
  ms_config_errors errors = {0};
  if (ms_config_load(config_path, &config, &errors) != 0) {
    print_problems(config_path, &errors, validating ? "" : "; not started");
    ms_config_errors_cleanup(&errors);
    return 1;
  }
  if (validating) {
    int code = validate(config_path, config);
    ms_config_free(config);
    return code;
  }

  signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  uv_loop_init(&loop);
  ms_server *server = NULL;
  ms_xds_source *xds = NULL;
  ms_identity *identity = NULL;
  admin_attachment admin = {.loop = &loop,
                            .address = &config->admin_address,
                            .health_address = health_address.text ? &health_address : NULL};
  ms_server_attachment attachment = {.start = admin_start, .close = admin_close, .arg = &admin};
  int rc = ms_server_new(&loop, config, &attachment, &server, err, sizeof(err));
  /* The identity first: its secrets are named by the control plane's
   * clusters, and the ADS stream carries its token. */
  if (rc == 0 && config->identity.enabled &&
      (rc = ms_identity_start(&loop, server, config, &identity, err, sizeof(err))) != 0)
    ms_server_shutdown(server, 0);
  if (rc == 0 && config->xds.enabled &&
      (rc = ms_xds_source_start(&loop, server, config, &xds, err, sizeof(err))) != 0)
    ms_server_shutdown(server, 0);
  if (rc != 0) not_started(config_path, config, err);
  ms_config_free(config);
  uv_run(&loop, UV_RUN_DEFAULT);
  ms_server_free(server);
  ms_xds_source_free(xds);
  ms_identity_free(identity);
  uv_loop_close(&loop);
  ms_address_cleanup(&health_address);
  ms_config_set_node_id(NULL);
  return rc == 0 ? 0 : 1;
}
