/* cache_key: what a cached answer is filed under.
 *
 * The exact key hashes every top-level field of the request body except a
 * configured ignore list (by default user, stream, stream_options, metadata
 * and store: fields that do not change the answer), plus the scope (tenant
 * or user) and the endpoint. Hashing everything but a short list, rather
 * than a list of known fields, keeps the cache safe when a provider adds a
 * parameter: an unknown field splits the key instead of being ignored.
 *
 * Normalisation (what does not split the key): object key order, 1.0 vs 1,
 * and a message content given as one text part
 * ([{"type":"text","text":"x"}]) vs the plain string "x".
 *
 * The semantic scope key is the same hash with the text that gets embedded
 * (the last user message, or a completions prompt) left out: two requests
 * are compared by meaning only when everything else about them is equal
 * (model, system prompt, earlier turns, tools, sampling parameters). */
#ifndef SLUICE_CACHE_KEY_H
#define SLUICE_CACHE_KEY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_KEY_BYTES 16
#define CACHE_MAX_IGNORED 32

struct cache_key_rules {
    uint64_t seed;
    const char *ignored[CACHE_MAX_IGNORED];
    size_t ignored_count;
};

struct cache_part {
    const char *ptr;
    size_t len;
};

/* Exact key. -1 when body is not an object or memory ran out. */
int cache_key_exact(const struct cache_key_rules *rules,
                    struct cache_part scope, struct cache_part endpoint,
                    const json_t *body, unsigned char out[CACHE_KEY_BYTES]);

/* Semantic scope key and the text to embed (borrowed from body). -1 when
 * the request has no single text to compare: a chat whose last message is
 * not a user message with plain text, a completions prompt that is not one
 * string, or an empty text. */
int cache_key_semantic(const struct cache_key_rules *rules,
                       struct cache_part scope, struct cache_part endpoint,
                       const json_t *body, unsigned char out[CACHE_KEY_BYTES],
                       struct cache_part *text);

/* The request's temperature, or `missing` when absent (OpenAI's default is
 * 1); NaN when it is not a number. */
double cache_key_temperature(const json_t *body, double missing);

#endif
