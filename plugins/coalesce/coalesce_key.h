/* What makes two requests "identical" for coalescing, with no host calls.
 *
 * The key is XXH3-128 (seeded per instance) over, each length-prefixed:
 * the scope (tenant, tenant+user, or nothing), the routed target model,
 * the endpoint, then the body's top-level fields in sorted order, each as
 * name + compact JSON with sorted keys. Left out of the body:
 *   - "model" (the routed target model stands in for it, so aliases that
 *     route to the same model share),
 *   - "stream" when false (the same as absent; streams never coalesce),
 *   - the configured ignore list (default "user", "stream_options").
 * Top-level numbers are normalised (0.0 == 0, 1.0 == 1). Nested values
 * are taken as they are, with their keys sorted. */
#ifndef SLUICE_COALESCE_KEY_H
#define SLUICE_COALESCE_KEY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COALESCE_KEY_BYTES 16
#define COALESCE_MAX_IGNORED 32

struct coalesce_key_rules {
    uint64_t seed;
    size_t ignored_count;
    const char *ignored[COALESCE_MAX_IGNORED];
};

struct coalesce_part {
    const char *ptr;
    size_t len;
};

/* True when the body asks for temperature 0 (integer or real). */
bool coalesce_temperature_zero(const json_t *body);

/* Writes the 16-byte key. Returns 0, or -1 (out of memory, bad body). */
int coalesce_key_make(const struct coalesce_key_rules *rules,
                      struct coalesce_part scope, struct coalesce_part model,
                      struct coalesce_part endpoint, const json_t *body,
                      unsigned char out[COALESCE_KEY_BYTES]);

#endif
