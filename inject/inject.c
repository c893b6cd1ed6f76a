/* inject.c: whether a pod gets the sidecar, and the JSON Patch that adds it
 * (inject.h). The sidecar itself, its volumes and every value they carry are
 * written once, in sidecar_json and volumes_json below. */
#include "inject/inject.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/version.h"

/* The native sidecar. "image" is set from the settings; the volume names are
 * the MS_INJECT_*_VOLUME names. deploy/check.sh checks that the manifests
 * (the control plane's flags, the Bundles' targets, the sample sidecar.json)
 * agree with what is written here.
 *
 * - args: kubelet expands $(POD_IP), $(POD_NAME) and $(POD_NAMESPACE) from
 *   the env below. The node id has Istio's form,
 *   sidecar~IP~POD.NAMESPACE~DOMAIN: one node per pod, and the only claim it
 *   makes is the namespace, which xds-server checks against the token
 *   (docs/xds-server.md, "Node identity"). "POD.NAMESPACE" alone would read
 *   as SERVICE_ACCOUNT.NAMESPACE there, claim the pod's name as the service
 *   account, and be refused. --health-address is the listener that answers
 *   GET /ready only, on the pod IP, for kubelet's httpGet probes: the admin
 *   endpoint stays on 127.0.0.1:15000 (no exec probe, no shell in the image).
 * - resources: about 4.5 MiB at rest plus 4.8 KiB per idle connection
 *   (bench/, docs/architecture.md), so 64Mi holds the default cap of 10,000
 *   connections per listener (docs/limits.md); HTTP heads (up to 128 KiB
 *   in) and responses held back (up to 256 KiB) are per exchange, while it
 *   lasts. No CPU limit: TLS handshakes are not throttled.
 * - securityContext: the restricted Pod Security Standard and a read-only
 *   root (keys live in locked memory; the xDS backup in the state volume). */
static const char sidecar_json[] =
    "{"
    "\"name\": \"" MS_INJECT_CONTAINER
    "\","
    "\"image\": \"\","
    "\"imagePullPolicy\": \"IfNotPresent\","
    "\"restartPolicy\": \"Always\","
    "\"args\": [\"--config\", \"/etc/mtls-sidecar/sidecar.json\","
    "          \"--node-id\","
    "          "
    "\"sidecar~$(POD_IP)~$(POD_NAME).$(POD_NAMESPACE)~$(POD_NAMESPACE).svc.cluster.local\","
    "          \"--health-address\", \"0.0.0.0:15021\"],"
    "\"env\": ["
    "  {\"name\": \"POD_NAME\", \"valueFrom\": {\"fieldRef\": {\"fieldPath\": \"metadata.name\"}}},"
    "  {\"name\": \"POD_IP\", \"valueFrom\": {\"fieldRef\": {\"fieldPath\": \"status.podIP\"}}},"
    "  {\"name\": \"POD_NAMESPACE\","
    "   \"valueFrom\": {\"fieldRef\": {\"fieldPath\": \"metadata.namespace\"}}},"
    "  {\"name\": \"SERVICE_ACCOUNT\","
    "   \"valueFrom\": {\"fieldRef\": {\"fieldPath\": \"spec.serviceAccountName\"}}}],"
    "\"ports\": [{\"name\": \"" MS_INJECT_HEALTH_PORT_NAME
    "\", \"containerPort\": 15021,"
    "            \"protocol\": \"TCP\"}],"
    "\"startupProbe\": {\"httpGet\": {\"path\": \"/ready\", \"port\": \"" MS_INJECT_HEALTH_PORT_NAME
    "\"},"
    "                 \"periodSeconds\": 1, \"timeoutSeconds\": 3, \"failureThreshold\": 60},"
    "\"readinessProbe\": {\"httpGet\": {\"path\": \"/ready\", \"port\": "
    "\"" MS_INJECT_HEALTH_PORT_NAME
    "\"},"
    "                   \"periodSeconds\": 10, \"timeoutSeconds\": 3, \"failureThreshold\": 3},"
    "\"resources\": {\"requests\": {\"cpu\": \"10m\", \"memory\": \"16Mi\"},"
    "              \"limits\": {\"memory\": \"64Mi\"}},"
    "\"securityContext\": {\"runAsNonRoot\": true, \"runAsUser\": 65532, \"runAsGroup\": 65532,"
    "                    \"readOnlyRootFilesystem\": true, \"allowPrivilegeEscalation\": false,"
    "                    \"capabilities\": {\"drop\": [\"ALL\"]},"
    "                    \"seccompProfile\": {\"type\": \"RuntimeDefault\"}},"
    "\"volumeMounts\": ["
    "  {\"name\": \"" MS_INJECT_CONFIG_VOLUME "\", \"mountPath\": \"" MS_INJECT_CONFIG_DIR
    "\","
    "   \"readOnly\": true},"
    "  {\"name\": \"" MS_INJECT_TOKEN_VOLUME
    "\", \"mountPath\": \"/var/run/secrets/mtls-sidecar\","
    "   \"readOnly\": true},"
    "  {\"name\": \"" MS_INJECT_STATE_VOLUME
    "\", \"mountPath\": \"/var/lib/mtls-sidecar\"}]"
    "}";

/* The configuration folder /etc/mtls-sidecar, one projected volume of three
 * ConfigMaps, each key named (a missing key stops the pod in
 * ContainerCreating, saying which, rather than starting a sidecar without
 * it): sidecar.json from the settings' ConfigMap (per namespace, the
 * operator's); bootstrap-ca.pem, the control plane's CA (xds.tls.trusted_ca),
 * and trust.pem, the workload CAs (identity.trust_bundle_file), from the
 * ConfigMaps trust-manager's Bundles write into the namespace. Mounted whole,
 * never with subPath, so that a CA rotation reaches the files (kubelet swaps
 * the folder's ..data link). Then the service-account token the control
 * plane verifies (kubelet renews it at 80% of its hour), and a writable
 * folder for the xDS backup (the root is read-only). The first ConfigMap's
 * name and the audience are set from the settings. */
static const char volumes_json[] =
    "["
    "{\"name\": \"" MS_INJECT_CONFIG_VOLUME
    "\", \"projected\": {\"sources\": ["
    "  {\"configMap\": {\"name\": \"\", \"items\": [{\"key\": \"" MS_INJECT_CONFIG_KEY
    "\", \"path\": \"" MS_INJECT_CONFIG_KEY
    "\"}]}},"
    "  {\"configMap\": {\"name\": \"" MS_INJECT_BOOTSTRAP_TRUST_CONFIG_MAP
    "\", \"items\": [{\"key\": \"" MS_INJECT_BOOTSTRAP_TRUST_KEY
    "\", \"path\": \"" MS_INJECT_BOOTSTRAP_TRUST_KEY
    "\"}]}},"
    "  {\"configMap\": {\"name\": \"" MS_INJECT_TRUST_CONFIG_MAP
    "\", \"items\": [{\"key\": \"" MS_INJECT_TRUST_KEY "\", \"path\": \"" MS_INJECT_TRUST_KEY
    "\"}]}}]}},"
    "{\"name\": \"" MS_INJECT_TOKEN_VOLUME
    "\", \"projected\": {\"sources\": ["
    "  {\"serviceAccountToken\": {\"audience\": \"\", \"expirationSeconds\": 3600,"
    "                            \"path\": \"token\"}}]}},"
    "{\"name\": \"" MS_INJECT_STATE_VOLUME
    "\", \"emptyDir\": {\"sizeLimit\": \"16Mi\"}}"
    "]";

void ms_inject_settings_init(ms_inject_settings *settings) {
  *settings = (ms_inject_settings){
      .image = "mtls-sidecar",
      .version = MS_VERSION,
      .config_map = "mtls-sidecar-config",
      .token_audience = "mtls-sidecar",
      .control_plane_namespace = "mtls-system",
      .native_sidecars = true,
  };
}

const char *ms_inject_decision_text(ms_inject_decision decision) {
  switch (decision) {
    case MS_INJECT_INJECTED:
      return "injected";
    case MS_INJECT_NOT_REQUESTED:
      return "not requested";
    case MS_INJECT_OPTED_OUT:
      return "opted out";
    case MS_INJECT_NAMESPACE_SKIPPED:
      return "namespace skipped";
    case MS_INJECT_ALREADY_INJECTED:
      return "already injected";
  }
  return "unknown";
}

int ms_inject_parse_bool(const char *text, bool *out_value) {
  static const char *const truths[] = {"1", "t", "T", "TRUE", "true", "True"};
  static const char *const falsehoods[] = {"0", "f", "F", "FALSE", "false", "False"};
  for (size_t i = 0; i < sizeof(truths) / sizeof(truths[0]); i++) {
    if (strcmp(text, truths[i]) == 0) {
      *out_value = true;
      return 0;
    }
    if (strcmp(text, falsehoods[i]) == 0) {
      *out_value = false;
      return 0;
    }
  }
  return -1;
}

/* object_item returns parent[key] when parent is an object and the member
 * is there and not null (Kubernetes reads a null member as an absent one);
 * NULL otherwise. */
static cJSON *object_item(const cJSON *parent, const char *key) {
  if (!cJSON_IsObject(parent)) return NULL;
  cJSON *item = cJSON_GetObjectItemCaseSensitive(parent, key);
  return cJSON_IsNull(item) ? NULL : item;
}

/* Where a value is read from, for sentences: "annotation", "label". */
typedef struct flag_source {
  const cJSON *map;  /* annotations or labels; NULL: none */
  const char *kind;  /* "annotation" or "label" */
  const char *owner; /* "on the pod", "on Deployment x", "on namespace y" */
} flag_source;

/* read_flag sets *out to -1 (absent), 0 or 1; -1 with a sentence for a
 * value that is not a string or not a boolean. */
static int read_flag(const flag_source *source, const char *key, const char *what, int *out,
                     char *err, size_t err_len) {
  *out = -1;
  const cJSON *value = object_item(source->map, key);
  if (value == NULL) return 0;
  if (!cJSON_IsString(value)) {
    ms_err_set(err, err_len,
               "%s: %s %s %s is not a string (Kubernetes takes only strings there: quote it, "
               "\"true\" or \"false\")",
               what, source->kind, key, source->owner);
    return -1;
  }
  bool flag;
  if (ms_inject_parse_bool(value->valuestring, &flag) != 0) {
    char escaped[MS_LOG_ESCAPED_LEN];
    ms_err_set(err, err_len,
               "%s: %s %s \"%s\" %s is not a boolean: give true or false (also 1, t, T, TRUE, "
               "True, or 0, f, F, FALSE, False, as Kubernetes reads booleans)",
               what, source->kind, key,
               ms_log_escape(value->valuestring, 64, escaped, sizeof(escaped)), source->owner);
    return -1;
  }
  *out = flag ? 1 : 0;
  return 0;
}

/* as_array returns `node` when it is an array, else NULL: what
 * cJSON_ArrayForEach walks (its argument must be one expression). */
static const cJSON *as_array(const cJSON *node) {
  return cJSON_IsArray(node) ? node : NULL;
}

/* named_in returns true when array `list` has an element whose "name" is
 * `name`. */
static bool named_in(const cJSON *list, const char *name) {
  const cJSON *item;
  cJSON_ArrayForEach(item, as_array(list)) {
    const cJSON *item_name = object_item(item, "name");
    if (cJSON_IsString(item_name) && strcmp(item_name->valuestring, name) == 0) return true;
  }
  return false;
}

/* refuse_collisions: a container, volume or port of the pod that the
 * sidecar would take. */
static int refuse_collisions(const cJSON *spec, const char *what, char *err, size_t err_len) {
  static const char *const lists[] = {"containers", "initContainers", "ephemeralContainers"};
  for (size_t i = 0; i < 3; i++) {
    if (named_in(object_item(spec, lists[i]), MS_INJECT_CONTAINER)) {
      ms_err_set(err, err_len,
                 "%s: refused: spec.%s already has a container named %s (added by hand?): "
                 "remove it, or remove the %s annotation",
                 what, lists[i], MS_INJECT_CONTAINER, MS_INJECT_ANNOTATION);
      return -1;
    }
  }
  static const char *const volumes[] = {MS_INJECT_CONFIG_VOLUME, MS_INJECT_TOKEN_VOLUME,
                                        MS_INJECT_STATE_VOLUME};
  for (size_t i = 0; i < 3; i++) {
    if (named_in(object_item(spec, "volumes"), volumes[i])) {
      ms_err_set(err, err_len,
                 "%s: refused: spec.volumes already has a volume named %s, a name the sidecar's "
                 "volume takes: "
                 "rename yours",
                 what, volumes[i]);
      return -1;
    }
  }
  for (size_t i = 0; i < 2; i++) {
    const cJSON *container;
    cJSON_ArrayForEach(container, as_array(object_item(spec, lists[i]))) {
      const cJSON *port;
      cJSON_ArrayForEach(port, as_array(object_item(container, "ports"))) {
        const cJSON *number = object_item(port, "containerPort");
        double value = cJSON_IsNumber(number) ? number->valuedouble
                       : cJSON_IsRaw(number)  ? strtod(number->valuestring, NULL)
                                              : 0;
        if (value == MS_INJECT_HEALTH_PORT || value == MS_INJECT_ADMIN_PORT) {
          const cJSON *name = object_item(container, "name");
          ms_err_set(
              err, err_len,
              "%s: refused: container %s listens on port %d, which the sidecar takes (%s): the "
              "pod's "
              "containers share one network",
              what, cJSON_IsString(name) ? name->valuestring : "(unnamed)", (int)value,
              value == MS_INJECT_HEALTH_PORT ? "its health listener" : "its admin endpoint");
          return -1;
        }
      }
    }
  }
  return 0;
}

/* ms_inject_sidecar_container and ms_inject_volumes: the text above with
 * the settings' values in place. */
cJSON *ms_inject_sidecar_container(const ms_inject_settings *settings) {
  cJSON *container = cJSON_Parse(sidecar_json);
  if (container == NULL) return NULL;
  size_t len = strlen(settings->image) + strlen(settings->version) + 2;
  char *image = malloc(len);
  if (image == NULL) {
    cJSON_Delete(container);
    return NULL;
  }
  snprintf(image, len, "%s:%s", settings->image, settings->version);
  cJSON *value = cJSON_CreateString(image);
  free(image);
  if (value == NULL || !cJSON_ReplaceItemInObjectCaseSensitive(container, "image", value)) {
    cJSON_Delete(value);
    cJSON_Delete(container);
    return NULL;
  }
  return container;
}

cJSON *ms_inject_volumes(const ms_inject_settings *settings) {
  cJSON *volumes = cJSON_Parse(volumes_json);
  if (volumes == NULL) return NULL;
  cJSON *config = object_item(
      cJSON_GetArrayItem(
          object_item(object_item(cJSON_GetArrayItem(volumes, 0), "projected"), "sources"), 0),
      "configMap");
  cJSON *token = object_item(
      cJSON_GetArrayItem(
          object_item(object_item(cJSON_GetArrayItem(volumes, 1), "projected"), "sources"), 0),
      "serviceAccountToken");
  cJSON *name = cJSON_CreateString(settings->config_map);
  cJSON *audience = cJSON_CreateString(settings->token_audience);
  bool ok = name && audience && cJSON_ReplaceItemInObjectCaseSensitive(config, "name", name);
  if (!ok) cJSON_Delete(name);
  ok = ok && cJSON_ReplaceItemInObjectCaseSensitive(token, "audience", audience);
  if (!ok) {
    cJSON_Delete(audience);
    cJSON_Delete(volumes);
    return NULL;
  }
  return volumes;
}

/* add_op appends {"op": "add", "path": path, "value": value} to `patch`,
 * taking `value`. */
static bool add_op(cJSON *patch, const char *path, cJSON *value) {
  cJSON *op = cJSON_CreateObject();
  if (op == NULL || value == NULL || !cJSON_AddStringToObject(op, "op", "add") ||
      !cJSON_AddStringToObject(op, "path", path)) {
    cJSON_Delete(op);
    cJSON_Delete(value);
    return false;
  }
  cJSON_AddItemToObject(op, "value", value);
  cJSON_AddItemToArray(patch, op);
  return true;
}

/* wrap returns {key: value} (taking value), or NULL. */
static cJSON *wrap(const char *key, cJSON *value) {
  cJSON *object = cJSON_CreateObject();
  if (object == NULL || value == NULL) {
    cJSON_Delete(object);
    cJSON_Delete(value);
    return NULL;
  }
  cJSON_AddItemToObject(object, key, value);
  return object;
}

/* wrap_in_array returns [value] (taking value), or NULL. */
static cJSON *wrap_in_array(cJSON *value) {
  cJSON *array = cJSON_CreateArray();
  if (array == NULL || value == NULL) {
    cJSON_Delete(array);
    cJSON_Delete(value);
    return NULL;
  }
  cJSON_AddItemToArray(array, value);
  return array;
}

/* build_patch: the operations that add the sidecar to `pod` (checked).
 * Each "add" creates what is missing on its way, since RFC 6902 adds only
 * into a parent that exists. */
static cJSON *build_patch(const ms_inject_settings *settings, const cJSON *pod) {
  cJSON *patch = cJSON_CreateArray();
  if (patch == NULL) return NULL;
  const cJSON *metadata = object_item(pod, "metadata");
  const cJSON *spec = object_item(pod, "spec");
  bool ok = true;
  cJSON *status = cJSON_CreateString(settings->version);
  if (metadata == NULL)
    ok = add_op(patch, "/metadata", wrap("annotations", wrap(MS_INJECT_STATUS_ANNOTATION, status)));
  else if (object_item(metadata, "annotations") == NULL)
    ok = add_op(patch, "/metadata/annotations", wrap(MS_INJECT_STATUS_ANNOTATION, status));
  else
    ok = add_op(patch, "/metadata/annotations/mtls-sidecar~1status", status);
  /* The sidecar, first among the init containers: it must be up before any
   * other init container that may use the network. */
  cJSON *container = ms_inject_sidecar_container(settings);
  if (object_item(spec, "initContainers") == NULL)
    ok = add_op(patch, "/spec/initContainers", wrap_in_array(container)) && ok;
  else
    ok = add_op(patch, "/spec/initContainers/0", container) && ok;
  cJSON *volumes = ms_inject_volumes(settings);
  if (object_item(spec, "volumes") == NULL) {
    ok = add_op(patch, "/spec/volumes", volumes) && ok;
  } else if (volumes == NULL) {
    ok = false;
  } else {
    while (volumes->child != NULL)
      ok = add_op(patch, "/spec/volumes/-", cJSON_DetachItemViaPointer(volumes, volumes->child)) &&
           ok;
    cJSON_Delete(volumes);
  }
  if (!ok) {
    cJSON_Delete(patch);
    return NULL;
  }
  return patch;
}

static bool skipped_namespace(const ms_inject_settings *settings, const char *name) {
  return name != NULL &&
         (strcmp(name, "kube-system") == 0 || strcmp(name, settings->control_plane_namespace) == 0);
}

int ms_inject_patch(const ms_inject_settings *settings, const ms_inject_pod *pod, cJSON **out_patch,
                    ms_inject_decision *out_decision, char *err, size_t err_len) {
  *out_patch = NULL;
  const char *what = pod->what ? pod->what : "pod";
  if (!cJSON_IsObject(pod->pod)) {
    ms_err_set(err, err_len, "%s: the pod is not a JSON object", what);
    return -1;
  }
  const cJSON *metadata = object_item(pod->pod, "metadata");
  if (metadata != NULL && !cJSON_IsObject(metadata)) {
    ms_err_set(err, err_len, "%s: metadata is not an object", what);
    return -1;
  }
  const cJSON *annotations = object_item(metadata, "annotations");
  if (annotations != NULL && !cJSON_IsObject(annotations)) {
    ms_err_set(err, err_len, "%s: metadata.annotations is not an object", what);
    return -1;
  }
  char escaped[MS_LOG_ESCAPED_LEN], namespace_owner[MS_LOG_ESCAPED_LEN + 16];
  snprintf(namespace_owner, sizeof(namespace_owner), "on namespace %s",
           pod->namespace_name ? ms_log_escape(pod->namespace_name, 128, escaped, sizeof(escaped))
                               : "(unnamed)");
  const flag_source sources[] = {
      {annotations, "annotation", "on the pod"},
      {pod->owner_annotations, "annotation", "on the workload"},
      {pod->namespace_labels, "label", namespace_owner},
  };
  int flags[3];
  const char *keys[] = {MS_INJECT_ANNOTATION, MS_INJECT_ANNOTATION, MS_INJECT_NAMESPACE_LABEL};
  for (size_t i = 0; i < 3; i++)
    if (read_flag(&sources[i], keys[i], what, &flags[i], err, err_len) != 0) return -1;

  ms_inject_decision decision;
  if (object_item(annotations, MS_INJECT_STATUS_ANNOTATION) != NULL)
    decision = MS_INJECT_ALREADY_INJECTED;
  else if (skipped_namespace(settings, pod->namespace_name) || flags[2] == 0)
    decision = MS_INJECT_NAMESPACE_SKIPPED;
  else if (flags[0] == 0 || (flags[0] == -1 && flags[1] == 0))
    decision = MS_INJECT_OPTED_OUT;
  else if (flags[0] == 1 || flags[1] == 1 || flags[2] == 1)
    decision = MS_INJECT_INJECTED;
  else
    decision = MS_INJECT_NOT_REQUESTED;

  if (decision == MS_INJECT_INJECTED) {
    const cJSON *spec = object_item(pod->pod, "spec");
    const cJSON *containers = object_item(spec, "containers");
    const cJSON *host_network = object_item(spec, "hostNetwork");
    if (!settings->native_sidecars) {
      ms_err_set(
          err, err_len,
          "%s: refused: the cluster has no native sidecars (Kubernetes 1.29 or later, or 1.28 "
          "with the SidecarContainers feature gate): the sidecar would be an init container "
          "that never ends, and the pod would wait in Init forever",
          what);
      return -1;
    }
    if (!cJSON_IsArray(containers) || cJSON_GetArraySize(containers) == 0) {
      ms_err_set(err, err_len, "%s: refused: spec.containers is missing or empty", what);
      return -1;
    }
    if (host_network != NULL && !cJSON_IsFalse(host_network)) {
      ms_err_set(err, err_len,
                 "%s: refused: hostNetwork pods share the node's network, where the sidecar's "
                 "loopback listeners and ports would be every pod's on that node: remove the %s "
                 "annotation or hostNetwork",
                 what, MS_INJECT_ANNOTATION);
      return -1;
    }
    static const char *const lists[] = {"initContainers", "volumes", "ephemeralContainers"};
    for (size_t i = 0; i < 3; i++) {
      if (object_item(spec, lists[i]) != NULL && !cJSON_IsArray(object_item(spec, lists[i]))) {
        ms_err_set(err, err_len, "%s: refused: spec.%s is not a list", what, lists[i]);
        return -1;
      }
    }
    if (refuse_collisions(spec, what, err, err_len) != 0) return -1;
    *out_patch = build_patch(settings, pod->pod);
  } else {
    *out_patch = cJSON_CreateArray();
  }
  if (*out_patch == NULL) {
    ms_err_set(err, err_len, "%s: out of memory", what);
    return -1;
  }
  *out_decision = decision;
  return 0;
}

/* The kinds whose pods can be injected, and where their pod template is. */
typedef struct workload_kind {
  const char *kind;
  const char *api_version;
  const char *const template_path[4]; /* keys from the object; none: the object is the pod */
} workload_kind;

static const workload_kind workload_kinds[] = {
    {"Pod", "v1", {NULL}},
    {"Deployment", "apps/v1", {"spec", "template", NULL}},
    {"StatefulSet", "apps/v1", {"spec", "template", NULL}},
    {"DaemonSet", "apps/v1", {"spec", "template", NULL}},
    {"ReplicaSet", "apps/v1", {"spec", "template", NULL}},
    {"Job", "batch/v1", {"spec", "template", NULL}},
    {"CronJob", "batch/v1", {"spec", "jobTemplate", "spec", "template"}},
};

/* asks_injection: `metadata.annotations` of `node` says true (-1 with a
 * sentence for a value that is not a boolean). */
static int asks_injection(const cJSON *node, const char *what, bool *out, char *err,
                          size_t err_len) {
  flag_source source = {object_item(object_item(node, "metadata"), "annotations"), "annotation",
                        "on the object"};
  int flag;
  if (read_flag(&source, MS_INJECT_ANNOTATION, what, &flag, err, err_len) != 0) return -1;
  *out = flag == 1;
  return 0;
}

int ms_inject_object(const ms_inject_settings *settings, cJSON *object,
                     ms_inject_decision *out_decision, char *err, size_t err_len) {
  const cJSON *kind = object_item(object, "kind");
  const cJSON *api_version = object_item(object, "apiVersion");
  const cJSON *metadata = object_item(object, "metadata");
  const cJSON *name = object_item(metadata, "name");
  const cJSON *namespace_name = object_item(metadata, "namespace");
  /* Names from the input, escaped: one refusal, one line. */
  char what[3 * MS_LOG_ESCAPED_LEN], kind_text[MS_LOG_ESCAPED_LEN],
      namespace_text[MS_LOG_ESCAPED_LEN], name_text[MS_LOG_ESCAPED_LEN];
  snprintf(
      what, sizeof(what), "%s %s%s%s",
      cJSON_IsString(kind) ? ms_log_escape(kind->valuestring, 64, kind_text, sizeof(kind_text))
                           : "(no kind)",
      cJSON_IsString(namespace_name)
          ? ms_log_escape(namespace_name->valuestring, 128, namespace_text, sizeof(namespace_text))
          : "",
      cJSON_IsString(namespace_name) ? "/" : "",
      cJSON_IsString(name) ? ms_log_escape(name->valuestring, 128, name_text, sizeof(name_text))
                           : "(no name)");

  const workload_kind *workload = NULL;
  for (size_t i = 0; i < sizeof(workload_kinds) / sizeof(workload_kinds[0]); i++)
    if (cJSON_IsString(kind) && cJSON_IsString(api_version) &&
        strcmp(kind->valuestring, workload_kinds[i].kind) == 0 &&
        strcmp(api_version->valuestring, workload_kinds[i].api_version) == 0)
      workload = &workload_kinds[i];

  cJSON *pod = object;
  for (size_t i = 0; workload != NULL && i < 4 && workload->template_path[i] != NULL; i++)
    pod = object_item(pod, workload->template_path[i]);
  bool asked = false, template_asked = false;
  if (asks_injection(object, what, &asked, err, err_len) != 0) return -1;
  if (workload == NULL || !cJSON_IsObject(pod)) {
    const cJSON *template = object_item(object_item(object, "spec"), "template");
    if (asks_injection(template, what, &template_asked, err, err_len) != 0) return -1;
    if (asked || template_asked) {
      ms_err_set(err, err_len,
                 "%s: annotated %s, but %s: only Pod (v1), Deployment, StatefulSet, DaemonSet, "
                 "ReplicaSet (apps/v1), Job and CronJob (batch/v1) are injected",
                 what, MS_INJECT_ANNOTATION,
                 workload == NULL ? "of a kind that cannot be injected" : "it has no pod template");
      return -1;
    }
    *out_decision = MS_INJECT_NOT_REQUESTED;
    return 0;
  }

  ms_inject_pod request = {
      .pod = pod,
      .namespace_name = cJSON_IsString(namespace_name) ? namespace_name->valuestring : NULL,
      .owner_annotations = pod == object ? NULL : object_item(metadata, "annotations"),
      .what = what,
  };
  cJSON *patch = NULL;
  if (ms_inject_patch(settings, &request, &patch, out_decision, err, err_len) != 0) return -1;
  if (*out_decision != MS_INJECT_INJECTED) {
    cJSON_Delete(patch);
    return 0;
  }
  cJSON *patched = NULL;
  int rc = ms_inject_apply(pod, patch, &patched, err, err_len);
  cJSON_Delete(patch);
  if (rc != 0) return -1;
  /* In place: the template takes the patched copy's members. */
  cJSON *old_members = pod->child;
  pod->child = patched->child;
  patched->child = old_members;
  cJSON_Delete(patched);
  return 0;
}
