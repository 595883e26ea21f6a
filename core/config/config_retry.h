/* Which upstream statuses are retried (retry.on_status): a set of HTTP
 * statuses kept as a bitset, parsed from integers and "Nxx" classes. */
#ifndef SLUICE_CONFIG_RETRY_H
#define SLUICE_CONFIG_RETRY_H

#include <stdbool.h>

#include "config.h"

struct parse_ctx;
struct json_t;

/* The default: what the official OpenAI SDKs retry (408, 409, 429, and
 * the 5xx a provider sends when busy or broken: 500, 502, 503, 504). */
void config_retry_default_statuses(struct retry_config *rc);
/* retry.on_status from the retry object, when present. */
void cfg_parse_retry_statuses(struct parse_ctx *ctx, struct json_t *retry,
                              struct retry_config *rc);
bool config_retry_status(const struct retry_config *rc, int status);

#endif
