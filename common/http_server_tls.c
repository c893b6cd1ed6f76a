/* http_server_tls.c: TLS for http_server.c over memory BIOs
 * (http_server_tls.h). The BIOs are BoringSSL's BIO_s_mem: the input holds
 * what the socket gave and TLS has not consumed yet, the output what TLS
 * wrote and the connection has not sent yet. */
#include "common/http_server_tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#define CIPHER_BUFFER_BYTES 16384

struct http_tls {
  SSL *ssl;
  BIO *network_in, *network_out; /* owned by ssl */
  bool failed;
  char cipher[CIPHER_BUFFER_BYTES]; /* the socket reads into this */
};

/* ALPN: "http/1.1" only (the wire form, a length before the name). */
static const uint8_t http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

static int select_alpn(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in,
                       unsigned in_len, void *arg) {
  (void)ssl;
  (void)arg;
  uint8_t *selected = NULL;
  if (SSL_select_next_proto(&selected, out_len, http11, sizeof(http11), in, in_len) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

void http_tls_install_alpn(SSL_CTX *ctx) {
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
}

http_tls *http_tls_new(SSL_CTX *ctx) {
  http_tls *tls = calloc(1, sizeof(*tls));
  if (tls == NULL) return NULL;
  tls->ssl = SSL_new(ctx);
  tls->network_in = BIO_new(BIO_s_mem());
  tls->network_out = BIO_new(BIO_s_mem());
  if (tls->ssl == NULL || tls->network_in == NULL || tls->network_out == NULL) {
    BIO_free(tls->network_in);
    BIO_free(tls->network_out);
    SSL_free(tls->ssl);
    free(tls);
    ERR_clear_error();
    return NULL;
  }
  SSL_set_bio(tls->ssl, tls->network_in, tls->network_out);
  SSL_set_accept_state(tls->ssl);
  /* Most connections are idle keep-alives: drop what the handshake needed
   * once it is done. */
  SSL_set_shed_handshake_config(tls->ssl, 1);
  return tls;
}

void http_tls_free(http_tls *tls) {
  if (tls == NULL) return;
  SSL_free(tls->ssl); /* and the BIOs */
  free(tls);
}

char *http_tls_read_buffer(http_tls *tls, size_t *out_len) {
  *out_len = sizeof(tls->cipher);
  return tls->cipher;
}

int http_tls_receive(http_tls *tls, const char *data, size_t len) {
  return BIO_write(tls->network_in, data, (int)len) == (int)len ? 0 : -1;
}

bool http_tls_established(const http_tls *tls) {
  return SSL_is_init_finished(tls->ssl);
}

ssize_t http_tls_read(http_tls *tls, char *out, size_t room, char *why, size_t why_len) {
  if (tls->failed) {
    snprintf(why, why_len, "the connection's TLS failed before");
    return HTTP_TLS_FAILED;
  }
  if (room == 0) return 0;
  int n = SSL_read(tls->ssl, out, room > INT32_MAX ? INT32_MAX : (int)room);
  if (n > 0) return n;
  int error = SSL_get_error(tls->ssl, n);
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return 0;
  if (error == SSL_ERROR_ZERO_RETURN) return HTTP_TLS_CLOSED;
  tls->failed = true;
  unsigned long code = ERR_peek_error();
  const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;
  snprintf(why, why_len, "%s", reason != NULL ? reason : "TLS error");
  ERR_clear_error();
  return HTTP_TLS_FAILED;
}

int http_tls_write(http_tls *tls, const char *data, size_t len) {
  while (len > 0 && !tls->failed) {
    int chunk = len > INT32_MAX ? INT32_MAX : (int)len;
    int n = SSL_write(tls->ssl, data, chunk);
    if (n <= 0) { /* a memory BIO never says "wait": this is an error */
      tls->failed = true;
      ERR_clear_error();
      return -1;
    }
    data += n;
    len -= (size_t)n;
  }
  return tls->failed ? -1 : 0;
}

int http_tls_take_output(http_tls *tls, char **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  const uint8_t *contents = NULL;
  size_t len = 0;
  if (!BIO_mem_contents(tls->network_out, &contents, &len) || len == 0) return 0;
  char *copy = malloc(len);
  if (copy == NULL) return -1;
  memcpy(copy, contents, len);
  BIO_reset(tls->network_out);
  *out = copy;
  *out_len = len;
  return 0;
}
