/* patch_tool: prints the JSON Patch ms_inject_patch makes for the pod (JSON)
 * on standard input, with the default settings; the namespace is argv[1]
 * if given. For inject_cli_test.sh, which applies it with a JSON Patch
 * implementation written elsewhere. Exit 1 with the sentence on a refusal. */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "inject/inject.h"

int main(int argc, char **argv) {
  static char text[1 << 20];
  size_t len = fread(text, 1, sizeof(text) - 1, stdin);
  text[len] = '\0';
  cJSON *pod = cJSON_Parse(text);
  if (pod == NULL) {
    fprintf(stderr, "patch_tool: standard input is not JSON\n");
    return 1;
  }
  ms_inject_settings settings;
  ms_inject_settings_init(&settings);
  ms_inject_pod request = {pod, argc > 1 ? argv[1] : NULL, NULL, NULL, "pod"};
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
