/* Lookup cost of the cache plugin's exact store and semantic index at
 * 10k, 100k and 1M entries: exact get p50/p99, memory per entry (RSS
 * growth / entries), and the semantic scan p50/p99 of one scope holding
 * every vector (the worst case: one tenant, one model, one system prompt)
 * at 256 and 1536 dimensions. Random unit vectors; single thread.
 *     bench_cache_lookup [MAX_ENTRIES] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../plugins/cache/cache_index.h"
#include "../../plugins/cache/cache_store.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void key_of(unsigned char k[CACHE_KEY_BYTES], uint64_t i)
{
    uint64_t a = i * 0x9E3779B97F4A7C15ull, b = ~i;
    memcpy(k, &a, 8);
    memcpy(k + 8, &b, 8);
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void pct(uint64_t *v, size_t n, double *p50, double *p99)
{
    qsort(v, n, sizeof *v, cmp);
    *p50 = (double)v[n / 2];
    *p99 = (double)v[n * 99 / 100];
}

/* A typical stored chat.completion is about 600 bytes. */
static const size_t BODY = 600;

static void exact(size_t n)
{
    struct cache_store s;
    char body[600];
    memset(body, 'x', sizeof body);
    long before = rss_kb();
    cache_store_init(&s, n, (size_t)1 << 40);
    unsigned char k[CACHE_KEY_BYTES];
    for (size_t i = 0; i < n; i++) {
        key_of(k, i);
        cache_store_put(&s, k, body, BODY, 1, (uint64_t)1 << 60);
    }
    long after = rss_kb();
    enum { Q = 200000 };
    static uint64_t t[Q];
    for (size_t q = 0; q < Q; q++) {
        key_of(k, next() % n);
        uint64_t t0 = now_ns();
        struct cache_entry *e = cache_store_get(&s, k, 2);
        t[q] = now_ns() - t0;
        cache_entry_unref(e);
    }
    double p50, p99;
    pct(t, Q, &p50, &p99);
    printf("| exact | %zu | - | %.0f | %.0f | %.0f |\n", n, p50, p99,
           (double)(after - before) * 1024 / (double)n);
    cache_store_fini(&s);
}

static void semantic(size_t n, size_t dim)
{
    struct cache_index *ix = cache_index_new(dim, n);
    unsigned char scope[CACHE_KEY_BYTES] = {1}, k[CACHE_KEY_BYTES];
    float *v = malloc(dim * sizeof *v);
    long before = rss_kb();
    for (size_t i = 0; i < n; i++) {
        for (size_t d = 0; d < dim; d++)
            v[d] = (float)((int64_t)(next() % 2001) - 1000);
        key_of(k, i);
        cache_index_add(ix, scope, k, v,
                        "a stored prompt of about forty bytes.", 37);
    }
    long after = rss_kb();
    size_t queries = n >= 1000000 ? 30 : n >= 100000 ? 100 : 1000;
    uint64_t *t = malloc(queries * sizeof *t);
    struct cache_index_hit hits[8];
    for (size_t q = 0; q < queries; q++) {
        for (size_t d = 0; d < dim; d++)
            v[d] = (float)((int64_t)(next() % 2001) - 1000);
        cache_vec_normalise(v, dim);
        uint64_t t0 = now_ns();
        cache_index_search(ix, scope, v, 0.95f, hits, 8);
        t[q] = now_ns() - t0;
    }
    double p50, p99;
    pct(t, queries, &p50, &p99);
    printf("| semantic scan | %zu | %zu | %.0f | %.0f | %.0f |\n", n, dim, p50,
           p99, (double)(after - before) * 1024 / (double)n);
    free(t);
    free(v);
    cache_index_free(ix);
}

int main(int argc, char **argv)
{
    size_t max = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    printf("| layer | entries | dims | p50 ns | p99 ns | bytes/entry |\n");
    printf("|---|---|---|---|---|---|\n");
    for (size_t n = 10000; n <= max; n *= 10)
        exact(n);
    for (size_t n = 10000; n <= max; n *= 10) {
        semantic(n, 256);
        if (n * 1536 * 4 < ((size_t)8 << 30)) /* 1M x 1536 = 6 GiB: skip */
            semantic(n, 1536);
    }
    return 0;
}
