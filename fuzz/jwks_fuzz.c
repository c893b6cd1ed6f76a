/* jwks_fuzz.c: a JSON Web Key Set as xds-server fetches it from the
 * Kubernetes API server (ms_jwks_parse, certs/jwks.c): JSON, each key's
 * kty/crv/use/alg/kid, RSA moduli and exponents and EC points in base64url,
 * refusing private material. A parsed set has at least one key; a token
 * checked against it is refused cleanly (it carries no valid signature). */
#include <string.h>

#include "certs/certs.h"
#include "fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ms_jwks *keys = NULL;
  char err[MS_ERR_LEN] = "";
  if (ms_jwks_parse((const char *)data, size, &keys, err, sizeof(err)) == 0) {
    FUZZ_CHECK(keys != NULL && ms_jwks_count(keys) >= 1);
    /* {"alg":"ES256","kid":"k"}.{"sub":"x"}.AAAA */
    static const char token[] = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsifQ.eyJzdWIiOiJ4In0.AAAA";
    ms_jwt_expect expect = {.issuer = "https://kubernetes.default.svc",
                            .audience = "istio-ca",
                            .now = 1700000000,
                            .skew_seconds = 60};
    ms_jwt_claims claims;
    FUZZ_CHECK(ms_jwt_verify(token, keys, &expect, &claims, err, sizeof(err)) != 0);
    ms_jwks_free(keys);
  } else {
    FUZZ_CHECK(keys == NULL && err[0] != '\0');
  }
  return 0;
}
