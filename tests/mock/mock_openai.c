#include "mock_openai.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const served_models[] = {
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "text-embedding-3-small",
};
#define MODELS_CREATED 1715367049

/* ---- request parsing ---- */

/* Counts the characters of a message content (string or array of parts)
 * and remembers its first text. */
static void content_text(const json_t *content, size_t *chars,
                         const char **first, size_t *first_len)
{
    if (json_is_string(content)) {
        size_t n = json_string_length(content);
        *chars += mock_utf8_chars(json_string_value(content), n);
        *first = json_string_value(content);
        *first_len = n;
        return;
    }
    if (!json_is_array(content))
        return;
    size_t i;
    const json_t *part;
    bool found = false;
    json_array_foreach(content, i, part)
    {
        const json_t *text =
            json_is_string(part) ? part : json_object_get(part, "text");
        if (!json_is_string(text))
            continue;
        size_t n = json_string_length(text);
        *chars += mock_utf8_chars(json_string_value(text), n);
        if (!found) {
            *first = json_string_value(text);
            *first_len = n;
            found = true;
        }
    }
}

/* Messages (chat) or input items (Responses): all contents count, the
 * last user message is what the reply is about. */
static void scan_messages(struct mock_gen *g, const json_t *items,
                          size_t *chars)
{
    size_t i;
    const json_t *m;
    json_array_foreach(items, i, m)
    {
        const char *text = NULL;
        size_t len = 0;
        content_text(json_object_get(m, "content"), chars, &text, &len);
        content_text(json_object_get(m, "output"), chars, &text, &len);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (role && !strcmp(role, "user") && text) {
            g->about = text;
            g->about_len = len;
        }
    }
}

static void scan_prompt(struct mock_gen *g, const json_t *prompt, size_t *chars)
{
    if (json_is_string(prompt)) {
        content_text(prompt, chars, &g->about, &g->about_len);
        return;
    }
    size_t i;
    const json_t *p;
    json_array_foreach(prompt, i, p)
    {
        if (json_is_integer(p))
            *chars += 4; /* a token id */
        else if (json_is_array(p))
            *chars += 4 * json_array_size(p);
        else if (json_is_string(p) && !g->about)
            content_text(p, chars, &g->about, &g->about_len);
        else if (json_is_string(p))
            *chars +=
                mock_utf8_chars(json_string_value(p), json_string_length(p));
    }
}

static int bad(const char **param, const char *name, char *err, size_t len,
               const char *msg)
{
    *param = name;
    snprintf(err, len, "%s", msg);
    return -1;
}

/* Optional positive integer; -1 when absent. */
static int read_max(const json_t *body, const char *name, long *out,
                    const char **param, char *err, size_t len)
{
    const json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > 100000000) {
        *param = name;
        snprintf(err, len, "Invalid '%s': expected an integer >= 1.", name);
        return -1;
    }
    *out = (long)json_integer_value(v);
    return 0;
}

int mock_gen_parse(struct mock_gen *g, enum mock_api api, const json_t *body,
                   const char **param, char *err, size_t errlen)
{
    memset(g, 0, sizeof(*g));
    g->api = api;
    g->max_tokens = -1;
    *param = NULL;

    const json_t *model = json_object_get(body, "model");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return bad(param, "model", err, errlen,
                   "you must provide a model parameter");
    const json_t *stream = json_object_get(body, "stream");
    if (stream && !json_is_boolean(stream) && !json_is_null(stream))
        return bad(param, "stream", err, errlen,
                   "Invalid 'stream': expected a boolean.");
    g->stream = json_is_true(stream);
    const json_t *opts = json_object_get(body, "stream_options");
    g->include_usage = json_is_true(json_object_get(opts, "include_usage"));

    size_t chars = 0;
    int rc = 0;
    if (api == MOCK_API_CHAT) {
        const json_t *messages = json_object_get(body, "messages");
        if (!json_is_array(messages))
            return bad(param, "messages", err, errlen,
                       "'messages' is a required property");
        scan_messages(g, messages, &chars);
        rc = read_max(body, "max_completion_tokens", &g->max_tokens, param, err,
                      errlen);
        if (!rc && g->max_tokens < 0)
            rc = read_max(body, "max_tokens", &g->max_tokens, param, err,
                          errlen);
    } else if (api == MOCK_API_COMPLETIONS) {
        scan_prompt(g, json_object_get(body, "prompt"), &chars);
        rc = read_max(body, "max_tokens", &g->max_tokens, param, err, errlen);
    } else {
        const json_t *input = json_object_get(body, "input");
        if (json_is_string(input))
            content_text(input, &chars, &g->about, &g->about_len);
        else if (json_is_array(input))
            scan_messages(g, input, &chars);
        else
            return bad(param, "input", err, errlen,
                       "'input' must be a string or an array of items");
        const json_t *instr = json_object_get(body, "instructions");
        if (json_is_string(instr))
            chars += mock_utf8_chars(json_string_value(instr),
                                     json_string_length(instr));
        rc = read_max(body, "max_output_tokens", &g->max_tokens, param, err,
                      errlen);
    }
    if (rc)
        return rc;
    g->prompt_tokens = mock_tokens_for_chars(chars);
    g->model = strdup(json_string_value(model));
    g->created = (long)time(NULL);
    return g->model ? 0 : bad(param, NULL, err, errlen, "out of memory");
}

int mock_gen_plan(struct mock_gen *g, const struct mock_faults *f,
                  unsigned long num)
{
    static const char *const id_fmt[] = {"chatcmpl-mock-%lu", "cmpl-mock-%lu",
                                         "resp_mock_%lu"};
    snprintf(g->id, sizeof(g->id), id_fmt[g->api], num);
    snprintf(g->item_id, sizeof(g->item_id), "msg_mock_%lu", num);

    const char *about = g->about ? g->about : "";
    long words = mock_text_natural_words(about, g->about_len);
    if (mock_faults_has(f, MOCK_COMPLETION_TOKENS))
        words = f->completion_tokens;
    else if (g->stream && mock_faults_has(f, MOCK_CHUNKS) && words < f->chunks)
        words = f->chunks; /* one word per requested chunk at least */
    if (g->max_tokens >= 0 && words > g->max_tokens) {
        words = g->max_tokens;
        g->truncated = true;
    }
    g->completion_tokens = words;
    g->nchunks = mock_faults_has(f, MOCK_CHUNKS) ? f->chunks
                 : words > 0                     ? words
                                                 : 1;
    g->no_usage = mock_faults_has(f, MOCK_NO_USAGE) && f->no_usage;
    int rc = mock_text_make(&g->text, about, g->about_len, words);
    g->about = NULL; /* the body it pointed into is about to go */
    g->about_len = 0;
    return rc;
}

long mock_gen_cost(const struct mock_gen *g)
{
    return g->prompt_tokens +
           (g->max_tokens >= 0 ? g->max_tokens : g->completion_tokens);
}

void mock_gen_free(struct mock_gen *g)
{
    free(g->model);
    g->model = NULL;
    mock_text_free(&g->text);
}

/* ---- bodies ---- */

static const char *finish_reason(const struct mock_gen *g)
{
    return g->truncated ? "length" : "stop";
}

static json_t *text_json(const struct mock_gen *g)
{
    return json_stringn(g->text.buf, g->text.len);
}

static json_t *usage_json(const struct mock_gen *g)
{
    json_int_t in = g->prompt_tokens, out = g->completion_tokens;
    if (g->api == MOCK_API_RESPONSES)
        return json_pack("{s:I, s:{s:i}, s:I, s:{s:i}, s:I}", "input_tokens",
                         in, "input_tokens_details", "cached_tokens", 0,
                         "output_tokens", out, "output_tokens_details",
                         "reasoning_tokens", 0, "total_tokens", in + out);
    if (g->api == MOCK_API_COMPLETIONS)
        return json_pack("{s:I, s:I, s:I}", "prompt_tokens", in,
                         "completion_tokens", out, "total_tokens", in + out);
    return json_pack("{s:I, s:I, s:I, s:{s:i}, s:{s:i}}", "prompt_tokens", in,
                     "completion_tokens", out, "total_tokens", in + out,
                     "prompt_tokens_details", "cached_tokens", 0,
                     "completion_tokens_details", "reasoning_tokens", 0);
}

static json_t *message_item(const struct mock_gen *g, bool done)
{
    json_t *content =
        done ? json_pack("[{s:s, s:o, s:[]}]", "type", "output_text", "text",
                         text_json(g), "annotations")
             : json_array();
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", "message", "id",
                     g->item_id, "status", done ? "completed" : "in_progress",
                     "role", "assistant", "content", content);
}

static json_t *response_object(const struct mock_gen *g, bool done)
{
    const char *status = !done          ? "in_progress"
                         : g->truncated ? "incomplete"
                                        : "completed";
    json_t *output = json_array();
    if (done)
        json_array_append_new(output, message_item(g, true));
    json_t *r = json_pack(
        "{s:s, s:s, s:I, s:s, s:s, s:o, s:n, s:n}", "id", g->id, "object",
        "response", "created_at", (json_int_t)g->created, "status", status,
        "model", g->model, "output", output, "error", "incomplete_details");
    if (done && g->truncated)
        json_object_set_new(r, "incomplete_details",
                            json_pack("{s:s}", "reason", "max_output_tokens"));
    if (g->max_tokens >= 0)
        json_object_set_new(r, "max_output_tokens",
                            json_integer(g->max_tokens));
    json_object_set_new(r, "usage",
                        done && !g->no_usage ? usage_json(g) : json_null());
    return r;
}

json_t *mock_gen_body(const struct mock_gen *g)
{
    json_t *body;
    if (g->api == MOCK_API_RESPONSES)
        return response_object(g, true);
    if (g->api == MOCK_API_CHAT)
        body = json_pack(
            "{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:{s:s, s:o, s:n}, s:n, s:s}]}",
            "id", g->id, "object", "chat.completion", "created",
            (json_int_t)g->created, "model", g->model, "system_fingerprint",
            "fp_mock", "choices", "index", 0, "message", "role", "assistant",
            "content", text_json(g), "refusal", "logprobs", "finish_reason",
            finish_reason(g));
    else
        body = json_pack("{s:s, s:s, s:I, s:s, s:[{s:o, s:i, s:n, s:s}]}", "id",
                         g->id, "object", "text_completion", "created",
                         (json_int_t)g->created, "model", g->model, "choices",
                         "text", text_json(g), "index", 0, "logprobs",
                         "finish_reason", finish_reason(g));
    if (body && !g->no_usage)
        json_object_set_new(body, "usage", usage_json(g));
    return body;
}

/* ---- stream events ---- */

static void sse_data(struct evbuffer *out, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    evbuffer_add_printf(out, "data: %s\n\n", s ? s : "{}");
    free(s);
    json_decref(obj);
}

/* Responses API events name their type twice: SSE event and JSON. */
static void sse_event(struct mock_gen *g, struct evbuffer *out,
                      const char *type, json_t *obj)
{
    json_t *e = json_pack("{s:s, s:I}", "type", type, "sequence_number",
                          (json_int_t)g->seq++);
    json_object_update(e, obj);
    json_decref(obj);
    char *s = json_dumps(e, JSON_COMPACT);
    evbuffer_add_printf(out, "event: %s\ndata: %s\n\n", type, s ? s : "{}");
    free(s);
    json_decref(e);
}

static json_t *chat_chunk(const struct mock_gen *g, json_t *delta,
                          const char *finish)
{
    json_t *c = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:o, s:n, s:o}]}",
                          "id", g->id, "object", "chat.completion.chunk",
                          "created", (json_int_t)g->created, "model", g->model,
                          "system_fingerprint", "fp_mock", "choices", "index",
                          0, "delta", delta, "logprobs", "finish_reason",
                          finish ? json_string(finish) : json_null());
    /* OpenAI marks every chunk with usage:null when usage will follow. */
    if (c && g->include_usage && !g->no_usage)
        json_object_set_new(c, "usage", json_null());
    return c;
}

static json_t *text_chunk(const struct mock_gen *g, json_t *text,
                          const char *finish)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:[{s:o, s:i, s:n, s:o}]}", "id",
                     g->id, "object", "text_completion", "created",
                     (json_int_t)g->created, "model", g->model, "choices",
                     "text", text, "index", 0, "logprobs", "finish_reason",
                     finish ? json_string(finish) : json_null());
}

static json_t *part_ids(const struct mock_gen *g)
{
    return json_pack("{s:s, s:i, s:i}", "item_id", g->item_id, "output_index",
                     0, "content_index", 0);
}

int mock_gen_head_count(const struct mock_gen *g)
{
    return g->api == MOCK_API_CHAT ? 1 : g->api == MOCK_API_RESPONSES ? 3 : 0;
}

void mock_gen_head(struct mock_gen *g, int k, struct evbuffer *out)
{
    if (g->api == MOCK_API_CHAT) {
        sse_data(out,
                 chat_chunk(g,
                            json_pack("{s:s, s:s, s:n}", "role", "assistant",
                                      "content", "", "refusal"),
                            NULL));
    } else if (k == 0) {
        sse_event(g, out, "response.created",
                  json_pack("{s:o}", "response", response_object(g, false)));
    } else if (k == 1) {
        sse_event(g, out, "response.output_item.added",
                  json_pack("{s:i, s:o}", "output_index", 0, "item",
                            message_item(g, false)));
    } else {
        json_t *e = part_ids(g);
        json_object_set_new(e, "part",
                            json_pack("{s:s, s:s, s:[]}", "type", "output_text",
                                      "text", "", "annotations"));
        sse_event(g, out, "response.content_part.added", e);
    }
}

void mock_gen_piece(struct mock_gen *g, long i, struct evbuffer *out)
{
    const char *p;
    size_t n;
    mock_text_piece(&g->text, i, g->nchunks, &p, &n);
    json_t *text = json_stringn(p, n);
    if (g->api == MOCK_API_CHAT) {
        sse_data(out, chat_chunk(g, json_pack("{s:o}", "content", text), NULL));
    } else if (g->api == MOCK_API_COMPLETIONS) {
        sse_data(out, text_chunk(g, text, NULL));
    } else {
        json_t *e = part_ids(g);
        json_object_set_new(e, "delta", text);
        sse_event(g, out, "response.output_text.delta", e);
    }
}

int mock_gen_tail_count(const struct mock_gen *g)
{
    if (g->api == MOCK_API_RESPONSES)
        return 4;
    /* final chunk, optional usage chunk, [DONE] */
    return g->include_usage && !g->no_usage ? 3 : 2;
}

static void responses_tail(struct mock_gen *g, int k, struct evbuffer *out)
{
    json_t *e;
    switch (k) {
    case 0:
        e = part_ids(g);
        json_object_set_new(e, "text", text_json(g));
        sse_event(g, out, "response.output_text.done", e);
        break;
    case 1:
        e = part_ids(g);
        json_object_set_new(e, "part",
                            json_pack("{s:s, s:o, s:[]}", "type", "output_text",
                                      "text", text_json(g), "annotations"));
        sse_event(g, out, "response.content_part.done", e);
        break;
    case 2:
        sse_event(g, out, "response.output_item.done",
                  json_pack("{s:i, s:o}", "output_index", 0, "item",
                            message_item(g, true)));
        break;
    default:
        sse_event(g, out,
                  g->truncated ? "response.incomplete" : "response.completed",
                  json_pack("{s:o}", "response", response_object(g, true)));
    }
}

void mock_gen_tail(struct mock_gen *g, int k, struct evbuffer *out)
{
    if (g->api == MOCK_API_RESPONSES) {
        responses_tail(g, k, out);
        return;
    }
    if (k == mock_gen_tail_count(g) - 1) {
        evbuffer_add(out, "data: [DONE]\n\n", 14);
        return;
    }
    json_t *c;
    if (k == 0 && g->api == MOCK_API_CHAT)
        c = chat_chunk(g, json_object(), finish_reason(g));
    else if (k == 0)
        c = text_chunk(g, json_string(""), finish_reason(g));
    else /* usage chunk */
        c = json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", g->id, "object",
                      g->api == MOCK_API_CHAT ? "chat.completion.chunk"
                                              : "text_completion",
                      "created", (json_int_t)g->created, "model", g->model,
                      "choices", "usage", usage_json(g));
    sse_data(out, c);
}

/* ---- errors and models ---- */

json_t *mock_error_json(const char *message, const char *type,
                        const char *param, const char *code)
{
    json_t *msg = json_string(message);
    if (!msg) /* not valid UTF-8 (e.g. from a header) */
        msg = json_string("mock error");
    return json_pack("{s:{s:o, s:s, s:o, s:o}}", "error", "message", msg,
                     "type", type, "param",
                     param ? json_string(param) : json_null(), "code",
                     code ? json_string(code) : json_null());
}

json_t *mock_model_json(const char *id)
{
    json_t *s = json_string(id);
    if (!s)
        s = json_string("unknown");
    return json_pack("{s:o, s:s, s:i, s:s}", "id", s, "object", "model",
                     "created", MODELS_CREATED, "owned_by", "sluice-mock");
}

json_t *mock_models_json(void)
{
    json_t *data = json_array();
    for (size_t i = 0; i < sizeof(served_models) / sizeof(served_models[0]);
         i++)
        json_array_append_new(data, mock_model_json(served_models[i]));
    return json_pack("{s:s, s:o}", "object", "list", "data", data);
}
