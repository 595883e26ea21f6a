/* Deterministic embeddings by signed feature hashing: every word unigram
 * and character 3-gram of the lower-cased text adds +1 or -1 to one of
 * `dim` slots (both chosen by XXH64), and the vector is L2-normalised.
 * Texts sharing most features point the same way (near-duplicates have
 * cosine close to 1); unrelated texts are nearly orthogonal. */
#ifndef SLUICE_MOCK_EMBED_H
#define SLUICE_MOCK_EMBED_H

#include <stddef.h>
#include <stdint.h>

#define MOCK_EMBED_DEFAULT_DIM 256
#define MOCK_EMBED_MAX_DIM 3072

void mock_embed_text(const char *text, size_t len, uint64_t seed, float *v,
                     int dim);
/* Standard base64 of the little-endian float32 array, as OpenAI sends for
 * encoding_format "base64". Returns a malloc'd string or NULL. */
char *mock_embed_base64(const float *v, int dim);

#endif
