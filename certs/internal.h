/* internal.h: helpers shared by the files of certs/, not part of the public
 * API (see certs.h). */
#ifndef MS_CERTS_INTERNAL_H
#define MS_CERTS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/bio.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"
#include "common/err.h"

/* What the library remembers about one SSL object, for the peer check and
 * for ms_tls_describe_failure. Lives in the SSL's ex_data and is freed with
 * the SSL. */
typedef struct ms_ssl_state {
  int alert_sent; /* last alert description we sent, or -1 */
  bool alert_sent_fatal;
  int alert_received; /* last alert description we received, or -1 */
  bool alert_received_fatal;
  bool certificate_requested; /* the server sent a CertificateRequest */
  const ms_peer_check *check; /* borrowed, see ms_ssl_set_peer_check */
  bool name_mismatch;         /* verify_detail describes a name mismatch */
  char verify_detail[400];    /* why verification failed, or "" */
} ms_ssl_state;

/* ms_ssl_state_get returns the state of `ssl`, creating it when `create` is
 * set. Returns NULL when there is none (or memory ran out). */
ms_ssl_state *ms_ssl_state_get(const SSL *ssl, bool create);

/* ms_verify_callback is the certificate verify callback of every context
 * ms_client_ctx_new builds: it records why a chain failed and enforces the
 * SSL's match_sans. */
int ms_verify_callback(int preverify_ok, X509_STORE_CTX *store);

/* ms_err_set: common/err.h. */

/* Where loading material and building a client context put their
 * problems, each with the settings key it is about. Without `report` the
 * first problem is written into `err` and the caller stops there (the
 * public functions' way); with it every problem is reported and the caller
 * goes on where it can (ms_tls_settings_check). */
typedef struct ms_tls_problems {
  ms_tls_problem_fn report; /* NULL: stop at the first */
  void *arg;
  char *err; /* the first problem when report is NULL */
  size_t err_len;
  size_t count;
} ms_tls_problems;

/* ms_tls_problem records one problem about `key`. Returns -1. */
int ms_tls_problem(ms_tls_problems *problems, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ms_tls_go_on: go on after a problem. */
static inline bool ms_tls_go_on(const ms_tls_problems *problems) {
  return problems->report != NULL;
}

/* ms_tls_material_collect is ms_tls_material_load reporting to `problems`.
 * When it goes on after problems, *out holds what could be read (the
 * caller cleans it up) and the return is still -1. */
int ms_tls_material_collect(const ms_tls_settings *settings, ms_tls_material *out,
                            ms_tls_problems *problems);

/* ms_err_reason drains the BoringSSL error queue into `buf` as the reason of
 * the first error ("" when the queue was empty) and returns `buf`. */
const char *ms_err_reason(char *buf, size_t len);

/* ms_asn1_time_to_unix converts `time` to unix seconds. Returns 0 or -1. */
int ms_asn1_time_to_unix(const ASN1_TIME *time, int64_t *out_seconds);

/* ms_name_oneline writes `name` in RFC 2253 form ("CN=x,O=y") into buf,
 * truncating. Returns 0, or -1 when memory ran out. */
int ms_name_oneline(const X509_NAME *name, char *buf, size_t len);

/* ms_cert_sans returns the certificate's subject alternative names in the
 * "DNS:x" form. On success the caller frees the list with ms_strv_free. A
 * certificate without SANs gives *out_count 0 and *out_sans NULL. */
int ms_cert_sans(X509 *cert, char ***out_sans, size_t *out_count);
void ms_strv_free(char **strings, size_t count);

/* ms_sans_format writes "[DNS:a, URI:b]" into buf (truncating). */
void ms_sans_format(const char *const *sans, size_t count, char *buf, size_t len);

/* ms_general_names_push appends a name of `type` (GEN_DNS, GEN_URI: an
 * IA5String of `len` bytes; GEN_IPADD: 4 or 16 address bytes) to `names`.
 * Returns false when memory ran out (names is unchanged). */
bool ms_general_names_push(GENERAL_NAMES *names, int type, const void *data, size_t len);

/* ms_bio_free_wiped wipes the bytes of a memory BIO that held key material,
 * then frees it. Accepts NULL. */
void ms_bio_free_wiped(BIO *bio);

/* ms_quote_untrusted writes `text` (from a token or a request, so possibly
 * hostile) into buf in double quotes, at most 64 of its characters, each
 * outside printable ASCII (and each quote or backslash) shown as '?', with
 * "..." after the quotes when cut. Returns buf. */
const char *ms_quote_untrusted(const char *text, char *buf, size_t len);

/* ms_base64url_decode decodes `len` characters of unpadded base64url (RFC
 * 7515 section 2), strictly: only A-Z a-z 0-9 - _, no padding, no
 * whitespace, and unused trailing bits zero. Returns 0 with *out (malloc'd,
 * the caller frees; one byte longer than *out_len, that byte NUL) and
 * *out_len, or -1 for anything else or when memory ran out. */
int ms_base64url_decode(const char *text, size_t len, uint8_t **out, size_t *out_len);

/* One usable key of a JWKS (see jwks.c). */
typedef struct ms_jwk {
  char kid[128]; /* "" when the key has none */
  bool has_kid;
  int type;      /* EVP_PKEY_RSA or EVP_PKEY_EC (P-256) */
  EVP_PKEY *key; /* public key, owned */
} ms_jwk;

struct ms_jwks {
  ms_jwk *keys;
  size_t count;
};

#endif
