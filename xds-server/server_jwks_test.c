/* server_jwks_test.c: xds-server's token key set (server_jwks.c) in-process,
 * against a loopback stand-in for the Kubernetes API server: an HTTPS server
 * on a thread that serves GET /openid/v1/jwks the way the API server does,
 * and answers 401 without the expected bearer token. Proves that the keys
 * come from the URL (and /status shows them), that a rotation at the API
 * server is picked up by the periodic refresh and by xds_jwks_refresh_soon
 * (rate-limited), that a stand-in answering 500, garbage, a huge body, a
 * non-JSON body, 401, or nothing at all keeps the last good set and shows
 * the error, that the token file is re-read at each fetch, that the file
 * source follows an atomic replace and refuses a bad file keeping the last
 * good keys, that both sources make a union, and the configuration
 * refusals. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/base64.h>
#include <openssl/bn.h>
#include <openssl/rsa.h>

#include "certs/certs.h"
#include "xds-server/server.h"
#include "xds-server/server_internal.h"
#include "xds-server/server_test_util.h"
#include "xds/grpc/grpc_test_util.h"

#define ISSUER "https://kubernetes.default.svc.cluster.local"

static uv_loop_t loop;

/* ---- keys ------------------------------------------------------------------------- */

static RSA *rsa_keys[2];

/* jwk returns an RSA JWK as the API server writes it, for key `which`. */
static char *jwk(const char *kid, int which) {
  const BIGNUM *n = NULL;
  RSA_get0_key(rsa_keys[which], &n, NULL, NULL);
  size_t len = BN_num_bytes(n);
  uint8_t *bytes = malloc(len);
  BN_bn2bin(n, bytes);
  size_t encoded_len = 0;
  EVP_EncodedLength(&encoded_len, len);
  char *b64 = malloc(encoded_len);
  EVP_EncodeBlock((uint8_t *)b64, bytes, len);
  for (char *c = b64; *c != '\0'; c++) {
    if (*c == '+') *c = '-';
    if (*c == '/') *c = '_';
    if (*c == '=') *c = '\0';
  }
  char *out = malloc(strlen(b64) + 256);
  sprintf(out,
          "{\"use\":\"sig\",\"kty\":\"RSA\",\"kid\":\"%s\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":"
          "\"AQAB\"}",
          kid, b64);
  free(bytes);
  free(b64);
  return out;
}

/* jwks_doc returns {"keys":[...]} with one key per kid (static buffer). */
static const char *jwks_doc(const char *kid_a, const char *kid_b) {
  static char text[8192];
  char *a = jwk(kid_a, 0), *b = kid_b != NULL ? jwk(kid_b, 1) : NULL;
  snprintf(text, sizeof(text), "{\"keys\":[%s%s%s]}", a, b != NULL ? "," : "", b != NULL ? b : "");
  free(a);
  free(b);
  return text;
}

/* ---- the stand-in for the API server ------------------------------------------------ */

typedef enum standin_mode {
  SERVE_JWKS,
  SERVE_500,
  SERVE_GARBAGE,  /* not HTTP */
  SERVE_HUGE,     /* 200 with a 2 MiB body */
  SERVE_NOT_JSON, /* 200 with HTML */
  SERVE_HANG,     /* reads the request, never answers */
} standin_mode;

static struct {
  pthread_t thread;
  pthread_mutex_t mu;
  int listen_fd;
  uint16_t port;
  SSL_CTX *ctx;
  standin_mode mode;
  char body[8192];
  char token[64]; /* the bearer token it accepts */
  char last_request[4096];
  int requests, unauthorized;
  volatile bool stop;
} standin;

static void standin_set(standin_mode mode, const char *body) {
  pthread_mutex_lock(&standin.mu);
  standin.mode = mode;
  if (body != NULL) snprintf(standin.body, sizeof(standin.body), "%s", body);
  pthread_mutex_unlock(&standin.mu);
}

static int standin_requests(void) {
  pthread_mutex_lock(&standin.mu);
  int n = standin.requests;
  pthread_mutex_unlock(&standin.mu);
  return n;
}

static void send_all(SSL *ssl, const char *bytes, size_t len) {
  while (len > 0) {
    int n = SSL_write(ssl, bytes, len > 65536 ? 65536 : (int)len);
    if (n <= 0) return;
    bytes += n;
    len -= (size_t)n;
  }
}

static void respond(SSL *ssl, int status, const char *reason, const char *body) {
  char head[256];
  snprintf(head, sizeof(head),
           "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
           status, reason, strlen(body));
  send_all(ssl, head, strlen(head));
  send_all(ssl, body, strlen(body));
}

static void serve_one(int fd) {
  struct timeval two_seconds = {.tv_sec = 2};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &two_seconds, sizeof(two_seconds));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &two_seconds, sizeof(two_seconds));
  SSL *ssl = SSL_new(standin.ctx);
  SSL_set_fd(ssl, fd);
  char request[4096];
  size_t len = 0;
  if (SSL_accept(ssl) == 1) {
    while (len + 1 < sizeof(request)) {
      int n = SSL_read(ssl, request + len, (int)(sizeof(request) - 1 - len));
      if (n <= 0) break;
      len += (size_t)n;
      request[len] = '\0';
      if (strstr(request, "\r\n\r\n") != NULL) break;
    }
  }
  request[len] = '\0';
  pthread_mutex_lock(&standin.mu);
  standin.requests++;
  snprintf(standin.last_request, sizeof(standin.last_request), "%s", request);
  char want[128];
  snprintf(want, sizeof(want), "\r\nAuthorization: Bearer %s\r\n", standin.token);
  bool authorized = strstr(request, want) != NULL;
  if (!authorized) standin.unauthorized++;
  standin_mode mode = standin.mode;
  char body[8192];
  snprintf(body, sizeof(body), "%s", standin.body);
  pthread_mutex_unlock(&standin.mu);

  if (strncmp(request, "GET /openid/v1/jwks HTTP/1.1\r\n", 30) != 0) {
    respond(ssl, 404, "Not Found", "{\"kind\":\"Status\",\"code\":404}");
  } else if (!authorized) {
    respond(ssl, 401, "Unauthorized",
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
            "\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}");
  } else if (mode == SERVE_JWKS) {
    respond(ssl, 200, "OK", body);
  } else if (mode == SERVE_500) {
    respond(ssl, 500, "Internal Server Error", "{\"message\":\"etcd is down\"}");
  } else if (mode == SERVE_GARBAGE) {
    send_all(ssl, "this is not HTTP at all\r\n\r\n", 27);
  } else if (mode == SERVE_NOT_JSON) {
    respond(ssl, 200, "OK", "<html>hello</html>");
  } else if (mode == SERVE_HUGE) {
    size_t huge = 2 << 20;
    char head[128];
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", huge);
    send_all(ssl, head, strlen(head));
    char *filler = malloc(huge);
    memset(filler, ' ', huge);
    send_all(ssl, filler, huge);
    free(filler);
  } else {
    while (!standin.stop && standin.mode == SERVE_HANG)
      usleep(20000);
  }
  SSL_shutdown(ssl);
  SSL_free(ssl);
  close(fd);
}

static void *standin_main(void *arg) {
  while (!standin.stop) {
    struct pollfd p = {.fd = standin.listen_fd, .events = POLLIN};
    if (poll(&p, 1, 50) <= 0) continue;
    int fd = accept(standin.listen_fd, NULL, NULL);
    if (fd >= 0) serve_one(fd);
  }
  return NULL;
}

static void standin_start(X509 *cert, EVP_PKEY *key) {
  pthread_mutex_init(&standin.mu, NULL);
  standin.ctx = SSL_CTX_new(TLS_method());
  SSL_CTX_use_certificate(standin.ctx, cert);
  SSL_CTX_use_PrivateKey(standin.ctx, key);
  standin.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(addr);
  if (bind(standin.listen_fd, (struct sockaddr *)&addr, len) != 0 ||
      listen(standin.listen_fd, 16) != 0 ||
      getsockname(standin.listen_fd, (struct sockaddr *)&addr, &len) != 0)
    grpc_test_die("stand-in", strerror(errno));
  standin.port = ntohs(addr.sin_port);
  pthread_create(&standin.thread, NULL, standin_main, NULL);
}

static void standin_stop(void) {
  standin.stop = true;
  pthread_join(standin.thread, NULL);
  close(standin.listen_fd);
  SSL_CTX_free(standin.ctx);
}

/* ---- running the loop and reading the status ------------------------------------ */

static bool run_until(bool (*done)(void *), void *arg, uint64_t timeout_ms) {
  return grpc_test_run_until_done(&loop, done, arg, timeout_ms);
}

static bool never(void *arg) {
  return false;
}

static ms_xds_server *server;

/* kids returns the kids /status shows, joined by ',' (static buffer). */
static const char *kids(void) {
  static char out[512];
  out[0] = '\0';
  char *json = ms_xds_server_status_json(server);
  cJSON *root = cJSON_Parse(json);
  const cJSON *kid = NULL;
  cJSON_ArrayForEach(kid, cJSON_GetObjectItem(cJSON_GetObjectItem(root, "token_keys"), "kids")) {
    if (out[0] != '\0') strcat(out, ",");
    strncat(out, kid->valuestring, 64);
  }
  cJSON_Delete(root);
  free(json);
  return out;
}

static bool kids_are(void *want) {
  return strcmp(kids(), want) == 0;
}

static bool remote_failed_with(void *text) {
  return strstr(server->jwks.remote.last_error, text) != NULL;
}

static bool remote_ok(void *arg) {
  return server->jwks.remote.last_error[0] == '\0' && server->jwks.remote.refreshed_at_ms != 0;
}

static bool file_failed(void *arg) {
  return server->jwks.file.last_error[0] != '\0';
}

/* ---- the cases ---------------------------------------------------------------------- */

static ms_xds_server_options base_options;

static void start_server(ms_xds_server_options *options) {
  char err[MS_ERR_LEN];
  if (ms_xds_server_new(&loop, options, &server, err, sizeof(err)) != 0)
    grpc_test_die("ms_xds_server_new", err);
  server->jwks.fetch_timeout_ms = 700; /* the hanging stand-in costs less than 10 s */
}

static void stop_server(void) {
  ms_xds_server_close(server);
  server = NULL;
  run_until(never, NULL, 100);
}

/* url_options returns base_options with the key set taken from `url`,
 * trusting `ca`, with the token in the file `token`. */
static ms_xds_server_options url_options(const char *url, const char *ca, const char *token) {
  ms_xds_server_options o = base_options;
  o.jwks_url = url;
  o.jwks_ca = ca;
  o.jwks_token = token;
  return o;
}

/* url_source: keys from the URL, periodic rotation, failures keeping the
 * last good set, the token re-read at each fetch. */
static void url_source(const char *url, const char *ca, const char *token) {
  standin_set(SERVE_JWKS, jwks_doc("k1", NULL));
  ms_xds_server_options o = url_options(url, ca, token);
  o.jwks_refresh_seconds = 1;
  start_server(&o);
  CHECK(xds_jwks_current(&server->jwks) == NULL);
  CHECK(run_until(kids_are, "k1", 5000));
  CHECK(xds_jwks_current(&server->jwks) != NULL);
  pthread_mutex_lock(&standin.mu);
  CHECK_CONTAINS(standin.last_request, "\r\nAccept: application/json\r\n");
  CHECK_CONTAINS(standin.last_request, "\r\nConnection: close\r\n");
  pthread_mutex_unlock(&standin.mu);
  char *json = ms_xds_server_status_json(server);
  CHECK_CONTAINS(json, "\"token_keys\":");
  CHECK_CONTAINS(json, "\"loaded\":\ttrue");
  CHECK_CONTAINS(json, "\"key_count\":\t1");
  CHECK_CONTAINS(json, "\"type\":\t\"url\"");
  CHECK_CONTAINS(json, "\"issuer\":\t\"" ISSUER "\"");
  CHECK_CONTAINS(json, "\"audience\":\t\"mtls-sidecar\"");
  free(json);

  /* The API server rotates its key: the periodic refresh (1 s) sees it. */
  standin_set(SERVE_JWKS, jwks_doc("k2", NULL));
  CHECK(run_until(kids_are, "k2", 4000));

  /* Whatever goes wrong, the last good set stays, and the error shows. */
  static const struct {
    standin_mode mode;
    const char *error;
  } failures[] = {
      {SERVE_500, "HTTP 500 instead of 200: {\"message\":\"etcd is down\"}"},
      {SERVE_GARBAGE, "the response is not HTTP/1.1"},
      {SERVE_HUGE, "the response body is larger than 1048576 bytes"},
      {SERVE_NOT_JSON, "JSON"},
      {SERVE_HANG, "no answer within"},
  };
  for (size_t i = 0; i < sizeof(failures) / sizeof(failures[0]); i++) {
    standin_set(failures[i].mode, NULL);
    bool failed = run_until(remote_failed_with, (void *)failures[i].error, 5000);
    if (!failed)
      fprintf(stderr, "case %zu: last_error is \"%s\"\n", i, server->jwks.remote.last_error);
    CHECK(failed);
    CHECK(xds_jwks_current(&server->jwks) != NULL);
    CHECK(strcmp(kids(), "k2") == 0);
    json = ms_xds_server_status_json(server);
    CHECK_CONTAINS(json, "\"last_error\":");
    free(json);
    standin_set(SERVE_JWKS, NULL);
    CHECK(run_until(remote_ok, NULL, 5000));
  }

  /* kubelet rotates xds-server's token: the next fetch sends the new one. */
  if (token != NULL) {
    pthread_mutex_lock(&standin.mu);
    snprintf(standin.token, sizeof(standin.token), "token-2");
    pthread_mutex_unlock(&standin.mu);
    CHECK(run_until(remote_failed_with, "HTTP 401", 5000));
    CHECK_CONTAINS(server->jwks.remote.last_error, "system:service-account-issuer-discovery");
    CHECK(strcmp(kids(), "k2") == 0);
    server_test_write_text("token", "token-2\n");
    CHECK(run_until(remote_ok, NULL, 5000));
  }
  stop_server();
}

/* refresh_soon: an unknown kid fetches at once, at most once per 30 s. */
static void refresh_soon(const char *url, const char *ca, const char *token) {
  standin_set(SERVE_JWKS, jwks_doc("k3", NULL));
  ms_xds_server_options o = url_options(url, ca, token);
  o.jwks_refresh_seconds = 3600;
  start_server(&o);
  CHECK(run_until(kids_are, "k3", 5000));
  standin_set(SERVE_JWKS, jwks_doc("k4", NULL));
  CHECK(xds_jwks_refresh_soon(&server->jwks));
  CHECK(run_until(kids_are, "k4", 3000));
  standin_set(SERVE_JWKS, jwks_doc("k5", NULL));
  int before = standin_requests();
  CHECK(!xds_jwks_refresh_soon(&server->jwks));
  run_until(never, NULL, 1000);
  CHECK(standin_requests() == before);
  CHECK(strcmp(kids(), "k4") == 0);
  stop_server();
}

/* file_source: an atomic replace is followed; a bad file keeps the last
 * good keys; with a URL too, the union. */
static void file_source(const char *url, const char *ca, const char *token) {
  server_test_write_text("keys/jwks.json", jwks_doc("f1", NULL));
  char path[1024];
  server_test_path(path, sizeof(path), "keys/jwks.json");
  ms_xds_server_options o = base_options;
  o.jwks_file = path;
  start_server(&o);
  CHECK(strcmp(kids(), "f1") == 0); /* loaded before ms_xds_server_new returns */
  server_test_write_text("keys/jwks.json", jwks_doc("f2", "f3"));
  CHECK(run_until(kids_are, "f2,f3", 3000));
  server_test_write_text("keys/jwks.json", "{\"keys\": [ this is not JSON");
  CHECK(run_until(file_failed, NULL, 3000));
  CHECK(strcmp(kids(), "f2,f3") == 0);
  char *json = ms_xds_server_status_json(server);
  CHECK_CONTAINS(json, "\"type\":\t\"file\"");
  CHECK_CONTAINS(json, "\"last_error\":");
  free(json);
  stop_server();

  /* Both sources: tokens verify against the union. */
  server_test_write_text("keys/jwks.json", jwks_doc("f4", NULL));
  standin_set(SERVE_JWKS, jwks_doc("u1", NULL));
  o = url_options(url, ca, token);
  o.jwks_file = path;
  start_server(&o);
  CHECK(run_until(kids_are, "f4,u1", 5000));
  CHECK(ms_jwks_count(xds_jwks_current(&server->jwks)) == 2);
  stop_server();
}

/* refusals: what ms_xds_server_new refuses, each in a sentence. */
static void refusals(const char *url, const char *ca) {
  char err[MS_ERR_LEN], path[1024];
  ms_xds_server_options o = base_options;
  o.token_issuer = NULL;
  o.jwks_url = url;
  o.jwks_ca = ca;
  CHECK(ms_xds_server_new(&loop, &o, &server, err, sizeof(err)) != 0);
  CHECK_CONTAINS(err, "--token-issuer is required");
  o = base_options;
  o.jwks_url = "http://127.0.0.1:1/openid/v1/jwks";
  o.jwks_ca = ca;
  CHECK(ms_xds_server_new(&loop, &o, &server, err, sizeof(err)) != 0);
  CHECK_CONTAINS(err, "only https://");
  o.jwks_url = url;
  o.jwks_ca = NULL;
  CHECK(ms_xds_server_new(&loop, &o, &server, err, sizeof(err)) != 0);
  CHECK_CONTAINS(err, "needs --jwks-ca");
  o = base_options;
  server_test_write_text("keys/bad.json", "{\"keys\": []}");
  server_test_path(path, sizeof(path), "keys/bad.json");
  o.jwks_file = path;
  CHECK(ms_xds_server_new(&loop, &o, &server, err, sizeof(err)) != 0);
  CHECK_CONTAINS(err, "--jwks-file");
  server_test_path(path, sizeof(path), "keys/missing.json");
  CHECK(ms_xds_server_new(&loop, &o, &server, err, sizeof(err)) != 0);
  CHECK_CONTAINS(err, "missing.json");
  server = NULL;
  run_until(never, NULL, 100);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  server_test_dir_init("jwks");
  server_test_mkdir("keys");
  uv_loop_init(&loop);
  for (int i = 0; i < 2; i++) {
    BIGNUM *e = BN_new();
    BN_set_word(e, RSA_F4);
    rsa_keys[i] = RSA_new();
    if (!RSA_generate_key_ex(rsa_keys[i], 2048, e, NULL)) grpc_test_die("RSA", "keygen failed");
    BN_free(e);
  }

  /* One CA signs xds-server's and the stand-in's certificates and is the
   * workload CA; the stand-in is 127.0.0.1, like the in-cluster service IP. */
  server_test_pki pki;
  server_test_pki_init(&pki, "jwks test CA");
  standin_start(pki.server_cert, pki.server_key);
  snprintf(standin.token, sizeof(standin.token), "token-1");
  server_test_write_text("token", "token-1\n");
  char url[128], token[1024];
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/openid/v1/jwks", standin.port);
  server_test_path(token, sizeof(token), "token");

  base_options = server_test_pki_options(&pki);
  base_options.debounce_ms = 50;
  base_options.token_issuer = ISSUER;
  url_source(url, pki.ca_cert_path, token);
  refresh_soon(url, pki.ca_cert_path, token);
  file_source(url, pki.ca_cert_path, token);
  refusals(url, pki.ca_cert_path);

  grpc_test_close_loop(&loop);
  standin_stop();
  for (int i = 0; i < 2; i++)
    RSA_free(rsa_keys[i]);
  server_test_pki_cleanup(&pki);
  return grpc_test_finish("server_jwks_test");
}
