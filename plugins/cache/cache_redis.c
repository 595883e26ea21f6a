#include "cache_redis.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SCRIPT_GET = 0, SCRIPT_SET = 1 };
static const char *const scripts[] = {
    "return redis.call('GET', KEYS[1])",
    "return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])",
};

int cache_redis_init(struct rl_backend *b, const struct sluice_host *h,
                     const struct rl_backend_cfg *cfg, struct sluice_error *err)
{
    return rl_backend_init(b, h, "cache", "cache", "exact", cfg, scripts, 2,
                           err);
}

size_t cache_redis_key(const struct rl_backend *b,
                       const unsigned char key[CACHE_KEY_BYTES], char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = b->key_prefix_len;
    memcpy(out, b->key_prefix, n);
    out[n++] = '{';
    for (size_t i = 0; i < CACHE_KEY_BYTES; i++) {
        out[n++] = hex[key[i] >> 4];
        out[n++] = hex[key[i] & 15];
    }
    out[n++] = '}';
    out[n] = '\0';
    return n;
}

struct cache_redis_get {
    cache_redis_fn fn;
    void *arg;
    struct rl_backend *b;
    struct rl_redis_call *call;
};

static void got(void *arg, enum rl_redis_result res,
                const struct redisReply *reply)
{
    struct cache_redis_get *g = arg;
    if (res != RL_REDIS_OK)
        g->b->host->counter_add(g->b->m_errors, 1);
    if (res == RL_REDIS_OK && reply && reply->type == REDIS_REPLY_STRING)
        g->fn(g->arg, reply->str, reply->len);
    else
        g->fn(g->arg, NULL, 0);
    free(g);
}

struct cache_redis_get *cache_redis_get(struct rl_backend *b, unsigned worker,
                                        const unsigned char *key,
                                        cache_redis_fn fn, void *arg)
{
    struct rl_redis *c = rl_backend_client(b, worker);
    char k[300];
    if (!c)
        return NULL;
    struct cache_redis_get *g = malloc(sizeof *g);
    if (!g)
        return NULL;
    *g = (struct cache_redis_get){fn, arg, b, NULL};
    const char *argv[] = {k};
    size_t argvlen[] = {cache_redis_key(b, key, k)};
    g->call = rl_redis_eval(c, SCRIPT_GET, 1, 1, argv, argvlen, got, g);
    if (!g->call) {
        free(g);
        return NULL;
    }
    return g;
}

void cache_redis_cancel(struct cache_redis_get *g)
{
    if (!g)
        return;
    rl_redis_cancel(g->call);
    free(g);
}

void cache_redis_set(struct rl_backend *b, unsigned worker,
                     const unsigned char *key, const char *body, size_t len,
                     uint64_t ttl_ms)
{
    struct rl_redis *c = rl_backend_client(b, worker);
    char k[300], ttl[24];
    if (!c)
        return;
    const char *argv[] = {k, body, ttl};
    size_t argvlen[] = {
        cache_redis_key(b, key, k), len,
        (size_t)snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms)};
    rl_redis_eval(c, SCRIPT_SET, 1, 3, argv, argvlen, NULL, NULL);
}
