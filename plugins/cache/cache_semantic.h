/* cache_semantic: the semantic layer. On an exact miss the prompt is
 * embedded by the configured upstream's /v1/embeddings (host
 * call_upstream) while the request is suspended; the index (cache_index.c)
 * proposes the most similar stored prompts of the same scope at or above
 * the threshold and the guard (cache_guard.c) must accept one. An
 * embedding that fails or is slower than `timeout` makes a miss, never an
 * error. */
#ifndef SLUICE_CACHE_SEMANTIC_H
#define SLUICE_CACHE_SEMANTIC_H

#include <jansson.h>

#include "cache.h"

struct cache_sem *cache_sem_new(const struct sluice_host *h,
                                const struct cache_semantic_config *cfg,
                                struct sluice_error *err);
void cache_sem_free(struct cache_sem *s);

/* on_request after an exact miss: starts the embedding (SLUICE_SUSPEND)
 * or settles for a miss. */
enum sluice_action cache_sem_start(struct cache *c, struct sluice_req *r,
                                   struct cache_req *st, const json_t *body,
                                   struct cache_part scope,
                                   struct cache_part endpoint);
/* on_request again after the wake or the timeout. */
enum sluice_action cache_sem_resume(struct cache *c, struct sluice_req *r,
                                    struct cache_req *st);
/* The miss's answer was stored under st->key: index its vector. */
void cache_sem_insert(struct cache *c, struct sluice_req *r,
                      struct cache_req *st);
/* The exact entry `key` left the store (any thread, store lock held). */
void cache_sem_forget(struct cache_sem *s, const unsigned char *key);
size_t cache_sem_count(struct cache_sem *s);

#endif
