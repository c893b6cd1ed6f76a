/* server.h: xds-server, the reference control plane, as a library on a libuv
 * loop (xds-server/server_main.c is the command; docs/xds-server.md the manual).
 *
 * It serves Envoy's Aggregated Discovery Service (xDS v3, state of the world)
 * over gRPC over mutual TLS (xds/grpc/grpc.h) to many sidecars:
 *   - clusters (CDS), endpoints (EDS) and listeners (LDS) from a directory of
 *     JSON files it watches (Envoy's resource JSON, xds/proto/json_pb.h);
 *   - secrets (SDS): it is the workload CA. Each node gets its own ECDSA P-256
 *     client certificate with a SPIFFE ID, as the Secret "default", rotated
 *     at 50-70% of its lifetime; the trust bundle is the Secret "ROOTCA". The
 *     CA's files are watched: a new CA signs from then on, and the old one
 *     stays in the bundle for an overlap period.
 * It also serves Istio's CA API (CreateCertificate): a sidecar that made its
 * own key sends a CSR for the SPIFFE ID it proves, and gets it signed.
 * A plain HTTP listener (loopback by default) answers GET /status with JSON,
 * and GET /healthz and /readyz for probes (also on a listener of their own,
 * health_address, which serves nothing else). The serving certificate and
 * client CA are watched and reloaded for new connections.
 * With webhook_address it is also the Kubernetes admission webhook (HTTPS
 * POST /inject, /inject-namespace, /validate; server_webhook.c) that
 * injects the sidecar with inject/'s code, its own serving certificate
 * reloaded the same way.
 * Events are logged one line each on stderr; key material never is.
 *
 * Everything runs on the loop's thread. */
#ifndef MS_XDS_SERVER_H
#define MS_XDS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* The names of the two secrets served over SDS. */
#define MS_XDS_SECRET_CERTIFICATE "default" /* the node's tls_certificate */
#define MS_XDS_SECRET_TRUST_BUNDLE "ROOTCA" /* the CAs' validation_context */

typedef struct ms_xds_server ms_xds_server;

typedef struct ms_xds_server_options {
  const char *listen_address; /* "IP:port" for ADS; port 0 picks one. Required. */
  const char *tls_cert;       /* the server's own certificate chain (PEM file). Required. */
  const char *tls_key;        /* its private key (PEM file). Required. */
  const char *client_ca;      /* CAs that sign sidecars' bootstrap certificates;
                                 NULL: none (tokens only, or the workload CA below) */
  /* Accept certificates this server issued (signed by the workload CA, or by
   * a CA still in its rotation overlap) as bootstrap credentials. Off: a
   * workload certificate proves nothing to the control plane, so one
   * workload's certificate cannot be used to ask for more. */
  bool accept_workload_certificates;
  /* Serve the SDS Secret "default" with a key made here (for Envoy clients
   * that do not send CSRs), for the proven identity only. Off: keys are made
   * by the sidecars, which ask for certificates over Istio's CA API. */
  bool serve_workload_keys;
  const char *ca_cert;        /* the workload CA's certificate (PEM; ECDSA or RSA). Required. */
  const char *ca_key;         /* its private key. Required. */
  const char *config_dir;     /* JSON resources; NULL: none served */
  const char *trust_domain;   /* SPIFFE trust domain; NULL: "cluster.local" */
  int64_t cert_ttl_seconds;   /* issued certificates' lifetime; 0: 3600 */
  int64_t ca_overlap_seconds; /* an old CA stays in the bundle this long; 0: 2x TTL */
  const char *status_address; /* "IP:port" for GET /status (and /healthz, /readyz); NULL: no
                                 status endpoint */
  const char *health_address; /* "IP:port" for GET /healthz and /readyz only (probes from
                                 outside the pod); NULL: none */
  uint32_t debounce_ms;       /* quiet time after a file event before reloading; 0: 100 */
  /* Kubernetes service-account tokens as a caller's proof (docs/xds-server.md):
   * they verify against the union of the two key sets. */
  const char *jwks_file;        /* a JSON Web Key Set file (watched); NULL: none */
  const char *jwks_url;         /* an https URL serving one, or "kubernetes" (the in-cluster
                                   API server's /openid/v1/jwks); NULL: none */
  const char *jwks_ca;          /* CAs of the URL's server; required unless "kubernetes" */
  const char *jwks_token;       /* a token file sent as Bearer to the URL (re-read at each fetch);
                                   NULL: none, or the pod's own with "kubernetes" */
  int64_t jwks_refresh_seconds; /* fetch the URL this often; 0: 300 */
  const char *token_issuer;     /* the "iss" tokens carry; required with a key set */
  const char *token_audience;   /* an "aud" they must hold; NULL: "mtls-sidecar" */
  int64_t token_skew_seconds;   /* clock skew allowed for exp/nbf/iat; 0: 60 */
  int csr_rate_limit;           /* CreateCertificate calls per SPIFFE ID and minute (and the
                                   burst); 0: 10; negative: no limit */

  /* Limits against clients that hold resources (docs/xds-server.md, "Limits
   * and overload"; ms_grpc_server_options says what happens at each). 0: the
   * default. */
  uint32_t max_connections;            /* 0: 10000 */
  uint32_t max_connections_per_peer;   /* per IP address; 0: 256 */
  uint32_t max_streams_per_connection; /* 0: 100 */
  size_t max_request_bytes;            /* one DiscoveryRequest; 0: 1 MiB */
  size_t max_buffered_bytes;           /* unfinished requests per connection; 0: 16 MiB */
  size_t max_queued_bytes;             /* unsent responses per connection; 0: 16 MiB */

  /* The admission webhook (server_webhook.c; docs/xds-server.md, "The
   * admission webhook"): HTTPS POST /inject, /inject-namespace, /validate
   * with an admission.k8s.io/v1 AdmissionReview. */
  const char *webhook_address;         /* "IP:port"; NULL: no webhook */
  const char *webhook_cert;            /* its certificate chain (PEM, watched); NULL: tls_cert */
  const char *webhook_key;             /* its key; NULL: tls_key (both or neither) */
  const char *inject_image;            /* the sidecar image's repository; NULL: "mtls-sidecar" */
  const char *inject_tag;              /* its tag; NULL: this server's version (MS_VERSION) */
  const char *inject_config_map;       /* the sidecar's bootstrap ConfigMap; NULL:
                                          "mtls-sidecar-config" */
  const char *control_plane_namespace; /* never injected; NULL: "mtls-system" */
  size_t webhook_max_body_bytes;       /* one AdmissionReview; 0: 1 MiB */
  uint32_t webhook_max_connections;    /* 0: 256 */
  uint64_t webhook_request_timeout_ms; /* a whole request (and the handshake); 0: 10 s */
  uint64_t webhook_idle_timeout_ms;    /* a keep-alive connection between reviews; 0: 120 s */
} ms_xds_server_options;

/* The webhook's defaults. */
#define MS_XDS_WEBHOOK_DEFAULT_MAX_BODY_BYTES ((size_t)1 << 20)
#define MS_XDS_WEBHOOK_DEFAULT_MAX_CONNECTIONS 256
#define MS_XDS_WEBHOOK_DEFAULT_REQUEST_TIMEOUT_MS 10000
#define MS_XDS_WEBHOOK_DEFAULT_IDLE_TIMEOUT_MS 120000

/* The default of max_request_bytes: DiscoveryRequests are small (a node, a
 * type URL, names, a version and a nonce). */
#define MS_XDS_DEFAULT_MAX_REQUEST_BYTES ((size_t)1 << 20)

/* ms_xds_server_new loads the certificates, the CA and the configuration
 * directory, starts listening and watching, and returns at once. A JSON file
 * that does not parse is logged and reported in /status, not fatal.
 * `options` and its strings are copied. Returns 0 and sets *out_server
 * (released with ms_xds_server_close), or -1 with one line in `err` a user
 * can act on (a file that cannot be read, a key that does not match its
 * certificate, an address in use, ...). */
int ms_xds_server_new(uv_loop_t *loop, const ms_xds_server_options *options,
                      ms_xds_server **out_server, char *err, size_t err_len);

/* ms_xds_server_port / ms_xds_server_status_port return the bound ports (0
 * for a status endpoint not configured). */
uint16_t ms_xds_server_port(const ms_xds_server *server);
uint16_t ms_xds_server_status_port(const ms_xds_server *server);

/* ms_xds_server_webhook_port returns the bound port of webhook_address (0
 * for none). */
uint16_t ms_xds_server_webhook_port(const ms_xds_server *server);

/* ms_xds_server_health_port returns the bound port of health_address (0 for
 * none). */
uint16_t ms_xds_server_health_port(const ms_xds_server *server);

/* ms_xds_server_ready_reason says whether the server is ready to serve
 * (GET /readyz): not draining, the workload CA's certificate within its
 * validity, every resource file loaded at least once (a file that never
 * parsed serves nothing), and, with a token key set configured, a key set
 * loaded. Returns 0 when ready (`why` then holds ""), or -1 with the first
 * reason in `why`. */
int ms_xds_server_ready_reason(ms_xds_server *server, char *why, size_t why_len);

/* ms_xds_server_drain marks the server as draining: /readyz answers 503,
 * and everything else goes on (streams, new connections, signing) until
 * ms_xds_server_close. For a delay between SIGTERM and the close, while
 * the endpoints that still route to this replica are updated. */
void ms_xds_server_drain(ms_xds_server *server);

/* ms_xds_server_status_json returns the /status document (newly allocated;
 * the caller frees it), or NULL when memory ran out. */
char *ms_xds_server_status_json(ms_xds_server *server);

/* ms_xds_server_stream_count returns the number of open ADS streams. */
size_t ms_xds_server_stream_count(const ms_xds_server *server);

/* ms_xds_server_close stops listening and watching and ends every stream
 * (the server's loop must run once more to free the memory). Accepts NULL. */
void ms_xds_server_close(ms_xds_server *server);

#endif
