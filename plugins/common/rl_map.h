/* A sharded hash map of per-key limiter state, shared by all workers.
 *
 * Each shard has its own mutex, hash table and LRU list, so two workers
 * only contend when their keys land in the same shard. Every entry carries
 * an "idle at" time set by its owner: from then on the state equals a fresh
 * one (bucket full, window empty) and dropping it loses nothing. Lookups
 * drop a few such entries from the cold end of the LRU list as they go, and
 * a shard that reaches its share of max_keys drops its coldest entry even
 * if it is not idle yet (counted in rl_map_forced_evictions()). Entries
 * whose idle time is RL_MAP_PINNED (e.g. requests queued on them) are never
 * dropped. */
#ifndef RL_MAP_H
#define RL_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_MAP_PINNED UINT64_MAX
#define RL_MAP_MAX_KEY 255

struct rl_map;
struct rl_map_shard;
struct rl_map_entry;

struct rl_map_config {
    size_t value_size; /* bytes of state per key, zeroed on creation */
    size_t max_keys;   /* cap on live keys (>= 1) */
    uint64_t seed;     /* hash seed (random: keys come from clients) */
    /* Optional: frees what a value points to before the entry goes. */
    void (*value_fini)(void *value);
};

/* A locked entry; valid until rl_map_unlock(). */
struct rl_map_slot {
    struct rl_map *map;
    struct rl_map_shard *shard;
    struct rl_map_entry *entry;
    void *value;
    bool created; /* the value is new (all zero) */
};

struct rl_map *rl_map_new(const struct rl_map_config *cfg);
void rl_map_free(struct rl_map *m);

/* Finds the key (creating it when `create`), locks its shard and fills
 * slot. Returns false when the key is absent and not created, or on
 * allocation failure (slot->map is then NULL and nothing is locked).
 * Keys longer than RL_MAP_MAX_KEY are cut (callers hash long keys first). */
bool rl_map_lock(struct rl_map *m, const char *key, size_t len, uint64_t now_ns,
                 bool create, struct rl_map_slot *slot);
/* Records when the entry becomes idle (RL_MAP_PINNED: never) and unlocks. */
void rl_map_unlock(struct rl_map_slot *slot, uint64_t idle_at_ns);
/* Drops the locked entry and unlocks. */
void rl_map_unlock_remove(struct rl_map_slot *slot);

/* Drops every idle entry (e.g. from a timer). Returns how many went. */
size_t rl_map_sweep(struct rl_map *m, uint64_t now_ns);

/* Calls fn for each entry with its shard locked (status pages, reapers).
 * fn must not call back into the map. */
void rl_map_foreach(struct rl_map *m,
                    void (*fn)(void *arg, const char *key, size_t len,
                               void *value),
                    void *arg);

size_t rl_map_count(const struct rl_map *m);
/* Heap bytes held by the map: tables plus entries as allocated. */
size_t rl_map_bytes(const struct rl_map *m);
uint64_t rl_map_forced_evictions(const struct rl_map *m);
/* Bytes one entry costs, excluding its key and the allocator's header. */
size_t rl_map_entry_overhead(const struct rl_map *m);

#endif
