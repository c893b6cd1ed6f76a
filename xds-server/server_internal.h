/* server_internal.h: the parts of xds-server, shared between its files.
 *   server.c         lifetime, options, the gRPC server, pushing to streams
 *   server_ads.c     one ADS stream: requests, the state machine, responses
 *   server_node.c    nodes: identity (SPIFFE ID), their certificate, rotation
 *   server_ca.c      the workload CA: loading, watching, the trust bundle
 *   server_files.c   the configuration directory: loading, watching
 *   server_watch.c   watching directories with a quiet period (CA, files, key set,
 *                    the serving certificate)
 *   server_tls.c     the serving certificate and client CA: loading, watching, reloading
 *   server_status.c  GET /status, /healthz, /readyz over plain HTTP
 *   server_state.c   the xDS state machine per stream and type (pure)
 *   server_auth.c    who is calling: the identity a caller proves
 *   server_jwks.c    the key set that verifies service-account tokens
 *   server_csr.c     Istio's CA API: CreateCertificate
 *   server_rate.c    token buckets per identity (the CA API's rate limit)
 * Not a public interface. */
#ifndef MS_XDS_SERVER_INTERNAL_H
#define MS_XDS_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/sha.h>
#include <openssl/x509.h>
#include <uv.h>

#include "certs/certs.h"
#include "common/http_server.h"
#include "common/log.h"
#include "inject/inject.h"
#include "xds-server/server.h"
#include "xds-server/server_state.h"
#include "xds/grpc/grpc.h"

/* ---- resources ---------------------------------------------------------------- */

/* One resource, serialized, with the SHA-256 of its bytes. */
typedef struct xds_resource {
  char *name;
  uint8_t *bytes;
  size_t len;
  uint8_t hash[32];
  bool secret; /* holds key material: wiped when freed */
} xds_resource;

/* xds_resource_init packs `message` into `out` named `name`. Returns 0 or
 * -1 (out of memory). */
int xds_resource_init(xds_resource *out, const char *name, const void *message);
void xds_resource_cleanup(xds_resource *resource);

/* The digest of a list of resources, in order: SHA-256 over each one's name
 * and hash, cut to its first 8 bytes. Equal lists give equal digests. */
typedef struct xds_digest {
  SHA256_CTX sha;
} xds_digest;

void xds_digest_init(xds_digest *digest);
void xds_digest_add(xds_digest *digest, const xds_resource *resource);
uint64_t xds_digest_final(xds_digest *digest);

/* Resources of one type, sorted by name. */
typedef struct xds_resource_set {
  xds_resource *items;
  size_t count;
  /* The set's version: the digest of its items as 16 hex digits. It is the
   * version_info of every CDS, EDS or LDS response cut from the set (whatever
   * part of it a node subscribed to), so the log, /status and each node's
   * ACK name one version. */
  char version[XDS_VERSION_LEN];
} xds_resource_set;

/* xds_resource_set_find returns the resource called `name` or NULL. */
const xds_resource *xds_resource_set_find(const xds_resource_set *set, const char *name);

/* xds_resource_set_update_version sets set->version from its items.
 * Returns true when the version changed. */
bool xds_resource_set_update_version(xds_resource_set *set);

int64_t xds_now_ms(void);

/* ---- watching files (server_watch.c) ------------------------------------------- */

#define XDS_WATCH_MAX_DIRS 3

/* Directories watched for one part of the server, with a quiet period. */
typedef struct xds_watch {
  ms_xds_server *server;
  const char *what; /* "ca", "files", "jwks": the prefix of its log lines */
  uv_fs_event_t watchers[XDS_WATCH_MAX_DIRS];
  int watcher_count;
  uv_timer_t debounce;
  uint32_t debounce_ms;
  void (*on_change)(void *arg);
  void *arg;
  bool started;
} xds_watch;

/* xds_dir_of returns the directory holding `path` (caller frees), or NULL
 * when memory ran out. */
char *xds_dir_of(const char *path);

/* xds_watch_start watches `dirs` (each once, at most XDS_WATCH_MAX_DIRS) and
 * calls on_change(arg) `debounce_ms` after the last event in any of them:
 * the files, or Kubernetes' atomic `..data` swap. A directory that cannot be
 * watched is logged (changes then need a restart), not fatal. Its handles
 * count in server->open_handles and report their close through
 * xds_server_handle_closed. `what` is borrowed. */
void xds_watch_start(xds_watch *watch, ms_xds_server *server, uv_loop_t *loop,
                     const char *const *dirs, int dir_count, uint32_t debounce_ms, const char *what,
                     void (*on_change)(void *arg), void *arg);
/* xds_watch_close closes the handles (idempotent). */
void xds_watch_close(xds_watch *watch);

/* xds_hash_string hashes `text` (FNV-1a) into 0..size-1, for the server's
 * hash tables. */
size_t xds_hash_string(const char *text, size_t size);

/* ---- the configuration directory (server_files.c) ----------------------------- */

typedef struct xds_file xds_file;

typedef struct xds_files {
  ms_xds_server *server;
  char *dir;
  xds_watch watch;
  xds_file *files;                     /* sorted by name */
  xds_resource_set sets[XDS_TYPE_SDS]; /* CDS, EDS, LDS: what is served */
  uint64_t reloads;
} xds_files;

/* xds_files_init loads every *.json in `dir` and starts watching it. Files
 * that do not parse are reported, not fatal. Returns 0 or -1 with `err`. */
int xds_files_init(xds_files *files, ms_xds_server *server, uv_loop_t *loop, const char *dir,
                   uint32_t debounce_ms, char *err, size_t err_len);
/* xds_files_close closes the handles; xds_files_cleanup frees the rest once
 * open_handles is 0 (server.c tracks it). */
void xds_files_close(xds_files *files);
void xds_files_cleanup(xds_files *files);
/* xds_files_reload rescans the directory now; types whose resources changed
 * are pushed to the streams. */
void xds_files_reload(xds_files *files);
/* xds_files_first_unloaded returns the name of a file whose content has never
 * parsed (nothing of it is served), or NULL when every file has loaded once. */
const char *xds_files_first_unloaded(const xds_files *files);
/* xds_files_status adds "files" and "file_errors" to a cJSON object. */
void xds_files_status(const xds_files *files, void *cjson_object);

/* ---- the workload CA (server_ca.c) --------------------------------------------- */

typedef struct xds_ca_entry {
  X509 *cert;            /* the signing certificate */
  STACK_OF(X509) *chain; /* the file's certificates, signing one first */
  EVP_PKEY *key;         /* NULL for a retired CA */
  char fingerprint[65];
  int64_t retire_at_ms; /* when it leaves the bundle (unix ms); 0 for the current CA */
} xds_ca_entry;

typedef struct xds_ca {
  ms_xds_server *server;
  char *cert_path;
  char *key_path;
  xds_watch watch; /* the directories of the two files */
  uv_timer_t retire_timer;
  int open_handles;
  int64_t overlap_seconds;
  xds_ca_entry current;
  xds_ca_entry *retiring; /* older CAs still in the bundle */
  size_t retiring_count;
  xds_resource bundle; /* the "ROOTCA" Secret */
  char *bundle_pem;    /* what it holds: the trust anchors, current first */
  uint64_t rotations;
  char last_error[512]; /* of the last reload that failed, "" if none */
} xds_ca;

int xds_ca_init(xds_ca *ca, ms_xds_server *server, uv_loop_t *loop, const char *cert_path,
                const char *key_path, int64_t overlap_seconds, uint32_t debounce_ms, char *err,
                size_t err_len);
void xds_ca_close(xds_ca *ca);
void xds_ca_cleanup(xds_ca *ca);
/* xds_ca_reload reads the files again; a new CA starts a rotation. */
void xds_ca_reload(xds_ca *ca);
/* xds_ca_issue makes a certificate for `spiffe_id` good for `ttl_seconds`,
 * signed by the current CA. Returns 0 with the outputs owned by the caller
 * (the chain PEM holds the issuer's chain when the CA is an intermediate), or
 * -1 with `err`. */
int xds_ca_issue(xds_ca *ca, const char *spiffe_id, int64_t ttl_seconds, X509 **out_cert,
                 EVP_PKEY **out_key, char **out_chain_pem, char *err, size_t err_len);
void xds_ca_status(const xds_ca *ca, void *cjson_object);

/* A certificate signed for a caller's key, with what goes with it. */
typedef struct xds_issued {
  X509 *cert;
  char **pems; /* the leaf, each intermediate, then the trust bundle (one PEM string) */
  size_t pem_count;
} xds_issued;

/* xds_ca_issue_for_key is xds_ca_issue for a key the caller made (a CSR's
 * public key): the certificate certifies `public_key` (borrowed) and no key
 * is made. Returns 0 with *out filled (released with xds_issued_cleanup), or
 * -1 with `err`. */
int xds_ca_issue_for_key(xds_ca *ca, const char *spiffe_id, EVP_PKEY *public_key,
                         int64_t ttl_seconds, xds_issued *out, char *err, size_t err_len);
/* xds_issued_cleanup frees what `issued` holds; accepts a zeroed one. */
void xds_issued_cleanup(xds_issued *issued);

/* ---- the serving certificate (server_tls.c) ------------------------------------- */

/* Whose serving certificate. */
typedef enum xds_serving_kind {
  XDS_SERVING_ADS,     /* --tls-cert, --tls-key, --client-ca: the gRPC server's */
  XDS_SERVING_WEBHOOK, /* --webhook-cert, --webhook-key (default: the ADS pair): no client CA */
} xds_serving_kind;

/* The server's own certificate and key and the client CAs, as the SSL_CTX
 * new connections get. */
typedef struct xds_serving {
  ms_xds_server *server;
  xds_serving_kind kind;
  const char *what; /* the prefix of its log lines: "tls", "webhook tls" */
  const char *cert_file, *key_file, *client_ca_file; /* borrowed from the options */
  const char *cert_flag, *key_flag;                  /* how sentences name them */
  xds_watch watch;                                   /* the directories of the files */
  SSL_CTX *ctx;               /* for new connections; open ones hold their own */
  STACK_OF(X509) *client_cas; /* --client-ca's certificates; NULL for none */
  uint8_t digest[32];         /* of the files' bytes in ctx */
  uint8_t failed_digest[32];  /* of the files last refused: not tried again */
  int64_t loaded_at_ms;
  uint64_t reloads, reload_failures;
  char last_error[512]; /* of the last reload refused, "" once one succeeds */
} xds_serving;

/* xds_serving_init reads the `kind`'s files and builds the context (the
 * chain and key, which must match; for ADS client verification against
 * --client-ca and, with accept_workload_certificates, the workload CA: so
 * the CA first). Returns 0, or -1 with `err`. */
int xds_serving_init(xds_serving *serving, ms_xds_server *server, xds_serving_kind kind, char *err,
                     size_t err_len);
/* xds_serving_watch starts watching the files' directories once the gRPC
 * server is up; each settled change calls xds_serving_reload. */
void xds_serving_watch(xds_serving *serving, uv_loop_t *loop, uint32_t debounce_ms);
/* xds_serving_reload reads the files again: new bytes that build and check
 * become the context of new connections (ms_grpc_server_set_ssl_ctx, or
 * the webhook's xds_webhook_set_ssl_ctx);
 * bytes that fail are refused with a log line, counted, and the context in
 * use stays. The same bytes do nothing. */
void xds_serving_reload(xds_serving *serving);
/* xds_serving_close closes the watch; xds_serving_cleanup frees the rest
 * (accepts a zeroed one). */
void xds_serving_close(xds_serving *serving);
void xds_serving_cleanup(xds_serving *serving);
/* xds_serving_status fills a cJSON object: the files, the certificate in
 * use, loaded_at, reloads, reload_failures, last_error. */
void xds_serving_status(const xds_serving *serving, void *cjson_object);

/* ---- the admission webhook (server_webhook.c, server_review.c) --------------------- */

/* The paths it serves. */
typedef enum xds_webhook_path {
  XDS_WEBHOOK_INJECT,           /* /inject: the pod's annotation decides */
  XDS_WEBHOOK_INJECT_NAMESPACE, /* /inject-namespace: the namespace is labelled for it */
  XDS_WEBHOOK_VALIDATE,         /* /validate: after every mutation */
} xds_webhook_path;

/* What one review came to: one counter each in /status. */
typedef enum xds_review_outcome {
  XDS_REVIEW_BAD_REQUEST,       /* HTTP 400: not a v1 AdmissionReview we can answer */
  XDS_REVIEW_INJECTED,          /* allowed, with the patch */
  XDS_REVIEW_NOT_REQUESTED,     /* allowed, no patch: nothing asks for the sidecar */
  XDS_REVIEW_OPTED_OUT,         /* allowed, no patch: the pod's annotation says false */
  XDS_REVIEW_NAMESPACE_SKIPPED, /* allowed, no patch: kube-system or the control plane's */
  XDS_REVIEW_ALREADY_INJECTED,  /* allowed, no patch: the pod carries the status annotation */
  XDS_REVIEW_REFUSED,           /* allowed: false, ms_inject_patch's sentence */
  XDS_REVIEW_VALID,             /* /validate: allowed */
  XDS_REVIEW_DENIED,            /* /validate: allowed: false */
  XDS_REVIEW_IGNORED,           /* allowed, no patch: not a Pod, or not CREATE */
  XDS_REVIEW_OUTCOME_COUNT,
} xds_review_outcome;

/* xds_review_outcome_text returns a few words for `outcome`. */
const char *xds_review_outcome_text(xds_review_outcome outcome);

/* One review's answer. */
typedef struct xds_review {
  xds_review_outcome outcome;
  int http_status;          /* 200, or 400 for a bad request */
  const char *content_type; /* static */
  char *body;               /* the response body (malloc'd, NUL-terminated) */
  size_t body_len;
  char pod[256];    /* "namespace/name" as sent (not escaped), "-" when not known */
  char reason[640]; /* the sentence of a refusal, a denial or a bad request; "" otherwise */
} xds_review;

/* xds_webhook_review answers the AdmissionReview `body` (not
 * NUL-terminated) sent to `path` with `settings`: no sockets, no state, no
 * log. Returns 0 with *out filled (released with xds_review_cleanup), or
 * -1 when memory ran out (*out then holds nothing to free). */
int xds_webhook_review(const ms_inject_settings *settings, xds_webhook_path path, const char *body,
                       size_t body_len, xds_review *out);
void xds_review_cleanup(xds_review *review);

typedef struct xds_webhook {
  ms_xds_server *server;
  ms_http_server *http; /* NULL once closed */
  uint16_t port;
  xds_serving serving; /* its certificate, reloaded */
  ms_inject_settings settings;
  ms_http_server_limits limits;
  ms_log_limit bad_log; /* bad requests: a line a second */
  uint64_t reviews;     /* AdmissionReviews answered (bad requests included) */
  uint64_t outcomes[XDS_REVIEW_OUTCOME_COUNT];
  uint64_t body_too_large, requests_refused, wrong_method, wrong_type, not_found;
  uint64_t timeouts, idle_closed, evicted, tls_failures;
} xds_webhook;

/* xds_webhook_start serves the webhook on options.webhook_address with its
 * own serving certificate. Returns 0, or -1 with `err`. */
int xds_webhook_start(xds_webhook *webhook, ms_xds_server *server, char *err, size_t err_len);
/* xds_webhook_set_ssl_ctx gives new webhook connections `ctx` (reloads). */
void xds_webhook_set_ssl_ctx(ms_xds_server *server, SSL_CTX *ctx);
/* xds_webhook_close stops listening and watching; xds_webhook_cleanup
 * frees the rest once the handles closed. */
void xds_webhook_close(xds_webhook *webhook);
void xds_webhook_cleanup(xds_webhook *webhook);
/* xds_webhook_status fills /status's "webhook" object. */
void xds_webhook_status(const xds_webhook *webhook, void *cjson_object);

/* xds_path_is: the request target, up to any query, is `path`. */
bool xds_path_is(const ms_http_request *request, const char *path);
/* xds_parse_ip_port reads "1.2.3.4:port" or "[v6]:port" (port 0: any free
 * one). Returns 0 or -1. */
int xds_parse_ip_port(const char *text, struct sockaddr_storage *out);

/* ---- who is calling (server_auth.c) -------------------------------------------- */

typedef enum xds_proof {
  XDS_PROOF_CERTIFICATE, /* a bootstrap client certificate's spiffe:// URI SAN */
  XDS_PROOF_TOKEN,       /* a Kubernetes service-account token (authorization: Bearer) */
} xds_proof;

/* The identity a caller proved. */
typedef struct xds_identity {
  xds_proof proof;
  char spiffe_id[512]; /* spiffe://TD/ns/NS/sa/SA */
  char namespace_name[254];
  char service_account[254];
  char pod[254]; /* from a token's kubernetes.io claims; "" otherwise */
} xds_identity;

/* xds_auth_identify establishes who made `call`: a bearer token in its
 * "authorization" metadata, verified against the key set (server_jwks.c),
 * wins; otherwise the connection's client certificate, whose single
 * spiffe:// URI SAN must be in the trust domain. Returns MS_GRPC_OK with
 * *out filled, or MS_GRPC_UNAUTHENTICATED with the reason in `err` (no
 * proof, a token that does not verify, a certificate with no or several
 * SPIFFE IDs or one of another trust domain). Never logs the token. */
int xds_auth_identify(ms_xds_server *server, ms_grpc_server_call *call, xds_identity *out,
                      char *err, size_t err_len);

/* xds_proof_name returns "bootstrap certificate" or "service-account token". */
const char *xds_proof_name(xds_proof proof);

/* xds_server_accepts_tokens: a token key set source is configured. */
bool xds_server_accepts_tokens(const ms_xds_server *server);

/* xds_spiffe_segment_ok: a SPIFFE path segment of letters, digits, '.', '-',
 * '_' (1..253 bytes, not "." or ".."). */
bool xds_spiffe_segment_ok(const char *text, size_t len);

/* xds_identity_init fills `out` with spiffe://TD/ns/NS/sa/SA. Returns 0, or
 * -1 with `err` (a segment that is empty or has other characters). */
int xds_identity_init(xds_identity *out, xds_proof proof, const char *trust_domain,
                      const char *namespace_name, size_t namespace_len, const char *service_account,
                      size_t service_account_len, char *err, size_t err_len);

/* What a node says about itself, from node.id and node.metadata (see
 * docs/xds-server.md); "" where it claims nothing. */
typedef struct xds_node_claims {
  char namespace_name[254];
  char service_account[254];
} xds_node_claims;

/* xds_node_claims_parse reads the claims of a node: node.id as
 * "SERVICE_ACCOUNT.NAMESPACE" or Istio's "sidecar~IP~POD.NAMESPACE~DOMAIN"
 * (a bare name claims nothing), overridden by the metadata strings NAMESPACE
 * and SERVICE_ACCOUNT (either may be NULL). Returns 0, or -1 with `err` (no
 * node.id, a claim with characters a SPIFFE ID cannot hold). */
int xds_node_claims_parse(const char *node_id, const char *metadata_namespace,
                          const char *metadata_service_account, xds_node_claims *out, char *err,
                          size_t err_len);

/* xds_node_claims_check returns 0 when every claim agrees with `identity`,
 * or -1 with `err` naming both. */
int xds_node_claims_check(const xds_node_claims *claims, const xds_identity *identity, char *err,
                          size_t err_len);

/* ---- the token key set (server_jwks.c) ---------------------------------------- */

typedef struct ms_jwks ms_jwks;
typedef struct ms_jwt_expect ms_jwt_expect;
typedef struct ms_https_get ms_https_get;

/* What one source (the file, the URL) last gave. */
typedef struct xds_jwks_source {
  char *document; /* the last good JWKS text, NULL before one */
  size_t document_len;
  size_t key_count;        /* usable keys in it */
  int64_t loaded_at_ms;    /* when its keys last changed */
  int64_t refreshed_at_ms; /* the last read or fetch that succeeded */
  int64_t attempted_at_ms; /* the last read or fetch */
  uint64_t attempts, failures;
  char last_error[512]; /* of the last attempt, "" when it succeeded */
} xds_jwks_source;

typedef struct xds_jwks {
  ms_xds_server *server;
  uv_loop_t *loop;
  char *file_path;  /* --jwks-file, or NULL */
  char *url;        /* --jwks-url (resolved when "kubernetes"), or NULL */
  char *ca_path;    /* verifies the URL's server */
  char *token_path; /* xds-server's own token for the URL, or NULL */
  int64_t refresh_ms;
  uint64_t fetch_timeout_ms; /* the whole fetch (10 s; tests shorten it) */
  xds_watch watch;           /* the file's directory */
  uv_timer_t fetch_timer;
  int open_handles;
  ms_https_get *fetch; /* in flight, or NULL */
  int64_t next_fetch_ms;
  int64_t retry_ms;   /* the delay after the next failure: 10 s, doubling */
  int64_t soon_at_ms; /* when xds_jwks_refresh_soon last fetched */
  xds_jwks_source file, remote;
  ms_jwks *current; /* the union of the sources' keys; NULL before any */
  int64_t current_since_ms;
} xds_jwks;

/* xds_jwks_init loads --jwks-file (which must parse: -1 with `err`
 * otherwise) and watches its directory, and starts fetching --jwks-url
 * (asynchronously: until a fetch succeeds there may be no key set). Returns 0
 * or -1 with `err` (a URL that is not https, a missing CA, a file that does
 * not load). */
int xds_jwks_init(xds_jwks *jwks, ms_xds_server *server, uv_loop_t *loop,
                  const ms_xds_server_options *options, char *err, size_t err_len);
/* xds_jwks_close stops watching and fetching; xds_jwks_cleanup frees the
 * rest once the handles are closed (server.c counts them). */
void xds_jwks_close(xds_jwks *jwks);
void xds_jwks_cleanup(xds_jwks *jwks);

/* xds_jwks_current returns the key set that verifies tokens (the union of
 * the file's and the URL's keys), or NULL when none is loaded yet. Borrowed:
 * valid until control returns to the loop. */
const ms_jwks *xds_jwks_current(const xds_jwks *jwks);

/* xds_jwks_expect fills what a token must show: --token-issuer,
 * --token-audience, the skew, and the time now. The strings are borrowed
 * from the server. */
void xds_jwks_expect(const xds_jwks *jwks, ms_jwt_expect *out);

/* xds_jwks_why_none writes why there is no key set (for the UNAUTHENTICATED
 * message when xds_jwks_current is NULL): not fetched yet, or the last
 * error. */
void xds_jwks_why_none(const xds_jwks *jwks, char *out, size_t out_len);

/* xds_jwks_refresh_soon asks for the URL to be fetched now, because a token
 * named a key ("kid") the set does not hold: the API server may have rotated
 * its signing key. At most once per XDS_JWKS_SOON_INTERVAL_MS (a caller
 * cannot make the server hammer the API server). Returns true when a fetch
 * is started or already in flight, false when there is no URL or the
 * previous one was too recent. */
#define XDS_JWKS_SOON_INTERVAL_MS 30000
bool xds_jwks_refresh_soon(xds_jwks *jwks);

/* xds_jwks_status fills a cJSON object: the sources, key count, kids,
 * loaded_at, the last refresh and error of each. */
void xds_jwks_status(const xds_jwks *jwks, void *cjson_object);

/* ---- token buckets per identity (server_rate.c) ---------------------------------- */

typedef struct xds_rate_entry xds_rate_entry;

/* One token bucket per key: `per_minute` tokens a minute, at most `burst`
 * held. A key whose bucket has refilled is forgotten (it holds nothing a new
 * bucket would not), so memory follows the keys active in the last
 * burst/per_minute minutes, and never exceeds `max_entries` of them. */
typedef struct xds_rate_table {
  double per_minute; /* 0: no limit */
  double burst;
  size_t max_entries;
  xds_rate_entry **buckets;
  size_t bucket_count;
  size_t entry_count;
  int64_t last_sweep_ms;
} xds_rate_table;

typedef enum xds_rate_result {
  XDS_RATE_OK,      /* a token was taken */
  XDS_RATE_LIMITED, /* the key's bucket is empty */
  XDS_RATE_FULL,    /* a new key, and max_entries keys are active */
} xds_rate_result;

/* xds_rate_init sets up an empty table; `per_minute` 0 turns limiting off.
 * Returns 0 or -1 (out of memory). */
int xds_rate_init(xds_rate_table *table, double per_minute, double burst, size_t max_entries);
void xds_rate_cleanup(xds_rate_table *table);
/* xds_rate_take takes one token from `key`'s bucket at `now_ms` (any
 * monotonic clock). Out of memory for a new key counts as XDS_RATE_FULL. */
xds_rate_result xds_rate_take(xds_rate_table *table, const char *key, int64_t now_ms);

/* ---- Istio's CA API (server_csr.c) --------------------------------------------- */

/* Why a CreateCertificate was refused, for /status. */
typedef enum xds_csr_refusal {
  XDS_CSR_UNAUTHENTICATED, /* no proof of identity, or one that did not verify */
  XDS_CSR_BAD_REQUEST,     /* not one IstioCertificateRequest, or a CSR that does not parse */
  XDS_CSR_NOT_YOURS,       /* the CSR asks for more or other than the proven identity */
  XDS_CSR_RATE_LIMITED,
  XDS_CSR_INTERNAL, /* signing failed */
  XDS_CSR_REFUSAL_COUNT
} xds_csr_refusal;

/* CreateCertificate calls per SPIFFE ID and minute unless told otherwise,
 * and how many identities the limiter tracks at most (about 100 bytes
 * each). */
#define XDS_CSR_DEFAULT_RATE_LIMIT 10
#define XDS_CSR_MAX_TRACKED_IDENTITIES 65536

typedef struct xds_csr_stats {
  uint64_t calls;
  uint64_t signed_count;
  uint64_t refused[XDS_CSR_REFUSAL_COUNT];
} xds_csr_stats;

/* xds_csr_call_accept takes a CreateCertificate call (from on_call): sets its
 * handler, reads its one request, and answers it. Returns MS_GRPC_OK (the
 * call is now handled here) or a status for on_call to answer with. */
int xds_csr_call_accept(ms_xds_server *server, ms_grpc_server_call *call, const ms_grpc_peer *peer);
/* xds_csr_request_decode reads a CreateCertificate message: an
 * IstioCertificateRequest and the CSR in it (ms_csr_parse). Returns 0 with
 * *out (released with ms_csr_info_cleanup) and *out_validity (the
 * validity_duration asked for, in seconds, before the CA's bounds), or -1
 * with the sentence for the INVALID_ARGUMENT status in `err`. */
int xds_csr_request_decode(const uint8_t *bytes, size_t len, ms_csr_info *out,
                           int64_t *out_validity, char *err, size_t err_len);
/* xds_csr_status adds the "ca_api" object's fields to a cJSON object. */
void xds_csr_status(const ms_xds_server *server, void *cjson_object);

/* ---- nodes (server_node.c) ----------------------------------------------------- */

typedef struct xds_stream xds_stream;

/* A node, by node.id; shared by its streams; owns its certificate. */
typedef struct xds_node {
  ms_xds_server *server;
  char *id;
  char *log_id; /* `id` escaped for log lines (ms_log_escape), as a client may send anything */
  char *spiffe_id;
  struct xds_node *hash_next;
  xds_stream *streams; /* linked through xds_stream.node_next */
  size_t stream_count;
  uv_timer_t rotate_timer;
  bool timer_started;
  bool closing;

  bool has_certificate;
  xds_resource certificate; /* the "default" Secret: chain and key (wiped when freed) */
  char serial_hex[80];
  int64_t not_after;
  int64_t issued_at;
  int64_t rotates_at;
  uint64_t issued_count;
  char issuer[256];
  char last_error[512];
} xds_node;

/* xds_node_acquire attaches `stream` to the node `id`, made when new for
 * the proven `spiffe_id`. A node belongs to the identity of its first
 * stream: a stream of another identity naming the same node id is refused.
 * Returns 0 with *out_node, -1 with `err` for that refusal, or -2 when
 * memory ran out. */
int xds_node_acquire(ms_xds_server *server, const char *id, const char *spiffe_id,
                     xds_stream *stream, xds_node **out_node, char *err, size_t err_len);
/* xds_node_release detaches `stream`; the last one frees the node. */
void xds_node_release(xds_node *node, xds_stream *stream);
/* xds_node_certificate returns the node's "default" Secret, issuing one when
 * it has none; NULL when issuing failed (logged). */
const xds_resource *xds_node_certificate(xds_node *node);
void xds_node_status(const xds_node *node, void *cjson_object);

/* ---- streams (server_ads.c) ----------------------------------------------------- */

struct xds_stream {
  ms_xds_server *server;
  ms_grpc_server_call *call;
  xds_stream *next, *prev; /* the server's list */
  xds_stream *node_next;   /* the node's list */
  xds_node *node;          /* set by the first request */
  char *node_cluster;
  char peer_address[64];
  char bootstrap_spiffe_id[256]; /* the first URI SAN of the client certificate */
  xds_identity identity;         /* what the caller proved (server_auth.c) */
  int64_t connected_at_ms;
  uint64_t nonce_counter;
  uint64_t requests, responses;
  xds_type_state types[XDS_TYPE_COUNT];
};

extern const ms_grpc_server_call_callbacks xds_stream_callbacks;

/* xds_stream_new makes the stream for an accepted call whose caller proved
 * `identity` (copied). NULL: no memory. */
xds_stream *xds_stream_new(ms_xds_server *server, ms_grpc_server_call *call,
                           const ms_grpc_peer *peer, const xds_identity *identity);
/* xds_stream_push answers the stream's subscription to `type` when what it
 * would get differs from what it was last sent. */
void xds_stream_push(xds_stream *stream, xds_type type);
void xds_stream_status(const xds_stream *stream, void *cjson_object);

/* ---- the server (server.c) ------------------------------------------------------- */

typedef struct xds_status_server xds_status_server;

struct ms_xds_server {
  uv_loop_t *loop;
  ms_xds_server_options options; /* strings owned */
  char *trust_domain;
  int64_t cert_ttl_seconds;
  int64_t started_at_ms;
  xds_serving serving; /* the serving certificate, the client CAs, their SSL_CTX */
  ms_grpc_server *grpc;
  uint16_t port;
  xds_files files;
  bool has_files;
  xds_ca ca;
  xds_jwks jwks;
  bool has_jwks;
  xds_status_server *status; /* --status-address: /status, /healthz, /readyz */
  uint16_t status_port;
  xds_status_server *health; /* --health-address: /healthz, /readyz only */
  uint16_t health_port;
  xds_webhook webhook; /* --webhook-address */
  bool has_webhook;
  xds_stream *streams;
  uint64_t requests_refused; /* messages that are not DiscoveryRequests we accept (pb_depth.h) */
  size_t stream_count;
  xds_node **node_table;
  size_t node_table_size;
  size_t node_count;
  xds_rate_table csr_rate; /* CreateCertificate calls per SPIFFE ID */
  xds_csr_stats csr_stats;
  bool closing;
  bool draining;    /* ms_xds_server_drain: /readyz fails, everything else goes on */
  int open_handles; /* of files, ca and status: freed when 0 */
};

/* xds_server_push_type pushes `type` to every stream subscribed to it. */
void xds_server_push_type(ms_xds_server *server, xds_type type);
/* xds_server_client_trust_changed rebuilds the store that verifies client
 * certificates: --client-ca's CAs, and with accept_workload_certificates
 * the workload CA and the CAs still in their overlap. Called when the CA
 * rotates and when an old CA retires: a retired CA authenticates no new
 * connection. */
void xds_server_client_trust_changed(ms_xds_server *server);
/* xds_server_handle_closed: every handle of files, ca and status reports its
 * close here; the server is freed after the last. */
void xds_server_handle_closed(ms_xds_server *server);

/* ---- status (server_status.c) ---------------------------------------------------- */

/* xds_status_start serves GET /healthz and /readyz on `address`, and with
 * `full` GET /status too. Returns 0 with *out and *out_port, or -1 with
 * `err`. */
int xds_status_start(ms_xds_server *server, const char *address, bool full, xds_status_server **out,
                     uint16_t *out_port, char *err, size_t err_len);
void xds_status_close(xds_status_server *status);

#endif
