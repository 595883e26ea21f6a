#include "rank_table.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Up to 8 bytes as one integer (little-endian, zero-padded). */
static inline uint64_t head_of(const unsigned char *p, size_t n)
{
    /* Two overlapping loads cover any length from 2 to 8 bytes exactly
     * (the overlap holds the same bytes in both). */
    if (n >= 8) {
        uint64_t h;
        memcpy(&h, p, 8);
        return h;
    }
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4);
        return lo | (uint64_t)hi << (8 * (n - 4));
    }
    if (n < 2)
        return n ? p[0] : 0;
    uint16_t lo, hi;
    memcpy(&lo, p, 2);
    memcpy(&hi, p + n - 2, 2);
    return lo | (uint64_t)hi << (8 * (n - 2));
}

/* Short keys: a multiplicative mix of the head and the length (no call);
 * longer ones XXH3. */
static inline uint64_t hash_bytes(const unsigned char *p, size_t n,
                                  uint64_t head)
{
    if (n <= 8) {
        uint64_t h =
            (head ^ (n * 0x9E3779B97F4A7C15ull)) * 0xD6E8FEB86659FD93ull;
        return h ^ (h >> 32);
    }
    return XXH3_64bits(p, n);
}

static inline uint32_t meta_of(size_t n, uint64_t h)
{
    return (uint32_t)n << 24 | ((uint32_t)h & 0xFFFFFF);
}

static inline uint32_t index_of(uint64_t h, uint32_t mask)
{
    return (uint32_t)(h >> 32) & mask;
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
    t->pair_rank = malloc(sizeof(*t->pair_rank) * 65536);
    if (!t->offset || !t->slots || !t->pair_rank) {
        tok_rank_table_free(t);
        return false;
    }
    t->blob = blob;
    t->n = n;
    t->mask = cap - 1;
    for (uint32_t i = 0; i < cap; i++)
        t->slots[i] = (struct tok_rank_slot){0, TOK_NO_RANK, 0};
    for (int b = 0; b < 256; b++)
        t->byte_rank[b] = TOK_NO_RANK;
    for (int b = 0; b < 65536; b++)
        t->pair_rank[b] = TOK_NO_RANK;
    size_t pos = 0;
    for (uint32_t r = 0; r < n; r++) {
        size_t len = blob[pos];
        const unsigned char *p = blob + pos + 1;
        t->offset[r] = (uint32_t)(pos + 1);
        pos += 1 + len;
        if (len == 1)
            t->byte_rank[p[0]] = r;
        else if (len == 2)
            t->pair_rank[p[0] | (unsigned)p[1] << 8] = r;
        uint64_t head = head_of(p, len), h = hash_bytes(p, len, head);
        uint32_t i = index_of(h, t->mask);
        while (t->slots[i].rank != TOK_NO_RANK)
            i = (i + 1) & t->mask;
        t->slots[i] = (struct tok_rank_slot){head, r, meta_of(len, h)};
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
    free(t->pair_rank);
    t->offset = NULL;
    t->slots = NULL;
    t->pair_rank = NULL;
}

uint32_t tok_rank_find_hashed(const struct tok_rank_table *t,
                              const unsigned char *p, size_t n)
{
    if (n > TOK_MAX_TOKEN_BYTES)
        return TOK_NO_RANK;
    uint64_t head = head_of(p, n), h = hash_bytes(p, n, head);
    uint32_t meta = meta_of(n, h);
    for (uint32_t i = index_of(h, t->mask);; i = (i + 1) & t->mask) {
        const struct tok_rank_slot *s = &t->slots[i];
        if (s->rank == TOK_NO_RANK)
            return TOK_NO_RANK;
        if (s->meta == meta && s->head == head &&
            (n <= 8 ||
             memcmp(t->blob + t->offset[s->rank] + 8, p + 8, n - 8) == 0))
            return s->rank;
    }
}
