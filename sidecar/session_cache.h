/* session_cache.h: TLS sessions for resumption, one cache per worker (no
 * locks). A key is (context generation, cluster, endpoint, server name);
 * each key holds up to MS_SESSIONS_PER_KEY sessions, newest first, because a
 * TLS 1.3 ticket is single-use: with a few in stock, every new connection
 * finds one even while the previous connection's new tickets are in flight.
 * A rotated context has a new generation, so its connections never resume a
 * session made under the old certificate or trust bundle. */
#ifndef MS_SESSION_CACHE_H
#define MS_SESSION_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define MS_SESSIONS_PER_KEY 4

typedef struct ms_session_cache ms_session_cache;

/* ms_session_cache_new returns a cache holding at most `max_keys` keys, or
 * NULL when memory ran out. */
ms_session_cache *ms_session_cache_new(size_t max_keys);

/* ms_session_cache_free releases every session. Accepts NULL. */
void ms_session_cache_free(ms_session_cache *cache);

/* ms_session_cache_key hashes the parts of a key. */
uint64_t ms_session_cache_key(uint64_t generation, const char *cluster, const char *endpoint,
                              const char *server_name);

/* ms_session_cache_take returns a session for `key` with a reference the
 * caller owns (a single-use session leaves the cache), or NULL. */
SSL_SESSION *ms_session_cache_take(ms_session_cache *cache, uint64_t key);

/* ms_session_cache_put stores `session` under `key`, taking over the
 * caller's reference (the oldest session of a full key is dropped). */
void ms_session_cache_put(ms_session_cache *cache, uint64_t key, SSL_SESSION *session);

#endif
