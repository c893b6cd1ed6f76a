/* peer_check.c: what one connection verifies of the upstream's names, and
 * the record of why verification failed. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"
#include "certs/internal.h"
#include "common/time.h"

/* dns_matches compares a wanted DNS name with one from the certificate; the
 * certificate's name may be a wildcard "*.a.b", which stands for exactly one
 * label. */
static bool dns_matches(const char *wanted, const char *presented) {
  if (strcasecmp(wanted, presented) == 0) return true;
  if (strncmp(presented, "*.", 2) != 0) return false;
  const char *suffix = presented + 1;                /* ".a.b" */
  if (strchr(suffix + 1, '.') == NULL) return false; /* "*.com" matches nothing */
  const char *dot = strchr(wanted, '.');
  return dot != NULL && dot != wanted && strcasecmp(dot, suffix) == 0;
}

/* ip_normalize writes the canonical text of an IP literal, or returns false
 * when `text` is not one. */
static bool ip_normalize(const char *text, char *buf, size_t len) {
  unsigned char addr[16];
  if (inet_pton(AF_INET, text, addr) == 1) return inet_ntop(AF_INET, addr, buf, len) != NULL;
  if (inet_pton(AF_INET6, text, addr) == 1) return inet_ntop(AF_INET6, addr, buf, len) != NULL;
  return false;
}

static bool san_matches(const char *wanted, const char *presented) {
  if (strncasecmp(wanted, "DNS:", 4) == 0) {
    return strncmp(presented, "DNS:", 4) == 0 && dns_matches(wanted + 4, presented + 4);
  }
  if (strncasecmp(wanted, "IP:", 3) == 0) {
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
    return strncmp(presented, "IP:", 3) == 0 && ip_normalize(wanted + 3, a, sizeof(a)) &&
           ip_normalize(presented + 3, b, sizeof(b)) && strcmp(a, b) == 0;
  }
  return strcmp(wanted, presented) == 0; /* URI:, EMAIL: exact */
}

/* check_sans returns 1 when the leaf carries one of the wanted SANs, 0 when
 * not (with the reason in state), -1 when memory ran out. */
static int check_sans(ms_ssl_state *state, X509 *leaf) {
  const ms_peer_check *check = state->check;
  char **sans = NULL;
  size_t count = 0;
  if (ms_cert_sans(leaf, &sans, &count) != 0) return -1;
  for (size_t i = 0; i < check->match_san_count; i++) {
    for (size_t j = 0; j < count; j++) {
      if (san_matches(check->match_sans[i], sans[j])) {
        ms_strv_free(sans, count);
        return 1;
      }
    }
  }
  char wanted[150], presented[190]; /* fits verify_detail with the words */
  ms_sans_format(check->match_sans, check->match_san_count, wanted, sizeof(wanted));
  ms_sans_format((const char *const *)sans, count, presented, sizeof(presented));
  snprintf(state->verify_detail, sizeof(state->verify_detail),
           "no subject alt name matched: wanted %s, certificate has %s", wanted, presented);
  state->name_mismatch = true;
  ms_strv_free(sans, count);
  return 0;
}

/* record_failure remembers why the chain failed, for the describer. */
static void record_failure(ms_ssl_state *state, int error, int depth, X509 *cert) {
  char subject[200] = "?";
  if (cert != NULL && ms_name_oneline(X509_get_subject_name(cert), subject, sizeof(subject)) != 0) {
    ERR_clear_error();
  }
  if (error == X509_V_ERR_HOSTNAME_MISMATCH || error == X509_V_ERR_IP_ADDRESS_MISMATCH) {
    char **sans = NULL;
    size_t count = 0;
    char presented[200] = "[]";
    if (cert != NULL && ms_cert_sans(cert, &sans, &count) == 0) {
      ms_sans_format((const char *const *)sans, count, presented, sizeof(presented));
      ms_strv_free(sans, count);
    }
    const char *host =
        state->check != NULL && state->check->host != NULL ? state->check->host : "?";
    snprintf(state->verify_detail, sizeof(state->verify_detail),
             "certificate is not valid for %s: certificate has %s", host, presented);
    state->name_mismatch = true;
    return;
  }
  char when[32] = "";
  int64_t seconds = 0;
  if (cert != NULL && error == X509_V_ERR_CERT_HAS_EXPIRED &&
      ms_asn1_time_to_unix(X509_get0_notAfter(cert), &seconds) == 0) {
    ms_time_rfc3339(seconds, when, sizeof(when));
    snprintf(state->verify_detail, sizeof(state->verify_detail),
             "certificate %s at depth %d expired at %s", subject, depth, when);
    return;
  }
  if (cert != NULL && error == X509_V_ERR_CERT_NOT_YET_VALID &&
      ms_asn1_time_to_unix(X509_get0_notBefore(cert), &seconds) == 0) {
    ms_time_rfc3339(seconds, when, sizeof(when));
    snprintf(state->verify_detail, sizeof(state->verify_detail),
             "certificate %s at depth %d is not valid before %s", subject, depth, when);
    return;
  }
  snprintf(state->verify_detail, sizeof(state->verify_detail), "%s (depth %d, subject %s)",
           X509_verify_cert_error_string(error), depth, subject);
}

int ms_verify_callback(int preverify_ok, X509_STORE_CTX *store) {
  SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
  int depth = X509_STORE_CTX_get_error_depth(store);
  X509 *cert = X509_STORE_CTX_get_current_cert(store);
  if (!preverify_ok) {
    ms_ssl_state *state = ms_ssl_state_get(ssl, true);
    if (state != NULL && state->verify_detail[0] == '\0') {
      record_failure(state, X509_STORE_CTX_get_error(store), depth, cert);
    }
    return 0;
  }
  ms_ssl_state *state = ms_ssl_state_get(ssl, false);
  if (depth != 0 || cert == NULL || state == NULL || state->check == NULL ||
      state->check->match_san_count == 0) {
    return 1;
  }
  int matched = check_sans(state, cert);
  if (matched == 1) return 1;
  X509_STORE_CTX_set_error(
      store, matched == 0 ? X509_V_ERR_APPLICATION_VERIFICATION : X509_V_ERR_OUT_OF_MEM);
  return 0;
}

int ms_ssl_set_peer_check(SSL *ssl, const ms_peer_check *check) {
  int mode = SSL_get_verify_mode(ssl);
  if ((mode & SSL_VERIFY_PEER) == 0 || check == NULL) return 0;
  ms_ssl_state *state = ms_ssl_state_get(ssl, true);
  if (state == NULL) return -1;
  state->check = check;
  SSL_set_verify(ssl, mode, ms_verify_callback);
  if (check->match_san_count > 0 || check->host == NULL || check->host[0] == '\0') return 0;

  /* An IPv6 literal may come in brackets, as in a URL. */
  char host[256];
  size_t len = strlen(check->host);
  if (len >= 2 && check->host[0] == '[' && check->host[len - 1] == ']') {
    snprintf(host, sizeof(host), "%.*s", (int)(len - 2), check->host + 1);
  } else {
    snprintf(host, sizeof(host), "%s", check->host);
  }
  X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
  unsigned char addr[16];
  bool is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
  int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
                 : X509_VERIFY_PARAM_set1_host(param, host, strlen(host));
  if (!ok) {
    ERR_clear_error();
    return -1;
  }
  return 0;
}
