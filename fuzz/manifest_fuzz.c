/* manifest_fuzz.c: what mtls-inject reads (inject/manifest.c, then
 * inject/inject.c): YAML streams through libyaml's events (anchors,
 * aliases, tags, scalars resolved as Kubernetes' YAML reads them) or JSON
 * streams, each document injected by ms_inject_object as the command does.
 * Properties: a parse is all or nothing; what was read writes and reads
 * back as the same documents; every refusal is a sentence; injecting twice
 * is injecting once. */
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "inject/inject.h"
#include "inject/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ms_manifest manifest;
  char err[1024] = "";
  if (ms_manifest_parse((const char *)data, size, &manifest, err, sizeof(err)) != 0) {
    FUZZ_CHECK(manifest.count == 0 && err[0] != '\0');
    return 0;
  }
  size_t len = 0;
  char *text = ms_manifest_write(&manifest, &len, err, sizeof(err));
  FUZZ_CHECK(text != NULL && strlen(text) == len);
  ms_manifest again;
  if (ms_manifest_parse(text, len, &again, err, sizeof(err)) != 0) {
    fprintf(stderr, "written text does not read back: %s\n%s\n", err, text);
    FUZZ_CHECK(0);
  }
  FUZZ_CHECK(again.count == manifest.count && again.format == manifest.format);
  for (size_t i = 0; i < manifest.count; i++)
    FUZZ_CHECK(cJSON_Compare(manifest.documents[i], again.documents[i], 1));
  free(text);
  ms_manifest_cleanup(&again);

  ms_inject_settings settings;
  ms_inject_settings_init(&settings);
  for (size_t i = 0; i < manifest.count; i++) {
    ms_inject_decision decision;
    err[0] = '\0';
    if (ms_inject_object(&settings, manifest.documents[i], &decision, err, sizeof(err)) != 0) {
      FUZZ_CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
      continue;
    }
    if (decision != MS_INJECT_INJECTED) continue;
    cJSON *once = cJSON_Duplicate(manifest.documents[i], 1);
    FUZZ_CHECK(ms_inject_object(&settings, manifest.documents[i], &decision, err, sizeof(err)) ==
               0);
    FUZZ_CHECK(decision == MS_INJECT_ALREADY_INJECTED);
    FUZZ_CHECK(cJSON_Compare(once, manifest.documents[i], 1));
    cJSON_Delete(once);
  }
  text = ms_manifest_write(&manifest, &len, err, sizeof(err));
  FUZZ_CHECK(text != NULL);
  free(text);
  ms_manifest_cleanup(&manifest);
  return 0;
}
