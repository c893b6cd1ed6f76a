/* config.h: the sidecar's JSON configuration, parsed and validated into an
 * immutable structure before any connection sees it.
 *
 * Every default is filled in here, so the rest of the program never asks
 * "was this set?". Every problem names its JSON path ("clusters[0].tls.
 * verfiy_depth: unknown key; did you mean \"verify_depth\"?"), and loading
 * reports all problems at once, not just the first. The README documents
 * every key with its default; keep the two in step. */
#ifndef MS_CONFIG_H
#define MS_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "certs/certs.h"
#include "common/net.h"

typedef enum ms_lb_policy {
  MS_LB_ROUND_ROBIN = 0,   /* smooth weighted round robin, like nginx */
  MS_LB_LEAST_CONNECTIONS, /* fewest active connections, weighted; ties by round robin */
  MS_LB_RANDOM,            /* weighted random */
} ms_lb_policy;

typedef enum ms_listener_protocol {
  MS_PROTOCOL_TCP = 0,
  MS_PROTOCOL_HTTP, /* HTTP/1.1, proxied over pooled keep-alive mTLS connections */
} ms_listener_protocol;

typedef struct ms_endpoint_config {
  ms_address address;
  uint32_t weight; /* default 1, 1..1000 */
} ms_endpoint_config;

typedef struct ms_outlier_config {
  uint32_t consecutive_failures; /* default 3; 0 turns ejection off */
  uint32_t base_ejection_ms;     /* default 5000; doubles per repeated ejection */
  uint32_t max_ejection_ms;      /* default 300000 */
} ms_outlier_config;

typedef struct ms_cluster_tls_config {
  ms_tls_settings settings;       /* paths made absolute; strings owned by the config */
  char *server_name;              /* NULL: the endpoint's host name */
  bool send_sni;                  /* default true */
  char **match_subject_alt_names; /* "DNS:x", "URI:spiffe://...", "IP:a.b.c.d" */
  size_t match_subject_alt_name_count;
  char **alpn; /* protocol names, as written */
  size_t alpn_count;
  char **protocols; /* as written: "TLSv1.2", "TLSv1.3" */
  size_t protocol_count;
  char **curves;
  size_t curve_count;
  /* Material the control plane sends by SDS, by secret name: the client
   * certificate (with its key) and the trust bundle. The server looks them
   * up in its secret set (sidecar/tls/secrets.h) when it builds the context;
   * NULL: the material is in `settings`. */
  char *certificate_secret;
  char *validation_secret;
} ms_cluster_tls_config;

/* How a cluster keeps idle upstream connections for HTTP listeners
 * ("http_pool"), per endpoint and per worker. */
typedef struct ms_http_pool_config {
  uint32_t max_idle;        /* "max_idle", default 256 (nginx keepalive); 0: no pooling */
  uint32_t idle_timeout_ms; /* default 60000 (nginx keepalive_timeout); at least 1 */
  uint32_t max_requests;    /* default 1000 (nginx keepalive_requests); 0: no limit */
  uint32_t max_lifetime_ms; /* default 3600000 (nginx keepalive_time 1 h); 0: no limit */
} ms_http_pool_config;

/* How a cluster retries HTTP requests ("retries"). */
typedef struct ms_http_retry_config {
  uint32_t max_retries;           /* "max_retries", default 1; 0..100 */
  uint32_t budget_percent;        /* default 20 (Envoy's retry budget): retries in flight are at
                                     most this share of active requests; 0..100 */
  uint32_t min_retry_concurrency; /* default 3 (Envoy's): retries always allowed in flight,
                                     whatever the budget */
} ms_http_retry_config;

typedef struct ms_cluster_config {
  char *name;
  ms_endpoint_config *endpoints;
  size_t endpoint_count;
  ms_lb_policy lb_policy;        /* default round_robin */
  uint32_t connect_timeout_ms;   /* default 5000 */
  uint32_t handshake_timeout_ms; /* default 10000 */
  uint32_t max_connect_attempts; /* default 3: endpoints tried per client connection */
  uint32_t dns_refresh_ms;       /* default 30000 */
  ms_outlier_config outlier_detection;
  ms_cluster_tls_config tls; /* "tls" is required: this is an mTLS sidecar */
  /* HTTP settings: allowed on every cluster, used only by HTTP listeners. */
  char *host_header; /* NULL (default): the client's Host passes through; else sent as Host,
                        like nginx proxy_set_header Host */
  ms_http_pool_config http_pool;
  ms_http_retry_config retries;
} ms_cluster_config;

/* One entry of an HTTP listener's "routes": a request whose Host and path
 * match goes to `cluster`. */
typedef struct ms_http_route {
  char *host;           /* NULL: any; exact match, case-insensitive, the request's port ignored */
  char *path_prefix;    /* NULL: any; starts with "/" */
  char *cluster;        /* names a cluster of this config */
  size_t cluster_index; /* index into ms_config.clusters */
} ms_http_route;

/* A listener's "http" object. Always filled with its defaults, even when
 * the key is absent or the listener is "tcp" (where it is unused). */
typedef struct ms_http_listener_config {
  uint32_t max_request_headers_bytes; /* default 65536 (Envoy's 60 KiB rounded up), 1024..1048576;
                                         above: 431 */
  uint64_t max_request_body_bytes;    /* default 0: no limit (bodies stream); above: 413 */
  uint32_t request_timeout_ms;        /* default 60000 (nginx proxy_read_timeout): no response byte
                                         for this long: 504; 0: none */
  uint32_t client_idle_timeout_ms;    /* default 75000 (nginx keepalive_timeout): an idle keep-alive
                                         client connection is closed; at least 1 */
  uint32_t request_headers_timeout_ms; /* default 10000 (Envoy's request_headers_timeout in its edge
                                          best practices): a head not whole this long after its
                                          first byte (a new connection's: its accept) gets 408;
                                          0: none */
  bool add_x_forwarded_for;            /* default true; also sets X-Forwarded-Proto: http */
  char *access_log;                    /* NULL (default): off; an absolute path, or "-": stdout */
  ms_http_route *routes;               /* first match wins; no match: the listener's cluster */
  bool no_route_404;                   /* "no_route": "404": no match is answered 404 instead
                                        * (default "cluster": the listener's cluster) */
  size_t route_count;
} ms_http_listener_config;

/* A listener's max_connections when the configuration (or the control
 * plane's Listener, which has no such field) does not say. */
#define MS_DEFAULT_MAX_CONNECTIONS 10000

typedef struct ms_listener_config {
  char *name;
  ms_address address;            /* must be an IP literal */
  ms_listener_protocol protocol; /* default tcp */
  char *cluster;                 /* names a cluster of this config */
  size_t cluster_index;          /* index into ms_config.clusters */
  uint32_t idle_timeout_ms;      /* default 3600000 (1 h, Envoy's TcpProxy default); 0: none */
  uint32_t max_connections;      /* default MS_DEFAULT_MAX_CONNECTIONS: client connections
                                    open at once on this listener, all workers together; more
                                    are accepted and closed at once (downstream_cx_overflow) */
  ms_http_listener_config http;  /* "http": only with protocol "http" */
} ms_listener_config;

/* The control plane, when "xds" is set: the sidecar subscribes over ADS to
 * clusters, endpoints, listeners and secrets, which join the static ones. */
typedef struct ms_xds_bootstrap {
  bool enabled;
  ms_address address;        /* "host:port" of the control plane */
  ms_cluster_tls_config tls; /* our bootstrap certificate, its CA, its name */
  char *node_id;             /* required: who we are to the control plane */
  char *node_cluster;        /* default: node_id */
  char **metadata_keys;      /* node.metadata, string values */
  char **metadata_values;
  size_t metadata_count;
  uint32_t initial_fetch_timeout_ms; /* default 15000, Envoy's: a cluster waits this long for
                                        its endpoints and secrets */
  char *backup_path;                 /* the last good dynamic configuration is kept here and
                                        loaded at start when the control plane is unreachable;
                                        NULL: none */
} ms_xds_bootstrap;

/* The identity agent, when "identity" is set (sidecar/identity/identity.h): the
 * sidecar makes its own key, asks a CA for its certificate over Istio's CA
 * API, renews it, and answers the secret names below with it. */
typedef struct ms_identity_config {
  bool enabled;
  ms_address ca_address;          /* "ca_address"; text NULL: xds.address */
  bool tls_set;                   /* "tls" given; else xds.tls */
  ms_cluster_tls_config tls;      /* how to reach and verify the CA */
  char *token_file;               /* projected service-account token; NULL: none */
  char *spiffe_id;                /* NULL: from the bootstrap certificate or the token */
  char *trust_domain;             /* default "cluster.local" */
  uint32_t requested_ttl_seconds; /* "requested_ttl_seconds", default 86400 (Istio's) */
  char *trust_bundle_file;        /* NULL: the roots the CA returns */
  char *certificate_secret;       /* default "default" */
  char *trust_bundle_secret;      /* default "ROOTCA" */
} ms_identity_config;

/* "certificates": how the certificates in use are watched for their end
 * (sidecar/control/cert_expiry.h). */
typedef struct ms_certificates_config {
  uint32_t warn_lifetime_percent;   /* default 80, 1..100: a certificate still in use past this
                                       share of its lifetime is logged (a warning) and shown as
                                       "expiring" */
  uint32_t expired_log_interval_ms; /* default 3600000: an expired certificate still in use is
                                       logged (an error) when it expires, then this often */
  bool ready_fails_on_expired;      /* default false: /ready answers 503 while a certificate the
                                       sidecar presents is expired */
} ms_certificates_config;

typedef struct ms_config {
  atomic_int refs;           /* shared by snapshots: see ms_config_up_ref */
  char *path;                /* absolute path of the file */
  char *directory;           /* its folder: relative paths resolve here */
  ms_address admin_address;  /* default 127.0.0.1:15000 */
  uint32_t workers;          /* default 0 in the file: one per core; resolved here */
  uint32_t drain_timeout_ms; /* default 20000: SIGTERM waits this long for connections */
  bool watch_certificates;   /* default true: reload when cert/key/CA files change */
  ms_listener_config *listeners;
  size_t listener_count;
  ms_cluster_config *clusters;
  size_t cluster_count;
  ms_xds_bootstrap xds;
  ms_identity_config identity;
  ms_certificates_config certificates;
  char *json; /* the file's text, for /config_dump (keys redacted there) */
} ms_config;

/* ms_identity_ca_address returns the CA's address: identity.ca_address, else
 * xds.address (NULL when neither is set). */
const ms_address *ms_identity_ca_address(const ms_config *config);

/* ms_identity_tls returns how to reach the CA: identity.tls, else xds.tls. */
const ms_cluster_tls_config *ms_identity_tls(const ms_config *config);

/* ms_identity_owns_secret: `name` is one of the identity's local secrets
 * (false when the identity is off or name is NULL). */
bool ms_identity_owns_secret(const ms_config *config, const char *name);

/* A list of problems, each a line "json.path: what is wrong". */
typedef struct ms_config_errors {
  char **lines;
  size_t count;
} ms_config_errors;

/* ms_config_set_node_id makes every configuration loaded afterwards take
 * `node_id` as its xds.node.id, whatever the file says (and without one in
 * the file): the sidecar's --node-id, Envoy's --service-node, by which an
 * injected pod names itself (its template cannot). The copy is kept for the
 * process's life; NULL goes back to the file's. Main thread, before the
 * first load. */
void ms_config_set_node_id(const char *node_id);

/* ms_config_load reads and validates the JSON file at `path`. On success
 * returns 0 and the caller owns *out_config (free with ms_config_free). On
 * failure returns -1, leaves *out_config untouched and fills `errors` with
 * every problem found (the caller frees it with ms_config_errors_cleanup). */
int ms_config_load(const char *path, ms_config **out_config, ms_config_errors *errors);

/* ms_config_parse is ms_config_load on text already read; `path` is used to
 * resolve relative paths and in messages. */
int ms_config_parse(const char *json, const char *path, ms_config **out_config,
                    ms_config_errors *errors);

/* ms_config_up_ref takes one more reference and returns `config`. */
ms_config *ms_config_up_ref(ms_config *config);

/* ms_config_free drops a reference; the last one releases the config.
 * Safe from any thread. Accepts NULL. */
void ms_config_free(ms_config *config);

void ms_config_errors_cleanup(ms_config_errors *errors);

/* ms_config_errors_add appends one formatted line to `errors` (control
 * characters written as \xNN: one problem, one line). Returns 0, or -1
 * when memory ran out. */
int ms_config_errors_add(ms_config_errors *errors, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* ms_lb_policy_name returns "round_robin", "least_connections" or "random". */
const char *ms_lb_policy_name(ms_lb_policy policy);

#endif
