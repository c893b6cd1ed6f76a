/* server_tls.c: xds-server's serving credentials: its certificate chain and
 * key (--tls-cert, --tls-key) and the CAs of the sidecars' bootstrap
 * certificates (--client-ca), made into the SSL_CTX that new ADS
 * connections handshake with; and, the same way, the admission webhook's
 * (--webhook-cert, --webhook-key, by default the same pair; no client
 * certificate asked for: the API server calls without one), made into the
 * SSL_CTX of new webhook connections (ms_http_server_set_ssl_ctx).
 *
 * The three files' directories are watched (server_watch.c), since
 * cert-manager renews the serving certificate into a Secret volume (the
 * `..data` swap). After a change settles the files are read again: the same
 * bytes do nothing; new bytes are built into a new SSL_CTX and checked (the
 * chain and the key parse, the key matches the certificate, the client CAs
 * parse) before it replaces the old one in the gRPC server
 * (ms_grpc_server_set_ssl_ctx). Connections already accepted keep the
 * context they started with (each SSL holds a reference): open ADS streams
 * go on. A set of files that fails is refused with one log line, counted,
 * shown in /status, and the context in use keeps serving; the next change is
 * tried again (a half-done update: certificate written, key not yet). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/sha.h>

#include "certs/certs.h"
#include "common/file.h"
#include "common/log.h"
#include "common/time.h"
#include "xds-server/server_internal.h"

/* The bytes of the three files. */
typedef struct serving_files {
  char *cert_pem, *key_pem, *client_ca_pem;
  size_t cert_len, key_len, client_ca_len;
  uint8_t digest[32];
} serving_files;

static void files_cleanup(serving_files *files) {
  if (files->key_pem != NULL) OPENSSL_cleanse(files->key_pem, files->key_len);
  free(files->key_pem);
  free(files->cert_pem);
  free(files->client_ca_pem);
  memset(files, 0, sizeof(*files));
}

static void digest_add(SHA256_CTX *sha, const char *bytes, size_t len) {
  uint64_t n = len;
  SHA256_Update(sha, &n, sizeof(n));
  if (len > 0) SHA256_Update(sha, bytes, len);
}

/* read_files reads the serving's files into `out`, with the digest of
 * their bytes. */
static int read_files(const xds_serving *serving, serving_files *out, char *err, size_t err_len) {
  memset(out, 0, sizeof(*out));
  char why[MS_ERR_LEN];
  if (ms_file_read(serving->cert_file, &out->cert_pem, &out->cert_len, why, sizeof(why)) != 0) {
    snprintf(err, err_len, "the server certificate (%s): %s", serving->cert_flag, why);
    goto fail;
  }
  if (ms_file_read(serving->key_file, &out->key_pem, &out->key_len, why, sizeof(why)) != 0) {
    snprintf(err, err_len, "the server key (%s): %s", serving->key_flag, why);
    goto fail;
  }
  if (serving->client_ca_file != NULL && ms_file_read(serving->client_ca_file, &out->client_ca_pem,
                                                      &out->client_ca_len, why, sizeof(why)) != 0) {
    snprintf(err, err_len, "the client CA (--client-ca): %s", why);
    goto fail;
  }
  SHA256_CTX sha;
  SHA256_Init(&sha);
  digest_add(&sha, out->cert_pem, out->cert_len);
  digest_add(&sha, out->key_pem, out->key_len);
  digest_add(&sha, out->client_ca_pem, out->client_ca_len);
  SHA256_Final(out->digest, &sha);
  return 0;
fail:
  files_cleanup(out);
  return -1;
}

/* build_ctx makes the server context from `files`: the chain and the key,
 * and for ADS client verification (against --client-ca's CAs, returned in
 * *out_cas, and the workload CA when it is accepted:
 * xds_server_client_trust_changed installs the store). */
static SSL_CTX *build_ctx(const xds_serving *serving, const serving_files *files,
                          STACK_OF(X509) **out_cas, char *err, size_t err_len) {
  ms_xds_server *server = serving->server;
  STACK_OF(X509) *chain = NULL, *cas = NULL;
  EVP_PKEY *key = NULL;
  SSL_CTX *ctx = NULL;
  char why[MS_ERR_LEN];
  if (ms_pem_parse_chain(files->cert_pem, files->cert_len, serving->cert_file, &chain, why,
                         sizeof(why)) != 0) {
    snprintf(err, err_len, "cannot use the server certificate (%s): %s", serving->cert_flag, why);
    goto fail;
  }
  if (ms_pem_parse_key(files->key_pem, files->key_len, NULL, serving->key_file, &key, why,
                       sizeof(why)) != 0) {
    snprintf(err, err_len, "cannot use the server key (%s): %s", serving->key_flag, why);
    goto fail;
  }
  if (!ms_key_matches_cert(key, sk_X509_value(chain, 0))) {
    snprintf(err, err_len, "the server key %s does not match the certificate %s", serving->key_file,
             serving->cert_file);
    goto fail;
  }
  if (files->client_ca_pem != NULL &&
      ms_pem_parse_chain(files->client_ca_pem, files->client_ca_len, serving->client_ca_file, &cas,
                         why, sizeof(why)) != 0) {
    snprintf(err, err_len, "cannot load the client CA (--client-ca): %s", why);
    goto fail;
  }
  if ((ctx = SSL_CTX_new(TLS_method())) == NULL) goto out_of_memory;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (!SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0)) || !SSL_CTX_use_PrivateKey(ctx, key))
    goto out_of_memory;
  for (size_t i = 1; i < sk_X509_num(chain); i++)
    if (!SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i))) goto out_of_memory;
  /* A caller may prove itself with a token instead of a certificate: then
   * the handshake lets a client without one through, and each call is
   * refused unless it brings a token (server_auth.c). The webhook asks for
   * no certificate (SSL_VERIFY_NONE, the default). */
  if (serving->kind == XDS_SERVING_ADS)
    SSL_CTX_set_verify(
        ctx,
        SSL_VERIFY_PEER | (xds_server_accepts_tokens(server) ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
        NULL);
  SSL_CTX_set_info_callback(ctx, ms_tls_info_callback);
  sk_X509_pop_free(chain, X509_free);
  EVP_PKEY_free(key);
  *out_cas = cas;
  return ctx;
out_of_memory:
  snprintf(err, err_len, "out of memory building the server's TLS context");
fail:
  ERR_clear_error();
  SSL_CTX_free(ctx);
  sk_X509_pop_free(chain, X509_free);
  sk_X509_pop_free(cas, X509_free);
  EVP_PKEY_free(key);
  return NULL;
}

/* install_client_trust gives `ctx` the store that verifies client
 * certificates: `cas`, and with accept_workload_certificates the workload
 * CA and the CAs still in their overlap. */
static void install_client_trust(ms_xds_server *server, SSL_CTX *ctx, STACK_OF(X509) *cas) {
  X509_STORE *store = X509_STORE_new();
  if (store == NULL) {
    ms_log(MS_LOG_ERROR, "xds: out of memory rebuilding the client CA store");
    return;
  }
  /* Adding a certificate twice is harmless: BoringSSL ignores the duplicate. */
  for (size_t i = 0; cas != NULL && i < sk_X509_num(cas); i++)
    X509_STORE_add_cert(store, sk_X509_value(cas, i));
  if (server->options.accept_workload_certificates) {
    X509_STORE_add_cert(store, server->ca.current.cert);
    for (size_t i = 0; i < server->ca.retiring_count; i++)
      X509_STORE_add_cert(store, server->ca.retiring[i].cert);
  }
  if (!SSL_CTX_set1_verify_cert_store(ctx, store))
    ms_log(MS_LOG_ERROR, "xds: out of memory installing the client CA store");
  X509_STORE_free(store);
  ERR_clear_error();
}

void xds_server_client_trust_changed(ms_xds_server *server) {
  if (server->serving.ctx == NULL) return;
  install_client_trust(server, server->serving.ctx, server->serving.client_cas);
}

/* leaf_line writes "serial S, expires T" of the context's certificate. */
static void leaf_line(SSL_CTX *ctx, char *out, size_t out_len) {
  ms_cert_info info;
  X509 *leaf = SSL_CTX_get0_certificate(ctx);
  if (leaf == NULL || ms_cert_info_init(&info, leaf) != 0) {
    snprintf(out, out_len, "serial unknown");
    return;
  }
  char expires[32];
  ms_time_rfc3339(info.not_after, expires, sizeof(expires));
  snprintf(out, out_len, "serial %s, expires %s", info.serial_hex, expires);
  ms_cert_info_cleanup(&info);
}

int xds_serving_init(xds_serving *serving, ms_xds_server *server, xds_serving_kind kind, char *err,
                     size_t err_len) {
  const ms_xds_server_options *o = &server->options;
  memset(serving, 0, sizeof(*serving));
  serving->server = server;
  serving->kind = kind;
  if (kind == XDS_SERVING_ADS) {
    serving->what = "tls";
    serving->cert_file = o->tls_cert;
    serving->key_file = o->tls_key;
    serving->client_ca_file = o->client_ca;
    serving->cert_flag = "--tls-cert";
    serving->key_flag = "--tls-key";
  } else {
    bool own = o->webhook_cert != NULL;
    serving->what = "webhook tls";
    serving->cert_file = own ? o->webhook_cert : o->tls_cert;
    serving->key_file = own ? o->webhook_key : o->tls_key;
    serving->cert_flag = own ? "--webhook-cert" : "--tls-cert, the webhook's by default";
    serving->key_flag = own ? "--webhook-key" : "--tls-key, the webhook's by default";
  }
  serving_files files;
  if (read_files(serving, &files, err, err_len) != 0) return -1;
  serving->ctx = build_ctx(serving, &files, &serving->client_cas, err, err_len);
  memcpy(serving->digest, files.digest, sizeof(serving->digest));
  files_cleanup(&files);
  if (serving->ctx == NULL) return -1;
  serving->loaded_at_ms = xds_now_ms();
  if (kind == XDS_SERVING_ADS) xds_server_client_trust_changed(server);
  return 0;
}

/* install puts `ctx` in use for new connections. */
static void install(xds_serving *serving, SSL_CTX *ctx, STACK_OF(X509) *cas) {
  ms_xds_server *server = serving->server;
  if (serving->kind == XDS_SERVING_WEBHOOK) {
    xds_webhook_set_ssl_ctx(server, ctx);
    return;
  }
  install_client_trust(server, ctx, cas);
  if (server->grpc != NULL) ms_grpc_server_set_ssl_ctx(server->grpc, ctx);
}

void xds_serving_reload(xds_serving *serving) {
  ms_xds_server *server = serving->server;
  if (server->closing || serving->ctx == NULL) return;
  serving_files files;
  char err[MS_ERR_LEN];
  STACK_OF(X509) *cas = NULL;
  SSL_CTX *ctx = NULL;
  bool read = read_files(serving, &files, err, sizeof(err)) == 0;
  if (read && memcmp(files.digest, serving->digest, sizeof(files.digest)) == 0) {
    /* The files in use (an event elsewhere in the folder, or a rollback). */
    serving->last_error[0] = '\0';
    memset(serving->failed_digest, 0, sizeof(serving->failed_digest));
    files_cleanup(&files);
    return;
  }
  if (read && memcmp(files.digest, serving->failed_digest, sizeof(files.digest)) == 0) {
    files_cleanup(&files); /* refused already, and said so */
    return;
  }
  if (read) ctx = build_ctx(serving, &files, &cas, err, sizeof(err));
  if (ctx == NULL) {
    if (read) memcpy(serving->failed_digest, files.digest, sizeof(files.digest));
    if (!read && strcmp(err, serving->last_error) == 0) return; /* the same unreadable file */
    files_cleanup(&files);
    serving->reload_failures++;
    snprintf(serving->last_error, sizeof(serving->last_error), "%s", err);
    ms_log(MS_LOG_ERROR,
           "%s: the new serving certificate is refused, the one in use keeps serving: %s",
           serving->what, err);
    return;
  }
  install(serving, ctx, cas);
  SSL_CTX_free(serving->ctx); /* connections under way hold their own reference */
  sk_X509_pop_free(serving->client_cas, X509_free);
  serving->ctx = ctx;
  serving->client_cas = cas;
  memcpy(serving->digest, files.digest, sizeof(serving->digest));
  memset(serving->failed_digest, 0, sizeof(serving->failed_digest));
  files_cleanup(&files);
  serving->reloads++;
  serving->loaded_at_ms = xds_now_ms();
  serving->last_error[0] = '\0';
  char leaf[160];
  leaf_line(ctx, leaf, sizeof(leaf));
  ms_log(MS_LOG_INFO,
         "%s: serving certificate reloaded (%s); new connections get it, open ones keep "
         "theirs",
         serving->what, leaf);
}

static void on_files_changed(void *arg) {
  xds_serving_reload(arg);
}

void xds_serving_watch(xds_serving *serving, uv_loop_t *loop, uint32_t debounce_ms) {
  const char *client_ca = serving->client_ca_file;
  char *dirs[3] = {xds_dir_of(serving->cert_file), xds_dir_of(serving->key_file),
                   client_ca != NULL ? xds_dir_of(client_ca) : NULL};
  int count = 0;
  const char *watched[3];
  for (int i = 0; i < 3; i++)
    if (dirs[i] != NULL) watched[count++] = dirs[i];
  if (count < (client_ca != NULL ? 3 : 2))
    ms_log(MS_LOG_WARN, "%s: out of memory: the serving certificate is not watched", serving->what);
  xds_watch_start(&serving->watch, serving->server, loop, watched, count, debounce_ms,
                  serving->what, on_files_changed, serving);
  for (int i = 0; i < 3; i++)
    free(dirs[i]);
}

void xds_serving_close(xds_serving *serving) {
  xds_watch_close(&serving->watch);
}

void xds_serving_cleanup(xds_serving *serving) {
  SSL_CTX_free(serving->ctx);
  sk_X509_pop_free(serving->client_cas, X509_free);
  memset(serving, 0, sizeof(*serving));
}

void xds_serving_status(const xds_serving *serving, void *cjson_object) {
  cJSON *out = cjson_object;
  cJSON_AddStringToObject(out, "cert_file", serving->cert_file);
  cJSON_AddStringToObject(out, "key_file", serving->key_file);
  if (serving->client_ca_file != NULL)
    cJSON_AddStringToObject(out, "client_ca_file", serving->client_ca_file);
  X509 *leaf = serving->ctx != NULL ? SSL_CTX_get0_certificate(serving->ctx) : NULL;
  ms_cert_info info;
  if (leaf != NULL && ms_cert_info_init(&info, leaf) == 0) {
    char *text = ms_cert_info_to_json(&info);
    ms_cert_info_cleanup(&info);
    cJSON *current = text != NULL ? cJSON_Parse(text) : NULL;
    free(text);
    cJSON_AddItemToObject(out, "current", current != NULL ? current : cJSON_CreateNull());
  }
  char when[32];
  ms_time_rfc3339(serving->loaded_at_ms / 1000, when, sizeof(when));
  cJSON_AddStringToObject(out, "loaded_at", when);
  cJSON_AddNumberToObject(out, "reloads", (double)serving->reloads);
  cJSON_AddNumberToObject(out, "reload_failures", (double)serving->reload_failures);
  if (serving->last_error[0] != '\0')
    cJSON_AddStringToObject(out, "last_error", serving->last_error);
}
