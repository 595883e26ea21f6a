#include "request_count.h"

#include <stdlib.h>
#include <string.h>

#include "image_size.h"
#include "json_scan.h"

/* OpenAI's documented chat framing ("How to count tokens with tiktoken",
 * openai-cookbook), the same for every current model family. */
enum {
    PER_MESSAGE = 3,
    PER_NAME = 1,
    REPLY_PRIMING = 3,
};

/* Tool definitions, by the cookbook's num_tokens_for_tools. */
struct tool_costs {
    int func_init, prop_init, prop_key, enum_init, enum_item, func_end;
};
static const struct tool_costs tools_o200k = {7, 3, 3, -3, 3, 12};
static const struct tool_costs tools_cl100k = {10, 3, 3, -3, 3, 12};

struct counter {
    const struct jscan_doc *doc;
    const struct tok_encoding *e;
    size_t max_bytes;
    uint64_t text_bytes, text_tokens; /* what went through the tokenizer */
    uint64_t skipped_bytes;           /* over max_bytes */
    int64_t framing;                  /* tokens not from text */
    bool media_estimated;
    bool nomem;
    char small[512];
};

/* Tokens of n bytes of text, within the byte budget. */
static void add_text(struct counter *c, const char *s, size_t n)
{
    if (c->max_bytes && c->text_bytes + n > c->max_bytes) {
        size_t room = c->max_bytes - c->text_bytes;
        c->skipped_bytes += n - room;
        n = room;
    }
    if (n == 0)
        return;
    size_t k = tok_count(c->e, s, n);
    if (k == (size_t)-1) {
        c->nomem = true;
        return;
    }
    c->text_bytes += n;
    c->text_tokens += k;
}

/* A JSON string's decoded text through add_text (suffix appended, for the
 * tool rules' "name:desc" lines). */
static void add_string(struct counter *c, const struct jscan_val *v)
{
    if (v->type != JSCAN_STRING)
        return;
    if (!v->escaped) {
        add_text(c, jscan_string_raw(c->doc, v), v->len);
        return;
    }
    char *buf = v->len <= sizeof c->small ? c->small : malloc(v->len);
    if (!buf) {
        c->nomem = true;
        return;
    }
    jscan_string_decode(c->doc, v, buf);
    add_text(c, buf, v->len);
    if (buf != c->small)
        free(buf);
}

/* Decoded string into a malloc'd buffer (NULL on no memory). */
static char *string_dup(struct counter *c, const struct jscan_val *v)
{
    char *s = malloc(v->len + 1);
    if (!s) {
        c->nomem = true;
        return NULL;
    }
    jscan_string_decode(c->doc, v, s);
    s[v->len] = '\0';
    return s;
}

static bool member(struct counter *c, const struct jscan_val *obj,
                   const char *name, struct jscan_val *out)
{
    return obj->type == JSCAN_OBJECT &&
           jscan_object_find(c->doc, obj, name, strlen(name), out);
}

static void add_image(struct counter *c, const struct jscan_val *part)
{
    struct jscan_val img, url, detail;
    bool low = false;
    if (!member(c, part, "image_url", &img))
        img = *part; /* responses: input_image carries the fields itself */
    if (img.type == JSCAN_STRING)
        url = img;
    else if (!member(c, &img, "image_url", &url) &&
             !member(c, &img, "url", &url))
        url.type = JSCAN_NONE;
    if (member(c, &img, "detail", &detail) && detail.type == JSCAN_STRING)
        low = jscan_string_equals(c->doc, &detail, "low", 3);
    if (low) {
        c->framing += 85;
        return;
    }
    unsigned w = 0, h = 0;
    if (url.type == JSCAN_STRING && !url.escaped)
        tok_image_size_from_data_url(jscan_string_raw(c->doc, &url), url.len,
                                     &w, &h);
    if (w == 0 || h == 0) {
        c->media_estimated = true;
        w = h = 1024; /* a typical photo: 4 tiles */
    }
    c->framing += (int64_t)tok_image_tokens(w, h);
}

/* content: a string, or parts (text, images, audio, files). */
static void add_content(struct counter *c, const struct jscan_val *content)
{
    if (content->type == JSCAN_STRING) {
        add_string(c, content);
        return;
    }
    if (content->type != JSCAN_ARRAY)
        return;
    struct jscan_iter it;
    struct jscan_val part, type, text;
    jscan_iter_begin(&it, c->doc, content);
    while (jscan_iter_next(&it, NULL, &part)) {
        if (part.type == JSCAN_STRING) {
            add_string(c, &part);
            continue;
        }
        member(c, &part, "type", &type);
        if (member(c, &part, "text", &text) && text.type == JSCAN_STRING) {
            add_string(c, &text);
        } else if (type.type == JSCAN_STRING &&
                   (jscan_string_equals(c->doc, &type, "image_url", 9) ||
                    jscan_string_equals(c->doc, &type, "input_image", 11))) {
            add_image(c, &part);
        } else if (member(c, &part, "refusal", &text)) {
            add_string(c, &text);
        } else {
            /* Audio and files: billed by rules that need the decoded
             * media; marked estimated, counted as nothing here. */
            c->media_estimated = true;
        }
    }
}

static void add_tool_calls(struct counter *c, const struct jscan_val *calls)
{
    struct jscan_iter it;
    struct jscan_val call, fn, v;
    jscan_iter_begin(&it, c->doc, calls);
    while (jscan_iter_next(&it, NULL, &call)) {
        if (!member(c, &call, "function", &fn))
            continue;
        if (member(c, &fn, "name", &v))
            add_string(c, &v);
        if (member(c, &fn, "arguments", &v))
            add_string(c, &v);
        c->framing += PER_MESSAGE;
    }
}

/* One chat message: every string member (the cookbook's rule), a name's
 * extra token, content parts and tool calls. */
static void add_message(struct counter *c, const struct jscan_val *m)
{
    struct jscan_iter it;
    struct jscan_val key, v;
    c->framing += PER_MESSAGE;
    if (m->type != JSCAN_OBJECT)
        return;
    jscan_iter_begin(&it, c->doc, m);
    while (jscan_iter_next(&it, &key, &v)) {
        if (jscan_string_equals(c->doc, &key, "content", 7)) {
            add_content(c, &v);
        } else if (jscan_string_equals(c->doc, &key, "tool_calls", 10) &&
                   v.type == JSCAN_ARRAY) {
            add_tool_calls(c, &v);
        } else if (jscan_string_equals(c->doc, &key, "function_call", 13)) {
            struct jscan_val x;
            if (member(c, &v, "name", &x))
                add_string(c, &x);
            if (member(c, &v, "arguments", &x))
                add_string(c, &x);
        } else if (v.type == JSCAN_STRING) {
            add_string(c, &v);
            if (jscan_string_equals(c->doc, &key, "name", 4))
                c->framing += PER_NAME;
        }
    }
}

/* "text." loses its final full stop in the tool rules. */
static void add_line(struct counter *c, char *line, size_t n)
{
    if (n > 0 && line[n - 1] == '.')
        n--;
    add_text(c, line, n);
}

/* name:desc, then per property name:type:desc and enum items. */
static void add_function(struct counter *c, const struct jscan_val *fn,
                         const struct tool_costs *k)
{
    struct jscan_val name, desc, params, props;
    c->framing += k->func_init;
    char *n = member(c, fn, "name", &name) && name.type == JSCAN_STRING
                  ? string_dup(c, &name)
                  : NULL;
    char *d = member(c, fn, "description", &desc) && desc.type == JSCAN_STRING
                  ? string_dup(c, &desc)
                  : NULL;
    size_t nl = n ? strlen(n) : 0, dl = d ? strlen(d) : 0;
    char *line = malloc(nl + dl + 2);
    if (line) {
        memcpy(line, n ? n : "", nl);
        line[nl] = ':';
        memcpy(line + nl + 1, d ? d : "", dl);
        add_line(c, line, nl + 1 + dl);
    } else {
        c->nomem = true;
    }
    free(line);
    free(n);
    free(d);
    if (!member(c, fn, "parameters", &params) ||
        !member(c, &params, "properties", &props) || props.type != JSCAN_OBJECT)
        return;
    struct jscan_iter it;
    struct jscan_val key, prop, type, pdesc, en, item;
    jscan_iter_begin(&it, c->doc, &props);
    bool first = true;
    while (jscan_iter_next(&it, &key, &prop)) {
        if (first)
            c->framing += k->prop_init;
        first = false;
        c->framing += k->prop_key;
        if (member(c, &prop, "enum", &en) && en.type == JSCAN_ARRAY) {
            struct jscan_iter eit;
            c->framing += k->enum_init;
            jscan_iter_begin(&eit, c->doc, &en);
            while (jscan_iter_next(&eit, NULL, &item)) {
                c->framing += k->enum_item;
                add_string(c, &item);
            }
        }
        char *kn = string_dup(c, &key);
        char *t = member(c, &prop, "type", &type) && type.type == JSCAN_STRING
                      ? string_dup(c, &type)
                      : NULL;
        char *pd = member(c, &prop, "description", &pdesc) &&
                           pdesc.type == JSCAN_STRING
                       ? string_dup(c, &pdesc)
                       : NULL;
        size_t a = kn ? strlen(kn) : 0, b = t ? strlen(t) : 0,
               e = pd ? strlen(pd) : 0;
        char *pl = malloc(a + b + e + 3);
        if (pl) {
            size_t o = 0;
            memcpy(pl + o, kn ? kn : "", a), o += a;
            pl[o++] = ':';
            memcpy(pl + o, t ? t : "", b), o += b;
            pl[o++] = ':';
            memcpy(pl + o, pd ? pd : "", e), o += e;
            add_line(c, pl, o);
        } else {
            c->nomem = true;
        }
        free(pl);
        free(kn);
        free(t);
        free(pd);
    }
}

/* tools ([{type:function, function:{...}}]) or legacy functions. */
static void add_tools(struct counter *c, const struct jscan_val *tools,
                      bool legacy)
{
    const struct tool_costs *k =
        tok_encoding_of(c->e) == TOK_O200K_BASE ? &tools_o200k : &tools_cl100k;
    struct jscan_iter it;
    struct jscan_val t, fn;
    bool any = false;
    jscan_iter_begin(&it, c->doc, tools);
    while (jscan_iter_next(&it, NULL, &t)) {
        if (!legacy && !member(c, &t, "function", &fn))
            continue; /* built-in tools (web search...): not in the rules */
        add_function(c, legacy ? &t : &fn, k);
        any = true;
    }
    if (any)
        c->framing += k->func_end;
}

/* prompt / input of completions and embeddings: strings, or token ids. */
static void add_prompt(struct counter *c, const struct jscan_val *in)
{
    if (in->type == JSCAN_STRING) {
        add_string(c, in);
        return;
    }
    if (in->type != JSCAN_ARRAY)
        return;
    struct jscan_iter it;
    struct jscan_val item;
    jscan_iter_begin(&it, c->doc, in);
    while (jscan_iter_next(&it, NULL, &item)) {
        if (item.type == JSCAN_INTEGER)
            c->framing += 1;
        else
            add_prompt(c, &item);
    }
}

static void count_body(struct counter *c, enum api_kind kind,
                       const struct jscan_val *root)
{
    struct jscan_val v;
    struct jscan_iter it;
    switch (kind) {
    case API_CHAT:
        if (member(c, root, "messages", &v) && v.type == JSCAN_ARRAY) {
            struct jscan_val m;
            jscan_iter_begin(&it, c->doc, &v);
            while (jscan_iter_next(&it, NULL, &m))
                add_message(c, &m);
        }
        c->framing += REPLY_PRIMING;
        if (member(c, root, "tools", &v) && v.type == JSCAN_ARRAY)
            add_tools(c, &v, false);
        else if (member(c, root, "functions", &v) && v.type == JSCAN_ARRAY)
            add_tools(c, &v, true);
        break;
    case API_COMPLETIONS:
        if (member(c, root, "prompt", &v))
            add_prompt(c, &v);
        break;
    case API_EMBEDDINGS:
        if (member(c, root, "input", &v))
            add_prompt(c, &v);
        break;
    case API_RESPONSES:
        /* instructions count as a system message; input as a prompt
         * string or as message items. */
        if (member(c, root, "instructions", &v) && v.type == JSCAN_STRING) {
            c->framing += PER_MESSAGE;
            add_string(c, &v);
        }
        if (member(c, root, "input", &v)) {
            if (v.type == JSCAN_STRING) {
                c->framing += PER_MESSAGE;
                add_string(c, &v);
            } else if (v.type == JSCAN_ARRAY) {
                struct jscan_val m;
                jscan_iter_begin(&it, c->doc, &v);
                while (jscan_iter_next(&it, NULL, &m))
                    add_message(c, &m);
            }
        }
        c->framing += REPLY_PRIMING;
        if (member(c, root, "tools", &v) && v.type == JSCAN_ARRAY)
            add_tools(c, &v, true); /* responses tools are flat */
        break;
    }
}

bool tok_count_request(enum api_kind kind, const char *body, size_t len,
                       const struct tok_encoding *e, size_t max_bytes,
                       struct tok_request_count *out)
{
    memset(out, 0, sizeof *out);
    struct jscan_doc doc;
    struct jscan_error err;
    if (jscan_document(&doc, body, len, &err) != JSCAN_OK)
        return false;
    struct counter c = {.doc = &doc, .e = e, .max_bytes = max_bytes};
    struct jscan_val root;
    jscan_doc_root(&doc, &root);
    count_body(&c, kind, &root);
    jscan_doc_free(&doc);
    if (c.nomem)
        return false;
    uint64_t tokens = c.text_tokens;
    if (c.skipped_bytes) {
        /* The counted text's own ratio; four bytes a token if none. */
        tokens += c.text_bytes
                      ? (c.skipped_bytes * c.text_tokens + c.text_bytes - 1) /
                            c.text_bytes
                      : (c.skipped_bytes + 3) / 4;
        out->extrapolated = true;
    }
    int64_t total = (int64_t)tokens + c.framing;
    out->tokens = total > 0 ? (uint64_t)total : 0;
    out->media_estimated = c.media_estimated;
    return true;
}
