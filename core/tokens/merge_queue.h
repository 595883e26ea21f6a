/* The candidate queue of the long-piece merge: a min-priority queue of
 * 64-bit keys (rank << 32 | start). Merging pushes keys in a few
 * interleaved ascending sequences (one per rank being built, each left to
 * right), so a key goes to the first of a few sorted FIFO lanes whose last
 * key is not above it, O(1); only a key no lane takes goes to a 4-ary heap.
 * Pop takes the least of the lane heads and the heap top, so the order is
 * exact for any sequence of pushes; the lanes only make the common one
 * cheap. */
#ifndef SLUICE_TOKENS_MERGE_QUEUE_H
#define SLUICE_TOKENS_MERGE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOK_MQ_LANES 4

#define TOK_MQ_INLINE 16 /* keys each lane and the heap hold unallocated */

struct tok_mq_array {
    uint64_t *a;
    size_t head, tail, cap;
    bool borrowed; /* a is not ours to realloc or free */
};

struct tok_mq {
    struct tok_mq_array lane[TOK_MQ_LANES];
    struct tok_mq_array heap; /* head unused */
    int used;                 /* lanes from this one on are empty */
    bool failed;              /* a push ran out of memory */
    uint64_t room[TOK_MQ_LANES + 1][TOK_MQ_INLINE];
};

/* The first lane starts in buf (cap keys, the caller's, may be NULL) or
 * else with room for about hint keys; the others and the heap in q
 * itself, so a short piece allocates nothing. q must not move while in
 * use. False: no memory. */
bool tok_mq_init(struct tok_mq *q, size_t hint, uint64_t *buf, size_t cap);
void tok_mq_free(struct tok_mq *q);

bool tok_mq_grow(struct tok_mq_array *a);
/* Insertion sort, for a few keys. */
void tok_sort_few(uint64_t *a, size_t n);
void tok_mq_heap_push(struct tok_mq_array *h, uint64_t key);
uint64_t tok_mq_heap_pop(struct tok_mq_array *h);

/* Sets q->failed (and drops the key) when out of memory. */
static inline void tok_mq_push(struct tok_mq *q, uint64_t key)
{
    for (int i = 0; i < TOK_MQ_LANES; i++) {
        struct tok_mq_array *l = &q->lane[i];
        if (l->tail == l->head || l->a[l->tail - 1] <= key) {
            if (l->tail == l->cap && !tok_mq_grow(l)) {
                q->failed = true;
                return;
            }
            l->a[l->tail++] = key;
            if (i >= q->used)
                q->used = i + 1;
            return;
        }
    }
    if (q->heap.tail == q->heap.cap && !tok_mq_grow(&q->heap)) {
        q->failed = true;
        return;
    }
    tok_mq_heap_push(&q->heap, key);
}

/* The least key, removed; false when empty. */
static inline bool tok_mq_pop(struct tok_mq *q, uint64_t *key)
{
    struct tok_mq_array *best = NULL;
    uint64_t k = UINT64_MAX;
    for (int i = 0; i < q->used; i++) {
        struct tok_mq_array *l = &q->lane[i];
        if (l->head < l->tail && (!best || l->a[l->head] < k)) {
            best = l;
            k = l->a[l->head];
        }
    }
    if (q->heap.tail > 0 && (!best || q->heap.a[0] < k)) {
        *key = tok_mq_heap_pop(&q->heap);
        return true;
    }
    if (!best)
        return false;
    *key = k;
    if (++best->head == best->tail)
        best->head = best->tail = 0; /* reuse the room */
    return true;
}

/* For long pieces, rank buckets in front of that queue: a key whose rank
 * lies in a bucket not yet opened is appended there unsorted, O(1); when
 * the queue runs dry the next non-empty bucket is radix-sorted into it as
 * one sorted lane. The queue then only ever holds one bucket's ranks (and
 * lower: keys pushed below it go to it directly), so its heap stays small
 * and its first lane, read in order, can be prefetched. Exact for any
 * sequence of pushes, as the queue is: every key in a bucket not yet
 * opened is above every key in the queue. Ranks must be below
 * 2^(TOK_RQ_SHIFT) * TOK_RQ_BUCKETS. */
#define TOK_RQ_SHIFT 10
#define TOK_RQ_BUCKETS 256

struct tok_rq_bucket {
    uint64_t *a;
    size_t n, cap;
};

struct tok_rq {
    struct tok_mq mq;
    uint32_t next;     /* first bucket not yet opened; UINT32_MAX: none */
    unsigned pos_bits; /* starts (the low 32 bits of keys) fit in these */
    uint64_t *tmp;     /* sorting room */
    size_t tmp_cap;
    struct tok_rq_bucket b[TOK_RQ_BUCKETS]; /* only with buckets */
};

/* With buckets (for starts below 2^pos_bits) or, when !buckets, the
 * queue alone; buf and cap as for tok_mq_init. */
bool tok_rq_init(struct tok_rq *q, bool buckets, unsigned pos_bits, size_t hint,
                 uint64_t *buf, size_t cap);
void tok_rq_free(struct tok_rq *q);
bool tok_rq_append(struct tok_rq *q, uint32_t bucket, uint64_t key);
bool tok_rq_refill(struct tok_rq *q);

static inline void tok_rq_push(struct tok_rq *q, uint64_t key)
{
    uint32_t c = (uint32_t)(key >> (32 + TOK_RQ_SHIFT));
    if (c < q->next) {
        tok_mq_push(&q->mq, key);
        return;
    }
    struct tok_rq_bucket *b = &q->b[c];
    if (b->n < b->cap)
        b->a[b->n++] = key;
    else if (!tok_rq_append(q, c, key))
        q->mq.failed = true;
}

static inline bool tok_rq_pop(struct tok_rq *q, uint64_t *key)
{
    return tok_mq_pop(&q->mq, key) ||
           (tok_rq_refill(q) && tok_mq_pop(&q->mq, key));
}

#endif
