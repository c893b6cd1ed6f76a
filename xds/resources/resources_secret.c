/* resources_secret.c: Secret (SDS) into ms_xds_secret. */
#include <stdlib.h>
#include <string.h>

#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "xds/resources/resources_internal.h"

typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret Secret;

static int decode(ms_xds_decoder *decoder, const Secret *secret, ms_xds_secret *out) {
  if (ms_xds_decoder_set_name(decoder, secret->name) != 0 ||
      ms_xds_strdup(decoder, secret->name, false, &out->name) != 0) {
    return -1;
  }
  size_t saved;
  int rc;
  switch (secret->type_case) {
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE:
      out->kind = MS_XDS_SECRET_TLS_CERTIFICATE;
      saved = ms_xds_push(decoder, "tls_certificate");
      rc = ms_xds_tls_certificate_decode(decoder, secret->tls_certificate, &out->certificate);
      ms_xds_pop(decoder, saved);
      return rc;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT:
      out->kind = MS_XDS_SECRET_VALIDATION_CONTEXT;
      saved = ms_xds_push(decoder, "validation_context");
      rc = ms_xds_validation_context_decode(decoder, secret->validation_context, true,
                                            &out->validation);
      ms_xds_pop(decoder, saved);
      return rc;
    default:
      return ms_xds_fail(decoder,
                         "holds neither tls_certificate nor validation_context "
                         "(session_ticket_keys and generic_secret are not supported)");
  }
}

int ms_xds_secret_decode(const uint8_t *bytes, size_t len, ms_xds_secret *out, char *err,
                         size_t err_len) {
  ms_xds_decoder decoder;
  ms_xds_decoder_init(&decoder, "secret", err, err_len);
  Secret *message = ms_xds_unpack(
      &decoder, &envoy__extensions__transport_sockets__tls__v3__secret__descriptor, bytes, len);
  if (message == NULL) return -1;
  ms_xds_secret result;
  memset(&result, 0, sizeof(result));
  int rc = decode(&decoder, message, &result);
  if (message->type_case ==
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE) {
    ms_xds_wipe_tls_certificate_message(message->tls_certificate);
  }
  envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(message, NULL);
  if (rc != 0) {
    ms_xds_secret_cleanup(&result);
    return -1;
  }
  *out = result;
  return 0;
}

void ms_xds_secret_cleanup(ms_xds_secret *secret) {
  free(secret->name);
  ms_xds_tls_certificate_cleanup(&secret->certificate);
  ms_xds_validation_context_cleanup(&secret->validation);
  memset(secret, 0, sizeof(*secret));
}
