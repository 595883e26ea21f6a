/* Assembling streamed answers (core/stream_assemble.c) from chunks shaped
 * like OpenAI's: content, parallel tool calls, several choices, the usage
 * chunk, legacy completions, and streams that must give nothing. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stream_assemble.h"

#define HEAD                                                                   \
    "\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\","             \
    "\"created\":1733000000,\"model\":\"gpt-4o-2024-08-06\","                  \
    "\"system_fingerprint\":\"fp_1\""

static void feed_all(struct stream_assembly *a, const char *const *events)
{
    for (size_t i = 0; events[i]; i++)
        stream_assembly_event(a, events[i], strlen(events[i]));
}

/* Assembles `events` and returns the result parsed (NULL: no result). */
static json_t *assemble(enum stream_assemble_kind kind,
                        const char *const *events)
{
    struct stream_assembly *a = stream_assembly_new(kind, 1 << 20);
    assert_non_null(a);
    feed_all(a, events);
    size_t len = 0;
    char *out = stream_assembly_result(a, &len);
    json_t *j = NULL;
    if (out) {
        assert_int_equal(len, strlen(out));
        j = json_loads(out, 0, NULL);
        assert_non_null(j);
    }
    free(out);
    stream_assembly_free(a);
    return j;
}

static const char *str_at(json_t *root, const char *path)
{
    /* path like "choices.0.message.content" */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = root;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, ".")) {
        if (json_is_array(v))
            v = json_array_get(v, (size_t)atoi(tok));
        else
            v = json_object_get(v, tok);
    }
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *at(json_t *root, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = root;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, "."))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok))
                             : json_object_get(v, tok);
    return v;
}

static void test_content_and_usage(void **unused)
{
    (void)unused;
    static const char *const ev[] = {
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
        "\"content\":\"\",\"refusal\":null},\"logprobs\":null,"
        "\"finish_reason\":null}],\"usage\":null}",
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},"
        "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}",
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\", "
        "w\\u00f6rld\\n\"},\"logprobs\":null,\"finish_reason\":null}],"
        "\"usage\":null}",
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"}],\"usage\":null}",
        "{" HEAD ",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
        "\"completion_tokens\":4,\"total_tokens\":13,"
        "\"prompt_tokens_details\":{\"cached_tokens\":0}}}",
        "[DONE]",
        NULL,
    };
    json_t *j = assemble(STREAM_ASSEMBLE_CHAT, ev);
    assert_non_null(j);
    assert_string_equal(str_at(j, "id"), "chatcmpl-A1");
    assert_string_equal(str_at(j, "object"), "chat.completion");
    assert_int_equal(json_integer_value(at(j, "created")), 1733000000);
    assert_string_equal(str_at(j, "model"), "gpt-4o-2024-08-06");
    assert_string_equal(str_at(j, "system_fingerprint"), "fp_1");
    assert_int_equal(json_array_size(at(j, "choices")), 1);
    assert_string_equal(str_at(j, "choices.0.message.role"), "assistant");
    assert_string_equal(str_at(j, "choices.0.message.content"),
                        "Hello, w\xc3\xb6rld\n");
    assert_true(json_is_null(at(j, "choices.0.message.refusal")));
    assert_null(at(j, "choices.0.message.tool_calls"));
    assert_string_equal(str_at(j, "choices.0.finish_reason"), "stop");
    assert_int_equal(json_integer_value(at(j, "choices.0.index")), 0);
    assert_int_equal(json_integer_value(at(j, "usage.prompt_tokens")), 9);
    assert_int_equal(json_integer_value(at(j, "usage.completion_tokens")), 4);
    assert_int_equal(json_integer_value(at(j, "usage.total_tokens")), 13);
    assert_int_equal(
        json_integer_value(at(j, "usage.prompt_tokens_details.cached_tokens")),
        0);
    json_decref(j);
}

/* Two parallel tool calls, their argument pieces interleaved, as OpenAI
 * sends them: id/type/name once, then arguments by index. */
static void test_tool_calls_merged_by_index(void **unused)
{
    (void)unused;
    static const char *const ev[] = {
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
        "\"content\":null},\"logprobs\":null,\"finish_reason\":null}]}",
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{"
        "\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{"
        "\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"logprobs\":null,"
        "\"finish_reason\":null}]}",
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{"
        "\"index\":0,\"function\":{\"arguments\":\"{\\\"loc\"}}]},"
        "\"logprobs\":null,\"finish_reason\":null}]}",
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{"
        "\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{"
        "\"name\":\"get_time\",\"arguments\":\"{\\\"tz\\\":\"}}]},"
        "\"logprobs\":null,\"finish_reason\":null}]}",
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{"
        "\"index\":0,\"function\":{\"arguments\":\"\\\":\\\"Paris\\\"}\"}}]},"
        "\"logprobs\":null,\"finish_reason\":null}]}",
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{"
        "\"index\":1,\"function\":{\"arguments\":\"\\\"CET\\\"}\"}}]},"
        "\"logprobs\":null,\"finish_reason\":null}]}",
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
        "\"finish_reason\":\"tool_calls\"}]}",
        "[DONE]",
        NULL,
    };
    json_t *j = assemble(STREAM_ASSEMBLE_CHAT, ev);
    assert_non_null(j);
    assert_true(json_is_null(at(j, "choices.0.message.content")));
    assert_int_equal(json_array_size(at(j, "choices.0.message.tool_calls")), 2);
    assert_string_equal(str_at(j, "choices.0.message.tool_calls.0.id"),
                        "call_a");
    assert_string_equal(str_at(j, "choices.0.message.tool_calls.0.type"),
                        "function");
    assert_string_equal(
        str_at(j, "choices.0.message.tool_calls.0.function.name"),
        "get_weather");
    assert_string_equal(
        str_at(j, "choices.0.message.tool_calls.0.function.arguments"),
        "{\"loc\":\"Paris\"}");
    assert_string_equal(str_at(j, "choices.0.message.tool_calls.1.id"),
                        "call_b");
    assert_string_equal(
        str_at(j, "choices.0.message.tool_calls.1.function.name"), "get_time");
    assert_string_equal(
        str_at(j, "choices.0.message.tool_calls.1.function.arguments"),
        "{\"tz\":\"CET\"}");
    assert_string_equal(str_at(j, "choices.0.finish_reason"), "tool_calls");
    assert_null(at(j, "usage"));
    json_decref(j);
}

/* n=2: the choices' chunks interleave; each keeps its own text and
 * finish reason. */
static void test_several_choices(void **unused)
{
    (void)unused;
    static const char *const ev[] = {
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
        "\"content\":\"\"},\"finish_reason\":null}]}",
        "{" HEAD ",\"choices\":[{\"index\":1,\"delta\":{\"role\":\"assistant\","
        "\"content\":\"\"},\"finish_reason\":null}]}",
        "{" HEAD ",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"B1 \"},"
        "\"finish_reason\":null}]}",
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A1 \"},"
        "\"finish_reason\":null}]}",
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A2\"},"
        "\"finish_reason\":null}]}",
        "{" HEAD ",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"B2\"},"
        "\"finish_reason\":null}]}",
        "{" HEAD ",\"choices\":[{\"index\":1,\"delta\":{},"
        "\"finish_reason\":\"length\"}]}",
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{},"
        "\"finish_reason\":\"stop\"}]}",
        "[DONE]",
        NULL,
    };
    json_t *j = assemble(STREAM_ASSEMBLE_CHAT, ev);
    assert_non_null(j);
    assert_int_equal(json_array_size(at(j, "choices")), 2);
    assert_string_equal(str_at(j, "choices.0.message.content"), "A1 A2");
    assert_string_equal(str_at(j, "choices.0.finish_reason"), "stop");
    assert_int_equal(json_integer_value(at(j, "choices.1.index")), 1);
    assert_string_equal(str_at(j, "choices.1.message.content"), "B1 B2");
    assert_string_equal(str_at(j, "choices.1.finish_reason"), "length");
    json_decref(j);
}

static void test_completions_text(void **unused)
{
    (void)unused;
    static const char *const ev[] = {
        "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,"
        "\"model\":\"gpt-3.5-turbo-instruct\",\"choices\":[{\"text\":\"Once\","
        "\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}",
        "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,"
        "\"model\":\"gpt-3.5-turbo-instruct\",\"choices\":[{\"text\":\" upon\","
        "\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}",
        "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,"
        "\"model\":\"gpt-3.5-turbo-instruct\",\"choices\":[{\"text\":\"\","
        "\"index\":0,\"logprobs\":null,\"finish_reason\":\"length\"}]}",
        "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,"
        "\"model\":\"gpt-3.5-turbo-instruct\",\"choices\":[],\"usage\":{"
        "\"prompt_tokens\":2,\"completion_tokens\":2,\"total_tokens\":4}}",
        "[DONE]",
        NULL,
    };
    json_t *j = assemble(STREAM_ASSEMBLE_COMPLETIONS, ev);
    assert_non_null(j);
    assert_string_equal(str_at(j, "object"), "text_completion");
    assert_string_equal(str_at(j, "choices.0.text"), "Once upon");
    assert_string_equal(str_at(j, "choices.0.finish_reason"), "length");
    assert_null(at(j, "choices.0.message"));
    assert_int_equal(json_integer_value(at(j, "usage.total_tokens")), 4);
    json_decref(j);
}

static const char ROLE[] =
    "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
    "\"content\":\"Hi\"},\"finish_reason\":null}]}";
static const char STOP[] = "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{},"
                           "\"finish_reason\":\"stop\"}]}";

/* A cut stream must never look like an answer. */
static void test_incomplete_streams_give_nothing(void **unused)
{
    (void)unused;
    const char *no_done[] = {ROLE, STOP, NULL};
    assert_null(assemble(STREAM_ASSEMBLE_CHAT, no_done));
    const char *no_finish[] = {ROLE, "[DONE]", NULL};
    assert_null(assemble(STREAM_ASSEMBLE_CHAT, no_finish));
    const char *nothing[] = {"[DONE]", NULL};
    assert_null(assemble(STREAM_ASSEMBLE_CHAT, nothing));
    /* choice 1 never finished */
    const char *one_open[] = {
        ROLE, STOP,
        "{" HEAD ",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"x\"},"
        "\"finish_reason\":null}]}",
        "[DONE]", NULL};
    assert_null(assemble(STREAM_ASSEMBLE_CHAT, one_open));
    const char *error_event[] = {
        ROLE,
        "{\"error\":{\"message\":\"The upstream stream ended before "
        "completion.\",\"type\":\"api_error\",\"param\":null,\"code\":"
        "\"stream_truncated\"}}",
        STOP, "[DONE]", NULL};
    assert_null(assemble(STREAM_ASSEMBLE_CHAT, error_event));
    const char *garbage[] = {ROLE, "garbage!! this is not SSE {\"broken", STOP,
                             "[DONE]", NULL};
    assert_null(assemble(STREAM_ASSEMBLE_CHAT, garbage));
    const char *after_done[] = {ROLE, STOP, "[DONE]", ROLE, NULL};
    assert_null(assemble(STREAM_ASSEMBLE_CHAT, after_done));
    const char *bad_index[] = {"{" HEAD
                               ",\"choices\":[{\"index\":100000,\"delta\":{},"
                               "\"finish_reason\":\"stop\"}]}",
                               "[DONE]", NULL};
    assert_null(assemble(STREAM_ASSEMBLE_CHAT, bad_index));
    /* The control: the same events, finished, do give an answer. */
    const char *whole[] = {ROLE, STOP, "[DONE]", NULL};
    json_t *j = assemble(STREAM_ASSEMBLE_CHAT, whole);
    assert_non_null(j);
    assert_string_equal(str_at(j, "choices.0.message.content"), "Hi");
    json_decref(j);
}

/* The cap covers everything kept: text, ids, usage. */
static void test_size_cap(void **unused)
{
    (void)unused;
    char piece[601], ev1[1024], ev2[1024];
    memset(piece, 'x', 600);
    piece[600] = '\0';
    snprintf(ev1, sizeof ev1,
             "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
             "\"%s\"},\"finish_reason\":null}]}",
             piece);
    snprintf(ev2, sizeof ev2,
             "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
             "\"%s\"},\"finish_reason\":\"stop\"}]}",
             piece);
    const char *ev[] = {ev1, ev2, "[DONE]", NULL};
    size_t len;
    struct stream_assembly *a = stream_assembly_new(STREAM_ASSEMBLE_CHAT, 1100);
    feed_all(a, ev);
    assert_false(stream_assembly_complete(a));
    assert_null(stream_assembly_result(a, &len));
    stream_assembly_free(a);

    a = stream_assembly_new(STREAM_ASSEMBLE_CHAT, 1400); /* 1200 + ids */
    feed_all(a, ev);
    char *out = stream_assembly_result(a, &len);
    assert_non_null(out);
    assert_true(len > 1200);
    free(out);
    stream_assembly_free(a);
}

/* Chunk logprobs are concatenated like the text they describe. */
static void test_logprobs_concatenated(void **unused)
{
    (void)unused;
    const char *ev[] = {
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},"
        "\"logprobs\":{\"content\":[{\"token\":\"a\",\"logprob\":-0.5}],"
        "\"refusal\":null},\"finish_reason\":null}]}",
        "{" HEAD ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},"
        "\"logprobs\":{\"content\":[{\"token\":\"b\",\"logprob\":-1.0}],"
        "\"refusal\":null},\"finish_reason\":\"stop\"}]}",
        "[DONE]", NULL};
    json_t *j = assemble(STREAM_ASSEMBLE_CHAT, ev);
    assert_non_null(j);
    assert_int_equal(json_array_size(at(j, "choices.0.logprobs.content")), 2);
    assert_string_equal(str_at(j, "choices.0.logprobs.content.1.token"), "b");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_and_usage),
        cmocka_unit_test(test_tool_calls_merged_by_index),
        cmocka_unit_test(test_several_choices),
        cmocka_unit_test(test_completions_text),
        cmocka_unit_test(test_incomplete_streams_give_nothing),
        cmocka_unit_test(test_size_cap),
        cmocka_unit_test(test_logprobs_concatenated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
