/* xds_backup.h: the last configuration the control plane gave, kept on disk
 * so that a sidecar started while the control plane is down still serves.
 *
 * The file holds the accepted resources exactly as they came (type URL and
 * protobuf bytes, base64 in JSON), so that loading it runs every check a
 * live response gets. It holds the workload's private key when SDS sent one:
 * it is written with mode 0600, through a temporary file and a rename, so a
 * reader never sees half a file. Main thread only. */
#ifndef MS_XDS_BACKUP_H
#define MS_XDS_BACKUP_H

#include <stddef.h>

#include "sidecar/xds/xds_state.h"

/* ms_xds_backup_write saves every resource `state` holds at `path`.
 * Returns 0, or -1 with a message in `err`. */
int ms_xds_backup_write(const ms_xds_state *state, const char *path, char *err, size_t err_len);

/* ms_xds_backup_read loads `path` into a new state (*out, freed with
 * ms_xds_state_free). Returns 0, or -1 with a message (a missing file says
 * so: "no such file"). */
int ms_xds_backup_read(const char *path, ms_xds_state **out, char *err, size_t err_len);

#endif
