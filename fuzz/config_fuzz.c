/* config_fuzz.c: the whole configuration load from bytes (ms_config_parse in
 * sidecar/config/config.c): JSON syntax errors and their excerpt, every key table,
 * addresses, TLS, HTTP routes, xDS and identity sections, cross-checks. The
 * text may contain a NUL (a C string ends there, as a file read with
 * ms_file_read would be passed). On success the config is checked for the
 * one invariant every reader relies on, then freed; on failure every error
 * is one line. */
#include <string.h>

#include "common/file.h"
#include "fuzz/fuzz_util.h"
#include "sidecar/config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *json = fuzz_strndup(data, size);
  ms_config *config = NULL;
  ms_config_errors errors;
  int rc = ms_config_parse(json, "/etc/mtls-sidecar/sidecar.json", &config, &errors);
  if (rc == 0) {
    FUZZ_CHECK(config != NULL && errors.count == 0);
    ms_config_free(config);
  } else {
    FUZZ_CHECK(config == NULL && errors.count > 0);
    for (size_t i = 0; i < errors.count; i++)
      FUZZ_CHECK(errors.lines[i] != NULL && strchr(errors.lines[i], '\n') == NULL);
  }
  ms_config_errors_cleanup(&errors);
  free(json);
  return 0;
}
