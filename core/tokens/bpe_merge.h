/* Byte-pair merge of one pre-tokenised piece, as tiktoken does it: always
 * merge the adjacent pair whose concatenation has the lowest rank, the
 * leftmost one on ties, until no adjacent pair is a token. */
#ifndef SLUICE_TOKENS_BPE_MERGE_H
#define SLUICE_TOKENS_BPE_MERGE_H

#include "rank_table.h"

/* Pieces up to this length use the quadratic scan (fastest when short);
 * longer ones the heap, O(n log n). */
#define TOK_BPE_HEAP_FROM 24

/* Both write the start offset of every resulting token to starts (room for
 * n entries) and return how many tokens there are; the heap variant
 * returns (size_t)-1 when out of memory. n >= 2. */
size_t tok_bpe_merge_scan(const struct tok_rank_table *t,
                          const unsigned char *p, size_t n, uint32_t *starts);
size_t tok_bpe_merge_heap(const struct tok_rank_table *t,
                          const unsigned char *p, size_t n, uint32_t *starts);
/* The heap merge, also writing each token's id to ids; either array may
 * be NULL. */
size_t tok_bpe_merge_heap_ids(const struct tok_rank_table *t,
                              const unsigned char *p, size_t n,
                              uint32_t *starts, uint32_t *ids);

/* Pieces up to this length (production) use the flat merge: tiktoken's
 * loop with the lowest pair found by a vector scan over a flat array. */
#define TOK_BPE_FLAT_MAX 512

/* Pieces this long or longer queue candidates through rank buckets
 * (merge_queue.h): random text of one long piece then costs no heap. */
#define TOK_BPE_BUCKETS_FROM 4096

/* Pair ranks by the ids of the two tokens (a pair's bytes are fixed by
 * them): text asks for the same pairs again and again, and this small
 * direct-mapped table answers without hashing bytes or touching the big
 * rank table. One per count, shared by its pieces. */
struct tok_pair_cache {
    uint64_t *e; /* NULL: no cache (ids too wide for its key) */
    unsigned shift;
};

/* 2^bits entries (8 bytes each). False when out of memory. */
bool tok_pair_cache_init(struct tok_pair_cache *c,
                         const struct tok_rank_table *t, unsigned bits);
void tok_pair_cache_free(struct tok_pair_cache *c);

/* The flat merge (2 <= n <= TOK_BPE_FLAT_MAX): the start and id of every
 * token (either array may be NULL); returns how many. Pair ranks straight
 * from the rank table: a pair cache's 128 KB competed with the table for
 * CPU cache, and 1 MB of random letters, bytes and CJK took 5-8% longer. */
size_t tok_bpe_merge_flat(const struct tok_rank_table *t,
                          const unsigned char *p, size_t n, uint32_t *starts,
                          uint32_t *ids);

/* tok_bpe_merge_heap_ids with the bucket threshold given (tests and the
 * fuzz target take the bucket path on short inputs) and the caller's pair
 * cache (NULL: one of its own for pieces over 256 bytes). */
size_t tok_bpe_merge_long(const struct tok_rank_table *t,
                          const unsigned char *p, size_t n, uint32_t *starts,
                          uint32_t *ids, size_t buckets_from,
                          struct tok_pair_cache *shared);

#endif
