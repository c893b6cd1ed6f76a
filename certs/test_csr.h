/* test_csr.h (tests only): certificate requests made the way a liar would,
 * for the tests of ms_csr_parse and of xds-server's CreateCertificate: any
 * SANs, a CA:TRUE request, signed by the key. */
#ifndef MS_CERTS_TEST_CSR_H
#define MS_CERTS_TEST_CSR_H

#include <stdbool.h>

#include <openssl/evp.h>

/* ms_test_csr_pem returns a PEM PKCS#10 request for `key`, signed with it
 * (SHA-256), asking for the SANs `sans` in OpenSSL's config form
 * ("URI:spiffe://td/ns/a/sa/b,DNS:x", or NULL for none) and, when `ca`, for
 * basicConstraints critical CA:TRUE. The caller frees it; NULL when a step
 * failed (a SAN list OpenSSL does not parse, out of memory). */
char *ms_test_csr_pem(EVP_PKEY *key, const char *sans, bool ca);

#endif
