/* Price table loading (jansson) and lookup. */
#include "ct_prices.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_money.h"

static int read_price(json_t *v, const char *model, const char *key,
                      uint64_t *out, char *err, size_t errlen)
{
    char num[64];
    const char *s;
    size_t len;

    if (json_is_string(v)) {
        s = json_string_value(v);
        len = json_string_length(v);
    } else if (json_is_integer(v) && json_integer_value(v) >= 0) {
        len = (size_t)snprintf(num, sizeof num, "%lld",
                               (long long)json_integer_value(v));
        s = num;
    } else if (json_is_real(v) && json_real_value(v) >= 0 &&
               json_real_value(v) < 1e9) {
        /* A JSON number with decimals: taken at 6 decimals, what a price
         * per million tokens needs. Strings are exact. */
        len = (size_t)snprintf(num, sizeof num, "%.6f", json_real_value(v));
        s = num;
    } else
        s = NULL, len = 0;
    if (!s || !ct_parse_decimal(s, len, 6, out)) {
        snprintf(err, errlen,
                 "prices.%s.%s: must be a decimal USD amount per 1M tokens "
                 "(e.g. \"2.50\"), at most 6 decimals",
                 model, key);
        return -1;
    }
    return 0;
}

static struct ct_price_entry *slot(struct ct_prices *t, const char *model)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].model, model))
            return &t->v[i];
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        struct ct_price_entry *v = realloc(t->v, cap * sizeof *v);
        if (!v)
            return NULL;
        t->v = v;
        t->cap = cap;
    }
    struct ct_price_entry *e = &t->v[t->n];
    e->model = strdup(model);
    if (!e->model)
        return NULL;
    memset(&e->price, 0, sizeof e->price);
    t->n++;
    return e;
}

static int merge_model(struct ct_prices *t, const char *model, json_t *o,
                       char *err, size_t errlen)
{
    struct ct_price p = {0};
    json_t *cached = json_object_get(o, "cached_input");
    const char *key;
    json_t *v;

    if (!json_is_object(o)) {
        snprintf(err, errlen,
                 "prices.%s: must be an object {\"input\", \"output\", "
                 "\"cached_input\"}",
                 model);
        return -1;
    }
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "input") && strcmp(key, "output") &&
            strcmp(key, "cached_input")) {
            snprintf(err, errlen, "prices.%s.%s: unknown key", model, key);
            return -1;
        }
    }
    if (read_price(json_object_get(o, "input"), model, "input", &p.input, err,
                   errlen) ||
        read_price(json_object_get(o, "output"), model, "output", &p.output,
                   err, errlen))
        return -1;
    p.cached_input = p.input;
    if (cached &&
        read_price(cached, model, "cached_input", &p.cached_input, err, errlen))
        return -1;
    struct ct_price_entry *e = slot(t, model);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    e->price = p;
    return 0;
}

int ct_prices_merge(struct ct_prices *t, const char *json, bool whole,
                    char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr), *models = root;
    const char *model;
    json_t *o;
    int rc = -1;

    if (!json_is_object(root)) {
        snprintf(err, errlen, "prices: not a JSON object (%s)", jerr.text);
        goto out;
    }
    if (whole) {
        json_t *d = json_object_get(root, "batch_discount_percent");
        if (d) {
            if (!json_is_integer(d) || json_integer_value(d) < 0 ||
                json_integer_value(d) > 100) {
                snprintf(err, errlen,
                         "batch_discount_percent: must be an integer 0..100");
                goto out;
            }
            t->batch_discount_percent = (unsigned)json_integer_value(d);
        }
        models = json_object_get(root, "models");
        if (!json_is_object(models)) {
            snprintf(err, errlen, "price file: no \"models\" object");
            goto out;
        }
    }
    json_object_foreach(models, model, o)
    {
        if (merge_model(t, model, o, err, errlen))
            goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

void ct_prices_free(struct ct_prices *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].model);
    free(t->v);
    memset(t, 0, sizeof *t);
}

const struct ct_price *ct_prices_find(const struct ct_prices *t,
                                      const char *model, size_t len)
{
    const struct ct_price_entry *best = NULL;
    size_t best_len = 0;

    for (size_t i = 0; i < t->n; i++) {
        size_t n = strlen(t->v[i].model);
        if (n > len || memcmp(t->v[i].model, model, n))
            continue;
        if (n == len)
            return &t->v[i].price;
        /* A dated snapshot (gpt-4o-2024-08-06) is priced as its model;
         * a variant (gpt-4o-audio-preview) is not. */
        if (model[n] == '-' && n + 1 < len && model[n + 1] >= '0' &&
            model[n + 1] <= '9' && n > best_len) {
            best = &t->v[i];
            best_len = n;
        }
    }
    return best ? &best->price : NULL;
}

uint64_t ct_cost(const struct ct_price *p, uint64_t prompt, uint64_t cached,
                 uint64_t completion, unsigned discount_percent)
{
    if (cached > prompt)
        cached = prompt;
    uint64_t c = ct_mul_sat(prompt - cached, p->input);
    c = ct_add_sat(c, ct_mul_sat(cached, p->cached_input));
    c = ct_add_sat(c, ct_mul_sat(completion, p->output));
    if (discount_percent && c != UINT64_MAX)
        c = c / 100 * (100 - discount_percent) +
            c % 100 * (100 - discount_percent) / 100;
    return c;
}
