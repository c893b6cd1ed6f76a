/* server_state_test.c: the xDS state-of-the-world rules per stream and type
 * (server_state.h): initial requests, ACK, NACK, stale nonces, subscription
 * changes, wildcards; and the node identity -> SPIFFE ID mapping. */
#include <stdio.h>
#include <string.h>

#include "xds-server/server_internal.h"
#include "xds-server/server_state.h"
#include "xds/proto/type_urls.h"

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* apply sends one request; returns whether the server must respond and sets
 * *kind. */
static bool apply(xds_type_state *state, xds_type type, const char *version, const char *nonce,
                  const char *const *names, size_t count, const char *nack,
                  xds_request_kind *kind) {
  xds_request request = {
      .version_info = version,
      .response_nonce = nonce,
      .names = names,
      .name_count = count,
      .has_error = nack != NULL,
      .error_code = nack != NULL ? 3 : 0,
      .error_message = nack,
  };
  bool respond = false;
  CHECK(xds_type_state_on_request(state, type, &request, 1000, kind, &respond) == 0);
  return respond;
}

static void test_types(void) {
  xds_type type;
  CHECK(xds_type_from_url(MS_XDS_TYPE_URL_SECRET, &type) == 0 && type == XDS_TYPE_SDS);
  CHECK(xds_type_from_url(MS_XDS_TYPE_URL_CLUSTER, &type) == 0 && type == XDS_TYPE_CDS);
  CHECK(xds_type_from_url("type.googleapis.com/envoy.config.route.v3.RouteConfiguration", &type) ==
        -1);
  CHECK(xds_type_allows_wildcard(XDS_TYPE_LDS) && !xds_type_allows_wildcard(XDS_TYPE_EDS));
}

static void test_ack_nack_stale(void) {
  xds_type_state state = {0};
  xds_request_kind kind;
  /* Initial, wildcard: always answered. */
  CHECK(apply(&state, XDS_TYPE_CDS, "", "", NULL, 0, NULL, &kind));
  CHECK(kind == XDS_REQUEST_INITIAL && state.wildcard && xds_type_state_wants(&state, "any"));
  xds_type_state_on_sent(&state, "v1", "1", 11, 1000);
  /* ACK. */
  CHECK(!apply(&state, XDS_TYPE_CDS, "v1", "1", NULL, 0, NULL, &kind));
  CHECK(kind == XDS_REQUEST_ACK && strcmp(state.acked_version, "v1") == 0 && state.ack_count == 1);
  xds_type_state_on_sent(&state, "v2", "2", 22, 1000);
  /* A stale nonce (an ACK of the old response) is ignored. */
  CHECK(!apply(&state, XDS_TYPE_CDS, "v1", "1", NULL, 0, NULL, &kind));
  CHECK(kind == XDS_REQUEST_STALE && strcmp(state.acked_version, "v1") == 0 &&
        state.ack_count == 1);
  /* NACK of v2: recorded with the refused version, the ACKed one kept. */
  CHECK(!apply(&state, XDS_TYPE_CDS, "v1", "2", NULL, 0, "bad cluster", &kind));
  CHECK(kind == XDS_REQUEST_NACK && strcmp(state.nacked_version, "v2") == 0 &&
        strcmp(state.nack_message, "bad cluster") == 0 && state.nack_code == 3 &&
        strcmp(state.acked_version, "v1") == 0 && state.nack_count == 1);
  /* A NACK with a stale nonce is ignored too. */
  CHECK(!apply(&state, XDS_TYPE_CDS, "v1", "1", NULL, 0, "old", &kind));
  CHECK(kind == XDS_REQUEST_STALE && state.nack_count == 1);
  /* An initial request again (a client restarting the type): answered. */
  CHECK(apply(&state, XDS_TYPE_CDS, "v1", "", NULL, 0, NULL, &kind));
  CHECK(kind == XDS_REQUEST_INITIAL);
  xds_type_state_cleanup(&state);
  CHECK(state.names == NULL && !state.subscribed);
}

static void test_names(void) {
  xds_type_state state = {0};
  xds_request_kind kind;
  const char *ab[] = {"b", "a", "b"};
  const char *abc[] = {"c", "a", "b"};
  CHECK(apply(&state, XDS_TYPE_EDS, "", "", ab, 3, NULL, &kind));
  CHECK(state.name_count == 2 && strcmp(state.names[0], "a") == 0 && !state.wildcard);
  CHECK(xds_type_state_wants(&state, "b") && !xds_type_state_wants(&state, "c"));
  xds_type_state_on_sent(&state, "v1", "1", 1, 1000);
  /* The same names in another order: nothing to send. */
  const char *ba[] = {"a", "b"};
  CHECK(!apply(&state, XDS_TYPE_EDS, "v1", "1", ba, 2, NULL, &kind));
  /* New names with the current nonce: answered. */
  CHECK(apply(&state, XDS_TYPE_EDS, "v1", "1", abc, 3, NULL, &kind));
  CHECK(kind == XDS_REQUEST_ACK && xds_type_state_wants(&state, "c"));
  /* New names with a stale nonce: ignored, subscription unchanged. */
  const char *d[] = {"d"};
  CHECK(!apply(&state, XDS_TYPE_EDS, "v1", "0", d, 1, NULL, &kind));
  CHECK(kind == XDS_REQUEST_STALE && !xds_type_state_wants(&state, "d"));
  /* EDS with no names subscribes to nothing; "*" is the wildcard. */
  CHECK(apply(&state, XDS_TYPE_EDS, "v1", "1", NULL, 0, NULL, &kind));
  CHECK(!state.wildcard && !xds_type_state_wants(&state, "a"));
  const char *star[] = {"*"};
  CHECK(apply(&state, XDS_TYPE_EDS, "v1", "1", star, 1, NULL, &kind));
  CHECK(state.wildcard && xds_type_state_wants(&state, "zzz"));
  xds_type_state_cleanup(&state);
}

/* expect_claims: node.id and metadata claim `want_ns` / `want_sa` ("" for
 * no claim), or are refused (want_ns NULL). */
static void expect_claims(const char *node_id, const char *ns, const char *sa, const char *want_ns,
                          const char *want_sa) {
  xds_node_claims claims;
  char err[512] = "";
  int rc = xds_node_claims_parse(node_id, ns, sa, &claims, err, sizeof(err));
  bool ok = want_ns == NULL ? rc != 0
                            : rc == 0 && strcmp(claims.namespace_name, want_ns) == 0 &&
                                  strcmp(claims.service_account, want_sa) == 0;
  if (!ok) {
    fprintf(stderr, "node id \"%s\" (ns %s, sa %s): want %s/%s, got %s%s/%s\n",
            node_id ? node_id : "", ns ? ns : "-", sa ? sa : "-", want_ns ? want_ns : "an error",
            want_sa ? want_sa : "", rc == 0 ? "" : err, rc == 0 ? claims.namespace_name : "",
            rc == 0 ? claims.service_account : "");
    failures++;
  }
}

static void test_node_claims(void) {
  expect_claims("orders.shop", NULL, NULL, "shop", "orders");
  expect_claims("orders", NULL, NULL, "", ""); /* a bare name claims nothing */
  expect_claims("x", "shop", "orders", "shop", "orders");
  expect_claims("orders.shop", "", "", "shop", "orders");
  expect_claims("sidecar~10.1.2.3~orders-7d4f.shop~shop.svc.cluster.local", NULL, NULL, "shop", "");
  expect_claims("sidecar~10.1.2.3~orders-7d4f.shop~shop.svc.cluster.local", NULL, "orders", "shop",
                "orders");
  expect_claims("", NULL, NULL, NULL, NULL);
  expect_claims(NULL, NULL, NULL, NULL, NULL);
  expect_claims("a/b.shop", NULL, NULL, NULL, NULL);
  expect_claims("orders.", NULL, NULL, NULL, NULL);
  expect_claims("orders.shop", "sh op", NULL, NULL, NULL);

  /* Claims against a proven identity. */
  xds_identity bob;
  char err[512];
  CHECK(xds_identity_init(&bob, XDS_PROOF_CERTIFICATE, "cluster.local", "b", 1, "bob", 3, err,
                          sizeof(err)) == 0);
  CHECK(strcmp(bob.spiffe_id, "spiffe://cluster.local/ns/b/sa/bob") == 0);
  xds_node_claims claims;
  CHECK(xds_node_claims_parse("alice.a", NULL, NULL, &claims, err, sizeof(err)) == 0);
  CHECK(xds_node_claims_check(&claims, &bob, err, sizeof(err)) != 0);
  CHECK(strstr(err, "\"a\"") != NULL && strstr(err, "\"alice\"") != NULL &&
        strstr(err, "spiffe://cluster.local/ns/b/sa/bob") != NULL);
  CHECK(xds_node_claims_parse("node-1", "a", "alice", &claims, err, sizeof(err)) == 0);
  CHECK(xds_node_claims_check(&claims, &bob, err, sizeof(err)) != 0);
  CHECK(xds_node_claims_parse("node-1", "b", NULL, &claims, err, sizeof(err)) == 0);
  CHECK(xds_node_claims_check(&claims, &bob, err, sizeof(err)) == 0);
  CHECK(xds_node_claims_parse("bob.b", NULL, NULL, &claims, err, sizeof(err)) == 0);
  CHECK(xds_node_claims_check(&claims, &bob, err, sizeof(err)) == 0);
  CHECK(xds_node_claims_parse("sidecar~10.0.0.1~bob-1.a~a.svc", NULL, NULL, &claims, err,
                              sizeof(err)) == 0);
  CHECK(xds_node_claims_check(&claims, &bob, err, sizeof(err)) != 0);
  CHECK(xds_identity_init(&bob, XDS_PROOF_TOKEN, "cluster.local", "b/x", 3, "bob", 3, err,
                          sizeof(err)) != 0);
}

int main(void) {
  test_types();
  test_ack_nack_stale();
  test_names();
  test_node_claims();
  if (failures > 0) {
    fprintf(stderr, "server_state_test: %d check(s) failed\n", failures);
    return 1;
  }
  printf("server_state_test: all checks passed\n");
  return 0;
}
