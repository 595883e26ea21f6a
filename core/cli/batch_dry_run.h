/* `sluice batch --dry-run`: tokens and cost per model, nothing sent. */
#ifndef SLUICE_CLI_BATCH_DRY_RUN_H
#define SLUICE_CLI_BATCH_DRY_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/batch_input.h"
#include "cli/batch_prices.h"

/* Prints the estimate (a table, or JSON with as_json) on stdout; lines
 * without a max_tokens count assume_output output tokens. */
int batch_dry_run(const struct batch_input *in, const struct batch_prices *p,
                  uint64_t assume_output, bool as_json);

#endif
