/* mtls-inject: writes Kubernetes manifests with the sidecar injected, through
 * the same code as the admission webhook (inject.h), for GitOps: reads YAML
 * or JSON (multi-document) from a file or standard input, writes the same
 * format to standard output, one line per decision on standard error.
 * Nothing is written to standard output unless every object could be
 * handled: a refusal never leaves half a stream behind. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/version.h"
#include "inject/inject.h"
#include "inject/manifest.h"

/* Larger than any manifest a person writes; a mistake (a device, a log)
 * rather than material beyond it. */
#define MAX_INPUT (256u * 1024 * 1024)

static void usage(FILE *out) {
  fprintf(out,
          "usage: mtls-inject [options] [FILE | -]\n"
          "\n"
          "Reads Kubernetes objects (YAML or JSON, several documents) from FILE or standard\n"
          "input and writes them to standard output, in the same format, with the mtls-sidecar\n"
          "native sidecar injected into the pods of every Pod, Deployment, StatefulSet,\n"
          "DaemonSet, ReplicaSet, Job and CronJob annotated %s: \"true\" (on the\n"
          "object or its pod template). Other objects pass unchanged; one of another kind that\n"
          "is annotated is an error. A line per decision goes to standard error.\n"
          "\n"
          "  --image REPOSITORY              the sidecar's image (default mtls-sidecar)\n"
          "  --tag TAG                       its tag, and the status annotation (default %s)\n"
          "  --config-map NAME               the ConfigMap holding sidecar.json (default\n"
          "                                  mtls-sidecar-config); with the ConfigMaps\n"
          "                                  mtls-sidecar-bootstrap-trust (bootstrap-ca.pem) and\n"
          "                                  mtls-sidecar-trust (trust.pem), which trust-manager\n"
          "                                  writes, it is mounted at /etc/mtls-sidecar\n"
          "  --token-audience AUDIENCE       the projected token's audience, xds-server's\n"
          "                                  --token-audience (default mtls-sidecar)\n"
          "  --control-plane-namespace NS    never injected, nor kube-system (default "
          "mtls-system)\n"
          "  --no-native-sidecars            the cluster has no native sidecars (before 1.29, or\n"
          "                                  1.28 without the SidecarContainers gate): every\n"
          "                                  injection is refused\n"
          "  --version, --help\n"
          "\n"
          "Exit status: 0 when every object was handled; 1 when one was refused or the input\n"
          "could not be read (nothing is written); 2 for a wrong command line.\n",
          MS_INJECT_ANNOTATION, MS_VERSION);
}

/* read_all reads a whole stream; NULL with a sentence in `err`. */
static char *read_all(FILE *in, const char *name, size_t *out_len, char *err, size_t err_len) {
  size_t capacity = 65536, len = 0;
  char *data = malloc(capacity);
  for (;;) {
    if (data == NULL) {
      snprintf(err, err_len, "%s: out of memory", name);
      return NULL;
    }
    size_t got = fread(data + len, 1, capacity - len - 1, in);
    len += got;
    if (got == 0) break;
    if (len + 1 == capacity) {
      if (capacity > MAX_INPUT) {
        snprintf(err, err_len, "%s: larger than %u MiB", name, MAX_INPUT >> 20);
        free(data);
        return NULL;
      }
      char *bigger = realloc(data, capacity * 2);
      if (bigger == NULL) free(data);
      data = bigger;
      capacity *= 2;
    }
  }
  if (ferror(in)) {
    snprintf(err, err_len, "%s: cannot read", name);
    free(data);
    return NULL;
  }
  data[len] = '\0';
  *out_len = len;
  return data;
}

/* inject_document handles one document: a List's items one by one, any
 * other object as itself. Returns the number of refusals. */
static int inject_document(const ms_inject_settings *settings, cJSON *document, size_t line,
                           const char *name) {
  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(document, "kind");
  cJSON *items = cJSON_GetObjectItemCaseSensitive(document, "items");
  if (cJSON_IsString(kind) && strcmp(kind->valuestring, "List") == 0 && cJSON_IsArray(items)) {
    int failures = 0;
    cJSON *item;
    cJSON_ArrayForEach(item, items) {
      if (cJSON_IsObject(item)) failures += inject_document(settings, item, line, name);
    }
    return failures;
  }
  char err[1024];
  ms_inject_decision decision;
  if (ms_inject_object(settings, document, &decision, err, sizeof(err)) != 0) {
    fprintf(stderr, "mtls-inject: %s:%zu: %s\n", name, line, err);
    return 1;
  }
  if (decision != MS_INJECT_NOT_REQUESTED) {
    /* Read again: injecting a Pod replaced its members. */
    kind = cJSON_GetObjectItemCaseSensitive(document, "kind");
    const cJSON *metadata = cJSON_GetObjectItemCaseSensitive(document, "metadata");
    const cJSON *object_name = cJSON_GetObjectItemCaseSensitive(metadata, "name");
    char kind_text[MS_LOG_ESCAPED_LEN], name_text[MS_LOG_ESCAPED_LEN];
    fprintf(stderr, "mtls-inject: %s %s: %s\n",
            ms_log_escape(cJSON_IsString(kind) ? kind->valuestring : "?", 64, kind_text,
                          sizeof(kind_text)),
            ms_log_escape(cJSON_IsString(object_name) ? object_name->valuestring : "?", 128,
                          name_text, sizeof(name_text)),
            ms_inject_decision_text(decision));
  }
  return 0;
}

int main(int argc, char **argv) {
  static const struct option options[] = {{"image", required_argument, NULL, 'i'},
                                          {"tag", required_argument, NULL, 't'},
                                          {"config-map", required_argument, NULL, 'c'},
                                          {"token-audience", required_argument, NULL, 'a'},
                                          {"control-plane-namespace", required_argument, NULL, 'n'},
                                          {"no-native-sidecars", no_argument, NULL, 'N'},
                                          {"version", no_argument, NULL, 'V'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
  ms_inject_settings settings;
  ms_inject_settings_init(&settings);
  int option;
  while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
    switch (option) {
      case 'i':
        settings.image = optarg;
        break;
      case 't':
        settings.version = optarg;
        break;
      case 'c':
        settings.config_map = optarg;
        break;
      case 'a':
        settings.token_audience = optarg;
        break;
      case 'n':
        settings.control_plane_namespace = optarg;
        break;
      case 'N':
        settings.native_sidecars = false;
        break;
      case 'V':
        printf("mtls-inject %s\n", MS_VERSION);
        return 0;
      case 'h':
        usage(stdout);
        return 0;
      default:
        fprintf(stderr, "mtls-inject --help lists the options\n");
        return 2;
    }
  }
  if (argc - optind > 1) {
    fprintf(stderr, "mtls-inject: one input at most, not \"%s\" too (mtls-inject --help)\n",
            argv[optind + 1]);
    return 2;
  }
  const char *name = optind < argc ? argv[optind] : "-";
  bool from_stdin = strcmp(name, "-") == 0;
  FILE *in = from_stdin ? stdin : fopen(name, "rb");
  if (in == NULL) {
    fprintf(stderr, "mtls-inject: cannot open %s: %s\n", name, strerror(errno));
    return 1;
  }
  const char *shown = from_stdin ? "standard input" : name;
  char err[1024];
  size_t len = 0;
  char *text = read_all(in, shown, &len, err, sizeof(err));
  if (!from_stdin) fclose(in);
  if (text == NULL) {
    fprintf(stderr, "mtls-inject: %s\n", err);
    return 1;
  }
  ms_manifest manifest;
  int rc = ms_manifest_parse(text, len, &manifest, err, sizeof(err));
  free(text);
  if (rc != 0) {
    fprintf(stderr, "mtls-inject: %s: %s\n", shown, err);
    return 1;
  }
  int failures = 0;
  for (size_t i = 0; i < manifest.count; i++)
    failures += inject_document(&settings, manifest.documents[i], manifest.lines[i], shown);
  if (failures > 0) {
    fprintf(stderr, "mtls-inject: %d object%s refused; nothing written\n", failures,
            failures == 1 ? "" : "s");
    ms_manifest_cleanup(&manifest);
    return 1;
  }
  size_t out_len = 0;
  char *out = ms_manifest_write(&manifest, &out_len, err, sizeof(err));
  ms_manifest_cleanup(&manifest);
  if (out == NULL) {
    fprintf(stderr, "mtls-inject: %s\n", err);
    return 1;
  }
  bool written = fwrite(out, 1, out_len, stdout) == out_len && fflush(stdout) == 0;
  free(out);
  if (!written) {
    fprintf(stderr, "mtls-inject: cannot write to standard output: %s\n", strerror(errno));
    return 1;
  }
  return 0;
}
