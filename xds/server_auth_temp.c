/* server_auth_temp.c: TEMPORARY stand-in for xds_auth_identify until the
 * lead's xds/server_auth.c lands in main (then this file goes). Client
 * certificates only: the connection's certificate must carry exactly one
 * spiffe:// URI SAN, in the server's trust domain, of the form
 * spiffe://TD/ns/NS/sa/SA. Bearer tokens are not looked at. */
#include <stdio.h>
#include <string.h>

#include "xds/server_internal.h"

int xds_auth_identify(ms_xds_server *server, ms_grpc_server_call *call, xds_identity *out,
                      char *err, size_t err_len) {
  const ms_grpc_peer *peer = ms_grpc_server_call_peer(call);
  const char *found = NULL;
  size_t count = 0;
  for (size_t i = 0; i < peer->certificate_info.san_count; i++) {
    const char *san = peer->certificate_info.sans[i];
    if (strncmp(san, "URI:spiffe://", 13) == 0) {
      found = san + 4;
      count++;
    }
  }
  if (count != 1) {
    snprintf(err, err_len, "the client certificate carries %zu SPIFFE IDs; one is needed", count);
    return MS_GRPC_UNAUTHENTICATED;
  }
  memset(out, 0, sizeof(*out));
  char td[256];
  int consumed = 0;
  if (sscanf(found, "spiffe://%255[^/]/ns/%253[^/]/sa/%253[^/]%n", td, out->namespace_name,
             out->service_account, &consumed) != 3 ||
      found[consumed] != '\0' || strcmp(td, server->trust_domain) != 0) {
    snprintf(err, err_len, "the client certificate's SPIFFE ID %s is not spiffe://%s/ns/NS/sa/SA",
             found, server->trust_domain);
    return MS_GRPC_UNAUTHENTICATED;
  }
  out->proof = XDS_PROOF_CERTIFICATE;
  snprintf(out->spiffe_id, sizeof(out->spiffe_id), "%s", found);
  return MS_GRPC_OK;
}
