/* server_auth.c: who is calling xds-server. A caller's identity comes only
 * from what it proves: a service-account token (verified here against the
 * key set) or a bootstrap client certificate (verified by the TLS handshake
 * against --client-ca); what a node says about itself (node.id, its
 * metadata) is checked against that identity and never selects one. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"
#include "xds-server/server_internal.h"

/* ---- SPIFFE IDs ------------------------------------------------------------------- */

bool xds_spiffe_segment_ok(const char *text, size_t len) {
  if (len == 0 || len > 253) return false;
  if ((len == 1 && text[0] == '.') || (len == 2 && text[0] == '.' && text[1] == '.')) return false;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '-' || c == '_'))
      return false;
  }
  return true;
}

int xds_identity_init(xds_identity *out, xds_proof proof, const char *trust_domain,
                      const char *namespace_name, size_t namespace_len, const char *service_account,
                      size_t service_account_len, char *err, size_t err_len) {
  if (!xds_spiffe_segment_ok(namespace_name, namespace_len) ||
      !xds_spiffe_segment_ok(service_account, service_account_len)) {
    snprintf(err, err_len,
             "the namespace and service account must be non-empty and made of letters, digits, "
             "'.', '-' and '_'");
    return -1;
  }
  memset(out, 0, sizeof(*out));
  out->proof = proof;
  int n =
      snprintf(out->spiffe_id, sizeof(out->spiffe_id), "spiffe://%s/ns/%.*s/sa/%.*s", trust_domain,
               (int)namespace_len, namespace_name, (int)service_account_len, service_account);
  if (n < 0 || (size_t)n >= sizeof(out->spiffe_id)) {
    snprintf(err, err_len, "the SPIFFE ID would be too long");
    return -1;
  }
  snprintf(out->namespace_name, sizeof(out->namespace_name), "%.*s", (int)namespace_len,
           namespace_name);
  snprintf(out->service_account, sizeof(out->service_account), "%.*s", (int)service_account_len,
           service_account);
  return 0;
}

/* identity_from_uri takes spiffe://TD/ns/NS/sa/SA apart; the trust domain
 * must be ours. */
static int identity_from_uri(const char *trust_domain, const char *uri, xds_identity *out,
                             char *err, size_t err_len) {
  char prefix[300];
  snprintf(prefix, sizeof(prefix), "spiffe://%s/ns/", trust_domain);
  size_t prefix_len = strlen(prefix);
  if (strncmp(uri, prefix, prefix_len) != 0) {
    snprintf(err, err_len,
             "its SPIFFE ID %.200s is not of the form spiffe://%s/ns/NAMESPACE/sa/SERVICE_ACCOUNT "
             "(another trust domain, or another path)",
             uri, trust_domain);
    return -1;
  }
  const char *ns = uri + prefix_len;
  const char *sa_mark = strstr(ns, "/sa/");
  if (sa_mark == NULL || strchr(sa_mark + 4, '/') != NULL) {
    snprintf(err, err_len,
             "its SPIFFE ID %.200s is not of the form spiffe://%s/ns/NAMESPACE/sa/SERVICE_ACCOUNT",
             uri, trust_domain);
    return -1;
  }
  const char *sa = sa_mark + 4;
  char why[MS_ERR_LEN];
  if (xds_identity_init(out, XDS_PROOF_CERTIFICATE, trust_domain, ns, (size_t)(sa_mark - ns), sa,
                        strlen(sa), why, sizeof(why)) != 0) {
    snprintf(err, err_len, "its SPIFFE ID %.200s: %.200s", uri, why);
    return -1;
  }
  return 0;
}

/* ---- bootstrap certificates ------------------------------------------------------- */

/* issued_by_workload_ca: `cert` is signed by the workload CA, current or
 * still in its overlap: a certificate xds-server issued itself. */
static bool issued_by_workload_ca(const xds_ca *ca, X509 *cert) {
  const xds_ca_entry *entries[1 + 16];
  size_t count = 0;
  entries[count++] = &ca->current;
  for (size_t i = 0; i < ca->retiring_count && count < sizeof(entries) / sizeof(entries[0]); i++)
    entries[count++] = &ca->retiring[i];
  bool issued = false;
  for (size_t i = 0; i < count && !issued; i++) {
    if (X509_check_issued(entries[i]->cert, cert) != X509_V_OK) continue;
    EVP_PKEY *key = X509_get_pubkey(entries[i]->cert);
    issued = key != NULL && X509_verify(cert, key) == 1;
    EVP_PKEY_free(key);
  }
  ERR_clear_error();
  return issued;
}

static int identify_by_certificate(ms_xds_server *server, const ms_grpc_peer *peer,
                                   xds_identity *out, char *err, size_t err_len) {
  const char *uri = NULL;
  size_t uris = 0;
  for (size_t i = 0; i < peer->certificate_info.san_count; i++) {
    const char *san = peer->certificate_info.sans[i];
    if (strncmp(san, "URI:spiffe://", 13) != 0) continue;
    uris++;
    uri = san + 4;
  }
  if (uris != 1) {
    snprintf(err, err_len,
             "the client certificate (serial %s) carries %zu SPIFFE IDs; a bootstrap certificate "
             "must carry exactly one spiffe:// URI SAN",
             peer->certificate_info.serial_hex, uris);
    return -1;
  }
  if (!server->options.accept_workload_certificates &&
      issued_by_workload_ca(&server->ca, peer->certificate)) {
    snprintf(err, err_len,
             "the client certificate (serial %s, %.200s) is a workload certificate this server "
             "issued; it is not a bootstrap credential (start xds-server with "
             "--accept-workload-certificates to allow that)",
             peer->certificate_info.serial_hex, uri);
    return -1;
  }
  char why[MS_ERR_LEN];
  if (identity_from_uri(server->trust_domain, uri, out, why, sizeof(why)) != 0) {
    snprintf(err, err_len, "the client certificate (serial %s): %s",
             peer->certificate_info.serial_hex, why);
    return -1;
  }
  return 0;
}

/* ---- service-account tokens ------------------------------------------------------- */

bool xds_server_accepts_tokens(const ms_xds_server *server) {
  return server->has_jwks;
}

/* bearer_token returns the token of an "authorization: Bearer TOKEN" value,
 * or NULL for another scheme or an empty token. */
static const char *bearer_token(const char *authorization) {
  if (strncasecmp(authorization, "Bearer ", 7) != 0) return NULL;
  const char *token = authorization + 7;
  while (*token == ' ')
    token++;
  return *token != '\0' ? token : NULL;
}

static int xds_auth_identify_token(ms_xds_server *server, const char *authorization,
                                   xds_identity *out, char *err, size_t err_len) {
  if (!xds_server_accepts_tokens(server)) {
    snprintf(err, err_len,
             "a token was sent, but this server verifies no tokens (no --jwks-file or "
             "--jwks-url); present a bootstrap client certificate");
    return -1;
  }
  const char *token = bearer_token(authorization);
  if (token == NULL) {
    snprintf(err, err_len, "the authorization metadata is not \"Bearer <token>\"");
    return -1;
  }
  char why[MS_ERR_LEN];
  const ms_jwks *keys = xds_jwks_current(&server->jwks);
  if (keys == NULL) {
    xds_jwks_why_none(&server->jwks, why, sizeof(why));
    snprintf(err, err_len, "cannot verify the service-account token: %s", why);
    return -1;
  }
  ms_jwt_expect expect;
  xds_jwks_expect(&server->jwks, &expect);
  ms_jwt_claims claims;
  if (ms_jwt_verify(token, keys, &expect, &claims, why, sizeof(why)) != 0) {
    /* A key the set does not hold yet: the issuer may have rotated it. */
    if (strstr(why, "no key in the key set has") != NULL) xds_jwks_refresh_soon(&server->jwks);
    snprintf(err, err_len, "the service-account token does not verify: %s", why);
    return -1;
  }
  if (xds_identity_init(out, XDS_PROOF_TOKEN, server->trust_domain, claims.namespace_name,
                        strlen(claims.namespace_name), claims.service_account,
                        strlen(claims.service_account), why, sizeof(why)) != 0) {
    snprintf(err, err_len, "the service-account token's identity: %s", why);
    return -1;
  }
  snprintf(out->pod, sizeof(out->pod), "%s", claims.pod);
  return 0;
}

/* ---- the caller ------------------------------------------------------------------- */

int xds_auth_identify(ms_xds_server *server, ms_grpc_server_call *call, xds_identity *out,
                      char *err, size_t err_len) {
  const char *authorization = ms_grpc_server_call_metadata(call, "authorization");
  if (authorization != NULL) {
    if (xds_auth_identify_token(server, authorization, out, err, err_len) != 0)
      return MS_GRPC_UNAUTHENTICATED;
    return MS_GRPC_OK;
  }
  const ms_grpc_peer *peer = ms_grpc_server_call_peer(call);
  if (peer->certificate == NULL) {
    snprintf(err, err_len, "no proof of identity: present a bootstrap client certificate%s",
             xds_server_accepts_tokens(server)
                 ? " or a service-account token (authorization: Bearer ...)"
                 : "");
    return MS_GRPC_UNAUTHENTICATED;
  }
  if (identify_by_certificate(server, peer, out, err, err_len) != 0) return MS_GRPC_UNAUTHENTICATED;
  return MS_GRPC_OK;
}

const char *xds_proof_name(xds_proof proof) {
  return proof == XDS_PROOF_TOKEN ? "service-account token" : "bootstrap certificate";
}

/* ---- what a node claims ------------------------------------------------------------ */

int xds_node_claims_parse(const char *node_id, const char *metadata_namespace,
                          const char *metadata_service_account, xds_node_claims *out, char *err,
                          size_t err_len) {
  memset(out, 0, sizeof(*out));
  if (node_id == NULL || node_id[0] == '\0') {
    snprintf(err, err_len, "the first request of a stream must carry node.id");
    return -1;
  }
  /* node.id: "SERVICE_ACCOUNT.NAMESPACE", Istio's "sidecar~IP~POD.NAMESPACE~DOMAIN"
   * (the namespace), or a bare name (no claim). */
  const char *ns = NULL, *sa = NULL;
  size_t ns_len = 0, sa_len = 0;
  const char *tilde = strchr(node_id, '~');
  if (tilde != NULL) {
    const char *third = strchr(tilde + 1, '~');
    const char *dot = third != NULL ? strchr(third + 1, '.') : NULL;
    if (dot != NULL) {
      ns = dot + 1;
      ns_len = strcspn(ns, ".~");
    }
  } else {
    const char *dot = strchr(node_id, '.');
    if (dot != NULL) {
      sa = node_id;
      sa_len = (size_t)(dot - node_id);
      ns = dot + 1;
      ns_len = strlen(ns);
    }
  }
  if (metadata_namespace != NULL && metadata_namespace[0] != '\0') {
    ns = metadata_namespace;
    ns_len = strlen(ns);
  }
  if (metadata_service_account != NULL && metadata_service_account[0] != '\0') {
    sa = metadata_service_account;
    sa_len = strlen(sa);
  }
  if ((ns != NULL && !xds_spiffe_segment_ok(ns, ns_len)) ||
      (sa != NULL && !xds_spiffe_segment_ok(sa, sa_len))) {
    snprintf(err, err_len,
             "the node's namespace and service account (from node.id, or the metadata NAMESPACE "
             "and SERVICE_ACCOUNT) must be made of letters, digits, '.', '-' and '_'");
    return -1;
  }
  if (ns != NULL)
    snprintf(out->namespace_name, sizeof(out->namespace_name), "%.*s", (int)ns_len, ns);
  if (sa != NULL)
    snprintf(out->service_account, sizeof(out->service_account), "%.*s", (int)sa_len, sa);
  return 0;
}

int xds_node_claims_check(const xds_node_claims *claims, const xds_identity *identity, char *err,
                          size_t err_len) {
  bool ns_ok = claims->namespace_name[0] == '\0' ||
               strcmp(claims->namespace_name, identity->namespace_name) == 0;
  bool sa_ok = claims->service_account[0] == '\0' ||
               strcmp(claims->service_account, identity->service_account) == 0;
  if (ns_ok && sa_ok) return 0;
  snprintf(err, err_len,
           "the node claims namespace \"%s\" and service account \"%s\", but the caller proved %s "
           "(by %s)",
           claims->namespace_name[0] != '\0' ? claims->namespace_name : "(none)",
           claims->service_account[0] != '\0' ? claims->service_account : "(none)",
           identity->spiffe_id, xds_proof_name(identity->proof));
  return -1;
}
