/* The semantic index shared by worker threads the way cache_semantic.c
 * shares it (one mutex around every call): several threads insert,
 * search, delete and reuse rows of one graph-searched scope at once.
 * Checks what must hold whatever the interleaving: a search never returns
 * a vector that was removed, reports the float cosine of the stored
 * vector, and the count ends where the operations say. Run under TSan
 * (ctest label concurrency): the SIMD kernels are picked at run time, so
 * any shared state there would show as a race. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "cache_index.h"
#include "cache_vec.h"

enum { THREADS = 4, PER_THREAD = 300, DIM = 32 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_index *ix;
static const unsigned char scope[CACHE_KEY_BYTES] = {9};
static float vecs[THREADS * PER_THREAD][DIM];
static atomic_bool removed[THREADS * PER_THREAD];
static atomic_int bad_hits;

static void key(unsigned char k[CACHE_KEY_BYTES], int i)
{
    memset(k, 0, CACHE_KEY_BYTES);
    memcpy(k, &i, sizeof i);
}

static void make_vectors(void)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < THREADS * PER_THREAD; i++) {
        for (int d = 0; d < DIM; d++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            vecs[i][d] = (float)(x % 2001) / 1000.0f - 1.0f;
        }
        cache_vec_normalise(vecs[i], DIM);
    }
}

/* Each thread owns ids [t * PER_THREAD, (t + 1) * PER_THREAD): it adds
 * them one by one, searches for each just added, and removes every third
 * of its earlier ones (their rows are then reused by later adds). */
static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg, base = t * PER_THREAD;
    unsigned char k[CACHE_KEY_BYTES];
    struct cache_index_hit hits[4];
    for (int j = 0; j < PER_THREAD; j++) {
        int id = base + j;
        key(k, id);
        pthread_mutex_lock(&lock);
        int rc = cache_index_add(ix, scope, k, vecs[id], "p", 1);
        size_t n = cache_index_search(ix, scope, vecs[id], -2.0f, hits, 4);
        pthread_mutex_unlock(&lock);
        if (rc != 0 || n == 0)
            atomic_fetch_add(&bad_hits, 1);
        for (size_t h = 0; h < n; h++) {
            int got;
            memcpy(&got, hits[h].key, sizeof got);
            /* only this thread removes its own ids, so a removed one of
             * ours returned here is a real bug; others' flags may lag */
            bool mine = got >= base && got < base + PER_THREAD;
            if ((mine && atomic_load(&removed[got])) ||
                fabsf(hits[h].similarity -
                      cache_vec_dot(vecs[id], vecs[got], DIM)) > 1e-5f)
                atomic_fetch_add(&bad_hits, 1);
        }
        if (j % 3 == 2) {
            int old = base + j - 2;
            key(k, old);
            atomic_store(&removed[old], true);
            pthread_mutex_lock(&lock);
            bool ok = cache_index_remove(ix, k);
            pthread_mutex_unlock(&lock);
            if (!ok)
                atomic_fetch_add(&bad_hits, 1);
        }
    }
    return NULL;
}

static void test_threads_share_one_graph(void **unused)
{
    (void)unused;
    make_vectors();
    ix = cache_index_new(DIM, THREADS * PER_THREAD, 64);
    assert_non_null(ix);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(
            pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(atomic_load(&bad_hits), 0);
    assert_int_equal(cache_index_count(ix),
                     THREADS * (PER_THREAD - PER_THREAD / 3));
    cache_index_free(ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_share_one_graph),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
