/* tls_loader.h: the clusters' TLS contexts for a configuration, built in one
 * pass on the main thread. The only place the sidecar makes a cluster's
 * ms_tls_context (tls_context.h).
 *
 * A cluster's effective settings are its own with the material of the SDS
 * secrets it names (certificate_secret, validation_secret): the identity
 * agent's set for the names the identity owns (ms_identity_owns_secret), the
 * control plane's for the others. One pass looks at every cluster but
 * resolves each distinct effective settings once, and contexts are shared by
 * the digest of their material, with each other and with the contexts in use
 * given to it: a rotation of one secret that 10,000 clusters share reads the
 * secret once and builds one SSL_CTX, and a reload that changes nothing
 * builds nothing. A context built here has a new generation (so that a
 * session of an older one is never resumed with it).
 *
 * The loader changes nothing it is given: it returns what each cluster
 * should take, and its caller (sidecar/control) puts that in force. */
#ifndef MS_TLS_LOADER_H
#define MS_TLS_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "sidecar/config/config.h"
#include "sidecar/tls/secrets.h"
#include "sidecar/tls/tls_context.h"

/* What one failing cluster does to the pass. */
typedef enum ms_tls_load_mode {
  /* The cluster keeps its current context; its error is in the result and
   * the other clusters take theirs (a certificate file rotated badly). */
  MS_TLS_LOAD_KEEP_OLD = 0,
  /* The whole pass fails and nothing is built (a configuration or an SDS
   * update to refuse whole). */
  MS_TLS_LOAD_ALL_OR_NOTHING,
} ms_tls_load_mode;

typedef struct ms_tls_load_input {
  const ms_config *config; /* the clusters to build for */
  /* current[i]: cluster i's context now, or NULL (none yet). A cluster
   * whose material has its current context's digest keeps it. */
  ms_tls_context *const *current;
  /* More contexts in use to share by content (the server's own, when
   * `config` is about to replace its configuration); NULL with 0. */
  ms_tls_context *const *in_use;
  size_t in_use_count;
  /* only[i]: build cluster i; the others are left as they are. NULL: every
   * cluster. */
  const bool *only;
  /* The identity agent's secrets; NULL: none yet, and a cluster naming one
   * of its names waits without a context (not a failure). */
  const ms_secret_set *local;
  const ms_secret_set *secrets; /* the control plane's; NULL: none */
  ms_tls_load_mode mode;
  /* new_session is installed on every context built
   * (SSL_CTX_sess_set_new_cb): the workers' session cache. May be NULL. */
  int (*new_session)(SSL *ssl, SSL_SESSION *session);
} ms_tls_load_input;

/* What each cluster of the input's configuration takes. */
typedef struct ms_tls_load_result {
  size_t cluster_count;
  /* contexts[i]: cluster i's new context (the result holds a reference), or
   * NULL: it keeps its current one, waits for the identity, was not asked
   * for (`only`), or failed. */
  ms_tls_context **contexts;
  /* errors[i]: why cluster i's material failed (KEEP_OLD), malloc'd and
   * owned by the result, or NULL. */
  char **errors;
  size_t replaced; /* clusters with a new context */
  size_t failed;   /* clusters with an error */
} ms_tls_load_result;

/* ms_tls_load builds what every cluster of in->config (or of in->only)
 * takes. It logs each cluster that takes a new context ("tls loaded:
 * cluster=NAME generation=N serial=S expires=T", "tls reloaded: ..." when it
 * had one; up to three clusters per context, then one line "tls: N more
 * clusters like NAME took generation G") and, under KEEP_OLD, each cluster
 * refused ("tls reload refused: cluster=NAME: WHY; keeping generation N", or
 * "tls load failed: cluster=NAME: WHY" without a context).
 *
 * Returns 0 with `out` filled (the caller releases it with
 * ms_tls_load_result_cleanup; under KEEP_OLD, failed clusters are in it), or
 * -1 with `err` and nothing to release: under ALL_OR_NOTHING when any
 * cluster failed ("clusters[0] (backend) with secrets "a" and "b": WHY"), or
 * when memory ran out. */
int ms_tls_load(const ms_tls_load_input *in, ms_tls_load_result *out, char *err, size_t err_len);

/* ms_tls_load_result_cleanup drops the references and frees the errors the
 * result still holds (a caller that takes one sets its slot to NULL).
 * Accepts a zeroed result. */
void ms_tls_load_result_cleanup(ms_tls_load_result *result);

#endif
