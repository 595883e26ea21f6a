/* The request decoder as it was before core/json_scan.c: jansson parses
 * the whole body, then the fields are read from the tree. Kept verbatim
 * (renamed) as the reference the fuzz_api_request differential target
 * compares the production decoder against. Not part of the gateway. */
#include "api_request_ref.h"

#include <stdio.h>
#include <string.h>

static json_t *fail(struct api_error *err, json_t *root, const char *param,
                    const char *fmt, const char *detail)
{
    err->status = 400;
    snprintf(err->message, sizeof err->message, fmt, detail ? detail : "");
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    json_decref(root);
    return NULL;
}

static uint64_t ref_estimate_tokens(uint64_t bytes, uint64_t messages)
{
    /* ~4 bytes per token for English BPE, +3 per message for the chat
     * format, +3 to prime the reply (OpenAI's documented convention). */
    return (bytes + 3) / 4 + 3 * messages + 3;
}

/* Adds the text size of a content value: a string, or an array of parts
 * with "text" members. Returns false when the shape is invalid. */
static bool add_content(json_t *content, uint64_t *bytes)
{
    if (json_is_string(content)) {
        *bytes += json_string_length(content);
        return true;
    }
    if (json_is_null(content))
        return true;
    if (!json_is_array(content))
        return false;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        if (json_is_string(part)) {
            *bytes += json_string_length(part);
            continue;
        }
        if (!json_is_object(part))
            return false;
        json_t *text = json_object_get(part, "text");
        if (json_is_string(text))
            *bytes += json_string_length(text);
    }
    return true;
}

static json_t *decode_messages(json_t *root, struct api_request *out,
                               struct api_error *err)
{
    json_t *msgs = json_object_get(root, "messages");
    if (!msgs)
        return fail(err, root, "messages",
                    "Missing required parameter: 'messages'.%s", NULL);
    if (!json_is_array(msgs))
        return fail(err, root, "messages",
                    "Invalid type for 'messages': expected an array.%s", NULL);
    if (json_array_size(msgs) == 0)
        return fail(err, root, "messages",
                    "Invalid 'messages': empty array. Expected an array with "
                    "minimum length 1.%s",
                    NULL);
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        char param[48];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m))
            return fail(err, root, param,
                        "Invalid type for '%s': expected an object.", param);
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role))
            return fail(err, root, param, "Missing or invalid 'role' in '%s'.",
                        param);
        if (!add_content(json_object_get(m, "content"), &out->text_bytes))
            return fail(err, root, param,
                        "Invalid type for '%s.content': expected a string or "
                        "an array of content parts.",
                        param);
    }
    out->message_count = json_array_size(msgs);
    return root;
}

/* prompt / input: a string or an array of strings (or token arrays). */
static json_t *decode_text_input(json_t *root, const char *field, bool required,
                                 struct api_request *out, struct api_error *err)
{
    json_t *in = json_object_get(root, field);
    if (!in) {
        if (required)
            return fail(err, root, field, "Missing required parameter: '%s'.",
                        field);
        return root;
    }
    if (json_is_string(in)) {
        out->text_bytes += json_string_length(in);
        out->message_count = 1;
        return root;
    }
    if (!json_is_array(in))
        return fail(err, root, field,
                    "Invalid type for '%s': expected a string or an array.",
                    field);
    size_t i;
    json_t *item;
    json_array_foreach(in, i, item)
    {
        if (json_is_object(item)) { /* responses: message items */
            add_content(json_object_get(item, "content"), &out->text_bytes);
        } else if (json_is_string(item)) {
            out->text_bytes += json_string_length(item);
        } else if (json_is_array(item) || json_is_integer(item)) {
            out->text_bytes += 4; /* token ids: one token each, roughly */
        } else {
            return fail(err, root, field,
                        "Invalid type for '%s': unsupported item type.", field);
        }
    }
    out->message_count = json_array_size(in);
    return root;
}

static bool get_uint(json_t *root, const char *field, uint64_t *v,
                     struct api_error *err)
{
    json_t *x = json_object_get(root, field);
    if (!x || json_is_null(x))
        return true;
    if (!json_is_integer(x) || json_integer_value(x) < 1) {
        err->status = 400;
        snprintf(err->message, sizeof err->message,
                 "Invalid '%s': expected a positive integer.", field);
        snprintf(err->param, sizeof err->param, "%s", field);
        return false;
    }
    *v = (uint64_t)json_integer_value(x);
    return true;
}

static json_t *decode(enum api_kind kind, const char *body, size_t len,
                      struct api_request *out, struct api_error *err);

json_t *ref_api_request_decode(enum api_kind kind, const char *body, size_t len,
                               struct api_request *out, struct api_error *err)
{
    json_t *root = decode(kind, body, len, out, err);
    if (!root)
        memset(out, 0, sizeof *out); /* fields pointed into the freed tree */
    return root;
}

static json_t *decode(enum api_kind kind, const char *body, size_t len,
                      struct api_request *out, struct api_error *err)
{
    json_error_t jerr;
    json_t *root;

    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    if (len == 0)
        return fail(err, NULL, NULL,
                    "The request body is empty; expected a JSON object.%s",
                    NULL);
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root && json_error_code(&jerr) == json_error_invalid_utf8) {
        char detail[180];
        snprintf(detail, sizeof detail, "line %d, column %d", jerr.line,
                 jerr.column);
        return fail(err, NULL, NULL,
                    "The request body is not valid UTF-8 (%s).", detail);
    }
    if (!root) {
        char detail[180];
        snprintf(detail, sizeof detail, "%s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        return fail(err, NULL, NULL,
                    "We could not parse the JSON body of your request: %s",
                    detail);
    }
    if (!json_is_object(root))
        return fail(err, root, NULL,
                    "The request body must be a JSON object.%s", NULL);

    json_t *model = json_object_get(root, "model");
    if (!model)
        return fail(err, root, "model",
                    "Missing required parameter: 'model'.%s", NULL);
    if (!json_is_string(model) || json_string_length(model) == 0)
        return fail(err, root, "model",
                    "Invalid type for 'model': expected a non-empty string.%s",
                    NULL);
    out->model = json_string_value(model);
    out->model_len = json_string_length(model);
    if (out->model_len > API_MODEL_NAME_MAX) {
        char limit[24];
        snprintf(limit, sizeof limit, "%d", API_MODEL_NAME_MAX);
        return fail(err, root, "model",
                    "Invalid 'model': longer than the gateway's limit of %s "
                    "bytes.",
                    limit);
    }
    for (size_t i = 0; i < out->model_len; i++)
        if ((unsigned char)out->model[i] < 0x20 || out->model[i] == 0x7f)
            return fail(err, root, "model",
                        "Invalid 'model': control characters are not "
                        "allowed.%s",
                        NULL);

    json_t *stream = json_object_get(root, "stream");
    if (stream && !json_is_null(stream)) {
        if (!json_is_boolean(stream))
            return fail(err, root, "stream",
                        "Invalid type for 'stream': expected a boolean.%s",
                        NULL);
        out->stream = json_is_true(stream);
    }
    if (out->stream && kind == API_EMBEDDINGS)
        return fail(err, root, "stream",
                    "Streaming is not supported for embeddings.%s", NULL);
    json_t *so = json_object_get(root, "stream_options");
    if (json_is_object(so))
        out->include_usage = json_is_true(json_object_get(so, "include_usage"));

    json_t *temp = json_object_get(root, "temperature");
    if (temp && !json_is_null(temp)) {
        if (!json_is_number(temp) || json_number_value(temp) < 0 ||
            json_number_value(temp) > 2)
            return fail(err, root, "temperature",
                        "Invalid 'temperature': expected a number between 0 "
                        "and 2.%s",
                        NULL);
        out->has_temperature = true;
        out->temperature = json_number_value(temp);
    }
    if (!get_uint(root, "max_tokens", &out->max_tokens, err) ||
        !get_uint(root, "max_completion_tokens", &out->max_tokens, err) ||
        !get_uint(root, "max_output_tokens", &out->max_tokens, err)) {
        json_decref(root);
        return NULL;
    }

    switch (kind) {
    case API_CHAT:
        root = decode_messages(root, out, err);
        break;
    case API_COMPLETIONS:
        root = decode_text_input(root, "prompt", true, out, err);
        break;
    case API_EMBEDDINGS:
        root = decode_text_input(root, "input", true, out, err);
        break;
    case API_RESPONSES:
        root = decode_text_input(root, "input",
                                 !json_object_get(root, "previous_response_id"),
                                 out, err);
        break;
    }
    if (root)
        out->input_tokens =
            kind == API_EMBEDDINGS
                ? (out->text_bytes + 3) / 4
                : ref_estimate_tokens(out->text_bytes, out->message_count);
    return root;
}
