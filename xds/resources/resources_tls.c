/* resources_tls.c: the TLS messages a Cluster's UpstreamTlsContext and a
 * Secret share (TlsCertificate, CertificateValidationContext), and the
 * UpstreamTlsContext itself. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>
#include <openssl/ssl.h>

#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"
#include "xds/proto/type_urls.h"
#include "xds/resources/resources_internal.h"

typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext CommonTlsContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext
    CombinedValidationContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig SdsSecretConfig;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SubjectAltNameMatcher SubjectAltNameMatcher;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsParameters TlsParameters;
typedef Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext UpstreamTlsContext;
typedef Envoy__Type__Matcher__V3__StringMatcher StringMatcher;

/* Envoy's (and BoringSSL's) verification depth when max_verify_depth is unset. */
#define DEFAULT_VERIFY_DEPTH 100

/* StringMatcher field number of safe_regex, outside our subset. */
#define STRING_MATCHER_SAFE_REGEX 5

/* ---- TlsCertificate ----------------------------------------------------------- */

static void wipe_data_source_message(DataSource *source) {
  if (source == NULL) return;
  if (source->specifier_case == ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES &&
      source->inline_bytes.data != NULL) {
    OPENSSL_cleanse(source->inline_bytes.data, source->inline_bytes.len);
  } else if (source->specifier_case ==
                 ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING &&
             source->inline_string != NULL) {
    OPENSSL_cleanse(source->inline_string, strlen(source->inline_string));
  }
}

void ms_xds_wipe_tls_certificate_message(TlsCertificate *certificate) {
  if (certificate == NULL) return;
  wipe_data_source_message(certificate->private_key);
  wipe_data_source_message(certificate->password);
}

/* data_source reads the DataSource `source` at path `field`. */
static int data_source(ms_xds_decoder *decoder, const char *field, const DataSource *source,
                       ms_xds_data_source *out) {
  size_t saved = ms_xds_push(decoder, field);
  int rc = ms_xds_data_source_decode(decoder, source, out);
  ms_xds_pop(decoder, saved);
  return rc;
}

int ms_xds_tls_certificate_decode(ms_xds_decoder *decoder, const TlsCertificate *certificate,
                                  ms_xds_tls_certificate *out) {
  memset(out, 0, sizeof(*out));
  if (data_source(decoder, "certificate_chain", certificate->certificate_chain,
                  &out->certificate_chain) != 0 ||
      data_source(decoder, "private_key", certificate->private_key, &out->private_key) != 0 ||
      data_source(decoder, "password", certificate->password, &out->password) != 0) {
    ms_xds_tls_certificate_cleanup(out);
    return -1;
  }
  const char *missing = NULL;
  if (out->certificate_chain.kind == MS_XDS_DATA_NONE) missing = "certificate_chain";
  if (out->private_key.kind == MS_XDS_DATA_NONE) missing = "private_key";
  if (missing != NULL) {
    ms_xds_tls_certificate_cleanup(out);
    return ms_xds_fail_field(decoder, missing,
                             "required (private_key_provider and pkcs12 are not supported)");
  }
  return 0;
}

void ms_xds_tls_certificate_cleanup(ms_xds_tls_certificate *certificate) {
  ms_xds_data_source_cleanup(&certificate->certificate_chain);
  ms_xds_data_source_cleanup(&certificate->private_key);
  ms_xds_data_source_cleanup(&certificate->password);
}

/* ---- CertificateValidationContext -------------------------------------------- */

void ms_xds_validation_context_init(ms_xds_validation_context *validation) {
  memset(validation, 0, sizeof(*validation));
  validation->verify = true;
  validation->max_verify_depth = DEFAULT_VERIFY_DEPTH;
}

void ms_xds_validation_context_cleanup(ms_xds_validation_context *validation) {
  ms_xds_data_source_cleanup(&validation->trusted_ca);
  ms_xds_data_source_cleanup(&validation->crl);
  ms_xds_strings_free(validation->match_subject_alt_names,
                      validation->match_subject_alt_name_count);
  memset(validation, 0, sizeof(*validation));
}

static bool is_ip_literal(const char *text) {
  struct in6_addr address;
  return inet_pton(AF_INET, text, &address) == 1 || inet_pton(AF_INET6, text, &address) == 1;
}

/* exact_match returns the matcher's exact string (not empty), or reports at
 * the current path why it is refused and returns NULL. */
static const char *exact_match(ms_xds_decoder *decoder, const StringMatcher *matcher) {
  if (matcher == NULL) {
    ms_xds_fail(decoder, "required");
    return NULL;
  }
  static const char *const names[] = {
      [ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX] = "prefix",
      [ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX] = "suffix",
      [ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS] = "contains",
  };
  switch (matcher->match_pattern_case) {
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
      if (matcher->exact[0] == '\0') {
        ms_xds_fail_field(decoder, "exact", "must not be empty");
        return NULL;
      }
      return matcher->exact;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
      ms_xds_fail_field(decoder, names[matcher->match_pattern_case],
                        "not supported; only exact names are matched");
      return NULL;
    default: {
      bool regex = ms_xds_has_unknown_field(&matcher->base, STRING_MATCHER_SAFE_REGEX);
      ms_xds_fail(decoder, "%s; only exact names are matched",
                  regex ? "safe_regex is not supported" : "no exact name");
      return NULL;
    }
  }
}

/* add_name appends "prefix" + value to the list in `out`. */
static int add_name(ms_xds_decoder *decoder, ms_xds_validation_context *out, const char *prefix,
                    const char *value) {
  char **grown = realloc(out->match_subject_alt_names,
                         (out->match_subject_alt_name_count + 1) * sizeof(*grown));
  if (grown == NULL) return ms_xds_out_of_memory(decoder);
  out->match_subject_alt_names = grown;
  size_t size = strlen(prefix) + strlen(value) + 1;
  char *name = malloc(size);
  if (name == NULL) return ms_xds_out_of_memory(decoder);
  strcpy(name, prefix);
  strcat(name, value);
  grown[out->match_subject_alt_name_count++] = name;
  return 0;
}

static int typed_san(ms_xds_decoder *decoder, const SubjectAltNameMatcher *san,
                     ms_xds_validation_context *out) {
  const char *prefix;
  switch (san->san_type) {
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__DNS:
      prefix = "DNS:";
      break;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__URI:
      prefix = "URI:";
      break;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__IP_ADDRESS:
      prefix = "IP:";
      break;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__EMAIL:
      prefix = "EMAIL:";
      break;
    default:
      return ms_xds_fail_field(decoder, "san_type", "must be DNS, URI, IP_ADDRESS or EMAIL");
  }
  size_t saved = ms_xds_push(decoder, "matcher");
  const char *value = exact_match(decoder, san->matcher);
  if (value != NULL && strcmp(prefix, "IP:") == 0 && !is_ip_literal(value)) {
    char escaped[MS_XDS_ESCAPED_LEN];
    ms_xds_escape(value, escaped, sizeof(escaped));
    ms_xds_fail_field(decoder, "exact", "\"%s\" is not an IP address", escaped);
    value = NULL;
  }
  ms_xds_pop(decoder, saved);
  if (value == NULL) return -1;
  return add_name(decoder, out, prefix, value);
}

/* untyped_san: Envoy matches a match_subject_alt_names entry against every
 * DNS, URI, IP and email name of the certificate; so do we. */
static int untyped_san(ms_xds_decoder *decoder, const StringMatcher *matcher,
                       ms_xds_validation_context *out) {
  const char *value = exact_match(decoder, matcher);
  if (value == NULL) return -1;
  if (add_name(decoder, out, "DNS:", value) != 0 || add_name(decoder, out, "URI:", value) != 0 ||
      add_name(decoder, out, "EMAIL:", value) != 0) {
    return -1;
  }
  return is_ip_literal(value) ? add_name(decoder, out, "IP:", value) : 0;
}

int ms_xds_validation_context_decode(ms_xds_decoder *decoder,
                                     const CertificateValidationContext *context,
                                     bool need_trusted_ca, ms_xds_validation_context *out) {
  ms_xds_validation_context result;
  ms_xds_validation_context_init(&result);
  int rc = -1;
  if (data_source(decoder, "trusted_ca", context->trusted_ca, &result.trusted_ca) != 0 ||
      data_source(decoder, "crl", context->crl, &result.crl) != 0) {
    goto done;
  }
  for (size_t i = 0; i < context->n_match_typed_subject_alt_names; i++) {
    size_t saved = ms_xds_push(decoder, "match_typed_subject_alt_names");
    ms_xds_push_index(decoder, i);
    int san_rc = typed_san(decoder, context->match_typed_subject_alt_names[i], &result);
    ms_xds_pop(decoder, saved);
    if (san_rc != 0) goto done;
  }
  for (size_t i = 0; i < context->n_match_subject_alt_names; i++) {
    size_t saved = ms_xds_push(decoder, "match_subject_alt_names");
    ms_xds_push_index(decoder, i);
    int san_rc = untyped_san(decoder, context->match_subject_alt_names[i], &result);
    ms_xds_pop(decoder, saved);
    if (san_rc != 0) goto done;
  }
  if (context->max_verify_depth != NULL) {
    result.max_verify_depth = context->max_verify_depth->value;
  }
  switch (context->trust_chain_verification) {
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__TRUST_CHAIN_VERIFICATION__VERIFY_TRUST_CHAIN:
      break;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__TRUST_CHAIN_VERIFICATION__ACCEPT_UNTRUSTED:
      result.verify = false;
      break;
    default:
      ms_xds_fail_field(decoder, "trust_chain_verification",
                        "unknown value %d; use VERIFY_TRUST_CHAIN or ACCEPT_UNTRUSTED",
                        (int)context->trust_chain_verification);
      goto done;
  }
  if (need_trusted_ca && result.verify && result.trusted_ca.kind == MS_XDS_DATA_NONE) {
    ms_xds_fail_field(decoder, "trusted_ca",
                      "required: this sidecar verifies upstreams; set trusted_ca, or "
                      "trust_chain_verification: ACCEPT_UNTRUSTED");
    goto done;
  }
  rc = 0;
done:
  if (rc != 0) {
    ms_xds_validation_context_cleanup(&result);
    return -1;
  }
  *out = result;
  return 0;
}

/* ---- UpstreamTlsContext ------------------------------------------------------- */

/* sds_name reads an SdsSecretConfig at path `field`: a name, and a source
 * that is our ADS stream. */
static int sds_name(ms_xds_decoder *decoder, const char *field, const SdsSecretConfig *sds,
                    char **out) {
  size_t saved = ms_xds_push(decoder, field);
  int rc = -1;
  if (sds->name[0] == '\0') {
    ms_xds_fail_field(decoder, "name", "must not be empty");
  } else {
    size_t saved_source = ms_xds_push(decoder, "sds_config");
    rc = ms_xds_config_source_check(decoder, sds->sds_config);
    ms_xds_pop(decoder, saved_source);
    if (rc == 0) rc = ms_xds_strdup(decoder, sds->name, false, out);
  }
  ms_xds_pop(decoder, saved);
  return rc;
}

/* tls_version maps one of TlsParameters' versions; TLS_AUTO gives `automatic`. */
static int tls_version(ms_xds_decoder *decoder, const char *field, int version, uint16_t automatic,
                       uint16_t *out) {
  switch (version) {
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLS_AUTO:
      *out = automatic;
      return 0;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_2:
      *out = TLS1_2_VERSION;
      return 0;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_3:
      *out = TLS1_3_VERSION;
      return 0;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_0:
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_1:
      return ms_xds_fail_field(decoder, field,
                               "%s is refused: TLS 1.2 is the minimum; use TLSv1_2 or TLSv1_3",
                               version == 1 ? "TLSv1_0" : "TLSv1_1");
    default:
      return ms_xds_fail_field(decoder, field, "unknown value %d", version);
  }
}

static int tls_params(ms_xds_decoder *decoder, const TlsParameters *params,
                      ms_xds_upstream_tls *out) {
  out->min_version = TLS1_2_VERSION;
  out->max_version = TLS1_3_VERSION;
  if (params == NULL) return 0;
  size_t saved = ms_xds_push(decoder, "tls_params");
  int rc = -1;
  if (tls_version(decoder, "tls_minimum_protocol_version",
                  (int)params->tls_minimum_protocol_version, TLS1_2_VERSION,
                  &out->min_version) != 0 ||
      tls_version(decoder, "tls_maximum_protocol_version",
                  (int)params->tls_maximum_protocol_version, TLS1_3_VERSION,
                  &out->max_version) != 0) {
    goto done;
  }
  if (out->min_version > out->max_version) {
    ms_xds_fail(decoder, "tls_minimum_protocol_version is above tls_maximum_protocol_version");
    goto done;
  }
  for (size_t i = 0; i < params->n_ecdh_curves; i++) {
    if (params->ecdh_curves[i][0] == '\0' || strchr(params->ecdh_curves[i], ':') != NULL) {
      size_t saved_curve = ms_xds_push(decoder, "ecdh_curves");
      ms_xds_push_index(decoder, i);
      ms_xds_fail(decoder, "give one curve name per entry, like \"X25519\"");
      ms_xds_pop(decoder, saved_curve);
      goto done;
    }
  }
  if (ms_xds_join(decoder, params->cipher_suites, params->n_cipher_suites, ':', &out->ciphers) !=
          0 ||
      ms_xds_join(decoder, params->ecdh_curves, params->n_ecdh_curves, ':', &out->curves) != 0) {
    goto done;
  }
  rc = 0;
done:
  ms_xds_pop(decoder, saved);
  return rc;
}

static int alpn(ms_xds_decoder *decoder, const CommonTlsContext *common, ms_xds_upstream_tls *out) {
  if (common->n_alpn_protocols == 0) return 0;
  out->alpn = calloc(common->n_alpn_protocols, sizeof(*out->alpn));
  if (out->alpn == NULL) return ms_xds_out_of_memory(decoder);
  for (size_t i = 0; i < common->n_alpn_protocols; i++) {
    size_t length = strlen(common->alpn_protocols[i]);
    if (length < 1 || length > 255) {
      size_t saved = ms_xds_push(decoder, "alpn_protocols");
      ms_xds_push_index(decoder, i);
      ms_xds_fail(decoder, "a protocol name has 1 to 255 bytes, this one %zu", length);
      ms_xds_pop(decoder, saved);
      return -1;
    }
    if (ms_xds_strdup(decoder, common->alpn_protocols[i], false, &out->alpn[i]) != 0) return -1;
    out->alpn_count++;
  }
  return 0;
}

static int client_certificate(ms_xds_decoder *decoder, const CommonTlsContext *common,
                              ms_xds_upstream_tls *out) {
  size_t count = common->n_tls_certificates + common->n_tls_certificate_sds_secret_configs;
  if (count == 0) return 0;
  if (count > 1) {
    return ms_xds_fail(decoder,
                       "tls_certificates and tls_certificate_sds_secret_configs hold %zu "
                       "certificates; an upstream TLS context presents at most one",
                       count);
  }
  if (common->n_tls_certificates == 1) {
    size_t saved = ms_xds_push(decoder, "tls_certificates[0]");
    int rc = ms_xds_tls_certificate_decode(decoder, common->tls_certificates[0], &out->certificate);
    ms_xds_pop(decoder, saved);
    if (rc != 0) return -1;
    out->certificate_source = MS_XDS_TLS_SOURCE_INLINE;
    return 0;
  }
  if (sds_name(decoder, "tls_certificate_sds_secret_configs[0]",
               common->tls_certificate_sds_secret_configs[0], &out->certificate_sds_name) != 0) {
    return -1;
  }
  out->certificate_source = MS_XDS_TLS_SOURCE_SDS;
  return 0;
}

static int validation(ms_xds_decoder *decoder, const CommonTlsContext *common,
                      ms_xds_upstream_tls *out) {
  ms_xds_validation_context_init(&out->validation);
  switch (common->validation_context_type_case) {
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT: {
      size_t saved = ms_xds_push(decoder, "validation_context");
      int rc = ms_xds_validation_context_decode(decoder, common->validation_context, true,
                                                &out->validation);
      ms_xds_pop(decoder, saved);
      if (rc != 0) return -1;
      out->validation_source = MS_XDS_TLS_SOURCE_INLINE;
      return 0;
    }
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG:
      if (sds_name(decoder, "validation_context_sds_secret_config",
                   common->validation_context_sds_secret_config, &out->validation_sds_name) != 0) {
        return -1;
      }
      out->validation_source = MS_XDS_TLS_SOURCE_SDS;
      return 0;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT: {
      const CombinedValidationContext *combined = common->combined_validation_context;
      size_t saved = ms_xds_push(decoder, "combined_validation_context");
      int rc = -1;
      if (combined->validation_context_sds_secret_config == NULL) {
        ms_xds_fail_field(decoder, "validation_context_sds_secret_config", "required");
      } else if (sds_name(decoder, "validation_context_sds_secret_config",
                          combined->validation_context_sds_secret_config,
                          &out->validation_sds_name) == 0) {
        rc = 0;
        if (combined->default_validation_context != NULL) {
          size_t saved_default = ms_xds_push(decoder, "default_validation_context");
          rc = ms_xds_validation_context_decode(decoder, combined->default_validation_context,
                                                false, &out->validation);
          ms_xds_pop(decoder, saved_default);
        }
      }
      ms_xds_pop(decoder, saved);
      if (rc != 0) return -1;
      out->validation_source = MS_XDS_TLS_SOURCE_COMBINED;
      return 0;
    }
    default:
      return ms_xds_fail(decoder,
                         "no validation context; this sidecar verifies upstreams: set "
                         "validation_context or validation_context_sds_secret_config, or "
                         "trust_chain_verification: ACCEPT_UNTRUSTED");
  }
}

static int upstream_tls_context(ms_xds_decoder *decoder, const UpstreamTlsContext *context,
                                ms_xds_upstream_tls *out) {
  if (ms_xds_strdup(decoder, context->sni, true, &out->sni) != 0) return -1;
  out->session_reuse = context->max_session_keys == NULL || context->max_session_keys->value > 0;
  static const CommonTlsContext empty =
      ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT;
  const CommonTlsContext *common =
      context->common_tls_context != NULL ? context->common_tls_context : &empty;
  size_t saved = ms_xds_push(decoder, "common_tls_context");
  int rc = -1;
  if (tls_params(decoder, common->tls_params, out) == 0 && alpn(decoder, common, out) == 0 &&
      client_certificate(decoder, common, out) == 0 && validation(decoder, common, out) == 0) {
    rc = 0;
  }
  ms_xds_pop(decoder, saved);
  return rc;
}

int ms_xds_upstream_tls_decode(ms_xds_decoder *decoder,
                               const Envoy__Config__Core__V3__TransportSocket *socket,
                               ms_xds_upstream_tls *out) {
  memset(out, 0, sizeof(*out));
  if (socket == NULL) return 0; /* plaintext: present stays false */
  size_t saved = ms_xds_push(decoder, "typed_config");
  const Google__Protobuf__Any *any = socket->typed_config;
  const char *expected = MS_XDS_TYPE_URL_UPSTREAM_TLS_CONTEXT;
  int rc = -1;
  if (any == NULL || any->type_url == NULL || any->type_url[0] == '\0') {
    ms_xds_fail(decoder, "expected %s, got nothing", expected);
  } else if (strcmp(ms_xds_type_name(any->type_url), ms_xds_type_name(expected)) != 0) {
    char escaped[MS_XDS_ESCAPED_LEN];
    ms_xds_escape(any->type_url, escaped, sizeof(escaped));
    ms_xds_fail(decoder, "expected %s, got %s", expected, escaped);
  } else {
    UpstreamTlsContext *context = ms_xds_unpack(
        decoder, &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor,
        any->value.data, any->value.len);
    if (context != NULL) {
      out->present = true;
      rc = upstream_tls_context(decoder, context, out);
      if (context->common_tls_context != NULL) {
        for (size_t i = 0; i < context->common_tls_context->n_tls_certificates; i++) {
          ms_xds_wipe_tls_certificate_message(context->common_tls_context->tls_certificates[i]);
        }
      }
      envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__free_unpacked(context,
                                                                                         NULL);
      if (rc != 0) ms_xds_upstream_tls_cleanup(out);
    }
  }
  ms_xds_pop(decoder, saved);
  return rc;
}

void ms_xds_upstream_tls_cleanup(ms_xds_upstream_tls *tls) {
  free(tls->sni);
  free(tls->ciphers);
  free(tls->curves);
  ms_xds_strings_free(tls->alpn, tls->alpn_count);
  ms_xds_tls_certificate_cleanup(&tls->certificate);
  free(tls->certificate_sds_name);
  ms_xds_validation_context_cleanup(&tls->validation);
  free(tls->validation_sds_name);
  memset(tls, 0, sizeof(*tls));
}
