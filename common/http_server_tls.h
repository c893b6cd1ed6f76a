/* http_server_tls.h: the TLS of one HTTPS connection of http_server.c
 * (private to common:http_server). The SSL reads and writes memory BIOs;
 * the connection moves the bytes between them and its libuv stream:
 * ciphertext read from the socket goes in with http_tls_receive, plaintext
 * comes out of http_tls_read (the handshake advances inside it), plaintext
 * to send goes in with http_tls_write, and what TLS has to send (handshake
 * messages, records) comes out of http_tls_take_output. */
#ifndef MS_HTTP_SERVER_TLS_H
#define MS_HTTP_SERVER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

typedef struct http_tls http_tls;

/* What http_tls_read returns besides a count of plaintext bytes. */
#define HTTP_TLS_CLOSED (-1) /* the client sent close_notify */
#define HTTP_TLS_FAILED (-2) /* a handshake or record error: close the socket */

/* http_tls_install_alpn makes `ctx` select http/1.1 and nothing else: a
 * client that offers ALPN without it gets no_application_protocol. */
void http_tls_install_alpn(SSL_CTX *ctx);

/* http_tls_new returns a server-side TLS session on `ctx` (the SSL holds
 * its own reference), or NULL when memory ran out. */
http_tls *http_tls_new(SSL_CTX *ctx);

/* http_tls_free frees it. Accepts NULL. */
void http_tls_free(http_tls *tls);

/* http_tls_read_buffer gives the buffer the socket's next bytes are read
 * into (owned by `tls`), and its size. */
char *http_tls_read_buffer(http_tls *tls, size_t *out_len);

/* http_tls_receive takes `len` ciphertext bytes read from the socket (from
 * the read buffer or elsewhere). Returns 0, or -1 when memory ran out. */
int http_tls_receive(http_tls *tls, const char *data, size_t len);

/* http_tls_read advances the handshake and decrypts up to `room` bytes
 * into `out`. Returns the bytes decrypted, 0 when more ciphertext is
 * needed, HTTP_TLS_CLOSED or HTTP_TLS_FAILED (with the reason, for a log
 * line, in `why`). */
ssize_t http_tls_read(http_tls *tls, char *out, size_t room, char *why, size_t why_len);

/* http_tls_established is true once the handshake is done. */
bool http_tls_established(const http_tls *tls);

/* http_tls_write encrypts `len` bytes for the output. Returns 0, or -1
 * (memory, or a connection whose TLS failed). */
int http_tls_write(http_tls *tls, const char *data, size_t len);

/* http_tls_take_output moves what TLS has to send into a new buffer
 * (*out, freed by the caller) of *out_len bytes. Returns 0 (*out is NULL
 * when there is nothing to send), or -1 when memory ran out. */
int http_tls_take_output(http_tls *tls, char **out, size_t *out_len);

#endif
