/* A BPE rank table: token bytes -> rank, over the embedded rank blob (one
 * length byte then the token's bytes, for ranks 0..n-1 in order). */
#ifndef SLUICE_TOKENS_RANK_TABLE_H
#define SLUICE_TOKENS_RANK_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#define TOK_NO_RANK UINT32_MAX
#define TOK_MAX_TOKEN_BYTES 128 /* longest token in either encoding */

/* A token's first 8 bytes live in its slot, so the common short tokens
 * are found and compared with one memory access. */
struct tok_rank_slot {
    uint64_t head; /* first bytes, zero-padded */
    uint32_t rank; /* TOK_NO_RANK: empty */
    uint32_t meta; /* length << 24 | 24 bits of the hash */
};

struct tok_rank_table {
    const unsigned char *blob;
    uint32_t *offset; /* rank -> offset of its bytes in blob */
    uint32_t n;
    uint32_t mask;
    struct tok_rank_slot *slots;
    uint32_t byte_rank[256];
    uint32_t *pair_rank; /* two-byte tokens, indexed directly (256 KB): the
                          * most frequent lookup while merging */
    uint64_t *filter;    /* two bits per token of longer ones, in one word
                          * chosen by the hash (256 KB, stays in cache) */
    uint32_t filter_mask;
    uint64_t *inner; /* a bit per two bytes b0 b1 (b0 | b1 << 8): set when
                      * they occur next to each other in some token (8 KB) */
};

/* Indexes blob (size bytes). False on a malformed blob or no memory. */
bool tok_rank_table_init(struct tok_rank_table *t, const unsigned char *blob,
                         size_t size);
void tok_rank_table_free(struct tok_rank_table *t);

/* Hashing and probing, inline: the merge loops call them all the time. */
/* Up to 8 bytes as one integer (little-endian, zero-padded). */
static inline uint64_t tok_head_of(const unsigned char *p, size_t n)
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
static inline uint64_t tok_hash_bytes(const unsigned char *p, size_t n,
                                      uint64_t head)
{
    if (n <= 8) {
        uint64_t h =
            (head ^ (n * 0x9E3779B97F4A7C15ull)) * 0xD6E8FEB86659FD93ull;
        return h ^ (h >> 32);
    }
    return XXH3_64bits(p, n);
}

static inline uint32_t tok_meta_of(size_t n, uint64_t h)
{
    return (uint32_t)n << 24 | ((uint32_t)h & 0xFFFFFF);
}

static inline uint32_t tok_index_of(uint64_t h, uint32_t mask)
{
    return (uint32_t)(h >> 32) & mask;
}

/* The filter word of hash h and its two bits: a blocked Bloom filter
 * that answers most lookups of bytes that are not a token (random text,
 * long runs: most pairs tried while merging) without a cache miss in the
 * big table. */
static inline uint32_t tok_filter_word(uint64_t h, uint32_t mask)
{
    return (uint32_t)(h >> 44) & mask;
}

static inline uint64_t tok_filter_bits(uint64_t h)
{
    return 1ull << (h & 63) | 1ull << (h >> 6 & 63);
}

static inline uint32_t tok_rank_find_hashed(const struct tok_rank_table *t,
                                            const unsigned char *p, size_t n)
{
    if (n > TOK_MAX_TOKEN_BYTES)
        return TOK_NO_RANK;
    uint64_t head = tok_head_of(p, n), h = tok_hash_bytes(p, n, head);
    uint64_t bits = tok_filter_bits(h);
    if ((t->filter[tok_filter_word(h, t->filter_mask)] & bits) != bits)
        return TOK_NO_RANK;
    uint32_t meta = tok_meta_of(n, h);
    for (uint32_t i = tok_index_of(h, t->mask);; i = (i + 1) & t->mask) {
        const struct tok_rank_slot *s = &t->slots[i];
        if (s->rank == TOK_NO_RANK)
            return TOK_NO_RANK;
        if (s->meta == meta && s->head == head &&
            (n <= 8 ||
             memcmp(t->blob + t->offset[s->rank] + 8, p + 8, n - 8) == 0))
            return s->rank;
    }
}

/* Rank of the n bytes at p (n >= 1), or TOK_NO_RANK. */
static inline uint32_t tok_rank_find(const struct tok_rank_table *t,
                                     const unsigned char *p, size_t n)
{
    if (n == 1)
        return t->byte_rank[p[0]];
    if (n == 2)
        return t->pair_rank[p[0] | (unsigned)p[1] << 8];
    return tok_rank_find_hashed(t, p, n);
}

/* Whether bytes a then b occur together in any token: when not, no token
 * (and so no merge) ever spans the point between them. */
static inline bool tok_inner_pair(const struct tok_rank_table *t,
                                  unsigned char a, unsigned char b)
{
    unsigned k = a | (unsigned)b << 8;
    return t->inner[k >> 6] >> (k & 63) & 1;
}

static inline const unsigned char *
tok_rank_bytes(const struct tok_rank_table *t, uint32_t rank, size_t *len)
{
    const unsigned char *p = t->blob + t->offset[rank];
    *len = p[-1];
    return p;
}

#endif
