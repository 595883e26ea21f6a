/* cache_hnsw: an approximate nearest-neighbour graph (HNSW, Malkov and
 * Yashunin 2016) over rows of a float matrix it does not own, by inner
 * product of unit vectors. Used by cache_index for scopes above a size
 * threshold, where a full scan gets slow. The graph keeps an int8 copy of
 * each row and walks by it (a quarter of the memory traffic); a search
 * re-ranks what it found by the float rows, so its similarities are
 * exact.
 *
 * Nodes are row numbers. Deleting marks a node dead: it still routes
 * searches but is never returned, and its row is handed out again for the
 * next insert, which relinks the node for its new vector (edges other
 * nodes kept to it become long-range links, which search tolerates). Not
 * thread-safe: the caller locks. */
#ifndef SLUICE_CACHE_HNSW_H
#define SLUICE_CACHE_HNSW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_hnsw;

struct cache_hnsw_params {
    unsigned m;               /* links per node above layer 0 (16) */
    unsigned ef_construction; /* candidates while linking (100) */
    unsigned ef_search;       /* candidates while searching (0: by size,
                                 cache_hnsw_auto_ef) */
    uint64_t seed;
};

/* `rows` points at the caller's matrix pointer (it may be reallocated). */
struct cache_hnsw *cache_hnsw_new(size_t dim, const float *const *rows,
                                  const struct cache_hnsw_params *p);
void cache_hnsw_free(struct cache_hnsw *g);

/* Links row `id` (its vector already written). id is either the next new
 * row (== nodes so far) or a dead one being reused. 0, or -1 (ENOMEM). */
int cache_hnsw_insert(struct cache_hnsw *g, uint32_t id);
void cache_hnsw_mark_dead(struct cache_hnsw *g, uint32_t id);
/* A dead row to reuse, or UINT32_MAX. */
uint32_t cache_hnsw_free_row(const struct cache_hnsw *g);
size_t cache_hnsw_nodes(const struct cache_hnsw *g); /* live and dead */

/* Up to k live rows most similar to q, most similar first; returns how
 * many. Similarities in sims. */
size_t cache_hnsw_search(struct cache_hnsw *g, const float *q, size_t k,
                         uint32_t *ids, float *sims);
void cache_hnsw_set_ef(struct cache_hnsw *g, unsigned ef_search);
/* The ef a graph of `vectors` searches with when none is configured: 64,
 * doubled at 256k and at 512k vectors. Measured on clustered vectors
 * (bench/results/cache-index.md), held-out recall@1 is 1.000 at 100k with
 * 64 but 0.966 at 1M, where 256 gives 0.996 (p99 0.87 ms at 256 dims). */
unsigned cache_hnsw_auto_ef(size_t vectors);
/* Bytes used by the graph (links and bookkeeping), for the bench. */
size_t cache_hnsw_bytes(const struct cache_hnsw *g);

#endif
