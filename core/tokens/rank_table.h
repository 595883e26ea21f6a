/* A BPE rank table: token bytes -> rank, over the embedded rank blob (one
 * length byte then the token's bytes, for ranks 0..n-1 in order). */
#ifndef SLUICE_TOKENS_RANK_TABLE_H
#define SLUICE_TOKENS_RANK_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOK_NO_RANK UINT32_MAX
#define TOK_MAX_TOKEN_BYTES 128 /* longest token in either encoding */

struct tok_rank_slot {
    uint32_t tag; /* high half of the hash, to skip most memcmps */
    uint32_t rank;
};

struct tok_rank_table {
    const unsigned char *blob;
    uint32_t *offset; /* rank -> offset of its bytes in blob */
    uint32_t n;
    uint32_t mask;
    struct tok_rank_slot *slots;
    uint32_t byte_rank[256];
};

/* Indexes blob (size bytes). False on a malformed blob or no memory. */
bool tok_rank_table_init(struct tok_rank_table *t, const unsigned char *blob,
                         size_t size);
void tok_rank_table_free(struct tok_rank_table *t);

/* Rank of the n bytes at p, or TOK_NO_RANK. */
uint32_t tok_rank_find(const struct tok_rank_table *t, const unsigned char *p,
                       size_t n);

static inline const unsigned char *
tok_rank_bytes(const struct tok_rank_table *t, uint32_t rank, size_t *len)
{
    const unsigned char *p = t->blob + t->offset[rank];
    *len = p[-1];
    return p;
}

#endif
