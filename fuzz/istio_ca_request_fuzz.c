/* istio_ca_request_fuzz.c: a CreateCertificate message as xds-server reads
 * it before any policy (xds_csr_request_decode, xds-server/server_csr.c): the
 * IstioCertificateRequest unpacked (its metadata is a google.protobuf.Struct,
 * which nests), then its CSR parsed and its signature checked. The caller's
 * identity, the rate limit and the signing are not reached: they need a
 * server and a TLS peer. */
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "xds-server/server_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ms_csr_info info;
  int64_t validity;
  char err[1536] = "";
  if (xds_csr_request_decode(data, size, &info, &validity, err, sizeof(err)) == 0) {
    FUZZ_CHECK(info.public_key != NULL);
    ms_csr_info_cleanup(&info);
  } else {
    FUZZ_CHECK(err[0] != '\0');
  }
  return 0;
}
