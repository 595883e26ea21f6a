#include "bpe_merge.h"

#include <stdbool.h>
#include <stdlib.h>

/* Rank of p[a..b), or TOK_NO_RANK. */
static inline uint32_t span_rank(const struct tok_rank_table *t,
                                 const unsigned char *p, size_t a, size_t b)
{
    return tok_rank_find(t, p + a, b - a);
}

/* tiktoken's loop: repeatedly merge the adjacent pair whose merge has the
 * lowest rank, scanning left to right (so the leftmost wins a tie). Parts
 * are a linked list by start offset (nxt), so a merge moves nothing;
 * rank[i] is the rank of merging part i with the part after it.
 * Quadratic, so only for short pieces (and as the reference). */
size_t tok_bpe_merge_scan(const struct tok_rank_table *t,
                          const unsigned char *p, size_t n, uint32_t *starts)
{
    uint32_t small_nxt[TOK_BPE_HEAP_FROM + 1],
        small_rank[TOK_BPE_HEAP_FROM + 1];
    uint32_t *nxt = small_nxt, *rank = small_rank;
    if (n > TOK_BPE_HEAP_FROM) {
        nxt = malloc(sizeof(*nxt) * (n + 1));
        rank = malloc(sizeof(*rank) * (n + 1));
        if (!nxt || !rank) {
            free(nxt);
            free(rank);
            return (size_t)-1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        nxt[i] = (uint32_t)i + 1;
        rank[i] = i + 2 <= n ? span_rank(t, p, i, i + 2) : TOK_NO_RANK;
    }
    size_t m = n;
    for (;;) {
        uint32_t best = TOK_NO_RANK, at = 0, before = 0, prev = 0;
        for (uint32_t i = 0; i < n; prev = i, i = nxt[i])
            if (rank[i] < best) {
                best = rank[i];
                at = i;
                before = prev;
            }
        if (best == TOK_NO_RANK)
            break;
        uint32_t end = nxt[at] = nxt[nxt[at]];
        m--;
        rank[at] = end < n ? span_rank(t, p, at, nxt[end]) : TOK_NO_RANK;
        if (at > 0)
            rank[before] = span_rank(t, p, before, end);
    }
    size_t k = 0;
    for (uint32_t i = 0; i < n; i = nxt[i])
        starts[k++] = i;
    if (nxt != small_nxt) {
        free(nxt);
        free(rank);
    }
    return m;
}

/* A 4-ary min-heap of rank << 32 | start (lowest rank first, then
 * leftmost): half the levels of a binary heap, children in one line. */
static void heap_push(uint64_t *h, size_t *n, uint64_t key)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (h[parent] <= key)
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = key;
}

static void sift_down(uint64_t *h, size_t n, size_t i, uint64_t x)
{
    for (;;) {
        size_t c = 4 * i + 1;
        if (c >= n)
            break;
        size_t best = c;
        size_t last = c + 4 < n ? c + 4 : n;
        for (size_t k = c + 1; k < last; k++)
            if (h[k] < h[best])
                best = k;
        if (x <= h[best])
            break;
        h[i] = h[best];
        i = best;
    }
    h[i] = x;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0];
    size_t m = --*n;
    if (m > 0)
        sift_down(h, m, 0, h[m]);
    return top;
}

#define DEAD UINT32_MAX

/* Candidates live in two places: a queue kept sorted (the initial local
 * minima, sorted once, then every push not below its last entry: merging
 * left to right at one rank creates its new pairs in that order) and a
 * 4-ary heap for the rest. Runs and alternating patterns then cost O(1)
 * per candidate instead of a heap's O(log n). */
struct candidates {
    uint64_t *q;
    size_t qhead, qtail;
    uint64_t *h;
    size_t hn;
};

static void cand_push(struct candidates *c, uint64_t key)
{
    if (c->qhead == c->qtail || key >= c->q[c->qtail - 1])
        c->q[c->qtail++] = key;
    else
        heap_push(c->h, &c->hn, key);
}

static bool cand_pop(struct candidates *c, uint64_t *key)
{
    bool q = c->qhead < c->qtail;
    if (!q && c->hn == 0)
        return false;
    if (q && (c->hn == 0 || c->q[c->qhead] <= c->h[0]))
        *key = c->q[c->qhead++];
    else
        *key = heap_pop(c->h, &c->hn);
    return true;
}

/* Stable LSD radix sort of keys (rank << 32 | start, given in start order)
 * by rank: two passes of 9 bits cover ranks below 2^18. */
static void sort_by_rank(uint64_t *a, uint64_t *tmp, size_t n)
{
    for (int shift = 32; shift < 50; shift += 9) {
        size_t count[513] = {0};
        for (size_t i = 0; i < n; i++)
            count[((a[i] >> shift) & 511) + 1]++;
        for (int b = 0; b < 512; b++)
            count[b + 1] += count[b];
        for (size_t i = 0; i < n; i++)
            tmp[count[(a[i] >> shift) & 511]++] = a[i];
        uint64_t *x = a;
        a = tmp;
        tmp = x;
    }
}

struct heap_merge {
    const struct tok_rank_table *t;
    const unsigned char *p;
    uint32_t n;
    uint32_t *end;    /* start of the next token; DEAD once merged away */
    uint32_t *prev;   /* start of the previous token (not for 0) */
    uint32_t *pair;   /* rank of merging this token with the next one */
    uint32_t *queued; /* the pair rank this token has a candidate for */
    struct candidates c;
};

/* Whether token x's pair could be the next merge: lower than the pair on
 * its left (an equal one there goes first, being leftmost) and not higher
 * than the pair on its right. The lowest pair always is such a local
 * minimum, so only these need to be candidates. */
static bool local_min(const struct heap_merge *m, uint32_t x)
{
    uint32_t r = m->pair[x];
    return r != TOK_NO_RANK && (x == 0 || m->pair[m->prev[x]] > r) &&
           (m->end[x] >= m->n || m->pair[m->end[x]] >= r);
}

static void consider(struct heap_merge *m, uint32_t x)
{
    if (m->queued[x] != m->pair[x] && local_min(m, x)) {
        m->queued[x] = m->pair[x];
        cand_push(&m->c, (uint64_t)m->pair[x] << 32 | x);
    }
}

/* Tokens form a linked list by start offset. Candidates are (rank, start)
 * of pairs that were local minima when last changed; one whose rank is no
 * longer pair[start] is stale (a pair only grows, so a rank never comes
 * back) and is skipped. The first valid candidate taken is the lowest
 * pair, leftmost on ties: tiktoken's next merge. After a merge only the
 * pairs around it can change. */
size_t tok_bpe_merge_heap(const struct tok_rank_table *t,
                          const unsigned char *p, size_t n, uint32_t *starts)
{
    /* n - 1 initial candidates + at most 4 per merge, in either place. */
    struct heap_merge m = {t,
                           p,
                           (uint32_t)n,
                           malloc(sizeof(uint32_t) * n),
                           malloc(sizeof(uint32_t) * n),
                           malloc(sizeof(uint32_t) * n),
                           malloc(sizeof(uint32_t) * n),
                           {malloc(sizeof(uint64_t) * 5 * n), 0, 0,
                            malloc(sizeof(uint64_t) * 5 * n), 0}};
    if (!m.end || !m.prev || !m.pair || !m.queued || !m.c.q || !m.c.h) {
        free(m.end);
        free(m.prev);
        free(m.pair);
        free(m.queued);
        free(m.c.q);
        free(m.c.h);
        return (size_t)-1;
    }
    size_t count = n;
    for (uint32_t i = 0; i < n; i++) {
        m.end[i] = i + 1;
        m.prev[i] = i - 1; /* unused for i = 0 */
        m.pair[i] = i + 1 < n ? span_rank(t, p, i, i + 2) : TOK_NO_RANK;
    }
    for (uint32_t i = 0; i < n; i++) {
        m.queued[i] = TOK_NO_RANK;
        if (local_min(&m, i)) {
            m.queued[i] = m.pair[i];
            m.c.q[m.c.qtail++] = (uint64_t)m.pair[i] << 32 | i;
        }
    }
    sort_by_rank(m.c.q, m.c.h, m.c.qtail);
    uint64_t e;
    while (cand_pop(&m.c, &e)) {
        uint32_t s = (uint32_t)e;
        if (m.end[s] == DEAD || m.pair[s] != (uint32_t)(e >> 32))
            continue;
        uint32_t mid = m.end[s], after = m.end[mid];
        m.end[s] = after;
        m.end[mid] = DEAD;
        count--;
        m.pair[s] = TOK_NO_RANK;
        if (after < n) {
            m.prev[after] = s;
            m.pair[s] = span_rank(t, p, s, m.end[after]);
        }
        if (s > 0) {
            uint32_t q = m.prev[s];
            m.pair[q] = span_rank(t, p, q, after);
            if (q > 0)
                consider(&m, m.prev[q]);
            consider(&m, q);
        }
        consider(&m, s);
        if (after < n)
            consider(&m, after);
    }
    size_t k = 0;
    for (uint32_t s = 0; s < n; s = m.end[s])
        starts[k++] = s;
    free(m.end);
    free(m.prev);
    free(m.pair);
    free(m.queued);
    free(m.c.q);
    free(m.c.h);
    return count;
}
