/* server_review.c: the admission webhook's answer to one AdmissionReview,
 * without sockets (server_internal.h, xds_webhook_review): the body the API
 * server sent in, the body it gets back out. Also fed directly by
 * //fuzz:admission_review.
 *
 * The choices (docs/xds-server.md, "The admission webhook"):
 *   - not JSON, not an admission.k8s.io/v1 AdmissionReview (v1beta1
 *     included: the configuration must say admissionReviewVersions: [v1]),
 *     no request, no uid (or one over 128 bytes), a Pod CREATE without an
 *     object: HTTP 400 with a sentence. The API server then applies the
 *     webhook's failurePolicy.
 *   - a kind other than core/v1 Pod, a subresource, an operation other than
 *     CREATE: allowed, no patch ("ignored"). The webhook configuration's
 *     rules should not send them; if they do, they pass unchanged rather
 *     than fail every such call.
 *   - a refusal of ms_inject_patch (hostNetwork, a name collision, a value
 *     that is not a boolean): allowed: false, status code 403 (Forbidden,
 *     as the API server itself answers a denied admission) with the
 *     sentence. So is a /validate denial.
 * dryRun changes nothing here: a review has no side effect but a counter
 * and a log line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/base64.h>

#include "common/log.h"
#include "inject/inject.h"
#include "xds-server/server_internal.h"

#define MAX_UID_BYTES 128

const char *xds_review_outcome_text(xds_review_outcome outcome) {
  switch (outcome) {
    case XDS_REVIEW_BAD_REQUEST:
      return "bad request";
    case XDS_REVIEW_INJECTED:
      return "injected";
    case XDS_REVIEW_NOT_REQUESTED:
      return "not requested";
    case XDS_REVIEW_OPTED_OUT:
      return "opted out";
    case XDS_REVIEW_NAMESPACE_SKIPPED:
      return "namespace skipped";
    case XDS_REVIEW_ALREADY_INJECTED:
      return "already injected";
    case XDS_REVIEW_REFUSED:
      return "refused";
    case XDS_REVIEW_VALID:
      return "allowed by validate";
    case XDS_REVIEW_DENIED:
      return "denied by validate";
    case XDS_REVIEW_IGNORED:
      return "ignored (not a pod creation)";
    case XDS_REVIEW_OUTCOME_COUNT:
      break;
  }
  return "unknown";
}

/* string_of returns `object`'s member `name` when it is a string, else
 * NULL. */
static const char *string_of(const cJSON *object, const char *name) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
  return cJSON_IsString(item) ? item->valuestring : NULL;
}

static bool string_is(const cJSON *object, const char *name, const char *value) {
  const char *text = string_of(object, name);
  return text != NULL && strcmp(text, value) == 0;
}

/* bad_request fills `out` with a 400 and `sentence`. */
static int bad_request(xds_review *out, const char *sentence) {
  out->outcome = XDS_REVIEW_BAD_REQUEST;
  out->http_status = 400;
  out->content_type = "text/plain";
  snprintf(out->reason, sizeof(out->reason), "%s", sentence);
  size_t len = strlen(sentence);
  out->body = malloc(len + 2);
  if (out->body == NULL) return -1;
  memcpy(out->body, sentence, len);
  out->body[len] = '\n';
  out->body[len + 1] = '\0';
  out->body_len = len + 1;
  return 0;
}

/* name_pod writes "namespace/name" into out->pod: the request's name, else
 * the object's, else its generateName and "*" (a ReplicaSet's pod has no
 * name yet at CREATE). */
static void name_pod(const cJSON *request, const cJSON *object, const char *namespace_name,
                     xds_review *out) {
  const cJSON *metadata = cJSON_GetObjectItemCaseSensitive(object, "metadata");
  const char *name = string_of(request, "name");
  const char *suffix = "";
  if (name == NULL || name[0] == '\0') name = string_of(metadata, "name");
  if (name == NULL || name[0] == '\0') {
    name = string_of(metadata, "generateName");
    suffix = "*";
  }
  snprintf(out->pod, sizeof(out->pod), "%.100s/%.100s%s", namespace_name,
           name != NULL ? name : "(no name)", suffix);
}

/* annotation_of returns the pod's annotation `name` when it is a string. */
static const char *annotation_of(const cJSON *pod, const char *name) {
  const cJSON *metadata = cJSON_GetObjectItemCaseSensitive(pod, "metadata");
  return string_of(cJSON_GetObjectItemCaseSensitive(metadata, "annotations"), name);
}

/* validate decides /validate for a pod already through every mutation.
 * Returns true when it is allowed; else the sentence is in `why`. */
static bool validate(const ms_inject_settings *settings, const cJSON *pod,
                     const char *namespace_name, const char *pod_name, char *why, size_t why_len) {
  if (annotation_of(pod, MS_INJECT_STATUS_ANNOTATION) != NULL) {
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(pod, "spec");
    const cJSON *init = cJSON_GetObjectItemCaseSensitive(spec, "initContainers");
    const cJSON *containers = cJSON_IsArray(init) ? init : NULL;
    const cJSON *sidecar = NULL, *item = NULL;
    cJSON_ArrayForEach(item, containers) {
      if (string_is(item, "name", MS_INJECT_CONTAINER)) sidecar = item;
    }
    if (sidecar == NULL) {
      snprintf(why, why_len,
               "pod %s carries the " MS_INJECT_STATUS_ANNOTATION
               " annotation but no " MS_INJECT_CONTAINER
               " init container: something removed the sidecar after injection; remove the "
               "annotation to run the pod without it, or stop what removes it",
               pod_name);
      return false;
    }
    if (!string_is(sidecar, "restartPolicy", "Always")) {
      snprintf(why, why_len,
               "pod %s: the API server dropped restartPolicy: Always from the " MS_INJECT_CONTAINER
               " init container, so this cluster does not run native sidecars (Kubernetes "
               "before 1.28, or the SidecarContainers feature gate off) and the sidecar would "
               "block the pod's start; upgrade to Kubernetes 1.29 or later (or turn the gate on "
               "in 1.28), or opt the pod out with the annotation " MS_INJECT_ANNOTATION
               ": \"false\"",
               pod_name);
      return false;
    }
    return true;
  }
  const char *asked = annotation_of(pod, MS_INJECT_ANNOTATION);
  bool wanted = false;
  if (asked == NULL || ms_inject_parse_bool(asked, &wanted) != 0 || !wanted) return true;
  if (strcmp(namespace_name, "kube-system") == 0 ||
      strcmp(namespace_name, settings->control_plane_namespace) == 0)
    return true; /* never injected there, whatever the annotation */
  snprintf(why, why_len,
           "pod %s asks for the sidecar (" MS_INJECT_ANNOTATION
           ": \"%.16s\") but was not injected (no " MS_INJECT_STATUS_ANNOTATION
           " annotation): the mutating webhook did not run for it; check the "
           "MutatingWebhookConfiguration's rules and namespaceSelector and that xds-server is up",
           pod_name, asked);
  return false;
}

/* answer builds the AdmissionReview response: allowed with `patch` (NULL or
 * empty: none), or denied with `code` and `message`. */
static int answer(xds_review *out, const char *uid, bool allowed, const cJSON *patch, int code,
                  const char *message) {
  char *patch_text = NULL, *patch_base64 = NULL;
  cJSON *root = cJSON_CreateObject();
  cJSON *response = cJSON_CreateObject();
  if (root == NULL || response == NULL) goto fail;
  cJSON_AddItemToObject(root, "response", response);
  if (!cJSON_AddStringToObject(root, "apiVersion", "admission.k8s.io/v1") ||
      !cJSON_AddStringToObject(root, "kind", "AdmissionReview") ||
      !cJSON_AddStringToObject(response, "uid", uid) ||
      !cJSON_AddBoolToObject(response, "allowed", allowed))
    goto fail;
  if (allowed && patch != NULL && cJSON_GetArraySize(patch) > 0) {
    patch_text = cJSON_PrintUnformatted(patch);
    size_t encoded_len = 0;
    if (patch_text == NULL || !EVP_EncodedLength(&encoded_len, strlen(patch_text))) goto fail;
    patch_base64 = malloc(encoded_len);
    if (patch_base64 == NULL) goto fail;
    EVP_EncodeBlock((uint8_t *)patch_base64, (const uint8_t *)patch_text, strlen(patch_text));
    if (!cJSON_AddStringToObject(response, "patchType", "JSONPatch") ||
        !cJSON_AddStringToObject(response, "patch", patch_base64))
      goto fail;
  }
  if (!allowed) {
    cJSON *status = cJSON_AddObjectToObject(response, "status");
    if (status == NULL || !cJSON_AddNumberToObject(status, "code", code) ||
        !cJSON_AddStringToObject(status, "message", message))
      goto fail;
  }
  out->body = cJSON_PrintUnformatted(root);
  if (out->body == NULL) goto fail;
  out->body_len = strlen(out->body);
  out->http_status = 200;
  out->content_type = "application/json";
  free(patch_text);
  free(patch_base64);
  cJSON_Delete(root);
  return 0;
fail:
  free(patch_text);
  free(patch_base64);
  cJSON_Delete(root);
  return -1;
}

static xds_review_outcome outcome_of(ms_inject_decision decision) {
  switch (decision) {
    case MS_INJECT_INJECTED:
      return XDS_REVIEW_INJECTED;
    case MS_INJECT_NOT_REQUESTED:
      return XDS_REVIEW_NOT_REQUESTED;
    case MS_INJECT_OPTED_OUT:
      return XDS_REVIEW_OPTED_OUT;
    case MS_INJECT_NAMESPACE_SKIPPED:
      return XDS_REVIEW_NAMESPACE_SKIPPED;
    case MS_INJECT_ALREADY_INJECTED:
      return XDS_REVIEW_ALREADY_INJECTED;
  }
  return XDS_REVIEW_NOT_REQUESTED;
}

/* review_pod answers a Pod CREATE on `path`. */
static int review_pod(const ms_inject_settings *settings, xds_webhook_path path, const char *uid,
                      const cJSON *object, const char *namespace_name, xds_review *out) {
  char what[300];
  snprintf(what, sizeof(what), "pod %s", out->pod);
  if (path == XDS_WEBHOOK_VALIDATE) {
    bool allowed =
        validate(settings, object, namespace_name, out->pod, out->reason, sizeof(out->reason));
    out->outcome = allowed ? XDS_REVIEW_VALID : XDS_REVIEW_DENIED;
    return answer(out, uid, allowed, NULL, 403, out->reason);
  }
  cJSON *labels = NULL;
  if (path == XDS_WEBHOOK_INJECT_NAMESPACE) {
    /* The configuration's namespaceSelector sent it here: the namespace is
     * labelled for injection (the review does not carry its labels). */
    labels = cJSON_CreateObject();
    if (labels == NULL || !cJSON_AddStringToObject(labels, MS_INJECT_NAMESPACE_LABEL, "true")) {
      cJSON_Delete(labels);
      return -1;
    }
  }
  ms_inject_pod pod = {
      .pod = object,
      .namespace_name = namespace_name,
      .namespace_labels = labels,
      .what = what,
  };
  cJSON *patch = NULL;
  ms_inject_decision decision;
  int rc = ms_inject_patch(settings, &pod, &patch, &decision, out->reason, sizeof(out->reason));
  cJSON_Delete(labels);
  if (rc != 0) {
    out->outcome = XDS_REVIEW_REFUSED;
    return answer(out, uid, false, NULL, 403, out->reason);
  }
  out->outcome = outcome_of(decision);
  rc = answer(out, uid, true, patch, 0, NULL);
  cJSON_Delete(patch);
  return rc;
}

static int review(const ms_inject_settings *settings, xds_webhook_path path, const cJSON *root,
                  xds_review *out) {
  if (!cJSON_IsObject(root)) return bad_request(out, "the body is not a JSON object");
  const char *api_version = string_of(root, "apiVersion");
  if (api_version == NULL || !string_is(root, "kind", "AdmissionReview"))
    return bad_request(out,
                       "the body is not an AdmissionReview (apiVersion "
                       "admission.k8s.io/v1, kind AdmissionReview)");
  if (strcmp(api_version, "admission.k8s.io/v1") != 0) {
    char sentence[300];
    snprintf(sentence, sizeof(sentence),
             "AdmissionReview %.64s is not served: only admission.k8s.io/v1 (set "
             "admissionReviewVersions: [\"v1\"] in the webhook configuration)",
             api_version);
    return bad_request(out, sentence);
  }
  const cJSON *request = cJSON_GetObjectItemCaseSensitive(root, "request");
  if (!cJSON_IsObject(request)) return bad_request(out, "the AdmissionReview has no request");
  const char *uid = string_of(request, "uid");
  if (uid == NULL || uid[0] == '\0')
    return bad_request(out, "the AdmissionReview's request has no uid");
  if (strlen(uid) > MAX_UID_BYTES)
    return bad_request(out, "the AdmissionReview's request uid is longer than 128 bytes");
  const char *namespace_name = string_of(request, "namespace");
  if (namespace_name == NULL) namespace_name = "";
  const cJSON *object = cJSON_GetObjectItemCaseSensitive(request, "object");
  name_pod(request, object, namespace_name, out);

  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(request, "kind");
  const char *sub_resource = string_of(request, "subResource");
  bool is_pod = string_is(kind, "group", "") && string_is(kind, "version", "v1") &&
                string_is(kind, "kind", "Pod") && (sub_resource == NULL || sub_resource[0] == '\0');
  if (!is_pod || !string_is(request, "operation", "CREATE")) {
    out->outcome = XDS_REVIEW_IGNORED;
    return answer(out, uid, true, NULL, 0, NULL);
  }
  if (!cJSON_IsObject(object))
    return bad_request(out, "the AdmissionReview creates a Pod but carries no object");
  return review_pod(settings, path, uid, object, namespace_name, out);
}

int xds_webhook_review(const ms_inject_settings *settings, xds_webhook_path path, const char *body,
                       size_t body_len, xds_review *out) {
  memset(out, 0, sizeof(*out));
  snprintf(out->pod, sizeof(out->pod), "-");
  cJSON *root = cJSON_ParseWithLength(body, body_len);
  int rc =
      root != NULL ? review(settings, path, root, out) : bad_request(out, "the body is not JSON");
  cJSON_Delete(root);
  if (rc != 0) {
    xds_review_cleanup(out);
    return -1;
  }
  return 0;
}

void xds_review_cleanup(xds_review *review) {
  free(review->body);
  review->body = NULL;
  review->body_len = 0;
}
