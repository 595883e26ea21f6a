/* Request-scoped memory: bump allocation in chunks, freed all at once when
 * the request ends (nginx pools). Most requests fit in the inline chunk, so
 * they cost no extra malloc. */
#ifndef SLUICE_ARENA_H
#define SLUICE_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *chunks; /* extra chunks, newest first */
    char *cur;
    size_t left;
    char inline_buf[4096];
};

void arena_init(struct arena *a);
/* Zeroed, max_align_t-aligned; NULL on exhaustion. */
void *arena_alloc(struct arena *a, size_t size);
char *arena_strndup(struct arena *a, const char *s, size_t len);
void arena_free(struct arena *a);

#endif
