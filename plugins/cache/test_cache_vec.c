/* Unit tests for the semantic index's arithmetic and graph answers: the
 * SIMD kernels picked at run time agree with the portable ones, int8
 * quantisation stays within its error, a graph search reports the exact
 * float cosine (the walk is int8, the answer is re-ranked), and the graph
 * finds the exact top-1 of held-out queries on clustered data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cache_hnsw.h"
#include "cache_index.h"
#include "cache_vec.h"

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static float uniform(void) /* [-1, 1) */
{
    return (float)((double)(next() >> 11) / 4503599627370496.0 - 1.0);
}

static void key(unsigned char k[CACHE_KEY_BYTES], int i)
{
    memset(k, 0, CACHE_KEY_BYTES);
    memcpy(k, &i, sizeof i);
}

/* Lengths with and without the kernels' 8/32-wide tails. */
static const size_t LENGTHS[] = {1, 7, 8, 31, 32, 33, 100, 256, 1536, 1537};

static void test_float_kernel_matches_portable(void **unused)
{
    (void)unused;
    cache_dot_fn dot = cache_vec_dot_kernel();
    static float a[1537], b[1537];
    for (size_t t = 0; t < sizeof LENGTHS / sizeof *LENGTHS; t++) {
        size_t n = LENGTHS[t];
        double exact = 0, mag = 0;
        for (size_t i = 0; i < n; i++) {
            a[i] = uniform();
            b[i] = uniform();
            exact += (double)a[i] * b[i];
            mag += fabs((double)a[i] * b[i]);
        }
        float fast = dot(a, b, n), slow = cache_vec_dot_portable(a, b, n);
        /* float sums in different orders: equal to a few ulps of the
         * magnitude summed */
        assert_true(fabs(fast - exact) <= 1e-5 * mag + 1e-6);
        assert_true(fabs(slow - exact) <= 1e-5 * mag + 1e-6);
        assert_true(fabsf(cache_vec_dot(a, b, n) - fast) == 0);
    }
}

static void test_int8_kernel_matches_portable(void **unused)
{
    (void)unused;
    cache_dot8_fn dot8 = cache_vec_dot8_kernel();
    static int8_t a[1537], b[1537];
    for (size_t t = 0; t < sizeof LENGTHS / sizeof *LENGTHS; t++) {
        size_t n = LENGTHS[t];
        int64_t exact = 0;
        for (size_t i = 0; i < n; i++) {
            /* the extremes too: +-127 everywhere is the largest sum */
            a[i] = (int8_t)(t % 3 == 0 ? 127 : (int)(next() % 255) - 127);
            b[i] = (int8_t)(t % 3 == 0 ? -127 : (int)(next() % 255) - 127);
            exact += (int64_t)a[i] * b[i];
        }
        assert_int_equal(dot8(a, b, n), exact);
        assert_int_equal(cache_vec_dot8_portable(a, b, n), exact);
    }
}

/* The int8 similarity a graph walks by is within a small error of the
 * float one; a zero vector quantises to scale 0. */
static void test_quantise_error(void **unused)
{
    (void)unused;
    enum { DIM = 256 };
    static float a[DIM], b[DIM];
    static int8_t qa[DIM], qb[DIM];
    float worst = 0;
    for (int t = 0; t < 200; t++) {
        for (int i = 0; i < DIM; i++) {
            a[i] = uniform();
            b[i] = a[i] + 0.5f * uniform(); /* correlated: sims near 0.9 */
        }
        assert_true(cache_vec_normalise(a, DIM));
        assert_true(cache_vec_normalise(b, DIM));
        float sa = cache_vec_quantise(a, DIM, qa);
        float sb = cache_vec_quantise(b, DIM, qb);
        for (int i = 0; i < DIM; i++)
            assert_true(fabsf(qa[i] * sa - a[i]) <= sa * 0.5f + 1e-7f);
        float approx = sa * sb * (float)cache_vec_dot8_portable(qa, qb, DIM);
        float err = fabsf(approx - cache_vec_dot_portable(a, b, DIM));
        worst = err > worst ? err : worst;
    }
    print_message("worst int8 similarity error %.5f\n", (double)worst);
    assert_true(worst < 0.01f);
    memset(a, 0, sizeof a);
    assert_true(cache_vec_quantise(a, DIM, qa) == 0.0f);
    for (int i = 0; i < DIM; i++)
        assert_int_equal(qa[i], 0);
}

/* Clustered vectors (topic centres plus spread), like embeddings. */
static void clustered(float *v, size_t dim, const float *centres, int topics)
{
    const float *c = centres + (next() % (uint64_t)topics) * dim;
    for (size_t d = 0; d < dim; d++)
        v[d] = c[d] + 0.35f * uniform();
    cache_vec_normalise(v, dim);
}

/* A graph search answers with the float cosine of the stored vector (the
 * threshold compares that, not the int8 estimate the walk used), and on
 * held-out queries (new points, never stored) it finds the scan's top-1
 * at least 99% of the time. Deterministic: fixed seeds, one thread. */
/* Unset, ef_search grows with the scope: at 1M vectors 64 found the true
 * nearest for 0.966 of held-out queries, 256 for 0.996 (the issue asks
 * 0.99); a small scope keeps the cheap 64. */
static void test_auto_ef_grows_with_the_scope(void **unused)
{
    (void)unused;
    assert_int_equal(cache_hnsw_auto_ef(0), 64);
    assert_int_equal(cache_hnsw_auto_ef(100000), 64);
    assert_int_equal(cache_hnsw_auto_ef(300000), 128);
    assert_int_equal(cache_hnsw_auto_ef(1000000), 256);
    assert_int_equal(cache_hnsw_auto_ef(50000000), 256);
}

static void test_graph_exact_similarity_and_recall(void **unused)
{
    (void)unused;
    enum { DIM = 64, N = 4000, TOPICS = 40, Q = 400 };
    static float centres[TOPICS * DIM], v[N][DIM];
    for (size_t i = 0; i < TOPICS * DIM; i++)
        centres[i] = uniform();
    struct cache_index *g = cache_index_new(DIM, N, 1);
    struct cache_index *scan = cache_index_new(DIM, N, 0);
    unsigned char s[CACHE_KEY_BYTES] = {3}, k[CACHE_KEY_BYTES];
    for (int i = 0; i < N; i++) {
        clustered(v[i], DIM, centres, TOPICS);
        key(k, i);
        assert_int_equal(cache_index_add(g, s, k, v[i], "p", 1), 0);
        assert_int_equal(cache_index_add(scan, s, k, v[i], "p", 1), 0);
    }
    int agree = 0;
    struct cache_index_hit hg[4], hs[4];
    for (int t = 0; t < Q; t++) {
        float q[DIM];
        clustered(q, DIM, centres, TOPICS);
        assert_int_equal(cache_index_search(g, s, q, -2.0f, hg, 4), 4);
        assert_int_equal(cache_index_search(scan, s, q, -2.0f, hs, 1), 1);
        for (int j = 0; j < 4; j++) {
            int id;
            memcpy(&id, hg[j].key, sizeof id);
            /* v[id] was normalised again when stored: equal to ~1 ulp,
             * where the int8 estimate is off by ~1e-3 */
            assert_true(fabsf(hg[j].similarity -
                              cache_vec_dot_kernel()(q, v[id], DIM)) < 1e-5f);
            if (j)
                assert_true(hg[j - 1].similarity >= hg[j].similarity);
        }
        if (memcmp(hg[0].key, hs[0].key, CACHE_KEY_BYTES) == 0) {
            assert_true(hg[0].similarity == hs[0].similarity);
            agree++;
        }
    }
    print_message("held-out recall@1 %d/%d\n", agree, Q);
    assert_true(agree * 100 >= Q * 99);
    cache_index_free(g);
    cache_index_free(scan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_kernel_matches_portable),
        cmocka_unit_test(test_int8_kernel_matches_portable),
        cmocka_unit_test(test_quantise_error),
        cmocka_unit_test(test_graph_exact_similarity_and_recall),
        cmocka_unit_test(test_auto_ef_grows_with_the_scope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
