#include "bpe_merge.h"

#include <stdlib.h>

/* Rank of p[a..b), or TOK_NO_RANK. */
static inline uint32_t span_rank(const struct tok_rank_table *t,
                                 const unsigned char *p, size_t a, size_t b)
{
    return tok_rank_find(t, p + a, b - a);
}

/* tiktoken's loop: pos[] holds the token starts followed by n, rank[i]
 * the rank of merging tokens i and i + 1; each merge rescans for the
 * lowest. Quadratic, so only for short pieces (and as the reference). */
size_t tok_bpe_merge_scan(const struct tok_rank_table *t,
                          const unsigned char *p, size_t n, uint32_t *starts)
{
    uint32_t small_pos[TOK_BPE_HEAP_FROM + 1],
        small_rank[TOK_BPE_HEAP_FROM + 1];
    uint32_t *pos = small_pos, *rank = small_rank;
    if (n > TOK_BPE_HEAP_FROM) {
        pos = malloc(sizeof(*pos) * (n + 1));
        rank = malloc(sizeof(*rank) * (n + 1));
        if (!pos || !rank) {
            free(pos);
            free(rank);
            return (size_t)-1;
        }
    }
    size_t m = n + 1;
    for (size_t i = 0; i < m; i++)
        pos[i] = (uint32_t)i;
    for (size_t i = 0; i < m; i++)
        rank[i] = i + 2 < m ? span_rank(t, p, i, i + 2) : TOK_NO_RANK;
    for (;;) {
        uint32_t best = TOK_NO_RANK;
        size_t at = 0;
        for (size_t i = 0; i + 2 < m; i++)
            if (rank[i] < best) {
                best = rank[i];
                at = i;
            }
        if (best == TOK_NO_RANK)
            break;
        for (size_t i = at + 1; i + 1 < m; i++) { /* drop start at + 1 */
            pos[i] = pos[i + 1];
            rank[i] = rank[i + 1];
        }
        m--;
        rank[at] =
            at + 2 < m ? span_rank(t, p, pos[at], pos[at + 2]) : TOK_NO_RANK;
        if (at > 0)
            rank[at - 1] = span_rank(t, p, pos[at - 1], pos[at + 1]);
    }
    for (size_t i = 0; i + 1 < m; i++)
        starts[i] = pos[i];
    if (pos != small_pos) {
        free(pos);
        free(rank);
    }
    return m - 1;
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
