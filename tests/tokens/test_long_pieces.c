/* The long-piece machinery against simple references: the merge's
 * candidate queue against sorting, the long-piece merge (token starts and
 * ids) against tiktoken's quadratic loop on the worst-case shapes, whole
 * 1 MB-style inputs against the reference path, the rank filter against
 * the table, and U+FFFD in the hand-written pre-tokeniser against PCRE2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tokens/merge_queue.h"
#include "tokens/tokens_internal.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

/* A plain binary min-heap: the reference for the larger queue test. */
static void ref_push(uint64_t *h, size_t *n, uint64_t key)
{
    size_t i = (*n)++;
    for (; i > 0 && h[(i - 1) / 2] > key; i = (i - 1) / 2)
        h[i] = h[(i - 1) / 2];
    h[i] = key;
}

static uint64_t ref_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && h[c + 1] < h[c])
            c++;
        if (x <= h[c])
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
    return top;
}

/* Inserts key into the ascending array a of *n keys. */
static void insert_sorted(uint64_t *a, size_t *n, uint64_t key)
{
    size_t i = *n;
    for (; i > 0 && a[i - 1] > key; i--)
        a[i] = a[i - 1];
    a[i] = key;
    ++*n;
}

/* Pushes and pops interleaved, in the shapes merging makes (one rising
 * sequence, several interleaved ones, keys below the last popped, random
 * keys, duplicates): every pop is the least key pushed and not yet popped,
 * checked against a sorted array of what is inside. */
static void test_queue_pops_in_order(void **state)
{
    (void)state;
    enum { N = 6000 };
    uint64_t *inside = malloc(sizeof(*inside) * N);
    for (int shape = 0; shape < 5; shape++) {
        /* Half the shapes start in a caller's buffer, the others in the
         * queue's own room: both must grow past it. */
        struct tok_mq q;
        uint64_t buf[8];
        assert_true(tok_mq_init(&q, 8, shape % 2 ? buf : NULL, 8));
        size_t count = 0, pushed = 0;
        uint64_t seq[7] = {0};
        while (pushed < N || count > 0) {
            bool push = pushed < N && (count == 0 || next_rand() % 3 != 0);
            if (push) {
                uint64_t key;
                if (shape == 0) /* one rising sequence */
                    key = pushed;
                else if (shape == 1) /* 3 to 7 interleaved rising ones */
                    key = (seq[pushed % (3 + pushed / 1500)] +=
                           1 + next_rand() % 5) |
                          (uint64_t)(pushed % 7) << 40;
                else if (shape == 2) /* random */
                    key = (uint64_t)next_rand() << 32 | next_rand();
                else if (shape == 3) /* few distinct: duplicates */
                    key = next_rand() % 16;
                else /* falling */
                    key = N - pushed;
                tok_mq_push(&q, key);
                assert_false(q.failed);
                insert_sorted(inside, &count, key);
                pushed++;
            } else {
                uint64_t key;
                assert_true(tok_mq_pop(&q, &key));
                assert_int_equal(key, inside[0]);
                memmove(inside, inside + 1, sizeof(*inside) * --count);
            }
        }
        uint64_t key;
        assert_false(tok_mq_pop(&q, &key));
        tok_mq_free(&q);
    }
    free(inside);
}

/* Fills buf with whole copies of unit (up to n bytes); their length. */
static size_t repeat(void *buf, size_t n, const char *unit)
{
    size_t k = strlen(unit), len = n - n % k;
    for (size_t i = 0; i < len; i += k)
        memcpy((char *)buf + i, unit, k);
    return len;
}

/* The rank buckets in front of the queue: pops in order whatever the
 * pushes (keys in buckets not yet opened, in the open one, below it;
 * buckets that fill in order, in order of start only (one counting pass)
 * and ones that need sorting, small and large enough for both radix
 * widths), against a binary heap. */
static void test_rank_buckets_pop_in_order(void **state)
{
    (void)state;
    enum { N = 40000 };
    uint64_t *inside = malloc(sizeof(*inside) * N);
    for (int shape = 0; shape < 5; shape++) {
        struct tok_rq q;
        assert_true(tok_rq_init(&q, true, 17, 8, NULL, 0));
        size_t count = 0, pushed = 0;
        while (pushed < N || count > 0) {
            /* First a burst (fills buckets), then pushes and pops. */
            bool push =
                pushed < N && (pushed < N / 2 || count == 0 || next_rand() % 2);
            if (push) {
                uint32_t rank, pos = next_rand() % (1u << 17);
                if (shape == 0) /* random ranks: buckets need sorting */
                    rank = next_rand() % (TOK_RQ_BUCKETS << TOK_RQ_SHIFT);
                else if (shape == 1) /* one rank, rising starts */
                    rank = 3000, pos = (uint32_t)pushed;
                else if (shape == 2) /* two buckets, big */
                    rank = next_rand() % 2 ? 100 : 70000;
                else if (shape == 3) /* random ranks, rising starts */
                    rank = next_rand() % (4 << TOK_RQ_SHIFT),
                    pos = (uint32_t)pushed;
                else /* few ranks, some below what was popped */
                    rank = next_rand() % 8 * 4000;
                uint64_t key = (uint64_t)rank << 32 | pos;
                tok_rq_push(&q, key);
                assert_false(q.mq.failed);
                ref_push(inside, &count, key);
                pushed++;
            } else {
                uint64_t key;
                assert_true(tok_rq_pop(&q, &key));
                assert_int_equal(key, ref_pop(inside, &count));
            }
        }
        uint64_t key;
        assert_false(tok_rq_pop(&q, &key));
        tok_rq_free(&q);
    }
    free(inside);
}

static const struct tok_encoding *enc(enum tok_encoding_id id)
{
    const struct tok_encoding *e = tok_encoding_get(id);
    assert_non_null(e);
    return e;
}

/* A merge's tokens (starts sa, ids, na of them) are the loop's (starts
 * sb, nb of them), and each id is its bytes' rank. */
static void assert_same_tokens(const struct tok_rank_table *t,
                               const unsigned char *p, size_t len,
                               const uint32_t *sa, const uint32_t *ids,
                               size_t na, const uint32_t *sb, size_t nb)
{
    assert_int_equal(na, nb);
    assert_memory_equal(sa, sb, na * sizeof sa[0]);
    for (size_t i = 0; i < na; i++) {
        size_t end = i + 1 < na ? sa[i + 1] : len;
        assert_int_equal(ids[i], tok_rank_find(t, p + sa[i], end - sa[i]));
    }
}

/* The long-piece merge gives tiktoken's loop's tokens and the right ids
 * on the worst-case shapes: runs of one character (letters, spaces,
 * newlines, digits, punctuation, multi-byte characters), short repeated
 * patterns, random letters and random bytes. */
static void test_long_merge_matches_loop(void **state)
{
    (void)state;
    static const char *const units[] = {"a",
                                        " ",
                                        "\n",
                                        "1",
                                        "!",
                                        "\xc3\xa9",
                                        "\xe4\xb8\x80",
                                        "ab",
                                        "abc",
                                        "a b",
                                        "\xf0\x9f\x98\x80",
                                        "\xef\xbf\xbd",
                                        "\t ",
                                        "aab"};
    size_t n = 2500;
    unsigned char *p = malloc(n + 8);
    uint32_t *sa = malloc(sizeof(*sa) * n), *sb = malloc(sizeof(*sb) * n),
             *ids = malloc(sizeof(*ids) * n);
    struct tok_pair_cache shared[TOK_ENCODING_COUNT];
    for (int id = 0; id < TOK_ENCODING_COUNT; id++)
        assert_true(tok_pair_cache_init(&shared[id], &enc(id)->ranks, 4));
    for (size_t u = 0; u < sizeof units / sizeof units[0] + 3; u++) {
        size_t len = n;
        if (u < sizeof units / sizeof units[0]) {
            len = repeat(p, n, units[u]);
        } else {
            size_t kind = u - sizeof units / sizeof units[0];
            for (size_t i = 0; i < n; i++) { /* letters, bytes, two letters */
                uint32_t x = next_rand();
                p[i] = (unsigned char)(kind == 0   ? 'a' + x % 26
                                       : kind == 1 ? x
                                                   : (uint32_t) "xy"[x % 2]);
            }
        }
        for (int id = 0; id < TOK_ENCODING_COUNT; id++) {
            const struct tok_rank_table *t = &enc(id)->ranks;
            size_t nb = tok_bpe_merge_scan(t, p, len, sb);
            /* Through the queue alone, then through rank buckets, then
             * with a tiny pair cache shared by all pieces (evictions). */
            for (int way = 0; way < 3; way++) {
                size_t na =
                    tok_bpe_merge_long(t, p, len, sa, ids, way ? 2 : SIZE_MAX,
                                       way == 2 ? &shared[id] : NULL);
                assert_same_tokens(t, p, len, sa, ids, na, sb, nb);
            }
        }
    }
    free(p);
    free(sa);
    free(sb);
    free(ids);
    for (int id = 0; id < TOK_ENCODING_COUNT; id++)
        tok_pair_cache_free(&shared[id]);
}

/* The flat merge makes tiktoken's loop's tokens (starts and ids) on every
 * length up to its threshold, over alphabets that merge in different
 * ways: bytes, letters, two letters, CJK, U+FFFD with punctuation. */
static void test_flat_merge_matches_loop(void **state)
{
    (void)state;
    static const char *const atoms[] = {"a",
                                        "b",
                                        "e",
                                        "t",
                                        "h",
                                        " ",
                                        "\xe4\xb8\x80",
                                        "\xe7\x9a\x84",
                                        "\xef\xbf\xbd",
                                        "!",
                                        "\xc3\xa9",
                                        "\xf0\x9f\x98\x80"};
    unsigned char p[TOK_BPE_FLAT_MAX + 4];
    uint32_t sa[TOK_BPE_FLAT_MAX], sb[TOK_BPE_FLAT_MAX], ids[TOK_BPE_FLAT_MAX];
    for (int round = 0; round < 6000; round++) {
        size_t target = 2 + next_rand() % (TOK_BPE_FLAT_MAX - 1), len = 0;
        int kind = round % 4;
        while (len < target) {
            uint32_t x = next_rand();
            if (kind == 0) { /* random bytes */
                p[len++] = (unsigned char)x;
                continue;
            }
            const char *a = kind == 1   ? atoms[x % 5]
                            : kind == 2 ? atoms[x % 2]
                                        : atoms[x % 12];
            size_t k = strlen(a);
            if (len + k > target)
                break;
            memcpy(p + len, a, k);
            len += k;
        }
        if (len < 2)
            continue;
        for (int id = 0; id < TOK_ENCODING_COUNT; id++) {
            const struct tok_rank_table *t = &enc(id)->ranks;
            size_t nb = tok_bpe_merge_scan(t, p, len, sb);
            size_t na = tok_bpe_merge_flat(t, p, len, sa, ids);
            assert_same_tokens(t, p, len, sa, ids, na, sb, nb);
        }
    }
}

/* Whole texts in the shapes of the worst-case bench (cut to a size the
 * reference's quadratic loop finishes quickly) and of recurring
 * multi-token pieces: the production path (ids and count alone) gives
 * the reference's ids, and also with the long-piece merge for every
 * piece. */
static void test_worst_shapes_match_reference(void **state)
{
    (void)state;
    static const char *const units[] = {"a", " ", "1", "ab", "a b", "\n",
                                        "\xe4\xb8\x80", "\xf0\x9f\x98\x80",
                                        "\xef\xbf\xbd!",
                                        /* pieces that recur (the memo) */
                                        " zqxjv kwyzp zqxjv. Qzx\xc3\xa9"};
    size_t n = 4000;
    char *s = malloc(n);
    uint32_t *a = malloc(sizeof(*a) * 3 * n), *b = malloc(sizeof(*b) * 3 * n);
    const struct tok_encode_opts fast = {true, TOK_BPE_FLAT_MAX + 1, true,
                                         true},
                                 all_long = {true, 2, false, true},
                                 ref = {false, SIZE_MAX, false, false};
    for (size_t u = 0; u < sizeof units / sizeof units[0] + 3; u++) {
        size_t len = n, kind = u - sizeof units / sizeof units[0];
        if (u < sizeof units / sizeof units[0])
            len = repeat(s, n, units[u]);
        else /* random bytes; random letters (one piece, cut where two
              * letters are in no token); letters rich in such pairs */
            for (size_t i = 0; i < n; i++) {
                uint32_t x = next_rand();
                s[i] = (char)(kind == 0   ? x
                              : kind == 1 ? 'a' + x % 26
                                          : (uint32_t) "qgjkzwxy"[x % 8]);
            }
        for (int id = 0; id < TOK_ENCODING_COUNT; id++) {
            size_t nb = tok_encode_with(enc(id), s, len, b, 3 * n, &ref);
            size_t na = tok_encode_with(enc(id), s, len, a, 3 * n, &fast);
            assert_int_equal(na, nb);
            assert_memory_equal(a, b, na * sizeof a[0]);
            na = tok_encode_with(enc(id), s, len, a, 3 * n, &all_long);
            assert_int_equal(na, nb);
            assert_memory_equal(a, b, na * sizeof a[0]);
            assert_int_equal(tok_count(enc(id), s, len), nb);
            /* A short output buffer gets the first ids, the full count. */
            na = tok_encode_with(enc(id), s, len, a, nb / 2, &all_long);
            assert_int_equal(na, nb);
            assert_memory_equal(a, b, nb / 2 * sizeof a[0]);
            na = tok_encode_with(enc(id), s, len, a, nb / 2, &fast);
            assert_int_equal(na, nb);
            assert_memory_equal(a, b, nb / 2 * sizeof a[0]);
        }
    }
    free(s);
    free(a);
    free(b);
}

/* The filter in front of the rank table never hides a token: every
 * token's bytes are found with its own rank; and the table of bytes that
 * stand together in tokens has each of its pairs. */
static void test_filter_keeps_every_token(void **state)
{
    (void)state;
    for (int id = 0; id < TOK_ENCODING_COUNT; id++) {
        const struct tok_rank_table *t = &enc(id)->ranks;
        for (uint32_t r = 0; r < t->n; r++) {
            size_t len;
            const unsigned char *p = tok_rank_bytes(t, r, &len);
            assert_int_equal(tok_rank_find(t, p, len), r);
            /* Every two adjacent bytes of a token are marked as such (a
             * long piece is never cut between them). */
            for (size_t j = 0; j + 1 < len; j++)
                assert_true(tok_inner_pair(t, p[j], p[j + 1]));
        }
    }
}

/* U+FFFD (what invalid UTF-8 becomes) is taken by the hand-written
 * pre-tokeniser as punctuation: the same pieces as PCRE2 wherever it
 * stands, beside letters, marks, digits, spaces, newlines, apostrophes
 * and other non-ASCII characters. */
static void test_fffd_pieces_match_pcre2(void **state)
{
    (void)state;
    static const char *const atoms[] = {"\xef\xbf\xbd",
                                        "\xef\xbf\xbd",
                                        "\xef\xbf\xbd",
                                        "a",
                                        "Z",
                                        "'",
                                        "s",
                                        " ",
                                        "  ",
                                        "\n",
                                        "\r\n",
                                        "1",
                                        "!",
                                        "/",
                                        "\xcc\x81",
                                        "\xc3\xa9",
                                        "\xc2\xa0",
                                        "\xef\xbf\xbc",
                                        "\xef\xbc\x81",
                                        "\t",
                                        "ll",
                                        "\xc5\xbf"};
    size_t na = sizeof atoms / sizeof atoms[0];
    char text[400];
    uint32_t a[400], b[400];
    const struct tok_encode_opts fast = {true, SIZE_MAX, false, false},
                                 ref = {false, SIZE_MAX, false, false};
    for (int round = 0; round < 20000; round++) {
        size_t len = 0, parts = 1 + next_rand() % 16;
        for (size_t i = 0; i < parts; i++) {
            const char *s = atoms[next_rand() % na];
            memcpy(text + len, s, strlen(s));
            len += strlen(s);
        }
        for (int id = 0; id < TOK_ENCODING_COUNT; id++) {
            size_t x = tok_encode_with(enc(id), text, len, a, 400, &fast);
            size_t y = tok_encode_with(enc(id), text, len, b, 400, &ref);
            if (x != y || memcmp(a, b, x * sizeof a[0]) != 0)
                fail_msg("%s: %zu vs %zu tokens for \"%.*s\"",
                         tok_encoding_name(id), x, y, (int)len, text);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_pops_in_order),
        cmocka_unit_test(test_rank_buckets_pop_in_order),
        cmocka_unit_test(test_long_merge_matches_loop),
        cmocka_unit_test(test_flat_merge_matches_loop),
        cmocka_unit_test(test_worst_shapes_match_reference),
        cmocka_unit_test(test_filter_keeps_every_token),
        cmocka_unit_test(test_fffd_pieces_match_pcre2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
