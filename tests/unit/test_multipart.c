/* multipart/form-data reader: the parts an upload is made of, and a clear
 * refusal of bodies that are not well formed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/multipart.h"

#define CT "multipart/form-data; boundary=XyZ"

static bool span_eq(struct multipart_span s, const char *want)
{
    return s.ptr && s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

static int read_all(const char *ct, const char *body, size_t len,
                    struct multipart_part *parts, size_t cap,
                    const char **error)
{
    struct multipart_reader rd;
    *error = NULL;
    if (!multipart_open(&rd, ct, strlen(ct), body, len, error))
        return -1;
    int n = 0, rc;
    while ((size_t)n < cap && (rc = multipart_next(&rd, &parts[n], error)) > 0)
        n++;
    return *error ? -1 : n;
}

/* What Python's and the OpenAI SDKs' encoders send: a field and a file. */
static void test_field_and_file(void **state)
{
    (void)state;
    static const char body[] =
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"purpose\"\r\n"
        "\r\n"
        "batch\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"file\"; "
        "filename=\"in.jsonl\"\r\n"
        "Content-Type: application/jsonl\r\n"
        "\r\n"
        "{\"a\":1}\r\n{\"b\":2}\r\n"
        "\r\n--XyZ--\r\n";
    struct multipart_part p[4];
    const char *err;
    assert_int_equal(read_all(CT, body, sizeof body - 1, p, 4, &err), 2);
    assert_true(span_eq(p[0].name, "purpose"));
    assert_true(span_eq(p[0].data, "batch"));
    assert_null(p[0].filename.ptr);
    assert_null(p[0].content_type.ptr);
    assert_true(span_eq(p[1].name, "file"));
    assert_true(span_eq(p[1].filename, "in.jsonl"));
    assert_true(span_eq(p[1].content_type, "application/jsonl"));
    /* The CRLF before the delimiter belongs to the delimiter, not the data;
     * line breaks inside the data are kept. */
    assert_true(span_eq(p[1].data, "{\"a\":1}\r\n{\"b\":2}\r\n"));
}

/* Quoted boundary, a preamble, binary data with NUL bytes and a boundary
 * look-alike that is not preceded by CRLF. */
static void test_quoted_boundary_preamble_binary(void **state)
{
    (void)state;
    static const char body[] = "preamble to ignore\r\n"
                               "--a b\r\n"
                               "content-disposition: FORM-DATA; name=x\r\n"
                               "\r\n"
                               "\0\1--a b\0\r\n"
                               "--a b--";
    struct multipart_part p[2];
    const char *err;
    const char *ct = "Multipart/Form-Data; charset=utf-8; boundary=\"a b\"";
    assert_int_equal(read_all(ct, body, sizeof body - 1, p, 2, &err), 1);
    assert_true(span_eq(p[0].name, "x"));
    assert_int_equal(p[0].data.len, 8);
    assert_memory_equal(p[0].data.ptr, "\0\1--a b\0", 8);
}

static void test_empty_form(void **state)
{
    (void)state;
    struct multipart_part p[1];
    const char *err;
    assert_int_equal(read_all(CT, "--XyZ--\r\n", 9, p, 1, &err), 0);
}

static void expect_error(const char *ct, const char *body, const char *what)
{
    struct multipart_part p[4];
    const char *err;
    assert_int_equal(read_all(ct, body, strlen(body), p, 4, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, what));
}

static void test_refusals(void **state)
{
    (void)state;
    expect_error("application/json", "{}", "multipart/form-data");
    expect_error("multipart/form-data", "--x--", "boundary");
    expect_error("multipart/form-data; boundary=\"unterminated", "--x--",
                 "boundary");
    expect_error("multipart/form-data; boundary="
                 "12345678901234567890123456789012345678901234567890"
                 "123456789012345678901",
                 "", "longer than 70");
    expect_error(CT, "no delimiter at all", "no opening boundary");
    expect_error(CT,
                 "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n"
                 "data but no closing delimiter",
                 "closing boundary");
    expect_error(CT, "--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--",
                 "Content-Disposition");
    expect_error(CT,
                 "--XyZ\r\nContent-Disposition: attachment\r\n\r\nx\r\n"
                 "--XyZ--",
                 "Content-Disposition");
    expect_error(CT,
                 "--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n"
                 "--XyZ--",
                 "with a name");
    expect_error(CT, "--XyZjunk\r\n", "boundary line");
    expect_error(CT, "--XyZ\r\nContent-Disposition: form-data; name=a",
                 "never end");
}

/* A header block past the limit is refused without scanning the rest. */
static void test_header_limit(void **state)
{
    (void)state;
    static char body[MULTIPART_MAX_PART_HEADER + 200];
    int n = snprintf(body, sizeof body,
                     "--XyZ\r\nContent-Disposition: form-data; name=a\r\n"
                     "X-Pad: ");
    memset(body + n, 'p', MULTIPART_MAX_PART_HEADER);
    memcpy(body + n + MULTIPART_MAX_PART_HEADER, "\r\n\r\nx\r\n--XyZ--", 15);
    expect_error(CT, body, "too long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field_and_file),
        cmocka_unit_test(test_quoted_boundary_preamble_binary),
        cmocka_unit_test(test_empty_form),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_header_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
