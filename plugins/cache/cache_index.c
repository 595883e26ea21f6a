#include "cache_index.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/keymap.h"
#include "cache_hnsw.h"

struct item {
    struct keymap_node node; /* by exact key */
    unsigned char key[CACHE_KEY_BYTES];
    struct scope *scope;
    size_t pos; /* row in scope->vecs */
    size_t text_len;
    char text[];
};

struct scope {
    struct keymap_node node; /* by scope key */
    unsigned char key[CACHE_KEY_BYTES];
    float *vecs;         /* rows of dim floats */
    struct item **items; /* per row; NULL: a dead row (graph mode) */
    size_t rows, cap;    /* rows in use (live and dead) */
    size_t live;
    struct cache_hnsw *graph; /* NULL: scanned */
};

struct cache_index {
    size_t dim, max, count, ann_threshold;
    cache_dot_fn dot;
    unsigned ef_search;
    struct keymap scopes, items;
    uint64_t seed;
};

struct cache_index *cache_index_new(size_t dimensions, size_t max_vectors,
                                    size_t ann_threshold)
{
    struct cache_index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return NULL;
    ix->dim = dimensions;
    ix->max = max_vectors;
    ix->ann_threshold = ann_threshold;
    ix->dot = cache_vec_dot_kernel();
    ix->seed = 0x2545F4914F6CDD1Dull;
    size_t expect = max_vectors < (1u << 20) ? max_vectors : 1u << 20;
    if (keymap_init(&ix->items, expect)) {
        free(ix);
        return NULL;
    }
    if (keymap_init(&ix->scopes, expect < 65536 ? expect : 65536)) {
        keymap_fini(&ix->items);
        free(ix);
        return NULL;
    }
    return ix;
}

static void scope_free(struct scope *s)
{
    for (size_t i = 0; i < s->rows; i++)
        free(s->items[i]);
    cache_hnsw_free(s->graph);
    free(s->vecs);
    free(s->items);
    free(s);
}

static int every(struct keymap_node *n, void *arg)
{
    (void)n;
    (void)arg;
    return 1;
}

static void drop_scope(struct keymap_node *n, void *arg)
{
    (void)arg;
    scope_free(keymap_entry(n, struct scope, node));
}

void cache_index_free(struct cache_index *ix)
{
    if (!ix)
        return;
    keymap_remove_if(&ix->scopes, every, drop_scope, NULL);
    keymap_fini(&ix->scopes);
    keymap_fini(&ix->items);
    free(ix);
}

static struct scope *find_scope(const struct cache_index *ix,
                                const unsigned char *key)
{
    struct keymap_node *n = keymap_find(&ix->scopes, key, CACHE_KEY_BYTES,
                                        keymap_hash(key, CACHE_KEY_BYTES));
    return n ? keymap_entry(n, struct scope, node) : NULL;
}

static struct item *find_item(const struct cache_index *ix,
                              const unsigned char *key)
{
    struct keymap_node *n = keymap_find(&ix->items, key, CACHE_KEY_BYTES,
                                        keymap_hash(key, CACHE_KEY_BYTES));
    return n ? keymap_entry(n, struct item, node) : NULL;
}

static void forget_scope(struct cache_index *ix, struct scope *s)
{
    keymap_remove(&ix->scopes, &s->node);
    scope_free(s);
}

bool cache_index_remove(struct cache_index *ix, const unsigned char *key)
{
    struct item *it = find_item(ix, key);
    if (!it)
        return false;
    struct scope *s = it->scope;
    if (s->graph) { /* rows do not move under a graph: a dead row */
        s->items[it->pos] = NULL;
        cache_hnsw_mark_dead(s->graph, (uint32_t)it->pos);
    } else {
        size_t last = s->rows - 1;
        if (it->pos != last) { /* the last row moves into the hole */
            memcpy(s->vecs + it->pos * ix->dim, s->vecs + last * ix->dim,
                   ix->dim * sizeof(float));
            s->items[it->pos] = s->items[last];
            s->items[it->pos]->pos = it->pos;
        }
        s->items[last] = NULL;
        s->rows--;
    }
    s->live--;
    keymap_remove(&ix->items, &it->node);
    free(it);
    ix->count--;
    if (s->live == 0)
        forget_scope(ix, s);
    return true;
}

static struct scope *get_scope(struct cache_index *ix, const unsigned char *key)
{
    struct scope *s = find_scope(ix, key);
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    memcpy(s->key, key, CACHE_KEY_BYTES);
    s->node.key = s->key;
    s->node.key_len = CACHE_KEY_BYTES;
    s->node.hash = keymap_hash(key, CACHE_KEY_BYTES);
    keymap_insert(&ix->scopes, &s->node);
    return s;
}

static int grow(struct cache_index *ix, struct scope *s)
{
    if (s->rows < s->cap)
        return 0;
    size_t cap = s->cap ? s->cap * 2 : 8;
    float *v = realloc(s->vecs, cap * ix->dim * sizeof(float));
    if (!v)
        return -1;
    s->vecs = v;
    struct item **items = realloc(s->items, cap * sizeof *items);
    if (!items)
        return -1;
    memset(items + s->cap, 0, (cap - s->cap) * sizeof *items);
    s->items = items;
    s->cap = cap;
    return 0;
}

/* With a threshold, a scope keeps its graph from its first vector, so
 * crossing the threshold costs nothing: each insert links one row. */
static int ensure_graph(struct cache_index *ix, struct scope *s)
{
    if (s->graph || !ix->ann_threshold)
        return 0;
    struct cache_hnsw_params p = {.seed = ix->seed++,
                                  .ef_search = ix->ef_search};
    s->graph = cache_hnsw_new(ix->dim, (const float *const *)&s->vecs, &p);
    return s->graph ? 0 : -1;
}

int cache_index_add(struct cache_index *ix, const unsigned char *scope,
                    const unsigned char *key, const float *vec,
                    const char *text, size_t text_len)
{
    cache_index_remove(ix, key);
    if (ix->count >= ix->max)
        return 1;
    float *unit = malloc(ix->dim * sizeof *unit);
    struct item *it = malloc(sizeof *it + text_len + 1);
    struct scope *s = NULL;
    int rc = -1;
    if (!unit || !it)
        goto out;
    memcpy(unit, vec, ix->dim * sizeof *unit);
    if (!cache_vec_normalise(unit, ix->dim) || !(s = get_scope(ix, scope)) ||
        ensure_graph(ix, s))
        goto out;
    size_t pos = s->rows;
    uint32_t reuse = s->graph ? cache_hnsw_free_row(s->graph) : UINT32_MAX;
    if (reuse != UINT32_MAX)
        pos = reuse;
    else if (grow(ix, s))
        goto out;
    memcpy(s->vecs + pos * ix->dim, unit, ix->dim * sizeof *unit);
    if (s->graph && cache_hnsw_insert(s->graph, (uint32_t)pos))
        goto out;
    memcpy(it->key, key, CACHE_KEY_BYTES);
    it->node.key = it->key;
    it->node.key_len = CACHE_KEY_BYTES;
    it->node.hash = keymap_hash(key, CACHE_KEY_BYTES);
    it->scope = s;
    it->pos = pos;
    it->text_len = text_len;
    memcpy(it->text, text, text_len);
    it->text[text_len] = '\0';
    s->items[pos] = it;
    if (pos == s->rows)
        s->rows++;
    s->live++;
    keymap_insert(&ix->items, &it->node);
    ix->count++;
    it = NULL;
    rc = 0;
out:
    if (rc && s && s->live == 0)
        forget_scope(ix, s);
    free(unit);
    free(it);
    return rc;
}

/* Into the short top list, most similar first. */
static void consider(struct cache_index_hit *out, size_t *n, size_t max,
                     const struct item *it, float sim)
{
    if (*n < max)
        (*n)++;
    else if (sim <= out[max - 1].similarity)
        return;
    size_t at = *n - 1;
    while (at > 0 && out[at - 1].similarity < sim) {
        out[at] = out[at - 1];
        at--;
    }
    memcpy(out[at].key, it->key, CACHE_KEY_BYTES);
    out[at].similarity = sim;
    out[at].text = it->text;
    out[at].text_len = it->text_len;
}

size_t cache_index_search(const struct cache_index *ix,
                          const unsigned char *scope, const float *query,
                          float min_similarity, struct cache_index_hit *out,
                          size_t max)
{
    struct scope *s = find_scope(ix, scope);
    size_t n = 0;
    if (!s || !max)
        return 0;
    if (s->graph && s->live >= ix->ann_threshold) {
        uint32_t ids[64];
        float sims[64];
        size_t k =
            cache_hnsw_search(s->graph, query, max < 64 ? max : 64, ids, sims);
        for (size_t i = 0; i < k; i++)
            if (sims[i] >= min_similarity && s->items[ids[i]])
                consider(out, &n, max, s->items[ids[i]], sims[i]);
        return n;
    }
    for (size_t i = 0; i < s->rows; i++) {
        if (!s->items[i]) /* a dead row of a graph */
            continue;
        float sim = ix->dot(query, s->vecs + i * ix->dim, ix->dim);
        if (sim >= min_similarity)
            consider(out, &n, max, s->items[i], sim);
    }
    return n;
}

static void set_ef(struct keymap_node *n, void *arg)
{
    struct scope *s = keymap_entry(n, struct scope, node);
    if (s->graph)
        cache_hnsw_set_ef(s->graph, *(unsigned *)arg);
}

void cache_index_set_ef_search(struct cache_index *ix, unsigned ef)
{
    ix->ef_search = ef;
    keymap_each(&ix->scopes, set_ef, &ef);
}

size_t cache_index_count(const struct cache_index *ix)
{
    return ix->count;
}
