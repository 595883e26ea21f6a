/* Lookup cost of the cache plugin's exact store and semantic index at
 * 10k, 100k and 1M entries: exact get p50/p99 and heap bytes per entry;
 * the semantic index (one scope holding every vector: one tenant, model and
 * system prompt, the worst case) searched by HNSW graph and by exact scan
 * at 256 and 1536 dimensions, with recall@1 of the graph against the
 * brute-force top-1, build time and heap bytes per entry. Single thread.
 *     bench_cache_lookup [MAX_ENTRIES [MAX_ENTRIES_1536 [MAX_SEMANTIC]]]
 *     bench_cache_lookup semantic N DIM       (one semantic cell)
 *     bench_cache_lookup semantic-header
 * Env: DATA=clustered|latent|uniform (see draw()), EF=64,128 (ef_search
 * values to measure on one build). */
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
#include "../../plugins/cache/cache_vec.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time of this thread: what a lookup costs when the shared machine
 * takes the core away mid-query (wall time then counts the wait). */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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

static double gaussian(void)
{
    double u = ((double)(next() >> 11) + 0.5) / 9007199254740992.0;
    double w = ((double)(next() >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * w);
}

/* Test vectors (DATA=clustered, the default; latent; uniform):
 *  - clustered: what sentence embeddings look like. 1000 topic centres,
 *    Gaussian in a 64-dimensional latent space; each vector is a centre
 *    (picked uniformly) plus Gaussian spread 0.6 per latent coordinate,
 *    mapped to `dim` by a fixed random projection, plus isotropic noise of
 *    0.1 per coordinate, then normalised. Two vectors of one topic have a
 *    cosine about 0.7, of two topics about 0: low intrinsic dimension and
 *    topic clusters, as measured on real embedding models.
 *  - latent: the same without topics (one Gaussian in 64 dimensions): no
 *    clusters, harder for a graph.
 *  - uniform: uniform random unit vectors, no structure at all: the worst
 *    case for every approximate index, and unlike any embedding.
 * A held-out query is a new draw of the same generator (never in the
 * index); a near-duplicate is a stored vector moved to cosine ~0.97 (a
 * paraphrase). */
enum { LATENT = 64, CLUSTERS = 1000 };
static float *projection, *centres;
static const char *data_kind = "clustered";

static void make_generator(size_t dim)
{
    free(projection);
    free(centres);
    projection = malloc(dim * LATENT * sizeof *projection);
    centres = malloc(CLUSTERS * LATENT * sizeof *centres);
    for (size_t i = 0; i < dim * LATENT; i++)
        projection[i] = (float)(gaussian() / sqrt((double)LATENT));
    for (size_t i = 0; i < CLUSTERS * LATENT; i++)
        centres[i] = (float)gaussian();
}

static void draw(float *v, size_t dim)
{
    if (strcmp(data_kind, "uniform") == 0) {
        for (size_t d = 0; d < dim; d++)
            v[d] = (float)gaussian(); /* isotropic: uniform on the sphere */
        cache_vec_normalise(v, dim);
        return;
    }
    float z[LATENT];
    bool topics = strcmp(data_kind, "clustered") == 0;
    const float *c = centres + (next() % CLUSTERS) * LATENT;
    for (size_t l = 0; l < LATENT; l++)
        z[l] = topics ? c[l] + 0.6f * (float)gaussian() : (float)gaussian();
    for (size_t d = 0; d < dim; d++) {
        const float *p = projection + d * LATENT;
        float x = 0;
        for (size_t l = 0; l < LATENT; l++)
            x += p[l] * z[l];
        v[d] = x + 0.1f * (float)gaussian();
    }
    cache_vec_normalise(v, dim);
}

/* A stored vector moved a little: what a paraphrase looks like to the
 * index (cosine about 0.97 to its original). */
static void near(float *q, const float *base, size_t dim)
{
    for (size_t d = 0; d < dim; d++)
        q[d] = base[d] + 0.25f * (float)gaussian() / (float)sqrt((double)dim);
    cache_vec_normalise(q, dim);
}

/* The exact top-1 of each query by brute force over the raw matrix,
 * sixteen queries per pass so a row is read once for all of them. */
static void truth(const float *v, size_t n, size_t dim, const float *q,
                  size_t nq, size_t *best)
{
    cache_dot_fn dot = cache_vec_dot_kernel();
    for (size_t q0 = 0; q0 < nq; q0 += 16) {
        size_t qn = nq - q0 < 16 ? nq - q0 : 16;
        float bs[16];
        for (size_t j = 0; j < qn; j++)
            bs[j] = -3;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < qn; j++) {
                float s = dot(q + (q0 + j) * dim, v + i * dim, dim);
                if (s > bs[j]) {
                    bs[j] = s;
                    best[q0 + j] = i;
                }
            }
    }
}

/* Each query timed `passes` times, interleaved (all queries, then all
 * again): per query the fastest pass (min[]), the first (first[]) and the
 * least thread CPU time (cpu[]). */
static void timed_search(struct cache_index *ix, const unsigned char *scope,
                         const float *queries, size_t nq, size_t dim,
                         int passes, uint64_t *min, uint64_t *first,
                         uint64_t *cpu, unsigned char (*top)[CACHE_KEY_BYTES])
{
    struct cache_index_hit hits[8];
    for (int p = 0; p < passes; p++)
        for (size_t q = 0; q < nq; q++) {
            uint64_t c0 = cpu_ns(), t0 = now_ns();
            size_t n = cache_index_search(ix, scope, queries + q * dim, -2.0f,
                                          hits, 8);
            uint64_t t = now_ns() - t0, c = cpu_ns() - c0;
            if (p == 0 || c < cpu[q])
                cpu[q] = c;
            if (p == 0) {
                min[q] = first[q] = t;
                memset(top[q], 0, CACHE_KEY_BYTES);
                if (n)
                    memcpy(top[q], hits[0].key, CACHE_KEY_BYTES);
            } else if (t < min[q]) {
                min[q] = t;
            }
        }
}

static double recall(unsigned char (*top)[CACHE_KEY_BYTES], const size_t *best,
                     size_t from, size_t to)
{
    size_t ok = 0;
    unsigned char k[CACHE_KEY_BYTES];
    for (size_t q = from; q < to; q++) {
        key_of(k, best[q]);
        ok += memcmp(top[q], k, CACHE_KEY_BYTES) == 0;
    }
    return (double)ok / (double)(to - from);
}

static const char *STORED = "a stored prompt of about forty bytes.";

/* One scope holding all n vectors (one tenant, model and system prompt:
 * the worst case), searched by graph at each ef of EF (a comma list;
 * default: the index's default), and by exact scan up to 100k. Recall@1 of
 * the graph against the brute-force top-1, for held-out queries and for
 * near-duplicates. */
static void semantic(size_t n, size_t dim)
{
    unsigned char scope[CACHE_KEY_BYTES] = {1}, k[CACHE_KEY_BYTES];
    size_t nq = n >= 1000000 ? 500 : 1000; /* per kind */
    float *v = malloc(n * dim * sizeof *v);
    float *queries = malloc(2 * nq * dim * sizeof *queries);
    size_t *best = malloc(2 * nq * sizeof *best);
    uint64_t *tmin = malloc(2 * nq * sizeof *tmin);
    uint64_t *tfirst = malloc(2 * nq * sizeof *tfirst);
    uint64_t *tcpu = malloc(2 * nq * sizeof *tcpu);
    unsigned char(*top)[CACHE_KEY_BYTES] = malloc(2 * nq * sizeof *top);
    if (!v || !queries || !best || !tmin || !tfirst || !tcpu || !top) {
        fprintf(stderr, "out of memory at %zu x %zu\n", n, dim);
        exit(1);
    }
    make_generator(dim);
    for (size_t i = 0; i < n; i++)
        draw(v + i * dim, dim);
    for (size_t q = 0; q < nq; q++) /* held-out: new draws */
        draw(queries + q * dim, dim);
    for (size_t q = nq; q < 2 * nq; q++) /* near-duplicates */
        near(queries + q * dim, v + (next() % n) * dim, dim);
    truth(v, n, dim, queries, 2 * nq, best);

    long before = heap_bytes();
    uint64_t t0 = now_ns();
    struct cache_index *graph = cache_index_new(dim, n, 1);
    for (size_t i = 0; i < n; i++) {
        key_of(k, i);
        cache_index_add(graph, scope, k, v + i * dim, STORED, strlen(STORED));
    }
    double build_s = (double)(now_ns() - t0) / 1e9;
    double per_entry = (double)(heap_bytes() - before) / (double)n;

    char scan[64] = "-";
    if (n <= 100000) { /* the small-scope path, timed at every size here */
        struct cache_index *sc = cache_index_new(dim, n, 0);
        for (size_t i = 0; i < n; i++) {
            key_of(k, i);
            cache_index_add(sc, scope, k, v + i * dim, STORED, strlen(STORED));
        }
        size_t sq = nq < 200 ? nq : 200;
        timed_search(sc, scope, queries, sq, dim, 3, tmin, tfirst, tcpu, top);
        double s50, s99;
        pct(tmin, sq, &s50, &s99);
        snprintf(scan, sizeof scan, "%.0f / %.0f", s50 / 1000, s99 / 1000);
        cache_index_free(sc);
    }
    free(v);

    char efs[256];
    snprintf(efs, sizeof efs, "%s", getenv("EF") ? getenv("EF") : "0");
    for (char *e = strtok(efs, ","); e; e = strtok(NULL, ",")) {
        unsigned ef = (unsigned)strtoul(e, NULL, 10);
        if (ef)
            cache_index_set_ef_search(graph, ef);
        timed_search(graph, scope, queries, 2 * nq, dim, 3, tmin, tfirst, tcpu,
                     top);
        double r_held = recall(top, best, 0, nq);
        double r_near = recall(top, best, nq, 2 * nq);
        double g50, g99, f50, f99, c50, c99;
        pct(tfirst, 2 * nq, &f50, &f99);
        pct(tmin, 2 * nq, &g50, &g99);
        pct(tcpu, 2 * nq, &c50, &c99);
        printf("| %zu | %zu | %s | %s | %.0f | %.0f | %.0f | %.0f / %.0f | "
               "%.3f | %.3f | %s | %.1f | %.1f | %.0f |\n",
               n, dim, data_kind, ef ? e : "default", g50 / 1000, g99 / 1000,
               f99 / 1000, c50 / 1000, c99 / 1000, r_held, r_near, scan,
               build_s, build_s * 100000.0 / (double)n, per_entry);
        fflush(stdout);
    }
    cache_index_free(graph);
    free(queries);
    free(best);
    free(tmin);
    free(tfirst);
    free(tcpu);
    free(top);
}

static void semantic_header(void)
{
    printf("| vectors | dims | data | ef | HNSW p50 µs | HNSW p99 µs | p99 µs "
           "one pass | CPU p50 / p99 µs | recall@1 held-out | recall@1 "
           "near-dup | exact scan p50 / p99 µs | build s | build s per 100k | "
           "bytes/entry |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

int main(int argc, char **argv)
{
    if (getenv("DATA"))
        data_kind = getenv("DATA");
    if (argc == 4 && strcmp(argv[1], "semantic") == 0) { /* one cell */
        semantic(strtoull(argv[2], NULL, 10), strtoull(argv[3], NULL, 10));
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "semantic-header") == 0) {
        semantic_header();
        return 0;
    }
    size_t max = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    size_t max1536 = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
    size_t max_semantic = argc > 3 ? strtoull(argv[3], NULL, 10) : max;
    printf("Exact store (600-byte answers):\n\n");
    printf("| layer | entries | - | p50 ns | p99 ns | bytes/entry |\n");
    printf("|---|---|---|---|---|---|\n");
    key_cost();
    for (size_t n = 10000; n <= max; n *= 10)
        exact(n);
    printf("\nSemantic index, one scope holding every vector (%s data, see "
           "the generator's comment in bench_cache_lookup.c); latencies are "
           "each query's fastest of 3 interleaved passes, 'one pass' the "
           "first pass alone:\n\n",
           data_kind);
    semantic_header();
    for (size_t n = 10000; n <= max_semantic; n *= 10) {
        semantic(n, 256);
        if (n <= max1536)
            semantic(n, 1536);
    }
    return 0;
}
