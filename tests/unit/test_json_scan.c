/* core/json_scan.c: the strict validator and its cursor, and the request
 * decoder built on it (core/api_request.c). Every verdict is also checked
 * against jansson's json_loadb(JSON_REJECT_DUPLICATES), which the scanner
 * must match exactly (error class, text, line and column included). */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_request.h"
#include "json_scan.h"

#define LIT(s) s, sizeof s - 1

/* Scans buf and checks the verdict against jansson; returns the status.
 * On success the doc is left for the caller to read and free (if asked). */
static enum jscan_status scan_n(const char *buf, size_t len,
                                struct jscan_doc *doc, struct jscan_error *err)
{
    json_error_t jerr;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    enum jscan_status st = jscan_document(doc, buf, len, err);
    if (j) {
        if (st != JSCAN_OK)
            fail_msg("scanner refused what jansson accepts: %s", err->text);
        json_decref(j);
    } else {
        if (st == JSCAN_OK)
            fail_msg("scanner accepted what jansson refuses: %s", jerr.text);
        assert_int_equal(st == JSCAN_UTF8,
                         json_error_code(&jerr) == json_error_invalid_utf8);
        assert_string_equal(err->text, jerr.text);
        assert_int_equal(err->line, jerr.line);
        assert_int_equal(err->column, jerr.column);
    }
    return st;
}

static void ok_n(const char *buf, size_t len)
{
    struct jscan_doc doc;
    struct jscan_error err;
    assert_int_equal(scan_n(buf, len, &doc, &err), JSCAN_OK);
    jscan_doc_free(&doc);
}

/* Expects a refusal with this status and jansson's exact text. */
static void bad_n(const char *buf, size_t len, enum jscan_status want,
                  const char *text, int line, int column)
{
    struct jscan_doc doc;
    struct jscan_error err;
    assert_int_equal(scan_n(buf, len, &doc, &err), want);
    if (text)
        assert_string_equal(err.text, text);
    assert_int_equal(err.line, line);
    assert_int_equal(err.column, column);
}

#define OK(s) ok_n(LIT(s))
#define BAD(s, st, text, line, col) bad_n(LIT(s), st, text, line, col)
#define SYN JSCAN_SYNTAX
#define UTF8 JSCAN_UTF8

static void test_valid_documents(void **state)
{
    OK("{}");
    OK("[]");
    OK(" \t\r\n{ \"a\" : [ 1 , -2.5e3 , true , false , null , \"x\" , { } , "
       "[ ] ] }\n");
    OK("[\"\",\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]");
    OK("{\"a\":{\"b\":{\"c\":[[[]]]}}}");
    OK("[0,-0,0.0,-0.0,1e0,1E+2,1e-2,123456789,0.000001]");
    OK("[\"\\u00e9\\u20ac\\ud83d\\ude00\\uFFFF\"]");
    OK("[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf\x7f\"]");
}

static void test_structure_errors(void **state)
{
    BAD("", SYN, "'[' or '{' expected near end of file", 1, 0);
    BAD("   ", SYN, "'[' or '{' expected near end of file", 1, 3);
    BAD("\"str\"", SYN, "'[' or '{' expected near '\"str\"'", 1, 5);
    BAD("1", SYN, "'[' or '{' expected near '1'", 1, 1);
    BAD("{}x", SYN, "end of file expected near 'x'", 1, 3);
    BAD("{} {}", SYN, "end of file expected near '{'", 1, 4);
    BAD("{\"a\":1,}", SYN, "string or '}' expected near '}'", 1, 8);
    BAD("[1,]", SYN, "unexpected token near ']'", 1, 4);
    BAD("{\"a\" 1}", SYN, "':' expected near '1'", 1, 6);
    BAD("{\"a\":1", SYN, "'}' expected near end of file", 1, 6);
    BAD("[1 2]", SYN, "']' expected near '2'", 1, 4);
    BAD("[", SYN, "']' expected near end of file", 1, 1);
    BAD("{not json", SYN, "string or '}' expected near 'not'", 1, 4);
    BAD("[tru]", SYN, "invalid token near 'tru'", 1, 4);
    BAD("[nul]", SYN, "invalid token near 'nul'", 1, 4);
    BAD("[#]", SYN, "invalid token near '#'", 1, 2);
    BAD("{\n  \"a\": 1,\n  \"b\" 2\n}", SYN, "':' expected near '2'", 3, 7);
}

static void test_strings_and_escapes(void **state)
{
    BAD("[\"abc", SYN, "premature end of input near '\"abc'", 1, 5);
    BAD("[\"a\nb\"]", SYN, "unexpected newline near '\"a'", 1, 3);
    BAD("[\"a\tb\"]", SYN, "control character 0x9 near '\"a'", 1, 3);
    BAD("[\"\\x\"]", SYN, "invalid escape near '\"\\x'", 1, 4);
    BAD("[\"\\u12g4\"]", SYN, "invalid escape near '\"\\u12g'", 1, 7);
    BAD("[\"\\u12\"]", SYN, "invalid escape near '\"\\u12\"'", 1, 7);
    BAD("[\"\\", SYN, "invalid escape near '\"\\'", 1, 3);
    /* surrogates: only as a high+low pair */
    BAD("[\"\\uD800\"]", SYN, "invalid Unicode '\\uD800' near '\"\\uD800\"'", 1,
        9);
    BAD("[\"\\udc00\"]", SYN, "invalid Unicode '\\uDC00' near '\"\\udc00\"'", 1,
        9);
    BAD("[\"\\uD800\\u0041\"]", SYN,
        "invalid Unicode '\\uD800\\u0041' near '\"\\uD800\\u0041\"'", 1, 15);
    BAD("[\"\\uD800x\"]", SYN, "invalid Unicode '\\uD800' near '\"\\uD800x\"'",
        1, 10);
    OK("[\"\\uD800\\uDC00\\uDBFF\\uDFFF\"]");
    /* a later first-pass error wins over an earlier bad surrogate */
    BAD("[\"\\uD800 \\q\"]", SYN, "invalid escape near '\"\\uD800 \\q'", 1, 11);
    BAD("[\"\\uD800 \xff\"]", UTF8, NULL, 1, 9);
    /* \u0000 is refused in values and keys */
    BAD("[\"a\\u0000\"]", SYN,
        "\\u0000 is not allowed without JSON_ALLOW_NUL near '\"a\\u0000\"'", 1,
        10);
    BAD("{\"\\u0000\":1}", SYN,
        "NUL byte in object key not supported near '\"\\u0000\"'", 1, 9);
    /* long strings get no context */
    BAD("[\"0123456789012345678901234\\q\"]", SYN, "invalid escape", 1, 29);
}

static void test_invalid_utf8(void **state)
{
    BAD("\xff", UTF8, "unable to decode byte 0xff", 1, 0);
    BAD("[\"\xc0\xaf\"]", UTF8, NULL, 1, 2);         /* overlong '/' */
    BAD("[\"\xe0\x80\xaf\"]", UTF8, NULL, 1, 2);     /* overlong, 3 bytes */
    BAD("[\"\xed\xa0\x80\"]", UTF8, NULL, 1, 2);     /* encoded surrogate */
    BAD("[\"\xf4\x90\x80\x80\"]", UTF8, NULL, 1, 2); /* > U+10FFFF */
    BAD("[\"\x80\"]", UTF8, NULL, 1, 2);             /* stray continuation */
    BAD("[\"\xc3", UTF8, NULL, 1, 2);                /* cut by the end */
    BAD("[\"\xc3\xa9\xe2\x82\xac\xff\"]", UTF8, NULL, 1, 4); /* columns count
                                                                characters */
    BAD("{\"k\xff\":1}", UTF8, NULL, 1, 3);
    BAD("[1,\n  \xff]", UTF8, NULL, 2, 2);
    /* the byte after a number or literal is read as lookahead */
    BAD("{}1\xff", UTF8, "unable to decode byte 0xff near '1'", 1, 3);
    BAD("[true\xff]", UTF8, NULL, 1, 5);
    BAD("[-\xff]", UTF8, NULL, 1, 2);
    /* but not after a string or a structural character */
    BAD("{}\"a\"\xff", SYN, "end of file expected near '\"a\"'", 1, 5);
    BAD("[\xc3\xa9]", SYN, "invalid token near '\xc3\xa9'", 1, 2);
}

static void test_numbers(void **state)
{
    BAD("[01]", SYN, "invalid token near '0'", 1, 2);
    BAD("[-01]", SYN, "invalid token near '-0'", 1, 3);
    BAD("[-]", SYN, "invalid token near '-'", 1, 2);
    BAD("[1.]", SYN, "invalid token near '1.'", 1, 3);
    BAD("[.5]", SYN, "invalid token near '.'", 1, 2);
    BAD("[1e]", SYN, "invalid token near '1e'", 1, 3);
    BAD("[1e+]", SYN, "invalid token near '1e+'", 1, 4);
    BAD("[+1]", SYN, "invalid token near '+'", 1, 2);
    BAD("[0x10]", SYN, "']' expected near 'x'", 1, 3);
    OK("[9223372036854775807,-9223372036854775808]");
    BAD("[9223372036854775808]", SYN,
        "too big integer near '9223372036854775808'", 1, 20);
    BAD("[-9223372036854775809]", SYN,
        "too big negative integer near '-9223372036854775809'", 1, 21);
    BAD("[123456789012345678901234567890]", SYN, "too big integer", 1, 31);
    OK("[1.7976931348623157e308,1e-400,-1e-400,0e999999999999]");
    BAD("[1e309]", SYN, "real number overflow near '1e309'", 1, 6);
    BAD("[-1.8e308]", SYN, "real number overflow near '-1.8e308'", 1, 9);
    BAD("[0.00001e314]", SYN, "real number overflow near '0.00001e314'", 1, 12);
    OK("[0.00001e313]");

    struct jscan_doc doc;
    struct jscan_error err;
    struct jscan_val root, v;
    struct jscan_iter it;
    const char *src = "[-0,-9223372036854775808,2.5e-1,7]";
    assert_int_equal(scan_n(src, strlen(src), &doc, &err), JSCAN_OK);
    jscan_doc_root(&doc, &root);
    jscan_iter_begin(&it, &doc, &root);
    assert_true(jscan_iter_next(&it, NULL, &v));
    assert_int_equal(v.type, JSCAN_INTEGER);
    assert_int_equal(jscan_integer_get(&doc, &v), 0);
    assert_true(jscan_iter_next(&it, NULL, &v));
    assert_true(jscan_integer_get(&doc, &v) == INT64_MIN);
    assert_true(jscan_iter_next(&it, NULL, &v));
    assert_int_equal(v.type, JSCAN_REAL);
    assert_true(jscan_number_get(&doc, &v) == 0.25);
    assert_true(jscan_iter_next(&it, NULL, &v));
    assert_true(jscan_number_get(&doc, &v) == 7.0);
    assert_false(jscan_iter_next(&it, NULL, &v));
    jscan_doc_free(&doc);
}

static void test_nul_after_number_quirk(void **state)
{
    /* jansson skips one NUL byte straight after a number or literal */
    OK("[1\0]");
    OK("[true\0,false\0]");
    OK("{\"a\":2.5\0}");
    BAD("[1\0\0]", SYN, "']' expected near end of file", 1, 3);
    BAD("[\0]", SYN, "invalid token near end of file", 1, 2);
    BAD("[\"a\0\"]", SYN, "control character 0x0 near '\"a'", 1, 3);
    BAD("{\0}", SYN, "string or '}' expected near end of file", 1, 2);
}

static char *nested(size_t depth, const char *inner)
{
    size_t n = strlen(inner);
    char *s = malloc(2 * depth + n + 1);
    assert_non_null(s);
    memset(s, '[', depth);
    memcpy(s + depth, inner, n);
    memset(s + depth + n, ']', depth);
    s[2 * depth + n] = '\0';
    return s;
}

static void test_depth_limit(void **state)
{
    char *s = nested(JSCAN_MAX_DEPTH, "");
    ok_n(s, strlen(s)); /* 2048 arrays */
    free(s);
    s = nested(JSCAN_MAX_DEPTH - 1, "1"); /* the scalar is value 2048 */
    ok_n(s, strlen(s));
    free(s);
    s = nested(JSCAN_MAX_DEPTH, "1");
    bad_n(s, strlen(s), SYN, "maximum parsing depth reached near '1'", 1,
          JSCAN_MAX_DEPTH + 1);
    free(s);
    s = nested(JSCAN_MAX_DEPTH + 1, "");
    bad_n(s, strlen(s), SYN, "maximum parsing depth reached near '['", 1,
          JSCAN_MAX_DEPTH + 1);
    free(s);
    s = nested(100000, ""); /* refused early, without using the depth */
    bad_n(s, strlen(s), SYN, "maximum parsing depth reached near '['", 1,
          JSCAN_MAX_DEPTH + 1);
    free(s);
}

static void test_duplicate_keys(void **state)
{
    BAD("{\"a\":1,\"a\":2}", SYN, "duplicate object key near '\"a\"'", 1, 10);
    BAD("{\"a\":1,\"\\u0061\":2}", SYN,
        "duplicate object key near '\"\\u0061\"'", 1, 15);
    BAD("{\"x\":{\"b\":1,\"b\":1}}", SYN, "duplicate object key near '\"b\"'",
        1, 15);
    BAD("[{},{\"\\/\":1,\"/\":1}]", SYN, "duplicate object key near '\"/\"'", 1,
        15);
    OK("{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1},{\"a\":2}]}");
    OK("{\"ab\":1,\"a\":1,\"a\\u0062c\":1,\"\":1,\"b\":1}");

    /* many keys: the hash table path */
    char buf[8192];
    size_t n = 0;
    buf[n++] = '{';
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"key%d\":{\"k\":%d}",
                              i ? "," : "", i, i);
    buf[n++] = '}';
    ok_n(buf, n);
    n--;
    n += (size_t)snprintf(buf + n, sizeof buf - n, ",\"ke\\u0079217\":0}");
    bad_n(buf, n, SYN, "duplicate object key near '\"ke\\u0079217\"'", 1,
          (int)n - 3);
}

static void test_cursor(void **state)
{
    char big[400];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char *src = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&src, &len);
    fprintf(f,
            "{\"short\":\"a\\nb\",\"long\":\"%s\\u00e9\",\"obj\":{\"k\":[1,"
            "{\"deep\":\"%s\"}]},\"m\\u006fdel\":\"gpt\\/4\",\"n\":null}",
            big, big);
    fclose(f);

    struct jscan_doc doc;
    struct jscan_error err;
    struct jscan_val root, key, v, w;
    struct jscan_iter it;
    assert_int_equal(scan_n(src, len, &doc, &err), JSCAN_OK);
    jscan_doc_root(&doc, &root);
    assert_int_equal(root.type, JSCAN_OBJECT);
    assert_int_equal(root.end, len);

    jscan_iter_begin(&it, &doc, &root);
    assert_true(jscan_iter_next(&it, &key, &v));
    assert_true(jscan_string_equals(&doc, &key, LIT("short")));
    assert_int_equal(v.len, 3);
    assert_true(v.escaped);
    assert_true(jscan_string_equals(&doc, &v, LIT("a\nb")));
    assert_true(jscan_iter_next(&it, &key, &v));
    assert_int_equal(v.len, sizeof big - 1 + 2); /* é is two bytes */
    char *dec = malloc(v.len);
    jscan_string_decode(&doc, &v, dec);
    assert_memory_equal(dec + v.len - 2, "\xc3\xa9", 2);
    free(dec);
    assert_true(jscan_iter_next(&it, &key, &v));
    assert_int_equal(v.type, JSCAN_OBJECT);
    assert_true(jscan_object_find(&doc, &v, LIT("k"), &w));
    assert_int_equal(w.type, JSCAN_ARRAY);
    assert_false(jscan_object_find(&doc, &v, LIT("missing"), &w));
    assert_int_equal(w.type, JSCAN_NONE);
    assert_true(jscan_iter_next(&it, &key, &v));
    assert_true(jscan_string_equals(&doc, &key, LIT("model")));
    assert_true(jscan_string_equals(&doc, &v, LIT("gpt/4")));
    assert_true(jscan_iter_next(&it, &key, &v));
    assert_int_equal(v.type, JSCAN_NULL);
    assert_false(jscan_iter_next(&it, &key, &v));
    jscan_doc_free(&doc);
    free(src);
}

/* Many long values: the skip index outgrows its inline storage, and the
 * cursor must still pair every value with its own entry. */
static void test_cursor_many_long_values(void **state)
{
    char *src = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&src, &len);
    fputc('[', f);
    for (int i = 0; i < 200; i++)
        fprintf(f, "%s{\"id\":%d,\"s\":\"%0*d\\n\",\"a\":[\"%0*d\"]}",
                i ? "," : "", i, 40 + i % 50, i, 30 + i % 7, i);
    fputc(']', f);
    fclose(f);

    struct jscan_doc doc;
    struct jscan_error err;
    struct jscan_val root, item, v;
    struct jscan_iter it;
    assert_int_equal(scan_n(src, len, &doc, &err), JSCAN_OK);
    assert_true(doc.nspans > JSCAN_INLINE_SPANS);
    jscan_doc_root(&doc, &root);
    jscan_iter_begin(&it, &doc, &root);
    for (int i = 0; i < 200; i++) {
        assert_true(jscan_iter_next(&it, NULL, &item));
        assert_int_equal(item.type, JSCAN_OBJECT);
        assert_true(jscan_object_find(&doc, &item, LIT("id"), &v));
        assert_int_equal(jscan_integer_get(&doc, &v), i);
        assert_true(jscan_object_find(&doc, &item, LIT("s"), &v));
        assert_int_equal(v.len, (size_t)(40 + i % 50 + 1));
    }
    assert_false(jscan_iter_next(&it, NULL, &item));
    jscan_doc_free(&doc);
    free(src);
}

/* ---- the request decoder ---- */

static bool decode(enum api_kind kind, const char *body, struct api_request *r,
                   struct api_error *e)
{
    return api_request_decode(kind, body, strlen(body), r, e);
}

static void expect_error(enum api_kind kind, const char *body,
                         const char *message, const char *param)
{
    struct api_request r;
    struct api_error e;
    assert_false(decode(kind, body, &r, &e));
    assert_int_equal(e.status, 400);
    assert_string_equal(e.message, message);
    assert_string_equal(e.param, param);
    assert_null(r.model);
    assert_int_equal(r.text_bytes, 0);
}

static void test_decode_chat(void **state)
{
    struct api_request r;
    struct api_error e;
    assert_true(decode(API_CHAT,
                       "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":"
                       "\"user\",\"content\":\"Say hello in one short "
                       "sentence, please.\"}]}",
                       &r, &e));
    assert_int_equal(r.model_len, 11);
    assert_memory_equal(r.model, "gpt-4o-mini", 11);
    assert_null(r.model_copy);
    assert_int_equal(r.message_count, 1);
    assert_int_equal(r.text_bytes, 40);
    assert_int_equal(r.input_tokens, api_estimate_tokens(40, 1));
    assert_false(r.stream);
    api_request_release(&r);

    assert_true(decode(API_CHAT,
                       "{\"m\\u006fdel\":\"gpt\\/4o\",\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true},"
                       "\"temperature\":0.5,\"max_tokens\":10,"
                       "\"max_completion_tokens\":20,\"messages\":[{\"role\":"
                       "\"user\",\"content\":[\"ab\",{\"type\":\"text\","
                       "\"text\":\"\\u00e9\\ud83d\\ude00\"},{\"type\":"
                       "\"image\"}]},{\"role\":\"assistant\",\"content\":"
                       "null}]}",
                       &r, &e));
    assert_int_equal(r.model_len, 6);
    assert_memory_equal(r.model, "gpt/4o", 6);
    assert_non_null(r.model_copy);
    assert_true(r.stream);
    assert_true(r.include_usage);
    assert_true(r.has_temperature);
    assert_true(r.temperature == 0.5);
    assert_int_equal(r.max_tokens, 20);
    assert_int_equal(r.message_count, 2);
    assert_int_equal(r.text_bytes, 2 + 2 + 4);
    api_request_release(&r);

    expect_error(API_CHAT, "",
                 "The request body is empty; expected a JSON "
                 "object.",
                 "");
    expect_error(API_CHAT, "[1,2]", "The request body must be a JSON object.",
                 "");
    expect_error(API_CHAT, "{not json",
                 "We could not parse the JSON body of your request: string or "
                 "'}' expected near 'not' (line 1, column 4)",
                 "");
    expect_error(API_CHAT,
                 "{\"model\":\"m\",\n\"messages\":[{\"role\":\"user\","
                 "\"content\":\"\xff\xfe\"}]}",
                 "The request body is not valid UTF-8 (line 2, column 38).",
                 "");
    expect_error(API_CHAT, "{\"model\":\"m\",\"model\":\"m\"}",
                 "We could not parse the JSON body of your request: duplicate "
                 "object key near '\"model\"' (line 1, column 20)",
                 "");
    expect_error(API_CHAT, "{\"messages\":[]}",
                 "Missing required parameter: 'model'.", "model");
    expect_error(API_CHAT, "{\"model\":\"\",\"messages\":[]}",
                 "Invalid type for 'model': expected a non-empty string.",
                 "model");
    expect_error(API_CHAT, "{\"model\":\"a\\u0007\",\"messages\":[]}",
                 "Invalid 'model': control characters are not allowed.",
                 "model");
    expect_error(API_CHAT, "{\"model\":\"m\",\"stream\":1}",
                 "Invalid type for 'stream': expected a boolean.", "stream");
    expect_error(API_CHAT, "{\"model\":\"m\",\"temperature\":2.5}",
                 "Invalid 'temperature': expected a number between 0 and 2.",
                 "temperature");
    expect_error(API_CHAT, "{\"model\":\"m\",\"max_tokens\":1.0}",
                 "Invalid 'max_tokens': expected a positive integer.",
                 "max_tokens");
    expect_error(API_CHAT, "{\"model\":\"m\"}",
                 "Missing required parameter: 'messages'.", "messages");
    expect_error(API_CHAT, "{\"model\":\"m\",\"messages\":{}}",
                 "Invalid type for 'messages': expected an array.", "messages");
    expect_error(API_CHAT, "{\"model\":\"m\",\"messages\":[]}",
                 "Invalid 'messages': empty array. Expected an array with "
                 "minimum length 1.",
                 "messages");
    expect_error(API_CHAT,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                 "\"content\":\"x\"},7]}",
                 "Invalid type for 'messages[1]': expected an object.",
                 "messages[1]");
    expect_error(API_CHAT,
                 "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}",
                 "Missing or invalid 'role' in 'messages[0]'.", "messages[0]");
    expect_error(API_CHAT,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}",
                 "Invalid type for 'messages[0].content': expected a string "
                 "or an array of content parts.",
                 "messages[0]");
}

static void test_decode_other_kinds(void **state)
{
    struct api_request r;
    struct api_error e;
    assert_true(decode(API_COMPLETIONS,
                       "{\"model\":\"m\",\"prompt\":[\"ab\",[1,2],3]}", &r,
                       &e));
    assert_int_equal(r.message_count, 3);
    assert_int_equal(r.text_bytes, 2 + 4 + 4);
    api_request_release(&r);

    assert_true(decode(API_EMBEDDINGS,
                       "{\"model\":\"m\",\"input\":\"abcdefgh\"}", &r, &e));
    assert_int_equal(r.input_tokens, (8 + 3) / 4);
    api_request_release(&r);

    /* responses: content shape errors in input items are not fatal */
    assert_true(decode(API_RESPONSES,
                       "{\"model\":\"m\",\"max_output_tokens\":5,\"input\":[{"
                       "\"role\":\"user\",\"content\":[\"abc\",5,\"x\"]},{"
                       "\"role\":\"user\"},\"tail\"]}",
                       &r, &e));
    assert_int_equal(r.message_count, 3);
    assert_int_equal(r.text_bytes, 3 + 4);
    assert_int_equal(r.max_tokens, 5);
    api_request_release(&r);

    assert_true(decode(API_RESPONSES,
                       "{\"model\":\"m\",\"previous_response_id\":null}", &r,
                       &e));
    assert_int_equal(r.message_count, 0);
    api_request_release(&r);

    expect_error(API_EMBEDDINGS,
                 "{\"model\":\"m\",\"stream\":true,\"input\":\"x\"}",
                 "Streaming is not supported for embeddings.", "stream");
    expect_error(API_COMPLETIONS, "{\"model\":\"m\"}",
                 "Missing required parameter: 'prompt'.", "prompt");
    expect_error(API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":null}",
                 "Invalid type for 'prompt': expected a string or an array.",
                 "prompt");
    expect_error(API_EMBEDDINGS, "{\"model\":\"m\",\"input\":[true]}",
                 "Invalid type for 'input': unsupported item type.", "input");
    expect_error(API_RESPONSES, "{\"model\":\"m\"}",
                 "Missing required parameter: 'input'.", "input");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_documents),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_strings_and_escapes),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_nul_after_number_quirk),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_cursor_many_long_values),
        cmocka_unit_test(test_decode_chat),
        cmocka_unit_test(test_decode_other_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
