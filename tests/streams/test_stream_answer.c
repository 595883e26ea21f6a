/* Rendering a complete answer as a stream (core/stream_answer.c): the
 * event sequence official clients expect, the usage chunk only when asked
 * for, and a round trip through the assembler that gives the answer back. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stream_answer.h"
#include "stream_assemble.h"

#define MAX_EVENTS 512

struct events {
    size_t n;
    char *data[MAX_EVENTS]; /* each event's data, NUL-terminated */
};

/* Splits rendered SSE into its events, checking the framing on the way:
 * every event is exactly "data: ...\n\n". */
static void split(const char *sse, size_t len, struct events *ev)
{
    const char *p = sse, *end = sse + len;
    ev->n = 0;
    while (p < end) {
        assert_true(end - p > 6);
        assert_memory_equal(p, "data: ", 6);
        const char *stop = strstr(p, "\n\n");
        assert_non_null(stop);
        assert_true(ev->n < MAX_EVENTS);
        ev->data[ev->n++] = strndup(p + 6, (size_t)(stop - p - 6));
        assert_null(memchr(p + 6, '\n', (size_t)(stop - p - 6)));
        p = stop + 2;
    }
}

static void events_free(struct events *ev)
{
    for (size_t i = 0; i < ev->n; i++)
        free(ev->data[i]);
}

static char *render(enum stream_assemble_kind kind, const char *body,
                    bool include_usage, struct events *ev)
{
    size_t len = 0;
    char *sse =
        stream_answer_render(kind, body, strlen(body), include_usage, &len);
    if (sse)
        split(sse, len, ev);
    return sse;
}

/* Feeds the events to the assembler and compares with `body`. */
static void assert_round_trip(enum stream_assemble_kind kind, const char *body,
                              const struct events *ev)
{
    struct stream_assembly *a = stream_assembly_new(kind, 1 << 20);
    for (size_t i = 0; i < ev->n; i++)
        stream_assembly_event(a, ev->data[i], strlen(ev->data[i]));
    size_t len;
    char *out = stream_assembly_result(a, &len);
    assert_non_null(out);
    json_t *got = json_loads(out, 0, NULL), *want = json_loads(body, 0, NULL);
    if (!json_equal(got, want)) {
        char *w = json_dumps(want, JSON_COMPACT);
        print_error("want %s\n got %s\n", w, out);
        free(w);
        fail();
    }
    json_decref(got);
    json_decref(want);
    free(out);
    stream_assembly_free(a);
}

static json_t *parse(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    assert_non_null(j);
    return j;
}

static const char CHAT[] =
    "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion\",\"created\":"
    "1733000000,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_x\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"mock reply to: stream please, with enough words to need "
    "several content chunks \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
    "\xc3\xa9 end\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":"
    "\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":20,"
    "\"total_tokens\":23}}";

static void test_chat_event_sequence(void **unused)
{
    (void)unused;
    struct events ev;
    char *sse = render(STREAM_ASSEMBLE_CHAT, CHAT, true, &ev);
    assert_non_null(sse);
    assert_true(ev.n >= 5); /* role, >= 2 content, finish, usage, [DONE] */
    assert_string_equal(ev.data[ev.n - 1], "[DONE]");

    json_t *first = parse(ev.data[0]);
    assert_string_equal(json_string_value(json_object_get(first, "object")),
                        "chat.completion.chunk");
    assert_string_equal(json_string_value(json_object_get(first, "id")),
                        "chatcmpl-9");
    json_t *c0 = json_array_get(json_object_get(first, "choices"), 0);
    json_t *d0 = json_object_get(c0, "delta");
    assert_string_equal(json_string_value(json_object_get(d0, "role")),
                        "assistant");
    assert_string_equal(json_string_value(json_object_get(d0, "content")), "");
    assert_true(json_is_null(json_object_get(c0, "finish_reason")));
    assert_true(json_is_null(json_object_get(first, "usage")));
    json_decref(first);

    /* Content chunks are pieces of the text, each valid UTF-8 JSON. */
    size_t content_chunks = 0;
    for (size_t i = 1; i + 3 < ev.n; i++) {
        json_t *c = parse(ev.data[i]);
        json_t *d = json_object_get(
            json_array_get(json_object_get(c, "choices"), 0), "delta");
        assert_non_null(json_object_get(d, "content"));
        content_chunks++;
        json_decref(c);
    }
    assert_true(content_chunks >= 2);

    json_t *fin = parse(ev.data[ev.n - 3]);
    json_t *fc = json_array_get(json_object_get(fin, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(fc, "finish_reason")),
                        "stop");
    assert_int_equal(json_object_size(json_object_get(fc, "delta")), 0);
    json_decref(fin);

    json_t *usage = parse(ev.data[ev.n - 2]);
    assert_int_equal(json_array_size(json_object_get(usage, "choices")), 0);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(usage, "usage"), "total_tokens")),
                     23);
    json_decref(usage);

    assert_round_trip(STREAM_ASSEMBLE_CHAT, CHAT, &ev);
    events_free(&ev);
    free(sse);
}

/* Without include_usage a live stream has no usage chunk and no
 * "usage":null members. */
static void test_no_usage_chunk_unless_asked(void **unused)
{
    (void)unused;
    struct events ev;
    char *sse = render(STREAM_ASSEMBLE_CHAT, CHAT, false, &ev);
    assert_non_null(sse);
    assert_null(strstr(sse, "\"usage\""));
    for (size_t i = 0; i + 1 < ev.n; i++) {
        json_t *c = parse(ev.data[i]);
        assert_int_equal(json_array_size(json_object_get(c, "choices")), 1);
        json_decref(c);
    }
    events_free(&ev);
    free(sse);
}

static const char TOOLS[] =
    "{\"id\":\"chatcmpl-t\",\"object\":\"chat.completion\",\"created\":7,"
    "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
    "\"assistant\",\"content\":null,\"refusal\":null,\"tool_calls\":[{\"id\":"
    "\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
    "\"arguments\":\"{\\\"location\\\":\\\"Paris, France\\\",\\\"unit\\\":"
    "\\\"celsius\\\",\\\"days\\\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14]}\"}},{"
    "\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":"
    "\"get_time\",\"arguments\":\"{}\"}}]},\"logprobs\":null,"
    "\"finish_reason\":\"tool_calls\"},{\"index\":1,\"message\":{\"role\":"
    "\"assistant\",\"content\":\"second choice\",\"refusal\":null},"
    "\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":{"
    "\"prompt_tokens\":30,\"completion_tokens\":40,\"total_tokens\":70}}";

static void test_tool_calls_and_choices_round_trip(void **unused)
{
    (void)unused;
    struct events ev;
    char *sse = render(STREAM_ASSEMBLE_CHAT, TOOLS, true, &ev);
    assert_non_null(sse);
    /* The first tool-call chunk names the call; later ones only add
     * arguments under the same index. */
    size_t named = 0, pieces = 0;
    for (size_t i = 0; i + 1 < ev.n; i++) {
        json_t *c = parse(ev.data[i]);
        json_t *calls = json_object_get(
            json_object_get(json_array_get(json_object_get(c, "choices"), 0),
                            "delta"),
            "tool_calls");
        json_t *call = json_array_get(calls, 0);
        if (call) {
            if (json_object_get(call, "id"))
                named++;
            else
                pieces++;
            assert_true(json_is_integer(json_object_get(call, "index")));
        }
        json_decref(c);
    }
    assert_int_equal(named, 2);
    assert_true(pieces >= 2); /* the long arguments came in pieces */
    assert_round_trip(STREAM_ASSEMBLE_CHAT, TOOLS, &ev);
    events_free(&ev);
    free(sse);
}

static const char TEXT[] =
    "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,"
    "\"model\":\"gpt-3.5-turbo-instruct\",\"choices\":[{\"text\":\"Once upon "
    "a time there was a gateway that streamed answers it already had.\","
    "\"index\":0,\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":"
    "{\"prompt_tokens\":2,\"completion_tokens\":12,\"total_tokens\":14}}";

static void test_completions_round_trip(void **unused)
{
    (void)unused;
    struct events ev;
    char *sse = render(STREAM_ASSEMBLE_COMPLETIONS, TEXT, true, &ev);
    assert_non_null(sse);
    json_t *c = parse(ev.data[0]);
    assert_string_equal(json_string_value(json_object_get(c, "object")),
                        "text_completion");
    json_decref(c);
    assert_round_trip(STREAM_ASSEMBLE_COMPLETIONS, TEXT, &ev);
    events_free(&ev);
    free(sse);
}

/* Bodies that are not an answer of the request's kind are left alone. */
static void test_not_an_answer(void **unused)
{
    (void)unused;
    size_t len;
    const char *bad[] = {
        "not json",
        "[1,2]",
        "{\"error\":{\"message\":\"x\"}}",
        "{\"object\":\"list\",\"data\":[]}",
        "{\"object\":\"chat.completion\"}",
        "{\"object\":\"chat.completion\",\"choices\":{}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(stream_answer_render(STREAM_ASSEMBLE_CHAT, bad[i],
                                         strlen(bad[i]), true, &len));
    assert_null(stream_answer_render(STREAM_ASSEMBLE_CHAT, TEXT, strlen(TEXT),
                                     true, &len));
    assert_null(stream_answer_render(STREAM_ASSEMBLE_COMPLETIONS, CHAT,
                                     strlen(CHAT), true, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_event_sequence),
        cmocka_unit_test(test_no_usage_chunk_unless_asked),
        cmocka_unit_test(test_tool_calls_and_choices_round_trip),
        cmocka_unit_test(test_completions_round_trip),
        cmocka_unit_test(test_not_an_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
