#include "cache_hnsw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cache_vec.h"

#define MAX_LEVEL 15

struct cand {
    float sim;
    uint32_t id;
};

/* A binary max-heap by sim (store -sim to get a min-heap). */
struct heap {
    struct cand *v;
    size_t n, cap;
};

struct cache_hnsw {
    size_t dim;
    const float *const *rows;
    cache_dot_fn dot;
    cache_dot8_fn dot8;
    unsigned m, m0, efc, efs;
    double ml;
    uint64_t rng;

    uint32_t n, cap;
    int8_t *q8;    /* cap rows of dim int8: what the walk compares */
    float *qscale; /* per row */
    int8_t *qbuf;  /* the query, quantised */
    uint8_t *level;
    uint32_t *links0; /* cap rows of [count, m0 ids] */
    uint32_t **upper; /* per node: level rows of [count, m ids] */
    bool *dead;
    uint32_t *free_rows;
    size_t nfree;
    uint32_t entry;
    int top; /* -1: empty */

    uint32_t *mark, epoch;
    struct heap cand, res;
    struct cand *scratch;
    size_t scratch_cap;
};

static const float *row(const struct cache_hnsw *g, uint32_t id)
{
    return *g->rows + (size_t)id * g->dim;
}

static const int8_t *row8(const struct cache_hnsw *g, uint32_t id)
{
    return g->q8 + (size_t)id * g->dim;
}

/* A quantised query (qq, scale qs) against row id, as the walk sees it. */
struct query {
    const int8_t *v;
    float scale;
};

static float sim_q(const struct cache_hnsw *g, struct query q, uint32_t id)
{
    return q.scale * g->qscale[id] * (float)g->dot8(q.v, row8(g, id), g->dim);
}

static struct query query_of_row(const struct cache_hnsw *g, uint32_t id)
{
    return (struct query){row8(g, id), g->qscale[id]};
}

static float sim_rows(const struct cache_hnsw *g, uint32_t a, uint32_t b)
{
    return sim_q(g, query_of_row(g, a), b);
}

/* A row's first cache lines, fetched while earlier rows are compared: a
 * search visits rows scattered over the matrix, each a likely miss. */
static void prefetch_row(const struct cache_hnsw *g, uint32_t id)
{
    const char *p = (const char *)row8(g, id);
    __builtin_prefetch(p);
    __builtin_prefetch(p + 64);
    __builtin_prefetch(p + 128);
    __builtin_prefetch(p + 192);
}

static uint32_t *links(const struct cache_hnsw *g, uint32_t id, int l)
{
    if (l == 0)
        return g->links0 + (size_t)id * (g->m0 + 1);
    return g->upper[id] + (size_t)(l - 1) * (g->m + 1);
}

static bool heap_push(struct heap *h, float sim, uint32_t id)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct cand *v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return false;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && h->v[(i - 1) / 2].sim < sim) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = (struct cand){sim, id};
    return true;
}

static struct cand heap_pop(struct heap *h)
{
    struct cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1].sim > h->v[c].sim)
            c++;
        if (h->v[c].sim <= last.sim)
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

struct cache_hnsw *cache_hnsw_new(size_t dim, const float *const *rows,
                                  const struct cache_hnsw_params *p)
{
    struct cache_hnsw *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->dim = dim;
    g->rows = rows;
    g->dot = cache_vec_dot_kernel();
    g->dot8 = cache_vec_dot8_kernel();
    if (!(g->qbuf = malloc(dim))) {
        free(g);
        return NULL;
    }
    g->m = p->m ? p->m : 16;
    if (g->m > 32) /* search and relink keep a layer-0 list on the stack */
        g->m = 32;
    g->m0 = 2 * g->m;
    g->efc = p->ef_construction ? p->ef_construction : 100;
    g->efs = p->ef_search; /* 0: by size */
    g->ml = 1.0 / log((double)g->m);
    g->rng = p->seed ? p->seed : 0x9E3779B97F4A7C15ull;
    g->top = -1;
    return g;
}

void cache_hnsw_free(struct cache_hnsw *g)
{
    if (!g)
        return;
    for (uint32_t i = 0; i < g->n; i++)
        free(g->upper[i]);
    free(g->upper);
    free(g->q8);
    free(g->qscale);
    free(g->qbuf);
    free(g->level);
    free(g->links0);
    free(g->dead);
    free(g->free_rows);
    free(g->mark);
    free(g->cand.v);
    free(g->res.v);
    free(g->scratch);
    free(g);
}

static int grow(struct cache_hnsw *g)
{
    if (g->n < g->cap)
        return 0;
    uint32_t cap = g->cap ? g->cap * 2 : 1024;
    void *p;
#define GROW(field, count)                                                     \
    if (!(p = realloc(g->field, (size_t)(count) * sizeof *g->field)))          \
        return -1;                                                             \
    g->field = p;
    GROW(q8, (size_t)cap * g->dim);
    GROW(qscale, cap);
    GROW(level, cap);
    GROW(links0, (size_t)cap * (g->m0 + 1));
    GROW(upper, cap);
    GROW(dead, cap);
    GROW(free_rows, cap);
    GROW(mark, cap);
#undef GROW
    memset(g->mark + g->cap, 0, (cap - g->cap) * sizeof *g->mark);
    g->cap = cap;
    return 0;
}

static uint32_t next_epoch(struct cache_hnsw *g)
{
    if (++g->epoch == 0) { /* wrapped: forget every mark */
        memset(g->mark, 0, g->cap * sizeof *g->mark);
        g->epoch = 1;
    }
    return g->epoch;
}

/* Greedy walk to the closest node at layer l. */
static uint32_t greedy(const struct cache_hnsw *g, struct query q, uint32_t ep,
                       int l)
{
    float best = sim_q(g, q, ep);
    bool moved = true;
    while (moved) {
        moved = false;
        const uint32_t *ln = links(g, ep, l);
        for (uint32_t i = 1; i <= ln[0]; i++)
            prefetch_row(g, ln[i]);
        for (uint32_t i = 1; i <= ln[0]; i++) {
            float s = sim_q(g, q, ln[i]);
            if (s > best) {
                best = s;
                ep = ln[i];
                moved = true;
            }
        }
    }
    return ep;
}

/* The ef nodes closest to q at layer l found from ep, in g->res as a
 * min-heap (sims negated). */
static int search_layer(struct cache_hnsw *g, struct query q, uint32_t ep,
                        size_t ef, int l)
{
    uint32_t epoch = next_epoch(g);
    g->cand.n = g->res.n = 0;
    float s = sim_q(g, q, ep);
    g->mark[ep] = epoch;
    if (!heap_push(&g->cand, s, ep) || !heap_push(&g->res, -s, ep))
        return -1;
    while (g->cand.n) {
        struct cand c = heap_pop(&g->cand);
        float worst = -g->res.v[0].sim;
        if (c.sim < worst && g->res.n >= ef)
            break;
        const uint32_t *ln = links(g, c.id, l);
        uint32_t fresh[64 + 1], nf = 0; /* m0 <= 64 */
        for (uint32_t i = 1; i <= ln[0]; i++) {
            uint32_t e = ln[i];
            if (g->mark[e] == epoch)
                continue;
            g->mark[e] = epoch;
            fresh[nf++] = e;
            prefetch_row(g, e);
        }
        for (uint32_t i = 0; i < nf; i++) {
            uint32_t e = fresh[i];
            float se = sim_q(g, q, e);
            if (g->res.n < ef || se > worst) {
                if (!heap_push(&g->cand, se, e) || !heap_push(&g->res, -se, e))
                    return -1;
                if (g->res.n > ef)
                    heap_pop(&g->res);
                worst = -g->res.v[0].sim;
            }
        }
    }
    return 0;
}

static int by_sim_desc(const void *a, const void *b)
{
    float x = ((const struct cand *)a)->sim, y = ((const struct cand *)b)->sim;
    return (x < y) - (x > y);
}

/* The paper's neighbour heuristic: keep a candidate only if it is closer
 * to the base than to every neighbour kept so far (spreads the links),
 * then fill the free slots with the closest ones it passed over (the
 * paper's keepPrunedConnections: no node loses its way in, which matters
 * once deletes and reinserts have churned the graph). */
static size_t select_neighbours(const struct cache_hnsw *g, struct cand *c,
                                size_t n, size_t max, uint32_t *out)
{
    size_t k = 0;
    qsort(c, n, sizeof *c, by_sim_desc);
    for (size_t i = 0; i < n && k < max; i++) {
        bool keep = true;
        for (size_t j = 0; j < k && keep; j++)
            keep = sim_rows(g, c[i].id, out[j]) < c[i].sim;
        if (keep) {
            out[k++] = c[i].id;
            c[i].id = UINT32_MAX; /* taken */
        }
    }
    for (size_t i = 0; i < n && k < max; i++)
        if (c[i].id != UINT32_MAX)
            out[k++] = c[i].id;
    return k;
}

static struct cand *scratch(struct cache_hnsw *g, size_t n)
{
    if (n > g->scratch_cap) {
        struct cand *s = realloc(g->scratch, n * sizeof *s);
        if (!s)
            return NULL;
        g->scratch = s;
        g->scratch_cap = n;
    }
    return g->scratch;
}

/* Adds `id` to nb's list at layer l, pruning it when full. */
static int link_back(struct cache_hnsw *g, uint32_t nb, uint32_t id, int l)
{
    uint32_t *ln = links(g, nb, l);
    uint32_t cap = l == 0 ? g->m0 : g->m;
    for (uint32_t i = 1; i <= ln[0]; i++)
        if (ln[i] == id)
            return 0;
    if (ln[0] < cap) {
        ln[++ln[0]] = id;
        return 0;
    }
    struct cand *c = scratch(g, cap + 1);
    if (!c)
        return -1;
    for (uint32_t i = 0; i < ln[0]; i++)
        c[i] = (struct cand){sim_rows(g, nb, ln[i + 1]), ln[i + 1]};
    c[cap] = (struct cand){sim_rows(g, nb, id), id};
    ln[0] = (uint32_t)select_neighbours(g, c, cap + 1, cap, ln + 1);
    return 0;
}

/* Before row `id` is relinked for a new vector: each node it linked to
 * gets a fresh list chosen from its own links and id's other neighbours,
 * without id, so the region id leaves stays connected. */
static int unlink_old(struct cache_hnsw *g, uint32_t id, int l)
{
    const uint32_t *mine = links(g, id, l);
    uint32_t cap = l == 0 ? g->m0 : g->m;
    uint32_t old[64 + 1];
    memcpy(old, mine, (mine[0] + 1) * sizeof *old);
    struct cand *c = scratch(g, cap + old[0]);
    if (!c)
        return -1;
    for (uint32_t i = 1; i <= old[0]; i++) {
        uint32_t o = old[i];
        uint32_t *ln = links(g, o, l);
        size_t n = 0;
        for (uint32_t j = 1; j <= ln[0]; j++)
            if (ln[j] != id)
                c[n++] = (struct cand){sim_rows(g, o, ln[j]), ln[j]};
        for (uint32_t j = 1; j <= old[0]; j++) {
            bool dup = old[j] == o || old[j] == id;
            for (uint32_t t = 1; t <= ln[0] && !dup; t++)
                dup = ln[t] == old[j];
            if (!dup)
                c[n++] = (struct cand){sim_rows(g, o, old[j]), old[j]};
        }
        ln[0] = (uint32_t)select_neighbours(g, c, n, cap, ln + 1);
    }
    return 0;
}

static int random_level(struct cache_hnsw *g)
{
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    double u = ((double)(g->rng >> 11) + 1) / 9007199254740993.0;
    int l = (int)(-log(u) * g->ml);
    return l > MAX_LEVEL ? MAX_LEVEL : l;
}

int cache_hnsw_insert(struct cache_hnsw *g, uint32_t id)
{
    int L;
    if (id == g->n) {
        if (grow(g))
            return -1;
        L = random_level(g);
        g->upper[id] = NULL;
        if (L > 0 &&
            !(g->upper[id] = malloc((size_t)L * (g->m + 1) * sizeof(uint32_t))))
            return -1;
        g->level[id] = (uint8_t)L;
        g->mark[id] = 0;
        g->n++;
    } else { /* a dead row reused: same level, fresh links */
        L = g->level[id];
        if (g->nfree && g->free_rows[g->nfree - 1] == id)
            g->nfree--;
        for (int l = 0; l <= L; l++)
            if (unlink_old(g, id, l))
                return -1;
    }
    g->qscale[id] =
        cache_vec_quantise(row(g, id), g->dim, g->q8 + (size_t)id * g->dim);
    g->dead[id] = false;
    for (int l = 0; l <= L; l++)
        links(g, id, l)[0] = 0;
    if (g->top < 0) {
        g->entry = id;
        g->top = L;
        return 0;
    }
    struct query q = query_of_row(g, id);
    uint32_t ep = g->entry;
    for (int l = g->top; l > L; l--)
        ep = greedy(g, q, ep, l);
    for (int l = L < g->top ? L : g->top; l >= 0; l--) {
        if (search_layer(g, q, ep, g->efc, l))
            return -1;
        size_t n = 0;
        struct cand *c = scratch(g, g->res.n);
        if (!c)
            return -1;
        uint32_t best = ep;
        float best_sim = -2;
        for (size_t i = 0; i < g->res.n; i++) {
            struct cand x = {-g->res.v[i].sim, g->res.v[i].id};
            if (x.id == id)
                continue;
            if (x.sim > best_sim) {
                best_sim = x.sim;
                best = x.id;
            }
            c[n++] = x;
        }
        uint32_t *ln = links(g, id, l);
        ln[0] = (uint32_t)select_neighbours(g, c, n, g->m, ln + 1);
        for (uint32_t i = 1; i <= ln[0]; i++)
            if (link_back(g, ln[i], id, l))
                return -1;
        ep = best;
    }
    if (L > g->top) {
        g->entry = id;
        g->top = L;
    }
    return 0;
}

void cache_hnsw_mark_dead(struct cache_hnsw *g, uint32_t id)
{
    if (id >= g->n || g->dead[id])
        return;
    g->dead[id] = true;
    /* The entry point keeps routing searches: never relinked. */
    if (id != g->entry)
        g->free_rows[g->nfree++] = id;
}

uint32_t cache_hnsw_free_row(const struct cache_hnsw *g)
{
    return g->nfree ? g->free_rows[g->nfree - 1] : UINT32_MAX;
}

size_t cache_hnsw_nodes(const struct cache_hnsw *g)
{
    return g->n;
}

size_t cache_hnsw_search(struct cache_hnsw *g, const float *q, size_t k,
                         uint32_t *ids, float *sims)
{
    if (g->top < 0 || k == 0)
        return 0;
    struct query qq = {g->qbuf, cache_vec_quantise(q, g->dim, g->qbuf)};
    uint32_t ep = g->entry;
    for (int l = g->top; l > 0; l--)
        ep = greedy(g, qq, ep, l);
    size_t efs = g->efs ? g->efs : cache_hnsw_auto_ef(g->n);
    size_t ef = efs > k ? efs : k;
    if (search_layer(g, qq, ep, ef, 0))
        return 0;
    struct cand *c = scratch(g, g->res.n);
    if (!c)
        return 0;
    /* The walk ranked by int8 similarity; the answer is re-ranked by the
     * float vectors, so what it returns (and the threshold compares) is
     * the exact cosine. */
    size_t n = 0;
    for (size_t i = 0; i < g->res.n; i++) {
        uint32_t id = g->res.v[i].id;
        if (!g->dead[id])
            c[n++] = (struct cand){g->dot(q, row(g, id), g->dim), id};
    }
    qsort(c, n, sizeof *c, by_sim_desc);
    if (n > k)
        n = k;
    for (size_t i = 0; i < n; i++) {
        ids[i] = c[i].id;
        sims[i] = c[i].sim;
    }
    return n;
}

void cache_hnsw_set_ef(struct cache_hnsw *g, unsigned ef_search)
{
    g->efs = ef_search;
}

unsigned cache_hnsw_auto_ef(size_t vectors)
{
    return vectors < (256u << 10) ? 64 : vectors < (512u << 10) ? 128 : 256;
}

size_t cache_hnsw_bytes(const struct cache_hnsw *g)
{
    size_t b = sizeof *g + g->dim +
               (size_t)g->cap * (g->dim + 4 + 1 + (g->m0 + 1) * 4 +
                                 sizeof(uint32_t *) + 1 + 4 + 4);
    for (uint32_t i = 0; i < g->n; i++)
        b += (size_t)g->level[i] * (g->m + 1) * 4;
    return b;
}
