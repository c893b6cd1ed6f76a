/* resources_tls_test.c: a Cluster's UpstreamTlsContext, built in C, into
 * ms_xds_upstream_tls (xds/resources/resources.h): inline certificates and validation
 * (every DataSource kind, SAN matchers, CRL, depth, TLS parameters, ALPN),
 * SDS and combined validation contexts, every refusal and its exact
 * message.
 *
 * The first failed check ends the process with status 1. */
#include <stdio.h>
#include <string.h>

#include <openssl/ssl.h>

#include "xds/resources/resources_test_util.h"

static void test_cluster_tls_inline(void) {
  cluster_fixture f;
  cluster_fixture_init(&f);
  f.tls.sni = "orders.shop.svc";
  UInt32Value zero = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
  f.tls.max_session_keys = &zero;
  TlsParameters params = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__INIT;
  params.tls_minimum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_2;
  params.tls_maximum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_2;
  char *ciphers[] = {"ECDHE-ECDSA-AES128-GCM-SHA256", "[ECDHE-ECDSA-CHACHA20-POLY1305|AES256-GCM]"};
  char *curves[] = {"X25519"};
  params.cipher_suites = ciphers;
  params.n_cipher_suites = 2;
  params.ecdh_curves = curves;
  params.n_ecdh_curves = 1;
  f.common.tls_params = &params;
  char *alpn[] = {"h2"};
  f.common.alpn_protocols = alpn;
  f.common.n_alpn_protocols = 1;

  /* The client certificate: one of each DataSource kind. */
  DataSource chain = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  DataSource key = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  DataSource password = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  chain.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
  chain.inline_string = CERT_PEM;
  key.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
  key.inline_bytes.data = (uint8_t *)KEY_PEM;
  key.inline_bytes.len = strlen(KEY_PEM);
  password.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME;
  password.filename = "/etc/key.pass";
  TlsCertificate certificate = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
  certificate.certificate_chain = &chain;
  certificate.private_key = &key;
  certificate.password = &password;
  TlsCertificate *certificates[] = {&certificate, &certificate};
  f.common.tls_certificates = certificates;
  f.common.n_tls_certificates = 1;

  /* Validation: every SAN type, an untyped exact name, a CRL, a depth. */
  StringMatcher exact[5];
  SubjectAltNameMatcher san[5];
  SubjectAltNameMatcher *sans[5];
  static const char *const values[] = {"orders.shop.svc", "spiffe://shop/orders", "10.0.0.7",
                                       "ops@shop.example", "x"};
  static const int types[] = {
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__DNS,
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__URI,
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__IP_ADDRESS,
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__EMAIL,
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__OTHER_NAME,
  };
  for (size_t i = 0; i < 5; i++) {
    exact[i] = (StringMatcher)ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__INIT;
    exact[i].match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
    exact[i].exact = (char *)values[i];
    san[i] = (SubjectAltNameMatcher)
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__INIT;
    san[i].san_type = types[i];
    san[i].matcher = &exact[i];
    sans[i] = &san[i];
  }
  f.validation.match_typed_subject_alt_names = sans;
  f.validation.n_match_typed_subject_alt_names = 4;
  StringMatcher untyped[2] = {ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__INIT,
                              ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__INIT};
  untyped[0].match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
  untyped[0].exact = "192.168.1.1";
  untyped[1].match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX;
  untyped[1].suffix = ".shop.svc";
  StringMatcher *untyped_list[] = {&untyped[0], &untyped[1]};
  f.validation.match_subject_alt_names = untyped_list;
  f.validation.n_match_subject_alt_names = 1;
  DataSource crl = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
  crl.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
  crl.inline_string = CRL_PEM;
  f.validation.crl = &crl;
  UInt32Value depth = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
  depth.value = 2;
  f.validation.max_verify_depth = &depth;

  ms_xds_cluster cluster;
  decode_cluster(&f, &cluster);
  const ms_xds_upstream_tls *tls = &cluster.tls;
  CHECK_STR(tls->sni, "orders.shop.svc");
  CHECK(!tls->session_reuse);
  CHECK_INT(tls->min_version, TLS1_2_VERSION);
  CHECK_INT(tls->max_version, TLS1_2_VERSION);
  CHECK_STR(tls->ciphers,
            "ECDHE-ECDSA-AES128-GCM-SHA256:[ECDHE-ECDSA-CHACHA20-POLY1305|AES256-GCM]");
  CHECK_STR(tls->curves, "X25519");
  CHECK_INT(tls->alpn_count, 1);
  CHECK_STR(tls->alpn[0], "h2");
  CHECK_INT(tls->certificate_source, MS_XDS_TLS_SOURCE_INLINE);
  check_inline(&tls->certificate.certificate_chain, CERT_PEM);
  check_inline(&tls->certificate.private_key, KEY_PEM);
  check_file(&tls->certificate.password, "/etc/key.pass");
  CHECK_INT(tls->validation_source, MS_XDS_TLS_SOURCE_INLINE);
  check_inline(&tls->validation.crl, CRL_PEM);
  CHECK_INT(tls->validation.max_verify_depth, 2);
  check_names(
      &tls->validation,
      (const char *const[]){"DNS:orders.shop.svc", "URI:spiffe://shop/orders", "IP:10.0.0.7",
                            "EMAIL:ops@shop.example", "DNS:192.168.1.1", "URI:192.168.1.1",
                            "EMAIL:192.168.1.1", "IP:192.168.1.1", NULL});
  ms_xds_cluster_cleanup(&cluster);

  /* ACCEPT_UNTRUSTED: verification off, no CA needed. */
  f.validation.trusted_ca = NULL;
  f.validation.trust_chain_verification =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__TRUST_CHAIN_VERIFICATION__ACCEPT_UNTRUSTED;
  decode_cluster(&f, &cluster);
  CHECK(!cluster.tls.validation.verify);
  check_none(&cluster.tls.validation.trusted_ca);
  ms_xds_cluster_cleanup(&cluster);
  f.validation.trust_chain_verification =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__TRUST_CHAIN_VERIFICATION__VERIFY_TRUST_CHAIN;
  CLUSTER_REFUSED(&f, COMMON
                  ".validation_context.trusted_ca: required: this sidecar verifies "
                  "upstreams; set trusted_ca, or trust_chain_verification: "
                  "ACCEPT_UNTRUSTED");
  f.validation.trusted_ca = &f.trusted_ca;

  /* TLS parameters. */
  params.tls_minimum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_0;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_params.tls_minimum_protocol_version: TLSv1_0 is refused: TLS "
                  "1.2 is the minimum; use TLSv1_2 or TLSv1_3");
  params.tls_minimum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLS_AUTO;
  params.tls_maximum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_1;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_params.tls_maximum_protocol_version: TLSv1_1 is refused: TLS "
                  "1.2 is the minimum; use TLSv1_2 or TLSv1_3");
  params.tls_minimum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_3;
  params.tls_maximum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_2;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_params: tls_minimum_protocol_version is above "
                  "tls_maximum_protocol_version");
  params.tls_maximum_protocol_version =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLS_AUTO;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.tls.min_version, TLS1_3_VERSION);
  CHECK_INT(cluster.tls.max_version, TLS1_3_VERSION);
  ms_xds_cluster_cleanup(&cluster);
  curves[0] = "X25519:P-256";
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_params.ecdh_curves[0]: give one curve name per entry, like "
                  "\"X25519\"");
  curves[0] = "X25519";
  alpn[0] = "";
  CLUSTER_REFUSED(&f, COMMON ".alpn_protocols[0]: a protocol name has 1 to 255 bytes, this one 0");
  alpn[0] = "h2";

  /* Certificates. */
  f.common.n_tls_certificates = 2;
  CLUSTER_REFUSED(&f, COMMON
                  ": tls_certificates and tls_certificate_sds_secret_configs hold 2 "
                  "certificates; an upstream TLS context presents at most one");
  f.common.n_tls_certificates = 1;
  certificate.private_key = NULL;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_certificates[0].private_key: required (private_key_provider "
                  "and pkcs12 are not supported)");
  certificate.private_key = &key;
  certificate.certificate_chain = NULL;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_certificates[0].certificate_chain: required "
                  "(private_key_provider and pkcs12 are not supported)");
  certificate.certificate_chain = &chain;
  password.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE;
  password.environment_variable = "KEY_PASSWORD";
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_certificates[0].password: environment_variable is not "
                  "supported; use inline_bytes, inline_string or filename");
  password.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME;
  password.filename = "";
  CLUSTER_REFUSED(&f, COMMON ".tls_certificates[0].password.filename: must not be empty");
  password.filename = "/etc/key.pass";
  password.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER__NOT_SET;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_certificates[0].password: set inline_bytes, inline_string or "
                  "filename");
  password.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME;

  /* Matchers. */
  f.validation.n_match_typed_subject_alt_names = 5;
  CLUSTER_REFUSED(&f, COMMON
                  ".validation_context.match_typed_subject_alt_names[4].san_type: must "
                  "be DNS, URI, IP_ADDRESS or EMAIL");
  f.validation.n_match_typed_subject_alt_names = 4;
  exact[2].exact = "not-an-ip";
  CLUSTER_REFUSED(&f, COMMON
                  ".validation_context.match_typed_subject_alt_names[2].matcher.exact: "
                  "\"not-an-ip\" is not an IP address");
  exact[2].exact = "10.0.0.7";
  exact[1].match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX;
  CLUSTER_REFUSED(&f, COMMON
                  ".validation_context.match_typed_subject_alt_names[1].matcher.prefix: "
                  "not supported; only exact names are matched");
  exact[1].match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
  san[0].matcher = NULL;
  CLUSTER_REFUSED(&f, COMMON
                  ".validation_context.match_typed_subject_alt_names[0].matcher: "
                  "required");
  san[0].matcher = &exact[0];
  f.validation.n_match_subject_alt_names = 2;
  CLUSTER_REFUSED(&f, COMMON
                  ".validation_context.match_subject_alt_names[1].suffix: not "
                  "supported; only exact names are matched");
  f.validation.n_match_subject_alt_names = 1;

  /* No validation context at all. */
  f.common.validation_context_type_case =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE__NOT_SET;
  CLUSTER_REFUSED(&f, COMMON
                  ": no validation context; this sidecar verifies upstreams: set "
                  "validation_context or validation_context_sds_secret_config, or "
                  "trust_chain_verification: ACCEPT_UNTRUSTED");
  /* Nor a common_tls_context. */
  f.tls.common_tls_context = NULL;
  CLUSTER_REFUSED(&f, COMMON
                  ": no validation context; this sidecar verifies upstreams: set "
                  "validation_context or validation_context_sds_secret_config, or "
                  "trust_chain_verification: ACCEPT_UNTRUSTED");
  cluster_fixture_cleanup(&f);
}

static void test_cluster_tls_sds(void) {
  cluster_fixture f;
  cluster_fixture_init(&f);
  AggregatedConfigSource ads = ENVOY__CONFIG__CORE__V3__AGGREGATED_CONFIG_SOURCE__INIT;
  ConfigSource over_ads = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__INIT;
  over_ads.config_source_specifier_case =
      ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS;
  over_ads.ads = &ads;
  SdsSecretConfig cert_sds = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SDS_SECRET_CONFIG__INIT;
  cert_sds.name = "client-cert";
  cert_sds.sds_config = &over_ads;
  SdsSecretConfig *cert_sds_list[] = {&cert_sds};
  f.common.tls_certificate_sds_secret_configs = cert_sds_list;
  f.common.n_tls_certificate_sds_secret_configs = 1;
  SdsSecretConfig ca_sds = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SDS_SECRET_CONFIG__INIT;
  ca_sds.name = "mesh-ca"; /* no sds_config: ADS */
  f.common.validation_context_type_case =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG;
  f.common.validation_context_sds_secret_config = &ca_sds;

  ms_xds_cluster cluster;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.tls.certificate_source, MS_XDS_TLS_SOURCE_SDS);
  CHECK_STR(cluster.tls.certificate_sds_name, "client-cert");
  check_none(&cluster.tls.certificate.private_key);
  CHECK_INT(cluster.tls.validation_source, MS_XDS_TLS_SOURCE_SDS);
  CHECK_STR(cluster.tls.validation_sds_name, "mesh-ca");
  CHECK(cluster.tls.validation.verify);
  CHECK_INT(cluster.tls.validation.max_verify_depth, 100);
  ms_xds_cluster_cleanup(&cluster);

  /* A source other than ADS, and an empty name. */
  ConfigSource elsewhere = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__INIT;
  cert_sds.sds_config = &elsewhere;
  CLUSTER_REFUSED(&f, COMMON
                  ".tls_certificate_sds_secret_configs[0].sds_config: only ads (or "
                  "self) is supported: this sidecar receives every resource over its "
                  "one ADS stream");
  cert_sds.sds_config = &over_ads;
  ca_sds.name = "";
  CLUSTER_REFUSED(&f, COMMON ".validation_context_sds_secret_config.name: must not be empty");
  ca_sds.name = "mesh-ca";
  /* Inline and SDS certificates together. */
  TlsCertificate certificate = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
  TlsCertificate *certificates[] = {&certificate};
  f.common.tls_certificates = certificates;
  f.common.n_tls_certificates = 1;
  CLUSTER_REFUSED(&f, COMMON
                  ": tls_certificates and tls_certificate_sds_secret_configs hold 2 "
                  "certificates; an upstream TLS context presents at most one");
  f.common.n_tls_certificates = 0;

  /* Combined: the inline default's names, the SDS secret's CA. */
  CombinedValidationContext combined =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__COMBINED_CERTIFICATE_VALIDATION_CONTEXT__INIT;
  CertificateValidationContext defaults =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
  StringMatcher exact = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__INIT;
  exact.match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
  exact.exact = "spiffe://shop/orders";
  SubjectAltNameMatcher san =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__INIT;
  san.san_type =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__URI;
  san.matcher = &exact;
  SubjectAltNameMatcher *sans[] = {&san};
  defaults.match_typed_subject_alt_names = sans;
  defaults.n_match_typed_subject_alt_names = 1;
  combined.default_validation_context = &defaults;
  combined.validation_context_sds_secret_config = &ca_sds;
  f.common.validation_context_type_case =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT;
  f.common.combined_validation_context = &combined;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.tls.validation_source, MS_XDS_TLS_SOURCE_COMBINED);
  CHECK_STR(cluster.tls.validation_sds_name, "mesh-ca");
  check_none(&cluster.tls.validation.trusted_ca); /* the secret brings it: not required here */
  check_names(&cluster.tls.validation, (const char *const[]){"URI:spiffe://shop/orders", NULL});
  CHECK(cluster.tls.validation.verify);
  ms_xds_cluster_cleanup(&cluster);
  combined.default_validation_context = NULL;
  decode_cluster(&f, &cluster);
  CHECK_INT(cluster.tls.validation.match_subject_alt_name_count, 0);
  ms_xds_cluster_cleanup(&cluster);
  combined.validation_context_sds_secret_config = NULL;
  CLUSTER_REFUSED(&f, COMMON
                  ".combined_validation_context.validation_context_sds_secret_config: "
                  "required");
  cluster_fixture_cleanup(&f);
}

int main(void) {
  test_cluster_tls_inline();
  test_cluster_tls_sds();
  printf("resources_tls: ok\n");
  return 0;
}
