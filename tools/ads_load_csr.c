/* ads_load_csr.c: the CreateCertificate benchmark (ads_load.h): N
 * simulated sidecars, each with its own key and CSR made before the timed
 * phase, over M channels; with a token file, each also with its own
 * Kubernetes-style service-account token (ES256) so that each is its own
 * identity to the server's rate limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/base64.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/mem.h>
#include <openssl/sha.h>

#include "certs/certs.h"
#include "common/file.h"
#include "istio/v1/auth/ca.pb-c.h"
#include "tools/ads_load.h"
#include "xds/grpc/grpc.h"
#include "xds/proto/type_urls.h"

#define LATENCY_CALLS 100
#define TOKEN_KID "ads-load"

typedef struct sidecar {
  uint8_t *request; /* a packed IstioCertificateRequest */
  size_t request_len;
  char *authorization; /* "Bearer ..." or NULL */
} sidecar;

typedef struct bench {
  uv_loop_t *loop;
  const ms_csr_bench_options *options;
  sidecar *sidecars;
  ms_grpc_channel **channels;
  int channels_ready, channels_closed;
  int next, in_flight, done, failed;
  int64_t *latency_us;
  char last_error[512];
} bench;

typedef struct call_arg {
  bench *bench;
  int index;
  int64_t started_us;
  bool got_chain;
} call_arg;

static int64_t now_us(void) {
  struct timeval now;
  gettimeofday(&now, NULL);
  return (int64_t)now.tv_sec * 1000000 + now.tv_usec;
}

/* ---- tokens ------------------------------------------------------------------- */

/* base64url writes `len` bytes unpadded into `out` (4/3 len + 4). */
static void base64url(const uint8_t *bytes, size_t len, char *out) {
  size_t n = EVP_EncodeBlock((uint8_t *)out, bytes, len);
  for (size_t i = 0; i < n; i++) {
    if (out[i] == '+') out[i] = '-';
    if (out[i] == '/') out[i] = '_';
  }
  while (n > 0 && out[n - 1] == '=')
    n--;
  out[n] = '\0';
}

/* coordinate writes a P-256 coordinate as 32 bytes, base64url. */
static void coordinate(const BIGNUM *value, char *out) {
  uint8_t bytes[32];
  BN_bn2bin_padded(bytes, sizeof(bytes), value);
  base64url(bytes, sizeof(bytes), out);
}

/* write_jwks writes the key set of `key` (EC P-256, kid TOKEN_KID). */
static int write_jwks(const char *path, EVP_PKEY *key) {
  const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(key);
  BIGNUM *x = BN_new(), *y = BN_new();
  char x64[64], y64[64], text[512];
  int rc = -1;
  if (x != NULL && y != NULL &&
      EC_POINT_get_affine_coordinates_GFp(EC_KEY_get0_group(ec), EC_KEY_get0_public_key(ec), x, y,
                                          NULL)) {
    coordinate(x, x64);
    coordinate(y, y64);
    int n = snprintf(text, sizeof(text),
                     "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"kid\": \"" TOKEN_KID
                     "\", \"use\": \"sig\", \"alg\": \"ES256\", \"x\": \"%s\", \"y\": \"%s\"}]}\n",
                     x64, y64);
    char err[MS_ERR_LEN];
    rc = ms_file_write_atomic(path, text, (size_t)n, 0644, err, sizeof(err));
    if (rc != 0) fprintf(stderr, "ads_load: %s\n", err);
  }
  BN_free(x);
  BN_free(y);
  return rc;
}

/* mint_token returns "Bearer JWT" for service account `name` in `ns`,
 * signed ES256 with `key` (malloc'd), or NULL. */
static char *mint_token(EVP_PKEY *key, const ms_csr_bench_options *o, const char *ns,
                        const char *name) {
  char header[128], payload[1024], header64[200], payload64[1400], signature64[100];
  snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"kid\":\"" TOKEN_KID "\",\"typ\":\"JWT\"}");
  int64_t now = (int64_t)time(NULL);
  snprintf(payload, sizeof(payload),
           "{\"iss\":\"%s\",\"aud\":[\"%s\"],\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,"
           "\"sub\":\"system:serviceaccount:%s:%s\",\"kubernetes.io\":{\"namespace\":\"%s\","
           "\"serviceaccount\":{\"name\":\"%s\",\"uid\":\"0\"}}}",
           o->token_issuer, o->token_audience, (long long)now, (long long)now,
           (long long)now + 3600, ns, name, ns, name);
  base64url((const uint8_t *)header, strlen(header), header64);
  base64url((const uint8_t *)payload, strlen(payload), payload64);
  char signing_input[1700];
  snprintf(signing_input, sizeof(signing_input), "%s.%s", header64, payload64);
  uint8_t digest[32], raw[64];
  SHA256((const uint8_t *)signing_input, strlen(signing_input), digest);
  ECDSA_SIG *sig = ECDSA_do_sign(digest, sizeof(digest), EVP_PKEY_get0_EC_KEY(key));
  if (sig == NULL) return NULL;
  const BIGNUM *r, *s;
  ECDSA_SIG_get0(sig, &r, &s);
  BN_bn2bin_padded(raw, 32, r);
  BN_bn2bin_padded(raw + 32, 32, s);
  ECDSA_SIG_free(sig);
  base64url(raw, sizeof(raw), signature64);
  size_t len = strlen(signing_input) + strlen(signature64) + 16;
  char *token = malloc(len);
  if (token != NULL) snprintf(token, len, "Bearer %s.%s", signing_input, signature64);
  return token;
}

/* ---- preparing ------------------------------------------------------------------ */

/* prepare makes every sidecar's key, CSR (and token). */
static int prepare(bench *b) {
  const ms_csr_bench_options *o = b->options;
  EVP_PKEY *signer = NULL;
  char err[MS_ERR_LEN];
  if (o->jwks_out != NULL &&
      (ms_key_new_p256(&signer, err, sizeof(err)) != 0 || write_jwks(o->jwks_out, signer) != 0))
    return -1;
  int rc = 0;
  for (int i = 0; i < o->sidecars && rc == 0; i++) {
    char name[64], spiffe_id[300];
    snprintf(name, sizeof(name), "csr-%d", i);
    if (signer != NULL)
      snprintf(spiffe_id, sizeof(spiffe_id), "spiffe://%s/ns/load/sa/%s", o->trust_domain, name);
    else
      snprintf(spiffe_id, sizeof(spiffe_id), "%s", o->spiffe_id);
    EVP_PKEY *key = NULL;
    char *csr = NULL;
    if (ms_key_new_p256(&key, err, sizeof(err)) != 0 ||
        ms_csr_new(key, spiffe_id, &csr, err, sizeof(err)) != 0) {
      fprintf(stderr, "ads_load: %s\n", err);
      rc = -1;
    } else {
      Istio__V1__Auth__IstioCertificateRequest request =
          ISTIO__V1__AUTH__ISTIO_CERTIFICATE_REQUEST__INIT;
      request.csr = csr;
      sidecar *s = &b->sidecars[i];
      s->request_len = istio__v1__auth__istio_certificate_request__get_packed_size(&request);
      s->request = malloc(s->request_len);
      if (s->request != NULL)
        istio__v1__auth__istio_certificate_request__pack(&request, s->request);
      if (signer != NULL) s->authorization = mint_token(signer, o, "load", name);
      if (s->request == NULL || (signer != NULL && s->authorization == NULL)) rc = -1;
    }
    EVP_PKEY_free(key);
    free(csr);
  }
  EVP_PKEY_free(signer);
  return rc;
}

/* ---- calling -------------------------------------------------------------------- */

static void start_next(bench *b);

static void on_message(ms_grpc_call *call, const uint8_t *bytes, size_t len, void *arg) {
  call_arg *a = arg;
  Istio__V1__Auth__IstioCertificateResponse *response =
      istio__v1__auth__istio_certificate_response__unpack(NULL, len, bytes);
  a->got_chain = response != NULL && response->n_cert_chain >= 2;
  if (response != NULL) istio__v1__auth__istio_certificate_response__free_unpacked(response, NULL);
}

static void on_close(ms_grpc_call *call, int status, const char *message, void *arg) {
  call_arg *a = arg;
  bench *b = a->bench;
  b->in_flight--;
  b->done++;
  if (status != MS_GRPC_OK || !a->got_chain) {
    b->failed++;
    snprintf(b->last_error, sizeof(b->last_error), "%s: %s", ms_grpc_status_name(status), message);
  }
  if (b->latency_us != NULL && a->index < LATENCY_CALLS)
    b->latency_us[a->index] = now_us() - a->started_us;
  free(a);
  start_next(b);
}

static const ms_grpc_call_callbacks call_callbacks = {.on_message = on_message,
                                                      .on_close = on_close};

/* start_next starts calls until `concurrency` are in flight or every
 * sidecar has asked. */
static void start_next(bench *b) {
  const ms_csr_bench_options *o = b->options;
  int limit = b->latency_us != NULL ? 1 : o->concurrency;
  int last = b->latency_us != NULL ? LATENCY_CALLS : o->sidecars;
  while (b->in_flight < limit && b->next < last) {
    int i = b->next++;
    sidecar *s = &b->sidecars[i % o->sidecars];
    call_arg *a = calloc(1, sizeof(*a));
    a->bench = b;
    a->index = i;
    a->started_us = now_us();
    ms_grpc_metadata auth = {"authorization", s->authorization};
    ms_grpc_call *call = NULL;
    if (ms_grpc_call_start_with_metadata(b->channels[i % o->channels], MS_ISTIO_CA_METHOD, &auth,
                                         s->authorization != NULL ? 1 : 0, &call_callbacks, a,
                                         &call) != 0) {
      free(a);
      b->done++;
      b->failed++;
      continue;
    }
    b->in_flight++;
    ms_grpc_call_send(call, s->request, s->request_len);
    ms_grpc_call_close_send(call);
  }
}

static void on_state(ms_grpc_channel *channel, ms_grpc_channel_state state, const char *reason,
                     void *arg) {
  bench *b = arg;
  if (state == MS_GRPC_CHANNEL_READY) b->channels_ready++;
  if (state == MS_GRPC_CHANNEL_CLOSED) {
    b->channels_closed++;
    snprintf(b->last_error, sizeof(b->last_error), "%s", reason);
  }
}

static const ms_grpc_channel_callbacks channel_callbacks = {.on_state = on_state};

static void on_tick(uv_timer_t *timer) {}

/* run_until runs the loop until *value >= want or `timeout_ms`. */
static bool run_until(bench *b, const int *value, int want, uint64_t timeout_ms) {
  uv_timer_t tick;
  uv_timer_init(b->loop, &tick);
  uv_timer_start(&tick, on_tick, 2, 2);
  uint64_t deadline = uv_now(b->loop) + timeout_ms;
  while (*value < want && b->channels_closed == 0 && uv_now(b->loop) < deadline)
    uv_run(b->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(b->loop, UV_RUN_NOWAIT);
  return *value >= want;
}

/* cpu_ticks returns a process's utime + stime in clock ticks, or -1. */
static long cpu_ticks(const char *pid) {
  char path[64], text[1024];
  snprintf(path, sizeof(path), "/proc/%s/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(text, 1, sizeof(text) - 1, f);
  fclose(f);
  text[n] = '\0';
  const char *p = strrchr(text, ')'); /* the command may hold spaces */
  long utime = 0, stime = 0;
  if (p == NULL ||
      sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) != 2)
    return -1;
  return utime + stime;
}

static int compare_us(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int ms_csr_bench_run(uv_loop_t *loop, const ms_csr_bench_options *options) {
  bench b = {.loop = loop, .options = options};
  b.sidecars = calloc((size_t)options->sidecars, sizeof(sidecar));
  b.channels = calloc((size_t)options->channels, sizeof(ms_grpc_channel *));
  int64_t latency[LATENCY_CALLS];
  if (b.sidecars == NULL || b.channels == NULL) return -1;
  int64_t t0 = now_us();
  int failed = prepare(&b) != 0;
  printf("csr: %d keys and CSRs%s made in %.2f s (before the timed phase)\n", options->sidecars,
         options->jwks_out != NULL ? " and service-account tokens" : "",
         (double)(now_us() - t0) / 1e6);
  for (int i = 0; !failed && i < options->channels; i++) {
    ms_grpc_channel_options channel_options = {
        .address = options->address,
        .ssl_ctx = options->ssl_ctx,
        .server_name = options->server_name != NULL ? options->server_name : "localhost",
        .connect_timeout_ms = 20000,
    };
    failed |=
        ms_grpc_channel_new(loop, &channel_options, &channel_callbacks, &b, &b.channels[i]) != 0;
  }
  if (!failed && !run_until(&b, &b.channels_ready, options->channels, 20000)) {
    fprintf(stderr, "ads_load: channels not ready: %s\n", b.last_error);
    failed = 1;
  }
  if (!failed && options->sidecars >= LATENCY_CALLS) {
    /* One round trip: LATENCY_CALLS sequential calls, the median. */
    b.latency_us = latency;
    start_next(&b);
    run_until(&b, &b.done, LATENCY_CALLS, options->timeout_ms);
    qsort(latency, LATENCY_CALLS, sizeof(latency[0]), compare_us);
    printf(
        "csr: one round trip (median of %d sequential): %.2f ms (min %.2f, max %.2f); %d "
        "failed%s%s\n",
        LATENCY_CALLS, latency[LATENCY_CALLS / 2] / 1000.0, latency[0] / 1000.0,
        latency[LATENCY_CALLS - 1] / 1000.0, b.failed, b.failed > 0 ? ": " : "",
        b.failed > 0 ? b.last_error : "");
    failed |= b.failed > 0;
    b.latency_us = NULL;
    b.next = b.done = b.failed = 0;
  }
  if (!failed) {
    long cpu_before = options->server_pid != NULL ? cpu_ticks(options->server_pid) : -1;
    int64_t start = now_us();
    start_next(&b);
    bool all = run_until(&b, &b.done, options->sidecars, options->timeout_ms);
    double seconds = (double)(now_us() - start) / 1e6;
    int signed_count = b.done - b.failed;
    printf(
        "csr: %d sidecars over %d channels (%d in flight): %d signed, %d failed in %.2f s: "
        "%.0f signings/s%s%s\n",
        options->sidecars, options->channels, options->concurrency, signed_count, b.failed, seconds,
        signed_count / seconds, b.failed > 0 ? "; last error: " : "",
        b.failed > 0 ? b.last_error : "");
    if (cpu_before >= 0 && signed_count > 0) {
      long ticks = cpu_ticks(options->server_pid) - cpu_before;
      double cpu_seconds = (double)ticks / (double)sysconf(_SC_CLK_TCK);
      printf("csr: server CPU %.2f s: %.0f us per signing (%.0f%% of one core)\n", cpu_seconds,
             cpu_seconds * 1e6 / signed_count, 100.0 * cpu_seconds / seconds);
    }
    failed |= !all || b.failed > 0;
  }
  for (int i = 0; i < options->channels; i++)
    ms_grpc_channel_close(b.channels[i]);
  for (int i = 0; i < options->sidecars; i++) {
    free(b.sidecars[i].request);
    if (b.sidecars[i].authorization != NULL) {
      OPENSSL_cleanse(b.sidecars[i].authorization, strlen(b.sidecars[i].authorization));
      free(b.sidecars[i].authorization);
    }
  }
  free(b.sidecars);
  free(b.channels);
  return failed ? -1 : 0;
}
