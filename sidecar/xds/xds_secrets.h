/* xds_secrets.h: SDS secrets as the server's secret set (sidecar/tls/secrets.h),
 * and the fast path of a rotation.
 *
 * A secret whose material is all inline (what control planes send) is
 * referred to by name in the rendered configuration (certificate_secret,
 * validation_secret) and its bytes go to the secret set; a secret naming
 * files is rendered into each cluster as paths, like a static one. A
 * response that only brings new bytes for secrets already in force, with
 * the same shape (kind, where each piece comes from, verification options
 * and names to match), changes no configuration: it is applied as a new
 * secret set alone (ms_server_rotate_secrets), however many clusters use it.
 * Main thread only. */
#ifndef MS_XDS_SECRETS_H
#define MS_XDS_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

#include "google/protobuf/any.pb-c.h"
#include "sidecar/tls/secrets.h"
#include "xds/resources/resources.h"

/* ms_xds_secret_by_name: every piece of `secret` is inline (or absent). */
bool ms_xds_secret_by_name(const ms_xds_secret *secret);

/* ms_xds_secret_set_new returns the set of the by-name secrets among
 * `secrets`, or NULL when memory ran out. */
ms_secret_set *ms_xds_secret_set_new(const ms_xds_secret *secrets, size_t count);

/* ms_xds_secrets_rotation decodes a response's secrets. Returns 1 when it is
 * a pure rotation of `current` (see above), with *out_set the set to put in
 * force (current's with the new bytes; the caller owns it); 0 when it is
 * not (the full path applies); -1 when a resource does not decode, with
 * `err` for the NACK. */
int ms_xds_secrets_rotation(const ms_xds_secret *current, size_t current_count,
                            const Google__Protobuf__Any *const *resources, size_t count,
                            ms_secret_set **out_set, char *err, size_t err_len);

#endif
