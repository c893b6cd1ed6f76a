/* describe.c: why a handshake failed, in one line a user can act on. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "certs/certs.h"
#include "certs/internal.h"

static const char *const failure_names[MS_TLS_FAILURE_COUNT] = {
    [MS_TLS_FAILURE_OTHER] = "handshake_failure",
    [MS_TLS_FAILURE_SNI_REQUIRED] = "sni_required",
    [MS_TLS_FAILURE_UNKNOWN_CA] = "unknown_ca",
    [MS_TLS_FAILURE_NAME_MISMATCH] = "name_mismatch",
    [MS_TLS_FAILURE_EXPIRED] = "certificate_expired",
    [MS_TLS_FAILURE_CLIENT_CERT] = "client_certificate_rejected",
    [MS_TLS_FAILURE_PROTOCOL] = "protocol_version",
    [MS_TLS_FAILURE_CONNECTION_CLOSED] = "connection_closed",
    [MS_TLS_FAILURE_TIMEOUT] = "timeout",
    [MS_TLS_FAILURE_NOT_TLS] = "not_tls",
};

const char *ms_tls_failure_name(ms_tls_failure failure) {
  if ((unsigned)failure >= MS_TLS_FAILURE_COUNT) return "handshake_failure";
  return failure_names[failure];
}

/* alert_name returns the RFC 8446 name of a TLS alert description. */
static const char *alert_name(int description) {
  switch (description) {
    case 0:
      return "close_notify";
    case 10:
      return "unexpected_message";
    case 20:
      return "bad_record_mac";
    case 21:
      return "decryption_failed";
    case 22:
      return "record_overflow";
    case 30:
      return "decompression_failure";
    case 40:
      return "handshake_failure";
    case 41:
      return "no_certificate";
    case 42:
      return "bad_certificate";
    case 43:
      return "unsupported_certificate";
    case 44:
      return "certificate_revoked";
    case 45:
      return "certificate_expired";
    case 46:
      return "certificate_unknown";
    case 47:
      return "illegal_parameter";
    case 48:
      return "unknown_ca";
    case 49:
      return "access_denied";
    case 50:
      return "decode_error";
    case 51:
      return "decrypt_error";
    case 70:
      return "protocol_version";
    case 71:
      return "insufficient_security";
    case 80:
      return "internal_error";
    case 86:
      return "inappropriate_fallback";
    case 90:
      return "user_canceled";
    case 100:
      return "no_renegotiation";
    case 109:
      return "missing_extension";
    case 110:
      return "unsupported_extension";
    case 112:
      return "unrecognized_name";
    case 113:
      return "bad_certificate_status_response";
    case 115:
      return "unknown_psk_identity";
    case 116:
      return "certificate_required";
    case 120:
      return "no_application_protocol";
    case 121:
      return "ech_required";
    default:
      return "unknown_alert";
  }
}

int ms_tls_record_type(const uint8_t *bytes, size_t len) {
  if (len < 3 || bytes[0] < 20 || bytes[0] > 23 || bytes[1] != 3 || bytes[2] > 4) return 0;
  return bytes[0];
}

/* quote_bytes writes what the peer's first bytes look like: "HTTP/1.1 400"
 * (the status line up to its code), printable text up to the end of its
 * first line, or the bytes in hex. */
static void quote_bytes(const uint8_t *bytes, size_t len, char *out, size_t out_len) {
  bool http = len >= 5 && memcmp(bytes, "HTTP/", 5) == 0;
  size_t text = 0;
  while (text < len && text < (http ? 12 : 16) && bytes[text] >= 0x20 && bytes[text] < 0x7f &&
         bytes[text] != '"' && bytes[text] != '\\')
    text++;
  bool line_end = text == len || bytes[text] == '\r' || bytes[text] == '\n';
  if (text >= 4 && (line_end || text >= (http ? 12u : 16u))) {
    snprintf(out, out_len, "%s\"%.*s\"", http ? "it looks like HTTP: " : "it begins ", (int)text,
             (const char *)bytes);
    return;
  }
  size_t used = (size_t)snprintf(out, out_len, "it begins with the bytes");
  for (size_t i = 0; i < len && i < 8 && used < out_len; i++)
    used += (size_t)snprintf(out + used, out_len - used, " %02x", bytes[i]);
}

/* classify_bytes: the peer's first bytes (`len` may be 0: unknown) say it
 * does not speak TLS. Sets the hint into `hint_buf`. */
static bool classify_bytes(const uint8_t *bytes, size_t len, const char *reason, char *hint_buf,
                           size_t hint_len) {
  if (len == 0) {
    /* Unknown bytes: BoringSSL's reason for a first record that is not
     * one (the version's first byte is not 3), or a request for a server. */
    if (strcmp(reason, "WRONG_VERSION_NUMBER") != 0 && strcmp(reason, "HTTP_REQUEST") != 0 &&
        strcmp(reason, "HTTPS_PROXY_REQUEST") != 0)
      return false;
    snprintf(hint_buf, hint_len,
             "the upstream answered with something that is not TLS; is the port a plaintext "
             "one?");
    return true;
  }
  if (ms_tls_record_type(bytes, len) == 22 && len >= 6 && bytes[5] == 1) {
    snprintf(hint_buf, hint_len,
             "the upstream sent our own ClientHello back: it echoes what it gets and is not a "
             "TLS server; is the port a plaintext one?");
    return true;
  }
  bool record = len >= 3 ? ms_tls_record_type(bytes, len) != 0
                         : bytes[0] >= 20 && bytes[0] <= 23 && (len < 2 || bytes[1] == 3);
  if (record) return false;
  char quoted[96];
  quote_bytes(bytes, len, quoted, sizeof(quoted));
  snprintf(hint_buf, hint_len,
           "the upstream answered with something that is not TLS (%s); is the port a plaintext "
           "one?",
           quoted);
  return true;
}

/* What the describer knows about one failure. */
typedef struct failure_facts {
  char reason[128];   /* BoringSSL's first error reason, or "" */
  int received;       /* alert received, or -1 */
  int sent;           /* alert sent, or -1 */
  long verify_result; /* X509_V_OK when verification did not fail */
  bool name_mismatch; /* the verify callback found no matching name */
  const char *detail; /* the verify callback's account, or "" */
  bool sni_sent;
  bool cert_requested; /* the upstream asked for a client certificate */
  bool have_cert;      /* we have one to send */
  int ssl_error;
} failure_facts;

static bool reason_is(const failure_facts *facts, const char *reason) {
  return strcmp(facts->reason, reason) == 0;
}

static ms_tls_failure classify_verify(const failure_facts *facts, const char **hint) {
  if (facts->name_mismatch || facts->verify_result == X509_V_ERR_HOSTNAME_MISMATCH ||
      facts->verify_result == X509_V_ERR_IP_ADDRESS_MISMATCH ||
      facts->verify_result == X509_V_ERR_EMAIL_MISMATCH) {
    *hint =
        "the upstream's certificate is not valid for the name checked "
        "(server_name or the endpoint's host; match_subject_alt_names when set)";
    return MS_TLS_FAILURE_NAME_MISMATCH;
  }
  switch (facts->verify_result) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_CHAIN_TOO_LONG:
      *hint = facts->verify_result == X509_V_ERR_CERT_CHAIN_TOO_LONG
                  ? "the upstream's chain is longer than verify_depth allows"
                  : "the upstream's certificate does not chain to trusted_ca";
      return MS_TLS_FAILURE_UNKNOWN_CA;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
      *hint =
          "the upstream's certificate is outside its validity period (expired, or clocks "
          "disagree)";
      return MS_TLS_FAILURE_EXPIRED;
    case X509_V_ERR_CERT_REVOKED:
      *hint = "the upstream's certificate is revoked by the configured CRL";
      return MS_TLS_FAILURE_OTHER;
    case X509_V_ERR_UNABLE_TO_GET_CRL:
      *hint = "the CRL file has no CRL from the upstream certificate's issuer";
      return MS_TLS_FAILURE_OTHER;
    default:
      return MS_TLS_FAILURE_OTHER;
  }
}

static ms_tls_failure classify_alert(const failure_facts *facts, const char **hint) {
  int received = facts->received;
  if (!facts->sni_sent && (received == 112 || received == 80)) {
    *hint = "the upstream may require SNI; sni is off or the endpoint is an IP";
    return MS_TLS_FAILURE_SNI_REQUIRED;
  }
  if (received == 112) {
    *hint = "the upstream does not serve the name sent in SNI";
    return MS_TLS_FAILURE_OTHER;
  }
  if (received == 116 || (facts->cert_requested && !facts->have_cert &&
                          (received == 40 || received == 42 || received == 46 || received == 48 ||
                           received == 49 || received == 41))) {
    *hint = "the upstream requires a client certificate; set certificate and private_key";
    return MS_TLS_FAILURE_CLIENT_CERT;
  }
  if (received == 45) {
    *hint = "the upstream says our client certificate expired; issue a new one";
    return MS_TLS_FAILURE_EXPIRED;
  }
  if (facts->have_cert && (received == 42 || received == 43 || received == 44 || received == 46 ||
                           received == 48 || received == 49)) {
    *hint = received == 48 ? "the upstream does not trust the CA that issued our client "
                             "certificate"
                           : "the upstream refused our client certificate";
    return MS_TLS_FAILURE_CLIENT_CERT;
  }
  if (facts->sent == 48) {
    *hint = "the upstream's certificate does not chain to trusted_ca";
    return MS_TLS_FAILURE_UNKNOWN_CA;
  }
  if (received == 70 || received == 71 || facts->sent == 70 || facts->sent == 71 ||
      reason_is(facts, "UNSUPPORTED_PROTOCOL") || reason_is(facts, "NO_SHARED_CIPHER") ||
      reason_is(facts, "NO_CIPHERS_AVAILABLE") || reason_is(facts, "WRONG_CIPHER_RETURNED")) {
    *hint = "no TLS version or cipher in common; check min/max version and ciphers";
    return MS_TLS_FAILURE_PROTOCOL;
  }
  if (received == 120) {
    *hint = "no ALPN protocol in common with the upstream";
    return MS_TLS_FAILURE_OTHER;
  }
  if (received == 40) {
    *hint = "the upstream refused the handshake: check versions, ciphers, curves and SNI";
    return MS_TLS_FAILURE_OTHER;
  }
  if (received < 0 && facts->sent < 0 &&
      (facts->ssl_error == SSL_ERROR_SYSCALL || facts->ssl_error == SSL_ERROR_ZERO_RETURN)) {
    *hint = facts->cert_requested && !facts->have_cert
                ? "the upstream closed the connection; it asked for a client certificate and "
                  "none is configured"
                : "the upstream closed the connection during the handshake";
    return facts->cert_requested && !facts->have_cert ? MS_TLS_FAILURE_CLIENT_CERT
                                                      : MS_TLS_FAILURE_CONNECTION_CLOSED;
  }
  return MS_TLS_FAILURE_OTHER;
}

/* append adds "; text" (or "text" first) to the line. */
__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t len, size_t *used,
                                                         const char *fmt, ...) {
  if (*used >= len) return;
  if (*used > 0) {
    int n = snprintf(buf + *used, len - *used, "; ");
    *used += n > 0 ? (size_t)n : 0;
    if (*used >= len) return;
  }
  va_list args;
  va_start(args, fmt);
  int n = vsnprintf(buf + *used, len - *used, fmt, args);
  va_end(args);
  *used += n > 0 ? (size_t)n : 0;
}

ms_tls_failure ms_tls_describe_failure(SSL *ssl, int ssl_error, bool sni_sent, char *buf,
                                       size_t len) {
  return ms_tls_describe_failure_seen(ssl, ssl_error, sni_sent, NULL, 0, buf, len);
}

ms_tls_failure ms_tls_describe_failure_seen(SSL *ssl, int ssl_error, bool sni_sent,
                                            const uint8_t *first, size_t first_len, char *buf,
                                            size_t len) {
  failure_facts facts;
  memset(&facts, 0, sizeof(facts));
  ms_err_reason(facts.reason, sizeof(facts.reason));
  const ms_ssl_state *state = ms_ssl_state_get(ssl, false);
  facts.received = state != NULL ? state->alert_received : -1;
  facts.sent = state != NULL ? state->alert_sent : -1;
  facts.name_mismatch = state != NULL && state->name_mismatch;
  facts.detail = state != NULL ? state->verify_detail : "";
  facts.cert_requested = state != NULL && state->certificate_requested;
  /* From the context: the SSL's own configuration is gone once the handshake
   * is done (SSL_set_shed_handshake_config), and a TLS 1.3 upstream refuses
   * our certificate only after that. */
  SSL_CTX *ctx = ssl != NULL ? SSL_get_SSL_CTX(ssl) : NULL;
  facts.have_cert = ctx != NULL && SSL_CTX_get0_certificate(ctx) != NULL;
  facts.sni_sent = sni_sent;
  facts.ssl_error = ssl_error;
  facts.verify_result = X509_V_OK;
  if (ctx != NULL && (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER)) {
    long result = SSL_get_verify_result(ssl);
    if (result != X509_V_ERR_INVALID_CALL) facts.verify_result = result;
  }

  const char *hint = NULL;
  char bytes_hint[200];
  ms_tls_failure failure = MS_TLS_FAILURE_OTHER;
  if (classify_bytes(first, first_len, facts.reason, bytes_hint, sizeof(bytes_hint))) {
    hint = bytes_hint;
    failure = MS_TLS_FAILURE_NOT_TLS;
  } else if (facts.verify_result != X509_V_OK || facts.name_mismatch) {
    failure = classify_verify(&facts, &hint);
  } else {
    failure = classify_alert(&facts, &hint);
  }

  size_t used = 0;
  if (len == 0) return failure;
  buf[0] = '\0';
  if (facts.reason[0] != '\0') {
    append(buf, len, &used, "%s", facts.reason);
  } else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) {
    append(buf, len, &used, "connection closed by the upstream");
  } else {
    append(buf, len, &used, "SSL error %d", ssl_error);
  }
  if (facts.received >= 0) {
    append(buf, len, &used, "received %salert %s (%d)",
           state->alert_received_fatal ? "" : "warning ", alert_name(facts.received),
           facts.received);
  }
  if (facts.sent >= 0) {
    append(buf, len, &used, "sent alert %s (%d)", alert_name(facts.sent), facts.sent);
  }
  if (facts.detail[0] != '\0') {
    append(buf, len, &used, "%s", facts.detail);
  } else if (facts.verify_result != X509_V_OK) {
    append(buf, len, &used, "certificate verify failed: %s",
           X509_verify_cert_error_string(facts.verify_result));
  }
  if (hint != NULL) append(buf, len, &used, "hint: %s", hint);
  return failure;
}
