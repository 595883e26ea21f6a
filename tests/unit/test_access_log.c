/* Access-log field capping: a client-chosen string never makes a log line
 * longer than the cap, and a cut never splits a UTF-8 character (jansson
 * refuses invalid UTF-8, which would drop the whole line). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"

static void test_short_fields_are_kept(void **state)
{
    (void)state;
    assert_int_equal(access_log_field_len("gpt-4o", 6), 6);
    assert_int_equal(access_log_field_len("", 0), 0);
    char exact[ACCESS_LOG_FIELD_MAX];
    memset(exact, 'm', sizeof exact);
    assert_int_equal(access_log_field_len(exact, sizeof exact),
                     ACCESS_LOG_FIELD_MAX);
}

static void test_long_fields_are_cut_to_the_cap(void **state)
{
    (void)state;
    static char big[3 << 20]; /* the 3 MB model name of issue 8 */
    memset(big, 'm', sizeof big);
    assert_int_equal(access_log_field_len(big, sizeof big),
                     ACCESS_LOG_FIELD_MAX);
}

static void test_cut_never_splits_a_character(void **state)
{
    (void)state;
    /* "é" is 2 bytes: at odd offsets the cap falls inside one. */
    char s[ACCESS_LOG_FIELD_MAX + 8];
    memset(s, 'a', 1);
    for (size_t i = 1; i + 1 < sizeof s; i += 2) {
        s[i] = (char)0xc3;
        s[i + 1] = (char)0xa9;
    }
    size_t n = access_log_field_len(s, sizeof s - 1);
    assert_true(n <= ACCESS_LOG_FIELD_MAX);
    assert_int_equal(n, ACCESS_LOG_FIELD_MAX - 1); /* before the split é */
    assert_true(((unsigned char)s[n] & 0xc0) != 0x80);

    /* A 4-byte character straddling the cap is dropped whole. */
    char t[ACCESS_LOG_FIELD_MAX + 4];
    memset(t, 'b', sizeof t);
    memcpy(t + ACCESS_LOG_FIELD_MAX - 2, "\xf0\x9f\x98\x80", 4);
    assert_int_equal(access_log_field_len(t, sizeof t),
                     ACCESS_LOG_FIELD_MAX - 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_fields_are_kept),
        cmocka_unit_test(test_long_fields_are_cut_to_the_cap),
        cmocka_unit_test(test_cut_never_splits_a_character),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
