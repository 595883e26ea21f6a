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
    q->used = 1; /* lane 0 may be filled directly */
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

bool tok_rq_init(struct tok_rq *q, bool buckets, unsigned pos_bits, size_t hint,
                 uint64_t *buf, size_t cap)
{
    q->next = buckets ? 0 : UINT32_MAX;
    q->pos_bits = pos_bits;
    q->tmp = NULL;
    q->tmp_cap = 0;
    if (buckets)
        memset(q->b, 0, sizeof(q->b));
    return tok_mq_init(&q->mq, buckets ? 0 : hint, buf, cap);
}

void tok_rq_free(struct tok_rq *q)
{
    if (q->next != UINT32_MAX)
        for (int i = 0; i < TOK_RQ_BUCKETS; i++)
            free(q->b[i].a);
    free(q->tmp);
    tok_mq_free(&q->mq);
}

void tok_sort_few(uint64_t *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        uint64_t x = a[i];
        size_t j = i;
        for (; j > 0 && a[j - 1] > x; j--)
            a[j] = a[j - 1];
        a[j] = x;
    }
}

bool tok_rq_append(struct tok_rq *q, uint32_t bucket, uint64_t key)
{
    struct tok_rq_bucket *b = &q->b[bucket];
    if (b->n == b->cap) {
        size_t cap = b->cap < 64 ? 64 : b->cap * 2;
        uint64_t *a = realloc(b->a, sizeof(*a) * cap);
        if (!a)
            return false;
        b->a = a;
        b->cap = cap;
    }
    b->a[b->n++] = key;
    return true;
}

/* Radix sort of a bucket's keys by (rank, start): LSD, 8 or 11 bits a
 * pass, over rank-in-bucket << pos_bits | start. */
static void radix_sort_bucket(struct tok_rq *q, uint64_t *a, size_t n)
{
    unsigned pb = q->pos_bits, bits = TOK_RQ_SHIFT + pb;
    uint64_t pos_mask = ((uint64_t)1 << pb) - 1,
             rank_mask = (1u << TOK_RQ_SHIFT) - 1;
    uint64_t high = a[0] >> (32 + TOK_RQ_SHIFT) << (32 + TOK_RQ_SHIFT);
    for (size_t i = 0; i < n; i++)
        a[i] = (a[i] >> 32 & rank_mask) << pb | (a[i] & pos_mask);
    uint64_t *x = a, *y = q->tmp;
    unsigned digit = n > 16384 ? 11 : 8, radix = 1u << digit;
    size_t count[2049];
    for (unsigned shift = 0; shift < bits; shift += digit) {
        memset(count, 0, sizeof(count[0]) * (radix + 1));
        for (size_t i = 0; i < n; i++)
            count[(x[i] >> shift & (radix - 1)) + 1]++;
        for (unsigned d = 0; d < radix; d++)
            count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++)
            y[count[x[i] >> shift & (radix - 1)]++] = x[i];
        uint64_t *t = x;
        x = y;
        y = t;
    }
    for (size_t i = 0; i < n; i++)
        a[i] = high | (x[i] >> pb) << 32 | (x[i] & pos_mask);
}

/* Sorts a bucket's keys by (rank, start). When they arrived in order of
 * start (the first bucket: the first scan's minima), one stable counting
 * pass by rank does; otherwise (runs of starts, one from each rank merged
 * before) the radix sort. */
static bool sort_bucket(struct tok_rq *q, uint64_t *a, size_t n)
{
    if (n <= 64) {
        tok_sort_few(a, n);
        return true;
    }
    bool sorted = true, by_start = true;
    for (size_t i = 1; i < n; i++) {
        sorted &= a[i - 1] < a[i];
        by_start &= (uint32_t)a[i - 1] < (uint32_t)a[i];
    }
    if (sorted) /* runs of a pattern fill a bucket in order */
        return true;
    if (q->tmp_cap < n) {
        free(q->tmp);
        q->tmp = malloc(sizeof(*q->tmp) * n);
        q->tmp_cap = q->tmp ? n : 0;
        if (!q->tmp)
            return false;
    }
    if (!by_start) {
        radix_sort_bucket(q, a, n);
        return true;
    }
    uint32_t rank_mask = (1u << TOK_RQ_SHIFT) - 1;
    size_t count[(1u << TOK_RQ_SHIFT) + 1] = {0};
    for (size_t i = 0; i < n; i++)
        count[(a[i] >> 32 & rank_mask) + 1]++;
    for (uint32_t r = 0; r < rank_mask + 1; r++)
        count[r + 1] += count[r];
    for (size_t i = 0; i < n; i++)
        q->tmp[count[a[i] >> 32 & rank_mask]++] = a[i];
    memcpy(a, q->tmp, sizeof(*a) * n);
    return true;
}

/* The queue is empty: the next non-empty bucket becomes its first lane. */
bool tok_rq_refill(struct tok_rq *q)
{
    if (q->next == UINT32_MAX)
        return false;
    uint32_t c = q->next;
    while (c < TOK_RQ_BUCKETS && q->b[c].n == 0)
        c++;
    if (c == TOK_RQ_BUCKETS) {
        q->next = TOK_RQ_BUCKETS;
        return false;
    }
    q->next = c + 1;
    struct tok_rq_bucket *b = &q->b[c];
    if (!sort_bucket(q, b->a, b->n)) {
        q->mq.failed = true;
        return false;
    }
    /* Swap the bucket's array with the (empty) first lane's. */
    struct tok_mq_array *l = &q->mq.lane[0];
    uint64_t *old = l->borrowed ? NULL : l->a;
    size_t old_cap = l->borrowed ? 0 : l->cap;
    *l = (struct tok_mq_array){b->a, 0, b->n, b->cap, false};
    *b = (struct tok_rq_bucket){old, 0, old_cap};
    return true;
}
