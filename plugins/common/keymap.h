/* keymap: a small intrusive hash map keyed by byte strings, shared by the
 * breaker, admission and coalesce plugins. No locking and no allocation of
 * nodes: the caller embeds a struct keymap_node in its own entry, keeps the
 * key bytes alive as long as the node is in the map, and serialises access.
 * The bucket array is sized once (no rehash), since every user caps its
 * entry count in config. */
#ifndef SLUICE_COMMON_KEYMAP_H
#define SLUICE_COMMON_KEYMAP_H

#include <stddef.h>
#include <stdint.h>

#define keymap_entry(ptr, type, member)                                        \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct keymap_node {
    struct keymap_node *next;
    uint64_t hash;
    const void *key; /* owned by the caller, usually the entry itself */
    size_t key_len;
};

struct keymap {
    struct keymap_node **buckets;
    size_t mask; /* bucket count - 1 (a power of two) */
    size_t count;
};

/* Sizes the table for about `expected` entries. Returns 0 or -1 (ENOMEM). */
int keymap_init(struct keymap *m, size_t expected);
/* Frees the bucket array only; entries belong to the caller. */
void keymap_fini(struct keymap *m);

uint64_t keymap_hash(const void *key, size_t len);
struct keymap_node *keymap_find(const struct keymap *m, const void *key,
                                size_t len, uint64_t hash);
/* node->key, key_len and hash must be set; the key must not be present. */
void keymap_insert(struct keymap *m, struct keymap_node *node);
void keymap_remove(struct keymap *m, struct keymap_node *node);

/* Visits every node; `fn` may not insert or remove. */
void keymap_each(const struct keymap *m,
                 void (*fn)(struct keymap_node *node, void *arg), void *arg);
/* Removes every node for which `pred` returns nonzero, then calls `drop`
 * on it (which may free it). Returns how many were removed. */
size_t keymap_remove_if(struct keymap *m,
                        int (*pred)(struct keymap_node *node, void *arg),
                        void (*drop)(struct keymap_node *node, void *arg),
                        void *arg);

#endif
