/* Streamed answer → the equivalent non-streamed object: see
 * stream_assemble.h. Chunks are read with the gateway's one-pass scanner
 * (json_scan.h), no tree per chunk; text is gathered in growing buffers (a
 * chunk adds a few bytes; rebuilding a JSON string per chunk would be
 * quadratic), and values copied whole (id, usage, finish_reason) are kept
 * as their JSON text. jansson builds the result once, when a plugin asks. */
#include "stream_assemble.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_scan.h"

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
    struct text finish_reason; /* JSON text of the last non-null one */
    json_t *logprobs; /* chat: {"content":[..],"refusal":[..]} merged */
};

struct stream_assembly {
    enum stream_assemble_kind kind;
    size_t max_bytes, used;
    bool failed, done;
    /* JSON text of the first non-null value of each, and the last usage */
    struct text id, model, created, fingerprint, service_tier, usage;
    struct choice *choices;
    size_t nchoices;
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
    free(c->finish_reason.p);
    for (size_t i = 0; i < c->ncalls; i++) {
        free(c->calls[i].id.p);
        free(c->calls[i].type.p);
        free(c->calls[i].name.p);
        free(c->calls[i].args.p);
    }
    free(c->calls);
    json_decref(c->logprobs);
}

void stream_assembly_free(struct stream_assembly *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nchoices; i++)
        choice_fini(&a->choices[i]);
    free(a->choices);
    free(a->id.p);
    free(a->model.p);
    free(a->created.p);
    free(a->fingerprint.p);
    free(a->service_tier.p);
    free(a->usage.p);
    free(a);
}

/* ---- gathering ---- */

/* Room for n more bytes in t, counted against the assembly's cap. */
static char *text_room(struct stream_assembly *a, struct text *t, size_t n)
{
    if (n > a->max_bytes - a->used) {
        a->failed = true;
        return NULL;
    }
    if (t->cap - t->len < n) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap - t->len < n)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            a->failed = true;
            return NULL;
        }
        t->p = p;
        t->cap = cap;
    }
    a->used += n;
    return t->p + t->len;
}

/* Appends a string value's decoded bytes; null or absent adds nothing. */
static void text_add(struct stream_assembly *a, struct text *t,
                     const struct jscan_doc *d, const struct jscan_val *v)
{
    if (v->type != JSCAN_STRING)
        return;
    t->seen = true;
    char *at = v->len ? text_room(a, t, v->len) : NULL;
    if (!at)
        return;
    jscan_string_decode(d, v, at);
    t->len += v->len;
}

/* Replaces t with the JSON text of a non-null value. */
static void raw_set(struct stream_assembly *a, struct text *t,
                    const struct jscan_doc *d, const struct jscan_val *v)
{
    if (v->type == JSCAN_NONE || v->type == JSCAN_NULL)
        return;
    a->used -= t->len;
    t->len = 0;
    char *at = text_room(a, t, v->end - v->pos);
    if (!at)
        return;
    memcpy(at, d->buf + v->pos, v->end - v->pos);
    t->len = v->end - v->pos;
    t->seen = true;
}

static void raw_first(struct stream_assembly *a, struct text *t,
                      const struct jscan_doc *d, const struct jscan_val *v)
{
    if (!t->seen)
        raw_set(a, t, d, v);
}

struct name {
    const char *s;
    size_t len;
};
#define NAME(s)                                                                \
    {                                                                          \
        s, sizeof s - 1                                                        \
    }

/* Members names[0..n) of obj into vals[], in one walk over obj (finding
 * them one by one would walk it again for each). */
static void members(const struct jscan_doc *d, const struct jscan_val *obj,
                    const struct name *names, size_t n, struct jscan_val *vals)
{
    struct jscan_iter it;
    struct jscan_val key, val;
    for (size_t i = 0; i < n; i++)
        vals[i].type = JSCAN_NONE;
    if (obj->type != JSCAN_OBJECT)
        return;
    jscan_iter_begin(&it, d, obj);
    while (jscan_iter_next(&it, &key, &val))
        for (size_t i = 0; i < n; i++)
            if (vals[i].type == JSCAN_NONE && key.len == names[i].len &&
                jscan_string_equals(d, &key, names[i].s, names[i].len)) {
                vals[i] = val;
                break;
            }
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
static size_t index_of(const struct jscan_doc *d, const struct jscan_val *v,
                       size_t pos, bool *bad)
{
    if (v->type == JSCAN_NONE)
        return pos;
    int64_t i = v->type == JSCAN_INTEGER ? jscan_integer_get(d, v) : -1;
    if (i < 0) {
        *bad = true;
        return 0;
    }
    return (size_t)i;
}

static void add_tool_calls(struct stream_assembly *a, struct choice *c,
                           const struct jscan_doc *d,
                           const struct jscan_val *calls)
{
    static const struct name call_names[] = {NAME("index"), NAME("id"),
                                             NAME("type"), NAME("function")};
    static const struct name fn_names[] = {NAME("name"), NAME("arguments")};
    enum { INDEX, ID, TYPE, FUNCTION };
    struct jscan_iter it;
    struct jscan_val piece, v[4], fn[2];
    size_t k = 0;
    jscan_iter_begin(&it, d, calls);
    for (; jscan_iter_next(&it, NULL, &piece); k++) {
        if (piece.type != JSCAN_OBJECT) {
            a->failed = true;
            return;
        }
        members(d, &piece, call_names, 4, v);
        members(d, &v[FUNCTION], fn_names, 2, fn);
        size_t i = index_of(d, &v[INDEX], k, &a->failed);
        struct tool_call *tc = a->failed ? NULL : call_at(a, c, i);
        if (!tc)
            return;
        tc->seen = true;
        /* id, type and name come once; arguments come in pieces. */
        if (!tc->id.seen)
            text_add(a, &tc->id, d, &v[ID]);
        if (!tc->type.seen)
            text_add(a, &tc->type, d, &v[TYPE]);
        if (!tc->name.seen)
            text_add(a, &tc->name, d, &fn[0]);
        text_add(a, &tc->args, d, &fn[1]);
    }
}

/* Token logprobs arrive per chunk as {"content":[...],"refusal":[...]};
 * rare enough to merge with jansson. */
static void add_logprobs(struct stream_assembly *a, struct choice *c,
                         const struct jscan_doc *d, const struct jscan_val *v)
{
    if (v->type != JSCAN_OBJECT)
        return;
    json_t *lp = json_loadb(d->buf + v->pos, v->end - v->pos, 0, NULL);
    if (!c->logprobs)
        c->logprobs = json_object();
    if (!lp || !c->logprobs) {
        a->failed = true;
        json_decref(lp);
        return;
    }
    const char *key;
    json_t *x;
    json_object_foreach(lp, key, x)
    {
        json_t *have = json_object_get(c->logprobs, key);
        if (json_is_array(have) && json_is_array(x))
            json_array_extend(have, x);
        else if (!json_is_null(x) || !have)
            json_object_set(c->logprobs, key, x);
    }
    json_decref(lp);
}

static void add_choice(struct stream_assembly *a, const struct jscan_doc *d,
                       const struct jscan_val *piece, size_t pos)
{
    static const struct name choice_names[] = {NAME("index"), NAME("text"),
                                               NAME("delta"), NAME("logprobs"),
                                               NAME("finish_reason")};
    static const struct name delta_names[] = {
        NAME("role"), NAME("content"), NAME("refusal"), NAME("tool_calls")};
    enum { INDEX, TEXT, DELTA, LOGPROBS, FINISH };
    enum { ROLE, CONTENT, REFUSAL, TOOL_CALLS };
    struct jscan_val v[5], dv[4];
    if (piece->type != JSCAN_OBJECT) {
        a->failed = true;
        return;
    }
    members(d, piece, choice_names, 5, v);
    size_t i = index_of(d, &v[INDEX], pos, &a->failed);
    struct choice *c = a->failed ? NULL : choice_at(a, i);
    if (!c)
        return;
    c->seen = true;
    if (a->kind == STREAM_ASSEMBLE_COMPLETIONS) {
        text_add(a, &c->text, d, &v[TEXT]);
    } else {
        members(d, &v[DELTA], delta_names, 4, dv);
        if (!c->role.seen)
            text_add(a, &c->role, d, &dv[ROLE]);
        text_add(a, &c->content, d, &dv[CONTENT]);
        text_add(a, &c->refusal, d, &dv[REFUSAL]);
        if (dv[TOOL_CALLS].type == JSCAN_ARRAY)
            add_tool_calls(a, c, d, &dv[TOOL_CALLS]);
        add_logprobs(a, c, d, &v[LOGPROBS]);
    }
    raw_set(a, &c->finish_reason, d, &v[FINISH]);
}

static void add_chunk(struct stream_assembly *a, const struct jscan_doc *d)
{
    static const struct name root_names[] = {NAME("error"),
                                             NAME("id"),
                                             NAME("model"),
                                             NAME("created"),
                                             NAME("system_fingerprint"),
                                             NAME("service_tier"),
                                             NAME("choices"),
                                             NAME("usage")};
    enum { ERROR, ID, MODEL, CREATED, FINGERPRINT, TIER, CHOICES, USAGE };
    struct jscan_val root, v[8];
    jscan_doc_root(d, &root);
    members(d, &root, root_names, 8, v);
    if (root.type != JSCAN_OBJECT || v[ERROR].type != JSCAN_NONE) {
        a->failed = true; /* an error event, or not a chunk */
        return;
    }
    raw_first(a, &a->id, d, &v[ID]);
    raw_first(a, &a->model, d, &v[MODEL]);
    raw_first(a, &a->created, d, &v[CREATED]);
    raw_first(a, &a->fingerprint, d, &v[FINGERPRINT]);
    raw_first(a, &a->service_tier, d, &v[TIER]);
    if (v[CHOICES].type == JSCAN_ARRAY) {
        struct jscan_iter it;
        struct jscan_val piece;
        jscan_iter_begin(&it, d, &v[CHOICES]);
        for (size_t k = 0; !a->failed && jscan_iter_next(&it, NULL, &piece);
             k++)
            add_choice(a, d, &piece, k);
    }
    if (v[USAGE].type == JSCAN_OBJECT)
        raw_set(a, &a->usage, d, &v[USAGE]);
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
    struct jscan_doc doc;
    struct jscan_error err;
    if (a->done || jscan_document(&doc, data, len, &err) != JSCAN_OK) {
        a->failed = true; /* garbage, or a chunk after [DONE] */
        return;
    }
    add_chunk(a, &doc);
    jscan_doc_free(&doc);
}

bool stream_assembly_complete(const struct stream_assembly *a)
{
    if (a->failed || !a->done || a->nchoices == 0)
        return false;
    for (size_t i = 0; i < a->nchoices; i++)
        if (!a->choices[i].finish_reason.seen)
            return false;
    return true;
}

/* ---- the result ---- */

/* A value kept as JSON text (it was validated when it arrived). */
static json_t *raw_json(const struct text *t)
{
    return t->seen ? json_loadb(t->p, t->len, JSON_DECODE_ANY, NULL)
                   : json_null();
}

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
    json_object_set_new(o, "finish_reason", raw_json(&c->finish_reason));
    return o;
}

/* Sets key to a value kept as JSON text, when one was seen. */
static void set_if(json_t *o, const char *key, const struct text *t)
{
    if (t->seen)
        json_object_set_new(o, key, raw_json(t));
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
    set_if(o, "id", &a->id);
    json_object_set_new(o, "object",
                        json_string(a->kind == STREAM_ASSEMBLE_CHAT
                                        ? "chat.completion"
                                        : "text_completion"));
    set_if(o, "created", &a->created);
    set_if(o, "model", &a->model);
    set_if(o, "system_fingerprint", &a->fingerprint);
    set_if(o, "service_tier", &a->service_tier);
    for (size_t i = 0; i < a->nchoices; i++)
        json_array_append_new(choices, choice_json(a, i));
    json_object_set(o, "choices", choices);
    set_if(o, "usage", &a->usage);
    out = json_dumps(o, JSON_COMPACT);
    if (out)
        *len = strlen(out);
done:
    json_decref(choices);
    json_decref(o);
    return out;
}
