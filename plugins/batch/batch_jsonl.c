/* Input file checks (see batch_jsonl.h). */
#include "batch_jsonl.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const endpoints[] = {"/v1/chat/completions",
                                        "/v1/completions", "/v1/embeddings",
                                        "/v1/responses", NULL};

bool batch_endpoint_ok(const char *url)
{
    for (int i = 0; endpoints[i]; i++)
        if (strcmp(url, endpoints[i]) == 0)
            return true;
    return false;
}

/* custom_id uniqueness: open addressing over FNV-1a, ids copied. */
struct idset {
    char **slot;
    size_t cap, used;
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* 1 added, 0 already there, -1 out of memory. */
static int idset_add(struct idset *set, const char *id)
{
    if ((set->used + 1) * 2 > set->cap) {
        size_t ncap = set->cap ? set->cap * 2 : 1024;
        char **ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slot[i])
                continue;
            size_t j = fnv(set->slot[i]) & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = set->slot[i];
        }
        free(set->slot);
        set->slot = ns;
        set->cap = ncap;
    }
    size_t j = fnv(id) & (set->cap - 1);
    while (set->slot[j]) {
        if (strcmp(set->slot[j], id) == 0)
            return 0;
        j = (j + 1) & (set->cap - 1);
    }
    if (!(set->slot[j] = strdup(id)))
        return -1;
    set->used++;
    return 1;
}

static void idset_free(struct idset *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slot[i]);
    free(set->slot);
}

/* Checks one line; NULL when fine, else what is wrong. */
static const char *check_line(json_t *o, struct jsonl_check *c,
                              struct idset *ids, batch_model_known_fn known,
                              void *arg, char *why, size_t whylen)
{
    if (!json_is_object(o))
        return "is not a JSON object";
    json_t *cid = json_object_get(o, "custom_id");
    if (!json_is_string(cid) || json_string_length(cid) == 0)
        return "needs a non-empty string custom_id";
    if (json_string_length(cid) > 120)
        return "custom_id is longer than 120 characters";
    json_t *m = json_object_get(o, "method");
    if (!json_is_string(m) || strcmp(json_string_value(m), "POST") != 0)
        return "method must be \"POST\"";
    json_t *u = json_object_get(o, "url");
    if (!json_is_string(u) || !batch_endpoint_ok(json_string_value(u)))
        return "url must be /v1/chat/completions, /v1/completions, "
               "/v1/embeddings or /v1/responses";
    if (c->url[0] && strcmp(c->url, json_string_value(u)) != 0)
        return "every line of a batch must use the same url";
    snprintf(c->url, sizeof c->url, "%s", json_string_value(u));
    json_t *b = json_object_get(o, "body");
    if (!json_is_object(b))
        return "body must be a JSON object";
    json_t *model = json_object_get(b, "model");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return "body.model must be a non-empty string";
    if (known && !known(arg, json_string_value(model))) {
        snprintf(why, whylen, "model '%.100s' is not served by any upstream",
                 json_string_value(model));
        return why;
    }
    if (json_is_true(json_object_get(b, "stream")))
        return "body.stream must not be true in a batch";
    int added = idset_add(ids, json_string_value(cid));
    if (added == 0) {
        snprintf(why, whylen, "custom_id '%.100s' is used twice",
                 json_string_value(cid));
        return why;
    }
    return added < 0 ? "out of memory" : NULL;
}

int batch_jsonl_check(const char *data, size_t len, size_t max_lines,
                      batch_model_known_fn known, void *arg, int want,
                      struct jsonl_check *c)
{
    bool want_spans = want & JSONL_SPANS;
    struct idset ids = {0};
    size_t cap_spans = 0, lineno = 0;
    memset(c, 0, sizeof *c);
    int rc = 0;
    for (size_t pos = 0; pos < len && rc == 0;) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t l = end - pos;
        lineno++;
        if (l > 0 && data[pos + l - 1] == '\r')
            l--;
        size_t lead = 0;
        while (lead < l &&
               (data[pos + lead] == ' ' || data[pos + lead] == '\t'))
            lead++;
        if (lead == l) { /* blank lines are skipped, as OpenAI does */
            pos = end + 1;
            continue;
        }
        if (c->lines == max_lines) {
            snprintf(c->error, sizeof c->error,
                     "the file has more than %zu requests", max_lines);
            rc = -1;
            break;
        }
        json_error_t jerr;
        char why[200];
        json_t *o = json_loadb(data + pos, l, JSON_REJECT_DUPLICATES, &jerr);
        const char *bad =
            o ? check_line(o, c, &ids, known, arg, why, sizeof why) : NULL;
        if (!o)
            snprintf(c->error, sizeof c->error,
                     "line %zu: is not valid JSON: %s", lineno, jerr.text);
        else if (bad)
            snprintf(c->error, sizeof c->error, "line %zu: %s", lineno, bad);
        if (!o || bad) {
            json_decref(o);
            rc = -1;
            break;
        }
        if (want_spans) {
            if (c->lines == cap_spans) {
                cap_spans = cap_spans ? cap_spans * 2 : 256;
                void *n = realloc(c->at, cap_spans * sizeof *c->at);
                if (!n) {
                    snprintf(c->error, sizeof c->error, "out of memory");
                    rc = -1;
                    break;
                }
                c->at = n;
            }
            c->at[c->lines].off = pos;
            c->at[c->lines].len = l;
            c->at[c->lines].json = NULL;
            if (want & JSONL_PARSED) {
                c->at[c->lines].json = o;
                o = NULL;
            }
        }
        json_decref(o);
        c->lines++;
        pos = end + 1;
    }
    if (rc == 0 && c->lines == 0) {
        snprintf(c->error, sizeof c->error, "the file has no requests");
        rc = -1;
    }
    idset_free(&ids);
    if (rc != 0) {
        for (size_t i = 0; c->at && i < c->lines; i++)
            json_decref(c->at[i].json);
        free(c->at);
        c->at = NULL;
    }
    return rc;
}
