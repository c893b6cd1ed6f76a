/* pem_fuzz.c: PEM and certificate loading (certs/load.c, certs/inspect.c):
 * ms_pem_parse_chain and, for each certificate, ms_cert_info_init (subject,
 * issuer, serial, SANs, validity) and ms_cert_info_to_json, as /certs shows
 * them; or ms_pem_parse_key without a password and with one (an encrypted
 * key), and ms_key_matches_cert against the chain in the same bytes.
 *
 * Input: a byte choosing chain or key (bit 0) and the password (bit 1),
 * then the PEM text. */
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <string.h>

#include "certs/certs.h"
#include "fuzz/fuzz_util.h"

static void inspect_chain(STACK_OF(X509) *chain) {
  for (size_t i = 0; i < sk_X509_num(chain); i++) {
    ms_cert_info info;
    if (ms_cert_info_init(&info, sk_X509_value(chain, i)) != 0) continue;
    FUZZ_CHECK(memchr(info.subject, '\0', sizeof(info.subject)) != NULL);
    FUZZ_CHECK(memchr(info.issuer, '\0', sizeof(info.issuer)) != NULL);
    FUZZ_CHECK(strlen(info.sha256_hex) == 64);
    for (size_t s = 0; s < info.san_count; s++)
      FUZZ_CHECK(info.sans[s] != NULL);
    char *text = ms_cert_info_to_json(&info);
    if (text != NULL) {
      cJSON *json = cJSON_Parse(text);
      FUZZ_CHECK(json != NULL);
      cJSON_Delete(json);
      free(text);
    }
    ms_cert_info_cleanup(&info);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size};
  uint8_t choices = fuzz_take_byte(&in);
  char err[MS_ERR_LEN];
  STACK_OF(X509) *chain = NULL;
  int chain_rc =
      ms_pem_parse_chain((const char *)in.data, in.len, "fuzz.pem", &chain, err, sizeof(err));
  if (chain_rc == 0) {
    FUZZ_CHECK(chain != NULL && sk_X509_num(chain) >= 1);
    if (!(choices & 1)) inspect_chain(chain);
  }
  if (choices & 1) {
    EVP_PKEY *key = NULL;
    const char *password = choices & 2 ? "fuzz-password" : NULL;
    if (ms_pem_parse_key((const char *)in.data, in.len, password, "fuzz.key", &key, err,
                         sizeof(err)) == 0) {
      FUZZ_CHECK(key != NULL);
      if (chain_rc == 0) ms_key_matches_cert(key, sk_X509_value(chain, 0));
      EVP_PKEY_free(key);
    }
  }
  sk_X509_pop_free(chain, X509_free);
  return 0;
}
