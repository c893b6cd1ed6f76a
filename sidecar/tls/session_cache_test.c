/* session_cache_test: the per-worker TLS session cache (session_cache.h)
 * on sessions made by hand: what a key keeps and in which order, single
 * use, the cap of MS_SESSIONS_PER_KEY, keys kept apart, a slot taken by
 * another key, and every reference given back. No handshake needed. */
#include "sidecar/tls/session_cache.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/ssl.h>

#include "tests/lib/test_check.h"

#define MAX_SESSIONS 64

static SSL_CTX *ctx;
static int ex_index;
static int numbers[MAX_SESSIONS]; /* each session's ex_data points at its number */
static bool freed[MAX_SESSIONS];  /* set when BoringSSL frees the session */
static int made;

static void on_session_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int index, long argl,
                            void *argp) {
  if (ptr) freed[*(int *)ptr] = true;
}

/* new_session makes session number `made`; TLS 1.3 sessions are single
 * use (SSL_SESSION_should_be_single_use), TLS 1.2 ones are not. */
static SSL_SESSION *new_session(uint16_t version) {
  CHECK(made < MAX_SESSIONS);
  SSL_SESSION *session = SSL_SESSION_new(ctx);
  CHECK(session != NULL);
  CHECK(SSL_SESSION_set_protocol_version(session, version) == 1);
  numbers[made] = made;
  CHECK(SSL_SESSION_set_ex_data(session, ex_index, &numbers[made]) == 1);
  made++;
  return session;
}

static int number_of(SSL_SESSION *session) {
  return session ? *(int *)SSL_SESSION_get_ex_data(session, ex_index) : -1;
}

/* take returns the number of the session the cache hands out for `key`
 * (-1: none), giving the caller's reference back at once. */
static int take(ms_session_cache *cache, uint64_t key) {
  SSL_SESSION *session = ms_session_cache_take(cache, key);
  int number = number_of(session);
  SSL_SESSION_free(session);
  return number;
}

static uint64_t key_of(uint64_t generation) {
  return ms_session_cache_key(generation, "cluster", "10.0.0.1:443", "upstream.test");
}

static void test_empty_cache_has_nothing(void) {
  ms_session_cache *cache = ms_session_cache_new(16);
  CHECK(cache != NULL);
  CHECK_INT(take(cache, key_of(1)), -1);
  ms_session_cache_free(cache);
  ms_session_cache_free(NULL);
}

/* A TLS 1.2 session may be offered again and again: it stays. */
static void test_reusable_session_stays(void) {
  ms_session_cache *cache = ms_session_cache_new(16);
  SSL_SESSION *session = new_session(TLS1_2_VERSION);
  int number = number_of(session);
  ms_session_cache_put(cache, key_of(1), session);
  CHECK_INT(take(cache, key_of(1)), number);
  CHECK_INT(take(cache, key_of(1)), number);
  CHECK(!freed[number]); /* the cache still holds its reference */
  ms_session_cache_free(cache);
  CHECK(freed[number]);
}

/* TLS 1.3 tickets are for one use: each take hands out another one, newest
 * first; the last one is offered again rather than none. */
static void test_single_use_sessions_newest_first(void) {
  ms_session_cache *cache = ms_session_cache_new(16);
  int first = made;
  for (int i = 0; i < 3; i++)
    ms_session_cache_put(cache, key_of(1), new_session(TLS1_3_VERSION));
  CHECK_INT(take(cache, key_of(1)), first + 2);
  CHECK_INT(take(cache, key_of(1)), first + 1);
  CHECK_INT(take(cache, key_of(1)), first);
  CHECK_INT(take(cache, key_of(1)), first); /* the last one stays */
  CHECK(freed[first + 2] && freed[first + 1]);
  CHECK(!freed[first]);
  ms_session_cache_free(cache);
  CHECK(freed[first]);
}

/* A key keeps at most MS_SESSIONS_PER_KEY sessions: a full key drops its
 * oldest, at once. */
static void test_full_key_drops_its_oldest(void) {
  ms_session_cache *cache = ms_session_cache_new(16);
  int first = made;
  int count = MS_SESSIONS_PER_KEY + 2;
  for (int i = 0; i < count; i++)
    ms_session_cache_put(cache, key_of(1), new_session(TLS1_3_VERSION));
  CHECK(freed[first] && freed[first + 1]);
  for (int i = 2; i < count; i++)
    CHECK(!freed[first + i]);
  for (int i = count - 1; i >= 2; i--)
    CHECK_INT(take(cache, key_of(1)), first + i);
  CHECK_INT(take(cache, key_of(1)), first + 2); /* the last one, again */
  ms_session_cache_free(cache);
  for (int i = 0; i < count; i++)
    CHECK(freed[first + i]);
}

/* A key is (context generation, cluster, endpoint, server name): a change
 * of any part finds nothing, so a rotated context (a new generation) never
 * resumes a session made under the old certificate or trust bundle. */
static void test_keys_apart(void) {
  ms_session_cache *cache = ms_session_cache_new(1024);
  SSL_SESSION *session = new_session(TLS1_2_VERSION);
  int number = number_of(session);
  uint64_t key = ms_session_cache_key(1, "cluster", "10.0.0.1:443", "upstream.test");
  ms_session_cache_put(cache, key, session);
  const uint64_t others[] = {
      ms_session_cache_key(2, "cluster", "10.0.0.1:443", "upstream.test"),
      ms_session_cache_key(1, "other", "10.0.0.1:443", "upstream.test"),
      ms_session_cache_key(1, "cluster", "10.0.0.2:443", "upstream.test"),
      ms_session_cache_key(1, "cluster", "10.0.0.1:443", "other.test"),
      ms_session_cache_key(1, "cluster", "10.0.0.1:443", NULL),
      /* The parts are kept apart: "clusterX"+"Y" is not "cluster"+"XY". */
      ms_session_cache_key(1, "cluster10.0.0.1:443", "", "upstream.test"),
  };
  for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
    CHECK(others[i] != key);
    CHECK(others[i] != 0);
    CHECK_INT(take(cache, others[i]), -1);
  }
  CHECK_INT(take(cache, key), number);
  CHECK_INT(take(cache, ms_session_cache_key(1, "cluster", "10.0.0.1:443", "upstream.test")),
            number);
  ms_session_cache_free(cache);
}

/* One slot per key: a key whose slot another key takes loses its sessions
 * (released at once); the newcomer's are found, the old key's are not. */
static void test_slot_taken_by_another_key(void) {
  ms_session_cache *cache = ms_session_cache_new(16); /* 16 slots */
  uint64_t a = key_of(1), b = 0;
  for (uint64_t generation = 2; b == 0; generation++)
    if ((key_of(generation) & 15) == (a & 15)) b = key_of(generation);
  int first = made;
  ms_session_cache_put(cache, a, new_session(TLS1_3_VERSION));
  ms_session_cache_put(cache, a, new_session(TLS1_3_VERSION));
  ms_session_cache_put(cache, b, new_session(TLS1_3_VERSION));
  CHECK(freed[first] && freed[first + 1]);
  CHECK_INT(take(cache, a), -1);
  CHECK_INT(take(cache, b), first + 2);
  ms_session_cache_free(cache);
  CHECK(freed[first + 2]);
}

int main(void) {
  ctx = SSL_CTX_new(TLS_method());
  CHECK(ctx != NULL);
  ex_index = SSL_SESSION_get_ex_new_index(0, NULL, NULL, NULL, on_session_free);
  CHECK(ex_index >= 0);
  test_empty_cache_has_nothing();
  test_reusable_session_stays();
  test_single_use_sessions_newest_first();
  test_full_key_drops_its_oldest();
  test_keys_apart();
  test_slot_taken_by_another_key();
  SSL_CTX_free(ctx);
  /* Every session the test made was released: the cache keeps no
   * reference past ms_session_cache_free. */
  for (int i = 0; i < made; i++)
    CHECK(freed[i]);
  printf("session_cache_test: all checks passed\n");
  return 0;
}
