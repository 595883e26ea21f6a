/* The dry-run estimate of `sluice batch` (see batch_dry_run.h). */
#include "cli/batch_dry_run.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct model_sum {
    const char *model;
    uint64_t lines, input, output, estimated, no_limit;
    bool priced;
    double usd;
};

int batch_dry_run(const struct batch_input *in, const struct batch_prices *p,
                  uint64_t assume_output, bool as_json)
{
    struct model_sum *m = calloc(in->count, sizeof *m);
    size_t nm = 0;
    if (!m)
        return 1;
    for (size_t i = 0; i < in->count; i++) {
        const struct batch_in_line *l = &in->lines[i];
        size_t k = 0;
        while (k < nm && strcmp(m[k].model, l->model) != 0)
            k++;
        if (k == nm) {
            m[nm].model = l->model;
            struct batch_price pr;
            m[nm].priced = p && batch_prices_find(p, l->model, &pr);
            nm++;
        }
        uint64_t out = l->max_output ? l->max_output : assume_output;
        m[k].lines++;
        m[k].input += l->input_tokens;
        m[k].output += out;
        m[k].estimated += l->estimated;
        m[k].no_limit += l->max_output == 0;
    }
    json_t *rows = json_array();
    uint64_t ti = 0, to = 0;
    double tusd = 0;
    for (size_t k = 0; k < nm; k++) {
        struct batch_price pr = {0, 0};
        if (m[k].priced)
            batch_prices_find(p, m[k].model, &pr);
        m[k].usd =
            ((double)m[k].input * pr.input + (double)m[k].output * pr.output) /
            1e6;
        ti += m[k].input;
        to += m[k].output;
        tusd += m[k].usd;
        json_t *r = json_pack(
            "{s:s,s:I,s:I,s:I,s:I,s:I,s:b}", "model", m[k].model, "lines",
            (json_int_t)m[k].lines, "input_tokens", (json_int_t)m[k].input,
            "output_tokens", (json_int_t)m[k].output, "lines_input_estimated",
            (json_int_t)m[k].estimated, "lines_without_max_tokens",
            (json_int_t)m[k].no_limit, "priced", m[k].priced);
        json_object_set_new(r, "cost_usd",
                            m[k].priced ? json_real(m[k].usd) : json_null());
        json_array_append_new(rows, r);
    }
    if (as_json) {
        json_t *o =
            json_pack("{s:o,s:I,s:I,s:I,s:f}", "models", rows, "lines",
                      (json_int_t)in->count, "input_tokens", (json_int_t)ti,
                      "output_tokens", (json_int_t)to, "cost_usd", tusd);
        char *s = json_dumps(o, JSON_INDENT(1));
        puts(s ? s : "{}");
        free(s);
        json_decref(o);
    } else {
        printf("%-28s %8s %14s %14s %12s\n", "model", "lines", "input_tokens",
               "output_tokens", "cost_usd");
        for (size_t k = 0; k < nm; k++) {
            printf("%-28s %8llu %14llu %14llu ", m[k].model,
                   (unsigned long long)m[k].lines,
                   (unsigned long long)m[k].input,
                   (unsigned long long)m[k].output);
            if (m[k].priced)
                printf("%12.6f\n", m[k].usd);
            else
                printf("%12s\n", "no price");
            if (m[k].estimated)
                printf("  %llu lines of a model without a known encoding: "
                       "input estimated as bytes/4\n",
                       (unsigned long long)m[k].estimated);
            if (m[k].no_limit)
                printf("  %llu lines without max_tokens: output counted as "
                       "%llu each (--assume-output)\n",
                       (unsigned long long)m[k].no_limit,
                       (unsigned long long)assume_output);
        }
        printf("%-28s %8zu %14llu %14llu %12.6f\n", "total", in->count,
               (unsigned long long)ti, (unsigned long long)to, tusd);
        printf("input tokens are exact (tiktoken encodings with the chat "
               "framing); output is the lines' max_tokens, an upper bound\n");
        json_decref(rows);
    }
    free(m);
    return 0;
}
