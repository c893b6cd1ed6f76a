/* config_test.c: loading the JSON configuration: values, defaults, paths
 * and the error messages a user sees. Each case writes its file into
 * $TEST_TMPDIR. JSON is written with single quotes for readability and
 * turned into double quotes when the file is written. */
#include "sidecar/config/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static char tmpdir[512];

/* A cluster that passes validation, to embed in cases about other keys. */
#define GOOD_CLUSTER \
  "{'name': 'orders', 'endpoints': ['orders:8443'], 'tls': {'trusted_ca': '/ca.crt'}}"

/* write_config writes `json` (single quotes become double quotes) into
 * $TEST_TMPDIR/`name`, creating its folder, and returns the full path
 * (static storage). */
static const char *write_config(const char *name, const char *json) {
  static char path[1024];
  snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
  for (char *slash = strchr(path + strlen(tmpdir) + 1, '/'); slash != NULL;
       slash = strchr(slash + 1, '/')) {
    *slash = '\0';
    mkdir(path, 0755);
    *slash = '/';
  }
  FILE *file = fopen(path, "w");
  CHECK(file != NULL);
  for (const char *c = json; *c != '\0'; c++)
    fputc(*c == '\'' ? '"' : *c, file);
  CHECK(fclose(file) == 0);
  return path;
}

static void print_errors(const ms_config_errors *errors) {
  for (size_t i = 0; i < errors->count; i++)
    fprintf(stderr, "  %s\n", errors->lines[i]);
}

/* load_ok loads `json` and checks that it is accepted. */
static ms_config *load_ok(const char *json) {
  ms_config *config = NULL;
  ms_config_errors errors;
  if (ms_config_load(write_config("config.json", json), &config, &errors) != 0) {
    print_errors(&errors);
    CHECK(!"the configuration was refused");
  }
  CHECK(errors.count == 0);
  CHECK(config != NULL);
  return config;
}

static bool has_line(const ms_config_errors *errors, const char *text) {
  for (size_t i = 0; i < errors->count; i++) {
    if (strstr(errors->lines[i], text) != NULL) return true;
  }
  return false;
}

/* load_refused loads `json`, checks that it is refused, and returns the
 * errors (caller cleans up). */
static ms_config_errors load_refused(const char *json) {
  ms_config *config = NULL;
  ms_config_errors errors;
  CHECK(ms_config_load(write_config("config.json", json), &config, &errors) == -1);
  CHECK(config == NULL);
  CHECK(errors.count > 0);
  return errors;
}

/* expect_error checks that `json` is refused with a line containing `text`. */
static void expect_error(const char *json, const char *text) {
  ms_config_errors errors = load_refused(json);
  if (!has_line(&errors, text)) {
    fprintf(stderr, "expected an error containing: %s\ngot:\n", text);
    print_errors(&errors);
    CHECK(!"missing error");
  }
  ms_config_errors_cleanup(&errors);
}

static const char full_config[] =
    "{\n"
    "  'admin': {'address': '127.0.0.1:16000'},\n"
    "  'workers': 2,\n"
    "  'drain_timeout_ms': 15000,\n"
    "  'watch_certificates': false,\n"
    "  'listeners': [{'name': 'orders-in', 'address': '127.0.0.1:15001', 'protocol': 'tcp',\n"
    "                 'cluster': 'orders', 'idle_timeout_ms': 60000},\n"
    "                {'name': 'pay-in', 'address': '0.0.0.0:15002', 'cluster': 'payments'}],\n"
    "  'clusters': [{\n"
    "    'name': 'payments',\n"
    "    'endpoints': ['payments:443'],\n"
    "    'tls': {'verify': false}\n"
    "  }, {\n"
    "    'name': 'orders',\n"
    "    'endpoints': ['orders-0.shop:8443', {'address': '10.0.0.7:8443', 'weight': 2}],\n"
    "    'lb_policy': 'least_connections',\n"
    "    'connect_timeout_ms': 1000, 'handshake_timeout_ms': 2000, 'max_connect_attempts': 5,\n"
    "    'dns_refresh_ms': 60000,\n"
    "    'outlier_detection': {'consecutive_failures': 4, 'base_ejection_ms': 1000,\n"
    "                          'max_ejection_ms': 8000},\n"
    "    'tls': {\n"
    "      'certificate': 'client.crt', 'private_key': 'keys/client.key',\n"
    "      'password_file': null, 'trusted_ca': '/etc/ssl/ca.crt', 'verify': true,\n"
    "      'verify_depth': 3, 'server_name': 'orders.shop.svc', 'send_sni': false,\n"
    "      'match_subject_alt_names': ['DNS:orders.shop.svc', 'URI:spiffe://shop/orders',\n"
    "                                  'IP:10.0.0.7'],\n"
    "      'protocols': ['TLSv1.3'], 'ciphers': 'ECDHE-ECDSA-AES128-GCM-SHA256',\n"
    "      'curves': ['X25519', 'P-256'], 'alpn': ['h2', 'http/1.1'], 'session_reuse': false,\n"
    "      'crl': 'crl.pem'\n"
    "    }\n"
    "  }]\n"
    "}\n";

static void test_full_config_round_trips(void) {
  ms_config *config = NULL;
  ms_config_errors errors;
  const char *path = write_config("full/sidecar.json", full_config);
  if (ms_config_load(path, &config, &errors) != 0) print_errors(&errors);
  CHECK(config != NULL && errors.count == 0);
  char expected[1024];

  CHECK(strcmp(config->path, path) == 0);
  snprintf(expected, sizeof(expected), "%s/full", tmpdir);
  CHECK(strcmp(config->directory, expected) == 0);
  CHECK(strcmp(config->admin_address.text, "127.0.0.1:16000") == 0);
  CHECK(config->admin_address.port == 16000 && config->admin_address.host_is_ip);
  CHECK(config->workers == 2);
  CHECK(config->drain_timeout_ms == 15000);
  CHECK(!config->watch_certificates);
  CHECK(strstr(config->json, "\"orders-0.shop:8443\"") != NULL);

  CHECK(config->listener_count == 2);
  const ms_listener_config *listener = &config->listeners[0];
  CHECK(strcmp(listener->name, "orders-in") == 0);
  CHECK(strcmp(listener->address.host, "127.0.0.1") == 0 && listener->address.port == 15001);
  CHECK(listener->address.sockaddr.ss_family == AF_INET);
  CHECK(listener->protocol == MS_PROTOCOL_TCP);
  CHECK(strcmp(listener->cluster, "orders") == 0 && listener->cluster_index == 1);
  CHECK(listener->idle_timeout_ms == 60000);
  CHECK(config->listeners[1].cluster_index == 0);
  CHECK(config->listeners[1].idle_timeout_ms == 3600000);
  CHECK(config->listeners[1].max_connections == MS_DEFAULT_MAX_CONNECTIONS);

  CHECK(config->cluster_count == 2);
  const ms_cluster_config *cluster = &config->clusters[1];
  CHECK(strcmp(cluster->name, "orders") == 0);
  CHECK(cluster->endpoint_count == 2);
  CHECK(strcmp(cluster->endpoints[0].address.host, "orders-0.shop") == 0);
  CHECK(cluster->endpoints[0].address.port == 8443);
  CHECK(!cluster->endpoints[0].address.host_is_ip);
  CHECK(cluster->endpoints[0].weight == 1);
  CHECK(strcmp(cluster->endpoints[1].address.text, "10.0.0.7:8443") == 0);
  CHECK(cluster->endpoints[1].address.host_is_ip);
  const struct sockaddr_in *v4 =
      (const struct sockaddr_in *)&cluster->endpoints[1].address.sockaddr;
  CHECK(v4->sin_family == AF_INET && ntohs(v4->sin_port) == 8443);
  CHECK(ntohl(v4->sin_addr.s_addr) == 0x0a000007);
  CHECK(cluster->endpoints[1].weight == 2);
  CHECK(cluster->lb_policy == MS_LB_LEAST_CONNECTIONS);
  CHECK(strcmp(ms_lb_policy_name(cluster->lb_policy), "least_connections") == 0);
  CHECK(cluster->connect_timeout_ms == 1000 && cluster->handshake_timeout_ms == 2000);
  CHECK(cluster->max_connect_attempts == 5 && cluster->dns_refresh_ms == 60000);
  CHECK(cluster->outlier_detection.consecutive_failures == 4);
  CHECK(cluster->outlier_detection.base_ejection_ms == 1000);
  CHECK(cluster->outlier_detection.max_ejection_ms == 8000);

  const ms_cluster_tls_config *tls = &cluster->tls;
  snprintf(expected, sizeof(expected), "%s/full/client.crt", tmpdir);
  CHECK(strcmp(tls->settings.certificate, expected) == 0);
  snprintf(expected, sizeof(expected), "%s/full/keys/client.key", tmpdir);
  CHECK(strcmp(tls->settings.private_key, expected) == 0);
  CHECK(tls->settings.password_file == NULL);
  CHECK(strcmp(tls->settings.trusted_ca, "/etc/ssl/ca.crt") == 0);
  snprintf(expected, sizeof(expected), "%s/full/crl.pem", tmpdir);
  CHECK(strcmp(tls->settings.crl, expected) == 0);
  CHECK(tls->settings.verify && tls->settings.verify_depth == 3);
  CHECK(strcmp(tls->server_name, "orders.shop.svc") == 0 && !tls->send_sni);
  CHECK(tls->match_subject_alt_name_count == 3);
  CHECK(strcmp(tls->match_subject_alt_names[1], "URI:spiffe://shop/orders") == 0);
  CHECK(tls->protocol_count == 1 && strcmp(tls->protocols[0], "TLSv1.3") == 0);
  CHECK(tls->settings.min_version == TLS1_3_VERSION);
  CHECK(tls->settings.max_version == TLS1_3_VERSION);
  CHECK(strcmp(tls->settings.ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256") == 0);
  CHECK(tls->curve_count == 2 && strcmp(tls->settings.curves, "X25519:P-256") == 0);
  CHECK(tls->alpn_count == 2 && strcmp(tls->alpn[1], "http/1.1") == 0);
  CHECK(tls->settings.alpn_len == 12);
  CHECK(memcmp(tls->settings.alpn, "\x02h2\x08http/1.1", 12) == 0);
  CHECK(!tls->settings.session_reuse);

  /* verify off needs no trusted_ca. */
  CHECK(!config->clusters[0].tls.settings.verify);
  CHECK(config->clusters[0].tls.settings.trusted_ca == NULL);

  /* Shared by reference: the last free releases it (ASan checks). */
  CHECK(atomic_load(&config->refs) == 1);
  CHECK(ms_config_up_ref(config) == config);
  CHECK(atomic_load(&config->refs) == 2);
  ms_config_free(config);
  CHECK(atomic_load(&config->refs) == 1);
  ms_config_free(config);
  ms_config_free(NULL);
}

static void test_defaults(void) {
  ms_config *config = load_ok("{'clusters': [" GOOD_CLUSTER "]}");
  CHECK(strcmp(config->admin_address.text, "127.0.0.1:15000") == 0);
  CHECK(config->admin_address.port == 15000);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  CHECK(config->workers == (uint32_t)(cpus > 0 ? cpus : 1));
  CHECK(config->drain_timeout_ms == 20000);
  CHECK(config->watch_certificates);
  CHECK(config->listener_count == 0 && config->listeners == NULL);
  const ms_cluster_config *cluster = &config->clusters[0];
  CHECK(cluster->lb_policy == MS_LB_ROUND_ROBIN);
  CHECK(cluster->connect_timeout_ms == 5000 && cluster->handshake_timeout_ms == 10000);
  CHECK(cluster->max_connect_attempts == 3 && cluster->dns_refresh_ms == 30000);
  CHECK(cluster->outlier_detection.consecutive_failures == 3);
  CHECK(cluster->outlier_detection.base_ejection_ms == 5000);
  CHECK(cluster->outlier_detection.max_ejection_ms == 300000);
  const ms_cluster_tls_config *tls = &cluster->tls;
  CHECK(tls->settings.verify && tls->settings.verify_depth == 4);
  CHECK(tls->send_sni && tls->server_name == NULL);
  CHECK(tls->settings.session_reuse);
  CHECK(tls->settings.min_version == TLS1_2_VERSION);
  CHECK(tls->settings.max_version == TLS1_3_VERSION);
  CHECK(tls->protocol_count == 2 && strcmp(tls->protocols[0], "TLSv1.2") == 0);
  CHECK(strcmp(tls->protocols[1], "TLSv1.3") == 0);
  CHECK(tls->settings.certificate == NULL && tls->settings.private_key == NULL);
  CHECK(tls->settings.password_file == NULL && tls->settings.crl == NULL);
  CHECK(tls->settings.ciphers == NULL && tls->settings.curves == NULL);
  CHECK(tls->curve_count == 0 && tls->alpn_count == 0 && tls->settings.alpn == NULL);
  CHECK(tls->match_subject_alt_name_count == 0);
  ms_config_free(config);

  /* null means the default; workers 0 means one per CPU. */
  config = load_ok(
      "{'workers': 0, 'admin': null, 'clusters': [{'name': 'a', 'endpoints': "
      "['a:1'], 'lb_policy': null, 'tls': {'trusted_ca': 'ca.crt', 'ciphers': "
      "null}}]}");
  CHECK(config->workers == (uint32_t)(cpus > 0 ? cpus : 1));
  CHECK(config->admin_address.port == 15000);
  ms_config_free(config);

  CHECK(strcmp(ms_lb_policy_name(MS_LB_ROUND_ROBIN), "round_robin") == 0);
  CHECK(strcmp(ms_lb_policy_name(MS_LB_RANDOM), "random") == 0);
}

static void test_unknown_key_suggests_the_nearest(void) {
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'trusted_ca': "
      "'ca.crt', 'verfiy_depth': 2}}]}",
      "clusters[0].tls.verfiy_depth: unknown key; did you mean \"verify_depth\"?");
  expect_error("{'wrokers': 2}", "wrokers: unknown key; did you mean \"workers\"?");
  /* A control character in a key is escaped: one problem stays one line
   * (fuzz/findings/config). */
  expect_error("{'wor\\nkers': 2}", "wor\\x0akers: unknown key");
  /* Too far from every key: the known keys are listed instead. */
  expect_error("{'admin': {'port': 1}}", "admin.port: unknown key; expected one of: address");
  expect_error("{'admin': {'address': '127.0.0.1:1', 'address': '127.0.0.1:2'}}",
               "admin.address: duplicate key");
}

static void test_wrong_types(void) {
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'connect_timeout_ms': '5000', "
      "'tls': {'trusted_ca': 'ca.crt'}}]}",
      "clusters[0].connect_timeout_ms: expected a non-negative integer, got a string");
  expect_error("{'workers': -1}", "workers: expected a non-negative integer, got -1");
  expect_error("{'workers': 1.5}", "workers: expected a non-negative integer, got 1.5");
  expect_error("{'watch_certificates': 'yes'}",
               "watch_certificates: expected true or false, got a string");
  expect_error("{'clusters': {}}", "clusters: expected an array, got an object");
  expect_error("{'clusters': [" GOOD_CLUSTER "], 'listeners': [7]}",
               "listeners[0]: expected an object, got a number");
  expect_error("[]", "the top level must be a JSON object");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'trusted_ca': "
      "'ca.crt', 'verify_depth': 0}}]}",
      "clusters[0].tls.verify_depth: must be between 1 and 100, got 0");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'lb_policy': 'round-robin', "
      "'tls': {'trusted_ca': 'ca.crt'}}]}",
      "clusters[0].lb_policy: unknown policy \"round-robin\"; did you mean "
      "\"round_robin\"?");
}

static void test_tls_requirements(void) {
  expect_error("{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {}}]}",
               "clusters[0].tls.trusted_ca: required while verify is on; set it to the CA "
               "bundle that signs the upstream's certificate, or set verify to false");
  expect_error("{'clusters': [{'name': 'a', 'endpoints': ['a:1']}]}", "clusters[0].tls: required;");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'trusted_ca': "
      "'ca.crt', 'certificate': 'c.crt'}}]}",
      "clusters[0].tls.private_key: required with certificate");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'trusted_ca': "
      "'ca.crt', 'private_key': 'c.key'}}]}",
      "clusters[0].tls.certificate: required with private_key");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'trusted_ca': "
      "'ca.crt', 'match_subject_alt_names': ['spiffe://shop/orders']}}]}",
      "clusters[0].tls.match_subject_alt_names[0]: \"spiffe://shop/orders\" must "
      "start with DNS:, URI:, IP: or EMAIL:");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'trusted_ca': "
      "'ca.crt', 'match_subject_alt_names': ['IP:orders']}}]}",
      "\"orders\" is not an IP address");

  /* verify off: no trusted_ca needed. */
  ms_config *config =
      load_ok("{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'verify': false}}]}");
  CHECK(!config->clusters[0].tls.settings.verify);
  ms_config_free(config);
}

static void test_protocols(void) {
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'trusted_ca': "
      "'ca.crt', 'protocols': ['TLSv1.1', 'TLSv1.2']}}]}",
      "clusters[0].tls.protocols[0]: \"TLSv1.1\" is refused: TLS 1.2 is the minimum");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'trusted_ca': "
      "'ca.crt', 'protocols': ['TLSv1']}}]}",
      "TLS 1.2 is the minimum");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'trusted_ca': "
      "'ca.crt', 'protocols': ['TLS1.3']}}]}",
      "clusters[0].tls.protocols[0]: unknown protocol version \"TLS1.3\"; did you "
      "mean \"TLSv1.3\"?");
  /* As near to "TLSv1.2" as to "TLSv1.3": no guess, the choices instead. */
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'trusted_ca': "
      "'ca.crt', 'protocols': ['TLSv1.4']}}]}",
      "unknown protocol version \"TLSv1.4\"; expected one of: TLSv1.2, TLSv1.3");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'trusted_ca': "
      "'ca.crt', 'protocols': []}}]}",
      "clusters[0].tls.protocols: must list at least one version");
  ms_config *config = load_ok(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': "
      "{'trusted_ca': 'ca.crt', 'protocols': ['TLSv1.2']}}]}");
  CHECK(config->clusters[0].tls.settings.min_version == TLS1_2_VERSION);
  CHECK(config->clusters[0].tls.settings.max_version == TLS1_2_VERSION);
  ms_config_free(config);
}

static void test_relative_paths(void) {
  const char *json =
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'trusted_ca': './ca.crt', "
      "'certificate': '../certs//client.crt', 'private_key': '/keys/client.key', "
      "'password_file': 'pw.txt', 'crl': 'crl/./list.pem'}}]}";
  write_config("rel/conf/sidecar.json", json);
  /* Loaded by a relative path: the file's folder, not the working folder, anchors paths. */
  char cwd[1024];
  CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
  CHECK(chdir(tmpdir) == 0);
  ms_config *config = NULL;
  ms_config_errors errors;
  int result = ms_config_load("./rel/conf/sidecar.json", &config, &errors);
  CHECK(chdir(cwd) == 0);
  if (result != 0) print_errors(&errors);
  CHECK(result == 0);

  char expected[1024];
  snprintf(expected, sizeof(expected), "%s/rel/conf/sidecar.json", tmpdir);
  CHECK(strcmp(config->path, expected) == 0);
  snprintf(expected, sizeof(expected), "%s/rel/conf", tmpdir);
  CHECK(strcmp(config->directory, expected) == 0);
  const ms_tls_settings *settings = &config->clusters[0].tls.settings;
  snprintf(expected, sizeof(expected), "%s/rel/conf/ca.crt", tmpdir);
  CHECK(strcmp(settings->trusted_ca, expected) == 0);
  snprintf(expected, sizeof(expected), "%s/rel/conf/../certs/client.crt", tmpdir);
  CHECK(strcmp(settings->certificate, expected) == 0);
  CHECK(strcmp(settings->private_key, "/keys/client.key") == 0);
  snprintf(expected, sizeof(expected), "%s/rel/conf/pw.txt", tmpdir);
  CHECK(strcmp(settings->password_file, expected) == 0);
  snprintf(expected, sizeof(expected), "%s/rel/conf/crl/list.pem", tmpdir);
  CHECK(strcmp(settings->crl, expected) == 0);
  ms_config_free(config);

  /* ms_config_parse resolves against the folder of the path it is given. */
  CHECK(ms_config_parse("{\"clusters\": [{\"name\": \"a\", \"endpoints\": [\"a:1\"], \"tls\": "
                        "{\"trusted_ca\": \"ca.crt\"}}]}",
                        "/etc/sidecar/sidecar.json", &config, &errors) == 0);
  CHECK(strcmp(config->clusters[0].tls.settings.trusted_ca, "/etc/sidecar/ca.crt") == 0);
  ms_config_free(config);
}

static void test_references_and_duplicates(void) {
  expect_error("{'clusters': [" GOOD_CLUSTER
               "], 'listeners': [{'name': 'in', 'address': "
               "'127.0.0.1:15001', 'cluster': 'order'}]}",
               "listeners[0].cluster: no cluster named \"order\"; did you mean \"orders\"?");
  expect_error("{'listeners': [{'name': 'in', 'address': '127.0.0.1:15001', 'cluster': 'x'}]}",
               "listeners[0].cluster: no cluster named \"x\"; define it under \"clusters\"");
  expect_error("{'clusters': [" GOOD_CLUSTER ", " GOOD_CLUSTER "]}",
               "clusters[1].name: \"orders\" is already the name of clusters[0]");
  expect_error("{'clusters': [" GOOD_CLUSTER
               "], 'listeners': ["
               "{'name': 'in', 'address': '127.0.0.1:15001', 'cluster': 'orders'},"
               "{'name': 'in', 'address': '127.0.0.1:15002', 'cluster': 'orders'}]}",
               "listeners[1].name: \"in\" is already the name of listeners[0]");
  expect_error("{'clusters': [" GOOD_CLUSTER
               "], 'listeners': ["
               "{'name': 'a', 'address': '127.0.0.1:15001', 'cluster': 'orders'},"
               "{'name': 'b', 'address': '127.0.0.1:15001', 'cluster': 'orders'}]}",
               "listeners[1].address: 127.0.0.1:15001 is already taken by listeners[0]");
  expect_error("{'clusters': [" GOOD_CLUSTER
               "], 'listeners': [{'name': 'a', 'address': "
               "'127.0.0.1:15000', 'cluster': 'orders'}]}",
               "listeners[0].address: 127.0.0.1:15000 is already taken by admin.address");
  expect_error("{'clusters': [" GOOD_CLUSTER
               "], 'listeners': [{'name': 'a', 'address': "
               "'127.0.0.1:15001', 'protocol': 'udp', 'cluster': 'orders'}]}",
               "listeners[0].protocol: unknown protocol \"udp\"; use \"tcp\" or \"http\"");
  expect_error("{'clusters': [" GOOD_CLUSTER
               "], 'listeners': [{'name': 'a', 'address': "
               "'localhost:15001', 'cluster': 'orders'}]}",
               "listeners[0].address: \"localhost:15001\": must be an IP address and port");
  expect_error("{'clusters': [" GOOD_CLUSTER "], 'listeners': [{'name': 'a'}]}",
               "listeners[0].address: required;");
}

static void test_addresses(void) {
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:70000'], 'tls': {'verify': "
      "false}}]}",
      "clusters[0].endpoints[0]: \"a:70000\": the port must be a number from 1 to 65535");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': [{'address': 'a:0'}], 'tls': "
      "{'verify': false}}]}",
      "clusters[0].endpoints[0].address: \"a:0\": the port must be a number");
  expect_error("{'clusters': [{'name': 'a', 'endpoints': ['orders'], 'tls': {'verify': false}}]}",
               "clusters[0].endpoints[0]: \"orders\": missing port");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['::1:8443'], 'tls': {'verify': "
      "false}}]}",
      "an IPv6 address needs brackets, like \"[::1]:8443\"");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': [{'address': 'a:1', 'weight': 0}], "
      "'tls': {'verify': false}}]}",
      "clusters[0].endpoints[0].weight: must be between 1 and 1000, got 0");
  expect_error("{'clusters': [{'name': 'a', 'endpoints': [], 'tls': {'verify': false}}]}",
               "clusters[0].endpoints: must list at least one endpoint");

  ms_config *config = load_ok(
      "{'admin': {'address': '[::1]:15900'}, 'clusters': [{'name': 'a', "
      "'endpoints': ['[::1]:8443', '[2001:db8::7]:443'], 'tls': "
      "{'verify': false}}]}");
  const ms_address *address = &config->clusters[0].endpoints[0].address;
  CHECK(strcmp(address->text, "[::1]:8443") == 0);
  CHECK(strcmp(address->host, "::1") == 0 && address->port == 8443 && address->host_is_ip);
  const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&address->sockaddr;
  CHECK(v6->sin6_family == AF_INET6 && ntohs(v6->sin6_port) == 8443);
  CHECK(address->sockaddr_len == sizeof(struct sockaddr_in6));
  CHECK(memcmp(&v6->sin6_addr, &in6addr_loopback, sizeof(in6addr_loopback)) == 0);
  CHECK(strcmp(config->clusters[0].endpoints[1].address.host, "2001:db8::7") == 0);
  CHECK(config->admin_address.host_is_ip && config->admin_address.port == 15900);
  ms_config_free(config);

  /* The parser on its own. */
  ms_address parsed;
  char err[256];
  CHECK(ms_address_parse("orders.shop:8443", &parsed, err, sizeof(err)) == 0);
  CHECK(!parsed.host_is_ip && strcmp(parsed.host, "orders.shop") == 0 && parsed.port == 8443);
  ms_address_cleanup(&parsed);
  CHECK(ms_address_parse("[::1]8443", &parsed, err, sizeof(err)) == -1);
  CHECK(strstr(err, "missing port") != NULL);
  CHECK(ms_address_parse("[orders]:1", &parsed, err, sizeof(err)) == -1);
  CHECK(strstr(err, "is not an IPv6 address") != NULL);
  CHECK(ms_address_parse("bad host:1", &parsed, err, sizeof(err)) == -1);
  CHECK(ms_address_parse(":1", &parsed, err, sizeof(err)) == -1);
  CHECK(strstr(err, "missing host") != NULL);
}

static void test_all_errors_reported_together(void) {
  ms_config_errors errors = load_refused(
      "{'workers': 'two', 'clusters': [{'name': 'a', 'endpoints': ['a:1'], "
      "'tls': {'verfiy': false, 'trusted_ca': 'ca.crt'}}, {'endpoints': ['b'], "
      "'tls': {'trusted_ca': 'ca.crt'}}], 'listeners': [{'name': 'in', "
      "'address': '127.0.0.1:1', 'cluster': 'nope'}]}");
  CHECK(has_line(&errors, "workers: expected a non-negative integer, got a string"));
  CHECK(has_line(&errors, "clusters[0].tls.verfiy: unknown key; did you mean \"verify\"?"));
  CHECK(has_line(&errors, "clusters[1].endpoints[0]: \"b\": missing port"));
  CHECK(has_line(&errors, "clusters[1].name: required;"));
  CHECK(has_line(&errors, "listeners[0].cluster: no cluster named \"nope\""));
  CHECK(errors.count == 5);
  ms_config_errors_cleanup(&errors);
  CHECK(errors.count == 0 && errors.lines == NULL);
}

static void test_invalid_json(void) {
  expect_error("{\n  'workers': 2\n  'clusters': []\n}", "line 3, column 3: invalid JSON near");
  expect_error("{\n  'workers': 2,\n}", "line 2, column 15: invalid JSON");
  expect_error("{\n  'workers': 2,\n}", "JSON allows no comma before");
  expect_error("{'clusters': [1, 2,]}", "line 1, column 19");
  expect_error("{\n  // the workers\n  'workers': 2}", "JSON allows no comments");
  expect_error("{'workers': 2", "line 1, column 14: invalid JSON: the text ends too early");
  expect_error("  \n", "the file is empty");
  /* cJSON stops just past a doubled comma at the end of a line. */
  expect_error("{\n  'workers': 2,,\n  'clusters': []\n}",
               "line 2, column 16: invalid JSON: unexpected ','; two commas in a row");
  expect_error("{'clusters': [1,,2]}", "line 1, column 17: invalid JSON: unexpected ','");
  expect_error("{'clusters': [,1]}", "line 1, column 15: invalid JSON: unexpected ','");

  ms_config *config = NULL;
  ms_config_errors errors;
  char path[1024];
  snprintf(path, sizeof(path), "%s/does-not-exist.json", tmpdir);
  CHECK(ms_config_load(path, &config, &errors) == -1);
  CHECK(errors.count == 1 && strstr(errors.lines[0], "No such file or directory") != NULL);
  CHECK(strstr(errors.lines[0], path) != NULL);
  ms_config_errors_cleanup(&errors);
  CHECK(ms_config_load(tmpdir, &config, &errors) == -1);
  CHECK(errors.count == 1 && strstr(errors.lines[0], "cannot read") != NULL);
  ms_config_errors_cleanup(&errors);
  CHECK(config == NULL);
}

static void test_xds_bootstrap(void) {
  ms_config *config = load_ok(
      "{\"xds\": {\"address\": \"xds.mesh.svc:18000\","
      " \"tls\": {\"certificate\": \"boot.crt\", \"private_key\": \"boot.key\","
      "          \"trusted_ca\": \"mesh-ca.crt\", \"server_name\": \"xds.mesh.svc\"},"
      " \"node\": {\"id\": \"orders-1\", \"metadata\": {\"NAMESPACE\": \"shop\"}},"
      " \"backup_path\": \"state/xds.json\"}}");
  CHECK(config->xds.enabled);
  CHECK(strcmp(config->xds.address.host, "xds.mesh.svc") == 0);
  CHECK(config->xds.address.port == 18000);
  CHECK(strcmp(config->xds.node_id, "orders-1") == 0);
  CHECK(strcmp(config->xds.node_cluster, "orders-1") == 0); /* defaults to the id */
  CHECK(config->xds.metadata_count == 1);
  CHECK(strcmp(config->xds.metadata_keys[0], "NAMESPACE") == 0);
  CHECK(strcmp(config->xds.metadata_values[0], "shop") == 0);
  CHECK(config->xds.initial_fetch_timeout_ms == 15000);
  CHECK(config->xds.backup_path[0] == '/');
  CHECK(strstr(config->xds.backup_path, "/state/xds.json") != NULL);
  CHECK(config->xds.tls.settings.verify);
  CHECK(strstr(config->xds.tls.settings.trusted_ca, "/mesh-ca.crt") != NULL);
  ms_config_free(config);

  config = load_ok("{}");
  CHECK(!config->xds.enabled);
  ms_config_free(config);

  expect_error(
      "{\"xds\": {\"address\": \"a:1\", \"tls\": {\"trusted_ca\": \"ca\"},"
      " \"node\": {}}}",
      "xds.node.id: required");
  expect_error("{\"xds\": {\"address\": \"a:1\", \"tls\": {\"trusted_ca\": \"ca\"}}}",
               "xds.node.id: required");
  /* --node-id: over the file's node.id, and in place of a missing one; the
   * cluster defaults to it. */
  ms_config_set_node_id("orders-7d9c.shop");
  config = load_ok("{\"xds\": {\"address\": \"a:1\", \"tls\": {\"trusted_ca\": \"ca\"}}}");
  CHECK(strcmp(config->xds.node_id, "orders-7d9c.shop") == 0);
  CHECK(strcmp(config->xds.node_cluster, "orders-7d9c.shop") == 0);
  ms_config_free(config);
  config = load_ok(
      "{\"xds\": {\"address\": \"a:1\", \"tls\": {\"trusted_ca\": \"ca\"},"
      " \"node\": {\"id\": \"file\", \"cluster\": \"orders\"}}}");
  CHECK(strcmp(config->xds.node_id, "orders-7d9c.shop") == 0);
  CHECK(strcmp(config->xds.node_cluster, "orders") == 0);
  ms_config_free(config);
  ms_config_set_node_id(NULL);
  expect_error("{\"xds\": {\"tls\": {\"trusted_ca\": \"ca\"}, \"node\": {\"id\": \"n\"}}}",
               "xds.address: required");
  expect_error(
      "{\"xds\": {\"address\": \"a:1\", \"tls\": {\"trusted_ca\": \"ca\"},"
      " \"node\": {\"id\": \"n\", \"metadata\": {\"X\": 3}}}}",
      "xds.node.metadata.X: expected a string");
  expect_error("{\"xds\": {\"adress\": \"a:1\"}}", "did you mean \"address\"");
}

/* Secrets by name, as the control plane's clusters are rendered. */
static void test_identity(void) {
  ms_config *config = load_ok(
      "{'xds': {'address': 'xds.mesh.svc:18000', 'tls': {'trusted_ca': 'mesh-ca.crt'},"
      "         'node': {'id': 'orders-1'}},"
      " 'identity': {}}");
  const ms_identity_config *identity = &config->identity;
  CHECK(identity->enabled);
  CHECK(strcmp(ms_identity_ca_address(config)->text, "xds.mesh.svc:18000") == 0);
  CHECK(ms_identity_tls(config) == &config->xds.tls);
  CHECK(strcmp(identity->trust_domain, "cluster.local") == 0);
  CHECK(identity->requested_ttl_seconds == 86400);
  CHECK(strcmp(identity->certificate_secret, "default") == 0);
  CHECK(strcmp(identity->trust_bundle_secret, "ROOTCA") == 0);
  CHECK(identity->spiffe_id == NULL && identity->token_file == NULL);
  CHECK(ms_identity_owns_secret(config, "default") && ms_identity_owns_secret(config, "ROOTCA"));
  CHECK(!ms_identity_owns_secret(config, "other") && !ms_identity_owns_secret(config, NULL));
  ms_config_free(config);

  config = load_ok(
      "{'identity': {'ca_address': 'istiod:15012', 'tls': {'trusted_ca': 'ca.crt'},"
      "  'token_file': 'token', 'spiffe_id': 'spiffe://shop/ns/a/sa/b', 'trust_domain': 'shop',"
      "  'requested_ttl_seconds': 600, 'trust_bundle_file': 'roots.pem',"
      "  'certificate_secret': 'mine', 'trust_bundle_secret': 'roots'},"
      " 'clusters': [{'name': 'c', 'endpoints': ['c:1'],"
      "   'tls': {'certificate_secret': 'mine', 'validation_secret': 'roots'}}]}");
  identity = &config->identity;
  CHECK(strcmp(ms_identity_ca_address(config)->text, "istiod:15012") == 0);
  CHECK(ms_identity_tls(config) == &identity->tls);
  CHECK(strstr(identity->token_file, "/token") != NULL && identity->token_file[0] == '/');
  CHECK(strcmp(identity->spiffe_id, "spiffe://shop/ns/a/sa/b") == 0);
  CHECK(identity->requested_ttl_seconds == 600);
  CHECK(ms_identity_owns_secret(config, "mine") && !ms_identity_owns_secret(config, "default"));
  ms_config_free(config);
  config = load_ok("{}");
  CHECK(!config->identity.enabled);
  ms_config_free(config);

  expect_error("{'identity': {}}", "identity.ca_address: required without an \"xds\" section");
  expect_error("{'identity': {'ca_address': 'a:1'}}", "identity.tls: required without");
  expect_error("{'identity': {'ca_adress': 'a:1'}}", "did you mean \"ca_address\"");
  expect_error(
      "{'identity': {'ca_address': 'a:1', 'tls': {'trusted_ca': 'c'},"
      " 'spiffe_id': 'orders'}}",
      "identity.spiffe_id: \"orders\": expected a SPIFFE ID");
  expect_error(
      "{'identity': {'ca_address': 'a:1', 'tls': {'trusted_ca': 'c'},"
      " 'requested_ttl_seconds': 0}}",
      "identity.requested_ttl_seconds");
  expect_error(
      "{'identity': {'ca_address': 'a:1', 'tls': {'trusted_ca': 'c'},"
      " 'certificate_secret': 'x', 'trust_bundle_secret': 'x'}}",
      "identity.trust_bundle_secret: must differ from certificate_secret");
  expect_error("{'identity': {'ca_address': 'a:1', 'tls': {}}}", "identity.tls.trusted_ca");
}

static void test_secret_references(void) {
  ms_config *config = load_ok(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'certificate_secret': 'default', "
      "'validation_secret': 'ROOTCA'}}]}");
  CHECK(strcmp(config->clusters[0].tls.certificate_secret, "default") == 0);
  CHECK(strcmp(config->clusters[0].tls.validation_secret, "ROOTCA") == 0);
  ms_config_free(config);
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'certificate_secret': 'd', "
      "'certificate': 'c.crt', 'private_key': 'c.key', 'validation_secret': 'R'}}]}",
      "clusters[0].tls.certificate: set either certificate_secret or certificate, not both");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'validation_secret': 'R', "
      "'trusted_ca_pem': 'x'}}]}",
      "clusters[0].tls.trusted_ca_pem: set either validation_secret or trusted_ca_pem, not both");
}

/* Many clusters: duplicate names are still found (by the name index). */
static void test_many_clusters(void) {
  size_t n = 3000;
  char *json = malloc(n * 100 + 200);
  CHECK(json != NULL);
  size_t used = (size_t)sprintf(json,
                                "{'listeners': [{'name': 'l', 'address': '127.0.0.1:1', "
                                "'cluster': 'c2999'}], 'clusters': [");
  for (size_t i = 0; i < n; i++)
    used += (size_t)sprintf(json + used,
                            "%s{'name': 'c%zu', 'endpoints': ['a:1'], 'tls': "
                            "{'verify': false}}",
                            i ? "," : "", i == n - 1 ? (size_t)7 : i);
  sprintf(json + used, "]}");
  expect_error(json, "clusters[2999].name: \"c7\" is already the name of clusters[7]");
  free(json);
}

/* A listener of protocol "http" on cluster "orders", with `http` as its
 * "http" member (or none when NULL), and two clusters. */
static const char *http_config(const char *http) {
  static char json[4096];
  snprintf(json, sizeof(json),
           "{'clusters': [" GOOD_CLUSTER
           ", {'name': 'payments', 'endpoints': ['payments:443'], 'tls': {'verify': false}}], "
           "'listeners': [{'name': 'web', 'address': '127.0.0.1:15080', 'protocol': 'http', "
           "'cluster': 'orders'%s%s}]}",
           http != NULL ? ", 'http': " : "", http != NULL ? http : "");
  return json;
}

static void check_http_listener_defaults(const ms_http_listener_config *http) {
  CHECK(http->max_request_headers_bytes == 65536);
  CHECK(http->max_request_body_bytes == 0);
  CHECK(http->request_timeout_ms == 60000);
  CHECK(http->client_idle_timeout_ms == 75000);
  CHECK(http->request_headers_timeout_ms == 10000);
  CHECK(http->add_x_forwarded_for);
  CHECK(http->access_log == NULL);
  CHECK(http->routes == NULL && http->route_count == 0);
  CHECK(!http->no_route_404);
}

static void test_http_defaults(void) {
  /* No "http" object: every default is there all the same. */
  ms_config *config = load_ok(http_config(NULL));
  const ms_listener_config *listener = &config->listeners[0];
  CHECK(listener->protocol == MS_PROTOCOL_HTTP);
  CHECK(listener->cluster_index == 0);
  check_http_listener_defaults(&listener->http);
  for (size_t i = 0; i < config->cluster_count; i++) {
    const ms_cluster_config *cluster = &config->clusters[i];
    CHECK(cluster->host_header == NULL);
    CHECK(cluster->http_pool.max_idle == 256);
    CHECK(cluster->http_pool.idle_timeout_ms == 60000);
    CHECK(cluster->http_pool.max_requests == 1000);
    CHECK(cluster->http_pool.max_lifetime_ms == 3600000);
    CHECK(cluster->retries.max_retries == 1);
    CHECK(cluster->retries.budget_percent == 20);
    CHECK(cluster->retries.min_retry_concurrency == 3);
  }
  ms_config_free(config);

  /* An empty object, and null members, keep the defaults too. */
  config = load_ok(http_config("{'routes': null, 'access_log': null}"));
  check_http_listener_defaults(&config->listeners[0].http);
  ms_config_free(config);
  config = load_ok(http_config("{'routes': []}"));
  check_http_listener_defaults(&config->listeners[0].http);
  ms_config_free(config);

  /* A tcp listener holds the (unused) defaults. */
  config = load_ok("{'clusters': [" GOOD_CLUSTER
                   "], 'listeners': [{'name': 'in', 'address': '127.0.0.1:15001', "
                   "'cluster': 'orders'}]}");
  CHECK(config->listeners[0].protocol == MS_PROTOCOL_TCP);
  check_http_listener_defaults(&config->listeners[0].http);
  ms_config_free(config);
}

static void test_http_keys(void) {
  ms_config *config = load_ok(
      "{'clusters': [{'name': 'orders', 'endpoints': ['orders:8443'], 'tls': {'verify': false},\n"
      "               'host_header': 'orders.shop.svc:8443',\n"
      "               'http_pool': {'max_idle': 8, 'idle_timeout_ms': 30000, 'max_requests': 0,\n"
      "                             'max_lifetime_ms': 0},\n"
      "               'retries': {'max_retries': 3, 'budget_percent': 100,\n"
      "                           'min_retry_concurrency': 0}},\n"
      "              {'name': 'payments', 'endpoints': ['payments:443'], 'tls': {'verify': "
      "false}}],\n"
      " 'listeners': [{'name': 'web', 'address': '127.0.0.1:15080', 'protocol': 'http',\n"
      "                'cluster': 'orders', 'http': {\n"
      "   'max_request_headers_bytes': 1024, 'max_request_body_bytes': 10000000000,\n"
      "   'request_timeout_ms': 0, 'client_idle_timeout_ms': 5000,\n"
      "   'request_headers_timeout_ms': 0,\n"
      "   'add_x_forwarded_for': false, 'access_log': 'logs/access.log',\n"
      "   'routes': [{'host': 'Pay.Shop', 'path_prefix': '/pay', 'cluster': 'payments'},\n"
      "              {'host': '[::1]', 'cluster': 'orders'},\n"
      "              {'path_prefix': '/', 'cluster': 'payments'}]}},\n"
      "               {'name': 'stdout', 'address': '127.0.0.1:15081', 'protocol': 'http',\n"
      "                'cluster': 'payments', 'http': {'access_log': '-',\n"
      "                'max_request_headers_bytes': 1048576}}]}");
  const ms_cluster_config *orders = &config->clusters[0];
  CHECK(strcmp(orders->host_header, "orders.shop.svc:8443") == 0);
  CHECK(orders->http_pool.max_idle == 8 && orders->http_pool.idle_timeout_ms == 30000);
  CHECK(orders->http_pool.max_requests == 0 && orders->http_pool.max_lifetime_ms == 0);
  CHECK(orders->retries.max_retries == 3 && orders->retries.budget_percent == 100);
  CHECK(orders->retries.min_retry_concurrency == 0);
  CHECK(config->clusters[1].host_header == NULL && config->clusters[1].http_pool.max_idle == 256);

  const ms_http_listener_config *http = &config->listeners[0].http;
  CHECK(http->max_request_headers_bytes == 1024);
  CHECK(http->max_request_body_bytes == 10000000000ull);
  CHECK(http->request_timeout_ms == 0 && http->client_idle_timeout_ms == 5000);
  CHECK(http->request_headers_timeout_ms == 0);
  CHECK(config->listeners[1].http.request_headers_timeout_ms == 10000);
  CHECK(!http->add_x_forwarded_for);
  char expected[1024];
  snprintf(expected, sizeof(expected), "%s/logs/access.log", tmpdir);
  CHECK(strcmp(http->access_log, expected) == 0);
  CHECK(http->route_count == 3);
  CHECK(strcmp(http->routes[0].host, "Pay.Shop") == 0);
  CHECK(strcmp(http->routes[0].path_prefix, "/pay") == 0);
  CHECK(strcmp(http->routes[0].cluster, "payments") == 0 && http->routes[0].cluster_index == 1);
  CHECK(strcmp(http->routes[1].host, "[::1]") == 0 && http->routes[1].path_prefix == NULL);
  CHECK(http->routes[1].cluster_index == 0);
  CHECK(http->routes[2].host == NULL && strcmp(http->routes[2].path_prefix, "/") == 0);
  CHECK(http->routes[2].cluster_index == 1);

  const ms_http_listener_config *second = &config->listeners[1].http;
  CHECK(strcmp(second->access_log, "-") == 0);
  CHECK(second->max_request_headers_bytes == 1048576);
  CHECK(second->route_count == 0);
  ms_config_free(config);
}

static void test_http_errors(void) {
  /* "http" belongs to HTTP listeners only. */
  expect_error("{'clusters': [" GOOD_CLUSTER
               "], 'listeners': [{'name': 'in', 'address': '127.0.0.1:15001', "
               "'cluster': 'orders', 'http': {}}]}",
               "listeners[0].http: only allowed with \"protocol\": \"http\"");
  expect_error("{'clusters': [" GOOD_CLUSTER
               "], 'listeners': [{'name': 'in', 'address': '127.0.0.1:15001', "
               "'protocol': 'tcp', 'cluster': 'orders', 'http': {'access_log': '-'}}]}",
               "listeners[0].http: only allowed with \"protocol\": \"http\"");
  /* A misspelt protocol is reported once, for itself. */
  ms_config_errors errors = load_refused("{'clusters': [" GOOD_CLUSTER
                                         "], 'listeners': [{'name': 'in', 'address': "
                                         "'127.0.0.1:15001', 'protocol': 'htp', "
                                         "'cluster': 'orders', 'http': {}}]}");
  CHECK(errors.count == 1 && has_line(&errors, "listeners[0].protocol: unknown protocol"));
  ms_config_errors_cleanup(&errors);

  /* Unknown keys and wrong types, with their paths. */
  expect_error(http_config("{'max_request_header_bytes': 2048}"),
               "listeners[0].http.max_request_header_bytes: unknown key; did you mean "
               "\"max_request_headers_bytes\"?");
  expect_error(http_config("{'routes': [{'cluster': 'orders', 'prefix': '/'}]}"),
               "listeners[0].http.routes[0].prefix: unknown key");
  expect_error(http_config("{'no_route': 'drop'}"),
               "listeners[0].http.no_route: unknown value \"drop\"; use \"cluster\" or \"404\"");
  {
    ms_config *config = load_ok(http_config("{'no_route': '404'}"));
    CHECK(config->listeners[0].http.no_route_404);
    ms_config_free(config);
    config = load_ok(http_config("{'no_route': 'cluster'}"));
    CHECK(!config->listeners[0].http.no_route_404);
    ms_config_free(config);
  }
  expect_error(http_config("{'add_x_forwarded_for': 'yes'}"),
               "listeners[0].http.add_x_forwarded_for: expected true or false, got a string");
  expect_error(http_config("{'max_request_body_bytes': -1}"),
               "listeners[0].http.max_request_body_bytes: expected a non-negative integer, got -1");
  expect_error(http_config("[]"), "listeners[0].http: expected an object, got an array");
  expect_error(http_config("{'routes': {}}"),
               "listeners[0].http.routes: expected an array, got an object");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'verify': false}, "
      "'http_pool': {'max_idel': 4}}]}",
      "clusters[0].http_pool.max_idel: unknown key; did you mean \"max_idle\"?");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'verify': false}, "
      "'http_pool': {'idle_timeout_ms': 0}}]}",
      "clusters[0].http_pool.idle_timeout_ms: must be at least 1, got 0");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'verify': false}, "
      "'retries': {'max_retires': 2}}]}",
      "clusters[0].retries.max_retires: unknown key; did you mean \"max_retries\"?");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'verify': false}, "
      "'retries': 2}]}",
      "clusters[0].retries: expected an object, got a number");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'verify': false}, "
      "'retries': {'budget_percent': 101}}]}",
      "clusters[0].retries.budget_percent: must be between 0 and 100, got 101");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'verify': false}, "
      "'host_header': 'orders shop'}]}",
      "clusters[0].host_header: \"orders shop\" is not a host name");
  expect_error(
      "{'clusters': [{'name': 'a', 'endpoints': ['a:1'], 'tls': {'verify': false}, "
      "'host_header': ''}]}",
      "clusters[0].host_header: must not be empty");

  /* Limits. */
  expect_error(http_config("{'max_request_headers_bytes': 1023}"),
               "listeners[0].http.max_request_headers_bytes: must be between 1024 and 1048576, "
               "got 1023");
  expect_error(http_config("{'max_request_headers_bytes': 1048577}"),
               "listeners[0].http.max_request_headers_bytes: must be between 1024 and 1048576, "
               "got 1048577");
  expect_error(http_config("{'client_idle_timeout_ms': 0}"),
               "listeners[0].http.client_idle_timeout_ms: must be at least 1, got 0");
  expect_error(
      http_config("{'request_headers_timeout_ms': -1}"),
      "listeners[0].http.request_headers_timeout_ms: expected a non-negative integer, got -1");

  /* Routes. */
  expect_error(http_config("{'routes': [{'path_prefix': '/a', 'cluster': 'orders'}, "
                           "{'host': 'a.shop', 'cluster': 'payment'}]}"),
               "listeners[0].http.routes[1].cluster: no cluster named \"payment\"; did you mean "
               "\"payments\"?");
  expect_error(http_config("{'routes': [{'path_prefix': 'orders', 'cluster': 'orders'}]}"),
               "listeners[0].http.routes[0].path_prefix: \"orders\" must start with \"/\"");
  expect_error(http_config("{'routes': [{'host': 'a.shop'}]}"),
               "listeners[0].http.routes[0].cluster: required;");
  expect_error(http_config("{'routes': [{'host': 'a.shop:8080', 'cluster': 'orders'}]}"),
               "listeners[0].http.routes[0].host: \"a.shop:8080\": a route's host has no port");
  expect_error(http_config("{'routes': [{'host': '[::1]:80', 'cluster': 'orders'}]}"),
               "listeners[0].http.routes[0].host: \"[::1]:80\": write an IPv6 address in brackets");
}

/* Clusters rendered from the control plane carry none of the HTTP keys. */
static void test_http_keys_optional_for_rendered_clusters(void) {
  ms_config *config = load_ok(
      "{'clusters': [{'name': 'xds-orders', 'endpoints': [{'address': '10.0.0.1:8443', "
      "'weight': 1}], 'lb_policy': 'round_robin', 'connect_timeout_ms': 5000, "
      "'dns_refresh_ms': 30000, 'outlier_detection': {'consecutive_failures': 3}, "
      "'tls': {'certificate_secret': 'default', 'validation_secret': 'ROOTCA'}}]}");
  CHECK(config->clusters[0].http_pool.max_idle == 256);
  CHECK(config->clusters[0].retries.budget_percent == 20);
  ms_config_free(config);
}

/* "certificates": the expiry watch's defaults, values and bounds. */
static void test_certificates(void) {
  ms_config *config = load_ok("{}");
  CHECK(config->certificates.warn_lifetime_percent == 80);
  CHECK(config->certificates.expired_log_interval_ms == 3600000);
  CHECK(!config->certificates.ready_fails_on_expired);
  ms_config_free(config);
  config = load_ok(
      "{'certificates': {'warn_lifetime_percent': 90, 'expired_log_interval_ms': 60000, "
      "'ready_fails_on_expired': true}}");
  CHECK(config->certificates.warn_lifetime_percent == 90);
  CHECK(config->certificates.expired_log_interval_ms == 60000);
  CHECK(config->certificates.ready_fails_on_expired);
  ms_config_free(config);
  expect_error("{'certificates': {'warn_lifetime_percent': 0}}",
               "certificates.warn_lifetime_percent: must be between 1 and 100, got 0");
  expect_error("{'certificates': {'warn_lifetime_percent': 101}}",
               "certificates.warn_lifetime_percent: must be between 1 and 100, got 101");
  expect_error("{'certificates': {'warn_lifetime_percent': 0.8}}",
               "certificates.warn_lifetime_percent: expected a non-negative integer, got 0.8");
  expect_error("{'certificates': {'expired_log_interval_ms': 10}}",
               "certificates.expired_log_interval_ms: must be at least 1000, got 10");
  expect_error("{'certificates': {'warn_percent': 80}}", "certificates.warn_percent: unknown key;");
  expect_error("{'certificates': {'ready_fails_on_expired': 1}}",
               "certificates.ready_fails_on_expired: expected true or false");
}

int main(void) {
  const char *test_tmpdir = getenv("TEST_TMPDIR");
  /* Physical, so that it compares equal to what getcwd reports. */
  char *resolved = realpath(test_tmpdir != NULL ? test_tmpdir : "/tmp", NULL);
  CHECK(resolved != NULL);
  snprintf(tmpdir, sizeof(tmpdir), "%s", resolved);
  free(resolved);
  test_full_config_round_trips();
  test_defaults();
  test_unknown_key_suggests_the_nearest();
  test_wrong_types();
  test_tls_requirements();
  test_protocols();
  test_relative_paths();
  test_references_and_duplicates();
  test_addresses();
  test_all_errors_reported_together();
  test_invalid_json();
  test_xds_bootstrap();
  test_identity();
  test_secret_references();
  test_many_clusters();
  test_http_defaults();
  test_http_keys();
  test_http_errors();
  test_http_keys_optional_for_rendered_clusters();
  test_certificates();
  printf("config_test: all passed\n");
  return 0;
}
