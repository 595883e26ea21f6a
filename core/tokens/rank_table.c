#include "rank_table.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static inline uint64_t hash_bytes(const unsigned char *p, size_t n)
{
    return XXH3_64bits(p, n);
}

bool tok_rank_table_init(struct tok_rank_table *t, const unsigned char *blob,
                         size_t size)
{
    memset(t, 0, sizeof(*t));
    uint32_t n = 0;
    for (size_t pos = 0; pos < size; pos += 1 + (size_t)blob[pos]) {
        if (blob[pos] == 0 || pos + 1 + blob[pos] > size)
            return false;
        n++;
    }
    uint32_t cap = 1;
    while (cap < n * 2u)
        cap <<= 1; /* load factor <= 0.5 keeps probes short */
    t->offset = malloc(sizeof(*t->offset) * n);
    t->slots = malloc(sizeof(*t->slots) * cap);
    if (!t->offset || !t->slots) {
        tok_rank_table_free(t);
        return false;
    }
    t->blob = blob;
    t->n = n;
    t->mask = cap - 1;
    for (uint32_t i = 0; i < cap; i++)
        t->slots[i] = (struct tok_rank_slot){0, TOK_NO_RANK};
    for (int b = 0; b < 256; b++)
        t->byte_rank[b] = TOK_NO_RANK;
    size_t pos = 0;
    for (uint32_t r = 0; r < n; r++) {
        size_t len = blob[pos];
        const unsigned char *p = blob + pos + 1;
        t->offset[r] = (uint32_t)(pos + 1);
        pos += 1 + len;
        if (len == 1)
            t->byte_rank[p[0]] = r;
        uint64_t h = hash_bytes(p, len);
        uint32_t i = (uint32_t)h & t->mask;
        while (t->slots[i].rank != TOK_NO_RANK)
            i = (i + 1) & t->mask;
        t->slots[i] = (struct tok_rank_slot){(uint32_t)(h >> 32), r};
    }
    /* Every byte must have a rank, or some input could not be encoded. */
    for (int b = 0; b < 256; b++)
        if (t->byte_rank[b] == TOK_NO_RANK) {
            tok_rank_table_free(t);
            return false;
        }
    return true;
}

void tok_rank_table_free(struct tok_rank_table *t)
{
    free(t->offset);
    free(t->slots);
    t->offset = NULL;
    t->slots = NULL;
}

uint32_t tok_rank_find(const struct tok_rank_table *t, const unsigned char *p,
                       size_t n)
{
    if (n == 1)
        return t->byte_rank[p[0]];
    if (n > TOK_MAX_TOKEN_BYTES)
        return TOK_NO_RANK;
    uint64_t h = hash_bytes(p, n);
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
        const struct tok_rank_slot *s = &t->slots[i];
        if (s->rank == TOK_NO_RANK)
            return TOK_NO_RANK;
        if (s->tag == tag) {
            const unsigned char *q = t->blob + t->offset[s->rank];
            if (q[-1] == n && memcmp(q, p, n) == 0)
                return s->rank;
        }
    }
}
