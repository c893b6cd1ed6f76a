/* The identity agent's life on the loop (identity.h). Pure parts (checking
 * an answer, encoding a request, choosing the SPIFFE ID, the renewal time)
 * are in identity_check.c.
 *
 * States, one function each:
 *   WAITING     the timer runs: a renewal (start_request) or a retry.
 *   REQUESTING  start_request: a new key, its CSR, a channel and one unary
 *               CreateCertificate call; the timer is its deadline.
 *               on_call_close ends it: accept_answer, or request_failed.
 *   STOPPED     the server stopped; the loop releases the handles.
 * Besides, in any state but STOPPED, files_changed follows the files the
 * agent reads itself: the CA channel's TLS files (the next request's
 * channel uses them) and identity.trust_bundle_file (published again as the
 * trust bundle secret, and the bundle the next answer is checked against). */
#include "sidecar/identity/identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "certs/certs.h"
#include "common/file.h"
#include "common/log.h"
#include "common/time.h"
#include "common/version.h"
#include "sidecar/control/cert_expiry.h"
#include "sidecar/identity/identity_internal.h"
#include "xds/ads/ads_client.h"
#include "xds/grpc/bearer_token.h"
#include "xds/grpc/grpc.h"
#include "xds/proto/type_urls.h"

#define MS_IDENTITY_REQUEST_TIMEOUT_MS 30000
#define MS_IDENTITY_INITIAL_BACKOFF_MS 1000
#define MS_IDENTITY_MAX_BACKOFF_MS 60000
/* The largest answer taken: a chain and a few roots. */
#define MS_IDENTITY_MAX_ANSWER_BYTES (1u << 20)

typedef enum identity_state {
  IDENTITY_WAITING = 0,
  IDENTITY_REQUESTING,
  IDENTITY_STOPPED,
} identity_state;

struct ms_identity {
  uv_loop_t *loop;
  ms_server *server;
  ms_config *config; /* reference held */
  identity_state state;
  char *spiffe_id;
  const char *spiffe_source; /* "configuration", "certificate", "token" */
  const char *proof;         /* "certificate", "token", "certificate+token" */
  ms_cert_credential ca;     /* identity.tls (or xds.tls): how we reach the CA */
  ms_identity_bundle bundle; /* identity.trust_bundle_file, the last good one */
  uv_timer_t timer;          /* WAITING: the next request; REQUESTING: its deadline */

  /* The request under way. */
  ms_grpc_channel *channel;
  ms_grpc_call *call;
  EVP_PKEY *key;   /* the key asked for; never leaves this process */
  uint8_t *answer; /* the first message, copied */
  size_t answer_len;
  uint64_t started_ns;
  int64_t started_at;

  /* The certificate in force. */
  bool have_certificate;
  ms_cert_info leaf;
  bool key_locked;
  int64_t next_renewal; /* unix seconds */
  double round_trip_ms; /* of the last success */
  uint32_t failures;    /* in a row */
  char last_error[MS_ERR_LEN];
};

static void start_request(ms_identity *identity);

static void on_timer(uv_timer_t *timer) {
  start_request(timer->data);
}

static void wait_then_request(ms_identity *identity, uint64_t delay_ms) {
  identity->state = IDENTITY_WAITING;
  identity->next_renewal = (int64_t)time(NULL) + (int64_t)((delay_ms + 999) / 1000);
  uv_timer_start(&identity->timer, on_timer, delay_ms, 0);
}

/* ---- the end of a request ------------------------------------------------------ */

/* end_request closes the call's channel and forgets the request (the key
 * stays for accept_answer). */
static void end_request(ms_identity *identity) {
  ms_grpc_channel *channel = identity->channel;
  identity->channel = NULL;
  identity->call = NULL;
  uv_timer_stop(&identity->timer);
  ms_grpc_channel_close(channel); /* on_call_close finds no call and returns */
}

static void forget_request(ms_identity *identity) {
  EVP_PKEY_free(identity->key);
  identity->key = NULL;
  free(identity->answer);
  identity->answer = NULL;
  identity->answer_len = 0;
}

/* request_failed logs and counts `why`, keeps the certificate in force and
 * retries after the backoff, never later than half of what is left of the
 * certificate in force. */
static void request_failed(ms_identity *identity, const char *why) {
  forget_request(identity);
  MS_STAT_ADD(ms_server_main_stats(identity->server), identity_csr_failure, 1);
  snprintf(identity->last_error, sizeof(identity->last_error), "%s", why);
  uint64_t delay = ms_ads_backoff_ms(identity->failures++, MS_IDENTITY_INITIAL_BACKOFF_MS,
                                     MS_IDENTITY_MAX_BACKOFF_MS, ms_ads_random_u32());
  if (identity->have_certificate) {
    int64_t left_ms = (identity->leaf.not_after - (int64_t)time(NULL)) * 1000;
    if (left_ms > 0 && (uint64_t)left_ms / 2 < delay) delay = (uint64_t)left_ms / 2;
    if (delay < 200) delay = 200;
  }
  ms_log(MS_LOG_WARN, "identity: no certificate for %s from %s: %s; %s; retrying in %llu ms",
         identity->spiffe_id, ms_identity_ca_address(identity->config)->text, why,
         identity->have_certificate ? "the certificate in force stays" : "not ready yet",
         (unsigned long long)delay);
  wait_then_request(identity, delay);
}

/* publish puts the answer in force as the identity's two secrets. */
static int publish(ms_identity *identity, const ms_identity_answer *answer, char *err,
                   size_t err_len) {
  const ms_identity_config *config = &identity->config->identity;
  char *key_pem = NULL;
  if (ms_key_pem_secure(identity->key, &key_pem, err, err_len) != 0) return -1;
  identity->key_locked = ms_secure_locked(key_pem);
  ms_secret certificate = {.name = config->certificate_secret,
                           .certificate_pem = answer->chain_pem,
                           .private_key_pem = key_pem};
  ms_secret bundle = {.name = config->trust_bundle_secret, .trusted_ca_pem = answer->roots_pem};
  ms_secret_set *set = ms_secret_set_new();
  int rc = set && ms_secret_set_add(set, &certificate) == 0 && ms_secret_set_add(set, &bundle) == 0
               ? 0
               : -1;
  ms_secure_free(key_pem); /* the set holds its own copy, in secure memory too */
  if (rc != 0) {
    snprintf(err, err_len, "out of memory");
  } else if (ms_server_set_local_secrets(identity->server, set, err, err_len) < 0) {
    rc = -1;
  }
  if (rc != 0) ms_secret_set_free(set);
  return rc;
}

static void log_obtained(const ms_identity *identity, bool rotated, uint64_t delay_ms) {
  char not_after[32], renewal[32];
  ms_time_rfc3339(identity->leaf.not_after, not_after, sizeof(not_after));
  ms_time_rfc3339(identity->next_renewal, renewal, sizeof(renewal));
  ms_log(MS_LOG_INFO,
         "identity: certificate %s for %s obtained in %.1f ms from %s (serial=%s expires=%s, "
         "renewal at %s, in %llu ms)",
         rotated ? "renewed" : "issued", identity->spiffe_id, identity->round_trip_ms,
         ms_identity_ca_address(identity->config)->text, identity->leaf.serial_hex, not_after,
         renewal, (unsigned long long)delay_ms);
}

/* republish_bundle puts the bundle in force as the trust bundle secret,
 * beside the certificate in force (copied from the server's local set, so
 * the key never leaves secure memory). */
static int republish_bundle(ms_identity *identity, char *err, size_t err_len) {
  const ms_identity_config *config = &identity->config->identity;
  const ms_secret *certificate =
      ms_secret_set_find(ms_server_local_secrets(identity->server), config->certificate_secret);
  if (certificate == NULL) return 0; /* nothing published yet: the first answer will */
  ms_secret bundle = {.name = config->trust_bundle_secret, .trusted_ca_pem = identity->bundle.pem};
  ms_secret_set *set = ms_secret_set_new();
  if (set == NULL || ms_secret_set_add(set, certificate) != 0 ||
      ms_secret_set_add(set, &bundle) != 0) {
    ms_secret_set_free(set);
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  if (ms_server_set_local_secrets(identity->server, set, err, err_len) < 0) {
    ms_secret_set_free(set);
    return -1;
  }
  return 0;
}

/* follow_bundle reads identity.trust_bundle_file again: new bytes with a
 * certificate become the bundle (logged, counted, and with `republish`
 * published at once); new bytes without one are refused (logged, counted),
 * the last good bundle stays. */
static void follow_bundle(ms_identity *identity, bool republish) {
  const char *path = identity->config->identity.trust_bundle_file;
  char err[MS_ERR_LEN], what[MS_ERR_LEN];
  ms_stats *stats = ms_server_main_stats(identity->server);
  int rc = ms_identity_bundle_read(&identity->bundle, path, err, sizeof(err));
  if (rc < 0) {
    MS_STAT_ADD(stats, identity_trust_bundle_reload_failure, 1);
    ms_log(MS_LOG_ERROR, "identity: trust bundle %s refused: %s; %s", path, err,
           identity->bundle.pem ? "the last good bundle stays" : "no bundle yet");
    return;
  }
  if (rc == 0) return;
  MS_STAT_ADD(stats, identity_trust_bundle_reloads, 1);
  ms_identity_bundle_describe(&identity->bundle, what, sizeof(what));
  if (republish && republish_bundle(identity, err, sizeof(err)) != 0) {
    ms_log(MS_LOG_ERROR, "identity: trust bundle %s read, %s, but not published as \"%s\": %s",
           path, what, identity->config->identity.trust_bundle_secret, err);
    return;
  }
  ms_log(MS_LOG_INFO,
         "identity: trust bundle %s reloaded: %s; new upstream connections verify with it", path,
         what);
}

/* accept_answer checks the CA's answer and puts it in force. */
static void accept_answer(ms_identity *identity) {
  const ms_identity_config *config = &identity->config->identity;
  char err[MS_ERR_LEN];
  if (config->trust_bundle_file) {
    follow_bundle(identity, false); /* the answer's publish carries it */
    if (identity->bundle.pem == NULL) {
      request_failed(identity, identity->bundle.last_error);
      return;
    }
  }
  ms_identity_answer answer;
  int rc = ms_identity_check_answer(identity->answer, identity->answer_len, identity->key,
                                    identity->spiffe_id, identity->bundle.pem, (int64_t)time(NULL),
                                    &answer, err, sizeof(err));
  if (rc == 0 && publish(identity, &answer, err, sizeof(err)) != 0) {
    ms_identity_answer_cleanup(&answer);
    rc = -1;
  }
  if (rc != 0) {
    char why[MS_ERR_LEN + 32];
    snprintf(why, sizeof(why), "answer refused: %s", err);
    request_failed(identity, why);
    return;
  }
  bool rotated = identity->have_certificate;
  ms_stats *stats = ms_server_main_stats(identity->server);
  MS_STAT_ADD(stats, identity_csr_success, 1);
  if (rotated) MS_STAT_ADD(stats, identity_rotations, 1);
  ms_cert_info_cleanup(&identity->leaf);
  identity->leaf = answer.leaf;
  answer.leaf = (ms_cert_info){0};
  ms_identity_answer_cleanup(&answer);
  identity->have_certificate = true;
  identity->failures = 0;
  identity->last_error[0] = '\0';
  identity->round_trip_ms = (double)(uv_hrtime() - identity->started_ns) / 1e6;
  forget_request(identity);
  uint64_t delay = ms_identity_renewal_delay_ms(identity->started_at, identity->leaf.not_before,
                                                identity->leaf.not_after,
                                                (int64_t)time(NULL) * 1000, ms_ads_random_u32());
  wait_then_request(identity, delay);
  log_obtained(identity, rotated, delay);
}

/* ---- the call ------------------------------------------------------------------ */

static void on_message(ms_grpc_call *call, const uint8_t *bytes, size_t len, void *arg) {
  ms_identity *identity = arg;
  if (call != identity->call || identity->answer != NULL) return; /* one answer only */
  identity->answer = malloc(len ? len : 1);
  if (identity->answer == NULL) return;
  memcpy(identity->answer, bytes, len);
  identity->answer_len = len;
}

static void on_call_close(ms_grpc_call *call, int status, const char *message, void *arg) {
  ms_identity *identity = arg;
  if (call != identity->call) return; /* ended by us */
  end_request(identity);
  char why[MS_ERR_LEN];
  if (status != MS_GRPC_OK) {
    snprintf(why, sizeof(why), "CreateCertificate: %s%s%s", ms_grpc_status_name(status),
             message[0] ? ": " : "", message);
    request_failed(identity, why);
  } else if (identity->answer == NULL) {
    request_failed(identity, "CreateCertificate: OK without an answer");
  } else {
    accept_answer(identity);
  }
}

static const ms_grpc_call_callbacks call_callbacks = {
    .on_message = on_message,
    .on_close = on_call_close,
};

static void on_deadline(uv_timer_t *timer) {
  ms_identity *identity = timer->data;
  end_request(identity);
  request_failed(identity, "CreateCertificate: no answer within 30 s");
}

/* start_call opens the channel and sends the one request. */
static int start_call(ms_identity *identity, const uint8_t *bytes, size_t len, char *err,
                      size_t err_len) {
  const ms_identity_config *config = &identity->config->identity;
  const ms_cluster_tls_config *tls = ms_identity_tls(identity->config);
  ms_grpc_channel_options options = {
      .address = ms_identity_ca_address(identity->config)->text,
      .ssl_ctx = identity->ca.ssl_ctx,
      .server_name = tls->server_name,
      .max_message_bytes = MS_IDENTITY_MAX_ANSWER_BYTES,
      .connect_timeout_ms = MS_IDENTITY_REQUEST_TIMEOUT_MS,
      .user_agent = "mtls-sidecar/" MS_VERSION,
  };
  char *header = NULL;
  if (config->token_file &&
      ms_bearer_token_read(config->token_file, &header, NULL, err, err_len) != 0)
    return -1;
  ms_grpc_metadata authorization = {"authorization", header};
  int rc = ms_grpc_channel_new(identity->loop, &options, NULL, identity, &identity->channel);
  if (rc == 0)
    rc = ms_grpc_call_start_with_metadata(identity->channel, MS_ISTIO_CA_METHOD, &authorization,
                                          header ? 1 : 0, &call_callbacks, identity,
                                          &identity->call);
  ms_secure_free(header);
  if (rc == 0) rc = ms_grpc_call_send(identity->call, bytes, len);
  if (rc == 0) ms_grpc_call_close_send(identity->call);
  if (rc != 0) snprintf(err, err_len, "cannot start CreateCertificate: %s", uv_strerror(rc));
  return rc == 0 ? 0 : -1;
}

/* start_request: a new key, its CSR, and the call. */
static void start_request(ms_identity *identity) {
  char err[MS_ERR_LEN];
  char *csr = NULL;
  uint8_t *bytes = NULL;
  size_t len = 0;
  identity->state = IDENTITY_REQUESTING;
  identity->started_ns = uv_hrtime();
  identity->started_at = (int64_t)time(NULL);
  int rc = ms_key_new_p256(&identity->key, err, sizeof(err));
  if (rc == 0) rc = ms_csr_new(identity->key, identity->spiffe_id, &csr, err, sizeof(err));
  if (rc == 0 && ms_identity_request_encode(csr, identity->config->identity.requested_ttl_seconds,
                                            &bytes, &len) != 0) {
    snprintf(err, sizeof(err), "out of memory");
    rc = -1;
  }
  free(csr);
  if (rc == 0) rc = start_call(identity, bytes, len, err, sizeof(err));
  free(bytes);
  if (rc != 0) {
    end_request(identity);
    request_failed(identity, err);
    return;
  }
  uv_timer_start(&identity->timer, on_deadline, MS_IDENTITY_REQUEST_TIMEOUT_MS, 0);
}

/* ---- the server's hooks ---------------------------------------------------------- */

static const char *not_ready(void *arg) {
  const ms_identity *identity = arg;
  return identity->have_certificate ? NULL
                                    : "waiting for the identity agent's first certificate "
                                      "from the CA";
}

static void put_time(cJSON *json, const char *name, int64_t when, bool known) {
  char text[32];
  if (!known) {
    cJSON_AddNullToObject(json, name);
    return;
  }
  ms_time_rfc3339(when, text, sizeof(text));
  cJSON_AddStringToObject(json, name, text);
}

static char *certs_json(void *arg) {
  const ms_identity *identity = arg;
  bool have = identity->have_certificate;
  cJSON *json = cJSON_CreateObject();
  if (json == NULL) return NULL;
  cJSON_AddStringToObject(json, "spiffe_id", identity->spiffe_id);
  cJSON_AddStringToObject(json, "spiffe_id_from", identity->spiffe_source);
  cJSON_AddStringToObject(json, "ca_address", ms_identity_ca_address(identity->config)->text);
  cJSON_AddStringToObject(json, "proof", identity->proof);
  cJSON_AddStringToObject(json, "state",
                          identity->state == IDENTITY_REQUESTING ? "requesting" : "waiting");
  if (have)
    cJSON_AddStringToObject(json, "serial", identity->leaf.serial_hex);
  else
    cJSON_AddNullToObject(json, "serial");
  put_time(json, "not_before", identity->leaf.not_before, have);
  put_time(json, "not_after", identity->leaf.not_after, have);
  if (have) {
    ms_snapshot *snapshot = ms_server_snapshot(identity->server);
    ms_cert_expiry_add_json(json, "certificate_state", &identity->leaf, (int64_t)time(NULL),
                            snapshot->config->certificates.warn_lifetime_percent);
    ms_snapshot_free(snapshot);
  }
  put_time(json, "next_renewal", identity->next_renewal,
           identity->state == IDENTITY_WAITING && identity->next_renewal);
  if (identity->last_error[0])
    cJSON_AddStringToObject(json, "last_error", identity->last_error);
  else
    cJSON_AddNullToObject(json, "last_error");
  cJSON_AddNumberToObject(json, "consecutive_failures", identity->failures);
  const char *bundle_file = identity->config->identity.trust_bundle_file;
  if (bundle_file) {
    ms_snapshot *snapshot = ms_server_snapshot(identity->server);
    cJSON *bundle = ms_identity_bundle_json(&identity->bundle, bundle_file, (int64_t)time(NULL),
                                            snapshot->config->certificates.warn_lifetime_percent);
    ms_snapshot_free(snapshot);
    if (bundle) cJSON_AddItemToObject(json, "trust_bundle", bundle);
  }
  cJSON_AddNumberToObject(json, "last_round_trip_ms", identity->round_trip_ms);
  cJSON_AddBoolToObject(json, "key_locked", have && identity->key_locked);
  char *text = cJSON_PrintUnformatted(json);
  cJSON_Delete(json);
  return text;
}

static void certificates(void *arg, ms_cert_use_visit visit, void *visit_arg) {
  const ms_identity *identity = arg;
  ms_cert_credential_visit(&identity->ca, visit, visit_arg);
  if (!identity->have_certificate) return;
  ms_cert_use use = {.info = &identity->leaf,
                     .source = MS_CERT_SOURCE_IDENTITY,
                     .name = identity->config->identity.certificate_secret};
  visit(&use, visit_arg);
}

static void files(void *arg, ms_server_watch_file watch, void *watch_arg) {
  const ms_identity *identity = arg;
  const ms_tls_settings *settings = &ms_identity_tls(identity->config)->settings;
  const char *paths[] = {settings->certificate, settings->private_key, settings->trusted_ca,
                         settings->password_file, identity->config->identity.trust_bundle_file};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
    if (paths[i]) watch(paths[i], watch_arg);
}

/* files_changed: the CA channel's TLS files (for the next request's
 * channel; one under way keeps its context), then the trust bundle. */
static void files_changed(void *arg) {
  ms_identity *identity = arg;
  if (identity->state == IDENTITY_STOPPED) return;
  const ms_config *config = identity->config;
  const char *key = config->identity.tls_set ? "identity.tls" : "xds.tls";
  char err[MS_ERR_LEN];
  ms_stats *stats = ms_server_main_stats(identity->server);
  int rc = ms_cert_credential_reload(&ms_identity_tls(config)->settings, key, &identity->ca, err,
                                     sizeof(err));
  if (rc < 0) {
    MS_STAT_ADD(stats, xds_client_tls_reload_failure, 1);
    ms_log(MS_LOG_ERROR,
           "identity: the CA's TLS files are refused: %s; the last good context "
           "stays for the next request",
           err);
  } else if (rc > 0) {
    MS_STAT_ADD(stats, xds_client_tls_reloads, 1);
    ms_log(MS_LOG_INFO,
           "identity: the CA's TLS files (%s) changed (%zu trusted CA%s); the next "
           "request to %s uses them",
           key, identity->ca.ca_count, ms_plural(identity->ca.ca_count),
           ms_identity_ca_address(config)->text);
  }
  if (config->identity.trust_bundle_file) follow_bundle(identity, true);
}

static void stop(void *arg) {
  ms_identity *identity = arg;
  if (identity->state == IDENTITY_STOPPED) return;
  identity->state = IDENTITY_STOPPED;
  end_request(identity);
  forget_request(identity);
  uv_close((uv_handle_t *)&identity->timer, NULL);
}

/* ---- life ------------------------------------------------------------------------ */

static const char *proof_of(const ms_config *config) {
  const ms_tls_settings *settings = &ms_identity_tls(config)->settings;
  bool certificate = settings->certificate || settings->certificate_pem;
  bool token = config->identity.token_file != NULL;
  return certificate && token ? "certificate+token"
         : certificate        ? "certificate"
         : token              ? "token"
                              : NULL;
}

int ms_identity_start(uv_loop_t *loop, ms_server *server, ms_config *config, ms_identity **out,
                      char *err, size_t err_len) {
  /* Before any key exists: no core dump, no ptrace or /proc/PID/mem by
   * another user. */
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    ms_log(MS_LOG_WARN, "identity: prctl(PR_SET_DUMPABLE, 0) failed; core dumps stay possible");
  ms_identity *identity = calloc(1, sizeof(*identity));
  if (identity == NULL) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  identity->loop = loop;
  identity->server = server;
  identity->config = ms_config_up_ref(config);
  identity->proof = proof_of(config);
  if (identity->proof == NULL) {
    snprintf(err, err_len,
             "identity: nothing proves who we are to the CA: give identity.tls (or xds.tls) a "
             "client certificate, or set identity.token_file");
  } else if (ms_identity_find_spiffe_id(config, &identity->spiffe_id, &identity->spiffe_source, err,
                                        err_len) == 0) {
    ms_cert_credential_load(&ms_identity_tls(config)->settings,
                            config->identity.tls_set ? "identity.tls" : "xds.tls", &identity->ca,
                            err, err_len);
  }
  if (identity->proof == NULL || identity->spiffe_id == NULL || identity->ca.ssl_ctx == NULL) {
    ms_identity_free(identity);
    return -1;
  }
  char why[MS_ERR_LEN];
  if (config->identity.trust_bundle_file &&
      ms_identity_bundle_read(&identity->bundle, config->identity.trust_bundle_file, why,
                              sizeof(why)) < 0)
    ms_log(MS_LOG_WARN, "identity: %s; answers are refused until it holds a certificate", why);
  uv_timer_init(loop, &identity->timer);
  identity->timer.data = identity;
  ms_server_identity hooks = {.not_ready = not_ready,
                              .certs_json = certs_json,
                              .stop = stop,
                              .certificates = certificates,
                              .files = files,
                              .files_changed = files_changed,
                              .arg = identity};
  ms_server_set_identity(server, &hooks);
  ms_log(MS_LOG_INFO,
         "identity: asking %s for %s (from the %s), proved by the %s; the key stays in this "
         "process",
         ms_identity_ca_address(config)->text, identity->spiffe_id, identity->spiffe_source,
         identity->proof);
  start_request(identity);
  *out = identity;
  return 0;
}

void ms_identity_free(ms_identity *identity) {
  if (identity == NULL) return;
  forget_request(identity);
  ms_cert_info_cleanup(&identity->leaf);
  ms_cert_credential_cleanup(&identity->ca);
  ms_identity_bundle_cleanup(&identity->bundle);
  free(identity->spiffe_id);
  ms_config_free(identity->config);
  free(identity);
}
