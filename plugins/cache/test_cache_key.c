/* Unit tests for the cache key: what splits it and what does not, the
 * semantic scope, and which answers may be stored and how they are served. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cache_answer.h"
#include "cache_key.h"

static struct cache_key_rules rules(void)
{
    struct cache_key_rules r = {.seed = 7};
    const char *ign[] = {"user", "stream", "stream_options", "metadata",
                         "store"};
    for (size_t i = 0; i < 5; i++)
        r.ignored[r.ignored_count++] = ign[i];
    return r;
}

static void key_of(const char *json, const char *scope, const char *ep,
                   unsigned char out[CACHE_KEY_BYTES])
{
    struct cache_key_rules r = rules();
    json_t *body = json_loads(json, 0, NULL);
    assert_non_null(body);
    assert_int_equal(
        cache_key_exact(&r, (struct cache_part){scope, strlen(scope)},
                        (struct cache_part){ep, strlen(ep)}, body, out),
        0);
    json_decref(body);
}

static bool same_key(const char *a, const char *b)
{
    unsigned char ka[CACHE_KEY_BYTES], kb[CACHE_KEY_BYTES];
    key_of(a, "tdefault", "/v1/chat/completions", ka);
    key_of(b, "tdefault", "/v1/chat/completions", kb);
    return memcmp(ka, kb, sizeof ka) == 0;
}

#define M(content) "\"messages\":[{\"role\":\"user\",\"content\":" content "}]"

static void test_key_ignores_user_stream_order(void **unused)
{
    (void)unused;
    const char *base = "{\"model\":\"m\"," M("\"hi\"") ",\"temperature\":0}";
    assert_true(
        same_key(base, "{\"temperature\":0," M("\"hi\"") ",\"model\":\"m\"}"));
    assert_true(
        same_key(base, "{\"model\":\"m\"," M(
                           "\"hi\"") ",\"temperature\":0,\"user\":\"bob\"}"));
    assert_true(same_key(
        base, "{\"model\":\"m\"," M(
                  "\"hi\"") ",\"temperature\":0,\"stream\":true,"
                            "\"stream_options\":{\"include_usage\":true}}"));
    assert_true(same_key(
        base, "{\"model\":\"m\"," M("\"hi\"") ",\"temperature\":0.0}"));
    /* one text part is the plain string */
    assert_true(same_key(
        base,
        "{\"model\":\"m\"," M(
            "[{\"type\":\"text\",\"text\":\"hi\"}]") ",\"temperature\":0}"));
}

static void test_key_splits_on_what_changes_the_answer(void **unused)
{
    (void)unused;
    const char *base = "{\"model\":\"m\"," M("\"hi\"") ",\"temperature\":0}";
    const char *differ[] = {
        "{\"model\":\"m2\"," M("\"hi\"") ",\"temperature\":0}",
        "{\"model\":\"m\"," M("\"hi!\"") ",\"temperature\":0}",
        "{\"model\":\"m\"," M("\"hi\"") ",\"temperature\":0,\"top_p\":0.5}",
        "{\"model\":\"m\"," M("\"hi\"") ",\"temperature\":0,\"max_tokens\":5}",
        "{\"model\":\"m\"," M("\"hi\"") ",\"temperature\":0,\"seed\":1}",
        "{\"model\":\"m\"," M("\"hi\"") ",\"temperature\":0,\"stop\":[\"x\"]}",
        "{\"model\":\"m\"," M("\"hi\"") ",\"temperature\":0,\"n\":2}",
        "{\"model\":\"m\"," M("\"hi\"") ",\"temperature\":0,\"tools\":[{"
                                        "\"type\":\"function\",\"function\":"
                                        "{\"name\":\"f\"}}]}",
        "{\"model\":\"m\"," M("\"hi\"") ",\"temperature\":0,"
                                        "\"tool_choice\":\"none\"}",
        "{\"model\":\"m\"," M("\"hi\"") ",\"temperature\":0,"
                                        "\"response_format\":{\"type\":"
                                        "\"json_object\"}}",
        "{\"model\":\"m\"," M("\"hi\"") ",\"temperature\":0,"
                                        "\"unknown_new_param\":1}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":"
        "\"be short\"},{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"temperature\":0}",
        "{\"model\":\"m\"," M(
            "[{\"type\":\"text\",\"text\":\"h\"},"
            "{\"type\":\"text\",\"text\":\"i\"}]") ",\"temperature\":0}",
        "{\"model\":\"m\"," M("\"hi\"") ",\"temperature\":\"0\"}",
    };
    for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++)
        assert_false(same_key(base, differ[i]));
}

static void test_key_splits_on_scope_and_endpoint(void **unused)
{
    (void)unused;
    const char *b = "{\"model\":\"m\"," M("\"hi\"") "}";
    unsigned char k1[16], k2[16], k3[16];
    key_of(b, "tacme", "/v1/chat/completions", k1);
    key_of(b, "tother", "/v1/chat/completions", k2);
    key_of(b, "tacme", "/v1/completions", k3);
    assert_memory_not_equal(k1, k2, 16);
    assert_memory_not_equal(k1, k3, 16);
}

static int semantic(const char *json, unsigned char out[16],
                    struct cache_part *text)
{
    struct cache_key_rules r = rules();
    json_t *body = json_loads(json, 0, NULL);
    int rc = cache_key_semantic(&r, (struct cache_part){"t", 1},
                                (struct cache_part){"/c", 2}, body, out, text);
    /* text is borrowed from body: keep a copy for the test */
    static char copy[256];
    if (rc == 0) {
        memcpy(copy, text->ptr, text->len);
        text->ptr = copy;
    }
    json_decref(body);
    return rc;
}

static void test_semantic_scope(void **unused)
{
    (void)unused;
    unsigned char a[16], b[16], c[16], ex[16];
    struct cache_part t;
    assert_int_equal(
        semantic("{\"model\":\"m\"," M("\"What is X?\"") "}", a, &t), 0);
    assert_int_equal(t.len, 10);
    assert_memory_equal(t.ptr, "What is X?", 10);
    /* a different question: same scope */
    assert_int_equal(
        semantic("{\"model\":\"m\"," M("\"Tell me X\"") "}", b, &t), 0);
    assert_memory_equal(a, b, 16);
    /* a system prompt or another model: another scope */
    assert_int_equal(
        semantic("{\"model\":\"m\",\"messages\":[{\"role\":\"system\","
                 "\"content\":\"pirate\"},{\"role\":\"user\",\"content\":"
                 "\"What is X?\"}]}",
                 c, &t),
        0);
    assert_memory_not_equal(a, c, 16);
    assert_int_equal(
        semantic("{\"model\":\"n\"," M("\"What is X?\"") "}", c, &t), 0);
    assert_memory_not_equal(a, c, 16);
    /* never equal to an exact key of the same body */
    key_of("{\"model\":\"m\"," M("\"What is X?\"") "}", "t", "/c", ex);
    assert_memory_not_equal(a, ex, 16);
    /* nothing to compare: an assistant turn last, images, empty text */
    assert_int_equal(
        semantic("{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\","
                 "\"content\":\"x\"}]}",
                 c, &t),
        -1);
    assert_int_equal(
        semantic("{\"model\":\"m\"," M("[{\"type\":\"image_url\"}]") "}", c,
                 &t),
        -1);
    assert_int_equal(semantic("{\"model\":\"m\"," M("\"\"") "}", c, &t), -1);
    /* completions prompt */
    assert_int_equal(semantic("{\"model\":\"m\",\"prompt\":\"Say hi\"}", c, &t),
                     0);
    assert_memory_equal(t.ptr, "Say hi", 6);
}

static void test_temperature(void **unused)
{
    (void)unused;
    json_t *a = json_loads("{\"temperature\":0.3}", 0, NULL);
    json_t *b = json_loads("{}", 0, NULL);
    json_t *c = json_loads("{\"temperature\":\"hot\"}", 0, NULL);
    assert_true(cache_key_temperature(a, 1) == 0.3);
    assert_true(cache_key_temperature(b, 1) == 1);
    assert_true(isnan(cache_key_temperature(c, 1)));
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static const char *const stop_length[] = {"stop", "length"};
static const struct cache_finish_rules finish = {stop_length, 2};

static bool storable(const char *s)
{
    return cache_answer_storable(s, strlen(s), &finish);
}

static void test_storable_answers(void **unused)
{
    (void)unused;
    assert_true(storable("{\"object\":\"chat.completion\",\"choices\":[{"
                         "\"finish_reason\":\"stop\"}]}"));
    assert_true(storable("{\"object\":\"text_completion\",\"choices\":[{"
                         "\"finish_reason\":\"length\"}]}"));
    assert_false(storable("{\"object\":\"chat.completion\",\"choices\":[{"
                          "\"finish_reason\":\"tool_calls\"}]}"));
    assert_false(storable("{\"object\":\"chat.completion\",\"choices\":[{"
                          "\"finish_reason\":\"stop\"},{\"finish_reason\":"
                          "\"content_filter\"}]}"));
    assert_false(storable("{\"object\":\"chat.completion\",\"choices\":[{"
                          "\"finish_reason\":null}]}"));
    assert_false(storable("{\"object\":\"chat.completion\",\"choices\":[]}"));
    assert_false(storable("{\"error\":{\"message\":\"x\"},\"object\":"
                          "\"chat.completion\",\"choices\":[{"
                          "\"finish_reason\":\"stop\"}]}"));
    assert_false(storable("{\"object\":\"list\"}"));
    assert_false(storable("{\"object\":\"chat.completion\",\"choices\":[{"
                          "\"finish_reason\":\"stop\"}]")); /* cut */
    assert_false(storable("not json"));
}

static void test_served_answer_is_fresh_and_cached(void **unused)
{
    (void)unused;
    const char *stored =
        "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion\",\"created\":"
        "1,\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
        "\"assistant\",\"content\":\"yo\"},\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":1,"
        "\"total_tokens\":13}}";
    size_t n1 = 0, n2 = 0;
    char *a = cache_answer_serve(stored, strlen(stored), 1, 1700000000, &n1);
    char *b = cache_answer_serve(stored, strlen(stored), 2, 1700000001, &n2);
    json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
    const char *ida = json_string_value(json_object_get(ja, "id"));
    const char *idb = json_string_value(json_object_get(jb, "id"));
    assert_true(strncmp(ida, "chatcmpl-", 9) == 0);
    assert_string_not_equal(ida, "chatcmpl-abc");
    assert_string_not_equal(ida, idb);
    assert_int_equal(json_integer_value(json_object_get(ja, "created")),
                     1700000000);
    json_t *usage = json_object_get(ja, "usage");
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(usage, "prompt_tokens_details"), "cached_tokens")),
        12);
    assert_int_equal(json_integer_value(json_object_get(usage, "total_tokens")),
                     13);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(ja, "choices"), 0),
                            "message"),
            "content")),
        "yo");
    json_decref(ja);
    json_decref(jb);
    free(a);
    free(b);
}

static void test_template_filled_on_each_hit(void **unused)
{
    (void)unused;
    const char *stored =
        "{\"object\":\"chat.completion\",\"id\":\"chatcmpl-abc\",\"created\":"
        "1,\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
        "\"assistant\",\"content\":\"say \\\",\\\"created\\\":1 now\"},"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,"
        "\"completion_tokens\":1,\"total_tokens\":13}}";
    size_t tlen = 0;
    char *t = cache_answer_template(stored, strlen(stored), &tlen);
    assert_non_null(t);
    char *a = cache_answer_fill(t, tlen, 0x0123456789abcdefull, 1700000000);
    char *b = cache_answer_fill(t, tlen, 42, 1700000001);
    assert_non_null(a);
    assert_non_null(b);
    json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
    assert_non_null(ja);
    assert_non_null(jb);
    const char *ida = json_string_value(json_object_get(ja, "id"));
    assert_true(strncmp(ida, "chatcmpl-sluice0123456789abcdef", 31) == 0);
    assert_int_equal(strlen(ida), strlen("chatcmpl-sluice") + 24);
    assert_string_not_equal(ida, json_string_value(json_object_get(jb, "id")));
    assert_int_equal(json_integer_value(json_object_get(ja, "created")),
                     1700000000);
    assert_int_equal(json_integer_value(json_object_get(jb, "created")),
                     1700000001);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(ja, "usage"),
                                         "prompt_tokens_details"),
                         "cached_tokens")),
                     12);
    /* the content kept its look-alike text untouched */
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(ja, "choices"), 0),
                            "message"),
            "content")),
        "say \",\"created\":1 now");
    /* what is not a template is refused (served the slow way) */
    assert_null(cache_answer_fill(stored, strlen(stored), 1, 1700000000));
    assert_null(cache_answer_fill(t, 10, 1, 1700000000));
    json_decref(ja);
    json_decref(jb);
    free(a);
    free(b);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_ignores_user_stream_order),
        cmocka_unit_test(test_key_splits_on_what_changes_the_answer),
        cmocka_unit_test(test_key_splits_on_scope_and_endpoint),
        cmocka_unit_test(test_semantic_scope),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_storable_answers),
        cmocka_unit_test(test_served_answer_is_fresh_and_cached),
        cmocka_unit_test(test_template_filled_on_each_hit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
