#include "keymap.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int keymap_init(struct keymap *m, size_t expected)
{
    size_t n = 16;
    /* Load factor at most 1 when full: chains stay short without rehash. */
    while (n < expected && n < ((size_t)1 << 24))
        n <<= 1;
    m->buckets = calloc(n, sizeof *m->buckets);
    if (!m->buckets)
        return -1;
    m->mask = n - 1;
    m->count = 0;
    return 0;
}

void keymap_fini(struct keymap *m)
{
    free(m->buckets);
    m->buckets = NULL;
    m->count = 0;
}

uint64_t keymap_hash(const void *key, size_t len)
{
    return XXH3_64bits(key, len);
}

struct keymap_node *keymap_find(const struct keymap *m, const void *key,
                                size_t len, uint64_t hash)
{
    for (struct keymap_node *n = m->buckets[hash & m->mask]; n; n = n->next)
        if (n->hash == hash && n->key_len == len &&
            memcmp(n->key, key, len) == 0)
            return n;
    return NULL;
}

void keymap_insert(struct keymap *m, struct keymap_node *node)
{
    struct keymap_node **head = &m->buckets[node->hash & m->mask];
    node->next = *head;
    *head = node;
    m->count++;
}

void keymap_remove(struct keymap *m, struct keymap_node *node)
{
    for (struct keymap_node **pp = &m->buckets[node->hash & m->mask]; *pp;
         pp = &(*pp)->next) {
        if (*pp == node) {
            *pp = node->next;
            node->next = NULL;
            m->count--;
            return;
        }
    }
}

void keymap_each(const struct keymap *m,
                 void (*fn)(struct keymap_node *node, void *arg), void *arg)
{
    for (size_t i = 0; i <= m->mask; i++)
        for (struct keymap_node *n = m->buckets[i]; n; n = n->next)
            fn(n, arg);
}

size_t keymap_remove_if(struct keymap *m,
                        int (*pred)(struct keymap_node *node, void *arg),
                        void (*drop)(struct keymap_node *node, void *arg),
                        void *arg)
{
    size_t removed = 0;
    for (size_t i = 0; i <= m->mask; i++) {
        struct keymap_node **pp = &m->buckets[i];
        while (*pp) {
            struct keymap_node *n = *pp;
            if (pred(n, arg)) {
                *pp = n->next;
                m->count--;
                removed++;
                drop(n, arg);
            } else {
                pp = &n->next;
            }
        }
    }
    return removed;
}
