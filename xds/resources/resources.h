/* resources.h: Envoy xDS v3 resources (Cluster, ClusterLoadAssignment,
 * Secret, Listener with a TcpProxy or an HttpConnectionManager filter),
 * decoded from their protobuf bytes and checked against what this sidecar
 * supports, into plain C structs.
 *
 * The ADS client receives a DiscoveryResponse, hands each resource (a
 * google.protobuf.Any) to ms_xds_resource_decode_any, and NACKs the response
 * with the error text when one fails, keeping its last good configuration.
 * The structs are this module's own: turning them into a configuration,
 * fetching the secrets an SDS reference names and reading the files a
 * filename names are the business of the module that uses them (the
 * sidecar's xDS side), not this one's.
 *
 * Rules:
 * - Fields outside our subset (xds/proto) are ignored, never an error, except
 *   where ignoring one would change what the resource means: a custom
 *   cluster_type, a pipe address, TcpProxy weighted_clusters, a safe_regex
 *   route match, an HttpConnectionManager's rds. Those, and every value
 *   inside our subset that we cannot honour, are refused with a sentence
 *   naming the resource and the field:
 *     cluster "orders": transport_socket.typed_config: expected
 *     type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.
 *     UpstreamTlsContext, got type.googleapis.com/...RawBuffer
 * - Defaults are Envoy's, so that a resource means here what it means to an
 *   Envoy, with one deliberate exception: an upstream TLS context must verify
 *   the upstream (a validation context, or an explicit ACCEPT_UNTRUSTED).
 * - Functions return 0 on success and -1 on failure. On failure they write a
 *   sentence into `err` (at most `err_len` bytes, always NUL-terminated) and
 *   leave *out untouched; on success the caller owns *out and releases it with
 *   the matching _cleanup. Every _cleanup accepts a zeroed struct.
 * - Malformed protobuf bytes are an error, never a crash.
 * - Key material (inline DataSource bytes) never appears in an error message
 *   and is wiped with OPENSSL_cleanse when released, both in our structs and
 *   in the protobuf-c messages decoded on the way. */
#ifndef MS_XDS_RESOURCES_H
#define MS_XDS_RESOURCES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/net.h"
#include "google/protobuf/any.pb-c.h"

/* ---- shared pieces --------------------------------------------------------- */

/* Where a core.v3.DataSource's bytes are. environment_variable is refused:
 * the sidecar's environment is not the control plane's to read. */
typedef enum ms_xds_data_kind {
  MS_XDS_DATA_NONE = 0, /* not set */
  MS_XDS_DATA_INLINE,   /* inline_bytes or inline_string: in `bytes` */
  MS_XDS_DATA_FILENAME, /* filename: a path, read later by the ADS client */
} ms_xds_data_kind;

typedef struct ms_xds_data_source {
  ms_xds_data_kind kind;
  char *bytes;    /* MS_XDS_DATA_INLINE: the content, NUL-terminated (the NUL is not in
                   * `len`); may hold key material: wiped on cleanup */
  size_t len;     /* MS_XDS_DATA_INLINE: length of `bytes` */
  char *filename; /* MS_XDS_DATA_FILENAME: the path as written (not empty) */
} ms_xds_data_source;

/* A TlsCertificate: the client certificate presented to upstreams. */
typedef struct ms_xds_tls_certificate {
  ms_xds_data_source certificate_chain; /* required: PEM, leaf first */
  ms_xds_data_source private_key;       /* required: PEM */
  ms_xds_data_source password;          /* NONE: the key is not encrypted */
} ms_xds_tls_certificate;

/* A CertificateValidationContext: how the upstream's certificate is checked. */
typedef struct ms_xds_validation_context {
  ms_xds_data_source trusted_ca;  /* CA bundle PEM; NONE inside a combined validation context's
                                   * default_validation_context (the SDS secret brings it) */
  ms_xds_data_source crl;         /* NONE: no revocation list */
  char **match_subject_alt_names; /* "DNS:x", "URI:x", "IP:x", "EMAIL:x" (the form the
                                   * sidecar's configuration uses); any one matching is enough.
                                   * From match_typed_subject_alt_names (exact matchers) and
                                   * match_subject_alt_names (exact; tried as DNS, URI, IP and
                                   * EMAIL names, as Envoy does) */
  size_t match_subject_alt_name_count;
  uint32_t max_verify_depth; /* default 100 (Envoy's and BoringSSL's) */
  bool verify;               /* false when trust_chain_verification is ACCEPT_UNTRUSTED */
} ms_xds_validation_context;

/* One endpoint of a cluster: an lb_endpoint's socket address and weight. */
typedef struct ms_xds_endpoint {
  ms_address address; /* "host:port" parsed (common/net.h); a host name only in a DNS cluster */
  uint32_t weight;    /* load_balancing_weight: default 1, 1..1000 */
} ms_xds_endpoint;

/* ---- Cluster (CDS) --------------------------------------------------------- */

typedef enum ms_xds_discovery_type {
  MS_XDS_DISCOVERY_STATIC = 0, /* endpoints are IP literals in load_assignment */
  MS_XDS_DISCOVERY_DNS,        /* STRICT_DNS or LOGICAL_DNS: host names we resolve (as STRICT_DNS:
                                * every address, refreshed every dns_refresh_ms) */
  MS_XDS_DISCOVERY_EDS,        /* endpoints come in a ClusterLoadAssignment over ADS */
} ms_xds_discovery_type;

/* Where one half of the TLS material comes from. */
typedef enum ms_xds_tls_source {
  MS_XDS_TLS_SOURCE_NONE = 0, /* not configured */
  MS_XDS_TLS_SOURCE_INLINE,   /* in the cluster itself */
  MS_XDS_TLS_SOURCE_SDS,      /* an SDS secret over ADS, named by *_sds_name */
  MS_XDS_TLS_SOURCE_COMBINED, /* validation only: combined_validation_context, the inline
                               * default_validation_context merged with an SDS secret */
} ms_xds_tls_source;

/* A cluster's lb_policy: the three this sidecar balances with. */
typedef enum ms_xds_lb_policy {
  MS_XDS_LB_ROUND_ROBIN = 0, /* ROUND_ROBIN (Envoy's default) */
  MS_XDS_LB_LEAST_REQUEST,   /* LEAST_REQUEST: the sidecar's least connections */
  MS_XDS_LB_RANDOM,          /* RANDOM */
} ms_xds_lb_policy;

/* A cluster's outlier_detection, as consecutive failures to connect. */
typedef struct ms_xds_outlier_detection {
  uint32_t consecutive_failures; /* consecutive_local_origin_failure, else consecutive_5xx, else
                                  * consecutive_gateway_failure, else Envoy's 5; 0: off */
  uint32_t base_ejection_ms;     /* base_ejection_time, default 30000 (Envoy's); > 0 */
  uint32_t max_ejection_ms;      /* max_ejection_time, default 300000 (Envoy's); >= base */
} ms_xds_outlier_detection;

/* A cluster's transport_socket: envoy.transport_sockets.tls with an
 * UpstreamTlsContext. */
typedef struct ms_xds_upstream_tls {
  bool present;         /* false: no transport_socket, a plaintext upstream (this decoder accepts
                         * it; whether the sidecar does is the ADS client's call) */
  char *sni;            /* NULL when empty: send no SNI (Envoy's behaviour) */
  bool session_reuse;   /* false when max_session_keys is 0; Envoy's default (1) keeps it on */
  uint16_t min_version; /* TLS1_2_VERSION or TLS1_3_VERSION; TLS_AUTO: TLS1_2_VERSION */
  uint16_t max_version; /* TLS1_2_VERSION or TLS1_3_VERSION; TLS_AUTO: TLS1_3_VERSION (Envoy's
                         * client default is 1.2; this sidecar offers 1.3 too) */
  char *ciphers;        /* cipher_suites joined with ':'; NULL: BoringSSL's default */
  char *curves;         /* ecdh_curves joined with ':'; NULL: BoringSSL's default */
  char **alpn;          /* alpn_protocols, in order (each 1..255 bytes) */
  size_t alpn_count;

  /* The client certificate: tls_certificates[0] or
   * tls_certificate_sds_secret_configs[0] (at most one in all). */
  ms_xds_tls_source certificate_source; /* NONE, INLINE or SDS */
  ms_xds_tls_certificate certificate;   /* INLINE */
  char *certificate_sds_name;           /* SDS: the Secret's name */

  /* How the upstream is verified. INLINE: `validation` is validation_context.
   * SDS: `validation` holds defaults (verify on, depth 100, no matchers) and
   * the secret named validation_sds_name replaces it. COMBINED: `validation`
   * is default_validation_context; merge the secret into it as Envoy does:
   * the secret's trusted_ca, crl, depth and verification mode, and the union
   * of both lists of names. Never NONE: a TLS context without any validation
   * context is refused. */
  ms_xds_tls_source validation_source;
  ms_xds_validation_context validation;
  char *validation_sds_name; /* SDS, COMBINED: the Secret's name */
} ms_xds_upstream_tls;

typedef struct ms_xds_cluster {
  char *name; /* not empty */
  ms_xds_discovery_type type;
  char *eds_service_name;     /* EDS: the ClusterLoadAssignment's name; the cluster's
                               * name when eds_cluster_config.service_name is empty */
  ms_xds_endpoint *endpoints; /* STATIC, DNS: from load_assignment, priority 0 and
                               * healthy only; EDS: none (they come by EDS) */
  size_t endpoint_count;
  ms_xds_lb_policy lb_policy;
  uint32_t connect_timeout_ms;                /* default 5000; > 0 */
  uint32_t dns_refresh_ms;                    /* default 5000 (Envoy's) */
  ms_xds_outlier_detection outlier_detection; /* no outlier_detection: consecutive_failures 0
                                               * (off) */
  ms_xds_upstream_tls tls;
} ms_xds_cluster;

/* ms_xds_cluster_decode decodes an envoy.config.cluster.v3.Cluster. */
int ms_xds_cluster_decode(const uint8_t *bytes, size_t len, ms_xds_cluster *out, char *err,
                          size_t err_len);
void ms_xds_cluster_cleanup(ms_xds_cluster *cluster);

/* ---- ClusterLoadAssignment (EDS) ------------------------------------------ */

typedef struct ms_xds_endpoints {
  char *cluster_name;         /* not empty: a cluster's eds_service_name */
  ms_xds_endpoint *endpoints; /* priority 0, not UNHEALTHY/DRAINING/TIMEOUT; weight from
                               * load_balancing_weight (default 1, 1..1000) */
  size_t endpoint_count;
} ms_xds_endpoints;

/* ms_xds_endpoints_decode decodes an
 * envoy.config.endpoint.v3.ClusterLoadAssignment. Only priority 0 is kept:
 * the sidecar has no priority failover, and Envoy itself sends traffic to
 * priority 1 only when priority 0 is unhealthy. Locality weights are
 * ignored (they matter to Envoy only with locality-weighted balancing). */
int ms_xds_endpoints_decode(const uint8_t *bytes, size_t len, ms_xds_endpoints *out, char *err,
                            size_t err_len);
void ms_xds_endpoints_cleanup(ms_xds_endpoints *endpoints);

/* ---- Secret (SDS) ---------------------------------------------------------- */

typedef enum ms_xds_secret_kind {
  MS_XDS_SECRET_TLS_CERTIFICATE = 0, /* `certificate` */
  MS_XDS_SECRET_VALIDATION_CONTEXT,  /* `validation` */
} ms_xds_secret_kind;

typedef struct ms_xds_secret {
  char *name; /* not empty */
  ms_xds_secret_kind kind;
  ms_xds_tls_certificate certificate;   /* MS_XDS_SECRET_TLS_CERTIFICATE */
  ms_xds_validation_context validation; /* MS_XDS_SECRET_VALIDATION_CONTEXT; trusted_ca required
                                         * unless verify is off */
} ms_xds_secret;

/* ms_xds_secret_decode decodes an
 * envoy.extensions.transport_sockets.tls.v3.Secret. */
int ms_xds_secret_decode(const uint8_t *bytes, size_t len, ms_xds_secret *out, char *err,
                         size_t err_len);

/* ms_xds_secret_cleanup releases the secret, wiping its inline bytes. */
void ms_xds_secret_cleanup(ms_xds_secret *secret);

/* ---- Listener (LDS) -------------------------------------------------------- */

/* The most routes an HttpConnectionManager may make (each domain of a
 * virtual host times its routes): requests are matched against them one by
 * one. */
#define MS_XDS_MAX_HTTP_ROUTES 10000

/* What a listener's one network filter is. */
typedef enum ms_xds_listener_protocol {
  MS_XDS_LISTENER_TCP = 0, /* a TcpProxy */
  MS_XDS_LISTENER_HTTP,    /* an HttpConnectionManager */
} ms_xds_listener_protocol;

/* One route of an HTTP listener: a request whose Host and path match goes to
 * `cluster`. */
typedef struct ms_xds_http_route {
  char *host;        /* NULL: any (domain "*"); else an exact host name */
  char *path_prefix; /* NULL: any (prefix "" or "/"); else starts with "/" */
  char *cluster;     /* not empty */
} ms_xds_http_route;

typedef struct ms_xds_listener {
  char *name;                        /* not empty */
  ms_address address;                /* socket_address with an IP literal */
  ms_xds_listener_protocol protocol; /* MS_XDS_LISTENER_TCP: a TcpProxy; MS_XDS_LISTENER_HTTP:
                                      * an HttpConnectionManager */
  char *cluster;                     /* TCP: the TcpProxy's cluster. HTTP: where a request that
                                      * no route matches goes: the cluster of the first route
                                      * that matches any host and any path, else of routes[0] */

  /* TCP only. */
  uint32_t idle_timeout_ms;            /* default 3600000 (Envoy's 1 h); 0: none */
  uint32_t max_connect_attempts;       /* 0: not set (the sidecar's default applies); else >= 1 */
  uint32_t max_connection_duration_ms; /* max_downstream_connection_duration; 0: none */

  /* HTTP only. */
  bool no_route_404;           /* no route matches any host and path: a request that none
                                * matches is answered 404, as Envoy does */
  ms_xds_http_route *routes;   /* at least one, first match wins: the routes of the virtual
                                * hosts with exact domains, then those of the "*" one */
  size_t route_count;          /* 1..MS_XDS_MAX_HTTP_ROUTES */
  uint32_t request_timeout_ms; /* stream_idle_timeout; default 300000 (Envoy's 5 min); 0: none */
} ms_xds_listener;

/* ms_xds_listener_decode decodes an envoy.config.listener.v3.Listener: one
 * filter chain, without a transport_socket (the sidecar's listeners take
 * plaintext from the local application), holding one network filter,
 * matched by its typed_config's type URL (not by name):
 * - a TcpProxy to a single cluster: a TCP listener;
 * - an HttpConnectionManager with an inline route_config and the router as
 *   its last HTTP filter: an HTTP listener. Each virtual host's domains are
 *   exact host names or "*" (other wildcards, ports and a domain repeated
 *   across virtual hosts are refused); each route matches a path prefix and
 *   names one cluster. Redirects, direct responses, regular expressions,
 *   header matchers, weighted or header-named clusters, rewrites, rds and
 *   HTTP filters other than the router (unless is_optional) are refused by
 *   name. */
int ms_xds_listener_decode(const uint8_t *bytes, size_t len, ms_xds_listener *out, char *err,
                           size_t err_len);
void ms_xds_listener_cleanup(ms_xds_listener *listener);

/* ---- any resource ----------------------------------------------------------- */

typedef enum ms_xds_kind {
  MS_XDS_KIND_CLUSTER = 0, /* MS_XDS_TYPE_URL_CLUSTER */
  MS_XDS_KIND_ENDPOINTS,   /* MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT */
  MS_XDS_KIND_SECRET,      /* MS_XDS_TYPE_URL_SECRET */
  MS_XDS_KIND_LISTENER,    /* MS_XDS_TYPE_URL_LISTENER */
} ms_xds_kind;

typedef struct ms_xds_resource {
  ms_xds_kind kind;
  union {
    ms_xds_cluster cluster;
    ms_xds_endpoints endpoints;
    ms_xds_secret secret;
    ms_xds_listener listener;
  } as;
} ms_xds_resource;

/* ms_xds_kind_from_type_url sets *out_kind to the kind whose type URL is
 * exactly `type_url` and returns 0, or returns -1 for any other string. */
int ms_xds_kind_from_type_url(const char *type_url, ms_xds_kind *out_kind);

/* ms_xds_kind_type_url returns the kind's type URL (xds/proto/type_urls.h). */
const char *ms_xds_kind_type_url(ms_xds_kind kind);

/* ms_xds_kind_name returns "cluster", "endpoints", "secret" or "listener",
 * the word error messages start with. */
const char *ms_xds_kind_name(ms_xds_kind kind);

/* ms_xds_resource_decode_any checks that any->type_url is exactly
 * `expected_type_url` (the DiscoveryResponse's type_url; one of the four
 * above), then decodes any->value with the matching ms_xds_*_decode into
 * out->as and sets out->kind. Release with ms_xds_resource_cleanup. */
int ms_xds_resource_decode_any(const Google__Protobuf__Any *any, const char *expected_type_url,
                               ms_xds_resource *out, char *err, size_t err_len);

/* ms_xds_resource_decode decodes `bytes` (a serialized resource of `kind`)
 * with the matching ms_xds_*_decode into out->as and sets out->kind. Returns
 * 0, or -1 with the message in err and *out untouched. Release with
 * ms_xds_resource_cleanup. */
int ms_xds_resource_decode(ms_xds_kind kind, const uint8_t *bytes, size_t len, ms_xds_resource *out,
                           char *err, size_t err_len);

/* ms_xds_resource_name returns the resource's name (a ClusterLoadAssignment's
 * cluster_name), owned by `resource`. */
const char *ms_xds_resource_name(const ms_xds_resource *resource);

void ms_xds_resource_cleanup(ms_xds_resource *resource);

#endif /* MS_XDS_RESOURCES_H */
