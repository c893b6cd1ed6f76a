/* identity.h: the sidecar as its own identity agent (configuration section
 * "identity"), in the main thread, as istio-agent is beside Envoy but with
 * no second process.
 *
 * - The key is born here and never leaves the process: an ECDSA P-256 key
 *   made at start and at every renewal (a new key each time, as istio-agent
 *   does: a key lives no longer than its certificate). Its PEM exists only in
 *   secure memory (certs.h ms_key_pem_secure, then the server's local secret
 *   set: mlock'd, MADV_DONTDUMP, wiped when freed), and the process is made
 *   non-dumpable (prctl(PR_SET_DUMPABLE, 0)): no core dump, and no
 *   ptrace or /proc/PID/mem read by a user other than root. It is never
 *   logged, shown by the admin endpoint, or written to a file (the xDS backup
 *   holds the control plane's resources only).
 * - A CSR for our SPIFFE ID (identity.spiffe_id, else the bootstrap
 *   certificate's, else the token's) goes to the CA over Istio's CA API
 *   (istio.v1.auth.IstioCertificateService/CreateCertificate) on a gRPC
 *   channel of its own, proved by the bootstrap client certificate and/or
 *   the service-account token ("authorization: Bearer", the file read again
 *   at each call). The answer is checked before use (our key, our SPIFFE ID
 *   as the one URI SAN, within its validity, chains to the roots it returns
 *   or to identity.trust_bundle_file); a refused answer is logged, counted
 *   (identity_csr_failure) and retried; the certificate in force stays.
 * - The certificate with its chain and key answers the secret
 *   identity.certificate_secret ("default"), the roots
 *   identity.trust_bundle_secret ("ROOTCA"), for every cluster that names
 *   them, static or from any control plane (ms_server_set_local_secrets: new
 *   contexts built and checked first, connections under way keep theirs).
 * - Renewal at a random point between 50% and 70% of the lifetime; a failure
 *   retries after 1 s doubling to 60 s, jittered, and never later than half
 *   of what is left of the certificate in force.
 * - Files followed (the server's watcher, sidecar/control/server.h `files`):
 *   identity.trust_bundle_file, when its bytes change and hold at least one
 *   certificate, becomes the bundle answers are checked against and is
 *   published again as identity.trust_bundle_secret at once (counted in
 *   identity_trust_bundle_reloads; bytes without a certificate are refused,
 *   identity_trust_bundle_reload_failure, the last good bundle stays); the
 *   CA channel's TLS files (identity.tls, else xds.tls) are the context of
 *   the next request's channel when they load (xds_client_tls_reloads), and
 *   the last good context stays when they do not
 *   (xds_client_tls_reload_failure).
 * - /ready waits for the first certificate; /certs shows "local_identity"
 *   (with the trust bundle's certificates); /stats counts
 *   identity_csr_success, identity_csr_failure and identity_rotations.
 * Main thread only. */
#ifndef MS_IDENTITY_H
#define MS_IDENTITY_H

#include <uv.h>

#include "sidecar/config/config.h"
#include "sidecar/control/server.h"

typedef struct ms_identity ms_identity;

/* ms_identity_start makes the process non-dumpable, decides the SPIFFE ID,
 * builds the CA's TLS context and sends the first request at once; it
 * installs itself in `server` (ms_server_set_identity: readiness, /certs,
 * and closing its handles when the server stops). Takes a reference to
 * `config` (whose "identity" section must be enabled). Returns 0 with *out
 * (free with ms_identity_free after the loop ended), or -1 with a reason
 * (no SPIFFE ID to ask for, the CA's TLS settings do not load). */
int ms_identity_start(uv_loop_t *loop, ms_server *server, ms_config *config, ms_identity **out,
                      char *err, size_t err_len);

/* ms_identity_free releases the identity once its handles are closed (the
 * server stopped it and the loop ran). Accepts NULL. */
void ms_identity_free(ms_identity *identity);

#endif
