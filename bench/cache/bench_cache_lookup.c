/* Lookup cost of the cache plugin's exact store and semantic index at
 * 10k, 100k and 1M entries: exact get p50/p99 and heap bytes per entry;
 * the semantic index (one scope holding every vector: one tenant, model and
 * system prompt, the worst case) searched by exact scan and by HNSW graph
 * at 256 and 1536 dimensions, with recall@1 of the graph against the scan
 * and heap bytes per vector. Random unit vectors; single thread.
 *     bench_cache_lookup [MAX_ENTRIES [MAX_ENTRIES_1536 [MAX_SEMANTIC]]] */
#include <malloc.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../plugins/cache/cache_index.h"
#include "../../plugins/cache/cache_key.h"
#include "../../plugins/cache/cache_store.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Heap bytes in use (glibc): what the structures cost, freed memory
 * reused or not. */
static long heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (long)(mi.uordblks + mi.hblkhd);
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

/* Hashing a typical request into its key (a system and a user message,
 * temperature, max_tokens), from the decoded body the host hands over. */
static void key_cost(void)
{
    json_t *body = json_loads(
        "{\"model\":\"gpt-4o-mini\",\"temperature\":0,\"max_tokens\":256,"
        "\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful "
        "assistant for the ACME support desk. Answer briefly.\"},{\"role\":"
        "\"user\",\"content\":\"How do I reset my password if I no longer "
        "have access to the e-mail address on my account?\"}],\"user\":"
        "\"u-123\",\"stream\":false}",
        0, NULL);
    struct cache_key_rules rules = {.seed = 1};
    const char *ign[] = {"user", "stream", "stream_options", "metadata",
                         "store"};
    for (size_t i = 0; i < 5; i++)
        rules.ignored[rules.ignored_count++] = ign[i];
    enum { Q = 100000 };
    static uint64_t t[Q];
    unsigned char k[CACHE_KEY_BYTES];
    for (size_t q = 0; q < Q; q++) {
        uint64_t t0 = now_ns();
        cache_key_exact(&rules, (struct cache_part){"tacme", 5},
                        (struct cache_part){"/v1/chat/completions", 20}, body,
                        k);
        t[q] = now_ns() - t0;
    }
    double p50, p99;
    pct(t, Q, &p50, &p99);
    printf("| key (hash a 2-message request) | - | - | %.0f | %.0f | - |\n",
           p50, p99);
    json_decref(body);
}

/* A typical stored chat.completion is about 600 bytes. */
static const size_t BODY = 600;

static void exact(size_t n)
{
    struct cache_store s;
    char body[600];
    memset(body, 'x', sizeof body);
    long before = heap_bytes();
    cache_store_init(&s, n, (size_t)1 << 40);
    unsigned char k[CACHE_KEY_BYTES];
    for (size_t i = 0; i < n; i++) {
        key_of(k, i);
        cache_store_put(&s, k, body, BODY, 1, (uint64_t)1 << 60);
    }
    long after = heap_bytes();
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
           (double)(after - before) / (double)n);
    cache_store_fini(&s);
}

static void random_unit(float *v, size_t dim)
{
    for (size_t d = 0; d < dim; d++)
        v[d] = (float)((int64_t)(next() % 2001) - 1000);
    cache_vec_normalise(v, dim);
}

/* Embedding-like vectors: a 32-dimensional latent point (sum of uniforms,
 * roughly Gaussian) through a fixed random projection, plus 5% noise.
 * Real embeddings have a low intrinsic dimension; uniform random vectors
 * have none, and no index beats a scan on them (rerun with UNIFORM=1). */
enum { LATENT = 32 };
static float *projection;
static int uniform_data;

static void embedding_like(float *v, size_t dim)
{
    if (uniform_data) {
        random_unit(v, dim);
        return;
    }
    float z[LATENT];
    for (size_t l = 0; l < LATENT; l++)
        z[l] = (float)((int64_t)(next() % 1001) + (int64_t)(next() % 1001) +
                       (int64_t)(next() % 1001) - 1500) /
               500.0f;
    for (size_t d = 0; d < dim; d++) {
        float x = 0;
        for (size_t l = 0; l < LATENT; l++)
            x += projection[d * LATENT + l] * z[l];
        v[d] = x + 0.05f * (float)((int64_t)(next() % 2001) - 1000) / 1000.0f;
    }
    cache_vec_normalise(v, dim);
}

static void make_projection(size_t dim)
{
    free(projection);
    projection = malloc(dim * LATENT * sizeof *projection);
    for (size_t i = 0; i < dim * LATENT; i++)
        projection[i] = (float)((int64_t)(next() % 2001) - 1000) / 1000.0f /
                        (float)sqrt((double)LATENT);
}

/* A stored vector moved a little: what a paraphrase looks like to the
 * index (cosine about 0.97 to its original). */
static void near(float *q, const float *base, size_t dim)
{
    for (size_t d = 0; d < dim; d++)
        q[d] = base[d] + 0.25f * (float)((int64_t)(next() % 2001) - 1000) /
                             1000.0f / (float)sqrt((double)dim) * 1.7f;
    cache_vec_normalise(q, dim);
}

static void timed_search(struct cache_index *ix, const unsigned char *scope,
                         float *queries, size_t nq, size_t dim, uint64_t *t,
                         unsigned char (*top)[CACHE_KEY_BYTES])
{
    struct cache_index_hit hits[8];
    for (size_t q = 0; q < nq; q++) {
        uint64_t t0 = now_ns();
        size_t n =
            cache_index_search(ix, scope, queries + q * dim, -2.0f, hits, 8);
        t[q] = now_ns() - t0;
        memset(top[q], 0, CACHE_KEY_BYTES);
        if (n)
            memcpy(top[q], hits[0].key, CACHE_KEY_BYTES);
    }
}

/* One scope holding all n vectors (one tenant, model and system prompt:
 * the worst case), searched by scan and by graph; recall@1 of the graph
 * against the scan for near-duplicate queries and for random ones. */
static void semantic(size_t n, size_t dim, bool with_scan)
{
    unsigned char scope[CACHE_KEY_BYTES] = {1}, k[CACHE_KEY_BYTES];
    float *v = malloc(n * dim * sizeof *v);
    make_projection(dim);
    for (size_t i = 0; i < n; i++)
        embedding_like(v + i * dim, dim);

    long before = heap_bytes();
    uint64_t t0 = now_ns();
    struct cache_index *graph = cache_index_new(dim, n, 1);
    for (size_t i = 0; i < n; i++) {
        key_of(k, i);
        cache_index_add(graph, scope, k, v + i * dim,
                        "a stored prompt of about forty bytes.", 37);
    }
    double build_s = (double)(now_ns() - t0) / 1e9;
    long after = heap_bytes();

    enum { NQ = 400 };
    float *queries = malloc(2 * NQ * dim * sizeof *queries);
    for (size_t q = 0; q < NQ; q++) /* near-duplicates, then random */
        near(queries + q * dim, v + (next() % n) * dim, dim);
    for (size_t q = NQ; q < 2 * NQ; q++) /* a new point of the data */
        embedding_like(queries + q * dim, dim);
    static uint64_t tg[2 * NQ], ts[2 * NQ];
    static unsigned char topg[2 * NQ][CACHE_KEY_BYTES],
        tops[2 * NQ][CACHE_KEY_BYTES];
    timed_search(graph, scope, queries, 2 * NQ, dim, tg, topg);
    double g50, g99, s50 = 0, s99 = 0;
    pct(tg, NQ, &g50, &g99); /* near-duplicate queries: the cache's case */

    char recall[64] = "-";
    if (with_scan) {
        struct cache_index *scan = cache_index_new(dim, n, 0);
        for (size_t i = 0; i < n; i++) {
            key_of(k, i);
            cache_index_add(scan, scope, k, v + i * dim,
                            "a stored prompt of about forty bytes.", 37);
        }
        size_t nq = n >= 1000000 ? 40 : 2 * NQ;
        timed_search(scan, scope, queries, nq, dim, ts, tops);
        size_t near_ok = 0, rand_ok = 0, nn = nq < NQ ? nq : NQ;
        for (size_t q = 0; q < nq; q++) {
            bool ok = memcmp(topg[q], tops[q], CACHE_KEY_BYTES) == 0;
            if (q < NQ)
                near_ok += ok;
            else
                rand_ok += ok;
        }
        pct(ts, nn, &s50, &s99);
        if (nq > NQ)
            snprintf(recall, sizeof recall, "%.3f / %.3f", (double)near_ok / NQ,
                     (double)rand_ok / (nq - NQ));
        else
            snprintf(recall, sizeof recall, "%.3f / -", (double)near_ok / nn);
        cache_index_free(scan);
    }
    printf("| semantic | %zu | %zu | scan %.0f / %.0f | graph %.0f / %.0f | "
           "%s | %.0f | %.1f |\n",
           n, dim, s50 / 1000, s99 / 1000, g50 / 1000, g99 / 1000, recall,
           (double)(after - before) / (double)n, build_s);
    fflush(stdout);
    free(queries);
    free(v);
    cache_index_free(graph);
}

int main(int argc, char **argv)
{
    size_t max = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    size_t max1536 = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
    size_t max_semantic = argc > 3 ? strtoull(argv[3], NULL, 10) : max;
    uniform_data = getenv("UNIFORM") != NULL;
    printf("Exact store (600-byte answers):\n\n");
    printf("| layer | entries | - | p50 ns | p99 ns | bytes/entry |\n");
    printf("|---|---|---|---|---|---|\n");
    key_cost();
    for (size_t n = 10000; n <= max; n *= 10)
        exact(n);
    printf("\nSemantic index, one scope holding every vector (%s; queries: "
           "stored vectors moved to cosine ~0.97, and new points):\n\n",
           uniform_data ? "uniform random unit vectors"
                        : "embedding-like vectors of intrinsic dimension 32");
    printf("| layer | vectors | dims | scan p50/p99 µs | HNSW p50/p99 µs | "
           "recall@1 HNSW vs scan (near-dup / new point) | bytes/vector "
           "(HNSW) | build s |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (size_t n = 10000; n <= max_semantic; n *= 10) {
        semantic(n, 256, true);
        if (n <= max1536)
            semantic(n, 1536, true);
    }
    return 0;
}
