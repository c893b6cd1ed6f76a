/* tls_context.h: a client SSL_CTX with what the admin endpoint shows about
 * it, shared by content and refcounted.
 *
 * Built on the main thread (ms_tls_context_new), published in a snapshot,
 * used by workers. A connection holds a reference from the moment it picks
 * the context until it ends, so a rotation never disturbs a connection or a
 * handshake under way: the old context is freed when its last user lets go. */
#ifndef MS_TLS_CONTEXT_H
#define MS_TLS_CONTEXT_H

#include <stdatomic.h>
#include <stdint.h>

#include "certs/certs.h"

typedef struct ms_tls_context {
  atomic_int refs;
  uint64_t generation; /* 1, 2, ...: one more for every context built */
  SSL_CTX *ssl_ctx;
  uint8_t digest[32];     /* of the material: equal digests, same context */
  int64_t built_at;       /* unix seconds */
  char *certificate_path; /* for /certs; NULL without a client certificate */
  char *trusted_ca_path;
  ms_cert_info leaf; /* zeroed without a client certificate */
  ms_cert_info *cas;
  size_t ca_count;
  atomic_llong active_connections;      /* connections holding this context now */
  struct ms_tls_context *registry_next; /* main thread's list of live contexts */
  struct ms_tls_context *registry_prev;
} ms_tls_context;

/* ms_tls_context_new builds and checks a context (see ms_client_ctx_new).
 * On success the caller holds the only reference to *out. */
int ms_tls_context_new(const ms_tls_settings *settings, const ms_tls_material *material,
                       ms_tls_context **out, char *err, size_t err_len);

/* ms_tls_context_up_ref takes one more reference and returns `context`. */
ms_tls_context *ms_tls_context_up_ref(ms_tls_context *context);

/* ms_tls_context_free drops one reference and frees the context with the
 * last. Safe from any thread. Accepts NULL. */
void ms_tls_context_free(ms_tls_context *context);

/* Live contexts, for /certs: every context not yet freed, newest first.
 * ms_tls_context_registry_visit calls `visit` for each under the registry's
 * lock; `visit` must not take or drop references. */
void ms_tls_context_registry_visit(void (*visit)(ms_tls_context *context, void *arg), void *arg);

#endif
