/* session_cache.h: TLS sessions for resumption, one cache per worker (no
 * locks). A key is (context generation, cluster, endpoint, server name);
 * each key holds up to MS_SESSIONS_PER_KEY sessions, newest first.
 *
 * A TLS 1.3 ticket is meant for one use, so each connection takes an unused
 * one while there are several, and every resumed handshake brings new ones.
 * Many handshakes at once can still outrun the tickets in flight; then the
 * newest session is offered again rather than paying for a full handshake,
 * as nginx's proxy_ssl_session_reuse does. RFC 8446 advises against reuse
 * because it lets an observer link connections; between a sidecar and its
 * upstream the client certificate identifies us anyway.
 *
 * A rotated context has a new generation, so its connections never resume a
 * session made under the old certificate or trust bundle. */
#ifndef MS_SESSION_CACHE_H
#define MS_SESSION_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define MS_SESSIONS_PER_KEY 8

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
 * caller owns, or NULL. A single-use session leaves the cache unless it is
 * the last one. */
SSL_SESSION *ms_session_cache_take(ms_session_cache *cache, uint64_t key);

/* ms_session_cache_put stores `session` under `key`, taking over the
 * caller's reference (the oldest session of a full key is dropped). */
void ms_session_cache_put(ms_session_cache *cache, uint64_t key, SSL_SESSION *session);

#endif
