/* identity_internal.h: the identity agent's pure parts, without a loop or
 * sockets (identity_check.c: the CA's answer, the request, the SPIFFE ID;
 * identity_bundle.c: the trust bundle file), shared with identity.c.
 * Private. */
#ifndef MS_IDENTITY_INTERNAL_H
#define MS_IDENTITY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "certs/certs.h"
#include "sidecar/config/config.h"

/* What a checked CreateCertificate answer gives. */
typedef struct ms_identity_answer {
  char *chain_pem;   /* leaf first, then intermediates (no roots); owned */
  char *roots_pem;   /* the trust bundle: the answer's last element, or the file */
  ms_cert_info leaf; /* owned: ms_cert_info_cleanup */
} ms_identity_answer;

/* ms_identity_check_answer decodes an IstioCertificateResponse and checks it
 * before anything uses it: the leaf certifies `key`, carries exactly one URI
 * SAN and it is `spiffe_id`, is within its validity at `now` (unix seconds),
 * and chains (leaf, then the intermediates) to the roots: the answer's last
 * element (which may hold several certificates during a CA rotation), or the
 * PEM of `trust_bundle` when it is not NULL. Returns 0 with `out` filled
 * (release with ms_identity_answer_cleanup), or -1 with a reason. */
int ms_identity_check_answer(const uint8_t *bytes, size_t len, EVP_PKEY *key, const char *spiffe_id,
                             const char *trust_bundle, int64_t now, ms_identity_answer *out,
                             char *err, size_t err_len);
void ms_identity_answer_cleanup(ms_identity_answer *answer);

/* ms_identity_request_encode serializes an IstioCertificateRequest for
 * `csr_pem` and `ttl_seconds`. Returns 0 with *out_bytes (caller frees) or
 * -1 (memory). */
int ms_identity_request_encode(const char *csr_pem, int64_t ttl_seconds, uint8_t **out_bytes,
                               size_t *out_len);

/* ms_identity_find_spiffe_id decides who we are, in this order:
 * identity.spiffe_id; the bootstrap certificate's single spiffe:// URI SAN
 * (ms_identity_tls's certificate); the token's kubernetes.io claims
 * (spiffe://<trust_domain>/ns/<namespace>/sa/<service account>). Returns 0
 * with *out (caller frees) and *out_source ("configuration", "certificate",
 * "token"), or -1 with a reason a user can act on. */
int ms_identity_find_spiffe_id(const ms_config *config, char **out, const char **out_source,
                               char *err, size_t err_len);

/* ms_identity_renewal_delay_ms: when to renew a certificate valid until
 * `not_after` that we asked for at `issued_at` (unix seconds; the later of
 * that and its not_before counts, so a CA that back-dates not_before does
 * not make us renew at once): at a random point (`random`) between 50% and
 * 70% of that lifetime, counted from `now`; at least one second. */
uint64_t ms_identity_renewal_delay_ms(int64_t issued_at, int64_t not_before, int64_t not_after,
                                      int64_t now_ms, uint32_t random);

/* identity.trust_bundle_file as last read. Zeroed: nothing read yet. */
typedef struct ms_identity_bundle {
  char *pem;         /* the last good bundle (at least one certificate); NULL: none */
  ms_cert_info *cas; /* its certificates, ca_count of them */
  size_t ca_count;
  uint8_t seen[32]; /* SHA-256 of the bytes last read, good or refused */
  bool seen_any;
  char last_error[MS_ERR_LEN]; /* why the last new bytes were refused; "" none */
} ms_identity_bundle;

/* ms_identity_bundle_read reads `path` again. Returns 1 when its bytes are
 * new and hold at least one certificate (then they are the bundle), 0 when
 * they are the bytes last read (good or refused: nothing to say again), or
 * -1 with `err` (also kept in last_error) when the file cannot be read or
 * new bytes hold no certificate: the last good bundle stays. */
int ms_identity_bundle_read(ms_identity_bundle *bundle, const char *path, char *err,
                            size_t err_len);

/* ms_identity_bundle_describe writes "2 certificates (serial a1,b2; the
 * first expires 2027-01-01T00:00:00Z)" for a log line. Returns 0. */
int ms_identity_bundle_describe(const ms_identity_bundle *bundle, char *out, size_t out_len);

/* ms_identity_bundle_json returns /certs' view of the bundle: {"file",
 * "certificates": [ms_cert_info_to_json's fields with days and seconds
 * until expiration and "state" (cert_expiry.h) at `now`], "last_error"}, or
 * NULL when memory ran out. The caller owns it. */
cJSON *ms_identity_bundle_json(const ms_identity_bundle *bundle, const char *path, int64_t now,
                               uint32_t warn_percent);

/* ms_identity_bundle_cleanup frees what the bundle holds and zeroes it. */
void ms_identity_bundle_cleanup(ms_identity_bundle *bundle);

#endif
