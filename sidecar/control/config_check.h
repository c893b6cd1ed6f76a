/* config_check.h: what a valid configuration names outside itself, checked
 * all at once. The TLS settings of every cluster, of xds.tls and of
 * identity.tls (files read, PEM parsed, key and certificate matched, options
 * known: certs.h's ms_tls_settings_check), each problem under the JSON path
 * of its key ("clusters[0].tls.certificate: cannot open ..."); the address
 * of every listener and of the admin endpoint (another process listening
 * there, or a port this user may not bind: port_owner.h). `sidecar
 * --validate` runs it, and so do start and reload when applying a
 * configuration failed, to list every problem rather than the first. Main
 * thread. */
#ifndef MS_CONFIG_CHECK_H
#define MS_CONFIG_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "sidecar/config/config.h"

/* ms_config_check_outside appends a line "json.path: problem" to `problems`
 * for each problem and returns how many. With `validating` (the file is
 * checked before a reload), an address that a sidecar started with this
 * same file listens on is no problem: that sidecar keeps its sockets on
 * reload; it gets a line in `notes` (NULL: none) instead. Material that a
 * cluster takes from the identity agent's secrets is not checked here. */
size_t ms_config_check_outside(const ms_config *config, bool validating, ms_config_errors *problems,
                               ms_config_errors *notes);

#endif
