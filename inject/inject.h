/* inject.h: sidecar injection, the one code path of the inject command
 * (inject/main.c) and of the admission webhook.
 *
 * ms_inject_patch is a pure function from a pod (a Pod, or a workload's pod
 * template: {"metadata": ..., "spec": ...}) and the injection settings to
 * either a JSON Patch (RFC 6902: an array of operations on that pod, what an
 * admission webhook answers with) or a refusal with a sentence naming its
 * cause. ms_inject_apply applies such a patch; ms_inject_object finds the pod
 * template of a whole Kubernetes object (Deployment, CronJob, ...) and
 * injects it in place, as the command does for each document.
 *
 * Errors follow the main thread's convention (docs/architecture.md,
 * "Errors"): 0 on success, -1 on failure with a whole sentence in
 * `err, err_len` (a refusal, a value that is not a boolean, memory). Nothing
 * here logs, reads files or keeps state: every call is independent. */
#ifndef MS_INJECT_H
#define MS_INJECT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* Opt in ("true") or out ("false") on a pod (its metadata.annotations), on
 * a workload in the command, or on a namespace (its metadata.labels, in the
 * webhook). The value is read as Go's strconv.ParseBool reads it
 * (ms_inject_parse_bool). */
#define MS_INJECT_ANNOTATION "mtls-sidecar/inject"
#define MS_INJECT_NAMESPACE_LABEL "mtls-sidecar/inject"
/* Written on every injected pod: the version injected. A pod that carries it
 * is never injected again. */
#define MS_INJECT_STATUS_ANNOTATION "mtls-sidecar/status"

/* The names injection adds; an app container or volume of the same name is
 * refused, never merged. */
#define MS_INJECT_CONTAINER "mtls-sidecar"
#define MS_INJECT_CONFIG_VOLUME "mtls-sidecar-config"
#define MS_INJECT_TOKEN_VOLUME "mtls-sidecar-token"
#define MS_INJECT_STATE_VOLUME "mtls-sidecar-state"
/* The sidecar's health listener on the pod IP, which answers GET /ready only
 * (kubelet's httpGet probes). The admin endpoint stays on 127.0.0.1:15000. */
/* The folder MS_INJECT_CONFIG_VOLUME is mounted at: a projected volume of
 * three ConfigMaps, one key each. The settings' config_map (per namespace,
 * made by the operator) gives sidecar.json; trust-manager's Bundles write the
 * other two into every namespace that runs sidecars (deploy/README.md):
 * bootstrap-ca.pem, the control plane's CA (the sidecar's
 * xds.tls.trusted_ca), and trust.pem, the workload CAs
 * (identity.trust_bundle_file, which verifies upstreams). Kept apart: the
 * CA a sidecar trusts to reach the control plane is not the one that signs
 * workload certificates. */
#define MS_INJECT_CONFIG_DIR "/etc/mtls-sidecar"
#define MS_INJECT_CONFIG_KEY "sidecar.json"
#define MS_INJECT_BOOTSTRAP_TRUST_CONFIG_MAP "mtls-sidecar-bootstrap-trust"
#define MS_INJECT_BOOTSTRAP_TRUST_KEY "bootstrap-ca.pem"
#define MS_INJECT_TRUST_CONFIG_MAP "mtls-sidecar-trust"
#define MS_INJECT_TRUST_KEY "trust.pem"
/* The projected service-account token (identity.token_file), its folder. */
#define MS_INJECT_TOKEN_PATH "/var/run/secrets/mtls-sidecar/token"
#define MS_INJECT_HEALTH_PORT 15021
#define MS_INJECT_HEALTH_PORT_NAME "mtls-health"
#define MS_INJECT_ADMIN_PORT 15000

/* What injection is given, filled with defaults by ms_inject_settings_init
 * and then changed field by field. The strings are borrowed: they must
 * outlive every call that uses the settings. */
typedef struct ms_inject_settings {
  const char *image;                   /* the image's repository; default "mtls-sidecar" */
  const char *version;                 /* its tag, and the status annotation; default MS_VERSION */
  const char *config_map;              /* the ConfigMap holding sidecar.json; default
                                          "mtls-sidecar-config" */
  const char *token_audience;          /* the projected token's audience, xds-server's
                                          --token-audience; default "mtls-sidecar" */
  const char *control_plane_namespace; /* never injected; default "mtls-system" */
  bool native_sidecars; /* the cluster runs init containers with restartPolicy: Always
                           (Kubernetes >= 1.29, or 1.28 with the SidecarContainers gate);
                           default true. False: every injection is refused */
} ms_inject_settings;

/* ms_inject_settings_init fills `settings` with the defaults above. */
void ms_inject_settings_init(ms_inject_settings *settings);

/* A pod to inject and what surrounds it. Borrowed, never changed. */
typedef struct ms_inject_pod {
  const cJSON *pod;               /* {"metadata": {...}, "spec": {...}} */
  const char *namespace_name;     /* the pod's namespace; NULL: not known (the command, for an
                                     object without metadata.namespace) */
  const cJSON *namespace_labels;  /* the namespace's metadata.labels (webhook); NULL: none */
  const cJSON *owner_annotations; /* the workload's own metadata.annotations (command: an
                                     annotated Deployment injects its template); NULL: none */
  const char *what; /* how sentences name it, e.g. "Deployment shop/checkout"; NULL: "pod" */
} ms_inject_pod;

/* What ms_inject_patch decided. Every decision but MS_INJECT_INJECTED comes
 * with an empty patch. */
typedef enum ms_inject_decision {
  MS_INJECT_INJECTED,          /* the patch adds the sidecar */
  MS_INJECT_NOT_REQUESTED,     /* no annotation or label asks for it */
  MS_INJECT_OPTED_OUT,         /* the pod's annotation (or its workload's) says false */
  MS_INJECT_NAMESPACE_SKIPPED, /* the control plane's namespace, kube-system, or a namespace
                                  labelled false */
  MS_INJECT_ALREADY_INJECTED,  /* the pod carries the status annotation */
} ms_inject_decision;

/* ms_inject_decision_text returns a few words for `decision` ("injected",
 * "not requested", ...), for logs and the command's report. */
const char *ms_inject_decision_text(ms_inject_decision decision);

/* ms_inject_parse_bool reads `text` as Go's strconv.ParseBool does, which is
 * how Kubernetes tools read boolean annotations: "1", "t", "T", "TRUE",
 * "true", "True" are true; "0", "f", "F", "FALSE", "false", "False" false.
 * Returns 0 and sets *out_value, or -1 for anything else ("yes", "on",
 * " true", ""). */
int ms_inject_parse_bool(const char *text, bool *out_value);

/* ms_inject_patch decides whether `pod` gets the sidecar and, if so, how.
 *
 * The pod's annotation MS_INJECT_ANNOTATION decides; without it, the
 * owner's (the command); without either, the namespace label. A namespace
 * labelled false, the control plane's namespace and kube-system are never
 * injected; a pod carrying MS_INJECT_STATUS_ANNOTATION is left as it is.
 *
 * On success returns 0, *out_decision says what was decided and *out_patch
 * is a new RFC 6902 array (the caller frees it with cJSON_Delete): for
 * MS_INJECT_INJECTED the operations that add the native sidecar first
 * among the init containers, its volumes and the status annotation, with
 * paths from the pod's root ("/spec/initContainers/0"); otherwise `[]`.
 *
 * A member that is null (an empty YAML key) counts as absent, as the API
 * server reads it.
 *
 * Returns -1, with a sentence naming the pod and the cause in `err`, when
 * injection is asked for and refused (no native sidecars in the cluster,
 * hostNetwork, a container, volume or port named like the sidecar's, no
 * spec.containers, a spec.initContainers or spec.volumes that is not a
 * list), when an annotation or label value is not a boolean or
 * not a string, or when memory runs out. *out_patch is then NULL. */
int ms_inject_patch(const ms_inject_settings *settings, const ms_inject_pod *pod, cJSON **out_patch,
                    ms_inject_decision *out_decision, char *err, size_t err_len);

/* ms_inject_apply applies the RFC 6902 `patch` (operations "add", "remove",
 * "replace" and "test"; JSON Pointers as in RFC 6901) to a copy of
 * `document`. On success returns 0 and *out_document is the patched copy
 * (the caller frees it). On failure (an operation it does not know, a path
 * that does not exist, a failed test) returns -1 with the operation's index
 * and the cause in `err`; nothing is changed and *out_document is NULL. */
int ms_inject_apply(const cJSON *document, const cJSON *patch, cJSON **out_document, char *err,
                    size_t err_len);

/* ms_inject_object injects one whole Kubernetes object in place: a Pod
 * itself; the pod template of a Deployment, StatefulSet, DaemonSet or
 * ReplicaSet (apps/v1) or a Job (batch/v1) at spec.template, of a CronJob
 * (batch/v1) at spec.jobTemplate.spec.template. Other objects are left
 * unchanged (MS_INJECT_NOT_REQUESTED) unless they, or a spec.template in
 * them, are annotated for injection: that is an error naming the object.
 *
 * Returns 0 with *out_decision (the object is changed only for
 * MS_INJECT_INJECTED), or -1 with a sentence naming the object's kind,
 * namespace and name in `err` (the refusals of ms_inject_patch, a kind that
 * cannot be injected, a workload without its pod template); the object is
 * then unchanged. */
int ms_inject_object(const ms_inject_settings *settings, cJSON *object,
                     ms_inject_decision *out_decision, char *err, size_t err_len);

/* ms_inject_sidecar_container returns the container injection adds (a new
 * object the caller frees), and ms_inject_volumes the array of its volumes
 * (the projected configuration folder, the token, the state folder): for
 * tests. NULL when memory runs out. */
cJSON *ms_inject_sidecar_container(const ms_inject_settings *settings);
cJSON *ms_inject_volumes(const ms_inject_settings *settings);

#endif
