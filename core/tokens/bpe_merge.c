#include "bpe_merge.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "merge_queue.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

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

/* Pieces up to this many bytes are merged in stack memory. */
#define SMALL_PIECE 256

/* One token of the long-piece merge, 16 bytes: four to a cache line, and
 * everything a merge reads about a token in one of them. */
struct node {
    uint32_t next; /* start of the next token (n at the end) */
    uint32_t prev; /* start of the previous token (unused for 0) */
    uint32_t tok;  /* this token's rank | QUEUED */
    uint32_t pair; /* rank of this token + the next; TOK_NO_RANK if none
                    * or once merged away */
};

/* In tok: the queue holds (pair, start) for the current pair. */
#define QUEUED 0x80000000u
#define TOK_OF(x) ((x) & ~QUEUED)

/* An entry is left << 38 | right << 20 | rank (ranks fit in 18 bits,
 * TOK_NO_RANK kept as 0xFFFFF); all ones is empty. */
#define PC_RANK_MASK 0xFFFFFu

bool tok_pair_cache_init(struct tok_pair_cache *c,
                         const struct tok_rank_table *t, unsigned bits)
{
    c->e = NULL;
    c->shift = 64 - bits;
    if (t->n >= PC_RANK_MASK || t->n >= 1u << 18)
        return true; /* ids too wide for the key: no cache */
    c->e = malloc(sizeof(*c->e) << bits);
    if (!c->e)
        return false;
    memset(c->e, 0xFF, sizeof(*c->e) << bits);
    return true;
}

void tok_pair_cache_free(struct tok_pair_cache *c)
{
    free(c->e);
    c->e = NULL;
}

static inline uint32_t cached_pair_rank(const struct tok_rank_table *t,
                                        struct tok_pair_cache *c, uint32_t left,
                                        uint32_t right, const unsigned char *p,
                                        size_t len)
{
    if (!c->e)
        return tok_rank_find(t, p, len);
    uint64_t key = (uint64_t)left << 18 | right;
    uint64_t *slot = &c->e[(key * 0x9E3779B97F4A7C15ull) >> c->shift];
    if (*slot >> 20 == key)
        return (uint32_t)(*slot & PC_RANK_MASK) == PC_RANK_MASK
                   ? TOK_NO_RANK
                   : (uint32_t)(*slot & PC_RANK_MASK);
    uint32_t r = tok_rank_find(t, p, len);
    *slot = key << 20 | (r == TOK_NO_RANK ? PC_RANK_MASK : r);
    return r;
}

/* The flat merge keeps rank ^ FLAT_BIAS as a signed int: signed order is
 * then unsigned rank order, and TOK_NO_RANK becomes INT32_MAX. */
#define FLAT_BIAS 0x80000000u

static inline int32_t flat_key(uint32_t rank)
{
    return (int32_t)(rank ^ FLAT_BIAS);
}

#if defined(__SSE2__)
static inline __m128i min4(__m128i a, __m128i b)
{
    __m128i lt = _mm_cmplt_epi32(a, b); /* SSE2 has no pminsd */
    return _mm_or_si128(_mm_and_si128(lt, a), _mm_andnot_si128(lt, b));
}

/* The least of key[0..w) (w a multiple of 8, key 32-byte aligned) and the
 * first index holding it. */
static inline int32_t flat_min_sse2(const int32_t *key, size_t w, size_t *at)
{
    __m128i m0 = _mm_load_si128((const __m128i *)key),
            m1 = _mm_load_si128((const __m128i *)(key + 4));
    for (size_t i = 8; i < w; i += 8) {
        m0 = min4(m0, _mm_load_si128((const __m128i *)(key + i)));
        m1 = min4(m1, _mm_load_si128((const __m128i *)(key + i + 4)));
    }
    m0 = min4(m0, m1);
    m0 = min4(m0, _mm_shuffle_epi32(m0, _MM_SHUFFLE(1, 0, 3, 2)));
    m0 = min4(m0, _mm_shuffle_epi32(m0, _MM_SHUFFLE(2, 3, 0, 1)));
    int32_t best = _mm_cvtsi128_si32(m0);
    for (size_t i = 0;; i += 4) {
        __m128i eq =
            _mm_cmpeq_epi32(_mm_load_si128((const __m128i *)(key + i)), m0);
        int mask = _mm_movemask_ps(_mm_castsi128_ps(eq));
        if (mask) {
            *at = i + (size_t)__builtin_ctz((unsigned)mask);
            return best;
        }
    }
}
#else
static inline int32_t flat_min_sse2(const int32_t *key, size_t w, size_t *at)
{
    int32_t best = key[0];
    *at = 0;
    for (size_t i = 1; i < w; i++)
        if (key[i] < best) {
            best = key[i];
            *at = i;
        }
    return best;
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
/* The same with AVX2 (8 keys an instruction, and a real signed min), for
 * CPUs that have it: the scan is most of the flat merge's work. */
__attribute__((target("avx2"), noinline)) static int32_t
flat_min_avx2(const int32_t *key, size_t w, size_t *at)
{
    __m256i m = _mm256_load_si256((const __m256i *)key);
    for (size_t i = 8; i < w; i += 8)
        m = _mm256_min_epi32(m, _mm256_load_si256((const __m256i *)(key + i)));
    __m128i h = _mm_min_epi32(_mm256_castsi256_si128(m),
                              _mm256_extracti128_si256(m, 1));
    h = _mm_min_epi32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(1, 0, 3, 2)));
    h = _mm_min_epi32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(2, 3, 0, 1)));
    __m256i b = _mm256_broadcastd_epi32(h);
    for (size_t i = 0;; i += 8) {
        __m256i eq = _mm256_cmpeq_epi32(
            _mm256_load_si256((const __m256i *)(key + i)), b);
        int mask = _mm256_movemask_ps(_mm256_castsi256_ps(eq));
        if (mask) {
            *at = i + (size_t)__builtin_ctz((unsigned)mask);
            return _mm_cvtsi128_si32(h);
        }
    }
}

/* A load and a test: libgcc fills the CPU model before main. */
static bool have_avx2(void)
{
    return __builtin_cpu_supports("avx2");
}
#define FLAT_MIN(key, w, at, avx2)                                             \
    ((avx2) ? flat_min_avx2(key, w, at) : flat_min_sse2(key, w, at))
#else
static bool have_avx2(void)
{
    return false;
}
#define FLAT_MIN(key, w, at, avx2) flat_min_sse2(key, w, at)
#endif

/* tiktoken's loop over a flat array: part i's pair rank sits at key[i]
 * whether or not part i is still alive (merged-away parts hold
 * INT32_MAX), so finding the lowest pair is a vector scan of the whole
 * array with no pointer chasing, and the leftmost of equal ranks is the
 * lowest index. Each part's id is tracked (a merge's rank is its token). */
/* Pieces longer than this also keep the least key of each block of 8, so
 * a merge scans n / 8 block minima and one block rather than n keys. */
#ifndef FLAT_BLOCKS_FROM
#define FLAT_BLOCKS_FROM 128
#endif

static inline int32_t block_min(const int32_t *k)
{
    int32_t m = k[0];
    for (int j = 1; j < 8; j++)
        m = k[j] < m ? k[j] : m;
    return m;
}

/* The first index in block b of key that holds x (one does). */
static inline size_t find_in_block(const int32_t *key, size_t b, int32_t x)
{
    unsigned mask = 0;
    for (unsigned j = 0; j < 8; j++)
        mask |= (unsigned)(key[8 * b + j] == x) << j;
    return 8 * b + (size_t)__builtin_ctz(mask);
}

size_t tok_bpe_merge_flat(const struct tok_rank_table *t,
                          const unsigned char *p, size_t n, uint32_t *starts,
                          uint32_t *ids)
{
    _Alignas(32) int32_t key[TOK_BPE_FLAT_MAX + 8];
    _Alignas(32) int32_t bmin[TOK_BPE_FLAT_MAX / 8 + 8];
    bool avx2 = have_avx2();
    uint16_t nxt[TOK_BPE_FLAT_MAX], prv[TOK_BPE_FLAT_MAX];
    uint32_t tok[TOK_BPE_FLAT_MAX];
    size_t w = (n + 7) & ~(size_t)7, nb = w / 8, wb = (nb + 7) & ~(size_t)7;
    for (size_t i = 0; i + 1 < n; i++) {
        key[i] = flat_key(t->pair_rank[p[i] | (unsigned)p[i + 1] << 8]);
        nxt[i] = (uint16_t)(i + 1);
        prv[i] = (uint16_t)(i - 1);
        tok[i] = t->byte_rank[p[i]];
    }
    nxt[n - 1] = (uint16_t)n;
    prv[n - 1] = (uint16_t)(n - 2);
    tok[n - 1] = t->byte_rank[p[n - 1]];
    for (size_t i = n - 1; i < w; i++)
        key[i] = INT32_MAX;
    bool blocks = n > FLAT_BLOCKS_FROM;
    if (blocks) {
        for (size_t b = 0; b < wb; b++)
            bmin[b] = b < nb ? block_min(key + 8 * b) : INT32_MAX;
    }
    size_t m = n;
    for (;;) {
        size_t at;
        int32_t best;
        if (blocks) { /* the leftmost least block holds the leftmost key */
            size_t b;
            best = FLAT_MIN(bmin, wb, &b, avx2);
            at = find_in_block(key, b, best);
        } else {
            best = FLAT_MIN(key, w, &at, avx2);
        }
        if (best == INT32_MAX)
            break;
        size_t mid = nxt[at], end = nxt[mid], before = prv[at];
        tok[at] = (uint32_t)best ^ FLAT_BIAS;
        key[mid] = INT32_MAX;
        nxt[at] = (uint16_t)end;
        m--;
        if (end < n) {
            prv[end] = (uint16_t)at;
            key[at] = flat_key(tok_rank_find(t, p + at, nxt[end] - at));
        } else {
            key[at] = INT32_MAX;
        }
        if (at > 0)
            key[before] = flat_key(tok_rank_find(t, p + before, end - before));
        if (blocks) { /* often all in one block */
            bmin[at / 8] = block_min(key + at / 8 * 8);
            if (mid / 8 != at / 8)
                bmin[mid / 8] = block_min(key + mid / 8 * 8);
            if (at > 0 && before / 8 != at / 8)
                bmin[before / 8] = block_min(key + before / 8 * 8);
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i = nxt[i], k++) {
        if (starts)
            starts[k] = (uint32_t)i;
        if (ids)
            ids[k] = tok[i];
    }
    return m;
}

struct long_merge {
    const struct tok_rank_table *t;
    const unsigned char *p;
    uint32_t n;
    struct node *v; /* by start offset */
    struct tok_pair_cache *pc;
    struct tok_rq q;
};

/* Rank of token x + the token after it (after < n). */
static inline uint32_t pair_of(struct long_merge *m, uint32_t x, uint32_t after)
{
    const struct node *a = &m->v[after];
    return cached_pair_rank(m->t, m->pc, TOK_OF(m->v[x].tok), TOK_OF(a->tok),
                            m->p + x, a->next - x);
}

/* Whether token x's pair could be the next merge: lower than the pair on
 * its left (an equal one there goes first, being leftmost) and not higher
 * than the pair on its right. The lowest pair always is such a local
 * minimum, so only these need to be candidates; a merge changes the
 * status of the four pairs around it at most. Node n is a sentinel with
 * no pair, the first token's prev and the last one's next, so this reads
 * no bounds and takes no branch (the comparisons go either way at random
 * on random text). */
static inline bool local_min(const struct long_merge *m, uint32_t x)
{
    const struct node *v = &m->v[x];
    uint32_t r = v->pair;
    return (r != TOK_NO_RANK) & (m->v[v->prev].pair > r) &
           (m->v[v->next].pair >= r);
}

static inline void consider(struct long_merge *m, uint32_t x)
{
    struct node *v = &m->v[x];
    if (!(v->tok & QUEUED) && local_min(m, x)) {
        v->tok |= QUEUED;
        tok_rq_push(&m->q, (uint64_t)v->pair << 32 | x);
    }
}

/* Candidates are taken in rank order, so at scattered starts: fetch the
 * nodes of the ones a few places ahead in each lane (and the heap's top)
 * while this merge runs, or every merge waits for memory. A merge reads
 * the tokens on both sides too (up to two before, two after: about four
 * nodes each way for text of short tokens), so the lines before and after
 * as well: that took 1 MB of random letters from about 60 to 52 ms.
 * Always inlined: GCC finds a function that only prefetches free of side
 * effects and drops the call. */
#define PREFETCH_DISTANCE 8

__attribute__((always_inline)) static inline void
prefetch_around(const struct node *x)
{
    uintptr_t a = (uintptr_t)x; /* a prefetch never faults */
    __builtin_prefetch((const void *)(a - 64));
    __builtin_prefetch(x);
    __builtin_prefetch((const void *)(a + 64));
}

__attribute__((always_inline)) static inline void
prefetch_ahead(const struct long_merge *m)
{
    for (int i = 0; i < m->q.mq.used; i++) {
        const struct tok_mq_array *l = &m->q.mq.lane[i];
        if (l->head + PREFETCH_DISTANCE < l->tail)
            prefetch_around(&m->v[(uint32_t)l->a[l->head + PREFETCH_DISTANCE]]);
    }
    if (m->q.mq.heap.tail > 0)
        __builtin_prefetch(&m->v[(uint32_t)m->q.mq.heap.a[0]]);
}

/* Sorts keys (rank << 32 | start, distinct): insertion for a few, else
 * a stable LSD radix sort by rank (given in start order), two passes of 9
 * bits covering ranks below 2^18. */
#define SORT_BY_INSERTION 64

static void sort_by_rank(uint64_t *a, uint64_t *tmp, size_t n)
{
    if (n <= SORT_BY_INSERTION) {
        tok_sort_few(a, n);
        return;
    }
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

/* Fills the nodes (and the sentinel) and queues the initial local minima,
 * in (rank, start) order. False when out of memory. */
static bool long_merge_start(struct long_merge *m)
{
    const struct tok_rank_table *t = m->t;
    const unsigned char *p = m->p;
    uint32_t n = m->n;
    for (uint32_t i = 0; i < n; i++) {
        m->v[i] =
            (struct node){i + 1, i - 1, t->byte_rank[p[i]],
                          i + 1 < n ? tok_rank_find(t, p + i, 2) : TOK_NO_RANK};
    }
    m->v[0].prev = n;
    m->v[n] = (struct node){n, n, 0, TOK_NO_RANK};
    /* The minima's keys, in start order, without a branch on each. */
    size_t k = 0;
    uint64_t *keys = m->q.mq.lane[0].a; /* room for n / 2 + 1 */
    if (m->q.next != UINT32_MAX) {
        keys = malloc(sizeof(*keys) * (n / 2 + 1));
        if (!keys)
            return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        bool min = local_min(m, i);
        keys[k] = (uint64_t)m->v[i].pair << 32 | i;
        m->v[i].tok |= min ? QUEUED : 0;
        k += min; /* no two minima adjoin, the last has no pair: <= n / 2 */
    }
    if (m->q.next != UINT32_MAX) { /* rank buckets: in start order */
        for (size_t i = 0; i < k; i++)
            tok_rq_push(&m->q, keys[i]);
        free(keys);
        return !m->q.mq.failed;
    }
    uint64_t *tmp = k > SORT_BY_INSERTION ? malloc(sizeof(*tmp) * k) : NULL;
    if (k > SORT_BY_INSERTION && !tmp)
        return false;
    sort_by_rank(keys, tmp, k);
    free(tmp);
    m->q.mq.lane[0].tail = k;
    return true;
}

/* Tokens form a linked list by start offset. Candidates are (rank, start)
 * of pairs that were local minima when last changed; one whose rank is no
 * longer the token's pair is stale (a pair only grows, so a rank never
 * comes back; a merged-away token's pair is TOK_NO_RANK) and is skipped.
 * The first valid candidate taken is the lowest pair, leftmost on ties:
 * tiktoken's next merge. */
size_t tok_bpe_merge_long(const struct tok_rank_table *t,
                          const unsigned char *p, size_t n, uint32_t *starts,
                          uint32_t *ids, size_t buckets_from,
                          struct tok_pair_cache *shared)
{
    struct long_merge m;
    memset(&m, 0, offsetof(struct long_merge, q));
    m.t = t;
    m.p = p;
    m.n = (uint32_t)n;
    /* A short piece works on the stack and, without the caller's pair
     * cache, asks too few pairs twice for one of its own to pay. */
    struct node small_v[SMALL_PIECE + 1];
    uint64_t small_keys[SMALL_PIECE / 2 + 1];
    bool small = n <= SMALL_PIECE;
    m.v = small ? small_v : malloc(sizeof(*m.v) * (n + 1));
    struct tok_pair_cache own = {NULL, 0};
    m.pc = shared ? shared : &own;
    bool cache_ok = true;
    if (!shared && !small) {
        unsigned bits = 8;
        while (bits < 14 && (1u << bits) < n / 4)
            bits++;
        cache_ok = tok_pair_cache_init(&own, t, bits);
    }
    /* Rank buckets for long pieces (and ranks that fit them); at most
     * every other pair is a local minimum. */
    unsigned pos_bits = 1;
    while (pos_bits < 32 && (size_t)1 << pos_bits < n)
        pos_bits++;
    bool buckets = n >= buckets_from && t->n <= (uint32_t)TOK_RQ_BUCKETS
                                                    << TOK_RQ_SHIFT;
    bool ok = m.v && cache_ok &&
              tok_rq_init(&m.q, buckets, pos_bits, n / 2 + 1,
                          small ? small_keys : NULL, SMALL_PIECE / 2 + 1);
    if (ok)
        ok = long_merge_start(&m);
    size_t count = n;
    uint64_t e;
    while (ok && tok_rq_pop(&m.q, &e)) {
        uint32_t s = (uint32_t)e, r = (uint32_t)(e >> 32);
        struct node *v = m.v;
        if (!small)
            prefetch_ahead(&m);
        if (v[s].pair != r)
            continue;
        uint32_t mid = v[s].next, after = v[mid].next;
        v[mid].pair = TOK_NO_RANK;
        v[s].next = after;
        v[s].tok = r; /* the merged token; no longer queued */
        count--;
        if (after < n) {
            v[after].prev = s;
            v[s].pair = pair_of(&m, s, after);
        } else {
            v[s].pair = TOK_NO_RANK;
        }
        if (s > 0) {
            uint32_t q = v[s].prev;
            v[q].tok &= ~QUEUED;
            v[q].pair = pair_of(&m, q, s);
            if (q > 0)
                consider(&m, v[q].prev);
            consider(&m, q);
        }
        consider(&m, s);
        if (after < n)
            consider(&m, after);
    }
    ok = ok && !m.q.mq.failed;
    if (ok) {
        size_t k = 0;
        for (uint32_t s = 0; s < n; s = m.v[s].next, k++) {
            if (starts)
                starts[k] = s;
            if (ids)
                ids[k] = TOK_OF(m.v[s].tok);
        }
    }
    if (!small)
        free(m.v);
    tok_pair_cache_free(&own);
    tok_rq_free(&m.q);
    return ok ? count : (size_t)-1;
}

size_t tok_bpe_merge_heap_ids(const struct tok_rank_table *t,
                              const unsigned char *p, size_t n,
                              uint32_t *starts, uint32_t *ids)
{
    return tok_bpe_merge_long(t, p, n, starts, ids, TOK_BPE_BUCKETS_FROM, NULL);
}

size_t tok_bpe_merge_heap(const struct tok_rank_table *t,
                          const unsigned char *p, size_t n, uint32_t *starts)
{
    return tok_bpe_merge_heap_ids(t, p, n, starts, NULL);
}
