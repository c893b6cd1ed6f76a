/* bearer_token.h: a projected service-account token read from its file, as
 * the value of gRPC's "authorization" request header.
 *
 * kubelet rotates the file in place (a new token well before the old one
 * expires), so callers read it again at each use: each CreateCertificate
 * call and each new ADS stream. The token is a credential: it is held in
 * secure memory (certs.h: locked, left out of core dumps, wiped when freed)
 * and never put into an error message or a log line. */
#ifndef MS_BEARER_TOKEN_H
#define MS_BEARER_TOKEN_H

#include <stddef.h>

/* The largest token file read (Kubernetes tokens are about 1 KiB). */
#define MS_BEARER_TOKEN_MAX_BYTES 16384

/* ms_bearer_token_read reads the token at `path` (surrounding white space
 * trimmed) and returns 0 with *out_header, "Bearer <token>" NUL-terminated in
 * secure memory (the caller releases it with ms_secure_free), and, when
 * out_token is not NULL, *out_token pointing at the token inside it
 * (borrowed). Fails with -1 and a reason (the file cannot be read, is empty,
 * is larger than MS_BEARER_TOKEN_MAX_BYTES, or holds a line break or a
 * control character inside the token); the reason never quotes the file. */
int ms_bearer_token_read(const char *path, char **out_header, const char **out_token, char *err,
                         size_t err_len);

#endif
