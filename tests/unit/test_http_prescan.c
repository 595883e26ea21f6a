/* Header pre-scan and request framing: every smuggling shape we know of is
 * refused with the right status, and ordinary requests get through intact.
 * The framing half drives http_parse_feed() the way a connection does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/http_parse.h"
#include "http/http_prescan.h"

#define MAX_HEADER_BYTES 4096
#define MAX_HEADERS 10

struct prescan_case {
    const char *name;
    const char *block; /* may contain \0 when len is given */
    size_t len;        /* 0: strlen(block) */
    int status;        /* 0: accepted */
};

#define H "Host: a\r\n"
/* For literals with an embedded NUL. */
#define WITH_LEN(lit) lit, sizeof(lit) - 1

static const struct prescan_case cases[] = {
    /* accepted */
    {"simple GET", "GET / HTTP/1.1\r\n" H "\r\n", 0, 0},
    {"POST with length",
     "POST /v1/chat/completions HTTP/1.1\r\n" H "Content-Length: 12\r\n\r\n", 0,
     0},
    {"chunked POST",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n", 0, 0},
    {"chunked is case-insensitive",
     "POST / HTTP/1.1\r\n" H "transfer-encoding: Chunked\r\n\r\n", 0, 0},
    {"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 0, 0},
    {"HTTP/1.0 with length", "POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n", 0,
     0},
    {"leading CRLF", "\r\nGET / HTTP/1.1\r\n" H "\r\n", 0, 0},
    {"query string", "GET /a/b?x=1&y=%20 HTTP/1.1\r\n" H "\r\n", 0, 0},
    {"empty value", "GET / HTTP/1.1\r\n" H "X-Empty:\r\n\r\n", 0, 0},
    {"tab and obs-text in value",
     "GET / HTTP/1.1\r\n" H "X-A: a\tb \xc3\xa9\r\n\r\n", 0, 0},
    {"OWS around Content-Length",
     "POST / HTTP/1.1\r\n" H "Content-Length: \t 5 \r\n\r\n", 0, 0},
    {"headers up to the cap",
     "GET / HTTP/1.1\r\n" H "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n"
     "F: 6\r\nG: 7\r\nI: 8\r\nJ: 9\r\n\r\n",
     0, 0},

    /* bytes that are never allowed */
    {"NUL in header value", WITH_LEN("GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n"),
     400},
    {"NUL in request line", WITH_LEN("GET /\0 HTTP/1.1\r\n" H "\r\n"), 400},
    {"bare CR in value (CVE-2023-30589)",
     "GET / HTTP/1.1\r\n" H "X: a\rContent-Length: 5\r\n\r\n", 0, 400},
    {"bare CR ending a header", "GET / HTTP/1.1\r\n" H "X: a\r\r\n\r\n", 0,
     400},
    {"bare LF ending a header", "GET / HTTP/1.1\r\n" H "X: a\nY: b\r\n\r\n", 0,
     400},
    {"bare LF ending the request line (llhttp#877)",
     "GET / HTTP/1.1\n" H "\r\n", 0, 400},
    {"DEL in value", "GET / HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n", 0, 400},
    {"control char in value", "GET / HTTP/1.1\r\n" H "X: a\x01\r\n\r\n", 0,
     400},

    /* header line shapes */
    {"obs-fold (CVE-2024-27982)",
     "GET / HTTP/1.1\r\n" H "X: a\r\n Content-Length: 5\r\n\r\n", 0, 400},
    {"obs-fold with tab", "GET / HTTP/1.1\r\n" H "X: a\r\n\tb\r\n\r\n", 0, 400},
    {"control char in name", "GET / HTTP/1.1\r\n" H "X\x01Y: z\r\n\r\n", 0,
     400},
    {"separator in name", "GET / HTTP/1.1\r\n" H "X(Y): z\r\n\r\n", 0, 400},
    {"space inside name", "GET / HTTP/1.1\r\n" H "X Y: z\r\n\r\n", 0, 400},
    {"empty name", "GET / HTTP/1.1\r\n" H ": z\r\n\r\n", 0, 400},
    {"missing colon", "GET / HTTP/1.1\r\n" H "NoColon\r\n\r\n", 0, 400},
    {"space before colon", "POST / HTTP/1.1\r\n" H "Content-Length : 5\r\n\r\n",
     0, 400},
    {"tab before colon",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding\t: chunked\r\n\r\n", 0, 400},

    /* message framing */
    {"Content-Length with Transfer-Encoding",
     "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     0, 400},
    {"Transfer-Encoding before Content-Length",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n"
     "Content-Length: 5\r\n\r\n",
     0, 400},
    {"duplicate Content-Length, equal values",
     "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
     0, 400},
    {"duplicate Content-Length, different values",
     "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
     0, 400},
    {"Content-Length list",
     "POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n", 0, 400},
    {"Content-Length sign",
     "POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", 0, 400},
    {"Content-Length negative",
     "POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", 0, 400},
    {"Content-Length hex",
     "POST / HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\n", 0, 400},
    {"Content-Length empty", "POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n",
     0, 400},
    {"Content-Length huge",
     "POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999\r\n\r\n", 0,
     400},
    {"Transfer-Encoding gzip",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", 0, 400},
    {"Transfer-Encoding gzip, chunked",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", 0,
     400},
    {"Transfer-Encoding chunked twice in one line",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n", 0,
     400},
    {"Transfer-Encoding on two lines",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     0, 400},
    {"Transfer-Encoding with junk",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n", 0, 400},
    {"Transfer-Encoding in HTTP/1.0",
     "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400},
    {"missing Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 0, 400},
    {"duplicate Host", "GET / HTTP/1.1\r\n" H "Host: b\r\n\r\n", 0, 400},

    /* request line */
    {"absolute-form target", "GET http://a/ HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"asterisk target", "OPTIONS * HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"CONNECT", "CONNECT a:443 HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"CONNECT with a path", "CONNECT / HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"two spaces after method", "GET  / HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"tab in target", "GET /a\tb HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"fragment in target", "GET /a#b HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"non-ASCII target", "GET /\xc3\xa9 HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n" H "\r\n", 0, 400},
    {"HTTP/1.2", "GET / HTTP/1.2\r\n" H "\r\n", 0, 400},
    {"lowercase version", "GET / http/1.1\r\n" H "\r\n", 0, 400},
    {"trailing space after version", "GET / HTTP/1.1 \r\n" H "\r\n", 0, 400},
    {"HTTP/0.9 style", "GET /\r\n\r\n", 0, 400},
    {"separator in method", "G(T / HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"missing method", " / HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"only CRLFs", "\r\n\r\n", 0, 400},

    /* the block itself */
    {"no terminating blank line", "GET / HTTP/1.1\r\n" H, 0, 400},
    {"bytes after the blank line", "GET / HTTP/1.1\r\n" H "\r\nX", 0, 400},
    {"too many headers",
     "GET / HTTP/1.1\r\n" H "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n"
     "F: 6\r\nG: 7\r\nI: 8\r\nJ: 9\r\nK: 10\r\n\r\n",
     0, 431},
};

static void test_prescan_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct prescan_case *tc = &cases[i];
        size_t len = tc->len ? tc->len : strlen(tc->block);
        struct http_prescan_result r =
            http_prescan(tc->block, len, MAX_HEADER_BYTES, MAX_HEADERS);
        int got = r.ok ? 0 : r.status;
        if (got != tc->status || (r.ok && r.reason) || (!r.ok && !r.reason)) {
            print_error("case '%s': expected %d, got %d (%s)\n", tc->name,
                        tc->status, got, r.reason ? r.reason : "ok");
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_prescan_facts(void **state)
{
    (void)state;
    const char *b = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0042\r\n"
                    "Expect: 100-continue\r\n\r\n";
    struct http_prescan_result r = http_prescan(b, strlen(b), 4096, 10);
    assert_true(r.ok);
    assert_int_equal(r.content_length, 42);
    assert_false(r.chunked);
    assert_true(r.expect_continue);
    assert_int_equal(r.header_count, 3);
    assert_int_equal(r.http_minor, 1);

    b = "POST / HTTP/1.0\r\n\r\n";
    r = http_prescan(b, strlen(b), 4096, 10);
    assert_true(r.ok);
    assert_int_equal(r.content_length, -1);
    assert_int_equal(r.http_minor, 0);

    b = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    r = http_prescan(b, strlen(b), 4096, 10);
    assert_true(r.ok);
    assert_true(r.chunked);
}

static void test_prescan_byte_cap(void **state)
{
    (void)state;
    const char *b = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t len = strlen(b);
    assert_true(http_prescan(b, len, len, 10).ok); /* exactly the cap */
    struct http_prescan_result r = http_prescan(b, len, len - 1, 10);
    assert_false(r.ok);
    assert_int_equal(r.status, 431);
}

/* ---- framing: http_parse_feed ---- */

static const struct http_limits test_limits = {
    .max_header_bytes = 1024,
    .max_headers = 20,
    .max_body_bytes = 64,
};

/* Feeds the whole input in pieces of `step` bytes (0: all at once) until
 * the parser stops asking for more; returns the final status. */
static enum http_parse_status feed_all(struct http_request_parser *p,
                                       const char *in, size_t len, size_t step,
                                       size_t *consumed_total)
{
    size_t off = 0;
    enum http_parse_status st = HTTP_PARSE_NEED_MORE;
    while (off < len) {
        size_t n = step && step < len - off ? step : len - off;
        size_t used = 0;
        st = http_parse_feed(p, in + off, n, &used);
        assert_true(used <= n);
        off += used;
        if (st == HTTP_PARSE_DONE || st == HTTP_PARSE_ERROR)
            break;
        if (st == HTTP_PARSE_NEED_MORE && used < n)
            fail_msg("parser wants more but did not take all it was given");
    }
    if (consumed_total)
        *consumed_total = off;
    return st;
}

static int parse_status(const char *in, size_t step)
{
    struct http_request_parser p;
    http_parse_init(&p, &test_limits);
    enum http_parse_status st = feed_all(&p, in, strlen(in), step, NULL);
    int result = st == HTTP_PARSE_DONE    ? 200
                 : st == HTTP_PARSE_ERROR ? p.error_status
                                          : 0;
    http_parse_free(&p);
    return result;
}

static void test_parse_fields(void **state)
{
    (void)state;
    struct http_request_parser p;
    http_parse_init(&p, &test_limits);
    const char *in = "POST /v1/chat?model=x&y=2 HTTP/1.1\r\n"
                     "Host: example\r\nX-Trim:   padded value \t\r\n"
                     "X-Empty:\r\nContent-Length: 5\r\n\r\nhello";
    size_t used = 0;
    assert_int_equal(feed_all(&p, in, strlen(in), 0, &used), HTTP_PARSE_DONE);
    assert_int_equal(used, strlen(in));
    assert_string_equal(p.method, "POST");
    assert_string_equal(p.path, "/v1/chat");
    assert_string_equal(p.query, "model=x&y=2");
    assert_int_equal(p.header_count, 4);
    assert_string_equal(p.headers[0].name, "Host");
    assert_string_equal(p.headers[0].value, "example");
    assert_string_equal(p.headers[1].value, "padded value");
    assert_int_equal(p.headers[1].value_len, strlen("padded value"));
    assert_string_equal(p.headers[2].name, "X-Empty");
    assert_string_equal(p.headers[2].value, "");
    assert_string_equal(p.headers[3].name, "Content-Length");
    assert_string_equal(p.headers[3].value, "5");
    assert_int_equal(p.body_len, 5);
    assert_string_equal(p.body, "hello");
    assert_true(p.keep_alive);
    http_parse_free(&p);
}

static void test_parse_chunked_byte_by_byte(void **state)
{
    (void)state;
    const char *in = "POST / HTTP/1.1\r\nHost: a\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"
                     "5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n"
                     "0\r\nX-Trailer: t\r\n\r\n";
    for (size_t step = 0; step <= 3; step++) {
        struct http_request_parser p;
        http_parse_init(&p, &test_limits);
        size_t used = 0;
        assert_int_equal(feed_all(&p, in, strlen(in), step, &used),
                         HTTP_PARSE_DONE);
        assert_int_equal(used, strlen(in));
        assert_int_equal(p.body_len, 16);
        assert_memory_equal(p.body, "hello 0123456789", 16);
        assert_int_equal(p.header_count, 2); /* trailers are not headers */
        http_parse_free(&p);
    }
}

static void test_parse_pipelined(void **state)
{
    (void)state;
    const char *in = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
                     "abcGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
    struct http_request_parser p;
    http_parse_init(&p, &test_limits);
    size_t len = strlen(in), used = 0;
    assert_int_equal(feed_all(&p, in, len, 0, &used), HTTP_PARSE_DONE);
    assert_string_equal(p.path, "/a");
    assert_int_equal(p.body_len, 3);
    http_parse_reset(&p);
    size_t used2 = 0;
    assert_int_equal(feed_all(&p, in + used, len - used, 0, &used2),
                     HTTP_PARSE_DONE);
    assert_int_equal(used + used2, len);
    assert_string_equal(p.path, "/b");
    assert_int_equal(p.body_len, 0);
    http_parse_free(&p);
}

#define CHUNKED_HEAD                                                           \
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

static void test_parse_chunked_smuggling(void **state)
{
    (void)state;
    /* Shapes llhttp 8.1.0 accepts (see http_conn.h); we must not. */
    static const struct {
        const char *name, *body;
    } bad[] = {
        {"data not followed by CRLF", "5\r\nhelloXX0\r\n\r\n"},
        {"data followed by bare LF", "5\r\nhello\n0\r\n\r\n"},
        {"bare CR in extension", "5;a\rb\r\nhello\r\n0\r\n\r\n"},
        {"bare LF after size", "5\nhello\r\n0\r\n\r\n"},
        {"bare LF after last chunk", "5\r\nhello\r\n0\n\r\n"},
        {"bare LF ending the trailers", "5\r\nhello\r\n0\r\n\n"},
        {"obs-fold in trailers", "5\r\nhello\r\n0\r\nX: y\r\n z\r\n\r\n"},
        {"bare LF in trailer", "5\r\nhello\r\n0\r\nX: y\n\r\n"},
        {"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"},
        {"space after size", "5 \r\nhello\r\n0\r\n\r\n"},
        {"negative size", "-5\r\nhello\r\n0\r\n\r\n"},
        {"empty size", "\r\nhello\r\n0\r\n\r\n"},
        {"size overflow", "10000000000000005\r\nhello\r\n0\r\n\r\n"},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char in[512];
        snprintf(in, sizeof(in), "%s%s", CHUNKED_HEAD, bad[i].body);
        int st = parse_status(in, 0);
        if (st != 400) {
            print_error("chunked '%s': expected 400, got %d\n", bad[i].name,
                        st);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_parse_limits(void **state)
{
    (void)state;
    /* body cap is 64 bytes */
    assert_int_equal(
        parse_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n",
                     0),
        413);
    assert_int_equal(
        parse_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 64\r\n\r\n"
                     "0123456789012345678901234567890123456789012345678901234"
                     "567890123",
                     7),
        200);
    assert_int_equal(parse_status(CHUNKED_HEAD "41\r\n", 0), 413);
    assert_int_equal(parse_status(CHUNKED_HEAD
                                  "20\r\n01234567890123456789012345678901\r\n"
                                  "20\r\n01234567890123456789012345678901\r\n"
                                  "1\r\nx\r\n0\r\n\r\n",
                                  5),
                     413);

    /* header block cap (1024) without ever seeing CRLFCRLF */
    char big[1500];
    const char *start = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    memcpy(big, start, strlen(start));
    memset(big + strlen(start), 'a', sizeof(big) - strlen(start) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(parse_status(big, 100), 431);

    /* not HTTP at all (a TLS ClientHello): refused at the first byte */
    struct http_request_parser p;
    http_parse_init(&p, &test_limits);
    size_t used = 1;
    assert_int_equal(http_parse_feed(&p, "\x16\x03\x01", 3, &used),
                     HTTP_PARSE_ERROR);
    assert_int_equal(p.error_status, 400);
    http_parse_free(&p);

    /* prescan passes, llhttp refuses: unknown method */
    assert_int_equal(parse_status("FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 0), 400);
    /* keep-alive rules */
    http_parse_init(&p, &test_limits);
    const char *in10 = "GET / HTTP/1.0\r\n\r\n";
    assert_int_equal(feed_all(&p, in10, strlen(in10), 0, NULL),
                     HTTP_PARSE_DONE);
    assert_false(p.keep_alive);
    http_parse_reset(&p);
    in10 = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    assert_int_equal(feed_all(&p, in10, strlen(in10), 0, NULL),
                     HTTP_PARSE_DONE);
    assert_true(p.keep_alive);
    http_parse_reset(&p);
    in10 = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    assert_int_equal(feed_all(&p, in10, strlen(in10), 0, NULL),
                     HTTP_PARSE_DONE);
    assert_false(p.keep_alive);
    http_parse_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prescan_table),
        cmocka_unit_test(test_prescan_facts),
        cmocka_unit_test(test_prescan_byte_cap),
        cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_parse_chunked_byte_by_byte),
        cmocka_unit_test(test_parse_pipelined),
        cmocka_unit_test(test_parse_chunked_smuggling),
        cmocka_unit_test(test_parse_limits),
    };
    return cmocka_run_group_tests_name("http_prescan", tests, NULL, NULL);
}
