#include "cache_store.h"

#include <stdlib.h>
#include <string.h>

int cache_store_init(struct cache_store *s, size_t max_entries,
                     size_t max_bytes)
{
    memset(s, 0, sizeof *s);
    s->max_entries = max_entries;
    s->max_bytes = max_bytes;
    /* The map never rehashes: size it for the cap, within reason. */
    if (keymap_init(&s->map, max_entries < (1u << 20) ? max_entries : 1u << 20))
        return -1;
    pthread_mutex_init(&s->lock, NULL);
    return 0;
}

void cache_entry_unref(struct cache_entry *e)
{
    if (e && atomic_fetch_sub(&e->refs, 1) == 1)
        free(e);
}

static void lru_unlink(struct cache_store *s, struct cache_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct cache_store *s, struct cache_entry *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head)
        s->head->prev = e;
    s->head = e;
    if (!s->tail)
        s->tail = e;
}

static void drop(struct cache_store *s, struct cache_entry *e,
                 enum cache_drop_reason why)
{
    keymap_remove(&s->map, &e->node);
    lru_unlink(s, e);
    s->bytes -= e->cost;
    if (why == CACHE_DROP_LRU)
        s->evicted_lru++;
    else if (why == CACHE_DROP_TTL)
        s->expired++;
    if (s->on_drop)
        s->on_drop(s->drop_arg, e->key, why);
    cache_entry_unref(e);
}

void cache_store_fini(struct cache_store *s)
{
    while (s->head) {
        struct cache_entry *e = s->head;
        lru_unlink(s, e);
        cache_entry_unref(e);
    }
    keymap_fini(&s->map);
    pthread_mutex_destroy(&s->lock);
}

void cache_store_on_drop(struct cache_store *s, cache_drop_fn fn, void *arg)
{
    s->on_drop = fn;
    s->drop_arg = arg;
}

static struct cache_entry *find(struct cache_store *s, const unsigned char *key)
{
    struct keymap_node *n = keymap_find(&s->map, key, CACHE_KEY_BYTES,
                                        keymap_hash(key, CACHE_KEY_BYTES));
    return n ? keymap_entry(n, struct cache_entry, node) : NULL;
}

struct cache_entry *cache_store_get(struct cache_store *s,
                                    const unsigned char *key, uint64_t now_ns)
{
    pthread_mutex_lock(&s->lock);
    struct cache_entry *e = find(s, key);
    if (e && now_ns >= e->expires_ns) {
        drop(s, e, CACHE_DROP_TTL);
        e = NULL;
    }
    if (e) {
        if (s->head != e) {
            lru_unlink(s, e);
            lru_push_front(s, e);
        }
        atomic_fetch_add(&e->refs, 1);
    }
    pthread_mutex_unlock(&s->lock);
    return e;
}

/* Expired entries first (from the old end, where they gather with one
 * TTL), then the least recently used, until both caps hold. */
static void make_room(struct cache_store *s, uint64_t now_ns)
{
    while (s->tail && now_ns >= s->tail->expires_ns)
        drop(s, s->tail, CACHE_DROP_TTL);
    while (s->tail &&
           (s->map.count > s->max_entries || s->bytes > s->max_bytes))
        drop(s, s->tail, CACHE_DROP_LRU);
}

int cache_store_put(struct cache_store *s, const unsigned char *key,
                    const char *body, size_t len, uint64_t now_ns,
                    uint64_t ttl_ns)
{
    size_t cost = CACHE_ENTRY_OVERHEAD + len + 1;
    if (cost > s->max_bytes || s->max_entries == 0)
        return 1;
    struct cache_entry *e = malloc(sizeof *e + len + 1);
    if (!e)
        return -1;
    memset(e, 0, sizeof *e);
    atomic_init(&e->refs, 1);
    memcpy(e->key, key, CACHE_KEY_BYTES);
    e->node.key = e->key;
    e->node.key_len = CACHE_KEY_BYTES;
    e->node.hash = keymap_hash(key, CACHE_KEY_BYTES);
    e->expires_ns = now_ns + ttl_ns;
    e->cost = cost;
    e->len = len;
    memcpy(e->body, body, len);
    e->body[len] = '\0';

    pthread_mutex_lock(&s->lock);
    struct cache_entry *old = find(s, key);
    if (old)
        drop(s, old, CACHE_DROP_REPLACED);
    keymap_insert(&s->map, &e->node);
    lru_push_front(s, e);
    s->bytes += cost;
    make_room(s, now_ns);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

size_t cache_store_sweep(struct cache_store *s, uint64_t now_ns)
{
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    /* TTLs differ only when the config changed, so scan the whole list
     * rather than stop at the first live entry. */
    for (struct cache_entry *e = s->tail, *prev; e; e = prev) {
        prev = e->prev;
        if (now_ns >= e->expires_ns) {
            drop(s, e, CACHE_DROP_TTL);
            n++;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

bool cache_store_remove(struct cache_store *s, const unsigned char *key)
{
    pthread_mutex_lock(&s->lock);
    struct cache_entry *e = find(s, key);
    if (e)
        drop(s, e, CACHE_DROP_REPLACED);
    pthread_mutex_unlock(&s->lock);
    return e != NULL;
}

void cache_store_stats(struct cache_store *s, struct cache_store_stats *out)
{
    pthread_mutex_lock(&s->lock);
    out->entries = s->map.count;
    out->bytes = s->bytes;
    out->evicted_lru = s->evicted_lru;
    out->expired = s->expired;
    pthread_mutex_unlock(&s->lock);
}

void cache_store_each(struct cache_store *s, uint64_t now_ns,
                      void (*fn)(const struct cache_entry *e, void *arg),
                      void *arg)
{
    pthread_mutex_lock(&s->lock);
    for (struct cache_entry *e = s->tail; e; e = e->prev)
        if (now_ns < e->expires_ns)
            fn(e, arg);
    pthread_mutex_unlock(&s->lock);
}
