#include "bpe_merge.h"

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

struct heap_entry {
    uint64_t key; /* rank << 32 | start: lowest rank, then leftmost */
    uint32_t end;
};

static void heap_push(struct heap_entry *h, size_t *n, struct heap_entry e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent].key <= e.key)
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = e;
}

static struct heap_entry heap_pop(struct heap_entry *h, size_t *n)
{
    struct heap_entry top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && h[c + 1].key < h[c].key)
            c++;
        if (last.key <= h[c].key)
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

#define DEAD UINT32_MAX

static void push_pair(const struct tok_rank_table *t, const unsigned char *p,
                      struct heap_entry *h, size_t *hn, uint32_t a, uint32_t b)
{
    uint32_t r = span_rank(t, p, a, b);
    if (r != TOK_NO_RANK)
        heap_push(h, hn, (struct heap_entry){(uint64_t)r << 32 | a, b});
}

/* Tokens form a linked list indexed by start offset (end[s] = start of the
 * next token, DEAD once merged away); the heap holds candidate pairs and
 * entries made stale by a neighbouring merge are skipped when popped. */
size_t tok_bpe_merge_heap(const struct tok_rank_table *t,
                          const unsigned char *p, size_t n, uint32_t *starts)
{
    uint32_t *end = malloc(sizeof(*end) * n);
    uint32_t *prev = malloc(sizeof(*prev) * n);
    /* Each merge pushes at most two pairs: n - 1 initial + 2 (n - 1). */
    struct heap_entry *h = malloc(sizeof(*h) * 3 * n);
    if (!end || !prev || !h) {
        free(end);
        free(prev);
        free(h);
        return (size_t)-1;
    }
    size_t hn = 0, count = n;
    for (uint32_t i = 0; i < n; i++) {
        end[i] = i + 1;
        prev[i] = i - 1; /* unused for i = 0 */
        if (i + 1 < n)
            push_pair(t, p, h, &hn, i, i + 2);
    }
    while (hn > 0) {
        struct heap_entry e = heap_pop(h, &hn);
        uint32_t s = (uint32_t)e.key, mid = end[s];
        if (mid == DEAD || mid >= n || end[mid] != e.end)
            continue; /* a neighbour merged since this pair was pushed */
        end[s] = e.end;
        end[mid] = DEAD;
        count--;
        if (e.end < n) {
            prev[e.end] = s;
            push_pair(t, p, h, &hn, s, end[e.end]);
        }
        if (s > 0)
            push_pair(t, p, h, &hn, prev[s], e.end);
    }
    size_t k = 0;
    for (uint32_t s = 0; s < n; s = end[s])
        starts[k++] = s;
    free(end);
    free(prev);
    free(h);
    return count;
}
