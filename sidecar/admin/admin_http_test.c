/* admin_http_test: which route a request reaches, what a query says, what
 * an error says, that /config_dump never shows a private key, and that what
 * it shows is a configuration that reads back the same. No server needed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/admin/admin_json.h"
#include "sidecar/config/config.h"

#define CHECK(condition)                                                            \
  do {                                                                              \
    if (!(condition)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      exit(1);                                                                      \
    }                                                                               \
  } while (0)

static ms_admin_target route(enum http_method method, const char *url) {
  ms_admin_target target;
  CHECK(ms_admin_route_match(method, url, strlen(url), &target) == 0);
  return target;
}

static void test_routes(void) {
  CHECK(route(HTTP_GET, "/ready").route == MS_ADMIN_ROUTE_READY);
  CHECK(route(HTTP_GET, "/server_info").route == MS_ADMIN_ROUTE_SERVER_INFO);
  CHECK(route(HTTP_GET, "/certs").route == MS_ADMIN_ROUTE_CERTS);
  CHECK(route(HTTP_GET, "/config_dump").route == MS_ADMIN_ROUTE_CONFIG_DUMP);
  CHECK(route(HTTP_GET, "/stats").route == MS_ADMIN_ROUTE_STATS);
  CHECK(route(HTTP_GET, "/stats/prometheus").route == MS_ADMIN_ROUTE_STATS_PROMETHEUS);

  /* The query does not choose the route; absolute-form targets work too. */
  ms_admin_target clusters = route(HTTP_GET, "/clusters?format=json");
  CHECK(clusters.route == MS_ADMIN_ROUTE_CLUSTERS && clusters.method_allowed);
  CHECK(strcmp(clusters.path, "/clusters") == 0);
  CHECK(route(HTTP_GET, "http://127.0.0.1:15000/stats?x=1").route == MS_ADMIN_ROUTE_STATS);

  /* Paths match exactly. */
  CHECK(route(HTTP_GET, "/stats/").route == MS_ADMIN_ROUTE_NOT_FOUND);
  CHECK(route(HTTP_GET, "/readyz").route == MS_ADMIN_ROUTE_NOT_FOUND);
  CHECK(route(HTTP_GET, "/").route == MS_ADMIN_ROUTE_NOT_FOUND);
  CHECK(route(HTTP_DELETE, "/nope").method_allowed); /* any method gets the 404 */

  /* Methods: state changes only with POST, reads with GET or HEAD. */
  ms_admin_target quit = route(HTTP_POST, "/quitquitquit");
  CHECK(quit.route == MS_ADMIN_ROUTE_QUITQUITQUIT && quit.method_allowed);
  quit = route(HTTP_GET, "/quitquitquit");
  CHECK(!quit.method_allowed && strcmp(quit.allow, "POST") == 0);
  ms_admin_target head = route(HTTP_HEAD, "/stats");
  CHECK(head.method_allowed && head.head);
  CHECK(!route(HTTP_POST, "/stats").method_allowed);

  /* Not a request target: 400. */
  ms_admin_target target;
  CHECK(ms_admin_route_match(HTTP_GET, "", 0, &target) != 0);
  CHECK(ms_admin_route_match(HTTP_GET, "stats", 5, &target) != 0);
}

static int query(const char *url, const char *name, char *out, size_t out_len) {
  ms_admin_target target = route(HTTP_GET, url);
  return ms_admin_query_get(&target, name, out, out_len);
}

static void test_query(void) {
  char value[16];
  CHECK(query("/stats?format=json&filter=%5Ecluster%2E", "filter", value, sizeof(value)) == 1);
  CHECK(strcmp(value, "^cluster.") == 0);
  CHECK(query("/stats?format=json&filter=x", "format", value, sizeof(value)) == 1);
  CHECK(strcmp(value, "json") == 0);
  CHECK(query("/stats?filter=a+b", "filter", value, sizeof(value)) == 1);
  CHECK(strcmp(value, "a+b") == 0); /* a regex's "+" stays */
  CHECK(query("/stats?usedonly&filter=1&filter=2", "filter", value, sizeof(value)) == 1);
  CHECK(strcmp(value, "1") == 0); /* the first counts */
  CHECK(query("/stats?usedonly", "usedonly", value, sizeof(value)) == 1 && value[0] == '\0');
  CHECK(query("/stats?filterx=1", "filter", value, sizeof(value)) == 0);
  CHECK(query("/stats", "filter", value, sizeof(value)) == 0);
  CHECK(query("/stats?filter=%zz", "filter", value, sizeof(value)) == -EINVAL);
  CHECK(query("/stats?filter=%2", "filter", value, sizeof(value)) == -EINVAL);
  CHECK(query("/stats?filter=%00", "filter", value, sizeof(value)) == -EINVAL);
  CHECK(query("/stats?filter=0123456789abcdef", "filter", value, sizeof(value)) == -EINVAL);
  CHECK(query("/stats?filter=0123456789abcde", "filter", value, sizeof(value)) == 1);
}

static cJSON *parse_body(const ms_admin_response *response) {
  CHECK(strcmp(response->content_type, "application/json") == 0);
  CHECK(strlen(response->body) == response->body_len);
  cJSON *json = cJSON_Parse(response->body);
  CHECK(json != NULL);
  return json;
}

static void test_not_found_lists_every_path(void) {
  ms_admin_target target = route(HTTP_GET, "/x?y=1");
  ms_admin_response response;
  CHECK(ms_admin_respond_error(404, "not found", &target, &response) == 0);
  CHECK(response.status == 404);
  cJSON *json = parse_body(&response);
  CHECK(strcmp(cJSON_GetObjectItem(json, "error")->valuestring, "not found") == 0);
  CHECK(strcmp(cJSON_GetObjectItem(json, "path")->valuestring, "/x") == 0);
  cJSON *paths = cJSON_GetObjectItem(json, "paths");
  CHECK(cJSON_GetArraySize(paths) == (int)ms_admin_path_count);
  for (size_t i = 0; i < ms_admin_path_count; i++) {
    /* Every listed path routes somewhere. */
    CHECK(route(HTTP_GET, cJSON_GetArrayItem(paths, (int)i)->valuestring).route ==
          (ms_admin_route)(i + 1));
  }
  cJSON_Delete(json);
  ms_admin_response_cleanup(&response);

  target = route(HTTP_GET, "/quitquitquit");
  CHECK(ms_admin_respond_error(405, "method not allowed", &target, &response) == 0);
  json = parse_body(&response);
  CHECK(strcmp(cJSON_GetObjectItem(json, "allow")->valuestring, "POST") == 0);
  cJSON_Delete(json);
  ms_admin_response_cleanup(&response);
}

static void test_redact_hides_keys(void) {
  const char *config_text =
      "{\"admin\":\"127.0.0.1:15000\",\"clusters\":[{\"name\":\"orders\",\"tls\":{"
      "\"certificate\":\"/certs/tls.crt\",\"private_key\":\"/certs/tls.key\","
      "\"password_file\":\"/certs/pass\",\"extra\":{\"private_key\":{\"inline\":\"x\"}}}},"
      "{\"name\":\"pasted\",\"note\":\"-----BEGIN EC PRIVATE KEY-----\\nAAAA\"}]}";
  cJSON *json = cJSON_Parse(config_text);
  CHECK(json != NULL);
  CHECK(ms_admin_redact(json) == 0);
  char *text = cJSON_PrintUnformatted(json);
  CHECK(text != NULL);
  CHECK(strstr(text, "tls.key") == NULL);
  CHECK(strstr(text, "/certs/pass") == NULL);
  CHECK(strstr(text, "inline") == NULL);
  CHECK(strstr(text, "PRIVATE KEY") == NULL);
  CHECK(strstr(text, "\"certificate\":\"/certs/tls.crt\"") != NULL); /* the rest stays */
  CHECK(strstr(text, "\"private_key\":\"[redacted]\"") != NULL);
  CHECK(strstr(text, "\"password_file\":\"[redacted]\"") != NULL);
  cJSON *tls =
      cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(json, "clusters"), 0), "tls");
  CHECK(cJSON_GetArraySize(tls) == 4); /* replaced in place, no member lost */
  free(text);
  cJSON_Delete(json);
}

static void test_redact_leaves_null_alone(void) {
  cJSON *json = cJSON_Parse("{\"tls\":{\"password_file\":null,\"private_key\":\"k.pem\"}}");
  CHECK(json != NULL && ms_admin_redact(json) == 0);
  char *text = cJSON_PrintUnformatted(json);
  CHECK(strcmp(text, "{\"tls\":{\"password_file\":null,\"private_key\":\"[redacted]\"}}") == 0);
  free(text);
  cJSON_Delete(json);
}

static char *dump(const char *config_text) {
  ms_config *config = NULL;
  ms_config_errors errors = {0};
  int rc = ms_config_parse(config_text, "/etc/sidecar/sidecar.json", &config, &errors);
  for (size_t i = 0; i < errors.count; i++)
    fprintf(stderr, "%s\n", errors.lines[i]);
  ms_config_errors_cleanup(&errors);
  CHECK(rc == 0);
  cJSON *json = ms_admin_config_json(config);
  CHECK(json != NULL);
  char *text = cJSON_PrintUnformatted(json);
  cJSON_Delete(json);
  ms_config_free(config);
  return text;
}

/* Every key in force, defaults filled in, and a valid configuration itself:
 * read back, it dumps the same. */
static void test_config_dump_is_the_configuration_in_force(void) {
  const char *text =
      "{\"workers\": 2, \"listeners\": ["
      "{\"name\": \"tcp\", \"address\": \"127.0.0.1:15001\", \"cluster\": \"orders\"},"
      "{\"name\": \"web\", \"address\": \"127.0.0.1:15080\", \"protocol\": \"http\","
      " \"cluster\": \"orders\", \"http\": {\"access_log\": \"-\", \"routes\": ["
      "  {\"host\": \"api.shop\", \"cluster\": \"orders\"}], \"no_route\": \"404\"}}],"
      "\"clusters\": [{\"name\": \"orders\", \"endpoints\": [\"orders.shop:8443\","
      " {\"address\": \"10.0.0.7:8443\", \"weight\": 2}], \"lb_policy\": \"random\","
      " \"tls\": {\"trusted_ca\": \"ca.crt\", \"certificate\": \"c.crt\","
      "  \"private_key\": \"c.key\", \"curves\": [\"X25519\"], \"alpn\": [\"h2\"],"
      "  \"match_subject_alt_names\": [\"URI:spiffe://shop/orders\"]}}],"
      "\"xds\": {\"address\": \"xds.mesh:18000\", \"node\": {\"id\": \"n1\","
      " \"metadata\": {\"NAMESPACE\": \"shop\"}}, \"tls\": {\"trusted_ca\": \"mesh.crt\"}},"
      "\"identity\": {}}";
  char *first = dump(text);
  cJSON *json = cJSON_Parse(first);
  CHECK(json != NULL);
  cJSON *cluster = cJSON_GetArrayItem(cJSON_GetObjectItem(json, "clusters"), 0);
  cJSON *tls = cJSON_GetObjectItem(cluster, "tls");
  CHECK(cJSON_GetObjectItem(tls, "verify_depth")->valueint == 4); /* a default */
  CHECK(cJSON_IsNull(cJSON_GetObjectItem(tls, "password_file")));
  CHECK(strcmp(cJSON_GetObjectItem(tls, "trusted_ca")->valuestring, "/etc/sidecar/ca.crt") == 0);
  CHECK(cJSON_GetObjectItem(cluster, "connect_timeout_ms")->valueint == 5000);
  CHECK(cJSON_GetObjectItem(json, "drain_timeout_ms")->valueint == 20000);
  cJSON *tcp = cJSON_GetArrayItem(cJSON_GetObjectItem(json, "listeners"), 0);
  CHECK(cJSON_IsNull(cJSON_GetObjectItem(tcp, "http")));
  cJSON *identity = cJSON_GetObjectItem(json, "identity");
  CHECK(strcmp(cJSON_GetObjectItem(identity, "ca_address")->valuestring, "xds.mesh:18000") == 0);
  CHECK(strcmp(cJSON_GetObjectItem(identity, "trust_domain")->valuestring, "cluster.local") == 0);
  cJSON *certificates = cJSON_GetObjectItem(json, "certificates");
  CHECK(cJSON_GetObjectItem(certificates, "warn_lifetime_percent")->valueint == 80);
  CHECK(cJSON_IsFalse(cJSON_GetObjectItem(certificates, "ready_fails_on_expired")));
  cJSON_Delete(json);
  char *second = dump(first);
  if (strcmp(first, second) != 0) fprintf(stderr, "%s\n%s\n", first, second);
  CHECK(strcmp(first, second) == 0);
  free(first);
  free(second);
}

int main(void) {
  test_routes();
  test_query();
  test_redact_leaves_null_alone();
  test_config_dump_is_the_configuration_in_force();
  test_not_found_lists_every_path();
  test_redact_hides_keys();
  printf("PASS\n");
  return 0;
}
