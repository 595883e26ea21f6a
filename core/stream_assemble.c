/* Streamed answer → the equivalent non-streamed object: see
 * stream_assemble.h. Text is gathered in growing buffers (a chunk adds a
 * few bytes; rebuilding a JSON string per chunk would be quadratic) and
 * turned into JSON once, when a plugin asks for the result. */
#include "stream_assemble.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* OpenAI allows n <= 128; tool calls per message are far fewer. An index
 * past these is a broken stream, not an answer worth keeping. */
#define MAX_CHOICES 128
#define MAX_TOOL_CALLS 128

struct text {
    char *p;
    size_t len, cap;
    bool seen; /* a non-null value arrived, even "" */
};

struct tool_call {
    bool seen;
    struct text id, type, name, args;
};

struct choice {
    bool seen;
    struct text role, content, refusal; /* chat */
    struct text text;                   /* completions */
    struct tool_call *calls;
    size_t ncalls;
    json_t *finish_reason; /* NULL until a non-null one arrived */
    json_t *logprobs;      /* chat: {"content":[..],"refusal":[..]} merged */
};

struct stream_assembly {
    enum stream_assemble_kind kind;
    size_t max_bytes, used;
    bool failed, done;
    json_t *id, *model, *created, *fingerprint, *service_tier;
    struct choice *choices;
    size_t nchoices;
    json_t *usage;
};

struct stream_assembly *stream_assembly_new(enum stream_assemble_kind kind,
                                            size_t max_bytes)
{
    struct stream_assembly *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->kind = kind;
    a->max_bytes = max_bytes;
    return a;
}

static void choice_fini(struct choice *c)
{
    free(c->role.p);
    free(c->content.p);
    free(c->refusal.p);
    free(c->text.p);
    for (size_t i = 0; i < c->ncalls; i++) {
        free(c->calls[i].id.p);
        free(c->calls[i].type.p);
        free(c->calls[i].name.p);
        free(c->calls[i].args.p);
    }
    free(c->calls);
    json_decref(c->finish_reason);
    json_decref(c->logprobs);
}

void stream_assembly_free(struct stream_assembly *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nchoices; i++)
        choice_fini(&a->choices[i]);
    free(a->choices);
    json_decref(a->id);
    json_decref(a->model);
    json_decref(a->created);
    json_decref(a->fingerprint);
    json_decref(a->service_tier);
    json_decref(a->usage);
    free(a);
}

/* ---- gathering ---- */

static void text_add(struct stream_assembly *a, struct text *t, const json_t *v)
{
    if (!json_is_string(v))
        return; /* null or absent: nothing to add */
    size_t n = json_string_length(v);
    t->seen = true;
    if (n == 0)
        return;
    if (n > a->max_bytes - a->used) {
        a->failed = true;
        return;
    }
    if (t->cap - t->len < n) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap - t->len < n)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            a->failed = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, json_string_value(v), n);
    t->len += n;
    a->used += n;
}

/* Grows an array of `size`-byte zeroed slots to hold index i. */
static void *slot(void *arr, size_t *n, size_t size, size_t i, bool *fail)
{
    if (i < *n)
        return (char *)arr + i * size;
    char *p = realloc(arr, (i + 1) * size);
    if (!p) {
        *fail = true;
        return NULL;
    }
    memset(p + *n * size, 0, (i + 1 - *n) * size);
    *n = i + 1;
    return p;
}

static struct choice *choice_at(struct stream_assembly *a, size_t i)
{
    if (i >= MAX_CHOICES) {
        a->failed = true;
        return NULL;
    }
    if (i >= a->nchoices) {
        size_t n = a->nchoices;
        void *p = slot(a->choices, &n, sizeof *a->choices, i, &a->failed);
        if (!p)
            return NULL;
        a->choices = p;
        a->nchoices = n;
    }
    return &a->choices[i];
}

static struct tool_call *call_at(struct stream_assembly *a, struct choice *c,
                                 size_t i)
{
    if (i >= MAX_TOOL_CALLS) {
        a->failed = true;
        return NULL;
    }
    if (i >= c->ncalls) {
        size_t n = c->ncalls;
        void *p = slot(c->calls, &n, sizeof *c->calls, i, &a->failed);
        if (!p)
            return NULL;
        c->calls = p;
        c->ncalls = n;
    }
    return &c->calls[i];
}

/* The index a piece names, or its position when it names none. */
static size_t index_of(const json_t *obj, size_t pos, bool *bad)
{
    const json_t *v = json_object_get(obj, "index");
    if (!v)
        return pos;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        *bad = true;
        return 0;
    }
    return (size_t)json_integer_value(v);
}

static void keep_first(json_t **slot_, json_t *v)
{
    if (!*slot_ && v && !json_is_null(v))
        *slot_ = json_incref(v);
}

static void add_tool_calls(struct stream_assembly *a, struct choice *c,
                           const json_t *calls)
{
    size_t k;
    json_t *piece;
    json_array_foreach(calls, k, piece)
    {
        if (!json_is_object(piece)) {
            a->failed = true;
            return;
        }
        size_t i = index_of(piece, k, &a->failed);
        struct tool_call *tc = a->failed ? NULL : call_at(a, c, i);
        if (!tc)
            return;
        tc->seen = true;
        /* id, type and name come once; arguments come in pieces. */
        if (!tc->id.seen)
            text_add(a, &tc->id, json_object_get(piece, "id"));
        if (!tc->type.seen)
            text_add(a, &tc->type, json_object_get(piece, "type"));
        json_t *fn = json_object_get(piece, "function");
        if (!tc->name.seen)
            text_add(a, &tc->name, json_object_get(fn, "name"));
        text_add(a, &tc->args, json_object_get(fn, "arguments"));
    }
}

/* Token logprobs arrive per chunk as {"content":[...],"refusal":[...]}. */
static void add_logprobs(struct stream_assembly *a, struct choice *c,
                         json_t *lp)
{
    if (!json_is_object(lp))
        return;
    if (!c->logprobs && !(c->logprobs = json_object())) {
        a->failed = true;
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(lp, key, v)
    {
        json_t *have = json_object_get(c->logprobs, key);
        if (json_is_array(have) && json_is_array(v))
            json_array_extend(have, v);
        else if (!json_is_null(v) || !have)
            json_object_set(c->logprobs, key, v);
    }
}

static void add_choice(struct stream_assembly *a, json_t *piece, size_t pos)
{
    if (!json_is_object(piece)) {
        a->failed = true;
        return;
    }
    size_t i = index_of(piece, pos, &a->failed);
    struct choice *c = a->failed ? NULL : choice_at(a, i);
    if (!c)
        return;
    c->seen = true;
    if (a->kind == STREAM_ASSEMBLE_COMPLETIONS) {
        text_add(a, &c->text, json_object_get(piece, "text"));
    } else {
        json_t *delta = json_object_get(piece, "delta");
        if (!c->role.seen)
            text_add(a, &c->role, json_object_get(delta, "role"));
        text_add(a, &c->content, json_object_get(delta, "content"));
        text_add(a, &c->refusal, json_object_get(delta, "refusal"));
        json_t *calls = json_object_get(delta, "tool_calls");
        if (json_is_array(calls))
            add_tool_calls(a, c, calls);
        add_logprobs(a, c, json_object_get(piece, "logprobs"));
    }
    json_t *fr = json_object_get(piece, "finish_reason");
    if (fr && !json_is_null(fr)) {
        json_decref(c->finish_reason);
        c->finish_reason = json_incref(fr);
    }
}

void stream_assembly_event(struct stream_assembly *a, const char *data,
                           size_t len)
{
    if (a->failed)
        return;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        a->done = true;
        return;
    }
    json_t *chunk = a->done ? NULL : json_loadb(data, len, 0, NULL);
    if (!json_is_object(chunk) || json_object_get(chunk, "error")) {
        a->failed = true; /* garbage, an error event, or after [DONE] */
        json_decref(chunk);
        return;
    }
    keep_first(&a->id, json_object_get(chunk, "id"));
    keep_first(&a->model, json_object_get(chunk, "model"));
    keep_first(&a->created, json_object_get(chunk, "created"));
    keep_first(&a->fingerprint, json_object_get(chunk, "system_fingerprint"));
    keep_first(&a->service_tier, json_object_get(chunk, "service_tier"));
    json_t *choices = json_object_get(chunk, "choices");
    size_t k;
    json_t *piece;
    json_array_foreach(choices, k, piece) add_choice(a, piece, k);
    json_t *usage = json_object_get(chunk, "usage");
    if (json_is_object(usage)) {
        json_decref(a->usage);
        a->usage = json_incref(usage);
    }
    json_decref(chunk);
}

bool stream_assembly_complete(const struct stream_assembly *a)
{
    if (a->failed || !a->done || a->nchoices == 0)
        return false;
    for (size_t i = 0; i < a->nchoices; i++)
        if (!a->choices[i].finish_reason)
            return false;
    return true;
}

/* ---- the result ---- */

static json_t *str_or_null(const struct text *t)
{
    return t->seen ? json_stringn(t->p ? t->p : "", t->len) : json_null();
}

static json_t *text_or(const struct text *t, const char *absent)
{
    return t->seen ? json_stringn(t->p ? t->p : "", t->len)
                   : json_string(absent);
}

static json_t *tool_calls_json(const struct choice *c)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < c->ncalls; i++) {
        const struct tool_call *tc = &c->calls[i];
        json_t *o = json_object(), *fn = json_object();
        if (!tc->seen || !o || !fn) {
            json_decref(o);
            json_decref(fn);
            continue;
        }
        json_object_set_new(o, "id", str_or_null(&tc->id));
        json_object_set_new(o, "type", text_or(&tc->type, "function"));
        json_object_set_new(fn, "name", str_or_null(&tc->name));
        json_object_set_new(fn, "arguments", text_or(&tc->args, ""));
        json_object_set_new(o, "function", fn);
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *message_json(const struct choice *c)
{
    json_t *m = json_object();
    if (!m)
        return NULL;
    json_object_set_new(m, "role", text_or(&c->role, "assistant"));
    /* As in a non-streamed answer: no text next to tool calls is null. */
    bool null_content = c->content.len == 0 && (c->ncalls || !c->content.seen);
    json_object_set_new(m, "content",
                        null_content ? json_null() : str_or_null(&c->content));
    json_object_set_new(
        m, "refusal", c->refusal.len ? str_or_null(&c->refusal) : json_null());
    if (c->ncalls)
        json_object_set_new(m, "tool_calls", tool_calls_json(c));
    return m;
}

static json_t *choice_json(const struct stream_assembly *a, size_t i)
{
    const struct choice *c = &a->choices[i];
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "index", json_integer((json_int_t)i));
    if (a->kind == STREAM_ASSEMBLE_COMPLETIONS)
        json_object_set_new(
            o, "text", json_stringn(c->text.p ? c->text.p : "", c->text.len));
    else
        json_object_set_new(o, "message", message_json(c));
    json_object_set(o, "logprobs", c->logprobs ? c->logprobs : json_null());
    json_object_set(o, "finish_reason", c->finish_reason);
    return o;
}

static void set_if(json_t *o, const char *key, json_t *v)
{
    if (v)
        json_object_set(o, key, v);
}

char *stream_assembly_result(const struct stream_assembly *a, size_t *len)
{
    if (!stream_assembly_complete(a))
        return NULL;
    json_t *o = json_object();
    json_t *choices = json_array();
    char *out = NULL;
    if (!o || !choices)
        goto done;
    set_if(o, "id", a->id);
    json_object_set_new(o, "object",
                        json_string(a->kind == STREAM_ASSEMBLE_CHAT
                                        ? "chat.completion"
                                        : "text_completion"));
    set_if(o, "created", a->created);
    set_if(o, "model", a->model);
    set_if(o, "system_fingerprint", a->fingerprint);
    set_if(o, "service_tier", a->service_tier);
    for (size_t i = 0; i < a->nchoices; i++)
        json_array_append_new(choices, choice_json(a, i));
    json_object_set(o, "choices", choices);
    set_if(o, "usage", a->usage);
    out = json_dumps(o, JSON_COMPACT);
    if (out)
        *len = strlen(out);
done:
    json_decref(choices);
    json_decref(o);
    return out;
}
