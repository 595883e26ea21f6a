/* cache_store: the exact layer's answers, by key, with a TTL and caps in
 * entries and in bytes enforced by least-recently-used eviction.
 *
 * Thread-safe: one mutex guards the map and the LRU list; it is held only
 * for the lookup and the list move. An entry is reference-counted, so a
 * request keeps serving the body it got even if the entry is evicted
 * meanwhile. Time is passed in (monotonic ns): the store has no clock of
 * its own, so tests drive TTLs with a fake one. */
#ifndef SLUICE_CACHE_STORE_H
#define SLUICE_CACHE_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/keymap.h"
#include "cache_key.h"

struct cache_entry {
    struct keymap_node node;
    struct cache_entry *prev, *next; /* LRU list, most recent first */
    atomic_uint refs;
    unsigned char key[CACHE_KEY_BYTES];
    uint64_t expires_ns;
    size_t cost; /* bytes charged against max_bytes */
    size_t len;
    char body[]; /* NUL-terminated */
};

enum cache_drop_reason { CACHE_DROP_LRU, CACHE_DROP_TTL, CACHE_DROP_REPLACED };

/* Told of every entry that leaves the store (store lock held: it must not
 * call back into the store). */
typedef void (*cache_drop_fn)(void *arg, const unsigned char *key,
                              enum cache_drop_reason why);

struct cache_store_stats {
    size_t entries, bytes;
    uint64_t evicted_lru, expired;
};

struct cache_store {
    pthread_mutex_t lock;
    struct keymap map;
    struct cache_entry *head, *tail;
    size_t max_entries, max_bytes, bytes;
    uint64_t evicted_lru, expired;
    cache_drop_fn on_drop;
    void *drop_arg;
};

/* Per-entry bookkeeping charged on top of the body (entry header, map
 * bucket share, allocator slack). */
#define CACHE_ENTRY_OVERHEAD (sizeof(struct cache_entry) + 32)

int cache_store_init(struct cache_store *s, size_t max_entries,
                     size_t max_bytes);
void cache_store_fini(struct cache_store *s);
void cache_store_on_drop(struct cache_store *s, cache_drop_fn fn, void *arg);

/* A referenced entry (cache_entry_unref when done), or NULL: absent or
 * expired (an expired one is dropped). A hit becomes the most recent. */
struct cache_entry *cache_store_get(struct cache_store *s,
                                    const unsigned char *key, uint64_t now_ns);
void cache_entry_unref(struct cache_entry *e);

/* Stores a copy of body under key, replacing an older one, then evicts
 * expired and least recently used entries until both caps hold. Returns 0,
 * -1 when memory ran out, 1 when the entry alone exceeds max_bytes. */
int cache_store_put(struct cache_store *s, const unsigned char *key,
                    const char *body, size_t len, uint64_t now_ns,
                    uint64_t ttl_ns);
/* Drops every expired entry; returns how many. */
size_t cache_store_sweep(struct cache_store *s, uint64_t now_ns);
bool cache_store_remove(struct cache_store *s, const unsigned char *key);
void cache_store_stats(struct cache_store *s, struct cache_store_stats *out);

/* Visits every live entry, oldest first (snapshots). Lock held. */
void cache_store_each(struct cache_store *s, uint64_t now_ns,
                      void (*fn)(const struct cache_entry *e, void *arg),
                      void *arg);

#endif
