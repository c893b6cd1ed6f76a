/* server_test_util.h: fixtures for the xds-server tests in C (server_test,
 * server_csr_test, server_jwks_test): a scratch folder and the files in it,
 * CAs and certificates made at test time. Test-only (//xds-server:server_test_util);
 * every fixture that cannot be made ends the process with status 1 through
 * grpc_test_die, saying what failed. */
#ifndef MS_XDS_SERVER_TEST_UTIL_H
#define MS_XDS_SERVER_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "xds-server/server.h"

/* server_test_dir_init makes the test's scratch folder, a new folder
 * $TEST_TMPDIR/NAME-XXXXXX (/tmp without TEST_TMPDIR), where every NAME
 * below lives. Returns its path (static storage). */
const char *server_test_dir_init(const char *name);

/* server_test_path writes the path of NAME in the scratch folder to `out`
 * (`len` bytes). */
void server_test_path(char *out, size_t len, const char *name);

/* server_test_mkdir makes the folder NAME in the scratch folder. */
void server_test_mkdir(const char *name);

/* server_test_write_text replaces NAME with `text` through a rename (as
 * kubelet and editors do), so that a watcher sees the old file or the new
 * one, never half of one. */
void server_test_write_text(const char *name, const char *text);

/* server_test_write_pem writes, in PEM, `key` to KEY_NAME unless KEY_NAME is
 * NULL, then `cert` to CERT_NAME: a watcher that reloads on the certificate
 * finds its key already there. Both stay the caller's. */
void server_test_write_pem(const char *cert_name, X509 *cert, const char *key_name, EVP_PKEY *key);

/* server_test_write_ca makes a CA with common name `cn`, valid for a day,
 * and writes it with server_test_write_pem (KEY_NAME NULL: the certificate
 * only). The caller owns *out_cert and *out_key. */
void server_test_write_ca(const char *cn, const char *cert_name, const char *key_name,
                          X509 **out_cert, EVP_PKEY **out_key);

/* server_test_issue issues a certificate from `ca` for an hour: with
 * `server`, xds-server's (CN xds-server, DNS localhost, IP 127.0.0.1,
 * serverAuth); else a caller's (CN bootstrap, clientAuth). Either carries
 * the URI SAN `uri` unless it is NULL. The caller owns *out_cert and
 * *out_key. */
void server_test_issue(X509 *ca, EVP_PKEY *ca_key, const char *uri, bool server, X509 **out_cert,
                       EVP_PKEY **out_key);

/* What every xds-server test starts from, in the scratch folder: the
 * workload CA (ca/ca.crt, ca/ca.key) and xds-server's certificate from it
 * (server.crt, server.key), with the files' paths. */
typedef struct server_test_pki {
  X509 *ca;
  EVP_PKEY *ca_key;
  X509 *server_cert;
  EVP_PKEY *server_key;
  char ca_cert_path[1024], ca_key_path[1024], server_cert_path[1024], server_key_path[1024];
} server_test_pki;

/* server_test_pki_init makes the folder ca/, the workload CA named `ca_cn`
 * (server_test_write_ca) and xds-server's certificate (server_test_issue),
 * and writes them. Release with server_test_pki_cleanup. */
void server_test_pki_init(server_test_pki *pki, const char *ca_cn);

/* server_test_pki_options returns xds-server's options for these files:
 * listen_address "127.0.0.1:0", tls_cert, tls_key, ca_cert and ca_key set,
 * the rest zero. The strings are borrowed from `pki`. */
ms_xds_server_options server_test_pki_options(const server_test_pki *pki);

/* server_test_pki_cleanup frees the CA and the certificate with their keys. */
void server_test_pki_cleanup(server_test_pki *pki);

#endif
