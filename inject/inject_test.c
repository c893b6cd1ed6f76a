/* inject_test.c: injection as a hostile user would try it (inject.h), and
 * the manifests it reads and writes (manifest.h). Fixtures in testdata/. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "inject/inject.h"
#include "inject/manifest.h"
#include "tests/lib/test_check.h"

#define TESTDATA "inject/testdata"

static ms_inject_settings settings;

static void check_contains(const char *text, const char *part) {
  if (text == NULL || strstr(text, part) == NULL) {
    fprintf(stderr, "expected \"%s\" in: %s\n", part, text ? text : "(null)");
    exit(1);
  }
}

static cJSON *json(const char *text) {
  cJSON *value = cJSON_Parse(text);
  CHECK(value != NULL);
  return value;
}

/* decide runs ms_inject_patch on `pod_json`; returns its rc and fills
 * *out_decision, *out_patch (may be NULL) and err. */
static int decide(const char *pod_json, const char *namespace_name, const char *labels_json,
                  const char *owner_json, ms_inject_decision *out_decision, cJSON **out_patch,
                  char *err, size_t err_len) {
  cJSON *pod = json(pod_json);
  cJSON *labels = labels_json ? json(labels_json) : NULL;
  cJSON *owner = owner_json ? json(owner_json) : NULL;
  ms_inject_pod request = {pod, namespace_name, labels, owner, "pod shop/x"};
  cJSON *patch = NULL;
  err[0] = '\0';
  int rc = ms_inject_patch(&settings, &request, &patch, out_decision, err, err_len);
  if (rc != 0) CHECK(patch == NULL && err[0] != '\0');
  if (out_patch)
    *out_patch = patch;
  else
    cJSON_Delete(patch);
  cJSON_Delete(pod);
  cJSON_Delete(labels);
  cJSON_Delete(owner);
  return rc;
}

#define POD_WITH(annotations)                     \
  "{\"metadata\": {\"annotations\": " annotations \
  "}, \"spec\": {\"containers\": [{\"name\": \"app\"}]}}"

static void test_booleans(void) {
  const char *truths[] = {"1", "t", "T", "TRUE", "true", "True"};
  const char *falsehoods[] = {"0", "f", "F", "FALSE", "false", "False"};
  const char *neither[] = {"yes",   "no",    "on", "off",  "y", "n",
                           " true", "true ", "",   "tRUE", "2", "TRUe"};
  bool value;
  for (size_t i = 0; i < 6; i++) {
    CHECK(ms_inject_parse_bool(truths[i], &value) == 0 && value);
    CHECK(ms_inject_parse_bool(falsehoods[i], &value) == 0 && !value);
  }
  for (size_t i = 0; i < sizeof(neither) / sizeof(neither[0]); i++)
    CHECK(ms_inject_parse_bool(neither[i], &value) == -1);
}

static void test_decisions(void) {
  ms_inject_decision decision;
  char err[1024];
  cJSON *patch;
  /* Nothing asks: an empty patch. */
  CHECK(decide(POD_WITH("{}"), "shop", NULL, NULL, &decision, &patch, err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_NOT_REQUESTED && cJSON_GetArraySize(patch) == 0);
  cJSON_Delete(patch);
  /* "True", as Kubernetes reads booleans. */
  CHECK(decide(POD_WITH("{\"mtls-sidecar/inject\": \"True\"}"), "shop", NULL, NULL, &decision,
               &patch, err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_INJECTED && cJSON_GetArraySize(patch) > 0);
  cJSON_Delete(patch);
  /* "yes" is no boolean to Kubernetes: an error naming the value. */
  CHECK(decide(POD_WITH("{\"mtls-sidecar/inject\": \"yes\"}"), "shop", NULL, NULL, &decision, NULL,
               err, sizeof(err)) == -1);
  check_contains(err, "\"yes\"");
  check_contains(err, "pod shop/x");
  /* An unquoted YAML true is a boolean, which the API refuses as an
   * annotation value. */
  CHECK(decide(POD_WITH("{\"mtls-sidecar/inject\": true}"), "shop", NULL, NULL, &decision, NULL,
               err, sizeof(err)) == -1);
  check_contains(err, "not a string");
  /* The namespace label alone asks; the pod's annotation opts out. */
  CHECK(decide(POD_WITH("{}"), "shop", "{\"mtls-sidecar/inject\": \"true\"}", NULL, &decision, NULL,
               err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_INJECTED);
  CHECK(decide(POD_WITH("{\"mtls-sidecar/inject\": \"false\"}"), "shop",
               "{\"mtls-sidecar/inject\": \"true\"}", NULL, &decision, NULL, err,
               sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_OPTED_OUT);
  CHECK(decide(POD_WITH("{}"), "shop", "{\"mtls-sidecar/inject\": \"maybe\"}", NULL, &decision,
               NULL, err, sizeof(err)) == -1);
  check_contains(err, "label");
  check_contains(err, "namespace shop");
  /* A namespace labelled false, kube-system, the control plane's: skipped
   * whatever the pod says. */
  CHECK(decide(POD_WITH("{\"mtls-sidecar/inject\": \"true\"}"), "shop",
               "{\"mtls-sidecar/inject\": \"0\"}", NULL, &decision, NULL, err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_NAMESPACE_SKIPPED);
  CHECK(decide(POD_WITH("{\"mtls-sidecar/inject\": \"true\"}"), "kube-system", NULL, NULL,
               &decision, NULL, err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_NAMESPACE_SKIPPED);
  CHECK(decide(POD_WITH("{\"mtls-sidecar/inject\": \"true\"}"), "mtls-system", NULL, NULL,
               &decision, NULL, err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_NAMESPACE_SKIPPED);
  /* The owner asks, the pod says no; the owner says no. */
  CHECK(decide(POD_WITH("{\"mtls-sidecar/inject\": \"F\"}"), "shop", NULL,
               "{\"mtls-sidecar/inject\": \"true\"}", &decision, NULL, err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_OPTED_OUT);
  CHECK(decide(POD_WITH("{}"), "shop", "{\"mtls-sidecar/inject\": \"true\"}",
               "{\"mtls-sidecar/inject\": \"false\"}", &decision, NULL, err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_OPTED_OUT);
  /* Injected once: left alone. */
  CHECK(decide(POD_WITH("{\"mtls-sidecar/inject\": \"true\", \"mtls-sidecar/status\": \"0.0.9\"}"),
               "shop", NULL, NULL, &decision, &patch, err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_ALREADY_INJECTED && cJSON_GetArraySize(patch) == 0);
  cJSON_Delete(patch);
}

static void test_refusals(void) {
  ms_inject_decision decision;
  char err[1024];
  const char *ask = "\"metadata\": {\"annotations\": {\"mtls-sidecar/inject\": \"true\"}}";
  char pod[1024];
  snprintf(pod, sizeof(pod), "{%s, \"spec\": {\"hostNetwork\": true, \"containers\": [{}]}}", ask);
  CHECK(decide(pod, NULL, NULL, NULL, &decision, NULL, err, sizeof(err)) == -1);
  check_contains(err, "hostNetwork");
  snprintf(pod, sizeof(pod),
           "{%s, \"spec\": {\"containers\": [{\"name\": \"app\"}], \"volumes\": [{\"name\": "
           "\"mtls-sidecar-token\", \"emptyDir\": {}}]}}",
           ask);
  CHECK(decide(pod, NULL, NULL, NULL, &decision, NULL, err, sizeof(err)) == -1);
  check_contains(err, "volume named mtls-sidecar-token");
  snprintf(pod, sizeof(pod),
           "{%s, \"spec\": {\"containers\": [{\"name\": \"app\"}], \"ephemeralContainers\": "
           "[{\"name\": \"mtls-sidecar\"}]}}",
           ask);
  CHECK(decide(pod, NULL, NULL, NULL, &decision, NULL, err, sizeof(err)) == -1);
  check_contains(err, "spec.ephemeralContainers already has a container named mtls-sidecar");
  snprintf(pod, sizeof(pod),
           "{%s, \"spec\": {\"containers\": [{\"name\": \"web\", \"ports\": [{\"containerPort\": "
           "15021}]}]}}",
           ask);
  CHECK(decide(pod, NULL, NULL, NULL, &decision, NULL, err, sizeof(err)) == -1);
  check_contains(err, "container web listens on port 15021");
  snprintf(pod, sizeof(pod), "{%s, \"spec\": {\"containers\": []}}", ask);
  CHECK(decide(pod, NULL, NULL, NULL, &decision, NULL, err, sizeof(err)) == -1);
  check_contains(err, "spec.containers");
  snprintf(pod, sizeof(pod), "{%s, \"spec\": {\"containers\": [{\"name\": \"app\"}]}}", ask);
  settings.native_sidecars = false;
  CHECK(decide(pod, NULL, NULL, NULL, &decision, NULL, err, sizeof(err)) == -1);
  check_contains(err, "no native sidecars");
  settings.native_sidecars = true;
  /* Not asked: a hostNetwork pod passes. */
  CHECK(decide("{\"spec\": {\"hostNetwork\": true, \"containers\": [{}]}}", NULL, NULL, NULL,
               &decision, NULL, err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_NOT_REQUESTED);
}

/* The patch applies to every shape of pod, and the result is the same
 * sidecar first, the volumes last, the status annotation. */
static void test_patch_shapes(void) {
  const char *pods[] = {
      "{\"spec\": {\"containers\": [{\"name\": \"app\"}]}}",
      "{\"metadata\": {}, \"spec\": {\"containers\": [{\"name\": \"app\"}]}}",
      "{\"metadata\": {\"annotations\": {\"a/b~c\": \"x\"}}, \"spec\": {\"initContainers\": "
      "[{\"name\": \"migrate\"}], \"containers\": [{\"name\": \"app\"}], \"volumes\": [{\"name\": "
      "\"data\"}]}}",
      /* null members, as an empty YAML key gives: Kubernetes reads them as absent */
      "{\"metadata\": {\"annotations\": null}, \"spec\": {\"initContainers\": null, \"volumes\": "
      "null, \"containers\": [{\"name\": \"app\"}]}}",
  };
  cJSON *labels = json("{\"mtls-sidecar/inject\": \"true\"}");
  cJSON *expected_container = ms_inject_sidecar_container(&settings);
  for (size_t i = 0; i < sizeof(pods) / sizeof(pods[0]); i++) {
    cJSON *pod = json(pods[i]);
    ms_inject_pod request = {pod, "shop", labels, NULL, NULL};
    cJSON *patch = NULL, *patched = NULL;
    ms_inject_decision decision;
    char err[512];
    CHECK(ms_inject_patch(&settings, &request, &patch, &decision, err, sizeof(err)) == 0);
    CHECK(decision == MS_INJECT_INJECTED);
    CHECK(ms_inject_apply(pod, patch, &patched, err, sizeof(err)) == 0);
    cJSON *spec = cJSON_GetObjectItem(patched, "spec");
    cJSON *init = cJSON_GetObjectItem(spec, "initContainers");
    CHECK(cJSON_Compare(cJSON_GetArrayItem(init, 0), expected_container, true));
    CHECK(cJSON_GetArraySize(init) == (i == 2 ? 2 : 1));
    cJSON *volumes = cJSON_GetObjectItem(spec, "volumes");
    CHECK(cJSON_GetArraySize(volumes) == (i == 2 ? 4 : 3));
    CHECK_STR(cJSON_GetArrayItem(volumes, i == 2 ? 1 : 0)->child->valuestring,
              MS_INJECT_CONFIG_VOLUME);
    cJSON *annotations =
        cJSON_GetObjectItem(cJSON_GetObjectItem(patched, "metadata"), "annotations");
    CHECK_STR(cJSON_GetObjectItem(annotations, MS_INJECT_STATUS_ANNOTATION)->valuestring,
              settings.version);
    /* Injecting what was injected changes nothing. */
    request.pod = patched;
    cJSON *again = NULL;
    CHECK(ms_inject_patch(&settings, &request, &again, &decision, err, sizeof(err)) == 0);
    CHECK(decision == MS_INJECT_ALREADY_INJECTED && cJSON_GetArraySize(again) == 0);
    cJSON_Delete(again);
    cJSON_Delete(patch);
    cJSON_Delete(patched);
    cJSON_Delete(pod);
  }
  cJSON_Delete(expected_container);
  cJSON_Delete(labels);
}

static void apply_expect(const char *document, const char *patch, const char *expected,
                         const char *error_part) {
  cJSON *doc = json(document), *ops = json(patch), *out = NULL;
  char err[512] = "";
  int rc = ms_inject_apply(doc, ops, &out, err, sizeof(err));
  if (expected) {
    if (rc != 0) fprintf(stderr, "apply failed: %s\n", err);
    CHECK(rc == 0);
    cJSON *want = json(expected);
    if (!cJSON_Compare(out, want, true)) {
      char *got = cJSON_PrintUnformatted(out);
      fprintf(stderr, "%s + %s: got %s, want %s\n", document, patch, got, expected);
      free(got);
      exit(1);
    }
    cJSON_Delete(want);
  } else {
    CHECK(rc == -1 && out == NULL);
    check_contains(err, error_part);
  }
  cJSON_Delete(out);
  cJSON_Delete(ops);
  cJSON_Delete(doc);
}

/* What the sidecar reads, where it reads it: the configuration folder is one
 * projected volume of the three ConfigMaps (sidecar.json from the settings'
 * ConfigMap, the two trust bundles from trust-manager's), each key named,
 * mounted whole (never subPath: a CA rotation must reach the files); the
 * token where identity.token_file names it, with the settings' audience; a
 * node id that claims the namespace only (xds-server reads "A.B" as
 * SERVICE_ACCOUNT.NAMESPACE). */
static void test_volumes(void) {
  ms_inject_settings custom = settings;
  custom.config_map = "shop-sidecar";
  custom.token_audience = "mesh";
  cJSON *volumes = ms_inject_volumes(&custom);
  CHECK(volumes != NULL && cJSON_GetArraySize(volumes) == 3);
  const cJSON *config = cJSON_GetArrayItem(volumes, 0);
  CHECK_STR(cJSON_GetObjectItem(config, "name")->valuestring, MS_INJECT_CONFIG_VOLUME);
  CHECK(cJSON_GetObjectItem(config, "configMap") == NULL);
  const cJSON *sources = cJSON_GetObjectItem(cJSON_GetObjectItem(config, "projected"), "sources");
  CHECK(cJSON_GetArraySize(sources) == 3);
  const char *names[] = {"shop-sidecar", "mtls-sidecar-bootstrap-trust", "mtls-sidecar-trust"};
  const char *keys[] = {"sidecar.json", "bootstrap-ca.pem", "trust.pem"};
  for (int i = 0; i < 3; i++) {
    const cJSON *map = cJSON_GetObjectItem(cJSON_GetArrayItem(sources, i), "configMap");
    CHECK_STR(cJSON_GetObjectItem(map, "name")->valuestring, names[i]);
    const cJSON *items = cJSON_GetObjectItem(map, "items");
    CHECK(cJSON_GetArraySize(items) == 1);
    CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "key")->valuestring, keys[i]);
    CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "path")->valuestring, keys[i]);
    CHECK(cJSON_GetObjectItem(map, "optional") == NULL);
  }
  const cJSON *token = cJSON_GetObjectItem(
      cJSON_GetArrayItem(
          cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(volumes, 1), "projected"),
                              "sources"),
          0),
      "serviceAccountToken");
  CHECK_STR(cJSON_GetObjectItem(token, "audience")->valuestring, "mesh");
  CHECK_STR(cJSON_GetObjectItem(token, "path")->valuestring, "token");
  cJSON_Delete(volumes);

  cJSON *container = ms_inject_sidecar_container(&custom);
  CHECK(container != NULL);
  const cJSON *mount;
  int found = 0;
  cJSON_ArrayForEach(mount, cJSON_GetObjectItem(container, "volumeMounts")) {
    const char *name = cJSON_GetObjectItem(mount, "name")->valuestring;
    const char *path = cJSON_GetObjectItem(mount, "mountPath")->valuestring;
    CHECK(cJSON_GetObjectItem(mount, "subPath") == NULL);
    if (strcmp(name, MS_INJECT_CONFIG_VOLUME) == 0) {
      CHECK_STR(path, "/etc/mtls-sidecar");
      found++;
    }
    if (strcmp(name, MS_INJECT_TOKEN_VOLUME) == 0) {
      CHECK(strncmp(MS_INJECT_TOKEN_PATH, path, strlen(path)) == 0);
      CHECK_STR(MS_INJECT_TOKEN_PATH + strlen(path), "/token");
      found++;
    }
  }
  CHECK(found == 2);
  const cJSON *args = cJSON_GetObjectItem(container, "args");
  const char *node_id = NULL;
  for (int i = 0; i + 1 < cJSON_GetArraySize(args); i++)
    if (strcmp(cJSON_GetArrayItem(args, i)->valuestring, "--node-id") == 0)
      node_id = cJSON_GetArrayItem(args, i + 1)->valuestring;
  CHECK(node_id != NULL);
  CHECK(strncmp(node_id, "sidecar~$(POD_IP)~$(POD_NAME).$(POD_NAMESPACE)~", 46) == 0);
  bool has_pod_ip = false;
  const cJSON *env;
  cJSON_ArrayForEach(env, cJSON_GetObjectItem(container, "env")) {
    if (strcmp(cJSON_GetObjectItem(env, "name")->valuestring, "POD_IP") == 0)
      has_pod_ip =
          strcmp(cJSON_GetObjectItem(
                     cJSON_GetObjectItem(cJSON_GetObjectItem(env, "valueFrom"), "fieldRef"),
                     "fieldPath")
                     ->valuestring,
                 "status.podIP") == 0;
  }
  CHECK(has_pod_ip);
  cJSON_Delete(container);
}

static void test_apply(void) {
  apply_expect("{\"a\": [1, 2]}", "[{\"op\": \"add\", \"path\": \"/a/0\", \"value\": 0}]",
               "{\"a\": [0, 1, 2]}", NULL);
  apply_expect("{\"a\": [1, 2]}", "[{\"op\": \"add\", \"path\": \"/a/-\", \"value\": 3}]",
               "{\"a\": [1, 2, 3]}", NULL);
  apply_expect("{\"a\": [1, 2]}", "[{\"op\": \"add\", \"path\": \"/a/2\", \"value\": 3}]",
               "{\"a\": [1, 2, 3]}", NULL);
  apply_expect("{\"a\": [1, 2]}", "[{\"op\": \"add\", \"path\": \"/a/3\", \"value\": 3}]", NULL,
               "outside the array");
  apply_expect("{\"a\": [1, 2]}", "[{\"op\": \"add\", \"path\": \"/a/01\", \"value\": 3}]", NULL,
               "operation 0");
  apply_expect("{\"m\": {}}",
               "[{\"op\": \"add\", \"path\": \"/m/x~1y~0z\", \"value\": 1}, {\"op\": \"test\", "
               "\"path\": \"/m/x~1y~0z\", \"value\": 1}]",
               "{\"m\": {\"x/y~z\": 1}}", NULL);
  apply_expect("{\"m\": {\"k\": 1}}", "[{\"op\": \"add\", \"path\": \"/m/k\", \"value\": 2}]",
               "{\"m\": {\"k\": 2}}", NULL);
  apply_expect("{\"m\": {\"k\": 1}}", "[{\"op\": \"remove\", \"path\": \"/m/k\"}]", "{\"m\": {}}",
               NULL);
  apply_expect("{\"m\": {\"k\": 1}}", "[{\"op\": \"replace\", \"path\": \"/m/j\", \"value\": 2}]",
               NULL, "does not exist");
  apply_expect("{\"m\": {\"k\": 1}}",
               "[{\"op\": \"add\", \"path\": \"/n\", \"value\": 1}, {\"op\": \"test\", \"path\": "
               "\"/m/k\", \"value\": 2}]",
               NULL, "operation 1: test");
  apply_expect("{}", "[{\"op\": \"add\", \"path\": \"/x/y\", \"value\": 1}]", NULL,
               "parent does not exist");
  apply_expect("{}", "[{\"op\": \"move\", \"from\": \"/a\", \"path\": \"/b\"}]", NULL,
               "not one this applies");
  apply_expect("{}", "[{\"op\": \"add\", \"path\": \"x\", \"value\": 1}]", NULL,
               "does not start with '/'");
  apply_expect("{}", "[{\"op\": \"add\", \"path\": \"/~2\", \"value\": 1}]", NULL, "~0 or ~1");
  apply_expect("{\"a\": 1}", "[{\"op\": \"replace\", \"path\": \"\", \"value\": {\"b\": 2}}]",
               "{\"b\": 2}", NULL);
}

static ms_manifest read_fixture(const char *name) {
  size_t len;
  uint8_t *text = test_read_file(TESTDATA, name, &len);
  ms_manifest manifest;
  char err[512];
  if (ms_manifest_parse((const char *)text, len, &manifest, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s: %s\n", name, err);
    exit(1);
  }
  free(text);
  return manifest;
}

static const cJSON *path(const cJSON *node, const char *const *keys) {
  for (; *keys && node; keys++)
    node = cJSON_GetObjectItemCaseSensitive(node, *keys);
  return node;
}

/* inject_fixture runs ms_inject_object on document `index` of `name`;
 * returns rc, with the decision and the error. */
static int inject_fixture(const char *name, size_t index, ms_inject_decision *decision,
                          cJSON **out_document, char *err, size_t err_len) {
  ms_manifest manifest = read_fixture(name);
  CHECK(index < manifest.count);
  err[0] = '\0';
  int rc = ms_inject_object(&settings, manifest.documents[index], decision, err, err_len);
  if (out_document) {
    *out_document = manifest.documents[index];
    manifest.documents[index] = cJSON_CreateNull();
  }
  ms_manifest_cleanup(&manifest);
  return rc;
}

static void check_injected_at(cJSON *document, const char *const *template_path) {
  const cJSON *template = path(document, template_path);
  const cJSON *first =
      cJSON_GetArrayItem(path(template, (const char *const[]){"spec", "initContainers", NULL}), 0);
  CHECK_STR(cJSON_GetObjectItem(first, "name")->valuestring, MS_INJECT_CONTAINER);
  CHECK_STR(cJSON_GetObjectItem(first, "restartPolicy")->valuestring, "Always");
  CHECK(path(template, (const char *const[]){"metadata", "annotations", MS_INJECT_STATUS_ANNOTATION,
                                             NULL}) != NULL);
}

static void test_kinds(void) {
  ms_inject_decision decision;
  char err[1024];
  cJSON *document;
  const char *const spec_template[] = {"spec", "template", NULL};
  struct {
    const char *file;
    size_t index;
    const char *const *template_path;
  } injected[] = {
      {"deployment.yaml", 1, spec_template},
      {"pod.yaml", 0, (const char *const[]){NULL}},
      {"init-containers.yaml", 0, (const char *const[]){NULL}},
      {"statefulset.yaml", 0, spec_template},
      {"daemonset.yaml", 0, spec_template},
      {"job.yaml", 0, spec_template},
      {"cronjob.yaml", 0, (const char *const[]){"spec", "jobTemplate", "spec", "template", NULL}},
      {"deployment.json", 0, spec_template},
  };
  for (size_t i = 0; i < sizeof(injected) / sizeof(injected[0]); i++) {
    if (inject_fixture(injected[i].file, injected[i].index, &decision, &document, err,
                       sizeof(err)) != 0) {
      fprintf(stderr, "%s: %s\n", injected[i].file, err);
      exit(1);
    }
    CHECK(decision == MS_INJECT_INJECTED);
    check_injected_at(document, injected[i].template_path);
    /* Idempotent: again, and nothing changes. */
    cJSON *before = cJSON_Duplicate(document, true);
    CHECK(ms_inject_object(&settings, document, &decision, err, sizeof(err)) == 0);
    CHECK(decision == MS_INJECT_ALREADY_INJECTED && cJSON_Compare(before, document, true));
    cJSON_Delete(before);
    cJSON_Delete(document);
  }
  /* The app's init container stays, after the sidecar. */
  CHECK(inject_fixture("init-containers.yaml", 0, &decision, &document, err, sizeof(err)) == 0);
  const cJSON *init = path(document, (const char *const[]){"spec", "initContainers", NULL});
  CHECK(cJSON_GetArraySize(init) == 2);
  CHECK_STR(cJSON_GetArrayItem(init, 1)->child->valuestring, "migrate");
  cJSON_Delete(document);

  /* Unchanged: the ConfigMap and Service beside the Deployment, the
   * opt-out, kube-system. */
  CHECK(inject_fixture("deployment.yaml", 0, &decision, NULL, err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_NOT_REQUESTED);
  CHECK(inject_fixture("deployment.yaml", 2, &decision, NULL, err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_NOT_REQUESTED);
  CHECK(inject_fixture("opt-out.yaml", 0, &decision, NULL, err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_OPTED_OUT);
  CHECK(inject_fixture("kube-system.yaml", 0, &decision, NULL, err, sizeof(err)) == 0);
  CHECK(decision == MS_INJECT_NAMESPACE_SKIPPED);

  /* Refused, each naming the object and the cause. */
  struct {
    const char *file;
    const char *parts[2];
  } refused[] = {
      {"init-collision.yaml", {"Pod migrate", "volume named mtls-sidecar-config"}},
      {"hostnetwork.yaml", {"DaemonSet node-exporter", "hostNetwork"}},
      {"yes.yaml", {"Pod hopeful", "\"yes\""}},
      {"configmap-annotated.yaml", {"ConfigMap settings", "kind that cannot be injected"}},
  };
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    CHECK(inject_fixture(refused[i].file, 0, &decision, NULL, err, sizeof(err)) == -1);
    check_contains(err, refused[i].parts[0]);
    check_contains(err, refused[i].parts[1]);
  }
  /* A kind from another group is not apps/v1's. */
  cJSON *custom = json(
      "{\"apiVersion\": \"example.com/v1\", \"kind\": \"Deployment\", \"metadata\": {\"name\": "
      "\"d\"}, \"spec\": {\"template\": {\"metadata\": {\"annotations\": {\"mtls-sidecar/inject\": "
      "\"true\"}}, \"spec\": {\"containers\": [{}]}}}}");
  CHECK(ms_inject_object(&settings, custom, &decision, err, sizeof(err)) == -1);
  check_contains(err, "Deployment d");
  cJSON_Delete(custom);
}

static int parse_text(const char *text, ms_manifest *out, char *err, size_t err_len) {
  return ms_manifest_parse(text, strlen(text), out, err, err_len);
}

static void check_parse_error(const char *text, const char *part) {
  ms_manifest manifest;
  char err[512] = "";
  CHECK(parse_text(text, &manifest, err, sizeof(err)) == -1);
  CHECK(manifest.count == 0);
  check_contains(err, part);
}

static void test_yaml(void) {
  ms_manifest manifest;
  char err[512];
  CHECK(parse_text("---\n# only a comment\n---\n"
                   "a: 0444\nb: \"0444\"\nc: yes\nd: ~\ne: 1_000\nf: 0x1F\ng: 1.50\nh: -0b11\n"
                   "i: 18446744073709551615\nj: 08\nk: 'true'\nl: !!str 12\nm: \n"
                   "n: &x {p: [1, 2]}\no: *x\n...\n---\nsecond: 2\n",
                   &manifest, err, sizeof(err)) == 0);
  CHECK(manifest.count == 2 && manifest.format == MS_MANIFEST_YAML);
  char *printed = cJSON_PrintUnformatted(manifest.documents[0]);
  CHECK_STR(printed,
            "{\"a\":292,\"b\":\"0444\",\"c\":true,\"d\":null,\"e\":1000,\"f\":31,\"g\":1.5,"
            "\"h\":-3,\"i\":18446744073709551615,\"j\":8,\"k\":\"true\",\"l\":\"12\",\"m\":null,"
            "\"n\":{\"p\":[1,2]},\"o\":{\"p\":[1,2]}}");
  free(printed);
  CHECK(manifest.lines[1] == 20);
  /* Written and read back: the same documents, strings that look like
   * something else quoted. */
  cJSON_AddStringToObject(manifest.documents[1], "s1", "true");
  cJSON_AddStringToObject(manifest.documents[1], "s2", "");
  cJSON_AddStringToObject(manifest.documents[1], "s3", "1e3");
  cJSON_AddStringToObject(manifest.documents[1], "s4", "line one\nline two\n");
  cJSON_AddStringToObject(manifest.documents[1], "s5", "- not a list: #");
  cJSON_AddStringToObject(manifest.documents[1], "s6", "<<");
  cJSON_AddNumberToObject(manifest.documents[1], "n1", 0.1);
  size_t len;
  char *text = ms_manifest_write(&manifest, &len, err, sizeof(err));
  CHECK(text != NULL && len == strlen(text));
  ms_manifest again;
  if (parse_text(text, &again, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s\n%s\n", err, text);
    exit(1);
  }
  CHECK(again.count == 2);
  for (size_t i = 0; i < 2; i++) {
    if (i == 1) /* 0.1 comes back as raw text */
      cJSON_ReplaceItemInObject(manifest.documents[1], "n1", cJSON_CreateRaw("0.1"));
    CHECK(cJSON_Compare(manifest.documents[i], again.documents[i], true));
  }
  free(text);
  ms_manifest_cleanup(&again);
  ms_manifest_cleanup(&manifest);

  check_parse_error("a: 1\na: 2\n", "key \"a\" appears twice");
  check_parse_error("a:\n  <<: {b: 1}\n", "merge keys");
  check_parse_error("a: .inf\n", "no JSON form");
  check_parse_error("- a\n- b\n", "not a Kubernetes object");
  check_parse_error("? [a]\n: b\n", "a key that is a mapping or a list");
  check_parse_error("a: *nothing\n", "names no anchor");
  check_parse_error("a: [\n", "line 2");
  check_parse_error("a: \"\\xff\"\x01\n", "line 1");
  /* Expanding aliases past the cap: refused, not built. */
  char laughs[4096] = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; i++) {
    char row[128];
    snprintf(row, sizeof(row), "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n",
             'a' + i, 'a' + i, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1,
             'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1);
    strcat(laughs, row);
  }
  check_parse_error(laughs, "more than 1000000 nodes");
  char *deep = malloc(100000);
  size_t n = 0;
  for (int i = 0; i < 30000; i++)
    deep[n++] = '[';
  deep[n] = '\0';
  char *deep_doc = malloc(n + 8);
  snprintf(deep_doc, n + 8, "a: %s", deep);
  check_parse_error(deep_doc, "nested deeper");
  free(deep_doc);
  free(deep);

  /* The malformed fixture: the line of the problem. */
  size_t fixture_len;
  uint8_t *fixture = test_read_file(TESTDATA, "malformed.yaml", &fixture_len);
  CHECK(ms_manifest_parse((const char *)fixture, fixture_len, &manifest, err, sizeof(err)) == -1);
  check_contains(err, "line 10");
  free(fixture);
}

static void test_json(void) {
  ms_manifest manifest;
  char err[512];
  CHECK(parse_text(" {\"a\": 1}\n{\"b\": [true, null, \"x\"]} ", &manifest, err, sizeof(err)) == 0);
  CHECK(manifest.count == 2 && manifest.format == MS_MANIFEST_JSON && manifest.lines[1] == 2);
  size_t len;
  char *text = ms_manifest_write(&manifest, &len, err, sizeof(err));
  ms_manifest again;
  CHECK(text != NULL && parse_text(text, &again, err, sizeof(err)) == 0 && again.count == 2);
  CHECK(cJSON_Compare(manifest.documents[1], again.documents[1], true));
  free(text);
  ms_manifest_cleanup(&again);
  ms_manifest_cleanup(&manifest);
  check_parse_error("{\"a\": 1}\n{\"a\": {\"b\": 1, \"b\": 2}}", "key \"b\" appears twice");
  check_parse_error("[{\"kind\": \"Pod\"}]", "not an object");
  check_parse_error("{\"a\": 1}\n{\"a\": ,}", "line 2");
}

/* 10,000 documents cost about ten times 1,000 (a quadratic pass would cost
 * a hundred). */
static double time_documents(size_t count) {
  static const char deployment[] =
      "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  annotations:\n"
      "    mtls-sidecar/inject: \"true\"\nspec:\n  template:\n    spec:\n      containers:\n"
      "        - name: app\n          image: app:1\n";
  size_t one = strlen(deployment);
  char *text = malloc(one * count + 1);
  for (size_t i = 0; i < count; i++)
    memcpy(text + i * one, deployment, one);
  text[one * count] = '\0';
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  ms_manifest manifest;
  char err[512];
  CHECK(ms_manifest_parse(text, one * count, &manifest, err, sizeof(err)) == 0);
  CHECK(manifest.count == count);
  for (size_t i = 0; i < count; i++) {
    ms_inject_decision decision;
    CHECK(ms_inject_object(&settings, manifest.documents[i], &decision, err, sizeof(err)) == 0);
    CHECK(decision == MS_INJECT_INJECTED);
  }
  size_t len;
  char *out = ms_manifest_write(&manifest, &len, err, sizeof(err));
  CHECK(out != NULL);
  clock_gettime(CLOCK_MONOTONIC, &end);
  free(out);
  ms_manifest_cleanup(&manifest);
  free(text);
  return (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
}

static void test_linear(void) {
  double small = time_documents(1000);
  double large = time_documents(10000);
  fprintf(stderr, "1,000 documents: %.3f s; 10,000: %.3f s\n", small, large);
  CHECK(large < 30 * small + 0.05);
}

int main(void) {
  ms_inject_settings_init(&settings);
  test_booleans();
  test_decisions();
  test_refusals();
  test_patch_shapes();
  test_volumes();
  test_apply();
  test_kinds();
  test_yaml();
  test_json();
  test_linear();
  printf("inject_test: all checks passed\n");
  return 0;
}
