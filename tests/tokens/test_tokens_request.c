/* Request-level counting: OpenAI's chat framing (the cookbook's published
 * totals), tools, names, images, prompts, the byte cap, the model table
 * and the config section. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tokens/image_size.h"
#include "tokens/model_encoding.h"
#include "tokens/request_count.h"
#include "tokens/tokens_config.h"

/* openai-cookbook "How to count tokens with tiktoken": 129 prompt tokens
 * for gpt-4 / gpt-3.5-turbo, 124 for gpt-4o (as the API reported). */
static const char cookbook_chat[] =
    "{\"model\":\"m\",\"messages\":["
    "{\"role\":\"system\",\"content\":\"You are a helpful, pattern-following "
    "assistant that translates corporate jargon into plain English.\"},"
    "{\"role\":\"system\",\"name\":\"example_user\",\"content\":\"New "
    "synergies will help drive top-line growth.\"},"
    "{\"role\":\"system\",\"name\":\"example_assistant\",\"content\":\"Things "
    "working well together will increase revenue.\"},"
    "{\"role\":\"system\",\"name\":\"example_user\",\"content\":\"Let's "
    "circle back when we have more bandwidth to touch base on opportunities "
    "for increased leverage.\"},"
    "{\"role\":\"system\",\"name\":\"example_assistant\",\"content\":\"Let's "
    "talk later when we're less busy about how to do better.\"},"
    "{\"role\":\"user\",\"content\":\"This late pivot means we don't have "
    "time to boil the ocean for the client deliverable.\"}]}";

/* The cookbook's function-calling example: 105 (gpt-4, gpt-3.5-turbo) and
 * 101 (gpt-4o, gpt-4o-mini). */
static const char cookbook_tools[] =
    "{\"model\":\"m\",\"messages\":["
    "{\"role\":\"system\",\"content\":\"You are a helpful assistant that can "
    "answer to questions about the weather.\"},"
    "{\"role\":\"user\",\"content\":\"What's the weather like in San "
    "Francisco?\"}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_current_"
    "weather\",\"description\":\"Get the current weather in a given "
    "location\",\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"location\":{\"type\":\"string\",\"description\":\"The city and state, "
    "e.g. San Francisco, CA\"},\"unit\":{\"type\":\"string\",\"description\":"
    "\"The unit of temperature to return\",\"enum\":[\"celsius\","
    "\"fahrenheit\"]}},\"required\":[\"location\"]}}}]}";

static uint64_t count(enum api_kind kind, const char *body,
                      enum tok_encoding_id id, size_t cap,
                      struct tok_request_count *out)
{
    struct tok_request_count c;
    assert_true(tok_count_request(kind, body, strlen(body),
                                  tok_encoding_get(id), cap, out ? out : &c));
    return (out ? out : &c)->tokens;
}

static void test_cookbook_totals(void **state)
{
    (void)state;
    assert_int_equal(count(API_CHAT, cookbook_chat, TOK_CL100K_BASE, 0, NULL),
                     129);
    assert_int_equal(count(API_CHAT, cookbook_chat, TOK_O200K_BASE, 0, NULL),
                     124);
    assert_int_equal(count(API_CHAT, cookbook_tools, TOK_CL100K_BASE, 0, NULL),
                     105);
    assert_int_equal(count(API_CHAT, cookbook_tools, TOK_O200K_BASE, 0, NULL),
                     101);
}

/* "hi" is one token: 3 per message + role + content + 3 priming; a name
 * adds its tokens plus one. */
static void test_framing_pieces(void **state)
{
    (void)state;
    const char *one = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                      "\"content\":\"hi\"}]}";
    assert_int_equal(count(API_CHAT, one, TOK_O200K_BASE, 0, NULL), 8);
    const char *named = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                        "\"name\":\"bob\",\"content\":\"hi\"}]}";
    assert_int_equal(count(API_CHAT, named, TOK_O200K_BASE, 0, NULL), 10);
    /* Escaped text is counted decoded: "\u00e9t\u00e9" is "été". */
    const char *esc = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                      "\"content\":\"\\u00e9t\\u00e9\"}]}";
    const char *raw = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                      "\"content\":\"\xc3\xa9t\xc3\xa9\"}]}";
    assert_int_equal(count(API_CHAT, esc, TOK_O200K_BASE, 0, NULL),
                     count(API_CHAT, raw, TOK_O200K_BASE, 0, NULL));
    /* Content parts: text parts count like a string. */
    const char *parts = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                        "\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}]}";
    assert_int_equal(count(API_CHAT, parts, TOK_O200K_BASE, 0, NULL), 8);
}

static void test_images(void **state)
{
    (void)state;
    /* OpenAI's examples: 1024x1024 high = 765, 2048x4096 = 1105. */
    assert_int_equal(tok_image_tokens(1024, 1024), 765);
    assert_int_equal(tok_image_tokens(2048, 4096), 1105);
    assert_int_equal(tok_image_tokens(100, 100), 255);
    struct tok_request_count c;
    const char *low = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                      "\"content\":[{\"type\":\"image_url\",\"image_url\":{"
                      "\"url\":\"https://x/y.png\",\"detail\":\"low\"}}]}]}";
    assert_int_equal(count(API_CHAT, low, TOK_O200K_BASE, 0, &c), 7 + 85);
    assert_false(c.media_estimated);
    /* A PNG header 2048x4096 inline: its size is read, not estimated. */
    const char *png =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{"
        "\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;"
        "base64,iVBORw0KGgoAAAANSUhEUgAACAAAABAACAYAAAA=\"}}]}]}";
    assert_int_equal(count(API_CHAT, png, TOK_O200K_BASE, 0, &c), 7 + 1105);
    assert_false(c.media_estimated);
    /* A remote image in high detail: size unknown, marked estimated. */
    const char *remote = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                         "\"content\":[{\"type\":\"image_url\",\"image_url\":"
                         "{\"url\":\"https://x/y.png\"}}]}]}";
    assert_int_equal(count(API_CHAT, remote, TOK_O200K_BASE, 0, &c), 7 + 765);
    assert_true(c.media_estimated);
}

static void test_prompts(void **state)
{
    (void)state;
    /* Completions and embeddings: text only, token-id arrays one each. */
    assert_int_equal(count(API_COMPLETIONS,
                           "{\"model\":\"m\",\"prompt\":\"Hello world\"}",
                           TOK_CL100K_BASE, 0, NULL),
                     2);
    assert_int_equal(count(API_EMBEDDINGS,
                           "{\"model\":\"m\",\"input\":[\"Hello world\","
                           "[1,2,3],\"hi\"]}",
                           TOK_CL100K_BASE, 0, NULL),
                     6);
    assert_int_equal(count(API_RESPONSES, "{\"model\":\"m\",\"input\":\"hi\"}",
                           TOK_O200K_BASE, 0, NULL),
                     7);
}

/* Past the byte cap the rest is scaled by the counted part's ratio and
 * the result says so; under it nothing changes. */
static void test_byte_cap_extrapolates(void **state)
{
    (void)state;
    size_t n = 64 * 1024;
    char *body = malloc(n + 100);
    int k = snprintf(body, 100,
                     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                     "\"content\":\"");
    for (size_t i = 0; i < n; i++)
        body[k + i] = "hello world "[i % 12];
    strcpy(body + k + n, "\"}]}");
    struct tok_request_count full, capped;
    uint64_t exact = count(API_CHAT, body, TOK_O200K_BASE, 0, &full);
    uint64_t est = count(API_CHAT, body, TOK_O200K_BASE, 4096, &capped);
    assert_false(full.extrapolated);
    assert_true(capped.extrapolated);
    assert_true(est > exact * 98 / 100 && est < exact * 102 / 100);
    free(body);
}

static void test_model_table(void **state)
{
    (void)state;
    static const struct {
        const char *model;
        int enc; /* -1: unknown */
    } cases[] = {
        {"gpt-4o", TOK_O200K_BASE},
        {"gpt-4o-mini-2024-07-18", TOK_O200K_BASE},
        {"gpt-4.1-nano", TOK_O200K_BASE},
        {"o3-mini", TOK_O200K_BASE},
        {"o1", TOK_O200K_BASE},
        {"gpt-5", TOK_O200K_BASE},
        {"gpt-4-turbo", TOK_CL100K_BASE},
        {"gpt-4", TOK_CL100K_BASE},
        {"gpt-3.5-turbo-0125", TOK_CL100K_BASE},
        {"text-embedding-3-small", TOK_CL100K_BASE},
        {"text-embedding-ada-002", TOK_CL100K_BASE},
        {"ft:gpt-4o-mini:acme::abc", TOK_O200K_BASE},
        {"llama-3-70b", -1},
        {"claude-3", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum tok_encoding_id id;
        bool ok = tok_model_encoding(NULL, cases[i].model,
                                     strlen(cases[i].model), &id);
        assert_int_equal(ok, cases[i].enc >= 0);
        if (ok)
            assert_int_equal(id, cases[i].enc);
    }
}

static void test_config_section(void **state)
{
    (void)state;
    struct tokens_config tc;
    char path[96], msg[160];
    tokens_config_defaults(&tc);
    assert_int_equal(tc.max_bytes, TOK_DEFAULT_MAX_BYTES);
    json_t *ok = json_loads("{\"max_bytes\": 65536, \"models\": {\"llama*\": "
                            "\"cl100k_base\", \"gpt-4\": \"o200k_base\"}}",
                            0, NULL);
    assert_true(
        tokens_config_parse(ok, &tc, path, sizeof path, msg, sizeof msg));
    assert_int_equal(tc.max_bytes, 65536);
    enum tok_encoding_id id;
    assert_true(tok_model_encoding(&tc.models, "llama-3", 7, &id));
    assert_int_equal(id, TOK_CL100K_BASE);
    /* Config rules come first, so they can override the built-in table. */
    assert_true(tok_model_encoding(&tc.models, "gpt-4", 5, &id));
    assert_int_equal(id, TOK_O200K_BASE);
    json_decref(ok);

    static const char *const bad[][2] = {
        {"{\"max_bytes\": 10}", "tokens.max_bytes"},
        {"{\"models\": {\"x\": \"p50k_base\"}}", "tokens.models.x"},
        {"{\"models\": []}", "tokens.models"},
        {"{\"cap\": 1}", "tokens.cap"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = json_loads(bad[i][0], 0, NULL);
        tokens_config_defaults(&tc);
        assert_false(
            tokens_config_parse(j, &tc, path, sizeof path, msg, sizeof msg));
        assert_string_equal(path, bad[i][1]);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cookbook_totals),
        cmocka_unit_test(test_framing_pieces),
        cmocka_unit_test(test_images),
        cmocka_unit_test(test_prompts),
        cmocka_unit_test(test_byte_cap_extrapolates),
        cmocka_unit_test(test_model_table),
        cmocka_unit_test(test_config_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
