#include "cache_index.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/keymap.h"

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
    float *vecs; /* count rows of dim floats */
    struct item **items;
    size_t count, cap;
};

struct cache_index {
    size_t dim, max, count;
    struct keymap scopes, items;
};

bool cache_vec_normalise(float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    if (!(s > 0) || !isfinite(s))
        return false;
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < n; i++)
        v[i] *= inv;
    return true;
}

/* Eight independent sums: the loop the compiler turns into SIMD without
 * reassociating a single float reduction. */
float cache_vec_dot(const float *a, const float *b, size_t n)
{
    float s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (size_t k = 0; k < 8; k++)
            s[k] += a[i + k] * b[i + k];
    float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++)
        t += a[i] * b[i];
    return t;
}

struct cache_index *cache_index_new(size_t dimensions, size_t max_vectors)
{
    struct cache_index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return NULL;
    ix->dim = dimensions;
    ix->max = max_vectors;
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

static int every(struct keymap_node *n, void *arg)
{
    (void)n;
    (void)arg;
    return 1;
}

static void free_scope(struct keymap_node *n, void *arg)
{
    struct scope *s = keymap_entry(n, struct scope, node);
    (void)arg;
    for (size_t i = 0; i < s->count; i++)
        free(s->items[i]);
    free(s->vecs);
    free(s->items);
    free(s);
}

void cache_index_free(struct cache_index *ix)
{
    if (!ix)
        return;
    keymap_remove_if(&ix->scopes, every, free_scope, NULL);
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

bool cache_index_remove(struct cache_index *ix, const unsigned char *key)
{
    struct item *it = find_item(ix, key);
    if (!it)
        return false;
    struct scope *s = it->scope;
    size_t last = s->count - 1;
    if (it->pos != last) { /* the last row moves into the hole */
        memcpy(s->vecs + it->pos * ix->dim, s->vecs + last * ix->dim,
               ix->dim * sizeof(float));
        s->items[it->pos] = s->items[last];
        s->items[it->pos]->pos = it->pos;
    }
    s->count--;
    keymap_remove(&ix->items, &it->node);
    free(it);
    ix->count--;
    if (s->count == 0) {
        keymap_remove(&ix->scopes, &s->node);
        free(s->vecs);
        free(s->items);
        free(s);
    }
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
    if (s->count < s->cap)
        return 0;
    size_t cap = s->cap ? s->cap * 2 : 8;
    float *v = realloc(s->vecs, cap * ix->dim * sizeof(float));
    if (!v)
        return -1;
    s->vecs = v;
    struct item **items = realloc(s->items, cap * sizeof *items);
    if (!items)
        return -1;
    s->items = items;
    s->cap = cap;
    return 0;
}

int cache_index_add(struct cache_index *ix, const unsigned char *scope,
                    const unsigned char *key, const float *vec,
                    const char *text, size_t text_len)
{
    cache_index_remove(ix, key);
    if (ix->count >= ix->max)
        return 1;
    struct item *it = malloc(sizeof *it + text_len + 1);
    if (!it)
        return -1;
    struct scope *s = get_scope(ix, scope);
    if (!s || grow(ix, s)) {
        free(it);
        if (s && s->count == 0) {
            keymap_remove(&ix->scopes, &s->node);
            free(s->vecs);
            free(s->items);
            free(s);
        }
        return -1;
    }
    float *row = s->vecs + s->count * ix->dim;
    memcpy(row, vec, ix->dim * sizeof(float));
    if (!cache_vec_normalise(row, ix->dim)) {
        free(it);
        if (s->count == 0) {
            keymap_remove(&ix->scopes, &s->node);
            free(s->vecs);
            free(s->items);
            free(s);
        }
        return -1;
    }
    memcpy(it->key, key, CACHE_KEY_BYTES);
    it->node.key = it->key;
    it->node.key_len = CACHE_KEY_BYTES;
    it->node.hash = keymap_hash(key, CACHE_KEY_BYTES);
    it->scope = s;
    it->pos = s->count;
    it->text_len = text_len;
    memcpy(it->text, text, text_len);
    it->text[text_len] = '\0';
    s->items[s->count++] = it;
    keymap_insert(&ix->items, &it->node);
    ix->count++;
    return 0;
}

size_t cache_index_search(const struct cache_index *ix,
                          const unsigned char *scope, const float *query,
                          float min_similarity, struct cache_index_hit *out,
                          size_t max)
{
    const struct scope *s = find_scope(ix, scope);
    size_t n = 0;
    if (!s || !max)
        return 0;
    for (size_t i = 0; i < s->count; i++) {
        float sim = cache_vec_dot(query, s->vecs + i * ix->dim, ix->dim);
        if (!(sim >= min_similarity))
            continue;
        /* insertion into the short top list, most similar first */
        if (n < max)
            n++;
        else if (sim <= out[max - 1].similarity)
            continue;
        size_t at = n - 1;
        while (at > 0 && out[at - 1].similarity < sim) {
            out[at] = out[at - 1];
            at--;
        }
        const struct item *it = s->items[i];
        memcpy(out[at].key, it->key, CACHE_KEY_BYTES);
        out[at].similarity = sim;
        out[at].text = it->text;
        out[at].text_len = it->text_len;
    }
    return n;
}

size_t cache_index_count(const struct cache_index *ix)
{
    return ix->count;
}
