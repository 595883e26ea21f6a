/* Reading and measuring the JSONL input of `sluice batch`. */
#include "cli/batch_input.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_request.h"
#include "tokens/model_encoding.h"
#include "tokens/request_count.h"

static int kind_of(const char *url, enum api_kind *kind)
{
    static const struct {
        const char *url;
        enum api_kind kind;
    } known[] = {{"/v1/chat/completions", API_CHAT},
                 {"/v1/completions", API_COMPLETIONS},
                 {"/v1/embeddings", API_EMBEDDINGS},
                 {"/v1/responses", API_RESPONSES}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(url, known[i].url) == 0) {
            *kind = known[i].kind;
            return 0;
        }
    return -1;
}

static uint64_t max_output(json_t *body)
{
    const char *keys[] = {"max_completion_tokens", "max_tokens",
                          "max_output_tokens"};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(body, keys[i]);
        if (json_is_integer(v) && json_integer_value(v) > 0)
            return (uint64_t)json_integer_value(v);
    }
    return 0;
}

/* Exact count with the model's encoding; bytes/4 when none is known. */
static void count(struct batch_in_line *l, enum api_kind kind)
{
    enum tok_encoding_id id;
    struct tok_request_count c;
    const struct tok_encoding *e =
        tok_model_encoding(NULL, l->model, strlen(l->model), &id)
            ? tok_encoding_get(id)
            : NULL;
    if (e && tok_count_request(kind, l->body, strlen(l->body), e, 0, &c)) {
        l->input_tokens = c.tokens;
        return;
    }
    l->input_tokens = strlen(l->body) / 4 + 1;
    l->estimated = true;
}

static int parse_line(json_t *o, struct batch_in_line *l, char *why,
                      size_t whylen)
{
    const char *cid = json_string_value(json_object_get(o, "custom_id"));
    const char *url = json_string_value(json_object_get(o, "url"));
    json_t *body = json_object_get(o, "body");
    const char *model = json_string_value(json_object_get(body, "model"));
    enum api_kind kind;
    if (!cid || !cid[0])
        snprintf(why, whylen, "needs a non-empty string custom_id");
    else if (!url || kind_of(url, &kind) != 0)
        snprintf(why, whylen,
                 "url must be /v1/chat/completions, "
                 "/v1/completions, /v1/embeddings or "
                 "/v1/responses");
    else if (!json_is_object(body) || !model)
        snprintf(why, whylen, "body must be an object with a model");
    else {
        l->custom_id = strdup(cid);
        l->path = strdup(url + 3);
        l->body = json_dumps(body, JSON_COMPACT);
        l->model = strdup(model);
        l->max_output = max_output(body);
        if (!l->custom_id || !l->path || !l->body || !l->model) {
            snprintf(why, whylen, "out of memory");
            return -1;
        }
        count(l, kind);
        return 0;
    }
    return -1;
}

int batch_input_load(const char *path, struct batch_input *in, char *err,
                     size_t errlen)
{
    memset(in, 0, sizeof *in);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0, lineno = 0, alloc = 0;
    ssize_t n;
    uint64_t h = 1469598103934665603ull;
    int rc = 0;
    while ((n = getline(&buf, &cap, f)) >= 0) {
        lineno++;
        for (ssize_t i = 0; i < n; i++)
            h = (h ^ (unsigned char)buf[i]) * 1099511628211ull;
        size_t len = (size_t)n;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
                           buf[len - 1] == ' '))
            len--;
        if (len == 0)
            continue;
        if (in->count == alloc) {
            alloc = alloc ? alloc * 2 : 256;
            void *nl = realloc(in->lines, alloc * sizeof *in->lines);
            if (!nl) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
                break;
            }
            in->lines = nl;
        }
        json_error_t jerr;
        json_t *o = json_loadb(buf, len, 0, &jerr);
        char why[200];
        struct batch_in_line *l = &in->lines[in->count];
        memset(l, 0, sizeof *l);
        if (!o)
            snprintf(why, sizeof why, "is not valid JSON: %s", jerr.text);
        if (!o || parse_line(o, l, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s line %zu: %s", path, lineno, why);
            json_decref(o);
            in->count++; /* freed with the rest */
            rc = -1;
            break;
        }
        json_decref(o);
        in->count++;
    }
    free(buf);
    fclose(f);
    in->hash = h;
    if (rc == 0 && in->count == 0) {
        snprintf(err, errlen, "%s: no requests", path);
        rc = -1;
    }
    if (rc != 0)
        batch_input_free(in);
    return rc;
}

void batch_input_free(struct batch_input *in)
{
    for (size_t i = 0; i < in->count; i++) {
        free(in->lines[i].custom_id);
        free(in->lines[i].path);
        free(in->lines[i].body);
        free(in->lines[i].model);
    }
    free(in->lines);
    memset(in, 0, sizeof *in);
}
