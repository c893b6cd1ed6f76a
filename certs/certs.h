/* certs.h: everything about keys and certificates, shared by the sidecar, the
 * control plane and the `certs` CLI.
 *
 * - loading PEM certificate chains and private keys (an encrypted key with a
 *   password file too) and checking that a key matches its certificate;
 * - inspecting a certificate (subject, SANs including SPIFFE URIs, serial,
 *   validity, SHA-256 fingerprint);
 * - building a client SSL_CTX from a cluster's TLS settings, and checking the
 *   peer's names per connection;
 * - describing a failed handshake in one sentence a user can act on;
 * - issuing certificates (CA, leaf) for the CLI, the demo and the tests.
 *
 * Conventions: functions return 0 on success and -1 on failure; on failure
 * they write a sentence a user can act on into `err` (at most `err_len`
 * bytes, always NUL-terminated) and leave every output untouched. Private key
 * material is never written into an error message. */
#ifndef MS_CERTS_H
#define MS_CERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#define MS_ERR_LEN 512

/* ---- inspection ---------------------------------------------------------- */

typedef struct ms_cert_info {
  char subject[256]; /* RFC 2253 one-line form, e.g. "CN=orders,O=shop" */
  char issuer[256];
  char serial_hex[80]; /* lowercase hex, no separators */
  char sha256_hex[65]; /* fingerprint of the DER encoding, lowercase hex */
  int64_t not_before;  /* unix seconds */
  int64_t not_after;   /* unix seconds */
  bool is_ca;
  size_t san_count;
  char **sans; /* "DNS:name", "IP:1.2.3.4", "URI:spiffe://td/x", "EMAIL:a@b" */
} ms_cert_info;

/* ms_cert_info_init fills `out` from `cert`. Returns 0, or -1 when memory ran
 * out. The caller releases `out` with ms_cert_info_cleanup. */
int ms_cert_info_init(ms_cert_info *out, X509 *cert);

/* ms_cert_info_cleanup releases what ms_cert_info_init allocated. Accepts a
 * zeroed struct. */
void ms_cert_info_cleanup(ms_cert_info *info);

/* ms_cert_info_array_free cleans up `count` infos and frees the array (as
 * returned in ms_client_ctx_new's out_cas). Accepts NULL. */
void ms_cert_info_array_free(ms_cert_info *infos, size_t count);

/* ms_cert_info_to_json returns a newly allocated JSON object text describing
 * `info` (fields: subject, issuer, serial_number, sha256_fingerprint,
 * valid_from, expiration_time (RFC 3339 UTC), days_until_expiration,
 * subject_alt_names, is_ca), or NULL when memory ran out. Caller frees. */
char *ms_cert_info_to_json(const ms_cert_info *info);

/* ms_cert_days_until_expiration returns the whole days from `now` (unix
 * seconds) to the certificate's not_after, rounded towards minus infinity:
 * 0 in its last day, -1 in the first day after it expired. */
int64_t ms_cert_days_until_expiration(const ms_cert_info *info, int64_t now);

/* ---- loading ------------------------------------------------------------- */

/* ms_pem_parse_chain parses every certificate in `pem`. On success the caller
 * owns *out_chain (leaf first, at least one certificate). `what` names the
 * source in error messages (usually the path). */
int ms_pem_parse_chain(const char *pem, size_t len, const char *what, STACK_OF(X509) **out_chain,
                       char *err, size_t err_len);

/* ms_pem_parse_key parses a private key. `password` may be NULL; an encrypted
 * key without a password is an error that says so. Caller owns *out_key. */
int ms_pem_parse_key(const char *pem, size_t len, const char *password, const char *what,
                     EVP_PKEY **out_key, char *err, size_t err_len);

/* ms_key_matches_cert returns true when `key` is the private half of the
 * public key in `cert`. */
bool ms_key_matches_cert(EVP_PKEY *key, X509 *cert);

/* ---- client TLS contexts -------------------------------------------------- */

/* The TLS settings of one upstream cluster: every nginx proxy_ssl_* knob.
 * Paths are absolute. Strings are borrowed, not copied. */
typedef struct ms_tls_settings {
  const char *certificate;   /* client chain PEM; NULL: present no certificate */
  const char *private_key;   /* required with certificate */
  const char *password_file; /* NULL: key not encrypted */
  const char *trusted_ca;    /* CA bundle PEM; required when verify is on */
  const char *crl;           /* NULL: no revocation list; else one CRL for every CA of the
                                chain (each certificate is checked, the leaf and the CAs) */
  bool verify;               /* verify the upstream's chain (and names) */
  int verify_depth;          /* max intermediate certificates, like nginx */
  uint16_t min_version;      /* TLS1_2_VERSION or TLS1_3_VERSION */
  uint16_t max_version;
  const char *ciphers; /* TLS 1.2 cipher list; NULL: BoringSSL's default */
  const char *curves;  /* "X25519:P-256"; NULL: default */
  const uint8_t *alpn; /* ALPN protocol list in wire format; NULL: none */
  size_t alpn_len;
  bool session_reuse; /* offer cached sessions (resumption) */
  /* Material given in memory (from the control plane's SDS) instead of
   * files: each, when set, takes the place of the path above. PEM text,
   * NUL-terminated, borrowed. */
  const char *certificate_pem;
  const char *private_key_pem;
  const char *password;
  const char *trusted_ca_pem;
  const char *crl_pem;
  /* What each connection checks of the peer's names (ms_peer_check, set per
   * connection): not used to build the SSL_CTX, but part of the material's
   * digest, so that a change of them alone makes a new context, and with it
   * a new generation: sessions cached and connections pooled under the old
   * rules are never used under the new ones. */
  const char *server_name; /* NULL: each endpoint's host */
  bool send_sni;
  const char *const *match_sans; /* "DNS:x", "URI:y", ... */
  size_t match_san_count;
} ms_tls_settings;

/* The bytes a context is made of, read from the files the settings name. */
typedef struct ms_tls_material {
  char *certificate_pem;
  size_t certificate_len;
  char *private_key_pem;
  size_t private_key_len;
  char *password; /* first line of password_file, or NULL */
  char *trusted_ca_pem;
  size_t trusted_ca_len;
  char *crl_pem;
  size_t crl_len;
  uint8_t digest[32]; /* SHA-256 over all the bytes above and the settings */
} ms_tls_material;

/* ms_tls_material_load reads every file `settings` names (or copies the
 * PEM given in memory instead) and computes the digest, so that two clusters with equal material
 * can share one context and a reload can tell whether anything changed. Release with
 * ms_tls_material_cleanup (which wipes the key bytes). */
int ms_tls_material_load(const ms_tls_settings *settings, ms_tls_material *out, char *err,
                         size_t err_len);
void ms_tls_material_cleanup(ms_tls_material *material);

/* ms_client_ctx_new builds a client SSL_CTX from `settings` and `material`
 * and checks it: the key matches the certificate, the certificate is within
 * its validity period, the CA bundle parses (and, with verify on, the client
 * chain is not required to chain to it). Verification mode, depth, versions,
 * ciphers, curves, ALPN, the trust store with the CRL, and alert capture for
 * ms_tls_describe_failure are set on the context. The session cache of the
 * context itself is off: callers keep their own (see the sidecar's
 * session_cache.h) through SSL_CTX_sess_set_new_cb.
 * On success the caller owns *out_ctx; when out_leaf is not NULL it receives
 * the client certificate's info (zeroed when there is none) and the caller
 * cleans it up; when out_cas is not NULL it receives a newly allocated array
 * of the trusted CAs' infos (*out_ca_count entries). */
int ms_client_ctx_new(const ms_tls_settings *settings, const ms_tls_material *material,
                      SSL_CTX **out_ctx, ms_cert_info *out_leaf, ms_cert_info **out_cas,
                      size_t *out_ca_count, char *err, size_t err_len);

/* ms_client_ctx_load is ms_tls_material_load then ms_client_ctx_new, for a
 * caller that needs only the SSL_CTX. */
int ms_client_ctx_load(const ms_tls_settings *settings, SSL_CTX **out_ctx, char *err,
                       size_t err_len);

/* ms_client_ctx_load_files is ms_client_ctx_load with what a tool's or a
 * test driver's client takes from three files: the certificate and key it
 * presents, the CA it verifies the server with (a chain of up to 4), TLS 1.2
 * to 1.3. Returns 0 and sets *out_ctx (the caller frees it), or -1 with a
 * message in `err`. */
int ms_client_ctx_load_files(const char *trusted_ca, const char *certificate,
                             const char *private_key, SSL_CTX **out_ctx, char *err, size_t err_len);

/* A problem ms_tls_settings_check found: `key` names the setting it is
 * about as the configuration spells it ("certificate", "private_key",
 * "password_file", "trusted_ca", "crl", their "_pem" variants (and
 * "password") when the material was given in memory, "ciphers", "curves",
 * "alpn", "protocols"); `message` says what is wrong, naming the file. */
typedef void (*ms_tls_problem_fn)(void *arg, const char *key, const char *message);

/* ms_tls_settings_check checks what ms_tls_material_load and
 * ms_client_ctx_new would, but goes on after a problem and reports every
 * one through `report`: each file that cannot be read, each PEM that does
 * not parse, a key that does not match its certificate, a certificate out
 * of its validity, unknown ciphers or curves. Returns how many it reported
 * (0: ms_client_ctx_load succeeds with these settings). */
size_t ms_tls_settings_check(const ms_tls_settings *settings, ms_tls_problem_fn report, void *arg);

/* ms_tls_info_callback is the info callback ms_client_ctx_new installs: it
 * records the last TLS alert sent and received on each SSL for
 * ms_tls_describe_failure. A caller that installs its own info callback on
 * such a context calls this one from it. */
void ms_tls_info_callback(const SSL *ssl, int type, int value);

/* What one connection verifies of the peer's names. With match_sans set, the
 * leaf certificate must carry one of them ("DNS:x" (wildcards allowed in the
 * certificate), "IP:a.b.c.d", "URI:spiffe://td/ns/x/sa/y", exact); otherwise
 * with `host` set, the leaf must be valid for that DNS name or IP literal.
 * The struct and its strings must outlive the SSL object. */
typedef struct ms_peer_check {
  const char *host;
  const char *const *match_sans;
  size_t match_san_count;
} ms_peer_check;

/* ms_ssl_set_peer_check arranges for `check` to be enforced during the
 * handshake of `ssl` (a no-op when the context does not verify). Returns 0,
 * or -1 when memory ran out. */
int ms_ssl_set_peer_check(SSL *ssl, const ms_peer_check *check);

/* Why a handshake failed, as a stats label and the key of a hint. */
typedef enum ms_tls_failure {
  MS_TLS_FAILURE_OTHER = 0,         /* "handshake_failure" */
  MS_TLS_FAILURE_SNI_REQUIRED,      /* "sni_required": alert 112/80 with no SNI sent */
  MS_TLS_FAILURE_UNKNOWN_CA,        /* "unknown_ca": upstream chain not trusted */
  MS_TLS_FAILURE_NAME_MISMATCH,     /* "name_mismatch": no SAN matched */
  MS_TLS_FAILURE_EXPIRED,           /* "certificate_expired": upstream's, or ours (alert 45) */
  MS_TLS_FAILURE_CLIENT_CERT,       /* "client_certificate_rejected": required or refused */
  MS_TLS_FAILURE_PROTOCOL,          /* "protocol_version": no common version or cipher */
  MS_TLS_FAILURE_CONNECTION_CLOSED, /* "connection_closed": peer closed or reset mid-handshake */
  MS_TLS_FAILURE_TIMEOUT,           /* "timeout": set by callers, never returned */
  MS_TLS_FAILURE_NOT_TLS,           /* "not_tls": the peer answered with something else */
  MS_TLS_FAILURE_COUNT
} ms_tls_failure;

/* ms_tls_failure_name returns the failure's label ("unknown_ca", ...). */
const char *ms_tls_failure_name(ms_tls_failure failure);

/* ms_tls_describe_failure writes one line describing why the handshake on
 * `ssl` failed: BoringSSL's reason, the TLS alert by name and number (sent or
 * received), the verification error, and a hint for the common cases: "the
 * upstream may require SNI" (alert 112 unrecognized_name or 80
 * internal_error with no SNI sent), unknown CA, name mismatch, expired
 * certificate, client certificate required. `ssl_error` is what
 * SSL_get_error returned; `sni_sent` tells whether SNI was sent. Drains the
 * calling thread's BoringSSL error queue. Returns the failure's kind. */
ms_tls_failure ms_tls_describe_failure(SSL *ssl, int ssl_error, bool sni_sent, char *buf,
                                       size_t len);

/* ms_tls_describe_failure_seen is ms_tls_describe_failure given also the
 * first bytes the peer sent on the connection (`first`, `first_len`; NULL
 * and 0 when unknown). When they are not a TLS record (a plaintext server's
 * "HTTP/1.1 400 ...", an SSH banner) or are our own ClientHello sent back
 * (an echo), the failure is MS_TLS_FAILURE_NOT_TLS and the line quotes
 * them. */
ms_tls_failure ms_tls_describe_failure_seen(SSL *ssl, int ssl_error, bool sni_sent,
                                            const uint8_t *first, size_t first_len, char *buf,
                                            size_t len);

/* ms_tls_record_type returns the content type (20 change_cipher_spec, 21
 * alert, 22 handshake, 23 application_data) when the `len` bytes at `bytes`
 * begin a TLS record header (a type of 20..23, then version 3.0 to 3.4), or
 * 0 when they do not (or fewer than 3 bytes are given). A TLS client's first
 * bytes are a handshake record: 0x16 0x03 0x00..0x04. */
int ms_tls_record_type(const uint8_t *bytes, size_t len);

/* ---- issuing (CLI, demo, tests, control plane) ---------------------------- */

typedef struct ms_issue_request {
  const char *common_name;
  const char *const *dns;
  size_t dns_count;
  const char *const *ips;
  size_t ip_count;
  const char *const *uris;
  size_t uri_count;
  bool client;         /* extendedKeyUsage clientAuth */
  bool server;         /* extendedKeyUsage serverAuth */
  int64_t not_before;  /* unix seconds; 0: now minus 5 minutes */
  int64_t ttl_seconds; /* validity from not_before + 5 min */
} ms_issue_request;

/* ms_ca_new makes a self-signed ECDSA P-256 CA certificate valid for
 * `ttl_seconds`. Caller owns *out_cert and *out_key. */
int ms_ca_new(const char *common_name, int64_t ttl_seconds, X509 **out_cert, EVP_PKEY **out_key,
              char *err, size_t err_len);

/* ms_cert_issue makes a new ECDSA P-256 key and a certificate for it signed
 * by the CA, with a random 128-bit serial. Caller owns both outputs. */
int ms_cert_issue(const ms_issue_request *request, X509 *ca_cert, EVP_PKEY *ca_key, X509 **out_cert,
                  EVP_PKEY **out_key, char *err, size_t err_len);

/* ms_pem_write_cert / ms_pem_write_key write PEM files atomically (a
 * temporary file renamed into place); the key file gets mode 0600. */
int ms_pem_write_cert(const char *path, X509 *cert, X509 *chain_next, char *err, size_t err_len);
int ms_pem_write_key(const char *path, EVP_PKEY *key, char *err, size_t err_len);

/* ms_pem_write_key_encrypted writes the key like ms_pem_write_key, encrypted
 * with `password` (AES-256-CBC, PKCS#8); a NULL password writes it in the
 * clear. Returns 0, or -1 with a message in err. */
int ms_pem_write_key_encrypted(const char *path, EVP_PKEY *key, const char *password, char *err,
                               size_t err_len);

/* ms_cert_issue_for_key is ms_cert_issue for a public key the caller
 * already has (a CSR's): the certificate is for `public_key`, and no key is
 * made. Caller owns *out_cert. */
int ms_cert_issue_for_key(const ms_issue_request *request, EVP_PKEY *public_key, X509 *ca_cert,
                          EVP_PKEY *ca_key, X509 **out_cert, char *err, size_t err_len);

/* ---- certificate signing requests (Istio's CA API) ------------------------ */

/* ms_csr_new makes a PKCS#10 request for `key` (ECDSA P-256 or RSA) with an
 * empty subject and exactly one SAN, the URI `spiffe_id`, signed with the key
 * (SHA-256). On success *out_pem (NUL-terminated PEM, no key material) is
 * the caller's to free. */
int ms_csr_new(EVP_PKEY *key, const char *spiffe_id, char **out_pem, char *err, size_t err_len);

/* What a parsed request asks for. */
typedef struct ms_csr_info {
  EVP_PKEY *public_key; /* the key to certify; owned */
  char **uris;          /* URI SANs, in order; owned */
  size_t uri_count;
  size_t other_san_count; /* DNS, IP, email or other SANs asked for */
  bool asks_ca;           /* basicConstraints CA:TRUE requested */
} ms_csr_info;

/* ms_csr_parse parses one PEM request (at most 64 KiB), checks its
 * signature with its own key, and fills `out`; the caller releases it with
 * ms_csr_info_cleanup. Fails with a reason for anything else: not PEM, not a
 * CSR, a bad signature, a key that is neither P-256 nor RSA of 2048..4096
 * bits, an extension that does not parse, a URI with a NUL in it. What the
 * request asks for (other SANs, CA:TRUE) is reported, not refused: that is
 * the caller's policy. On failure `out` is untouched. */
int ms_csr_parse(const char *pem, size_t len, ms_csr_info *out, char *err, size_t err_len);
void ms_csr_info_cleanup(ms_csr_info *info);

/* ---- key material in memory ----------------------------------------------- */

/* ms_secure_alloc returns `len` zeroed bytes on pages of their own that are
 * locked in RAM (mlock: never swapped) and left out of core dumps
 * (MADV_DONTDUMP), or NULL. A lock refused by RLIMIT_MEMLOCK still returns
 * the memory (unlocked; ms_secure_locked says so). ms_secure_free wipes,
 * unlocks and unmaps it; accepts NULL. */
void *ms_secure_alloc(size_t len);
void ms_secure_free(void *bytes);
bool ms_secure_locked(const void *bytes);

/* ms_secure_strdup copies `text` into secure memory (NULL when it fails). */
char *ms_secure_strdup(const char *text);

/* ms_key_new_p256 makes an ECDSA P-256 key. Caller owns *out_key. */
int ms_key_new_p256(EVP_PKEY **out_key, char *err, size_t err_len);

/* ms_key_pem_secure writes `key` as unencrypted PKCS#8 PEM into secure
 * memory; the caller releases *out_pem with ms_secure_free. No copy is left
 * anywhere else (BoringSSL's buffers are wiped). */
int ms_key_pem_secure(EVP_PKEY *key, char **out_pem, char *err, size_t err_len);

/* ---- JSON Web Tokens (Kubernetes service-account tokens) ------------------ */

/* A JSON Web Key Set: RSA ("kty":"RSA", n, e; 2048 to 16384 bits) and EC
 * P-256 ("kty":"EC", "crv":"P-256", x, y) keys, each with its "kid" (may be
 * absent). Keys of other types, curves, sizes, uses ("use" other than "sig")
 * or algorithms ("alg" other than RS256 / ES256) are skipped. Immutable once
 * parsed. */
typedef struct ms_jwks ms_jwks;

/* ms_jwks_parse parses a JWKS document ({"keys": [...]}, at most 1 MiB).
 * Returns 0 with *out (caller frees with ms_jwks_free; at least one usable
 * key), or -1 with the reason (not JSON; no usable key, and why the first
 * skipped one was skipped; a key of a supported type that does not parse, or
 * that holds private material ("d"): which). ms_jwks_count returns the number
 * of usable keys (0 for NULL); ms_jwks_free accepts NULL. */
int ms_jwks_parse(const char *json, size_t len, ms_jwks **out, char *err, size_t err_len);
size_t ms_jwks_count(const ms_jwks *keys);
void ms_jwks_free(ms_jwks *keys);

/* What a token must show. */
typedef struct ms_jwt_expect {
  const char *issuer;   /* "iss" must equal this */
  const char *audience; /* "aud" (a string, or an array holding it) must hold this */
  int64_t now;          /* unix seconds */
  int64_t skew_seconds; /* allowed clock skew for exp / nbf / iat */
} ms_jwt_expect;

/* What a verified Kubernetes service-account token says. */
typedef struct ms_jwt_claims {
  char subject[384];         /* "sub": system:serviceaccount:NS:SA */
  char namespace_name[254];  /* "kubernetes.io"."namespace" */
  char service_account[254]; /* "kubernetes.io"."serviceaccount"."name" */
  char pod[254];             /* "kubernetes.io"."pod"."name", "" if absent */
  int64_t expires_at;        /* "exp" */
} ms_jwt_claims;

/* ms_jwt_verify checks a compact JWS `token` (at most 16 KiB; each part
 * strict unpadded base64url): the header's "alg" is RS256 or ES256 (none,
 * HS*, and anything else are refused, as is a "crit" header), a key of `keys`
 * of the matching type (by "kid" when the header has one, else each)
 * verifies the signature, and only then the claims: "iss" and "aud" are as
 * expected (both must be set in `expect`), "exp" is present and not past
 * (with the skew), "nbf" and "iat" are not in the future (with the skew), and
 * the kubernetes.io claims name a namespace (a DNS label) and a service
 * account (and pod, when present: DNS subdomains) that agree with "sub". A
 * name too long for its field in `out` is an error, never truncated. Returns
 * 0 with `out` filled, or -1 with `out` untouched and a reason naming the
 * check that failed ("the token expired at 2026-...", "aud is [\"other\"],
 * not \"mtls-sidecar\"", ...). The token's text is never put into the
 * reason; claim values are quoted at most 64 printable characters long. */
int ms_jwt_verify(const char *token, const ms_jwks *keys, const ms_jwt_expect *expect,
                  ms_jwt_claims *out, char *err, size_t err_len);

/* ms_jwt_peek_claims reads the kubernetes.io claims of a token WITHOUT
 * verifying it (the sidecar, to know which identity its own token names
 * before asking for a certificate): the same names and "sub" checks as
 * ms_jwt_verify, no signature, issuer, audience or time checks (expires_at is
 * "exp", or 0 when absent). Returns 0 with `out` filled, or -1 with a
 * reason. */
int ms_jwt_peek_claims(const char *token, ms_jwt_claims *out, char *err, size_t err_len);

/* ms_duration_parse parses "90s", "15m", "24h", "30d" (or plain seconds).
 * Returns 0 and sets *out_seconds, or -1 for anything else. */
int ms_duration_parse(const char *text, int64_t *out_seconds);

#endif
