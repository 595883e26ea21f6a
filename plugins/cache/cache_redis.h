/* cache_redis: the exact layer shared by several sluice instances through
 * Redis (backend "redis"), behind the local store: a local miss asks Redis
 * (GET, while the request is suspended), a Redis hit is copied into the
 * local store and served; every stored answer is also SET in Redis with
 * the same TTL. Keys are PREFIX{32 hex digits}: the braces make the hash
 * a Redis Cluster hash tag, so each key maps to one slot. An error, a
 * timeout or Redis being down is a miss, never an error. Uses the
 * limiter plugins' per-worker client (../common/rl_backend). */
#ifndef SLUICE_CACHE_REDIS_H
#define SLUICE_CACHE_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/rl_backend.h"
#include "cache_key.h"

/* Called once per started GET (not after cancel): body NULL on a miss,
 * an error or a timeout. */
typedef void (*cache_redis_fn)(void *arg, const char *body, size_t len);

int cache_redis_init(struct rl_backend *b, const struct sluice_host *h,
                     const struct rl_backend_cfg *cfg,
                     struct sluice_error *err);
/* The key as Redis sees it; out holds at least 300 bytes. */
size_t cache_redis_key(const struct rl_backend *b,
                       const unsigned char key[CACHE_KEY_BYTES], char *out);
struct cache_redis_get;

/* NULL when this worker's client is not ready (down, reconnecting). The
 * handle is valid until fn runs or cache_redis_cancel(). */
struct cache_redis_get *cache_redis_get(struct rl_backend *b, unsigned worker,
                                        const unsigned char *key,
                                        cache_redis_fn fn, void *arg);
/* fn will not run. */
void cache_redis_cancel(struct cache_redis_get *g);
/* Fire and forget. */
void cache_redis_set(struct rl_backend *b, unsigned worker,
                     const unsigned char *key, const char *body, size_t len,
                     uint64_t ttl_ms);

#endif
