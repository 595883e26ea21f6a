/* cache: exact and semantic response caching (see README.md).
 *
 * on_request: requests to /v1/chat/completions and /v1/completions that
 * may be cached (no bypass header, temperature low enough) are looked up
 * by their exact key (cache_key.c) in the store (cache_store.c); a hit is
 * answered at once with the stored answer, rewritten (cache_answer.c) and
 * replayed as SSE by the host when the client asked for a stream. On a
 * miss the semantic layer (cache_semantic.c), when configured, embeds the
 * prompt while the request is suspended and may find an answer to a
 * question that means the same, under the guard (cache_guard.c).
 * on_response: a complete answer (whole: streams assembled by the host) of
 * a miss is stored. */
#include "cache.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <xxhash.h>

#include "cache_semantic.h"
#include "cache_snapshot.h"

#define NS_PER_MS 1000000ull

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool is_endpoint(struct sluice_str ep, const char *path)
{
    size_t n = strlen(path);
    return ep.len == n && memcmp(ep.ptr, path, n) == 0;
}

static bool has_token(struct sluice_str v, const char *token)
{
    size_t n = strlen(token);
    for (size_t i = 0; i + n <= v.len; i++) {
        if (strncasecmp(v.ptr + i, token, n) != 0)
            continue;
        bool start = i == 0 || v.ptr[i - 1] == ',' || v.ptr[i - 1] == ' ';
        bool end = i + n == v.len || v.ptr[i + n] == ',' ||
                   v.ptr[i + n] == ' ' || v.ptr[i + n] == '=';
        if (start && end)
            return true;
    }
    return false;
}

static void set_header(struct cache *c, struct sluice_req *r, const char *v)
{
    struct sluice_str s = {v, strlen(v)};
    c->host->resp_add_header(r, "x-sluice-cache", s);
    c->host->var_set(r, "sluice.cache", s); /* for cost and the policy */
}

/* The degradation ladder's "cache only" level: the health value named by
 * cache_only_when is at least 1. */
static bool cache_only(const struct cache *c)
{
    const struct sluice_host *h = c->host;
    double v = 0;
    return c->cache_only_when && SLUICE_HOST_HAS(h, health_get) &&
           h->health_get(h, c->cache_only_when, &v) == SLUICE_OK && v >= 1;
}

/* What cannot be answered from the cache while only the cache answers. */
static enum sluice_action refuse_uncached(struct cache *c, struct sluice_req *r)
{
    c->host->counter_add(c->m_cache_only, 1);
    set_header(c, r, "miss");
    return c->host->reject(r, 503, "server_error", "cache_only",
                           "The service is degraded and answers only "
                           "requests it has answered before; retry later.",
                           c->cache_only_retry_ms);
}

static enum sluice_action bypass(struct cache *c, struct sluice_req *r,
                                 const char *reason)
{
    if (cache_only(c))
        return refuse_uncached(c, r);
    const char *values[] = {reason};
    c->host->counter_add(c->host->metric_with(c->v_bypass, values), 1);
    set_header(c, r, "bypass");
    return SLUICE_CONTINUE;
}

enum sluice_action cache_miss(struct cache *c, struct sluice_req *r,
                              struct cache_req *st)
{
    if (cache_only(c))
        return refuse_uncached(c, r);
    c->host->counter_add(c->m_miss, 1);
    set_header(c, r, "miss");
    st->store = true;
    return SLUICE_CONTINUE;
}

enum sluice_action cache_serve(struct cache *c, struct sluice_req *r,
                               struct cache_req *st, const char *stored,
                               size_t stored_len, const char *kind,
                               double similarity)
{
    const struct sluice_host *h = c->host;
    uint64_t rnd = h->random_u64(h);
    int64_t now_s = h->wall_ms(h) / 1000;
    size_t len = stored_len;
    char *body = cache_answer_fill(stored, stored_len, rnd, now_s);
    if (!body) /* not a template: an entry from elsewhere */
        body = cache_answer_serve(stored, stored_len, rnd, now_s, &len);
    if (!body)
        return cache_miss(c, r, st);
    h->counter_add(
        strcmp(kind, "hit-exact") == 0 ? c->m_hit_exact : c->m_hit_semantic, 1);
    set_header(c, r, kind);
    if (similarity >= 0) {
        char sim[16];
        int n = snprintf(sim, sizeof sim, "%.4f", similarity);
        h->resp_add_header(r, "x-sluice-cache-similarity",
                           (struct sluice_str){sim, (size_t)n});
    }
    enum sluice_action a =
        h->respond(r, 200, "application/json", (struct sluice_str){body, len});
    free(body);
    return a;
}

static int scope_of(const struct cache *c, struct sluice_req *r, char *buf,
                    size_t cap)
{
    const struct sluice_host *h = c->host;
    if (c->scope == CACHE_SCOPE_GLOBAL)
        return 0;
    struct sluice_str t = h->req_identity(r, SLUICE_ID_TENANT);
    int n = snprintf(buf, cap, "t%.*s", (int)t.len, t.ptr ? t.ptr : "");
    if (c->scope == CACHE_SCOPE_USER && n >= 0 && (size_t)n < cap) {
        struct sluice_str u = h->req_identity(r, SLUICE_ID_USER);
        n += snprintf(buf + n, cap - (size_t)n, "%cu%.*s", 0, (int)u.len,
                      u.ptr ? u.ptr : "");
    }
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* After an exact miss (local and shared): the semantic layer, or a miss. */
static enum sluice_action
after_exact_miss(struct cache *c, struct sluice_req *r, struct cache_req *st)
{
    const struct sluice_host *h = c->host;
    char scope[600];
    int n = scope_of(c, r, scope, sizeof scope);
    struct sluice_str ep = h->req_endpoint(r);
    const json_t *body = h->req_json(r);
    if (c->sem && n >= 0 && body)
        return cache_sem_start(c, r, st, body,
                               (struct cache_part){scope, (size_t)n},
                               (struct cache_part){ep.ptr, ep.len});
    return cache_miss(c, r, st);
}

/* The shared layer's answer, on the request's worker. */
static void shared_done(void *arg, const char *body, size_t len)
{
    struct cache_req *st = arg;
    st->get = NULL;
    if (body && len && (st->shared_body = malloc(len)) != NULL) {
        memcpy(st->shared_body, body, len);
        st->shared_len = len;
    }
    st->shared = SHARED_DONE;
    st->cache->host->wake(st->cache->host, st->ticket);
}

static enum sluice_action ask_shared(struct cache *c, struct sluice_req *r,
                                     struct cache_req *st)
{
    const struct sluice_host *h = c->host;
    st->cache = c;
    st->ticket = h->wake_token(r);
    st->get =
        cache_redis_get(&c->shared, h->req_worker(r), st->key, shared_done, st);
    if (!st->get) /* Redis down or reconnecting: decide without it */
        return after_exact_miss(c, r, st);
    st->shared = SHARED_PENDING;
    /* The client has its own deadline; this one only guards against a
     * reply that never comes back to us. */
    uint64_t guard_ms = (uint64_t)c->shared.cfg.redis_timeout_ms * 4 + 100;
    st->shared_deadline_ns = mono_ns() + guard_ms * NS_PER_MS;
    h->resume_after(r, guard_ms);
    return SLUICE_SUSPEND;
}

static enum sluice_action shared_resume(struct cache *c, struct sluice_req *r,
                                        struct cache_req *st)
{
    const struct sluice_host *h = c->host;
    uint64_t now = mono_ns();
    if (st->shared == SHARED_PENDING && now < st->shared_deadline_ns) {
        /* an early, stale wake: keep waiting for the reply */
        h->resume_after(r, (st->shared_deadline_ns - now) / NS_PER_MS + 1);
        return SLUICE_SUSPEND;
    }
    if (st->shared == SHARED_PENDING) { /* our guard timer: give up */
        cache_redis_cancel(st->get);
        st->get = NULL;
        h->counter_add(c->shared.m_errors, 1);
    }
    st->shared = SHARED_DONE;
    char *body = st->shared_body;
    size_t len = st->shared_len;
    st->shared_body = NULL;
    /* What another instance stored: checked like an upstream answer. */
    if (!body || !cache_answer_storable(body, len, &c->finish_rules)) {
        free(body);
        return after_exact_miss(c, r, st);
    }
    cache_store_put(&c->store, st->key, body, len, h->now_ns(h), c->ttl_ns);
    h->counter_add(c->m_hit_shared, 1);
    enum sluice_action a = cache_serve(c, r, st, body, len, "hit-exact", -1);
    free(body);
    return a;
}

static enum sluice_action lookup(struct cache *c, struct sluice_req *r,
                                 struct cache_req *st, const json_t *body)
{
    const struct sluice_host *h = c->host;
    char scope[600];
    int n = scope_of(c, r, scope, sizeof scope);
    struct sluice_str ep = h->req_endpoint(r);
    struct cache_part sp = {scope, n > 0 ? (size_t)n : 0};
    struct cache_part epp = {ep.ptr, ep.len};

    if (n < 0 || cache_key_exact(&c->rules, sp, epp, body, st->key))
        return bypass(c, r, "unkeyable");
    uint64_t t0 = mono_ns();
    struct cache_entry *e = cache_store_get(&c->store, st->key, h->now_ns(h));
    h->observe(c->m_lookup, (double)(mono_ns() - t0) / 1e9);
    if (e) {
        enum sluice_action a =
            cache_serve(c, r, st, e->body, e->len, "hit-exact", -1);
        cache_entry_unref(e);
        return a;
    }
    if (rl_backend_is_redis(&c->shared))
        return ask_shared(c, r, st);
    return after_exact_miss(c, r, st);
}

static enum sluice_action cache_on_request(void *self, struct sluice_req *r,
                                           void *state)
{
    struct cache *c = self;
    struct cache_req *st = state;
    const struct sluice_host *h = c->host;

    if (st->embed != EMBED_NONE)
        return cache_sem_resume(c, r, st);
    if (st->shared != SHARED_NONE)
        return shared_resume(c, r, st);
    struct sluice_str ep = h->req_endpoint(r);
    if (!is_endpoint(ep, "/v1/chat/completions") &&
        !is_endpoint(ep, "/v1/completions"))
        return SLUICE_CONTINUE;
    /* A stream's answer can be stored only whole (SDK 1.1). */
    if (h->req_stream(r) && !c->streams)
        return bypass(c, r, "stream");
    struct sluice_str x = h->req_header(r, "x-sluice-cache");
    if (x.len == 6 && strncasecmp(x.ptr, "bypass", 6) == 0)
        return bypass(c, r, "header");
    struct sluice_str cc = h->req_header(r, "cache-control");
    if (has_token(cc, "no-store"))
        return bypass(c, r, "no_store");
    const json_t *body = h->req_json(r);
    if (!json_is_object(body))
        return SLUICE_CONTINUE;
    double t = cache_key_temperature(body, c->missing_temperature);
    if (!(t <= c->max_temperature)) /* NaN too */
        return bypass(c, r, "temperature");
    if (has_token(cc, "no-cache")) {
        /* Revalidate: skip the lookup, store the fresh answer. */
        char scope[600];
        int n = scope_of(c, r, scope, sizeof scope);
        struct cache_part sp = {scope, n > 0 ? (size_t)n : 0};
        if (n < 0 ||
            cache_key_exact(&c->rules, sp, (struct cache_part){ep.ptr, ep.len},
                            body, st->key))
            return bypass(c, r, "unkeyable");
        if (bypass(c, r, "no_cache") == SLUICE_RESPOND)
            return SLUICE_RESPOND; /* cache only: no fresh answers */
        st->store = true;
        return SLUICE_CONTINUE;
    }
    return lookup(c, r, st, body);
}

static void publish_sizes(struct cache *c)
{
    struct cache_store_stats s;
    cache_store_stats(&c->store, &s);
    c->host->gauge_set(c->m_entries, (double)s.entries);
    c->host->gauge_set(c->m_bytes, (double)s.bytes);
}

static void cache_on_response(void *self, struct sluice_req *r, void *state)
{
    struct cache *c = self;
    struct cache_req *st = state;
    const struct sluice_host *h = c->host;

    if (!st->store)
        return;
    st->store = false; /* once, even if called again */
    if (h->resp_status(r) != 200 || h->resp_outcome(r) != SLUICE_OUTCOME_OK)
        goto not_stored;
    /* A stream: the chat.completion assembled from it, empty when cut. */
    struct sluice_str body =
        c->streams ? h->resp_whole_body(r) : h->resp_body(r);
    if (!body.len || body.len > c->max_entry_bytes ||
        !cache_answer_storable(body.ptr, body.len, &c->finish_rules))
        goto not_stored;
    size_t tlen = 0;
    char *t = cache_answer_template(body.ptr, body.len, &tlen);
    if (!t || tlen > c->max_entry_bytes ||
        cache_store_put(&c->store, st->key, t, tlen, h->now_ns(h), c->ttl_ns) !=
            0) {
        free(t);
        goto not_stored;
    }
    h->counter_add(c->m_stored, 1);
    if (rl_backend_is_redis(&c->shared))
        cache_redis_set(&c->shared, h->req_worker(r), st->key, t, tlen,
                        c->ttl_ns / 1000000);
    free(t);
    if (c->sem && st->embed == EMBED_DONE)
        cache_sem_insert(c, r, st);
    publish_sizes(c);
    return;
not_stored:
    h->counter_add(c->m_not_stored, 1);
}

static void cache_on_cleanup(void *self, struct sluice_req *r, void *state)
{
    (void)self;
    (void)r;
    struct cache_req *st = state;
    free(st->vec);
    st->vec = NULL;
    cache_redis_cancel(st->get); /* the client left while Redis was asked */
    st->get = NULL;
    free(st->shared_body);
    st->shared_body = NULL;
}

/* Store lock held: count, and forget the entry's vector. */
static void on_drop(void *arg, const unsigned char *key,
                    enum cache_drop_reason why)
{
    struct cache *c = arg;
    if (why == CACHE_DROP_LRU)
        c->host->counter_add(c->m_evicted, 1);
    else if (why == CACHE_DROP_TTL)
        c->host->counter_add(c->m_expired, 1);
    if (c->sem)
        cache_sem_forget(c->sem, key);
}

static void sweep(void *arg, unsigned worker)
{
    struct cache *c = arg;
    (void)worker;
    cache_store_sweep(&c->store, c->host->now_ns(c->host));
    publish_sizes(c);
}

static void save_snapshot(struct cache *c)
{
    const struct sluice_host *h = c->host;
    char err[256];
    if (cache_snapshot_write(&c->store, c->snapshot_path, c->rules.seed,
                             h->now_ns(h), h->wall_ms(h), err, sizeof err))
        h->log(h, SLUICE_LOG_WARN, "cache snapshot not written: %s", err);
}

static void snapshot_tick(void *arg, unsigned worker)
{
    (void)worker;
    save_snapshot(arg);
}

/* Before any key is made: a snapshot brings the seed its keys used. */
static void load_snapshot(struct cache *c)
{
    const struct sluice_host *h = c->host;
    char err[256];
    size_t loaded = 0;
    uint64_t seed = 0;
    int rc =
        cache_snapshot_load(&c->store, c->snapshot_path, &seed, h->now_ns(h),
                            h->wall_ms(h), c->ttl_ns, &loaded, err, sizeof err);
    if (rc == 0) {
        c->rules.seed = seed;
        h->log(h, SLUICE_LOG_INFO, "cache snapshot loaded: %zu answers from %s",
               loaded, c->snapshot_path);
    } else if (rc < 0) {
        h->log(h, SLUICE_LOG_WARN, "cache snapshot ignored: %s", err);
    }
}

static size_t cache_status_json(void *self, char *buf, size_t cap)
{
    struct cache *c = self;
    struct cache_store_stats s;
    cache_store_stats(&c->store, &s);
    int n = snprintf(buf, cap,
                     "{\"entries\":%zu,\"bytes\":%zu,\"max_entries\":%zu,"
                     "\"max_bytes\":%zu,\"evicted\":%llu,\"expired\":%llu,"
                     "\"semantic\":%s,\"vectors\":%zu}",
                     s.entries, s.bytes, c->store.max_entries,
                     c->store.max_bytes, (unsigned long long)s.evicted_lru,
                     (unsigned long long)s.expired, c->sem ? "true" : "false",
                     c->sem ? cache_sem_count(c->sem) : 0);
    return n > 0 ? (size_t)n : 0;
}

static void cache_destroy(void *self)
{
    struct cache *c = self;
    if (!c)
        return;
    if (c->snapshot_path)
        save_snapshot(c); /* shutdown or reload: no request runs now */
    cache_store_fini(&c->store);
    cache_sem_free(c->sem);
    rl_backend_fini(&c->shared);
    free(c);
}

static void make_metrics(struct cache *c)
{
    const struct sluice_host *h = c->host;
    static const char *const reason[] = {"reason"};
    static const double lat[] = {1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4,
                                 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 1e-1};
    c->m_hit_exact = h->counter(h, "sluice_cache_hits_exact_total",
                                "requests answered by an exact hit");
    c->m_hit_semantic = h->counter(h, "sluice_cache_hits_semantic_total",
                                   "requests answered by a semantic hit");
    c->m_miss = h->counter(h, "sluice_cache_misses_total",
                           "cacheable requests sent upstream");
    c->v_bypass =
        h->counter_vec(h, "sluice_cache_bypass_total",
                       "requests that skipped the lookup", reason, 1, 16);
    c->m_stored = h->counter(h, "sluice_cache_stored_total", "answers stored");
    c->m_not_stored =
        h->counter(h, "sluice_cache_not_stored_total",
                   "answers of misses not stored (error, cut, too big, ...)");
    c->m_evicted = h->counter(h, "sluice_cache_evictions_total",
                              "answers evicted by the entry or byte cap");
    c->m_expired = h->counter(h, "sluice_cache_expired_total",
                              "answers dropped when their TTL ran out");
    c->m_entries = h->gauge(h, "sluice_cache_entries", "answers stored now");
    c->m_bytes = h->gauge(h, "sluice_cache_bytes", "bytes charged now");
    c->m_cache_only =
        h->counter(h, "sluice_cache_cache_only_rejections_total",
                   "requests refused with 503 while only the cache answers");
    c->m_hit_shared =
        h->counter(h, "sluice_cache_hits_shared_total",
                   "exact hits found in Redis (backend redis), not locally");
    c->m_lookup =
        h->histogram(h, "sluice_cache_lookup_seconds", "exact lookup time", lat,
                     sizeof lat / sizeof lat[0]);
}

static int cache_create(const struct sluice_host *host, const void *config,
                        struct sluice_str raw_json, void **self,
                        struct sluice_error *err)
{
    const struct cache_config *cfg = config;
    (void)raw_json;

    if (!SLUICE_HOST_HAS(host, metric_with)) {
        snprintf(err->message, sizeof err->message,
                 "the cache plugin needs a gateway with SDK 1.1");
        return -1;
    }
    struct cache *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    c->host = host;
    c->scope = cfg->scope;
    c->ttl_ns = (uint64_t)cfg->ttl_ns;
    c->max_entry_bytes = (size_t)cfg->max_entry_bytes;
    c->max_temperature = cfg->max_temperature;
    c->missing_temperature = cfg->missing_temperature;
    if (cfg->cache_only_when && cfg->cache_only_when[0])
        c->cache_only_when = cfg->cache_only_when;
    c->cache_only_retry_ms =
        (uint64_t)cfg->cache_only_retry_after_ns / NS_PER_MS;
    c->streams = SLUICE_HOST_HAS(host, resp_whole_body);
    c->rules.seed = host->random_u64(host); /* keys not guessable outside */
    for (size_t i = 0; i < cfg->ignore_fields.count; i++)
        c->rules.ignored[c->rules.ignored_count++] =
            *SLUICE_CFG_ITEM(cfg->ignore_fields, const char *, i);
    for (size_t i = 0; i < cfg->finish_reasons.count; i++)
        c->finish[i] = *SLUICE_CFG_ITEM(cfg->finish_reasons, const char *, i);
    c->finish_rules.reasons = c->finish;
    c->finish_rules.count = cfg->finish_reasons.count;
    if (cache_store_init(&c->store, (size_t)cfg->max_entries,
                         (size_t)cfg->max_bytes)) {
        snprintf(err->message, sizeof err->message, "out of memory");
        free(c);
        return -1;
    }
    cache_store_on_drop(&c->store, on_drop, c);
    make_metrics(c);
    if (cache_redis_init(&c->shared, host, &cfg->shared, err)) {
        cache_destroy(c);
        return -1;
    }
    if (cfg->snapshot.path && cfg->snapshot.path[0]) {
        c->snapshot_path = cfg->snapshot.path;
        load_snapshot(c);
    }
    if (rl_backend_is_redis(&c->shared)) {
        /* Every instance sharing the prefix must hash alike. */
        uint64_t seed =
            XXH64(c->shared.key_prefix, c->shared.key_prefix_len, 0x5eed);
        if (c->rules.seed != seed && c->store.map.count) {
            host->log(host, SLUICE_LOG_WARN,
                      "cache snapshot keys do not match the Redis key seed: "
                      "snapshot dropped");
            cache_store_sweep(&c->store, UINT64_MAX);
        }
        c->rules.seed = seed;
    }
    if (cfg->semantic.upstream && cfg->semantic.upstream[0] &&
        !(c->sem = cache_sem_new(host, &cfg->semantic, err))) {
        c->snapshot_path = NULL; /* refused: leave the file as it was */
        cache_destroy(c);
        return -1;
    }
    if (SLUICE_HOST_HAS(host, timer_start)) {
        uint64_t ms = (uint64_t)cfg->sweep_interval_ns / NS_PER_MS;
        host->timer_start(host, 0, ms, ms, sweep, c, &c->sweep_timer);
        ms = (uint64_t)cfg->snapshot.interval_ns / NS_PER_MS;
        if (c->snapshot_path)
            host->timer_start(host, 0, ms, ms, snapshot_tick, c,
                              &c->snapshot_timer);
    }
    publish_sizes(c);
    *self = c;
    return 0;
}

static int cache_thread_init(void *self, unsigned worker)
{
    struct cache *c = self;
    return rl_backend_thread_init(&c->shared, worker);
}

static void cache_thread_fini(void *self, unsigned worker)
{
    struct cache *c = self;
    rl_backend_thread_fini(&c->shared, worker);
}

static const struct sluice_plugin cache_plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "cache",
    .version = "1.0.0",
    .summary = "exact and semantic response cache with a guard against "
               "look-alike questions",
    .config = cache_config_fields,
    .config_size = sizeof(struct cache_config),
    .req_state_size = sizeof(struct cache_req),
    .create = cache_create,
    .destroy = cache_destroy,
    .thread_init = cache_thread_init,
    .thread_fini = cache_thread_fini,
    .on_request = cache_on_request,
    .on_response = cache_on_response,
    .on_cleanup = cache_on_cleanup,
    .status_json = cache_status_json,
    .whole_streams = true,
};

SLUICE_PLUGIN_EXPORT(cache_plugin)
