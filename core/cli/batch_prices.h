/* Prices per model for `sluice batch`: the table plugins/cost_tracker ships
 * (prices/openai.json, compiled in), or a file of the same shape given
 * with --prices. USD per 1M tokens. */
#ifndef SLUICE_CLI_BATCH_PRICES_H
#define SLUICE_CLI_BATCH_PRICES_H

#include <stdbool.h>
#include <stddef.h>

struct batch_price {
    double input, output; /* USD per 1M tokens */
};

struct batch_prices;

/* path NULL: the compiled-in table. NULL with err set on failure. */
struct batch_prices *batch_prices_load(const char *path, char *err,
                                       size_t errlen);
void batch_prices_free(struct batch_prices *p);
/* Exact model name, else the longest entry followed by '-' and a digit
 * (dated snapshots: gpt-4o-2024-08-06 is gpt-4o; gpt-4o-mini is not). */
bool batch_prices_find(const struct batch_prices *p, const char *model,
                       struct batch_price *out);

#endif
