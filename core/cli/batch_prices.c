/* Price table for `sluice batch` (see batch_prices.h). */
#include "cli/batch_prices.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char batch_cli_default_prices[]; /* generated, cli.cmake */

struct batch_prices {
    json_t *models; /* name -> {"input": "2.50", "output": "10.00"} */
};

struct batch_prices *batch_prices_load(const char *path, char *err,
                                       size_t errlen)
{
    json_error_t jerr;
    json_t *root = path ? json_load_file(path, 0, &jerr)
                        : json_loads(batch_cli_default_prices, 0, &jerr);
    json_t *models = json_object_get(root, "models");
    if (!json_is_object(models)) {
        snprintf(err, errlen, "%s: %s", path ? path : "built-in prices",
                 root ? "no \"models\" object" : jerr.text);
        json_decref(root);
        return NULL;
    }
    struct batch_prices *p = malloc(sizeof *p);
    if (!p) {
        json_decref(root);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->models = json_incref(models);
    json_decref(root);
    return p;
}

void batch_prices_free(struct batch_prices *p)
{
    if (!p)
        return;
    json_decref(p->models);
    free(p);
}

/* "2.50" or 2.5 -> 2.5; absent -> 0. */
static double price_of(json_t *v)
{
    if (json_is_string(v))
        return strtod(json_string_value(v), NULL);
    return json_is_number(v) ? json_number_value(v) : 0;
}

bool batch_prices_find(const struct batch_prices *p, const char *model,
                       struct batch_price *out)
{
    json_t *hit = json_object_get(p->models, model);
    if (!hit) {
        size_t best = 0, mlen = strlen(model);
        const char *key;
        json_t *v;
        json_object_foreach(p->models, key, v)
        {
            size_t k = strlen(key);
            if (k > best && k + 1 < mlen && strncmp(model, key, k) == 0 &&
                model[k] == '-' && model[k + 1] >= '0' && model[k + 1] <= '9') {
                best = k;
                hit = v;
            }
        }
    }
    if (!json_is_object(hit))
        return false;
    out->input = price_of(json_object_get(hit, "input"));
    out->output = price_of(json_object_get(hit, "output"));
    return true;
}
