/* SSE parser: framing per the WHATWG rules under arbitrary splits, the
 * event cap, [DONE], and usage extraction from chat, completions,
 * responses and embeddings payloads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "upstream/sse.h"

/* Every event rendered into one text, so runs compare with strcmp. */
struct transcript {
    char *text;
    size_t len;
    size_t events;
    size_t raw_total;
    bool with_raw_len;
};

static void record(const struct sse_event *ev, void *arg)
{
    struct transcript *t = arg;
    char head[160];
    int n = snprintf(head, sizeof(head), "[%.*s|done=%d|uo=%d|raw=%zu]",
                     ev->event ? (int)ev->event_len : 1,
                     ev->event ? ev->event : "-", ev->done, ev->usage_only,
                     t->with_raw_len ? ev->raw_len : 0);
    assert_true(n > 0 && (size_t)n < sizeof(head));
    t->text = realloc(t->text, t->len + (size_t)n + ev->data_len + 2);
    assert_non_null(t->text);
    memcpy(t->text + t->len, head, (size_t)n);
    t->len += (size_t)n;
    memcpy(t->text + t->len, ev->data, ev->data_len);
    t->len += ev->data_len;
    t->text[t->len++] = '\n';
    t->text[t->len] = '\0';
    t->events++;
    t->raw_total += ev->raw_len;
}

static void transcript_reset(struct transcript *t, bool with_raw_len)
{
    free(t->text);
    memset(t, 0, sizeof(*t));
    t->with_raw_len = with_raw_len;
}

/* Feeds `s` cut at the given offsets (sorted, within the string). */
static void feed_cut(const char *s, size_t len, const size_t *cuts,
                     size_t ncuts, struct transcript *t,
                     struct sse_usage *usage)
{
    struct sse_parser *p = sse_parser_new(1 << 16);
    assert_non_null(p);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        assert_true(sse_parser_feed(p, s + at, end - at, record, t));
        at = end;
    }
    if (usage)
        *usage = sse_parser_usage(p);
    sse_parser_free(p);
}

static const char chat_stream[] =
    ": keep-alive comment\n"
    "\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"h\xc3\xa9"
    "llo \xf0\x9f\x98\x80\"}}],\"usage\":null}\n"
    "\n"
    "event: note\n"
    "data: line one\n"
    "data:line two\n"
    "data\n"
    "id: 7\n"
    "retry: 100\n"
    "\n"
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,"
    "\"completion_tokens\":5,\"total_tokens\":16,"
    "\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char chat_expected[] =
    "[-|done=0|uo=0|raw=%]{\"id\":\"c1\",\"choices\":[{\"delta\":{"
    "\"content\":\"h\xc3\xa9llo \xf0\x9f\x98\x80\"}}],\"usage\":null}\n";

/* Where each event ends in the feed that completed it (sse_event.end):
 * the relay passes [end - raw_len, end) of that feed through as raw bytes
 * when it lies inside it, so it must be exactly the event's bytes. */
struct offsets {
    size_t base;     /* offset of the current feed in the stream */
    size_t ends[8];  /* stream offset just past each event */
    size_t whole[8]; /* 1: the event lay inside the feed that ended it */
    size_t n;
};

static void record_offsets(const struct sse_event *ev, void *arg)
{
    struct offsets *o = arg;
    assert_true(o->n < 8);
    o->ends[o->n] = o->base + ev->end;
    o->whole[o->n] = ev->raw_len <= ev->end;
    size_t start = o->n ? o->ends[o->n - 1] : 0;
    assert_int_equal(ev->raw_len, o->ends[o->n] - start);
    o->n++;
}

static void test_event_end_offsets(void **state)
{
    const size_t len = sizeof(chat_stream) - 1;
    struct offsets whole = {0};
    struct sse_parser *p = sse_parser_new(1 << 16);
    assert_true(sse_parser_feed(p, chat_stream, len, record_offsets, &whole));
    sse_parser_free(p);
    assert_int_equal(whole.n, 4);
    assert_int_equal(whole.ends[3], len);
    assert_memory_equal(chat_stream + whole.ends[2], "data: [DONE]\n\n", 14);
    for (size_t cut = 0; cut <= len; cut++) {
        struct offsets o = {0};
        p = sse_parser_new(1 << 16);
        assert_true(sse_parser_feed(p, chat_stream, cut, record_offsets, &o));
        o.base = cut;
        assert_true(sse_parser_feed(p, chat_stream + cut, len - cut,
                                    record_offsets, &o));
        sse_parser_free(p);
        assert_int_equal(o.n, 4);
        for (size_t i = 0; i < 4; i++) {
            size_t start = i ? whole.ends[i - 1] : 0;
            assert_int_equal(o.ends[i], whole.ends[i]);
            /* Whole in its feed exactly when no cut fell inside it. */
            assert_int_equal(o.whole[i], !(cut > start && cut < whole.ends[i]));
        }
    }
    (void)state;
}

static void test_split_invariance(void **state)
{
    const size_t len = sizeof(chat_stream) - 1;
    struct transcript whole = {0}, t = {0};
    struct sse_usage u_whole;

    transcript_reset(&whole, true);
    feed_cut(chat_stream, len, NULL, 0, &whole, &u_whole);
    assert_int_equal(whole.events, 4);
    assert_int_equal(whole.raw_total, len);
    assert_true(u_whole.known);
    assert_int_equal(u_whole.prompt_tokens, 11);
    /* The data of the first event, with the comment block's bytes counted
     * in its raw_len. */
    assert_non_null(strstr(whole.text, strchr(chat_expected, ']') + 1));
    assert_non_null(strstr(whole.text, "[note|done=0|uo=0|raw="));
    assert_non_null(strstr(whole.text, "]line one\nline two\n\n"));
    assert_non_null(strstr(whole.text, "[-|done=1|uo=0|raw=14][DONE]\n"));

    /* Two pieces, cut at every offset (mid-UTF-8 included). */
    for (size_t cut = 0; cut <= len; cut++) {
        transcript_reset(&t, true);
        struct sse_usage u;
        feed_cut(chat_stream, len, &cut, 1, &t, &u);
        assert_string_equal(t.text, whole.text);
        assert_memory_equal(&u, &u_whole, sizeof(u));
    }
    /* Byte by byte. */
    size_t *cuts = malloc(len * sizeof(*cuts));
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    transcript_reset(&t, true);
    feed_cut(chat_stream, len, cuts, len, &t, NULL);
    assert_string_equal(t.text, whole.text);
    free(cuts);
    transcript_reset(&t, true);
    transcript_reset(&whole, true);
}

/* Replaces every LF of `s` by `eol`. */
static char *with_line_ends(const char *s, const char *eol, size_t *out_len)
{
    size_t n = 0, el = strlen(eol);
    for (const char *q = s; *q; q++)
        n += *q == '\n' ? el : 1;
    char *out = malloc(n + 1), *w = out;
    assert_non_null(out);
    for (const char *q = s; *q; q++) {
        if (*q == '\n') {
            memcpy(w, eol, el);
            w += el;
        } else {
            *w++ = *q;
        }
    }
    *w = '\0';
    *out_len = n;
    return out;
}

static void test_crlf_and_cr_line_ends(void **state)
{
    struct transcript ref = {0}, t = {0};
    transcript_reset(&ref, false);
    feed_cut(chat_stream, sizeof(chat_stream) - 1, NULL, 0, &ref, NULL);

    const char *eols[] = {"\r\n", "\r"};
    for (size_t e = 0; e < 2; e++) {
        size_t len;
        char *s = with_line_ends(chat_stream, eols[e], &len);
        for (size_t cut = 0; cut <= len; cut++) {
            transcript_reset(&t, false);
            feed_cut(s, len, &cut, 1, &t, NULL);
            assert_string_equal(t.text, ref.text);
            /* Whatever the split, every byte belongs to exactly one event
             * (a split CRLF's LF is reported with the next event). */
            assert_true(t.raw_total == len || t.raw_total == len - 1);
        }
        free(s);
    }
    transcript_reset(&t, false);
    transcript_reset(&ref, false);
}

static void test_crlf_split_across_feeds(void **state)
{
    struct transcript t = {0};
    transcript_reset(&t, false);
    struct sse_parser *p = sse_parser_new(0);
    /* The LF after a CR must not count as a second (blank) line. */
    assert_true(sse_parser_feed(p, "data: a\r", 8, record, &t));
    assert_true(sse_parser_feed(p, "\ndata: b\r", 9, record, &t));
    assert_int_equal(t.events, 0);
    assert_true(sse_parser_feed(p, "\n\r", 2, record, &t));
    assert_int_equal(t.events, 1); /* the blank line's CR dispatches */
    assert_true(sse_parser_feed(p, "\n", 1, record, &t));
    assert_string_equal(t.text, "[-|done=0|uo=0|raw=0]a\nb\n");
    assert_int_equal(t.events, 1);
    sse_parser_free(p);
    transcript_reset(&t, false);
}

static void test_comments_and_empty_events(void **state)
{
    static const char s[] = "\xEF\xBB\xBF: comment\n\n"
                            ":another\n"
                            "event: only-a-name\n"
                            "\n"
                            "data:\n"
                            "\n"
                            "data: x\n"
                            ": between data lines\n"
                            "data: y\n"
                            "\n";
    struct transcript t = {0};
    transcript_reset(&t, true);
    feed_cut(s, sizeof(s) - 1, NULL, 0, &t, NULL);
    /* Comments and the data-less event are dropped; "data:" alone is an
     * event with empty data; the BOM is skipped. */
    assert_int_equal(t.events, 2);
    assert_non_null(strstr(t.text, "[-|done=0|uo=0|raw=50]\n"));
    assert_non_null(strstr(t.text, "]x\ny\n"));
    assert_int_equal(t.raw_total, sizeof(s) - 1);
    transcript_reset(&t, true);
}

static void test_done_marker(void **state)
{
    struct transcript t = {0};
    transcript_reset(&t, false);
    struct sse_parser *p = sse_parser_new(0);
    assert_false(sse_parser_saw_done(p));
    const char *s = "data: [DONE] \n\ndata: [DONE]\n\n";
    assert_true(sse_parser_feed(p, s, strlen(s), record, &t));
    assert_string_equal(t.text, "[-|done=0|uo=0|raw=0][DONE] \n"
                                "[-|done=1|uo=0|raw=0][DONE]\n");
    assert_true(sse_parser_saw_done(p));
    sse_parser_free(p);
    transcript_reset(&t, false);
}

static void test_oversized_event_is_an_error(void **state)
{
    struct transcript t = {0};
    transcript_reset(&t, false);
    struct sse_parser *p = sse_parser_new(32);
    const char *ok = "data: 0123456789\n\n"; /* 18 bytes: fits */
    assert_true(sse_parser_feed(p, ok, strlen(ok), record, &t));
    assert_int_equal(t.events, 1);
    /* Over the cap inside one partial line, fed in small pieces. */
    const char *big = "data: 0123456789012345678901234567890123456789";
    assert_true(sse_parser_feed(p, big, 20, record, &t));
    assert_false(sse_parser_feed(p, big + 20, strlen(big) - 20, record, &t));
    /* The parser stays failed. */
    assert_false(sse_parser_feed(p, ok, strlen(ok), record, &t));
    assert_int_equal(t.events, 1);
    sse_parser_free(p);

    /* Many short lines of one event count together. */
    p = sse_parser_new(32);
    const char *lines = "data: a\ndata: b\ndata: c\ndata: d\ndata: e\n";
    assert_false(sse_parser_feed(p, lines, strlen(lines), record, &t));
    sse_parser_free(p);

    /* Heartbeat comments between events do not add up to an error. */
    p = sse_parser_new(32);
    for (int i = 0; i < 1000; i++)
        assert_true(sse_parser_feed(p, ": ping\n\n", 8, record, &t));
    sse_parser_free(p);
    transcript_reset(&t, false);
}

struct last_event {
    bool usage_only;
    int count;
};

static void remember(const struct sse_event *ev, void *arg)
{
    struct last_event *l = arg;
    l->usage_only = ev->usage_only;
    l->count++;
}

static void feed_str(struct sse_parser *p, const char *s, struct last_event *l)
{
    assert_true(sse_parser_feed(p, s, strlen(s), remember, l));
}

static void test_usage_from_chat_chunks(void **state)
{
    struct sse_parser *p = sse_parser_new(0);
    struct last_event l = {0};

    feed_str(p, "data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n", &l);
    assert_false(sse_parser_usage(p).known);
    assert_false(l.usage_only);
    /* A mention of "usage" inside content is not usage. */
    feed_str(p, "data: {\"choices\":[{\"delta\":{\"content\":\"usage\"}}]}\n\n",
             &l);
    assert_false(sse_parser_usage(p).known);

    /* Usage riding on a chunk that also has choices: not usage-only. */
    feed_str(p,
             "data: {\"choices\":[{\"delta\":{}}],\"usage\": {"
             "\"prompt_tokens\":3,\"completion_tokens\":2,"
             "\"total_tokens\":5}}\n\n",
             &l);
    struct sse_usage u = sse_parser_usage(p);
    assert_true(u.known);
    assert_int_equal(u.total_tokens, 5);
    assert_false(l.usage_only);

    /* The include_usage final chunk: empty choices → usage-only. */
    feed_str(p,
             "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\","
             "\"choices\":[],\"usage\":{\"prompt_tokens\":120,"
             "\"completion_tokens\":30,\"total_tokens\":150,"
             "\"prompt_tokens_details\":{\"cached_tokens\":64},"
             "\"completion_tokens_details\":{\"reasoning_tokens\":10}}}\n\n",
             &l);
    u = sse_parser_usage(p);
    assert_true(u.known);
    assert_int_equal(u.prompt_tokens, 120);
    assert_int_equal(u.completion_tokens, 30);
    assert_int_equal(u.total_tokens, 150);
    assert_int_equal(u.cached_tokens, 64);
    assert_true(l.usage_only);

    /* Malformed JSON with a usage-looking key: no crash, usage kept. */
    feed_str(p, "data: {\"usage\":{\"prompt_tokens\":1\n\n", &l);
    assert_int_equal(sse_parser_usage(p).prompt_tokens, 120);
    assert_false(l.usage_only);
    sse_parser_free(p);
}

static void test_usage_from_responses_stream(void **state)
{
    struct sse_parser *p = sse_parser_new(0);
    struct last_event l = {0};
    feed_str(p,
             "event: response.created\n"
             "data: {\"type\":\"response.created\",\"response\":{\"id\":"
             "\"r1\",\"status\":\"in_progress\",\"usage\":null}}\n\n"
             "event: response.output_text.delta\n"
             "data: {\"type\":\"response.output_text.delta\",\"delta\":"
             "\"Hi\"}\n\n",
             &l);
    assert_false(sse_parser_usage(p).known);
    feed_str(p,
             "event: response.completed\n"
             "data: {\"type\":\"response.completed\",\"response\":{\"id\":"
             "\"r1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":"
             "36,\"input_tokens_details\":{\"cached_tokens\":8},"
             "\"output_tokens\":87,\"output_tokens_details\":{"
             "\"reasoning_tokens\":0},\"total_tokens\":123}}}\n\n",
             &l);
    struct sse_usage u = sse_parser_usage(p);
    assert_true(u.known);
    assert_int_equal(u.prompt_tokens, 36);
    assert_int_equal(u.completion_tokens, 87);
    assert_int_equal(u.total_tokens, 123);
    assert_int_equal(u.cached_tokens, 8);
    assert_false(l.usage_only); /* not a chat chunk */
    assert_int_equal(l.count, 3);
    sse_parser_free(p);
}

static struct sse_usage body_usage(const char *s)
{
    return usage_from_json_body(s, strlen(s));
}

static void test_usage_from_json_bodies(void **state)
{
    struct sse_usage u = body_usage(
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":"
        "[{\"message\":{\"role\":\"assistant\",\"content\":\"hi\"}}],"
        "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,"
        "\"total_tokens\":21,\"prompt_tokens_details\":{\"cached_tokens\":"
        "0}}}");
    assert_true(u.known);
    assert_int_equal(u.prompt_tokens, 9);
    assert_int_equal(u.completion_tokens, 12);
    assert_int_equal(u.total_tokens, 21);

    u = body_usage("{\"object\":\"list\",\"data\":[{\"embedding\":[0.1]}],"
                   "\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}");
    assert_true(u.known);
    assert_int_equal(u.prompt_tokens, 8);
    assert_int_equal(u.completion_tokens, 0);
    assert_int_equal(u.total_tokens, 8);

    u = body_usage("{\"id\":\"resp_1\",\"object\":\"response\",\"output\":[],"
                   "\"usage\":{\"input_tokens\":5,\"output_tokens\":7,"
                   "\"input_tokens_details\":{\"cached_tokens\":2}}}");
    assert_true(u.known);
    assert_int_equal(u.prompt_tokens, 5);
    assert_int_equal(u.completion_tokens, 7);
    assert_int_equal(u.total_tokens, 12); /* derived when absent */
    assert_int_equal(u.cached_tokens, 2);

    u = body_usage("{\"choices\":[],\"usage\":{\"prompt_tokens\":-4}}");
    assert_true(u.known);
    assert_int_equal(u.prompt_tokens, 0); /* negative clamps to 0 */

    assert_false(body_usage("{\"usage\":null}").known);
    assert_false(body_usage("{\"usage\":{}}").known);
    assert_false(body_usage("not json \"usage\":{").known);
    assert_false(body_usage("[\"usage\",{}]").known);
    assert_false(usage_from_json_body(NULL, 0).known);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_invariance),
        cmocka_unit_test(test_event_end_offsets),
        cmocka_unit_test(test_crlf_and_cr_line_ends),
        cmocka_unit_test(test_crlf_split_across_feeds),
        cmocka_unit_test(test_comments_and_empty_events),
        cmocka_unit_test(test_done_marker),
        cmocka_unit_test(test_oversized_event_is_an_error),
        cmocka_unit_test(test_usage_from_chat_chunks),
        cmocka_unit_test(test_usage_from_responses_stream),
        cmocka_unit_test(test_usage_from_json_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
