/* Retry backoff: bounds and full-jitter spread with a seeded source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "upstream/backoff.h"

static void test_ceiling_doubles_then_caps(void **state)
{
    (void)state;
    assert_int_equal(backoff_ceiling_ms(1, 100, 2000), 100);
    assert_int_equal(backoff_ceiling_ms(2, 100, 2000), 200);
    assert_int_equal(backoff_ceiling_ms(3, 100, 2000), 400);
    assert_int_equal(backoff_ceiling_ms(5, 100, 2000), 1600);
    assert_int_equal(backoff_ceiling_ms(6, 100, 2000), 2000);
    assert_int_equal(backoff_ceiling_ms(60, 100, 2000), 2000); /* no overflow */
    assert_int_equal(backoff_ceiling_ms(1, 0, 2000), 0);
}

static void test_delays_stay_within_bounds(void **state)
{
    uint64_t rng = 42;
    (void)state;
    for (unsigned retry = 1; retry <= 8; retry++) {
        uint64_t ceiling = backoff_ceiling_ms(retry, 100, 2000);
        for (int i = 0; i < 10000; i++) {
            uint64_t d = backoff_delay_ms(retry, 100, 2000, &rng);
            assert_true(d <= ceiling);
        }
    }
    assert_int_equal(backoff_delay_ms(3, 0, 0, &rng), 0);
}

/* Full jitter spreads retries over the whole [0, ceiling] range, so a herd
 * of clients does not retry in lockstep: check mean, extremes and that
 * every tenth of the range is used. */
static void test_full_jitter_spread(void **state)
{
    uint64_t rng = 7;
    unsigned buckets[10] = {0};
    double sum = 0;
    uint64_t lo = UINT64_MAX, hi = 0;
    const unsigned n = 20000;
    (void)state;
    for (unsigned i = 0; i < n; i++) {
        uint64_t d = backoff_delay_ms(4, 100, 2000, &rng); /* ceiling 800 */
        sum += (double)d;
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
        buckets[d * 10 / 801]++;
    }
    double mean = sum / n;
    assert_true(mean > 380 && mean < 420); /* ~400 = ceiling / 2 */
    assert_true(lo < 10 && hi > 790);
    for (int b = 0; b < 10; b++)
        assert_true(buckets[b] >
                    n / 10 * 8 / 10); /* each tenth >= 80% of fair */
}

static void test_seed_makes_it_repeatable(void **state)
{
    uint64_t a = 99, b = 99;
    (void)state;
    for (int i = 0; i < 100; i++)
        assert_int_equal(backoff_delay_ms(3, 50, 1000, &a),
                         backoff_delay_ms(3, 50, 1000, &b));
}

/* Retry-After on the same upstream stretches the wait; a wait that would
 * end at or past the deadline means no retry (the answer goes out now). */
static void test_wait_honours_retry_after_within_deadline(void **state)
{
    uint64_t wait = 12345;
    (void)state;
    assert_true(backoff_wait_ms(80, 0, 0, 10000, &wait));
    assert_int_equal(wait, 80);
    assert_true(backoff_wait_ms(80, 1000, 0, 10000, &wait));
    assert_int_equal(wait, 1000); /* the provider asked for longer */
    assert_true(backoff_wait_ms(500, 100, 0, 10000, &wait));
    assert_int_equal(wait, 500); /* the backoff is longer still */

    wait = 7;
    assert_false(backoff_wait_ms(80, 30000, 0, 10000, &wait));
    assert_false(backoff_wait_ms(80, 6000, 4000, 10000, &wait)); /* ends at */
    assert_false(backoff_wait_ms(80, 7000, 4000, 10000, &wait));
    assert_false(backoff_wait_ms(0, 0, 10000, 10000, &wait)); /* spent */
    assert_false(backoff_wait_ms(0, 0, 12000, 10000, &wait)); /* no wrap */
    assert_int_equal(wait, 7); /* untouched when refused */
    assert_true(backoff_wait_ms(80, 5999, 4000, 10000, &wait));
    assert_int_equal(wait, 5999);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_doubles_then_caps),
        cmocka_unit_test(test_delays_stay_within_bounds),
        cmocka_unit_test(test_full_jitter_spread),
        cmocka_unit_test(test_seed_makes_it_repeatable),
        cmocka_unit_test(test_wait_honours_retry_after_within_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
