/* Unit tests for the exact store (TTL on a fake clock, LRU under the entry
 * and byte caps, references outliving eviction) and the vector index
 * (scopes, top-k order, deletes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache_index.h"
#include "cache_snapshot.h"
#include "cache_store.h"

#define SEC 1000000000ull

static void key(unsigned char k[CACHE_KEY_BYTES], int i)
{
    memset(k, 0, CACHE_KEY_BYTES);
    memcpy(k, &i, sizeof i);
}

static bool has(struct cache_store *s, int i, uint64_t now)
{
    unsigned char k[CACHE_KEY_BYTES];
    key(k, i);
    struct cache_entry *e = cache_store_get(s, k, now);
    cache_entry_unref(e);
    return e != NULL;
}

static void put(struct cache_store *s, int i, size_t len, uint64_t now,
                uint64_t ttl)
{
    unsigned char k[CACHE_KEY_BYTES];
    char body[4096];
    key(k, i);
    memset(body, 'a' + i % 26, len);
    assert_int_equal(cache_store_put(s, k, body, len, now, ttl), 0);
}

static int drops[3];
static void count_drop(void *arg, const unsigned char *k,
                       enum cache_drop_reason why)
{
    (void)arg;
    (void)k;
    drops[why]++;
}

static void test_ttl(void **unused)
{
    (void)unused;
    struct cache_store s;
    assert_int_equal(cache_store_init(&s, 10, 1 << 20), 0);
    uint64_t now = 5 * SEC;
    put(&s, 1, 10, now, 60 * SEC);
    assert_true(has(&s, 1, now + 60 * SEC - 1)); /* the last nanosecond */
    assert_false(has(&s, 1, now + 60 * SEC));    /* expired: dropped */
    struct cache_store_stats st;
    cache_store_stats(&s, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.expired, 1);
    /* sweep frees expired entries nobody asks for */
    put(&s, 2, 10, now, 1 * SEC);
    put(&s, 3, 10, now, 100 * SEC);
    assert_int_equal(cache_store_sweep(&s, now + 2 * SEC), 1);
    assert_false(has(&s, 2, now + 2 * SEC));
    assert_true(has(&s, 3, now + 2 * SEC));
    cache_store_fini(&s);
}

static void test_lru_entry_cap(void **unused)
{
    (void)unused;
    struct cache_store s;
    assert_int_equal(cache_store_init(&s, 3, 1 << 20), 0);
    memset(drops, 0, sizeof drops);
    cache_store_on_drop(&s, count_drop, NULL);
    put(&s, 1, 10, SEC, 100 * SEC);
    put(&s, 2, 10, SEC, 100 * SEC);
    put(&s, 3, 10, SEC, 100 * SEC);
    assert_true(has(&s, 1, SEC)); /* 1 is now the most recent */
    put(&s, 4, 10, SEC, 100 * SEC);
    assert_false(has(&s, 2, SEC)); /* the least recently used went */
    assert_true(has(&s, 1, SEC));
    assert_true(has(&s, 3, SEC));
    assert_true(has(&s, 4, SEC));
    assert_int_equal(drops[CACHE_DROP_LRU], 1);
    put(&s, 4, 20, SEC, 100 * SEC); /* replacing is not an eviction */
    assert_int_equal(drops[CACHE_DROP_REPLACED], 1);
    assert_int_equal(drops[CACHE_DROP_LRU], 1);
    cache_store_fini(&s);
}

static void test_lru_byte_cap(void **unused)
{
    (void)unused;
    struct cache_store s;
    size_t each = CACHE_ENTRY_OVERHEAD + 1000 + 1;
    assert_int_equal(cache_store_init(&s, 1000, 3 * each), 0);
    put(&s, 1, 1000, SEC, 100 * SEC);
    put(&s, 2, 1000, SEC, 100 * SEC);
    put(&s, 3, 1000, SEC, 100 * SEC);
    struct cache_store_stats st;
    cache_store_stats(&s, &st);
    assert_int_equal(st.bytes, 3 * each);
    assert_true(has(&s, 1, SEC));
    put(&s, 4, 2000, SEC, 100 * SEC); /* needs two entries' room */
    assert_true(has(&s, 1, SEC));
    assert_false(has(&s, 2, SEC));
    assert_false(has(&s, 3, SEC));
    assert_true(has(&s, 4, SEC));
    cache_store_stats(&s, &st);
    assert_true(st.bytes <= 3 * each);
    assert_int_equal(st.evicted_lru, 2);
    /* an answer larger than the whole cap is refused, nothing evicted */
    unsigned char k[CACHE_KEY_BYTES];
    static char big[8192];
    key(k, 9);
    assert_int_equal(cache_store_put(&s, k, big, sizeof big, SEC, SEC), 1);
    assert_true(has(&s, 4, SEC));
    cache_store_fini(&s);
}

static void test_reference_outlives_eviction(void **unused)
{
    (void)unused;
    struct cache_store s;
    unsigned char k[CACHE_KEY_BYTES];
    assert_int_equal(cache_store_init(&s, 1, 1 << 20), 0);
    put(&s, 1, 5, SEC, 100 * SEC);
    key(k, 1);
    struct cache_entry *e = cache_store_get(&s, k, SEC);
    assert_non_null(e);
    put(&s, 2, 5, SEC, 100 * SEC); /* evicts 1 while e is held */
    assert_false(has(&s, 1, SEC));
    assert_memory_equal(e->body, "bbbbb", 5); /* ASan: still readable */
    cache_entry_unref(e);
    cache_store_fini(&s);
}

/* ---- index ---- */

static void unit(float *v, size_t dim, size_t hot, float other)
{
    for (size_t i = 0; i < dim; i++)
        v[i] = 0;
    v[hot] = 1;
    v[(hot + 1) % dim] = other;
}

static void test_index_scopes_and_order(void **unused)
{
    (void)unused;
    enum { DIM = 16 };
    struct cache_index *ix = cache_index_new(DIM, 100, 0);
    unsigned char s1[16] = {1}, s2[16] = {2}, k[16];
    float v[DIM], q[DIM];
    for (int i = 0; i < 5; i++) {
        unit(v, DIM, 0, (float)i * 0.1f); /* farther from e0 as i grows */
        key(k, i);
        assert_int_equal(cache_index_add(ix, s1, k, v, "t", 1), 0);
    }
    unit(v, DIM, 0, 0);
    key(k, 99);
    assert_int_equal(cache_index_add(ix, s2, k, v, "other", 5), 0);
    assert_int_equal(cache_index_count(ix), 6);

    unit(q, DIM, 0, 0);
    struct cache_index_hit hits[8];
    size_t n = cache_index_search(ix, s1, q, 0.5f, hits, 3);
    assert_int_equal(n, 3);
    int first;
    memcpy(&first, hits[0].key, sizeof first);
    assert_int_equal(first, 0);
    assert_true(fabsf(hits[0].similarity - 1.0f) < 1e-6f);
    assert_true(hits[0].similarity >= hits[1].similarity);
    assert_true(hits[1].similarity >= hits[2].similarity);
    /* threshold edge: exactly at the threshold is a candidate */
    float sim1 = hits[1].similarity;
    assert_int_equal(cache_index_search(ix, s1, q, sim1, hits, 8), 2);
    assert_int_equal(
        cache_index_search(ix, s1, q, nextafterf(sim1, 2), hits, 8), 1);
    /* scope 2 sees only its own vector */
    n = cache_index_search(ix, s2, q, 0.0f, hits, 8);
    assert_int_equal(n, 1);
    assert_memory_equal(hits[0].text, "other", 5);
    /* delete moves rows; the rest stays findable */
    key(k, 0);
    assert_true(cache_index_remove(ix, k));
    assert_false(cache_index_remove(ix, k));
    n = cache_index_search(ix, s1, q, 0.5f, hits, 8);
    assert_int_equal(n, 4);
    memcpy(&first, hits[0].key, sizeof first);
    assert_int_equal(first, 1);
    cache_index_free(ix);
}

static void test_index_full_and_zero(void **unused)
{
    (void)unused;
    enum { DIM = 8 };
    struct cache_index *ix = cache_index_new(DIM, 2, 0);
    unsigned char s[16] = {1}, k[16];
    float v[DIM] = {1}, zero[DIM] = {0};
    key(k, 1);
    assert_int_equal(cache_index_add(ix, s, k, v, "a", 1), 0);
    key(k, 2);
    assert_int_equal(cache_index_add(ix, s, k, zero, "b", 1), -1);
    assert_int_equal(cache_index_add(ix, s, k, v, "b", 1), 0);
    key(k, 3);
    assert_int_equal(cache_index_add(ix, s, k, v, "c", 1), 1); /* full */
    key(k, 2);
    assert_int_equal(cache_index_add(ix, s, k, v, "b2", 2), 0); /* replace */
    assert_int_equal(cache_index_count(ix), 2);
    cache_index_free(ix);
}

/* Above the threshold the scope is searched by graph: near-duplicates of
 * stored vectors are found as the scan finds them, dead rows are never
 * returned and are reused, and the graph survives heavy churn. */
static void test_index_graph(void **unused)
{
    (void)unused;
    enum { DIM = 32, N = 3000 };
    struct cache_index *g = cache_index_new(DIM, 10 * N, 64);
    struct cache_index *scan = cache_index_new(DIM, 10 * N, 0);
    unsigned char s[16] = {7}, k[16];
    static float v[N][DIM];
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        for (int d = 0; d < DIM; d++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            v[i][d] = (float)((int64_t)(x >> 40) % 1000) / 1000.0f;
        }
        cache_vec_normalise(v[i], DIM);
        key(k, i);
        assert_int_equal(cache_index_add(g, s, k, v[i], "p", 1), 0);
        assert_int_equal(cache_index_add(scan, s, k, v[i], "p", 1), 0);
    }
    /* churn: delete every third vector, re-add half of them */
    for (int i = 0; i < N; i += 3) {
        key(k, i);
        assert_true(cache_index_remove(g, k));
        assert_true(cache_index_remove(scan, k));
    }
    for (int i = 0; i < N; i += 6) {
        key(k, i);
        assert_int_equal(cache_index_add(g, s, k, v[i], "p", 1), 0);
        assert_int_equal(cache_index_add(scan, s, k, v[i], "p", 1), 0);
    }
    assert_int_equal(cache_index_count(g), cache_index_count(scan));
    int agree = 0, total = 0;
    struct cache_index_hit hg[8], hs[8];
    for (int i = 0; i < N; i += 7) {
        float q[DIM];
        for (int d = 0; d < DIM; d++)
            q[d] = v[i][d] + (d % 2 ? 0.01f : -0.01f);
        cache_vec_normalise(q, DIM);
        size_t ng = cache_index_search(g, s, q, 0.0f, hg, 1);
        size_t ns = cache_index_search(scan, s, q, 0.0f, hs, 1);
        assert_int_equal(ng, 1);
        assert_int_equal(ns, 1);
        int id;
        memcpy(&id, hg[0].key, sizeof id);
        assert_true(id % 3 != 0 || id % 6 == 0); /* never a deleted one */
        agree += memcmp(hg[0].key, hs[0].key, 16) == 0;
        total++;
    }
    print_message("recall@1 %d/%d\n", agree, total);
    assert_true(agree * 100 >= total * 99); /* recall@1 >= 0.99 */
    cache_index_free(g);
    cache_index_free(scan);
}

static void test_snapshot_round_trip(void **unused)
{
    (void)unused;
    char path[] = "/tmp/cache-snap-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char err[256];
    struct cache_store a, b;
    assert_int_equal(cache_store_init(&a, 10, 1 << 20), 0);
    put(&a, 1, 100, 10 * SEC, 60 * SEC);
    put(&a, 2, 200, 10 * SEC, 5 * SEC);
    /* written at monotonic 12 s = wall 1,000,000 ms */
    assert_int_equal(
        cache_snapshot_write(&a, path, 99, 12 * SEC, 1000000, err, sizeof err),
        0);
    /* loaded 2 s of wall time later by a process whose clock reads 500 s */
    uint64_t seed = 0;
    size_t loaded = 0;
    assert_int_equal(cache_store_init(&b, 10, 1 << 20), 0);
    assert_int_equal(cache_snapshot_load(&b, path, &seed, 500 * SEC, 1002000,
                                         3600 * SEC, &loaded, err, sizeof err),
                     0);
    assert_int_equal(seed, 99);
    assert_int_equal(loaded, 2);
    unsigned char k[CACHE_KEY_BYTES];
    key(k, 1);
    struct cache_entry *e = cache_store_get(&b, k, 500 * SEC);
    assert_non_null(e);
    assert_int_equal(e->len, 100);
    assert_memory_equal(e->body, "bbbb", 4);
    cache_entry_unref(e);
    /* entry 1 had 58 s left at the write, 56 s after the 2 s gap */
    assert_true(has(&b, 1, 500 * SEC + 56 * SEC - 1));
    assert_false(has(&b, 1, 500 * SEC + 56 * SEC));
    /* entry 2 had 3 s left: 1 s after loading */
    assert_false(has(&b, 2, 500 * SEC + 1 * SEC));
    cache_store_fini(&b);

    /* loaded after entry 2 expired on the wall clock: skipped */
    assert_int_equal(cache_store_init(&b, 10, 1 << 20), 0);
    assert_int_equal(cache_snapshot_load(&b, path, &seed, SEC, 1004000,
                                         3600 * SEC, &loaded, err, sizeof err),
                     0);
    assert_int_equal(loaded, 1);
    cache_store_fini(&b);

    /* a torn file (cut short) and an altered byte are refused whole */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 40, SEEK_SET);
    fputc('X', f);
    fclose(f);
    assert_int_equal(cache_store_init(&b, 10, 1 << 20), 0);
    assert_int_equal(cache_snapshot_load(&b, path, &seed, SEC, 1002000,
                                         3600 * SEC, &loaded, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "checksum"));
    assert_int_equal(loaded, 0);
    assert_int_equal(truncate(path, 30), 0);
    assert_int_equal(cache_snapshot_load(&b, path, &seed, SEC, 1002000,
                                         3600 * SEC, &loaded, err, sizeof err),
                     -1);
    unlink(path);
    assert_int_equal(cache_snapshot_load(&b, path, &seed, SEC, 1002000,
                                         3600 * SEC, &loaded, err, sizeof err),
                     1); /* no file yet */
    cache_store_fini(&b);
    cache_store_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_lru_entry_cap),
        cmocka_unit_test(test_lru_byte_cap),
        cmocka_unit_test(test_reference_outlives_eviction),
        cmocka_unit_test(test_index_scopes_and_order),
        cmocka_unit_test(test_index_full_and_zero),
        cmocka_unit_test(test_index_graph),
        cmocka_unit_test(test_snapshot_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
