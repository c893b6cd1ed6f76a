/* patch_tool: prints the JSON Patch ms_inject_patch makes for the pod (JSON)
 * on standard input: the webhook's code path, for the tests to apply with a
 * JSON Patch implementation written elsewhere (inject_cli_test.sh;
 * deploy/check.sh asks the real webhook). The settings are the defaults, changed by the options
 * mtls-inject takes (--image, --tag, --config-map, --token-audience,
 * --control-plane-namespace); the pod's namespace is the argument, if
 * given. Exit 1 with the sentence on a refusal, 2 for a wrong command
 * line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "inject/inject.h"

int main(int argc, char **argv) {
  static const struct option options[] = {{"image", required_argument, NULL, 'i'},
                                          {"tag", required_argument, NULL, 't'},
                                          {"config-map", required_argument, NULL, 'c'},
                                          {"token-audience", required_argument, NULL, 'a'},
                                          {"control-plane-namespace", required_argument, NULL, 'n'},
                                          {NULL, 0, NULL, 0}};
  ms_inject_settings settings;
  ms_inject_settings_init(&settings);
  int option;
  while ((option = getopt_long(argc, argv, "", options, NULL)) != -1) {
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
      default:
        return 2;
    }
  }
  static char text[1 << 20];
  size_t len = fread(text, 1, sizeof(text) - 1, stdin);
  text[len] = '\0';
  cJSON *pod = cJSON_Parse(text);
  if (pod == NULL) {
    fprintf(stderr, "patch_tool: standard input is not JSON\n");
    return 1;
  }
  ms_inject_pod request = {pod, optind < argc ? argv[optind] : NULL, NULL, NULL, "pod"};
  cJSON *patch = NULL;
  ms_inject_decision decision;
  char err[1024];
  if (ms_inject_patch(&settings, &request, &patch, &decision, err, sizeof(err)) != 0) {
    fprintf(stderr, "patch_tool: %s\n", err);
    cJSON_Delete(pod);
    return 1;
  }
  char *out = cJSON_Print(patch);
  printf("%s\n", out);
  fprintf(stderr, "%s\n", ms_inject_decision_text(decision));
  free(out);
  cJSON_Delete(patch);
  cJSON_Delete(pod);
  return 0;
}
