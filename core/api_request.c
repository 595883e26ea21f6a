#include "api_request.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_scan.h"

/* The top-level members the decoder reads. */
enum member {
    M_MODEL,
    M_STREAM,
    M_STREAM_OPTIONS,
    M_TEMPERATURE,
    M_MAX_TOKENS,
    M_MAX_COMPLETION_TOKENS,
    M_MAX_OUTPUT_TOKENS,
    M_MESSAGES,
    M_PROMPT,
    M_INPUT,
    M_PREVIOUS_RESPONSE_ID,
    M_COUNT
};

static const struct {
    const char *name;
    size_t len;
} member_names[M_COUNT] = {
#define N(s)                                                                   \
    {                                                                          \
        s, sizeof s - 1                                                        \
    }
    [M_MODEL] = N("model"),
    [M_STREAM] = N("stream"),
    [M_STREAM_OPTIONS] = N("stream_options"),
    [M_TEMPERATURE] = N("temperature"),
    [M_MAX_TOKENS] = N("max_tokens"),
    [M_MAX_COMPLETION_TOKENS] = N("max_completion_tokens"),
    [M_MAX_OUTPUT_TOKENS] = N("max_output_tokens"),
    [M_MESSAGES] = N("messages"),
    [M_PROMPT] = N("prompt"),
    [M_INPUT] = N("input"),
    [M_PREVIOUS_RESPONSE_ID] = N("previous_response_id"),
#undef N
};

struct decoder {
    const struct jscan_doc *doc;
    struct jscan_val m[M_COUNT]; /* type JSCAN_NONE when absent */
};

static bool fail(struct api_error *err, const char *param, const char *fmt,
                 const char *detail)
{
    err->status = 400;
    snprintf(err->message, sizeof err->message, fmt, detail ? detail : "");
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    return false;
}

uint64_t api_estimate_tokens(uint64_t bytes, uint64_t messages)
{
    /* ~4 bytes per token for English BPE, +3 per message for the chat
     * format, +3 to prime the reply (OpenAI's documented convention). */
    return (bytes + 3) / 4 + 3 * messages + 3;
}

void api_request_release(struct api_request *r)
{
    free(r->model_copy);
    r->model_copy = NULL;
}

/* Which member a top-level key names, or M_COUNT. */
static enum member member_of(const struct jscan_doc *doc,
                             const struct jscan_val *key)
{
    for (int i = 0; i < M_COUNT; i++)
        if (key->len == member_names[i].len &&
            jscan_string_equals(doc, key, member_names[i].name,
                                member_names[i].len))
            return (enum member)i;
    return M_COUNT;
}

static bool is_null(const struct jscan_val *v)
{
    return v->type == JSCAN_NULL;
}

static bool present(const struct jscan_val *v)
{
    return v->type != JSCAN_NONE;
}

/* Adds the text size of a content value: a string, or an array of parts
 * with "text" members. Returns false when the shape is invalid (absent
 * included); bytes of the parts before an invalid one are still added. */
static bool add_content(const struct jscan_doc *doc,
                        const struct jscan_val *content, uint64_t *bytes)
{
    if (content->type == JSCAN_STRING) {
        *bytes += content->len;
        return true;
    }
    if (content->type == JSCAN_NULL)
        return true;
    if (content->type != JSCAN_ARRAY)
        return false;
    struct jscan_iter it;
    struct jscan_val part, text;
    jscan_iter_begin(&it, doc, content);
    while (jscan_iter_next(&it, NULL, &part)) {
        if (part.type == JSCAN_STRING) {
            *bytes += part.len;
            continue;
        }
        if (part.type != JSCAN_OBJECT)
            return false;
        if (jscan_object_find(doc, &part, "text", 4, &text) &&
            text.type == JSCAN_STRING)
            *bytes += text.len;
    }
    return true;
}

/* "messages[i]", formatted only for errors. */
static const char *message_param(char param[48], size_t i)
{
    snprintf(param, 48, "messages[%zu]", i);
    return param;
}

static bool decode_messages(struct decoder *d, struct api_request *out,
                            struct api_error *err)
{
    const struct jscan_val *msgs = &d->m[M_MESSAGES];
    if (!present(msgs))
        return fail(err, "messages",
                    "Missing required parameter: 'messages'.%s", NULL);
    if (msgs->type != JSCAN_ARRAY)
        return fail(err, "messages",
                    "Invalid type for 'messages': expected an array.%s", NULL);
    struct jscan_iter it;
    struct jscan_val m, field, v;
    size_t i = 0;
    jscan_iter_begin(&it, d->doc, msgs);
    for (; jscan_iter_next(&it, NULL, &m); i++) {
        char param[48];
        if (m.type != JSCAN_OBJECT)
            return fail(err, message_param(param, i),
                        "Invalid type for '%s': expected an object.", param);
        struct jscan_val role = {0}, content = {0};
        struct jscan_iter mit;
        jscan_iter_begin(&mit, d->doc, &m);
        while (jscan_iter_next(&mit, &field, &v)) {
            if (jscan_string_equals(d->doc, &field, "role", 4))
                role = v;
            else if (jscan_string_equals(d->doc, &field, "content", 7))
                content = v;
        }
        if (role.type != JSCAN_STRING)
            return fail(err, message_param(param, i),
                        "Missing or invalid 'role' in '%s'.", param);
        if (!add_content(d->doc, &content, &out->text_bytes))
            return fail(err, message_param(param, i),
                        "Invalid type for '%s.content': expected a string or "
                        "an array of content parts.",
                        param);
    }
    if (i == 0)
        return fail(err, "messages",
                    "Invalid 'messages': empty array. Expected an array with "
                    "minimum length 1.%s",
                    NULL);
    out->message_count = i;
    return true;
}

/* prompt / input: a string or an array of strings (or token arrays). */
static bool decode_text_input(struct decoder *d, enum member which,
                              bool required, struct api_request *out,
                              struct api_error *err)
{
    const char *field = member_names[which].name;
    const struct jscan_val *in = &d->m[which];
    if (!present(in)) {
        if (required)
            return fail(err, field, "Missing required parameter: '%s'.", field);
        return true;
    }
    if (in->type == JSCAN_STRING) {
        out->text_bytes += in->len;
        out->message_count = 1;
        return true;
    }
    if (in->type != JSCAN_ARRAY)
        return fail(err, field,
                    "Invalid type for '%s': expected a string or an array.",
                    field);
    struct jscan_iter it;
    struct jscan_val item, content;
    size_t n = 0;
    jscan_iter_begin(&it, d->doc, in);
    for (; jscan_iter_next(&it, NULL, &item); n++) {
        if (item.type == JSCAN_OBJECT) { /* responses: message items */
            jscan_object_find(d->doc, &item, "content", 7, &content);
            add_content(d->doc, &content, &out->text_bytes);
        } else if (item.type == JSCAN_STRING) {
            out->text_bytes += item.len;
        } else if (item.type == JSCAN_ARRAY || item.type == JSCAN_INTEGER) {
            out->text_bytes += 4; /* token ids: one token each, roughly */
        } else {
            return fail(err, field,
                        "Invalid type for '%s': unsupported item type.", field);
        }
    }
    out->message_count = n;
    return true;
}

static bool get_uint(struct decoder *d, enum member which, uint64_t *v,
                     struct api_error *err)
{
    const struct jscan_val *x = &d->m[which];
    if (!present(x) || is_null(x))
        return true;
    if (x->type != JSCAN_INTEGER || jscan_integer_get(d->doc, x) < 1)
        return fail(err, member_names[which].name,
                    "Invalid '%s': expected a positive integer.",
                    member_names[which].name);
    *v = (uint64_t)jscan_integer_get(d->doc, x);
    return true;
}

/* include_usage of a stream_options object: true only for JSON true. */
static bool include_usage(struct decoder *d)
{
    const struct jscan_val *so = &d->m[M_STREAM_OPTIONS];
    struct jscan_val v;
    return so->type == JSCAN_OBJECT &&
           jscan_object_find(d->doc, so, "include_usage", 13, &v) &&
           v.type == JSCAN_TRUE;
}

static bool decode_model(struct decoder *d, struct api_request *out,
                         struct api_error *err)
{
    const struct jscan_val *model = &d->m[M_MODEL];
    if (!present(model))
        return fail(err, "model", "Missing required parameter: 'model'.%s",
                    NULL);
    if (model->type != JSCAN_STRING || model->len == 0)
        return fail(err, "model",
                    "Invalid type for 'model': expected a non-empty string.%s",
                    NULL);
    if (model->escaped) {
        out->model_copy = malloc(model->len + 1);
        if (!out->model_copy)
            return fail(err, NULL,
                        "We could not parse the JSON body of your request: "
                        "out of memory%s",
                        NULL);
        jscan_string_decode(d->doc, model, out->model_copy);
        out->model_copy[model->len] = '\0';
        out->model = out->model_copy;
    } else {
        out->model = jscan_string_raw(d->doc, model);
    }
    out->model_len = model->len;
    if (out->model_len > API_MODEL_NAME_MAX) {
        char limit[24];
        snprintf(limit, sizeof limit, "%d", API_MODEL_NAME_MAX);
        return fail(err, "model",
                    "Invalid 'model': longer than the gateway's limit of %s "
                    "bytes.",
                    limit);
    }
    for (size_t i = 0; i < out->model_len; i++)
        if ((unsigned char)out->model[i] < 0x20 || out->model[i] == 0x7f)
            return fail(err, "model",
                        "Invalid 'model': control characters are not "
                        "allowed.%s",
                        NULL);
    return true;
}

static bool decode(enum api_kind kind, const struct jscan_doc *doc,
                   struct api_request *out, struct api_error *err)
{
    struct decoder d = {.doc = doc};
    struct jscan_val root, key, val;
    jscan_doc_root(doc, &root);
    if (root.type != JSCAN_OBJECT)
        return fail(err, NULL, "The request body must be a JSON object.%s",
                    NULL);
    struct jscan_iter it;
    jscan_iter_begin(&it, doc, &root);
    while (jscan_iter_next(&it, &key, &val)) {
        enum member m = member_of(doc, &key);
        if (m != M_COUNT)
            d.m[m] = val;
    }

    if (!decode_model(&d, out, err))
        return false;

    const struct jscan_val *stream = &d.m[M_STREAM];
    if (present(stream) && !is_null(stream)) {
        if (stream->type != JSCAN_TRUE && stream->type != JSCAN_FALSE)
            return fail(err, "stream",
                        "Invalid type for 'stream': expected a boolean.%s",
                        NULL);
        out->stream = stream->type == JSCAN_TRUE;
    }
    if (out->stream && kind == API_EMBEDDINGS)
        return fail(err, "stream",
                    "Streaming is not supported for embeddings.%s", NULL);
    out->include_usage = include_usage(&d);

    const struct jscan_val *temp = &d.m[M_TEMPERATURE];
    if (present(temp) && !is_null(temp)) {
        double t = 0;
        bool number = temp->type == JSCAN_INTEGER || temp->type == JSCAN_REAL;
        if (number)
            t = jscan_number_get(doc, temp);
        if (!number || isnan(t) || t < 0 || t > 2)
            return fail(err, "temperature",
                        "Invalid 'temperature': expected a number between 0 "
                        "and 2.%s",
                        NULL);
        out->has_temperature = true;
        out->temperature = t;
    }
    if (!get_uint(&d, M_MAX_TOKENS, &out->max_tokens, err) ||
        !get_uint(&d, M_MAX_COMPLETION_TOKENS, &out->max_tokens, err) ||
        !get_uint(&d, M_MAX_OUTPUT_TOKENS, &out->max_tokens, err))
        return false;

    bool ok = false;
    switch (kind) {
    case API_CHAT:
        ok = decode_messages(&d, out, err);
        break;
    case API_COMPLETIONS:
        ok = decode_text_input(&d, M_PROMPT, true, out, err);
        break;
    case API_EMBEDDINGS:
        ok = decode_text_input(&d, M_INPUT, true, out, err);
        break;
    case API_RESPONSES:
        ok = decode_text_input(
            &d, M_INPUT, !present(&d.m[M_PREVIOUS_RESPONSE_ID]), out, err);
        break;
    }
    if (ok)
        out->input_tokens =
            kind == API_EMBEDDINGS
                ? (out->text_bytes + 3) / 4
                : api_estimate_tokens(out->text_bytes, out->message_count);
    return ok;
}

bool api_request_decode(enum api_kind kind, const char *body, size_t len,
                        struct api_request *out, struct api_error *err)
{
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    if (len == 0)
        return fail(err, NULL,
                    "The request body is empty; expected a JSON object.%s",
                    NULL);

    struct jscan_doc doc;
    struct jscan_error jerr;
    enum jscan_status st = jscan_document(&doc, body, len, &jerr);
    if (st == JSCAN_UTF8) {
        char detail[180];
        snprintf(detail, sizeof detail, "line %d, column %d", jerr.line,
                 jerr.column);
        return fail(err, NULL, "The request body is not valid UTF-8 (%s).",
                    detail);
    }
    if (st != JSCAN_OK) {
        char detail[180];
        snprintf(detail, sizeof detail, "%s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        return fail(err, NULL,
                    "We could not parse the JSON body of your request: %s",
                    detail);
    }
    bool ok = decode(kind, &doc, out, err);
    jscan_doc_free(&doc);
    if (!ok) {
        api_request_release(out);
        memset(out, 0, sizeof *out);
    }
    return ok;
}
