/* The config's "tokens" section:
 *   "tokens": {"max_bytes": 1048576,
 *              "models": {"my-alias": "o200k_base", "llama*": "cl100k_base"}}
 * max_bytes caps the text counted per request (the rest is extrapolated);
 * models extends the built-in model -> encoding table. */
#ifndef SLUICE_TOKENS_CONFIG_H
#define SLUICE_TOKENS_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "model_encoding.h"

#define TOK_DEFAULT_MAX_BYTES (1024 * 1024)

struct tokens_config {
    size_t max_bytes;
    struct tok_model_rules models;
};

void tokens_config_defaults(struct tokens_config *tc);

/* Parses obj into tc; on an error writes the offending key's path and a
 * message, and returns false. */
bool tokens_config_parse(const json_t *obj, struct tokens_config *tc,
                         char *path, size_t path_len, char *err,
                         size_t err_len);

/* The config loader's hook (config/config_tokens.c). */
struct parse_ctx;
void cfg_parse_tokens(struct parse_ctx *ctx, json_t *obj);

#endif
