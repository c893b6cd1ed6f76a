/* server_internal.h: the parts of xds-server, shared between its files.
 *   server.c         lifetime, options, the gRPC server, pushing to streams
 *   server_ads.c     one ADS stream: requests, the state machine, responses
 *   server_node.c    nodes: identity (SPIFFE ID), their certificate, rotation
 *   server_ca.c      the workload CA: loading, watching, the trust bundle
 *   server_files.c   the configuration directory: loading, watching
 *   server_status.c  GET /status over plain HTTP
 *   server_state.c   the xDS state machine per stream and type (pure)
 *   server_auth.c    who is calling: the identity a caller proves
 *   server_jwks.c    the key set that verifies service-account tokens
 *   server_csr.c     Istio's CA API: CreateCertificate
 * Not a public interface. */
#ifndef MS_XDS_SERVER_INTERNAL_H
#define MS_XDS_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>
#include <uv.h>

#include "xds/grpc.h"
#include "xds/server.h"
#include "xds/server_state.h"

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

/* Resources of one type, sorted by name. */
typedef struct xds_resource_set {
  xds_resource *items;
  size_t count;
  char version[XDS_VERSION_LEN]; /* digest of the whole set, for /status */
} xds_resource_set;

/* xds_resource_set_find returns the resource called `name` or NULL. */
const xds_resource *xds_resource_set_find(const xds_resource_set *set, const char *name);

int64_t xds_now_ms(void);

/* ---- the configuration directory (server_files.c) ----------------------------- */

typedef struct xds_file xds_file;

typedef struct xds_files {
  ms_xds_server *server;
  char *dir;
  uv_fs_event_t watcher;
  uv_timer_t debounce;
  uint32_t debounce_ms;
  int open_handles;
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
  uv_fs_event_t watchers[2]; /* the directories of the two files */
  int watcher_count;
  uv_timer_t debounce;
  uv_timer_t retire_timer;
  uint32_t debounce_ms;
  int open_handles;
  int64_t overlap_seconds;
  xds_ca_entry current;
  xds_ca_entry *retiring; /* older CAs still in the bundle */
  size_t retiring_count;
  xds_resource bundle; /* the "ROOTCA" Secret */
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

/* xds_node_spiffe_id derives the SPIFFE ID from the node's identity (see
 * docs/xds-server.md): spiffe://TD/ns/NAMESPACE/sa/SERVICE_ACCOUNT. Returns
 * 0, or -1 with `err` (an empty id, a character not allowed in a SPIFFE
 * path). `metadata_namespace` / `metadata_service_account` may be NULL. */
int xds_node_spiffe_id(const char *trust_domain, const char *node_id,
                       const char *metadata_namespace, const char *metadata_service_account,
                       char *out, size_t out_len, char *err, size_t err_len);

/* xds_node_acquire returns the node `id` (made when new) with `stream`
 * attached, or NULL when memory ran out. */
xds_node *xds_node_acquire(ms_xds_server *server, const char *id, const char *spiffe_id,
                           xds_stream *stream);
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
  int64_t connected_at_ms;
  uint64_t nonce_counter;
  uint64_t requests, responses;
  xds_type_state types[XDS_TYPE_COUNT];
};

extern const ms_grpc_server_call_callbacks xds_stream_callbacks;

/* xds_stream_new makes the stream for an accepted call. NULL: no memory. */
xds_stream *xds_stream_new(ms_xds_server *server, ms_grpc_server_call *call,
                           const ms_grpc_peer *peer);
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
  SSL_CTX *ssl_ctx;
  bool client_ca_is_workload_ca;
  ms_grpc_server *grpc;
  uint16_t port;
  xds_files files;
  bool has_files;
  xds_ca ca;
  xds_status_server *status;
  uint16_t status_port;
  xds_stream *streams;
  uint64_t requests_refused; /* messages that are not DiscoveryRequests we accept (pb_depth.h) */
  size_t stream_count;
  xds_node **node_table;
  size_t node_table_size;
  size_t node_count;
  bool closing;
  int open_handles; /* of files, ca and status: freed when 0 */
};

/* xds_server_push_type pushes `type` to every stream subscribed to it. */
void xds_server_push_type(ms_xds_server *server, xds_type type);
/* xds_server_trust_ca adds a new CA to the client verification store when
 * the workload CA is the client CA. */
void xds_server_trust_ca(ms_xds_server *server, X509 *ca_cert);
/* xds_server_handle_closed: every handle of files, ca and status reports its
 * close here; the server is freed after the last. */
void xds_server_handle_closed(ms_xds_server *server);

/* ---- status (server_status.c) ---------------------------------------------------- */

int xds_status_start(ms_xds_server *server, const char *address, xds_status_server **out,
                     uint16_t *out_port, char *err, size_t err_len);
void xds_status_close(xds_status_server *status);

#endif
