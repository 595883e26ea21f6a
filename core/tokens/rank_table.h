/* A BPE rank table: token bytes -> rank, over the embedded rank blob (one
 * length byte then the token's bytes, for ranks 0..n-1 in order). */
#ifndef SLUICE_TOKENS_RANK_TABLE_H
#define SLUICE_TOKENS_RANK_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
};

/* Indexes blob (size bytes). False on a malformed blob or no memory. */
bool tok_rank_table_init(struct tok_rank_table *t, const unsigned char *blob,
                         size_t size);
void tok_rank_table_free(struct tok_rank_table *t);

uint32_t tok_rank_find_hashed(const struct tok_rank_table *t,
                              const unsigned char *p, size_t n);

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

static inline const unsigned char *
tok_rank_bytes(const struct tok_rank_table *t, uint32_t rank, size_t *len)
{
    const unsigned char *p = t->blob + t->offset[rank];
    *len = p[-1];
    return p;
}

#endif
