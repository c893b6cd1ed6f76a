#include "sidecar/control/config_check.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "certs/certs.h"
#include "sidecar/event/port_owner.h"

/* Where ms_tls_settings_check's problems go: under the "tls" object's path. */
typedef struct tls_sink {
  const char *path; /* "clusters[3].tls" */
  ms_config_errors *problems;
} tls_sink;

static void add_tls_problem(void *arg, const char *key, const char *message) {
  tls_sink *sink = arg;
  if (key)
    ms_config_errors_add(sink->problems, "%s.%s: %s", sink->path, key, message);
  else
    ms_config_errors_add(sink->problems, "%s: %s", sink->path, message);
}

static size_t check_tls(const ms_cluster_tls_config *tls, const char *path,
                        ms_config_errors *problems) {
  ms_tls_settings settings = tls->settings;
  /* What a secret brings comes later, from the identity agent. */
  if (tls->validation_secret) settings.verify = false;
  tls_sink sink = {path, problems};
  return ms_tls_settings_check(&settings, add_tls_problem, &sink);
}

static size_t check_address(const ms_address *address, const char *path, const char *config_path,
                            bool validating, ms_config_errors *problems, ms_config_errors *notes) {
  char why[MS_ERR_LEN];
  ms_port_holder holder;
  int rc = ms_port_owner_check(address, &holder, why, sizeof(why));
  if (rc == 0) return 0;
  /* A holder that /proc does not name to us (the identity agent makes the
   * sidecar non-dumpable) is taken for the sidecar running this file, if
   * one runs. */
  int runner = rc == -EADDRINUSE && validating ? ms_port_config_runner(holder.pid, config_path) : 0;
  if (runner) {
    if (notes)
      ms_config_errors_add(notes,
                           "%s: %s is held by the sidecar running this file (pid %d); a reload "
                           "keeps it",
                           path, address->text, runner);
    return 0;
  }
  ms_config_errors_add(problems, "%s: %s", path, why);
  return 1;
}

size_t ms_config_check_outside(const ms_config *config, bool validating, ms_config_errors *problems,
                               ms_config_errors *notes) {
  size_t count = 0;
  char path[64];
  for (size_t i = 0; i < config->cluster_count; i++) {
    snprintf(path, sizeof(path), "clusters[%zu].tls", i);
    count += check_tls(&config->clusters[i].tls, path, problems);
  }
  if (config->xds.enabled) count += check_tls(&config->xds.tls, "xds.tls", problems);
  if (config->identity.enabled && config->identity.tls_set)
    count += check_tls(&config->identity.tls, "identity.tls", problems);
  for (size_t i = 0; i < config->listener_count; i++) {
    snprintf(path, sizeof(path), "listeners[%zu].address", i);
    count += check_address(&config->listeners[i].address, path, config->path, validating, problems,
                           notes);
  }
  count += check_address(&config->admin_address, "admin.address", config->path, validating,
                         problems, notes);
  return count;
}
