/* core/upstream/content_decode.c: bodies an upstream compressed although
 * asked for identity are decoded exactly, however the bytes are split, and
 * never past the cap (issue 8 item 12). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "upstream/content_decode.h"

struct sink {
    char *buf;
    size_t len, cap, calls;
};

static void collect(void *arg, const char *data, size_t len)
{
    struct sink *s = arg;
    assert_true(len > 0 && len <= 16 * 1024);
    if (s->len + len > s->cap) {
        s->cap = (s->len + len) * 2;
        s->buf = realloc(s->buf, s->cap);
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    s->calls++;
}

/* window_bits: 15+16 gzip, 15 zlib, -15 raw deflate. */
static unsigned char *compress_with(const char *in, size_t n, int window_bits,
                                    size_t *out_len)
{
    z_stream z = {0};
    assert_int_equal(
        deflateInit2(&z, 9, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY),
        Z_OK);
    size_t cap = deflateBound(&z, n) + 64;
    unsigned char *out = malloc(cap);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static char *sample(size_t n)
{
    char *s = malloc(n);
    static const char words[] = "data: {\"choices\":[{\"delta\":{\"content\":"
                                "\"hello world\"}}]}\n\n";
    for (size_t i = 0; i < n; i++)
        s[i] = words[(i * 7 + i / 13) % (sizeof words - 1)];
    return s;
}

static void roundtrip(int window_bits, enum content_coding coding, size_t piece)
{
    size_t n = 300 * 1000, clen;
    char *plain = sample(n);
    unsigned char *c = compress_with(plain, n, window_bits, &clen);
    struct content_decoder *d = content_decoder_new(coding, 1 << 20);
    assert_non_null(d);
    struct sink s = {0};
    for (size_t at = 0; at < clen; at += piece) {
        size_t k = clen - at < piece ? clen - at : piece;
        assert_int_equal(
            content_decoder_feed(d, (const char *)c + at, k, collect, &s),
            DECODE_OK);
        if (at + k < clen)
            assert_false(content_decoder_complete(d));
    }
    assert_true(content_decoder_complete(d));
    assert_int_equal(s.len, n);
    assert_memory_equal(s.buf, plain, n);
    content_decoder_free(d);
    free(s.buf);
    free(c);
    free(plain);
}

static void test_gzip_whole_and_split(void **state)
{
    (void)state;
    roundtrip(15 + 16, CODING_GZIP, 1 << 30);
    roundtrip(15 + 16, CODING_GZIP, 1);
    roundtrip(15 + 16, CODING_GZIP, 777);
}

static void test_deflate_zlib_and_raw(void **state)
{
    (void)state;
    roundtrip(15, CODING_DEFLATE, 1 << 30);
    roundtrip(15, CODING_DEFLATE, 3);
    roundtrip(-15, CODING_DEFLATE, 1 << 30);
    roundtrip(-15, CODING_DEFLATE, 5);
}

static void test_bomb_is_capped(void **state)
{
    (void)state;
    size_t n = 64u << 20, clen; /* 64 MiB of zeros compress to ~64 KiB */
    char *zeros = calloc(1, n);
    unsigned char *c = compress_with(zeros, n, 15 + 16, &clen);
    free(zeros);
    assert_true(clen < 200 * 1024);
    struct content_decoder *d = content_decoder_new(CODING_GZIP, 1 << 20);
    struct sink s = {0};
    assert_int_equal(
        content_decoder_feed(d, (const char *)c, clen, collect, &s),
        DECODE_TOO_LARGE);
    assert_true(s.len <= 1 << 20);
    /* The error sticks. */
    assert_int_equal(content_decoder_feed(d, "x", 1, collect, &s),
                     DECODE_TOO_LARGE);
    content_decoder_free(d);
    free(s.buf);
    free(c);
}

static void test_corrupt_and_cut(void **state)
{
    (void)state;
    struct sink s = {0};
    struct content_decoder *d = content_decoder_new(CODING_GZIP, 1 << 20);
    assert_int_equal(
        content_decoder_feed(d, "not gzip at all", 15, collect, &s),
        DECODE_CORRUPT);
    content_decoder_free(d);

    size_t clen;
    char *plain = sample(5000);
    unsigned char *c = compress_with(plain, 5000, 15 + 16, &clen);
    d = content_decoder_new(CODING_GZIP, 1 << 20);
    assert_int_equal(
        content_decoder_feed(d, (const char *)c, clen / 2, collect, &s),
        DECODE_OK);
    assert_false(content_decoder_complete(d)); /* a cut body is not done */
    content_decoder_free(d);

    /* Bytes after the end of the compressed stream are refused. */
    unsigned char *tail = malloc(clen + 4);
    memcpy(tail, c, clen);
    memcpy(tail + clen, "junk", 4);
    d = content_decoder_new(CODING_GZIP, 1 << 20);
    assert_int_equal(
        content_decoder_feed(d, (const char *)tail, clen + 4, collect, &s),
        DECODE_CORRUPT);
    content_decoder_free(d);
    free(tail);
    free(c);
    free(plain);
    free(s.buf);
}

static void test_coding_names(void **state)
{
    (void)state;
    assert_int_equal(content_coding_parse("", 0), CODING_IDENTITY);
    assert_int_equal(content_coding_parse(" identity ", 10), CODING_IDENTITY);
    assert_int_equal(content_coding_parse("GZIP", 4), CODING_GZIP);
    assert_int_equal(content_coding_parse("x-gzip", 6), CODING_GZIP);
    assert_int_equal(content_coding_parse("deflate", 7), CODING_DEFLATE);
    assert_int_equal(content_coding_parse("br", 2), CODING_UNSUPPORTED);
    assert_int_equal(content_coding_parse("gzip, br", 8), CODING_UNSUPPORTED);
    assert_null(content_decoder_new(CODING_UNSUPPORTED, 10));
    assert_null(content_decoder_new(CODING_IDENTITY, 10));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gzip_whole_and_split),
        cmocka_unit_test(test_deflate_zlib_and_raw),
        cmocka_unit_test(test_bomb_is_capped),
        cmocka_unit_test(test_corrupt_and_cut),
        cmocka_unit_test(test_coding_names),
    };
    return cmocka_run_group_tests_name("content_decode", tests, NULL, NULL);
}
