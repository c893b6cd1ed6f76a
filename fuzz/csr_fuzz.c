/* csr_fuzz.c: a certificate signing request as the CA reads it
 * (ms_csr_parse, certs/csr.c): PEM, PKCS#10, the signature checked with the
 * request's own key, the key's type and size, the extension request and its
 * SANs. A parsed request has a key and URI strings; a refused one a
 * reason. */
#include <string.h>

#include "certs/certs.h"
#include "fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ms_csr_info info;
  char err[MS_ERR_LEN] = "";
  if (ms_csr_parse((const char *)data, size, &info, err, sizeof(err)) == 0) {
    FUZZ_CHECK(info.public_key != NULL);
    for (size_t i = 0; i < info.uri_count; i++)
      FUZZ_CHECK(info.uris[i] != NULL);
    ms_csr_info_cleanup(&info);
  } else {
    FUZZ_CHECK(err[0] != '\0');
  }
  return 0;
}
