/* server_csr_test.c: Istio's CA API on xds-server, in-process, over our gRPC
 * client on loopback. Each case calls CreateCertificate as its own identity
 * (a bootstrap certificate with its own SPIFFE ID) so that the rate limit
 * (3 a minute here) only bites where the test means it to:
 *   - a CSR for the caller's SPIFFE ID gets a certificate for the CSR's key
 *     with that URI SAN, which verifies to the bundle (the last element);
 *   - a CSR for another identity is PERMISSION_DENIED, naming both;
 *   - an extra DNS SAN, or CA:TRUE, is refused;
 *   - validity above --cert-ttl is capped, below it is kept;
 *   - two messages, no message, garbage bytes, a CSR that is not one:
 *     INVALID_ARGUMENT;
 *   - the fourth call of one identity is RESOURCE_EXHAUSTED, another
 *     identity still gets its certificate; /status counts it all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"
#include "certs/test_csr.h"
#include "istio/v1/auth/ca.pb-c.h"
#include "xds-server/server.h"
#include "xds-server/server_test_util.h"
#include "xds/grpc/grpc_test_util.h"
#include "xds/proto/type_urls.h"

#define TTL 3600
#define RATE 3
#define TD "spiffe://cluster.local"

static uv_loop_t loop;
static server_test_pki pki; /* the workload CA, xds-server's certificate */
static X509 *boot_ca;       /* the bootstrap CA (--client-ca) */
static EVP_PKEY *boot_ca_key;
static uint16_t port;

/* ---- a CSR, as a sidecar (or a liar) would make it --------------------------- */

/* make_csr signs a PKCS#10 request with `key` for the URI `uri`, plus the
 * DNS name `dns` and basicConstraints CA:TRUE when asked. Caller frees. */
static char *make_csr(EVP_PKEY *key, const char *uri, const char *dns, bool ca_true) {
  char sans[600];
  snprintf(sans, sizeof(sans), "URI:%s%s%s", uri, dns != NULL ? ",DNS:" : "",
           dns != NULL ? dns : "");
  char *pem = ms_test_csr_pem(key, sans, ca_true);
  CHECK(pem != NULL);
  return pem;
}

/* pack_request returns an IstioCertificateRequest's bytes (caller frees). */
static uint8_t *pack_request(const char *csr, int64_t validity, size_t *out_len) {
  Istio__V1__Auth__IstioCertificateRequest request =
      ISTIO__V1__AUTH__ISTIO_CERTIFICATE_REQUEST__INIT;
  request.csr = (char *)csr;
  request.validity_duration = validity;
  *out_len = istio__v1__auth__istio_certificate_request__get_packed_size(&request);
  uint8_t *bytes = malloc(*out_len + 1);
  istio__v1__auth__istio_certificate_request__pack(&request, bytes);
  return bytes;
}

/* ---- one call ---------------------------------------------------------------- */

typedef struct result {
  bool closed;
  int status;
  char message[2048];
  Istio__V1__Auth__IstioCertificateResponse *response;
} result;

static void on_message(ms_grpc_call *call, const uint8_t *bytes, size_t len, void *arg) {
  result *r = arg;
  if (r->response == NULL)
    r->response = istio__v1__auth__istio_certificate_response__unpack(NULL, len, bytes);
}

static void on_close(ms_grpc_call *call, int status, const char *message, void *arg) {
  result *r = arg;
  r->closed = true;
  r->status = status;
  snprintf(r->message, sizeof(r->message), "%s", message);
}

static const ms_grpc_call_callbacks callbacks = {.on_message = on_message, .on_close = on_close};

/* call_as calls CreateCertificate as `identity` (a bootstrap certificate
 * with that SPIFFE ID) with `messages` messages, then half-closes. */
static void call_as(const char *identity, const uint8_t *const *messages, const size_t *lens,
                    int count, result *out) {
  memset(out, 0, sizeof(*out));
  X509 *cert;
  EVP_PKEY *key;
  server_test_issue(boot_ca, boot_ca_key, identity, false, &cert, &key);
  SSL_CTX *ctx = grpc_test_ctx_new(cert, key, pki.ca, SSL_VERIFY_PEER);
  grpc_test_channel_state state;
  ms_grpc_channel *channel = grpc_test_channel_new(&loop, ctx, port, 0, &state);
  ms_grpc_call *call = NULL;
  CHECK(ms_grpc_call_start(channel, MS_ISTIO_CA_METHOD, &callbacks, out, &call) == 0);
  for (int i = 0; i < count; i++)
    CHECK(ms_grpc_call_send(call, messages[i], lens[i]) == 0);
  ms_grpc_call_close_send(call);
  CHECK(grpc_test_run_until(&loop, &out->closed, 10000));
  ms_grpc_channel_close(channel);
  SSL_CTX_free(ctx);
  X509_free(cert);
  EVP_PKEY_free(key);
}

/* create asks for a certificate for `csr` as `identity`. */
static void create(const char *identity, const char *csr, int64_t validity, result *out) {
  size_t len;
  uint8_t *bytes = pack_request(csr, validity, &len);
  const uint8_t *messages[1] = {bytes};
  call_as(identity, messages, &len, 1, out);
  free(bytes);
}

static void result_cleanup(result *r) {
  if (r->response != NULL)
    istio__v1__auth__istio_certificate_response__free_unpacked(r->response, NULL);
  r->response = NULL;
}

/* ---- checks ------------------------------------------------------------------ */

/* check_certificate: the response's leaf certifies `key` for `spiffe_id`,
 * lasts about `validity` seconds, and verifies to the bundle (the last
 * element) through the elements between. */
static void check_certificate(const result *r, EVP_PKEY *key, const char *spiffe_id,
                              int64_t validity) {
  CHECK(r->status == MS_GRPC_OK);
  if (r->status != MS_GRPC_OK) fprintf(stderr, "  status %d: %s\n", r->status, r->message);
  CHECK(r->response != NULL && r->response->n_cert_chain >= 2);
  if (r->response == NULL || r->response->n_cert_chain < 2) return;
  size_t n = r->response->n_cert_chain;
  STACK_OF(X509) *leaf_chain = NULL, *middle = sk_X509_new_null(), *bundle = NULL;
  char err[MS_ERR_LEN];
  const char *leaf_pem = r->response->cert_chain[0], *bundle_pem = r->response->cert_chain[n - 1];
  CHECK(ms_pem_parse_chain(leaf_pem, strlen(leaf_pem), "leaf", &leaf_chain, err, sizeof(err)) == 0);
  CHECK(sk_X509_num(leaf_chain) == 1);
  CHECK(ms_pem_parse_chain(bundle_pem, strlen(bundle_pem), "bundle", &bundle, err, sizeof(err)) ==
        0);
  for (size_t i = 1; i + 1 < n; i++) {
    STACK_OF(X509) *one = NULL;
    CHECK(ms_pem_parse_chain(r->response->cert_chain[i], strlen(r->response->cert_chain[i]), "mid",
                             &one, err, sizeof(err)) == 0);
    while (one != NULL && sk_X509_num(one) > 0)
      sk_X509_push(middle, sk_X509_shift(one));
    sk_X509_free(one);
  }
  X509 *leaf = sk_X509_value(leaf_chain, 0);
  EVP_PKEY *leaf_key = X509_get_pubkey(leaf);
  CHECK(EVP_PKEY_cmp(leaf_key, key) == 1);
  EVP_PKEY_free(leaf_key);
  CHECK(X509_check_ca(leaf) == 0);
  ms_cert_info info;
  CHECK(ms_cert_info_init(&info, leaf) == 0);
  CHECK(info.san_count == 1);
  char want[600];
  snprintf(want, sizeof(want), "URI:%s", spiffe_id);
  CHECK(info.san_count >= 1 && strcmp(info.sans[0], want) == 0);
  int64_t left = info.not_after - (int64_t)time(NULL);
  CHECK(left > validity - 30 && left <= validity + 5);
  if (!(left > validity - 30 && left <= validity + 5))
    fprintf(stderr, "  lasts %lld s, wanted %lld\n", (long long)left, (long long)validity);
  ms_cert_info_cleanup(&info);
  X509_STORE *store = X509_STORE_new();
  for (size_t i = 0; i < sk_X509_num(bundle); i++)
    X509_STORE_add_cert(store, sk_X509_value(bundle, i));
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  CHECK(X509_STORE_CTX_init(ctx, store, leaf, middle));
  CHECK(X509_verify_cert(ctx) == 1);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  sk_X509_pop_free(leaf_chain, X509_free);
  sk_X509_pop_free(middle, X509_free);
  sk_X509_pop_free(bundle, X509_free);
}

static void check_refused(const result *r, int status, const char *part) {
  CHECK(r->closed && r->status == status && r->response == NULL);
  if (r->status != status)
    fprintf(stderr, "  wanted status %d, got %d: %s\n", status, r->status, r->message);
  CHECK_CONTAINS(r->message, part);
}

static EVP_PKEY *new_key(void) {
  EVP_PKEY *key;
  char err[MS_ERR_LEN];
  if (ms_key_new_p256(&key, err, sizeof(err)) != 0) grpc_test_die("key", err);
  return key;
}

int main(void) {
  server_test_dir_init("server_csr_test");
  uv_loop_init(&loop);
  server_test_pki_init(&pki, "CA API test CA");
  /* Bootstrap certificates come from their own CA (--client-ca). */
  server_test_write_ca("bootstrap CA", "bootstrap-ca.crt", NULL, &boot_ca, &boot_ca_key);
  char err[MS_ERR_LEN], boot_crt[1024];
  server_test_path(boot_crt, sizeof(boot_crt), "bootstrap-ca.crt");
  ms_xds_server_options options = server_test_pki_options(&pki);
  options.client_ca = boot_crt;
  options.cert_ttl_seconds = TTL;
  options.csr_rate_limit = RATE;
  ms_xds_server *server = NULL;
  if (ms_xds_server_new(&loop, &options, &server, err, sizeof(err)) != 0)
    grpc_test_die("server", err);
  port = ms_xds_server_port(server);
  EVP_PKEY *key = new_key();
  result r;

  /* The caller's own identity: signed, for its key, capped at --cert-ttl. */
  const char *alice = TD "/ns/a/sa/alice";
  char *csr = make_csr(key, alice, NULL, false);
  create(alice, csr, 0, &r);
  check_certificate(&r, key, alice, TTL);
  CHECK(r.response != NULL && r.response->n_cert_chain == 2); /* leaf, bundle: a root CA */
  result_cleanup(&r);
  create(TD "/ns/a/sa/alice2", csr, 0, &r); /* the same CSR, another caller */
  check_refused(&r, MS_GRPC_PERMISSION_DENIED,
                "the CSR asks for " TD "/ns/a/sa/alice; the caller proved " TD "/ns/a/sa/alice2");
  free(csr);

  /* Validity: above --cert-ttl is capped, below is kept. */
  const char *vera = TD "/ns/v/sa/vera";
  csr = make_csr(key, vera, NULL, false);
  create(vera, csr, 10 * TTL, &r);
  check_certificate(&r, key, vera, TTL);
  result_cleanup(&r);
  create(vera, csr, 600, &r);
  check_certificate(&r, key, vera, 600);
  result_cleanup(&r);
  free(csr);

  /* Another identity's CSR; an extra DNS SAN; CA:TRUE. */
  const char *bob = TD "/ns/b/sa/bob";
  csr = make_csr(key, alice, NULL, false);
  create(bob, csr, 0, &r);
  check_refused(&r, MS_GRPC_PERMISSION_DENIED,
                "the CSR asks for " TD "/ns/a/sa/alice; the caller proved " TD "/ns/b/sa/bob");
  free(csr);
  csr = make_csr(key, bob, "evil.example.com", false);
  create(bob, csr, 0, &r);
  check_refused(&r, MS_GRPC_PERMISSION_DENIED, "and 1 DNS, IP or other SAN");
  free(csr);
  csr = make_csr(key, bob, NULL, true);
  create(bob, csr, 0, &r);
  check_refused(&r, MS_GRPC_PERMISSION_DENIED, "as a CA");
  free(csr);

  /* Not one request: two messages, none, garbage, a CSR that is not one. */
  const char *gus = TD "/ns/g/sa/gus";
  csr = make_csr(key, gus, NULL, false);
  size_t len;
  uint8_t *bytes = pack_request(csr, 0, &len);
  const uint8_t *two[2] = {bytes, bytes};
  size_t two_lens[2] = {len, len};
  call_as(gus, two, two_lens, 2, &r);
  check_refused(&r, MS_GRPC_INVALID_ARGUMENT, "a second message came");
  call_as(gus, NULL, NULL, 0, &r);
  check_refused(&r, MS_GRPC_INVALID_ARGUMENT, "none came");
  const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  const uint8_t *one[1] = {garbage};
  size_t garbage_len = sizeof(garbage);
  call_as(gus, one, &garbage_len, 1, &r);
  check_refused(&r, MS_GRPC_INVALID_ARGUMENT, "not an IstioCertificateRequest");
  create(gus, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", 0,
         &r);
  check_refused(&r, MS_GRPC_INVALID_ARGUMENT, "the CSR: ");
  free(bytes);
  free(csr);

  /* The rate limit: RATE calls a minute per identity; others unaffected. */
  const char *rita = TD "/ns/r/sa/rita";
  csr = make_csr(key, rita, NULL, false);
  for (int i = 0; i < RATE; i++) {
    create(rita, csr, 0, &r);
    check_certificate(&r, key, rita, TTL);
    result_cleanup(&r);
  }
  create(rita, csr, 0, &r);
  check_refused(&r, MS_GRPC_RESOURCE_EXHAUSTED, "more than 3 certificates a minute");
  free(csr);
  const char *otto = TD "/ns/r/sa/otto";
  csr = make_csr(key, otto, NULL, false);
  create(otto, csr, 0, &r);
  check_certificate(&r, key, otto, TTL);
  result_cleanup(&r);
  free(csr);

  /* /status counts it all. */
  char *json = ms_xds_server_status_json(server);
  cJSON *status = cJSON_Parse(json);
  const cJSON *api = cJSON_GetObjectItem(status, "ca_api");
  const cJSON *refused = cJSON_GetObjectItem(api, "refused");
  CHECK(cJSON_GetObjectItem(api, "signed")->valuedouble == 1 + 2 + RATE + 1);
  CHECK(cJSON_GetObjectItem(api, "rate_limited")->valuedouble == 1);
  CHECK(cJSON_GetObjectItem(refused, "identity_mismatch")->valuedouble == 4);
  CHECK(cJSON_GetObjectItem(refused, "bad_request")->valuedouble == 4);
  CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(api, "limits"), "per_identity_per_minute")
            ->valuedouble == RATE);
  if (grpc_test_failures > 0) fprintf(stderr, "%s\n", json);
  cJSON_Delete(status);
  free(json);

  EVP_PKEY_free(key);
  ms_xds_server_close(server);
  grpc_test_close_loop(&loop);
  server_test_pki_cleanup(&pki);
  X509_free(boot_ca);
  EVP_PKEY_free(boot_ca_key);
  return grpc_test_finish("server_csr_test");
}
