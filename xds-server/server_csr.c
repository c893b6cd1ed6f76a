/* server_csr.c: Istio's CA API on xds-server: CreateCertificate
 * (istio/v1/auth/ca.proto). The sidecar makes its key and sends a CSR; we
 * sign it with the workload CA when it asks for exactly the SPIFFE ID its
 * caller proved (server_auth.c): one URI SAN, no other SAN, not a CA. The
 * call is unary over the bidirectional call of xds/grpc/grpc.h: one message, then
 * the client's half-close; the answer goes out at the half-close. Signings
 * are limited per SPIFFE ID (server_rate.c). See docs/xds-server.md, "Istio's
 * CA API". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "certs/certs.h"
#include "common/log.h"
#include "common/time.h"
#include "istio/v1/auth/ca.pb-c.h"
#include "xds-server/server_internal.h"
#include "xds/proto/pb_depth.h"

/* The shortest certificate we sign, whatever the request asks for. */
#define MIN_VALIDITY_SECONDS 2

/* One CreateCertificate call, until it is answered or cancelled. */
typedef struct csr_call {
  ms_xds_server *server;
  uint8_t *request; /* the first message */
  size_t request_len;
  int messages;
} csr_call;

static const char *const refusal_names[XDS_CSR_REFUSAL_COUNT] = {
    [XDS_CSR_UNAUTHENTICATED] = "unauthenticated",
    [XDS_CSR_BAD_REQUEST] = "bad_request",
    [XDS_CSR_NOT_YOURS] = "identity_mismatch",
    [XDS_CSR_RATE_LIMITED] = "rate_limited",
    [XDS_CSR_INTERNAL] = "internal",
};

static void csr_call_free(csr_call *state) {
  free(state->request);
  free(state);
}

/* refuse finishes `call` with `status` and `message`, counted as `why`; the
 * call's state is freed. */
static void refuse(ms_grpc_server_call *call, csr_call *state, xds_csr_refusal why, int status,
                   const char *message) {
  state->server->csr_stats.refused[why]++;
  ms_log(why == XDS_CSR_RATE_LIMITED ? MS_LOG_DEBUG : MS_LOG_WARN,
         "ca_api: refused a CreateCertificate from %s: %s: %s",
         ms_grpc_server_call_peer(call)->address, ms_grpc_status_name(status), message);
  ms_grpc_server_call_finish(call, status, message);
  csr_call_free(state);
}

/* describe_ask writes what the CSR asks for: its URIs, other SANs, CA. */
static void describe_ask(const ms_csr_info *info, char *out, size_t len) {
  size_t used = 0;
  out[0] = '\0';
#define APPEND(...)                                                                \
  do {                                                                             \
    if (used < len) used += (size_t)snprintf(out + used, len - used, __VA_ARGS__); \
  } while (0)
  if (info->uri_count == 0) APPEND("no URI SAN");
  for (size_t i = 0; i < info->uri_count; i++)
    APPEND("%s%s", i == 0 ? "" : ", ", info->uris[i]);
  if (info->other_san_count > 0)
    APPEND(" and %zu DNS, IP or other SAN%s", info->other_san_count,
           info->other_san_count == 1 ? "" : "s");
  if (info->asks_ca) APPEND(" as a CA (basicConstraints CA:TRUE)");
#undef APPEND
}

/* validity_of: what the caller asked for, within [MIN_VALIDITY_SECONDS,
 * --cert-ttl]; --cert-ttl when it asked for nothing. */
static int64_t validity_of(const ms_xds_server *server, int64_t asked) {
  int64_t ttl = server->cert_ttl_seconds;
  if (asked <= 0 || asked > ttl) return ttl;
  return asked < MIN_VALIDITY_SECONDS ? MIN_VALIDITY_SECONDS : asked;
}

/* respond packs the chain into an IstioCertificateResponse and finishes OK. */
static int respond(ms_grpc_server_call *call, const xds_issued *issued) {
  Istio__V1__Auth__IstioCertificateResponse response =
      ISTIO__V1__AUTH__ISTIO_CERTIFICATE_RESPONSE__INIT;
  response.n_cert_chain = issued->pem_count;
  response.cert_chain = issued->pems;
  size_t len = istio__v1__auth__istio_certificate_response__get_packed_size(&response);
  uint8_t *bytes = malloc(len > 0 ? len : 1);
  if (bytes == NULL) return -1;
  istio__v1__auth__istio_certificate_response__pack(&response, bytes);
  int rc = ms_grpc_server_call_send(call, bytes, len);
  free(bytes);
  if (rc != 0) return -1;
  ms_grpc_server_call_finish(call, MS_GRPC_OK, NULL);
  return 0;
}

/* handle answers the call's one request; frees `state`. */
int xds_csr_request_decode(const uint8_t *bytes, size_t len, ms_csr_info *out,
                           int64_t *out_validity, char *err, size_t err_len) {
  /* Behind the nesting guard: metadata is a Struct, which nests without end,
   * and protobuf-c recurses once per level. */
  char why[MS_ERR_LEN];
  Istio__V1__Auth__IstioCertificateRequest *request = (void *)ms_pb_unpack_guarded(
      &istio__v1__auth__istio_certificate_request__descriptor, bytes, len, why, sizeof(why));
  if (request == NULL) {
    snprintf(err, err_len, "the message is not an IstioCertificateRequest: %s", why);
    return -1;
  }
  if (ms_csr_parse(request->csr, strlen(request->csr), out, why, sizeof(why)) != 0) {
    istio__v1__auth__istio_certificate_request__free_unpacked(request, NULL);
    snprintf(err, err_len, "the CSR: %s", why);
    return -1;
  }
  *out_validity = request->validity_duration;
  istio__v1__auth__istio_certificate_request__free_unpacked(request, NULL);
  return 0;
}

static void handle(ms_grpc_server_call *call, csr_call *state) {
  ms_xds_server *server = state->server;
  const char *peer = ms_grpc_server_call_peer(call)->address;
  /* message: the ask described (up to 1024), a SPIFFE ID (512) and the
   * sentence around them, whole. */
  char err[MS_ERR_LEN], message[1024 + 512 + 256];
  xds_identity identity;
  if (xds_auth_identify(server, call, &identity, err, sizeof(err)) != MS_GRPC_OK) {
    refuse(call, state, XDS_CSR_UNAUTHENTICATED, MS_GRPC_UNAUTHENTICATED, err);
    return;
  }
  switch (xds_rate_take(&server->csr_rate, identity.spiffe_id, (int64_t)uv_now(server->loop))) {
    case XDS_RATE_OK:
      break;
    case XDS_RATE_LIMITED:
      snprintf(message, sizeof(message),
               "%s asked for more than %.0f certificates a minute; try again later",
               identity.spiffe_id, server->csr_rate.per_minute);
      refuse(call, state, XDS_CSR_RATE_LIMITED, MS_GRPC_RESOURCE_EXHAUSTED, message);
      return;
    case XDS_RATE_FULL:
      refuse(call, state, XDS_CSR_RATE_LIMITED, MS_GRPC_RESOURCE_EXHAUSTED,
             "too many identities asked for certificates in the last minute; try again later");
      return;
  }
  ms_csr_info info;
  int64_t asked;
  if (xds_csr_request_decode(state->request, state->request_len, &info, &asked, message,
                             sizeof(message)) != 0) {
    refuse(call, state, XDS_CSR_BAD_REQUEST, MS_GRPC_INVALID_ARGUMENT, message);
    return;
  }
  int64_t validity = validity_of(server, asked);
  if (info.uri_count != 1 || strcmp(info.uris[0], identity.spiffe_id) != 0 ||
      info.other_san_count != 0 || info.asks_ca) {
    char asked[1024];
    describe_ask(&info, asked, sizeof(asked));
    snprintf(message, sizeof(message),
             "the CSR asks for %s; the caller proved %s (by its %s): a CSR must ask for exactly "
             "that SPIFFE ID as its one URI SAN, with no other SAN and not as a CA",
             asked, identity.spiffe_id, xds_proof_name(identity.proof));
    ms_csr_info_cleanup(&info);
    refuse(call, state, XDS_CSR_NOT_YOURS, MS_GRPC_PERMISSION_DENIED, message);
    return;
  }
  xds_issued issued;
  int rc = xds_ca_issue_for_key(&server->ca, identity.spiffe_id, info.public_key, validity, &issued,
                                err, sizeof(err));
  ms_csr_info_cleanup(&info);
  if (rc != 0) {
    snprintf(message, sizeof(message), "cannot sign: %s", err);
    refuse(call, state, XDS_CSR_INTERNAL, MS_GRPC_INTERNAL, message);
    return;
  }
  ms_cert_info cert;
  bool have_info = ms_cert_info_init(&cert, issued.cert) == 0;
  char expiry[32] = "?";
  if (have_info) ms_time_rfc3339(cert.not_after, expiry, sizeof(expiry));
  if (respond(call, &issued) != 0) {
    refuse(call, state, XDS_CSR_INTERNAL, MS_GRPC_INTERNAL, "out of memory");
  } else {
    server->csr_stats.signed_count++;
    ms_log(MS_LOG_INFO, "ca_api: signed serial %s for %s (proof: %s) from %s, expires %s",
           have_info ? cert.serial_hex : "?", identity.spiffe_id, xds_proof_name(identity.proof),
           peer, expiry);
    csr_call_free(state);
  }
  if (have_info) ms_cert_info_cleanup(&cert);
  xds_issued_cleanup(&issued);
}

static void on_message(ms_grpc_server_call *call, const uint8_t *bytes, size_t len,
                       void *user_data) {
  csr_call *state = user_data;
  if (++state->messages > 1) {
    refuse(call, state, XDS_CSR_BAD_REQUEST, MS_GRPC_INVALID_ARGUMENT,
           "CreateCertificate takes one IstioCertificateRequest; a second message came");
    return;
  }
  state->request = malloc(len > 0 ? len : 1);
  if (state->request == NULL) {
    refuse(call, state, XDS_CSR_INTERNAL, MS_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  memcpy(state->request, bytes, len);
  state->request_len = len;
}

static void on_half_close(ms_grpc_server_call *call, void *user_data) {
  csr_call *state = user_data;
  if (state->messages == 0) {
    refuse(call, state, XDS_CSR_BAD_REQUEST, MS_GRPC_INVALID_ARGUMENT,
           "CreateCertificate takes one IstioCertificateRequest; none came");
    return;
  }
  handle(call, state);
}

static void on_cancel(ms_grpc_server_call *call, void *user_data) {
  csr_call_free(user_data);
}

static const ms_grpc_server_call_callbacks csr_callbacks = {
    .on_message = on_message,
    .on_half_close = on_half_close,
    .on_cancel = on_cancel,
};

int xds_csr_call_accept(ms_xds_server *server, ms_grpc_server_call *call,
                        const ms_grpc_peer *peer) {
  csr_call *state = calloc(1, sizeof(*state));
  if (state == NULL) return MS_GRPC_RESOURCE_EXHAUSTED;
  state->server = server;
  server->csr_stats.calls++;
  ms_grpc_server_call_set_handler(call, &csr_callbacks, state);
  return MS_GRPC_OK;
}

void xds_csr_status(const ms_xds_server *server, void *cjson_object) {
  cJSON *out = cjson_object;
  const xds_csr_stats *stats = &server->csr_stats;
  cJSON_AddNumberToObject(out, "calls", (double)stats->calls);
  cJSON_AddNumberToObject(out, "signed", (double)stats->signed_count);
  cJSON *refused = cJSON_AddObjectToObject(out, "refused");
  for (int i = 0; i < XDS_CSR_REFUSAL_COUNT; i++)
    cJSON_AddNumberToObject(refused, refusal_names[i], (double)stats->refused[i]);
  cJSON_AddNumberToObject(out, "rate_limited", (double)stats->refused[XDS_CSR_RATE_LIMITED]);
  cJSON *limits = cJSON_AddObjectToObject(out, "limits");
  cJSON_AddNumberToObject(limits, "per_identity_per_minute", server->csr_rate.per_minute);
  cJSON_AddNumberToObject(limits, "burst",
                          server->csr_rate.per_minute > 0 ? server->csr_rate.burst : 0);
  cJSON_AddNumberToObject(limits, "identities_tracked", (double)server->csr_rate.entry_count);
  cJSON_AddNumberToObject(limits, "max_identities_tracked", (double)server->csr_rate.max_entries);
  cJSON_AddNumberToObject(limits, "max_validity_seconds", (double)server->cert_ttl_seconds);
  cJSON_AddNumberToObject(limits, "min_validity_seconds", MIN_VALIDITY_SECONDS);
}
