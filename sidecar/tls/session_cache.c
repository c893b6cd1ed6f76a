#include "sidecar/tls/session_cache.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
  uint64_t key; /* 0: empty */
  size_t count;
  SSL_SESSION *sessions[MS_SESSIONS_PER_KEY]; /* newest first */
} slot;

struct ms_session_cache {
  size_t mask; /* slots - 1; slots is a power of two */
  slot *slots;
};

ms_session_cache *ms_session_cache_new(size_t max_keys) {
  size_t slots = 16;
  while (slots < max_keys)
    slots <<= 1;
  ms_session_cache *cache = calloc(1, sizeof(*cache));
  if (cache == NULL) return NULL;
  cache->slots = calloc(slots, sizeof(slot));
  if (cache->slots == NULL) {
    free(cache);
    return NULL;
  }
  cache->mask = slots - 1;
  return cache;
}

static void slot_clear(slot *s) {
  for (size_t i = 0; i < s->count; i++)
    SSL_SESSION_free(s->sessions[i]);
  memset(s, 0, sizeof(*s));
}

void ms_session_cache_free(ms_session_cache *cache) {
  if (cache == NULL) return;
  for (size_t i = 0; i <= cache->mask; i++)
    slot_clear(&cache->slots[i]);
  free(cache->slots);
  free(cache);
}

static uint64_t fnv1a(uint64_t hash, const char *text) {
  for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p; p++) {
    hash ^= *p;
    hash *= 0x100000001b3ULL;
  }
  return (hash ^ 0xff) * 0x100000001b3ULL; /* separator, so "ab"+"c" != "a"+"bc" */
}

uint64_t ms_session_cache_key(uint64_t generation, const char *cluster, const char *endpoint,
                              const char *server_name) {
  uint64_t hash = 0xcbf29ce484222325ULL ^ generation;
  hash = fnv1a(hash, cluster);
  hash = fnv1a(hash, endpoint);
  hash = fnv1a(hash, server_name);
  return hash ? hash : 1;
}

/* One slot per key; a key whose slot is taken by another evicts it. With a
 * table sized well above the number of live keys, collisions are rare and
 * cost only a full handshake. */
SSL_SESSION *ms_session_cache_take(ms_session_cache *cache, uint64_t key) {
  slot *s = &cache->slots[key & cache->mask];
  if (s->key != key || s->count == 0) return NULL;
  SSL_SESSION *session = s->sessions[0];
  /* The last one stays for reuse: see session_cache.h. */
  if (!SSL_SESSION_should_be_single_use(session) || s->count == 1) {
    SSL_SESSION_up_ref(session);
    return session;
  }
  memmove(&s->sessions[0], &s->sessions[1], (s->count - 1) * sizeof(SSL_SESSION *));
  s->sessions[--s->count] = NULL;
  return session;
}

void ms_session_cache_put(ms_session_cache *cache, uint64_t key, SSL_SESSION *session) {
  slot *s = &cache->slots[key & cache->mask];
  if (s->key != key) {
    slot_clear(s);
    s->key = key;
  }
  if (s->count == MS_SESSIONS_PER_KEY) SSL_SESSION_free(s->sessions[--s->count]);
  memmove(&s->sessions[1], &s->sessions[0], s->count * sizeof(SSL_SESSION *));
  s->sessions[0] = session;
  s->count++;
}
