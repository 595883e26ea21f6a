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

#endif
