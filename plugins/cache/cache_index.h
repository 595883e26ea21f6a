/* cache_index: the semantic layer's vectors, grouped by scope (tenant,
 * model, system prompt, sampling parameters: cache_key_semantic), each
 * linked to the exact entry whose answer it stands for.
 *
 * One interface, two ways to search a scope: an exact scan (float dot
 * products over L2-normalised vectors, SIMD: cache_vec.c) while the scope
 * holds fewer than `ann_threshold` live vectors, then an HNSW graph
 * (cache_hnsw.c) over the same rows, whose answers carry the same exact
 * float similarities. With a threshold the
 * graph is kept from the scope's first vector (each insert links its row),
 * so crossing it is free. Not thread-safe: the caller locks. */
#ifndef SLUICE_CACHE_INDEX_H
#define SLUICE_CACHE_INDEX_H

#include <stdbool.h>
#include <stddef.h>

#include "cache_key.h"
#include "cache_vec.h"

struct cache_index;

struct cache_index_hit {
    unsigned char key[CACHE_KEY_BYTES];
    float similarity;
    const char *text; /* the stored prompt; valid until the next change */
    size_t text_len;
};

/* ann_threshold: vectors in one scope from which it is searched by graph
 * (0: always scanned). */
struct cache_index *cache_index_new(size_t dimensions, size_t max_vectors,
                                    size_t ann_threshold);
/* Candidates a graph search keeps (HNSW ef): higher finds the true nearest
 * neighbour more often, at a proportional cost. Applies to existing
 * scopes too. */
void cache_index_set_ef_search(struct cache_index *ix, unsigned ef);
void cache_index_free(struct cache_index *ix);

/* Adds (or replaces) the vector for exact key `key`. `vec` has the index's
 * dimensions and is normalised here. Returns 0, 1 when full, -1 on ENOMEM
 * or a zero vector. */
int cache_index_add(struct cache_index *ix, const unsigned char *scope,
                    const unsigned char *key, const float *vec,
                    const char *text, size_t text_len);
bool cache_index_remove(struct cache_index *ix, const unsigned char *key);

/* Up to `max` vectors of `scope` at or above min_similarity to `query`
 * (normalised by the caller), most similar first. */
size_t cache_index_search(const struct cache_index *ix,
                          const unsigned char *scope, const float *query,
                          float min_similarity, struct cache_index_hit *out,
                          size_t max);
size_t cache_index_count(const struct cache_index *ix);

#endif
