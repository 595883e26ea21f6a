#include "merge_queue.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

bool tok_mq_init(struct tok_mq *q, size_t hint, uint64_t *buf, size_t cap)
{
    memset(q, 0, offsetof(struct tok_mq, room));
    for (int i = 0; i <= TOK_MQ_LANES; i++) {
        struct tok_mq_array *a = i < TOK_MQ_LANES ? &q->lane[i] : &q->heap;
        *a = (struct tok_mq_array){q->room[i], 0, 0, TOK_MQ_INLINE, true};
    }
    if (buf && cap >= hint) {
        q->lane[0] = (struct tok_mq_array){buf, 0, 0, cap, true};
    } else if (hint > TOK_MQ_INLINE) {
        uint64_t *a = malloc(sizeof(*a) * hint);
        if (!a)
            return false;
        q->lane[0] = (struct tok_mq_array){a, 0, 0, hint, false};
    }
    return true;
}

void tok_mq_free(struct tok_mq *q)
{
    for (int i = 0; i < TOK_MQ_LANES; i++)
        if (!q->lane[i].borrowed)
            free(q->lane[i].a);
    if (!q->heap.borrowed)
        free(q->heap.a);
    memset(q, 0, offsetof(struct tok_mq, room));
}

bool tok_mq_grow(struct tok_mq_array *a)
{
    size_t cap = a->cap < 64 ? 64 : a->cap * 2;
    uint64_t *p = a->borrowed ? malloc(sizeof(*p) * cap)
                              : realloc(a->a, sizeof(*p) * cap);
    if (!p)
        return false;
    if (a->borrowed)
        memcpy(p, a->a, sizeof(*p) * a->tail);
    a->a = p;
    a->cap = cap;
    a->borrowed = false;
    return true;
}

/* 4-ary: half the levels of a binary heap, the children in one line. */
void tok_mq_heap_push(struct tok_mq_array *h, uint64_t key)
{
    uint64_t *a = h->a;
    size_t i = h->tail++;
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (a[parent] <= key)
            break;
        a[i] = a[parent];
        i = parent;
    }
    a[i] = key;
}

uint64_t tok_mq_heap_pop(struct tok_mq_array *h)
{
    uint64_t *a = h->a, top = a[0];
    size_t n = --h->tail;
    if (n == 0)
        return top;
    uint64_t x = a[n];
    size_t i = 0;
    for (;;) {
        size_t c = 4 * i + 1;
        if (c >= n)
            break;
        size_t best = c, last = c + 4 < n ? c + 4 : n;
        for (size_t k = c + 1; k < last; k++)
            if (a[k] < a[best])
                best = k;
        if (x <= a[best])
            break;
        a[i] = a[best];
        i = best;
    }
    a[i] = x;
    return top;
}
