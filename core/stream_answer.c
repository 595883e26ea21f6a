/* A complete answer rendered as its stream: see stream_answer.h. Chunks
 * follow OpenAI's wire shape (chat.completion.chunk with delta objects,
 * "usage":null on every chunk when a usage chunk follows), and text is cut
 * at word ends into small pieces as a live stream would deliver it. */
#include "stream_answer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pieces of text per chunk: cut after a space once MIN bytes are in, and
 * never beyond MAX (then at a UTF-8 character boundary). */
#define PIECE_MIN 16
#define PIECE_MAX 64

struct out {
    FILE *f;
    char *buf;
    size_t len;
    bool failed;
    json_t *base;    /* id, object, created, model, ... of every chunk */
    bool usage_null; /* "usage":null on each chunk (include_usage) */
};

/* Writes base + choices (+ usage) as one event; steals `choices`. */
static void emit(struct out *o, json_t *choices, json_t *usage)
{
    json_t *chunk = json_copy(o->base);
    if (!chunk || !choices) {
        o->failed = true;
        json_decref(chunk);
        json_decref(choices);
        return;
    }
    json_object_set_new(chunk, "choices", choices);
    if (usage)
        json_object_set(chunk, "usage", usage);
    else if (o->usage_null)
        json_object_set_new(chunk, "usage", json_null());
    char *s = json_dumps(chunk, JSON_COMPACT);
    if (!s || fprintf(o->f, "data: %s\n\n", s) < 0)
        o->failed = true;
    free(s);
    json_decref(chunk);
}

/* Length of the next piece of s[0..len). */
static size_t piece_len(const char *s, size_t len)
{
    if (len <= PIECE_MAX)
        return len;
    for (size_t i = PIECE_MIN; i < PIECE_MAX; i++)
        if (s[i - 1] == ' ' && s[i] != ' ')
            return i;
    size_t i = PIECE_MAX;
    while (i > 1 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--; /* do not split a multi-byte character */
    return i;
}

/* One choice-level chunk: {"index":i,"delta":delta,...}. */
static json_t *chat_piece(size_t i, json_t *delta, json_t *logprobs,
                          json_t *finish)
{
    json_t *c = json_object();
    if (!c) {
        json_decref(delta);
        return NULL;
    }
    json_object_set_new(c, "index", json_integer((json_int_t)i));
    json_object_set_new(c, "delta", delta);
    json_object_set(c, "logprobs", logprobs ? logprobs : json_null());
    json_object_set(c, "finish_reason", finish ? finish : json_null());
    json_t *arr = json_array();
    if (arr)
        json_array_append_new(arr, c);
    else
        json_decref(c);
    return arr;
}

/* Emits `field` of a delta in pieces; the first carries `logprobs`. */
static void emit_text(struct out *o, size_t i, const char *field,
                      const json_t *text, json_t *logprobs)
{
    const char *s = json_string_value(text);
    size_t len = json_string_length(text);
    for (size_t at = 0; at < len;) {
        size_t n = piece_len(s + at, len - at);
        json_t *delta = json_object();
        if (delta)
            json_object_set_new(delta, field, json_stringn(s + at, n));
        emit(o, chat_piece(i, delta, at == 0 ? logprobs : NULL, NULL), NULL);
        at += n;
    }
}

static json_t *tool_call_delta(size_t k, json_t *head_call, const char *args,
                               size_t args_len)
{
    json_t *call = json_object(), *fn = json_object(), *arr = json_array(),
           *delta = json_object();
    if (!call || !fn || !arr || !delta) {
        json_decref(call);
        json_decref(fn);
        json_decref(arr);
        json_decref(delta);
        return NULL;
    }
    json_object_set_new(call, "index", json_integer((json_int_t)k));
    if (head_call) { /* the first chunk of a call names it */
        json_t *fin = json_object_get(head_call, "function");
        json_object_set(call, "id", json_object_get(head_call, "id"));
        json_t *type = json_object_get(head_call, "type");
        json_object_set_new(call, "type",
                            type ? json_incref(type) : json_string("function"));
        json_object_set(fn, "name", json_object_get(fin, "name"));
    }
    json_object_set_new(fn, "arguments", json_stringn(args, args_len));
    json_object_set_new(call, "function", fn);
    json_array_append_new(arr, call);
    json_object_set_new(delta, "tool_calls", arr);
    return delta;
}

static void emit_tool_calls(struct out *o, size_t i, const json_t *calls)
{
    size_t k;
    json_t *call;
    json_array_foreach(calls, k, call)
    {
        json_t *args =
            json_object_get(json_object_get(call, "function"), "arguments");
        const char *s = json_is_string(args) ? json_string_value(args) : "";
        size_t len = json_is_string(args) ? json_string_length(args) : 0;
        emit(o, chat_piece(i, tool_call_delta(k, call, "", 0), NULL, NULL),
             NULL);
        for (size_t at = 0; at < len;) {
            size_t n = piece_len(s + at, len - at);
            emit(o,
                 chat_piece(i, tool_call_delta(k, NULL, s + at, n), NULL, NULL),
                 NULL);
            at += n;
        }
    }
}

static void emit_chat_choice(struct out *o, size_t pos, json_t *choice)
{
    json_t *idx = json_object_get(choice, "index");
    size_t i = json_is_integer(idx) ? (size_t)json_integer_value(idx) : pos;
    json_t *msg = json_object_get(choice, "message");
    json_t *content = json_object_get(msg, "content");
    json_t *role = json_object_get(msg, "role");
    json_t *delta = json_object();
    if (delta) {
        json_object_set_new(delta, "role",
                            json_is_string(role) ? json_incref(role)
                                                 : json_string("assistant"));
        json_object_set_new(delta, "content",
                            json_is_string(content) ? json_string("")
                                                    : json_null());
        json_object_set_new(delta, "refusal", json_null());
    }
    json_t *logprobs = json_object_get(choice, "logprobs");
    if (json_is_null(logprobs))
        logprobs = NULL;
    emit(o, chat_piece(i, delta, NULL, NULL), NULL);
    if (json_is_string(content))
        emit_text(o, i, "content", content, logprobs);
    json_t *refusal = json_object_get(msg, "refusal");
    if (json_is_string(refusal))
        emit_text(o, i, "refusal", refusal, NULL);
    json_t *calls = json_object_get(msg, "tool_calls");
    if (json_is_array(calls))
        emit_tool_calls(o, i, calls);
    json_t *finish = json_object_get(choice, "finish_reason");
    emit(o, chat_piece(i, json_object(), NULL, finish ? finish : NULL), NULL);
}

/* Legacy completions: {"text":..,"index":i,"logprobs":..,"finish_reason"}. */
static json_t *text_piece(size_t i, const char *s, size_t n, json_t *finish)
{
    json_t *c = json_pack("{s:s%,s:I,s:n}", "text", s, n, "index",
                          (json_int_t)i, "logprobs");
    json_t *arr = json_array();
    if (!c || !arr) {
        json_decref(c);
        json_decref(arr);
        return NULL;
    }
    json_object_set(c, "finish_reason", finish ? finish : json_null());
    json_array_append_new(arr, c);
    return arr;
}

static void emit_text_choice(struct out *o, size_t pos, json_t *choice)
{
    json_t *idx = json_object_get(choice, "index");
    size_t i = json_is_integer(idx) ? (size_t)json_integer_value(idx) : pos;
    json_t *text = json_object_get(choice, "text");
    const char *s = json_is_string(text) ? json_string_value(text) : "";
    size_t len = json_is_string(text) ? json_string_length(text) : 0;
    for (size_t at = 0; at < len;) {
        size_t n = piece_len(s + at, len - at);
        emit(o, text_piece(i, s + at, n, NULL), NULL);
        at += n;
    }
    emit(o, text_piece(i, "", 0, json_object_get(choice, "finish_reason")),
         NULL);
}

/* The fields every chunk repeats, from the answer's top level. */
static json_t *chunk_base(enum stream_assemble_kind kind, json_t *answer)
{
    static const char *const keep[] = {"id", "created", "model",
                                       "system_fingerprint", "service_tier"};
    json_t *base = json_object();
    if (!base)
        return NULL;
    for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++) {
        json_t *v = json_object_get(answer, keep[k]);
        if (v)
            json_object_set(base, keep[k], v);
        if (k == 0)
            json_object_set_new(base, "object",
                                json_string(kind == STREAM_ASSEMBLE_CHAT
                                                ? "chat.completion.chunk"
                                                : "text_completion"));
    }
    return base;
}

static bool is_answer(enum stream_assemble_kind kind, json_t *answer)
{
    const char *want =
        kind == STREAM_ASSEMBLE_CHAT ? "chat.completion" : "text_completion";
    json_t *object = json_object_get(answer, "object");
    if (!json_is_array(json_object_get(answer, "choices")))
        return false;
    return !object || (json_is_string(object) &&
                       strcmp(json_string_value(object), want) == 0);
}

char *stream_answer_render(enum stream_assemble_kind kind, const char *body,
                           size_t len, bool include_usage, size_t *out_len)
{
    json_t *answer = json_loadb(body, len, 0, NULL);
    struct out o = {0};
    if (!json_is_object(answer) || !is_answer(kind, answer)) {
        json_decref(answer);
        return NULL;
    }
    json_t *usage = json_object_get(answer, "usage");
    bool usage_chunk = include_usage && json_is_object(usage);
    o.usage_null = usage_chunk;
    o.base = chunk_base(kind, answer);
    o.f = open_memstream(&o.buf, &o.len);
    if (!o.base || !o.f) {
        o.failed = true;
        goto done;
    }
    size_t i;
    json_t *choice;
    json_array_foreach(json_object_get(answer, "choices"), i, choice)
    {
        if (kind == STREAM_ASSEMBLE_CHAT)
            emit_chat_choice(&o, i, choice);
        else
            emit_text_choice(&o, i, choice);
    }
    if (usage_chunk)
        emit(&o, json_array(), usage);
    if (fputs("data: [DONE]\n\n", o.f) < 0)
        o.failed = true;
done:
    if (o.f && fclose(o.f) != 0)
        o.failed = true;
    json_decref(o.base);
    json_decref(answer);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    *out_len = o.len;
    return o.buf;
}
