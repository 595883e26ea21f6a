#include "cache_semantic.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_guard.h"
#include "cache_index.h"

#define NS_PER_MS 1000000ull
#define MAX_CANDIDATES 8

struct cache_sem {
    const struct sluice_host *host;
    const char *upstream, *model;
    size_t dim, max_text;
    float threshold;
    bool guard;
    uint64_t timeout_ns;

    pthread_mutex_t lock;
    struct cache_index *ix;

    struct sluice_metric *m_embed, *m_vectors;
    struct sluice_metric_vec *v_embed_fail, *v_guard;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct cache_sem *cache_sem_new(const struct sluice_host *h,
                                const struct cache_semantic_config *cfg,
                                struct sluice_error *err)
{
    if (!SLUICE_HOST_HAS(h, call_upstream)) {
        snprintf(err->message, sizeof err->message,
                 "semantic.upstream: this gateway cannot make upstream calls "
                 "for plugins (SDK 1.1 needed)");
        return NULL;
    }
    bool known = !SLUICE_HOST_HAS(h, upstream_count);
    for (size_t i = 0; !known && i < h->upstream_count(h); i++) {
        struct sluice_str n = h->upstream_name(h, i);
        known = n.len == strlen(cfg->upstream) &&
                memcmp(n.ptr, cfg->upstream, n.len) == 0;
    }
    if (!known) {
        snprintf(err->message, sizeof err->message,
                 "semantic.upstream: no upstream named \"%.64s\"",
                 cfg->upstream);
        return NULL;
    }
    struct cache_sem *s = calloc(1, sizeof *s);
    if (!s || !(s->ix = cache_index_new((size_t)cfg->dimensions,
                                        (size_t)cfg->max_entries,
                                        (size_t)cfg->ann_threshold))) {
        free(s);
        snprintf(err->message, sizeof err->message, "out of memory");
        return NULL;
    }
    cache_index_set_ef_search(s->ix, (unsigned)cfg->ef_search);
    s->host = h;
    s->upstream = cfg->upstream;
    s->model = cfg->model;
    s->dim = (size_t)cfg->dimensions;
    s->max_text = (size_t)cfg->max_text_bytes;
    s->threshold = (float)cfg->threshold;
    s->guard = cfg->guard;
    s->timeout_ns = (uint64_t)cfg->timeout_ns;
    pthread_mutex_init(&s->lock, NULL);

    static const char *const reason[] = {"reason"};
    static const char *const rule[] = {"rule"};
    static const double lat[] = {1e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2,
                                 2e-2, 5e-2, 1e-1, 2e-1, 5e-1, 1};
    s->m_embed =
        h->histogram(h, "sluice_cache_embedding_seconds",
                     "time to embed a prompt", lat, sizeof lat / sizeof lat[0]);
    s->m_vectors =
        h->gauge(h, "sluice_cache_vectors", "prompts in the semantic index");
    s->v_embed_fail =
        h->counter_vec(h, "sluice_cache_embedding_failures_total",
                       "embeddings that failed (a miss)", reason, 1, 8);
    s->v_guard = h->counter_vec(h, "sluice_cache_guard_rejections_total",
                                "similar prompts the guard refused, by rule",
                                rule, 1, 16);
    return s;
}

void cache_sem_free(struct cache_sem *s)
{
    if (!s)
        return;
    cache_index_free(s->ix);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void count_failure(struct cache_sem *s, const char *reason)
{
    const char *v[] = {reason};
    s->host->counter_add(s->host->metric_with(s->v_embed_fail, v), 1);
}

/* {"data":[{"embedding":[...]}]} with the configured dimensions. */
static float *parse_embedding(const struct cache_sem *s, const char *body,
                              size_t len)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const json_t *emb = json_object_get(
        json_array_get(json_object_get(root, "data"), 0), "embedding");
    float *v = NULL;
    if (json_is_array(emb) && json_array_size(emb) == s->dim &&
        (v = malloc(s->dim * sizeof *v))) {
        for (size_t i = 0; i < s->dim && v; i++) {
            const json_t *x = json_array_get(emb, i);
            if (!json_is_number(x)) {
                free(v);
                v = NULL;
            } else {
                v[i] = (float)json_number_value(x);
            }
        }
        if (v && !cache_vec_normalise(v, s->dim)) {
            free(v);
            v = NULL;
        }
    }
    json_decref(root);
    return v;
}

/* The embedding's answer, on the request's worker; r is not touched here
 * (it may be ending: CLIENT_GONE). */
static void embed_done(void *arg, const struct sluice_call_result *res)
{
    struct cache_req *st = arg;
    struct cache *c = st->cache;
    struct cache_sem *s = c->sem;

    st->call = 0;
    if (st->embed != EMBED_PENDING)
        return;
    s->host->observe(s->m_embed,
                     (double)(mono_ns() - st->embed_start_ns) / 1e9);
    if (res->outcome == SLUICE_OUTCOME_CLIENT_GONE) {
        st->embed = EMBED_FAILED;
        return;
    }
    if (res->status == 200 && res->outcome == SLUICE_OUTCOME_OK)
        st->vec = parse_embedding(s, res->body.ptr, res->body.len);
    if (!st->vec)
        count_failure(s, res->status == 200 ? "bad_answer" : "upstream");
    st->embed = st->vec ? EMBED_DONE : EMBED_FAILED;
    s->host->wake(s->host, st->ticket);
}

enum sluice_action cache_sem_start(struct cache *c, struct sluice_req *r,
                                   struct cache_req *st, const json_t *body,
                                   struct cache_part scope,
                                   struct cache_part endpoint)
{
    struct cache_sem *s = c->sem;
    const struct sluice_host *h = c->host;
    struct cache_part text;

    if (cache_key_semantic(&c->rules, scope, endpoint, body, st->scope,
                           &text) ||
        text.len > s->max_text)
        return cache_miss(c, r, st);
    json_t *req =
        json_pack("{s:s, s:s%, s:I}", "model", s->model, "input", text.ptr,
                  text.len, "dimensions", (json_int_t)s->dim);
    char *payload = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!payload) {
        count_failure(s, "no_memory");
        return cache_miss(c, r, st);
    }
    st->cache = c;
    st->text = text.ptr;
    st->text_len = text.len;
    st->embed = EMBED_PENDING;
    st->embed_start_ns = mono_ns();
    st->ticket = h->wake_token(r);
    int rc = h->call_upstream(h, r, s->upstream, "/v1/embeddings",
                              (struct sluice_str){payload, strlen(payload)},
                              NULL, embed_done, st, &st->call);
    free(payload);
    if (rc != SLUICE_OK) {
        st->embed = EMBED_FAILED;
        count_failure(s, "call");
        return cache_miss(c, r, st);
    }
    h->resume_after(r, (s->timeout_ns + NS_PER_MS - 1) / NS_PER_MS);
    return SLUICE_SUSPEND;
}

/* The most similar stored prompt the guard accepts: its exact key. */
static bool find_match(struct cache_sem *s, struct cache_req *st,
                       unsigned char key[CACHE_KEY_BYTES], float *sim)
{
    struct cache_index_hit hits[MAX_CANDIDATES];
    bool found = false;

    pthread_mutex_lock(&s->lock);
    size_t n = cache_index_search(s->ix, st->scope, st->vec, s->threshold, hits,
                                  MAX_CANDIDATES);
    for (size_t i = 0; i < n && !found; i++) {
        enum cache_guard_rule rule = CACHE_GUARD_AGREE;
        if (s->guard)
            rule = cache_guard_check(st->text, st->text_len, hits[i].text,
                                     hits[i].text_len);
        if (rule == CACHE_GUARD_AGREE) {
            memcpy(key, hits[i].key, CACHE_KEY_BYTES);
            *sim = hits[i].similarity;
            found = true;
        } else {
            const char *v[] = {cache_guard_rule_name(rule)};
            s->host->counter_add(s->host->metric_with(s->v_guard, v), 1);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

enum sluice_action cache_sem_resume(struct cache *c, struct sluice_req *r,
                                    struct cache_req *st)
{
    struct cache_sem *s = c->sem;
    const struct sluice_host *h = c->host;

    if (st->embed == EMBED_PENDING) {
        uint64_t waited = mono_ns() - st->embed_start_ns;
        if (waited < s->timeout_ns) { /* an early, stale wake */
            h->resume_after(r, (s->timeout_ns - waited + NS_PER_MS - 1) /
                                   NS_PER_MS);
            return SLUICE_SUSPEND;
        }
        h->call_cancel(h, st->call); /* too slow: go without it */
        st->call = 0;
        st->embed = EMBED_FAILED;
        count_failure(s, "timeout");
    }
    if (st->embed != EMBED_DONE || st->store || c->store.max_entries == 0)
        return st->store ? SLUICE_CONTINUE : cache_miss(c, r, st);

    unsigned char key[CACHE_KEY_BYTES];
    float sim = 0;
    if (find_match(s, st, key, &sim)) {
        struct cache_entry *e = cache_store_get(&c->store, key, h->now_ns(h));
        if (e) {
            enum sluice_action a =
                cache_serve(c, r, st, e->body, e->len, "hit-semantic", sim);
            cache_entry_unref(e);
            return a;
        }
        cache_sem_forget(s, key); /* its answer left meanwhile */
    }
    return cache_miss(c, r, st);
}

void cache_sem_insert(struct cache *c, struct sluice_req *r,
                      struct cache_req *st)
{
    struct cache_sem *s = c->sem;
    (void)r;
    pthread_mutex_lock(&s->lock);
    cache_index_add(s->ix, st->scope, st->key, st->vec, st->text, st->text_len);
    size_t n = cache_index_count(s->ix);
    pthread_mutex_unlock(&s->lock);
    s->host->gauge_set(s->m_vectors, (double)n);
}

void cache_sem_forget(struct cache_sem *s, const unsigned char *key)
{
    pthread_mutex_lock(&s->lock);
    cache_index_remove(s->ix, key);
    size_t n = cache_index_count(s->ix);
    pthread_mutex_unlock(&s->lock);
    s->host->gauge_set(s->m_vectors, (double)n);
}

size_t cache_sem_count(struct cache_sem *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = cache_index_count(s->ix);
    pthread_mutex_unlock(&s->lock);
    return n;
}
