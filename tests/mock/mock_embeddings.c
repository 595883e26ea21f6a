#include "mock_embeddings.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_embed.h"
#include "mock_text.h"

#define MAX_INPUTS 2048

/* One input: a string, or an array of token ids hashed as their text. */
struct input {
    const char *text;
    size_t len;
    char *owned;
    long tokens;
};

static int token_text(const json_t *ids, struct input *in)
{
    size_t n = json_array_size(ids), i, cap = n * 21 + 1, len = 0;
    const json_t *id;
    in->owned = malloc(cap);
    if (!in->owned)
        return -1;
    in->owned[0] = '\0';
    json_array_foreach(ids, i, id)
    {
        if (!json_is_integer(id)) {
            free(in->owned);
            in->owned = NULL;
            return -1;
        }
        len +=
            (size_t)snprintf(in->owned + len, cap - len, "%s%lld", i ? " " : "",
                             (long long)json_integer_value(id));
    }
    in->text = in->owned;
    in->len = len;
    in->tokens = n ? (long)n : 1;
    return 0;
}

static int read_input(const json_t *v, struct input *in)
{
    memset(in, 0, sizeof(*in));
    if (json_is_string(v)) {
        in->text = json_string_value(v);
        in->len = json_string_length(v);
        if (in->len == 0)
            return -1; /* OpenAI rejects empty strings too */
        in->tokens = mock_tokens_for_chars(mock_utf8_chars(in->text, in->len));
        return 0;
    }
    return json_is_array(v) ? token_text(v, in) : -1;
}

/* "input": string | [string...] | [int...] | [[int...]...] */
static long read_inputs(const json_t *input, struct input *ins)
{
    if (json_is_string(input) ||
        (json_is_array(input) && json_is_integer(json_array_get(input, 0))))
        return read_input(input, &ins[0]) ? -1 : 1;
    if (!json_is_array(input) || json_array_size(input) == 0 ||
        json_array_size(input) > MAX_INPUTS)
        return -1;
    size_t i;
    const json_t *v;
    json_array_foreach(input, i, v)
    {
        if (read_input(v, &ins[i])) {
            free(ins[i].owned);
            for (size_t j = 0; j < i; j++)
                free(ins[j].owned);
            return -1;
        }
    }
    return (long)json_array_size(input);
}

static void put_vector(struct evbuffer *out, const float *v, int dim,
                       bool base64)
{
    if (base64) {
        char *s = mock_embed_base64(v, dim);
        evbuffer_add_printf(out, "\"%s\"", s ? s : "");
        free(s);
        return;
    }
    char num[32];
    evbuffer_add(out, "[", 1);
    for (int i = 0; i < dim; i++) {
        int n = snprintf(num, sizeof(num), "%s%.7g", i ? "," : "", v[i]);
        evbuffer_add(out, num, (size_t)n);
    }
    evbuffer_add(out, "]", 1);
}

static int fail(const char **param, const char *name, char *err, size_t len,
                const char *msg)
{
    *param = name;
    snprintf(err, len, "%s", msg);
    return -1;
}

long mock_embeddings_tokens(const json_t *body)
{
    const json_t *input = json_object_get(body, "input");
    if (json_is_string(input))
        return mock_tokens_for_chars(mock_utf8_chars(
            json_string_value(input), json_string_length(input)));
    size_t i;
    const json_t *v;
    long tokens = 0;
    json_array_foreach(input, i, v)
    {
        if (json_is_string(v))
            tokens += mock_tokens_for_chars(
                mock_utf8_chars(json_string_value(v), json_string_length(v)));
        else
            tokens += json_is_array(v) ? (long)json_array_size(v) : 1;
    }
    return tokens > 0 ? tokens : 1;
}

int mock_embeddings_reply(const json_t *body, uint64_t seed,
                          struct evbuffer *out, long *prompt_tokens,
                          const char **param, char *err, size_t errlen)
{
    *param = NULL;
    const json_t *model = json_object_get(body, "model");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return fail(param, "model", err, errlen,
                    "you must provide a model parameter");

    int dim = MOCK_EMBED_DEFAULT_DIM;
    const json_t *dims = json_object_get(body, "dimensions");
    if (dims && !json_is_null(dims)) {
        if (!json_is_integer(dims) || json_integer_value(dims) < 1 ||
            json_integer_value(dims) > MOCK_EMBED_MAX_DIM)
            return fail(param, "dimensions", err, errlen,
                        "'dimensions' must be an integer in [1, 3072]");
        dim = (int)json_integer_value(dims);
    }
    const char *fmt =
        json_string_value(json_object_get(body, "encoding_format"));
    if (fmt && strcmp(fmt, "float") && strcmp(fmt, "base64"))
        return fail(param, "encoding_format", err, errlen,
                    "'encoding_format' must be 'float' or 'base64'");
    bool base64 = fmt && !strcmp(fmt, "base64");

    struct input *ins = calloc(MAX_INPUTS, sizeof(*ins));
    float *v = malloc(sizeof(float) * (size_t)dim);
    long n = ins && v ? read_inputs(json_object_get(body, "input"), ins) : -1;
    if (n < 0) {
        free(ins);
        free(v);
        return fail(param, "input", err, errlen,
                    "'input' must be a non-empty string, an array of strings "
                    "or an array of token arrays");
    }

    /* The model name is echoed through jansson so it is escaped. */
    char *model_json = json_dumps(model, JSON_ENCODE_ANY);
    long tokens = 0;
    evbuffer_add_printf(out, "{\"object\":\"list\",\"data\":[");
    for (long i = 0; i < n; i++) {
        mock_embed_text(ins[i].text, ins[i].len, seed, v, dim);
        evbuffer_add_printf(out,
                            "%s{\"object\":\"embedding\",\"index\":%ld,"
                            "\"embedding\":",
                            i ? "," : "", i);
        put_vector(out, v, dim, base64);
        evbuffer_add(out, "}", 1);
        tokens += ins[i].tokens;
        free(ins[i].owned);
    }
    evbuffer_add_printf(out,
                        "],\"model\":%s,\"usage\":{\"prompt_tokens\":%ld,"
                        "\"total_tokens\":%ld}}",
                        model_json ? model_json : "\"\"", tokens, tokens);
    free(model_json);
    free(ins);
    free(v);
    *prompt_tokens = tokens;
    return 0;
}
