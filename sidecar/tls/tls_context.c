#include "sidecar/tls/tls_context.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pool.h>

/* Every live context, newest first, for /certs. Touched when a context is
 * built (main thread) or freed (any thread), never on the data path. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static ms_tls_context *registry_head;
static uint64_t last_generation;

static pthread_once_t certificate_pool_once = PTHREAD_ONCE_INIT;

/* Peer certificates are the same bytes on every connection to an upstream:
 * the pool keeps one copy of each instead of one per connection. */
static CRYPTO_BUFFER_POOL *certificate_pool;

static void make_certificate_pool(void) {
  certificate_pool = CRYPTO_BUFFER_POOL_new();
}

static char *copy_or_null(const char *text) {
  return text ? strdup(text) : NULL;
}

int ms_tls_context_new(const ms_tls_settings *settings, const ms_tls_material *material,
                       ms_tls_context **out, char *err, size_t err_len) {
  pthread_once(&certificate_pool_once, make_certificate_pool);
  ms_tls_context *context = calloc(1, sizeof(*context));
  if (context == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  if (ms_client_ctx_new(settings, material, &context->ssl_ctx, &context->leaf, &context->cas,
                        &context->ca_count, err, err_len) != 0) {
    free(context);
    return -1;
  }
  /* Retrying SSL_write from a pending copy of the data moves the buffer. */
  SSL_CTX_set_mode(context->ssl_ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (certificate_pool) SSL_CTX_set0_buffer_pool(context->ssl_ctx, certificate_pool);
  atomic_init(&context->refs, 1);
  atomic_init(&context->active_connections, 0);
  memcpy(context->digest, material->digest, sizeof(context->digest));
  context->built_at = (int64_t)time(NULL);
  context->certificate_path = copy_or_null(settings->certificate);
  context->trusted_ca_path = copy_or_null(settings->trusted_ca);

  pthread_mutex_lock(&registry_lock);
  context->generation = ++last_generation;
  context->registry_next = registry_head;
  if (registry_head) registry_head->registry_prev = context;
  registry_head = context;
  pthread_mutex_unlock(&registry_lock);
  *out = context;
  return 0;
}

ms_tls_context *ms_tls_context_up_ref(ms_tls_context *context) {
  atomic_fetch_add(&context->refs, 1);
  return context;
}

void ms_tls_context_free(ms_tls_context *context) {
  if (context == NULL || atomic_fetch_sub(&context->refs, 1) != 1) return;
  pthread_mutex_lock(&registry_lock);
  if (context->registry_prev)
    context->registry_prev->registry_next = context->registry_next;
  else
    registry_head = context->registry_next;
  if (context->registry_next) context->registry_next->registry_prev = context->registry_prev;
  pthread_mutex_unlock(&registry_lock);
  SSL_CTX_free(context->ssl_ctx);
  ms_cert_info_cleanup(&context->leaf);
  for (size_t i = 0; i < context->ca_count; i++)
    ms_cert_info_cleanup(&context->cas[i]);
  free(context->cas);
  free(context->certificate_path);
  free(context->trusted_ca_path);
  free(context);
}

void ms_tls_context_registry_visit(void (*visit)(ms_tls_context *context, void *arg), void *arg) {
  pthread_mutex_lock(&registry_lock);
  for (ms_tls_context *c = registry_head; c != NULL; c = c->registry_next)
    visit(c, arg);
  pthread_mutex_unlock(&registry_lock);
}
