/* cert_expiry.h: the certificates in use, how near each is to its end, and
 * saying so: in the log, on the admin endpoint's pages and, when the operator
 * asks for it, in /ready.
 *
 * In use means what the sidecar relies on now:
 * - for each cluster of the current snapshot, the client certificate its TLS
 *   context presents and the CAs it trusts, from files, from PEM in the
 *   configuration, from the control plane's SDS secrets (the xDS backup file
 *   included) or from the identity agent;
 * - the identity agent's own certificate (sidecar/identity/identity.h);
 * - the client credentials of the control plane and of the CA: xds.tls and
 *   identity.tls, their certificate and their CAs.
 * Older context generations that open connections still hold are left out:
 * an expiry does not undo a handshake already done.
 *
 * A certificate's state at an instant: "not_yet_valid" before its
 * not_before, "expired" after its not_after, "expiring" once
 * certificates.warn_lifetime_percent of its lifetime has passed, else
 * "valid". The monitor (ms_cert_expiry_start) logs a warning once when a
 * certificate in use turns expiring or is not yet valid, an error when it
 * expires and again every certificates.expired_log_interval_ms while it stays
 * in use, and one line when such a certificate leaves use (replaced). Main
 * thread only, like the server it reads. */
#ifndef MS_CERT_EXPIRY_H
#define MS_CERT_EXPIRY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "certs/certs.h"

typedef struct ms_server ms_server; /* sidecar/control/server.h */

/* ---- one certificate -------------------------------------------------------- */

typedef enum ms_cert_state {
  MS_CERT_VALID = 0,
  MS_CERT_EXPIRING,      /* past the warning share of its lifetime */
  MS_CERT_EXPIRED,       /* past its not_after */
  MS_CERT_NOT_YET_VALID, /* before its not_before */
} ms_cert_state;

/* ms_cert_state_name returns "valid", "expiring", "expired" or
 * "not_yet_valid". */
const char *ms_cert_state_name(ms_cert_state state);

/* ms_cert_state_at returns the state of `info` at `now` (unix seconds) with
 * the warning at `warn_percent` (1..100) of its lifetime. A certificate is
 * valid through the second of its not_after, as X.509 has it. */
ms_cert_state ms_cert_state_at(const ms_cert_info *info, int64_t now, uint32_t warn_percent);

/* ms_cert_expiry_add_json adds to `object` what the admin endpoint shows of
 * a certificate's end: "days_until_expiration", "seconds_until_expiration"
 * (negative once expired) and the state's name as `state_member` ("state"
 * in /certs). Returns 0, or -ENOMEM (then some members may be missing). */
int ms_cert_expiry_add_json(cJSON *object, const char *state_member, const ms_cert_info *info,
                            int64_t now, uint32_t warn_percent);

/* ---- the certificates in use ------------------------------------------------ */

typedef enum ms_cert_source {
  MS_CERT_SOURCE_FILE = 0,   /* a cluster's file; name: its path */
  MS_CERT_SOURCE_INLINE,     /* PEM in the configuration; name: the cluster's */
  MS_CERT_SOURCE_SDS,        /* a control plane's secret; name: the secret's */
  MS_CERT_SOURCE_IDENTITY,   /* the identity agent's; name: the secret it answers */
  MS_CERT_SOURCE_XDS_CLIENT, /* xds.tls or identity.tls; name: the file, or the key */
} ms_cert_source;

/* ms_cert_source_name returns "file", "inline", "sds", "identity" or
 * "xds_client": the Prometheus label. */
const char *ms_cert_source_name(ms_cert_source source);

/* One certificate in use. Everything is borrowed for the duration of the
 * visit. */
typedef struct ms_cert_use {
  const ms_cert_info *info;
  ms_cert_source source;
  const char *name;
  bool is_ca;           /* a trusted CA, not a certificate the sidecar presents */
  const char *cluster;  /* the first cluster (in configuration order) using it, or NULL */
  size_t cluster_count; /* clusters using it */
} ms_cert_use;

typedef void (*ms_cert_use_visit)(const ms_cert_use *use, void *arg);

/* ms_cert_uses_visit calls `visit` once for every certificate in use (see
 * above), ordered by source, name, leaf before CA, serial: a certificate
 * several clusters share is visited once. Returns 0, or -ENOMEM (nothing
 * visited). */
int ms_cert_uses_visit(ms_server *server, ms_cert_use_visit visit, void *arg);

/* A client credential outside the clusters (the control plane's xds.tls,
 * the CA's identity.tls): its SSL_CTX and what it holds. */
typedef struct ms_cert_credential {
  SSL_CTX *ssl_ctx;
  ms_cert_info leaf; /* zeroed without a client certificate */
  ms_cert_info *cas;
  size_t ca_count;
  char *certificate_name; /* the certificate's path, else "<key>.certificate_pem" */
  char *trusted_ca_name;  /* the CA bundle's path, else "<key>.trusted_ca_pem" */
} ms_cert_credential;

/* ms_cert_credential_load builds the credential that `settings` (the TLS
 * keys at configuration path `key`, e.g. "xds.tls") name, as
 * ms_client_ctx_load does, keeping what /certs and the monitor show.
 * Returns 0 with `out` filled (release with ms_cert_credential_cleanup), or
 * -1 with `err` and `out` zeroed. */
int ms_cert_credential_load(const ms_tls_settings *settings, const char *key,
                            ms_cert_credential *out, char *err, size_t err_len);

/* ms_cert_credential_visit calls `visit` for the credential's certificate
 * and each of its CAs, as MS_CERT_SOURCE_XDS_CLIENT. */
void ms_cert_credential_visit(const ms_cert_credential *credential, ms_cert_use_visit visit,
                              void *arg);

/* ms_cert_credential_cleanup frees what the credential holds. Accepts a
 * zeroed one. */
void ms_cert_credential_cleanup(ms_cert_credential *credential);

/* ---- figures ------------------------------------------------------------------ */

/* ms_cert_days_until_first_expiring returns Envoy's
 * server.days_until_first_cert_expiring: the fewest whole days left of any
 * certificate in use, 0 once one has expired (Envoy does not go below 0),
 * UINT32_MAX with none in use (as Envoy). */
int64_t ms_cert_days_until_first_expiring(ms_server *server, int64_t now);

/* ms_cert_expiry_write_prometheus writes, for every certificate in use, the
 * gauges mtls_sidecar_certificate_expiry_seconds (seconds left, negative
 * once expired) and mtls_sidecar_certificate_expiration_timestamp_seconds
 * (its not_after), labelled with source, name, kind ("leaf" or "ca") and
 * serial. Returns 0, or -ENOMEM. */
int ms_cert_expiry_write_prometheus(ms_server *server, FILE *stream, int64_t now);

/* ms_cert_expiry_presents_expired tells whether a certificate the sidecar
 * presents (a leaf: a cluster's client certificate, the identity's, the
 * control plane credential's) is expired at `now`; CAs are left out (a
 * bundle often keeps an old root until it ends). For /ready with
 * certificates.ready_fails_on_expired. */
bool ms_cert_expiry_presents_expired(ms_server *server, int64_t now);

/* ---- the monitor ---------------------------------------------------------------- */

typedef struct ms_cert_expiry ms_cert_expiry;

/* ms_cert_expiry_start starts the monitor on `loop`: a first check on the
 * next turn of the loop, then one at the next instant a certificate in use
 * changes state (or an expired one is due to be logged again), at least
 * once a minute. Returns 0 with *out, or -ENOMEM. */
int ms_cert_expiry_start(uv_loop_t *loop, ms_server *server, ms_cert_expiry **out);

/* ms_cert_expiry_recheck asks for a check on the next turn of the loop (a
 * new snapshot was published). Accepts NULL. */
void ms_cert_expiry_recheck(ms_cert_expiry *expiry);

/* ms_cert_expiry_stop closes the monitor's timer; its memory is freed in the
 * close callback. Accepts NULL. */
void ms_cert_expiry_stop(ms_cert_expiry *expiry);

#endif
