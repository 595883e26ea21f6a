#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct arena_chunk {
    struct arena_chunk *next;
    alignas(max_align_t) char data[];
};

#define ALIGN_UP(n)                                                            \
    (((n) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))

void arena_init(struct arena *a)
{
    a->chunks = NULL;
    /* inline_buf follows pointer-sized members; align its start. */
    uintptr_t p = (uintptr_t)a->inline_buf;
    uintptr_t aligned = ALIGN_UP(p);
    a->cur = (char *)aligned;
    a->left = sizeof a->inline_buf - (size_t)(aligned - p);
}

void *arena_alloc(struct arena *a, size_t size)
{
    size_t need = ALIGN_UP(size ? size : 1);
    if (need < size)
        return NULL; /* overflow */
    if (need > a->left) {
        size_t chunk = need > 16384 ? need : 16384;
        struct arena_chunk *c = malloc(sizeof *c + chunk);
        if (!c)
            return NULL;
        c->next = a->chunks;
        a->chunks = c;
        a->cur = c->data;
        a->left = chunk;
    }
    void *p = a->cur;
    a->cur += need;
    a->left -= need;
    memset(p, 0, size);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t len)
{
    char *p = arena_alloc(a, len + 1);
    if (p) {
        if (len)
            memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

void arena_free(struct arena *a)
{
    while (a->chunks) {
        struct arena_chunk *c = a->chunks;
        a->chunks = c->next;
        free(c);
    }
}
