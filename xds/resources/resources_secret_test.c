/* resources_secret_test.c: Secrets built in C into ms_xds_secret
 * (xds/resources/resources.h): a TLS certificate and a validation context, refusals
 * with their exact message (never quoting the key, never forged by a hostile
 * name), a truncated error buffer; truncated and bit-flipped bytes decode
 * or fail cleanly.
 *
 * The first failed check ends the process with status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/resources/resources_test_util.h"

static void test_secrets(void) {
  DataSource chain = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  DataSource key = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  chain.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME;
  chain.filename = "/etc/client.pem";
  key.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
  key.inline_string = KEY_PEM;
  TlsCertificate certificate = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
  certificate.certificate_chain = &chain;
  certificate.private_key = &key;
  Secret secret = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
  secret.name = "client-cert";
  secret.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE;
  secret.tls_certificate = &certificate;

  size_t len;
  uint8_t *bytes = pack(&secret, &len);
  ms_xds_secret out;
  char err[MS_ERR_LEN] = "";
  CHECK_INT(ms_xds_secret_decode(bytes, len, &out, err, sizeof(err)), 0);
  CHECK_STR(out.name, "client-cert");
  CHECK_INT(out.kind, MS_XDS_SECRET_TLS_CERTIFICATE);
  check_file(&out.certificate.certificate_chain, "/etc/client.pem");
  check_inline(&out.certificate.private_key, KEY_PEM);
  check_none(&out.certificate.password);
  shake(MS_XDS_KIND_SECRET, bytes, len);
  free(bytes);
  ms_xds_secret_cleanup(&out);
  CHECK(out.certificate.private_key.bytes == NULL);

  /* Refusals never quote the key. */
  DataSource password = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  password.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE;
  password.environment_variable = "KEY_PASSWORD";
  certificate.password = &password;
  bytes = pack(&secret, &len);
  CHECK_INT(ms_xds_secret_decode(bytes, len, &out, err, sizeof(err)), -1);
  CHECK_STR(err,
            "secret \"client-cert\": tls_certificate.password: environment_variable is not "
            "supported; use inline_bytes, inline_string or filename");
  CHECK(strstr(err, "MIGH") == NULL);
  free(bytes);
  certificate.password = NULL;
  key.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE;
  key.environment_variable = "CLIENT_KEY";
  EXPECT_REFUSED(MS_XDS_KIND_SECRET, &secret,
                 "secret \"client-cert\": tls_certificate.private_key: environment_variable is not "
                 "supported; use inline_bytes, inline_string or filename");

  /* A truncated error buffer is still a terminated string. */
  bytes = pack(&secret, &len);
  char small[16];
  memset(small, 'x', sizeof(small));
  CHECK_INT(ms_xds_secret_decode(bytes, len, &out, small, sizeof(small)), -1);
  CHECK_STR(small, "secret \"client-");
  free(bytes);

  /* A validation context secret. */
  DataSource ca = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  ca.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
  ca.inline_bytes.data = (uint8_t *)CA_PEM;
  ca.inline_bytes.len = strlen(CA_PEM);
  CertificateValidationContext validation =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
  validation.trusted_ca = &ca;
  Secret ca_secret = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
  ca_secret.name = "mesh-ca";
  ca_secret.type_case =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT;
  ca_secret.validation_context = &validation;
  bytes = pack(&ca_secret, &len);
  CHECK_INT(ms_xds_secret_decode(bytes, len, &out, err, sizeof(err)), 0);
  CHECK_INT(out.kind, MS_XDS_SECRET_VALIDATION_CONTEXT);
  check_inline(&out.validation.trusted_ca, CA_PEM);
  CHECK(out.validation.verify);
  free(bytes);
  ms_xds_secret_cleanup(&out);
  validation.trusted_ca = NULL;
  EXPECT_REFUSED(MS_XDS_KIND_SECRET, &ca_secret,
                 "secret \"mesh-ca\": validation_context.trusted_ca: required: this sidecar "
                 "verifies upstreams; set trusted_ca, or trust_chain_verification: "
                 "ACCEPT_UNTRUSTED");

  ca_secret.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE__NOT_SET;
  EXPECT_REFUSED(MS_XDS_KIND_SECRET, &ca_secret,
                 "secret \"mesh-ca\": holds neither tls_certificate nor validation_context "
                 "(session_ticket_keys and generic_secret are not supported)");
  /* A hostile name cannot forge quotes or lines in the message. */
  ca_secret.name = "evil\"\nname";
  EXPECT_REFUSED(
      MS_XDS_KIND_SECRET, &ca_secret,
      "secret \"evil\\\"\\x0aname\": holds neither tls_certificate nor validation_context "
      "(session_ticket_keys and generic_secret are not supported)");
  ca_secret.name = "";
  EXPECT_REFUSED(MS_XDS_KIND_SECRET, &ca_secret, "secret: name: must not be empty");
}

int main(void) {
  test_secrets();
  printf("resources_secret: ok\n");
  return 0;
}
