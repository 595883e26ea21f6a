/* Unit tests of the batch runner's text splicing (batch_result_text.c):
 * the minifier accepts exactly what jansson accepts and keeps the value,
 * and the spliced result and output lines equal what the jansson path
 * wrote before, byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "batch_result_text.h"

static bool same_as_jansson(const char *in)
{
    size_t len = strlen(in), n = 0;
    char *out = malloc(len + 1);
    bool ok = batch_json_minify(in, len, out, &n);
    json_t *ref = json_loadb(in, len, JSON_DECODE_ANY, NULL);
    bool agree = ok == (ref != NULL);
    if (ok && ref) {
        /* The minified text has no whitespace between tokens and reads
         * back as the same value. */
        json_t *back = json_loadb(out, n, JSON_DECODE_ANY, NULL);
        agree = back && json_equal(ref, back) && !memchr(out, '\n', n);
        json_decref(back);
    }
    json_decref(ref);
    free(out);
    return agree;
}

static void test_minify_agrees_with_jansson(void **s)
{
    (void)s;
    const char *cases[] = {
        "{}", "[]", " { \"a\" : [ 1 , -2.5e+3 , true , false , null ] }\n",
        "{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":\"h\\u00e9\\n\"}}"
        "]}",
        "\"caf\xc3\xa9\"", "0", "-0.0", "1E5", "[[[[[]]]]]",
        /* invalid */
        "", " ", "{", "{\"a\"}", "{\"a\":1,}", "[1,]", "[1 2]", "01", "1.", "-",
        ".5", "1e", "tru", "nul", "\"a", "\"\\x\"", "\"\\u12g4\"", "\"\x01\"",
        "\"\xc3\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "{} {}", "{\"a\":1}x",
        "\"\\u0000\"", "{1:2}", "[\"a\":1]"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (!same_as_jansson(cases[i]))
            fail_msg("minify and jansson disagree on case %zu: %s", i,
                     cases[i]);
}

static void test_minify_depth_cap(void **s)
{
    (void)s;
    char deep[300];
    memset(deep, '[', 150);
    memset(deep + 150, ']', 150);
    size_t n;
    char out[300];
    assert_false(batch_json_minify(deep, 300, out, &n));
    assert_true(batch_json_minify(deep + 100, 100, out, &n));
}

/* What line_done stored before the splice (jansson, compact). */
static char *jansson_result(int status, const char *rid, const char *body)
{
    json_t *b = json_loads(body, 0, NULL);
    json_t *resp = json_pack("{s:i,s:s,s:o}", "status_code", status,
                             "request_id", rid, "body", b);
    json_t *out =
        json_pack("{s:o,s:o}", "response", resp, "error", json_null());
    char *t = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    return t;
}

static void test_result_text_matches_jansson(void **s)
{
    (void)s;
    const char *body =
        "{\n  \"id\": \"chatcmpl-1\",\n  \"choices\": [{\"index\": "
        "0, \"message\": {\"role\": \"assistant\", \"content\": "
        "\"a \\\"b\\\" c\"}}],\n  \"usage\": {\"total_tokens\": "
        "12}\n}\n";
    char *got = batch_result_ok_text(200, "b0123-4-1", body, strlen(body));
    char *want = jansson_result(200, "b0123-4-1", body);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    free(want);
    /* Not JSON, or an id that would need escaping: the caller's path. */
    assert_null(batch_result_ok_text(200, "r", "<html>", 6));
    assert_null(batch_result_ok_text(200, "r\"x", "{}", 2));
}

static void test_output_line_matches_jansson(void **s)
{
    (void)s;
    const char *result = "{\"response\":{\"status_code\":200,\"request_id\":"
                         "\"r1\",\"body\":{\"a\":[1,2]}},\"error\":null}";
    const char *cid = "line \"7\"\\ caf\xc3\xa9";
    char *buf = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(batch_output_line_append(&buf, &len, &cap, "batch_req_x_7",
                                              cid, result),
                     1);
    json_t *r = json_loads(result, 0, NULL);
    json_t *o =
        json_pack("{s:s,s:s,s:O,s:O}", "id", "batch_req_x_7", "custom_id", cid,
                  "response", json_object_get(r, "response"), "error",
                  json_object_get(r, "error"));
    char *want = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t want_len = strlen(want);
    assert_int_equal(len, want_len);
    assert_memory_equal(buf, want, len);
    free(want);
    json_decref(o);
    json_decref(r);
    /* Another shape is left to the jansson path, nothing appended. */
    assert_int_equal(batch_output_line_append(&buf, &len, &cap, "i", "c",
                                              "{\"error\":1,\"response\":2}"),
                     0);
    assert_int_equal(batch_output_line_append(&buf, &len, &cap, "i", "c", NULL),
                     0);
    assert_int_equal(len, want_len);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minify_agrees_with_jansson),
        cmocka_unit_test(test_minify_depth_cap),
        cmocka_unit_test(test_result_text_matches_jansson),
        cmocka_unit_test(test_output_line_matches_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
