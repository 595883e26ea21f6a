#include "rl_map.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define MAX_SHARDS 64
#define MIN_BUCKETS 16
#define COLD_CHECKS 2 /* idle entries looked at per lookup */

struct rl_map_entry {
    struct rl_map_entry *next;            /* hash chain */
    struct rl_map_entry *colder, *hotter; /* LRU list */
    uint64_t hash;
    uint64_t idle_at;
    uint32_t key_len;
    max_align_t data[]; /* value (rounded to 16 bytes), then the key */
};

struct rl_map_shard {
    alignas(64) pthread_mutex_t lock;
    struct rl_map_entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    struct rl_map_entry *coldest, *hottest;
};

struct rl_map {
    struct rl_map_config cfg;
    size_t value_stride; /* value_size rounded up to 16 */
    size_t nshards;      /* power of two */
    size_t shard_cap;    /* max entries per shard */
    _Atomic size_t count;
    _Atomic size_t bytes;
    _Atomic uint64_t forced;
    struct rl_map_shard *shards;
};

static size_t entry_size(const struct rl_map *m, size_t key_len)
{
    return sizeof(struct rl_map_entry) + m->value_stride + key_len;
}

static char *entry_key(const struct rl_map *m, struct rl_map_entry *e)
{
    return (char *)e->data + m->value_stride;
}

struct rl_map *rl_map_new(const struct rl_map_config *cfg)
{
    struct rl_map *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cfg = *cfg;
    if (m->cfg.max_keys == 0)
        m->cfg.max_keys = 1;
    m->value_stride = (cfg->value_size + 15) & ~(size_t)15;
    /* Enough shards to spread contention, few enough that each shard's
     * share of max_keys stays meaningful. */
    m->nshards = 1;
    while (m->nshards < MAX_SHARDS && m->cfg.max_keys / (m->nshards * 2) >= 64)
        m->nshards *= 2;
    m->shard_cap = (m->cfg.max_keys + m->nshards - 1) / m->nshards;
    m->shards = aligned_alloc(64, m->nshards * sizeof *m->shards);
    if (!m->shards) {
        free(m);
        return NULL;
    }
    memset(m->shards, 0, m->nshards * sizeof *m->shards);
    for (size_t i = 0; i < m->nshards; i++) {
        struct rl_map_shard *s = &m->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->nbuckets = MIN_BUCKETS;
        s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
        if (!s->buckets) {
            m->nshards = i + 1;
            rl_map_free(m);
            return NULL;
        }
    }
    atomic_store(&m->bytes,
                 sizeof *m + m->nshards * (sizeof *m->shards +
                                           MIN_BUCKETS * sizeof(void *)));
    return m;
}

static void lru_unlink(struct rl_map_shard *s, struct rl_map_entry *e)
{
    if (e->colder)
        e->colder->hotter = e->hotter;
    else
        s->coldest = e->hotter;
    if (e->hotter)
        e->hotter->colder = e->colder;
    else
        s->hottest = e->colder;
    e->colder = e->hotter = NULL;
}

static void lru_push_hot(struct rl_map_shard *s, struct rl_map_entry *e)
{
    e->colder = s->hottest;
    e->hotter = NULL;
    if (s->hottest)
        s->hottest->hotter = e;
    else
        s->coldest = e;
    s->hottest = e;
}

static void rehash(struct rl_map *m, struct rl_map_shard *s, size_t n)
{
    struct rl_map_entry **nb = calloc(n, sizeof *nb);
    if (!nb)
        return; /* keep the old table: slower, still correct */
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct rl_map_entry *e = s->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
        }
    }
    free(s->buckets);
    atomic_fetch_add(&m->bytes, n * sizeof *nb);
    atomic_fetch_sub(&m->bytes, s->nbuckets * sizeof *nb);
    s->buckets = nb;
    s->nbuckets = n;
}

static void remove_entry(struct rl_map *m, struct rl_map_shard *s,
                         struct rl_map_entry *e)
{
    struct rl_map_entry **pp = &s->buckets[e->hash & (s->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    lru_unlink(s, e);
    s->count--;
    atomic_fetch_sub(&m->count, 1);
    atomic_fetch_sub(&m->bytes, entry_size(m, e->key_len));
    if (m->cfg.value_fini)
        m->cfg.value_fini(e->data);
    free(e);
    /* Give memory back after a burst of distinct keys has drained. */
    if (s->nbuckets > MIN_BUCKETS && s->count * 8 < s->nbuckets)
        rehash(m, s, s->nbuckets / 2);
}

/* Drops up to COLD_CHECKS idle entries from the cold end, never `keep`. */
static void drop_cold_idle(struct rl_map *m, struct rl_map_shard *s,
                           uint64_t now, const struct rl_map_entry *keep)
{
    for (int i = 0; i < COLD_CHECKS; i++) {
        struct rl_map_entry *e = s->coldest;
        if (!e || e == keep || e->idle_at > now)
            return;
        remove_entry(m, s, e);
    }
}

/* Makes room for one more entry when the shard is at its cap: the coldest
 * entry that is not pinned goes, idle or not. */
static void make_room(struct rl_map *m, struct rl_map_shard *s)
{
    struct rl_map_entry *e = s->coldest;
    for (int tries = 0; e && tries < 8; tries++, e = e->hotter) {
        if (e->idle_at != RL_MAP_PINNED) {
            remove_entry(m, s, e);
            atomic_fetch_add(&m->forced, 1);
            return;
        }
    }
    /* All cold entries are pinned (requests wait on them): go over the
     * cap; pinned entries are bounded by the requests in flight. */
}

bool rl_map_lock(struct rl_map *m, const char *key, size_t len, uint64_t now_ns,
                 bool create, struct rl_map_slot *slot)
{
    if (len > RL_MAP_MAX_KEY)
        len = RL_MAP_MAX_KEY;
    uint64_t h = XXH3_64bits_withSeed(key, len, m->cfg.seed);
    /* High bits pick the shard, low bits the bucket. */
    struct rl_map_shard *s = &m->shards[(h >> 58) & (m->nshards - 1)];
    struct rl_map_entry *e;

    memset(slot, 0, sizeof *slot);
    pthread_mutex_lock(&s->lock);
    for (e = s->buckets[h & (s->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && e->key_len == len &&
            memcmp(entry_key(m, e), key, len) == 0)
            break;
    drop_cold_idle(m, s, now_ns, e);
    if (e) {
        lru_unlink(s, e);
        lru_push_hot(s, e);
    } else {
        if (!create)
            goto fail;
        if (s->count >= m->shard_cap)
            make_room(m, s);
        e = calloc(1, entry_size(m, len));
        if (!e)
            goto fail;
        e->hash = h;
        e->key_len = (uint32_t)len;
        e->idle_at = now_ns;
        memcpy(entry_key(m, e), key, len);
        e->next = s->buckets[h & (s->nbuckets - 1)];
        s->buckets[h & (s->nbuckets - 1)] = e;
        lru_push_hot(s, e);
        s->count++;
        atomic_fetch_add(&m->count, 1);
        atomic_fetch_add(&m->bytes, entry_size(m, len));
        if (s->count > s->nbuckets)
            rehash(m, s, s->nbuckets * 2);
        slot->created = true;
    }
    slot->map = m;
    slot->shard = s;
    slot->entry = e;
    slot->value = e->data;
    return true;
fail:
    pthread_mutex_unlock(&s->lock);
    return false;
}

void rl_map_unlock(struct rl_map_slot *slot, uint64_t idle_at_ns)
{
    slot->entry->idle_at = idle_at_ns;
    pthread_mutex_unlock(&slot->shard->lock);
}

void rl_map_unlock_remove(struct rl_map_slot *slot)
{
    remove_entry(slot->map, slot->shard, slot->entry);
    pthread_mutex_unlock(&slot->shard->lock);
}

size_t rl_map_sweep(struct rl_map *m, uint64_t now_ns)
{
    size_t dropped = 0;
    for (size_t i = 0; i < m->nshards; i++) {
        struct rl_map_shard *s = &m->shards[i];
        pthread_mutex_lock(&s->lock);
        struct rl_map_entry *e = s->coldest, *next;
        for (; e; e = next) {
            next = e->hotter;
            if (e->idle_at <= now_ns) {
                remove_entry(m, s, e);
                dropped++;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return dropped;
}

void rl_map_foreach(struct rl_map *m,
                    void (*fn)(void *arg, const char *key, size_t len,
                               void *value),
                    void *arg)
{
    for (size_t i = 0; i < m->nshards; i++) {
        struct rl_map_shard *s = &m->shards[i];
        pthread_mutex_lock(&s->lock);
        for (struct rl_map_entry *e = s->hottest; e; e = e->colder)
            fn(arg, entry_key(m, e), e->key_len, e->data);
        pthread_mutex_unlock(&s->lock);
    }
}

void rl_map_free(struct rl_map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nshards; i++) {
        struct rl_map_shard *s = &m->shards[i];
        struct rl_map_entry *e = s->coldest, *next;
        for (; e; e = next) {
            next = e->hotter;
            if (m->cfg.value_fini)
                m->cfg.value_fini(e->data);
            free(e);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(m->shards);
    free(m);
}

size_t rl_map_count(const struct rl_map *m)
{
    return atomic_load_explicit(&((struct rl_map *)m)->count,
                                memory_order_relaxed);
}

size_t rl_map_bytes(const struct rl_map *m)
{
    return atomic_load_explicit(&((struct rl_map *)m)->bytes,
                                memory_order_relaxed);
}

uint64_t rl_map_forced_evictions(const struct rl_map *m)
{
    return atomic_load_explicit(&((struct rl_map *)m)->forced,
                                memory_order_relaxed);
}

size_t rl_map_entry_overhead(const struct rl_map *m)
{
    /* The entry header, its padded value and about one bucket pointer. */
    return sizeof(struct rl_map_entry) + m->value_stride + sizeof(void *);
}
