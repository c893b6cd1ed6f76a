/* load.c: reading certificate, key, CA and CRL files, parsing PEM, and the
 * material a client context is built from. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "certs/certs.h"
#include "certs/internal.h"
#include "common/file.h"

int ms_pem_parse_chain(const char *pem, size_t len, const char *what, STACK_OF(X509) **out_chain,
                       char *err, size_t err_len) {
  char reason[128];
  BIO *bio = len > MS_FILE_MAX ? NULL : BIO_new_mem_buf(pem, (int)len);
  STACK_OF(X509) *chain = sk_X509_new_null();
  if (bio == NULL || chain == NULL) {
    ms_err_set(err, err_len, "cannot parse %s: too large or out of memory", what);
    goto fail;
  }
  for (;;) {
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (cert == NULL) {
      uint32_t code = ERR_peek_last_error();
      if (ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE) {
        ERR_clear_error(); /* the end of the input */
        break;
      }
      ms_err_set(err, err_len, "cannot parse certificate %zu in %s: %s", sk_X509_num(chain) + 1,
                 what, ms_err_reason(reason, sizeof(reason)));
      goto fail;
    }
    if (!sk_X509_push(chain, cert)) {
      X509_free(cert);
      ms_err_set(err, err_len, "cannot parse %s: out of memory", what);
      goto fail;
    }
  }
  if (sk_X509_num(chain) == 0) {
    ms_err_set(err, err_len, "%s holds no PEM certificate (no \"BEGIN CERTIFICATE\" block)", what);
    goto fail;
  }
  BIO_free(bio);
  *out_chain = chain;
  return 0;

fail:
  BIO_free(bio);
  sk_X509_pop_free(chain, X509_free);
  return -1;
}

typedef struct password_request {
  const char *password;
  bool asked;
} password_request;

static int password_callback(char *buf, int size, int rwflag, void *arg) {
  password_request *request = arg;
  request->asked = true;
  if (request->password == NULL || size <= 0) return 0;
  size_t len = strlen(request->password);
  if (len > (size_t)size) len = (size_t)size;
  memcpy(buf, request->password, len);
  return (int)len;
}

int ms_pem_parse_key(const char *pem, size_t len, const char *password, const char *what,
                     EVP_PKEY **out_key, char *err, size_t err_len) {
  char reason[128];
  password_request request = {password, false};
  BIO *bio = len > MS_FILE_MAX ? NULL : BIO_new_mem_buf(pem, (int)len);
  if (bio == NULL) {
    ms_err_set(err, err_len, "cannot parse %s: too large or out of memory", what);
    return -1;
  }
  EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, password_callback, &request);
  BIO_free(bio);
  if (key != NULL) {
    ERR_clear_error();
    *out_key = key;
    return 0;
  }
  ms_err_reason(reason, sizeof(reason));
  if (request.asked && password == NULL) {
    ms_err_set(err, err_len, "private key %s is encrypted and no password_file is set", what);
  } else if (request.asked) {
    ms_err_set(err, err_len, "cannot decrypt private key %s: wrong password? (%s)", what, reason);
  } else if (strstr(reason, "NO_START_LINE") != NULL) {
    ms_err_set(err, err_len, "%s holds no PEM private key (no \"BEGIN ... PRIVATE KEY\" block)",
               what);
  } else {
    ms_err_set(err, err_len, "cannot parse private key %s: %s", what, reason);
  }
  return -1;
}

bool ms_key_matches_cert(EVP_PKEY *key, X509 *cert) {
  EVP_PKEY *public_key = X509_get_pubkey(cert);
  bool match = public_key != NULL && key != NULL && EVP_PKEY_cmp(public_key, key) == 1;
  EVP_PKEY_free(public_key);
  ERR_clear_error();
  return match;
}

/* read_password keeps the first line of the password file. */
static int read_password(const char *path, char **out_password, char *err, size_t err_len) {
  char *data = NULL;
  size_t len = 0;
  if (ms_file_read(path, &data, &len, err, err_len) != 0) return -1;
  size_t line = strcspn(data, "\r\n");
  char *password = malloc(line + 1);
  if (password != NULL) {
    memcpy(password, data, line);
    password[line] = '\0';
  }
  OPENSSL_cleanse(data, len);
  free(data);
  if (password == NULL) {
    ms_err_set(err, err_len, "cannot read %s: out of memory", path);
    return -1;
  }
  if (line == 0) {
    free(password);
    ms_err_set(err, err_len, "password file %s is empty", path);
    return -1;
  }
  *out_password = password;
  return 0;
}

/* digest_field adds one length-prefixed field, so that moving bytes from one
 * field to the next changes the digest. */
static void digest_field(SHA256_CTX *sha, const void *data, size_t len) {
  uint64_t prefix = data == NULL ? UINT64_MAX : (uint64_t)len;
  SHA256_Update(sha, &prefix, sizeof(prefix));
  if (data != NULL) SHA256_Update(sha, data, len);
}

static void digest_string(SHA256_CTX *sha, const char *text) {
  digest_field(sha, text, text == NULL ? 0 : strlen(text));
}

static void material_digest(const ms_tls_settings *settings, ms_tls_material *material) {
  SHA256_CTX sha;
  SHA256_Init(&sha);
  digest_field(&sha, material->certificate_pem, material->certificate_len);
  digest_field(&sha, material->private_key_pem, material->private_key_len);
  digest_string(&sha, material->password);
  digest_field(&sha, material->trusted_ca_pem, material->trusted_ca_len);
  digest_field(&sha, material->crl_pem, material->crl_len);
  int64_t numbers[] = {settings->verify, settings->verify_depth, settings->min_version,
                       settings->max_version, settings->session_reuse};
  SHA256_Update(&sha, numbers, sizeof(numbers));
  digest_string(&sha, settings->ciphers);
  digest_string(&sha, settings->curves);
  digest_field(&sha, settings->alpn, settings->alpn_len);
  digest_string(&sha, settings->server_name);
  uint64_t names[] = {settings->send_sni, settings->match_san_count};
  SHA256_Update(&sha, names, sizeof(names));
  for (size_t i = 0; i < settings->match_san_count; i++)
    digest_string(&sha, settings->match_sans[i]);
  SHA256_Final(material->digest, &sha);
}

/* One piece of material: the PEM given in memory, else the file's bytes. */
static int load_piece(const char *pem, const char *path, char **out, size_t *out_len, char *err,
                      size_t err_len) {
  if (pem != NULL) {
    if ((*out = strdup(pem)) == NULL) {
      ms_err_set(err, err_len, "out of memory");
      return -1;
    }
    *out_len = strlen(pem);
    return 0;
  }
  if (path == NULL) return 0;
  return ms_file_read(path, out, out_len, err, err_len);
}

/* collect_piece reads one piece (the PEM given in memory, else the file),
 * unless an earlier problem stops the caller. */
static void collect_piece(ms_tls_problems *problems, size_t before, const char *key,
                          const char *pem, const char *path, char **out, size_t *out_len) {
  if (problems->count > before && !ms_tls_go_on(problems)) return;
  char why[MS_ERR_LEN];
  if (load_piece(pem, path, out, out_len, why, sizeof(why)) != 0)
    ms_tls_problem(problems, key, "%s", why);
}

int ms_tls_material_collect(const ms_tls_settings *settings, ms_tls_material *out,
                            ms_tls_problems *problems) {
  ms_tls_material material;
  memset(&material, 0, sizeof(material));
  size_t before = problems->count;
  bool has_certificate = settings->certificate != NULL || settings->certificate_pem != NULL;
  bool has_key = settings->private_key != NULL || settings->private_key_pem != NULL;
  if (has_certificate && !has_key)
    ms_tls_problem(problems, "private_key", "certificate %s is set but private_key is not",
                   settings->certificate ? settings->certificate : "(in memory)");
  if (!has_certificate && has_key)
    ms_tls_problem(problems, "certificate", "private_key %s is set but certificate is not",
                   settings->private_key ? settings->private_key : "(in memory)");
  if (settings->verify && settings->trusted_ca == NULL && settings->trusted_ca_pem == NULL)
    ms_tls_problem(problems, "trusted_ca", "verify is on but trusted_ca is not set");
  collect_piece(problems, before, settings->certificate_pem ? "certificate_pem" : "certificate",
                settings->certificate_pem, settings->certificate, &material.certificate_pem,
                &material.certificate_len);
  collect_piece(problems, before, settings->private_key_pem ? "private_key_pem" : "private_key",
                settings->private_key_pem, settings->private_key, &material.private_key_pem,
                &material.private_key_len);
  size_t password_len = 0;
  if (settings->password != NULL) {
    collect_piece(problems, before, "password", settings->password, NULL, &material.password,
                  &password_len);
  } else if (settings->password_file != NULL &&
             (problems->count == before || ms_tls_go_on(problems))) {
    char why[MS_ERR_LEN];
    if (read_password(settings->password_file, &material.password, why, sizeof(why)) != 0)
      ms_tls_problem(problems, "password_file", "%s", why);
  }
  collect_piece(problems, before, settings->trusted_ca_pem ? "trusted_ca_pem" : "trusted_ca",
                settings->trusted_ca_pem, settings->trusted_ca, &material.trusted_ca_pem,
                &material.trusted_ca_len);
  collect_piece(problems, before, settings->crl_pem ? "crl_pem" : "crl", settings->crl_pem,
                settings->crl, &material.crl_pem, &material.crl_len);
  if (problems->count > before && !ms_tls_go_on(problems)) {
    ms_tls_material_cleanup(&material);
    return -1;
  }
  material_digest(settings, &material);
  *out = material;
  return problems->count > before ? -1 : 0;
}

int ms_tls_material_load(const ms_tls_settings *settings, ms_tls_material *out, char *err,
                         size_t err_len) {
  ms_tls_problems problems = {.err = err, .err_len = err_len};
  return ms_tls_material_collect(settings, out, &problems);
}

void ms_tls_material_cleanup(ms_tls_material *material) {
  if (material == NULL) return;
  if (material->private_key_pem != NULL) {
    OPENSSL_cleanse(material->private_key_pem, material->private_key_len);
  }
  if (material->password != NULL) {
    OPENSSL_cleanse(material->password, strlen(material->password));
  }
  free(material->certificate_pem);
  free(material->private_key_pem);
  free(material->password);
  free(material->trusted_ca_pem);
  free(material->crl_pem);
  memset(material, 0, sizeof(*material));
}
