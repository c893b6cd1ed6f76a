/* cert_expiry.h: how near a certificate is to its end, and the client
 * credentials whose certificates the sidecar watches besides the clusters'.
 *
 * A certificate's state at an instant: "not_yet_valid" before its
 * not_before, "expired" after its not_after, "expiring" once
 * certificates.warn_lifetime_percent of its lifetime has passed, else
 * "valid". The certificates in use (each cluster's, the identity agent's,
 * these credentials') and the monitor that logs their changes are the
 * server's (sidecar/control/server.h: ms_cert_uses_visit); the admin
 * endpoint, the control plane's source and the identity agent use what is
 * here to say the same about the certificates they show. Pure functions:
 * no server, no loop. */
#ifndef MS_CERT_EXPIRY_H
#define MS_CERT_EXPIRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "certs/certs.h"

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

/* ms_cert_state_next_change returns the next second after `now` at which
 * the state of `info` changes, or INT64_MAX once it has expired. */
int64_t ms_cert_state_next_change(const ms_cert_info *info, int64_t now, uint32_t warn_percent);

/* ms_cert_expiry_add_json adds to `object` what the admin endpoint shows of
 * a certificate's end: "days_until_expiration", "seconds_until_expiration"
 * (negative once expired) and the state's name as `state_member` ("state"
 * in /certs). Returns 0, or -1 when memory ran out (then some members may
 * be missing). */
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

/* ms_cert_use_visit is called once per certificate in use
 * (ms_cert_uses_visit in server.h, and the sources' `certificates`). */
typedef void (*ms_cert_use_visit)(const ms_cert_use *use, void *arg);

/* A client credential outside the clusters (the control plane's xds.tls,
 * the CA's identity.tls): its SSL_CTX and what it holds. */
typedef struct ms_cert_credential {
  SSL_CTX *ssl_ctx;
  ms_cert_info leaf; /* zeroed without a client certificate */
  ms_cert_info *cas;
  size_t ca_count;
  char *certificate_name; /* the certificate's path, else "<key>.certificate_pem" */
  char *trusted_ca_name;  /* the CA bundle's path, else "<key>.trusted_ca_pem" */
  uint8_t digest[32];     /* of the material it was built from (ms_tls_material) */
} ms_cert_credential;

/* ms_cert_credential_load builds the credential that `settings` (the TLS
 * keys at configuration path `key`, e.g. "xds.tls") name, as
 * ms_client_ctx_load does, keeping what /certs and the monitor show.
 * Returns 0 with `out` filled (release with ms_cert_credential_cleanup), or
 * -1 with `err` and `out` zeroed. */
int ms_cert_credential_load(const ms_tls_settings *settings, const char *key,
                            ms_cert_credential *out, char *err, size_t err_len);

/* ms_cert_credential_reload reads the files of `settings` again and, when
 * their bytes differ from those `credential` was built from, builds a new
 * credential and puts it in place of the old one (whose SSL_CTX reference
 * is dropped: a channel that holds its own keeps it). Returns 1 when it was
 * replaced, 0 when nothing changed, or -1 with `err` (a file that does not
 * read or does not load: `credential` is untouched, the last good one). */
int ms_cert_credential_reload(const ms_tls_settings *settings, const char *key,
                              ms_cert_credential *credential, char *err, size_t err_len);

/* ms_cert_credential_visit calls `visit` for the credential's certificate
 * and each of its CAs, as MS_CERT_SOURCE_XDS_CLIENT. */
void ms_cert_credential_visit(const ms_cert_credential *credential, ms_cert_use_visit visit,
                              void *arg);

/* ms_cert_credential_cleanup frees what the credential holds. Accepts a
 * zeroed one. */
void ms_cert_credential_cleanup(ms_cert_credential *credential);

#endif
