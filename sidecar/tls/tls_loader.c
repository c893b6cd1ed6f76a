/* Building the clusters' TLS contexts (tls_loader.h), main thread.
 *
 * One pass looks at every cluster, but builds one context per distinct use:
 * clusters whose effective settings are the same (the same secret, the same
 * files, the same options) are resolved once (`uses` below), and contexts
 * are shared by the digest of their material, also with the contexts
 * already in use. A rotation of one secret that 10,000 clusters share reads
 * the secret once and builds one SSL_CTX. */
#include "sidecar/tls/tls_loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"

/* Clusters whose context changed are logged one by one up to this many per
 * context; the rest in one line. */
#define MS_TLS_LOG_CLUSTERS 3

/* ---- effective settings ------------------------------------------------------ */

/* Where a secret's bytes come from: the identity's own set for the names it
 * owns, the control plane's for the others. */
typedef struct secret_layers {
  const ms_config *config;
  const ms_secret_set *local;
  const ms_secret_set *xds;
} secret_layers;

static const ms_secret *find_secret(const secret_layers *layers, const char *name,
                                    bool *out_pending) {
  if (!ms_identity_owns_secret(layers->config, name)) return ms_secret_set_find(layers->xds, name);
  const ms_secret *secret = ms_secret_set_find(layers->local, name);
  if (secret == NULL) *out_pending = true;
  return secret;
}

/* effective_settings: the cluster's settings with the material of the
 * secrets it names. The strings stay owned by the config and the sets.
 * Returns 0, 1 when a secret of the identity has not come yet (the cluster
 * waits), or -1 with `why`. */
static int effective_settings(const ms_cluster_tls_config *tls, const secret_layers *layers,
                              ms_tls_settings *out, char *why, size_t why_len) {
  *out = tls->settings;
  out->server_name = tls->server_name;
  out->send_sni = tls->send_sni;
  out->match_sans = (const char *const *)tls->match_subject_alt_names;
  out->match_san_count = tls->match_subject_alt_name_count;
  bool pending = false;
  if (tls->certificate_secret) {
    const ms_secret *secret = find_secret(layers, tls->certificate_secret, &pending);
    if (pending) return 1;
    if (secret == NULL || secret->certificate_pem == NULL) {
      snprintf(why, why_len,
               "secret \"%s\" (a tls_certificate) has not come from the control "
               "plane",
               tls->certificate_secret);
      return -1;
    }
    out->certificate_pem = secret->certificate_pem;
    out->private_key_pem = secret->private_key_pem;
    out->password = secret->password;
  }
  if (tls->validation_secret) {
    const ms_secret *secret = find_secret(layers, tls->validation_secret, &pending);
    if (pending) return 1;
    if (secret == NULL || secret->trusted_ca_pem == NULL) {
      snprintf(why, why_len,
               "secret \"%s\" (a validation_context) has not come from the "
               "control plane",
               tls->validation_secret);
      return -1;
    }
    out->trusted_ca_pem = secret->trusted_ca_pem;
    out->crl_pem = secret->crl_pem;
  }
  return 0;
}

static bool same_string(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_names(const ms_tls_settings *a, const ms_tls_settings *b) {
  if (!same_string(a->server_name, b->server_name) || a->send_sni != b->send_sni ||
      a->match_san_count != b->match_san_count)
    return false;
  for (size_t i = 0; i < a->match_san_count; i++)
    if (!same_string(a->match_sans[i], b->match_sans[i])) return false;
  return true;
}

static bool same_settings(const ms_tls_settings *a, const ms_tls_settings *b) {
  return same_names(a, b) && same_string(a->certificate, b->certificate) &&
         same_string(a->private_key, b->private_key) &&
         same_string(a->password_file, b->password_file) &&
         same_string(a->trusted_ca, b->trusted_ca) && same_string(a->crl, b->crl) &&
         a->verify == b->verify && a->verify_depth == b->verify_depth &&
         a->min_version == b->min_version && a->max_version == b->max_version &&
         same_string(a->ciphers, b->ciphers) && same_string(a->curves, b->curves) &&
         a->alpn_len == b->alpn_len &&
         (a->alpn == b->alpn ||
          (a->alpn && b->alpn && memcmp(a->alpn, b->alpn, a->alpn_len) == 0)) &&
         a->session_reuse == b->session_reuse &&
         same_string(a->certificate_pem, b->certificate_pem) &&
         same_string(a->private_key_pem, b->private_key_pem) &&
         same_string(a->password, b->password) &&
         same_string(a->trusted_ca_pem, b->trusted_ca_pem) && same_string(a->crl_pem, b->crl_pem);
}

static uint64_t mix(uint64_t hash, const void *data, size_t len) {
  const uint8_t *bytes = data;
  for (size_t i = 0; i < len; i++)
    hash = (hash ^ bytes[i]) * 0x100000001b3ULL; /* FNV-1a */
  return hash;
}

static uint64_t mix_string(uint64_t hash, const char *text) {
  return text ? mix(hash, text, strlen(text) + 1) : mix(hash, "", 1);
}

/* Hashes what is cheap to hash; the PEM fields (long) are left to
 * same_settings, which compares them by pointer first. */
static uint64_t settings_hash(const ms_tls_settings *s) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  const char *paths[] = {s->certificate, s->private_key, s->password_file, s->trusted_ca,
                         s->crl,         s->ciphers,     s->curves,        s->server_name};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
    hash = mix_string(hash, paths[i]);
  int64_t numbers[] = {
      s->verify,        s->verify_depth,      s->min_version, s->max_version,
      s->session_reuse, (int64_t)s->alpn_len, s->send_sni,    (int64_t)s->match_san_count};
  return mix(hash, numbers, sizeof(numbers));
}

/* ---- one pass ------------------------------------------------------------------ */

/* What one distinct use of settings resolved to in this pass. */
typedef struct tls_use {
  ms_tls_settings settings;
  uint64_t hash;
  bool failed;
  char why[MS_ERR_LEN];
  uint8_t digest[32];
  ms_tls_context *built; /* a context new to this pass (reference held), or NULL */
  size_t logged;         /* clusters logged as taking `built` */
  size_t more;           /* clusters not logged one by one */
  const char *first_name;
} tls_use;

typedef struct tls_pass {
  tls_use *uses;
  size_t use_count, use_capacity;
  size_t *table; /* open addressing: index + 1 into uses; 0 empty */
  size_t table_size;
  ms_tls_context **held; /* distinct contexts in use before this pass */
  size_t held_count;
  int (*new_session)(SSL *ssl, SSL_SESSION *session); /* for each context built */
} tls_pass;

static void collect_held(tls_pass *pass, ms_tls_context *const *contexts, size_t count) {
  for (size_t i = 0; i < count; i++) {
    ms_tls_context *context = contexts[i];
    if (context == NULL || (pass->held_count && pass->held[pass->held_count - 1] == context))
      continue;
    bool seen = false;
    for (size_t j = 0; j < pass->held_count && !seen && j < 64; j++)
      seen = pass->held[pass->held_count - 1 - j] == context;
    if (!seen) pass->held[pass->held_count++] = context;
  }
}

static ms_tls_context *find_by_digest(const tls_pass *pass, const uint8_t digest[32]) {
  for (size_t i = 0; i < pass->use_count; i++)
    if (pass->uses[i].built && memcmp(pass->uses[i].built->digest, digest, 32) == 0)
      return pass->uses[i].built;
  for (size_t i = 0; i < pass->held_count; i++)
    if (memcmp(pass->held[i]->digest, digest, 32) == 0) return pass->held[i];
  return NULL;
}

/* resolve builds (or finds) what `settings` make; the use records it. A
 * context built here gets the session callback: the one place it is
 * installed. */
static void resolve(tls_pass *pass, tls_use *use) {
  ms_tls_material material;
  if (ms_tls_material_load(&use->settings, &material, use->why, sizeof(use->why)) != 0) {
    use->failed = true;
    return;
  }
  memcpy(use->digest, material.digest, 32);
  ms_tls_context *context = find_by_digest(pass, material.digest);
  if (context) {
    use->built = ms_tls_context_up_ref(context);
  } else if (ms_tls_context_new(&use->settings, &material, &use->built, use->why,
                                sizeof(use->why)) == 0) {
    if (pass->new_session) SSL_CTX_sess_set_new_cb(use->built->ssl_ctx, pass->new_session);
  } else {
    use->built = NULL;
    use->failed = true;
  }
  ms_tls_material_cleanup(&material);
}

/* use_for returns the use of `settings`, resolving it the first time. */
static tls_use *use_for(tls_pass *pass, const ms_tls_settings *settings) {
  uint64_t hash = settings_hash(settings);
  size_t slot = (size_t)hash & (pass->table_size - 1);
  while (pass->table[slot]) {
    tls_use *use = &pass->uses[pass->table[slot] - 1];
    if (use->hash == hash && same_settings(&use->settings, settings)) return use;
    slot = (slot + 1) & (pass->table_size - 1);
  }
  tls_use *use = &pass->uses[pass->use_count];
  memset(use, 0, sizeof(*use));
  use->settings = *settings;
  use->hash = hash;
  pass->table[slot] = ++pass->use_count;
  resolve(pass, use);
  return use;
}

/* log_refused says that cluster `name` keeps `current` (or has none). */
static void log_refused(const char *name, const ms_tls_context *current, const char *why) {
  if (current)
    ms_log(MS_LOG_ERROR, "tls reload refused: cluster=%s: %s; keeping generation %llu", name, why,
           (unsigned long long)current->generation);
  else
    ms_log(MS_LOG_ERROR, "tls load failed: cluster=%s: %s", name, why);
}

static void log_taken(tls_use *use, const char *cluster, bool rotated) {
  ms_tls_context *context = use->built;
  if (use->logged >= MS_TLS_LOG_CLUSTERS) {
    use->more++;
    return;
  }
  use->logged++;
  char expires[32] = "none";
  if (context->leaf.not_after) ms_time_rfc3339(context->leaf.not_after, expires, sizeof(expires));
  ms_log(MS_LOG_INFO, "tls %s: cluster=%s generation=%llu serial=%s expires=%s",
         rotated ? "reloaded" : "loaded", cluster, (unsigned long long)context->generation,
         context->leaf.serial_hex[0] ? context->leaf.serial_hex : "none", expires);
  if (use->first_name == NULL) use->first_name = cluster;
}

static void pass_free(tls_pass *pass) {
  for (size_t i = 0; i < pass->use_count; i++)
    ms_tls_context_free(pass->uses[i].built);
  free(pass->uses);
  free(pass->table);
  free(pass->held);
}

void ms_tls_load_result_cleanup(ms_tls_load_result *result) {
  for (size_t i = 0; i < result->cluster_count; i++) {
    if (result->contexts) ms_tls_context_free(result->contexts[i]);
    if (result->errors) free(result->errors[i]);
  }
  free(result->contexts);
  free(result->errors);
  memset(result, 0, sizeof(*result));
}

/* describe_failure writes the pass's error for cluster `index`:
 * `clusters[0] (backend) with secrets "a" and "b": WHY`. */
static void describe_failure(const ms_config *config, size_t index, const char *why, char *err,
                             size_t err_len) {
  const ms_cluster_tls_config *tls = &config->clusters[index].tls;
  char secrets[300] = "";
  if (tls->certificate_secret || tls->validation_secret)
    snprintf(
        secrets, sizeof(secrets), " with secrets %s%s%s%s%s", tls->certificate_secret ? "\"" : "",
        tls->certificate_secret ? tls->certificate_secret : "",
        tls->certificate_secret && tls->validation_secret ? "\" and \""
        : tls->certificate_secret                         ? "\""
                                                          : "\"",
        tls->validation_secret ? tls->validation_secret : "", tls->validation_secret ? "\"" : "");
  snprintf(err, err_len, "clusters[%zu] (%s)%s: %s", index, config->clusters[index].name, secrets,
           why);
}

int ms_tls_load(const ms_tls_load_input *in, ms_tls_load_result *out, char *err, size_t err_len) {
  const ms_config *config = in->config;
  size_t count = config->cluster_count;
  secret_layers layers = {config, in->local, in->secrets};
  tls_pass pass = {.new_session = in->new_session};
  pass.table_size = 16;
  while (pass.table_size < 2 * count + 2)
    pass.table_size *= 2;
  pass.uses = calloc(count + 1, sizeof(tls_use));
  pass.table = calloc(pass.table_size, sizeof(size_t));
  pass.held = calloc(count + in->in_use_count + 1, sizeof(ms_tls_context *));
  tls_use **taken = calloc(count + 1, sizeof(tls_use *)); /* per cluster: its use, or NULL */
  ms_tls_load_result result = {.cluster_count = count};
  result.contexts = calloc(count + 1, sizeof(ms_tls_context *));
  result.errors = calloc(count + 1, sizeof(char *));
  if (!pass.uses || !pass.table || !pass.held || !taken || !result.contexts || !result.errors) {
    pass_free(&pass);
    free(taken);
    ms_tls_load_result_cleanup(&result);
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  collect_held(&pass, in->current, count);
  if (in->in_use) collect_held(&pass, in->in_use, in->in_use_count);

  bool failed = false;
  for (size_t i = 0; i < count; i++) {
    if (in->only && !in->only[i]) continue;
    ms_tls_settings settings;
    char why[MS_ERR_LEN];
    tls_use *use = NULL;
    int found = effective_settings(&config->clusters[i].tls, &layers, &settings, why, sizeof(why));
    if (found == 1) continue; /* waits for the identity's first certificate */
    if (found == 0) {
      use = use_for(&pass, &settings);
      if (use->failed) snprintf(why, sizeof(why), "%s", use->why);
    }
    if (use == NULL || use->failed) {
      if (in->mode == MS_TLS_LOAD_ALL_OR_NOTHING) {
        describe_failure(config, i, why, err, err_len);
        failed = true;
        break;
      }
      log_refused(config->clusters[i].name, in->current[i], why);
      result.errors[i] = strdup(why);
      result.failed++;
      continue;
    }
    const ms_tls_context *current = in->current[i];
    if (current == NULL || memcmp(current->digest, use->digest, 32) != 0) taken[i] = use;
  }
  if (failed) {
    pass_free(&pass);
    free(taken);
    ms_tls_load_result_cleanup(&result);
    return -1;
  }

  for (size_t i = 0; i < count; i++) {
    tls_use *use = taken[i];
    if (use == NULL) continue;
    log_taken(use, config->clusters[i].name, in->current[i] != NULL);
    result.contexts[i] = ms_tls_context_up_ref(use->built);
    result.replaced++;
  }
  for (size_t i = 0; i < pass.use_count; i++) {
    tls_use *use = &pass.uses[i];
    if (use->more)
      ms_log(MS_LOG_INFO, "tls: %zu more clusters like %s took generation %llu", use->more,
             use->first_name, (unsigned long long)use->built->generation);
  }
  pass_free(&pass);
  free(taken);
  *out = result;
  return 0;
}
