/* Which encoding a model uses, and the chat framing its family is billed
 * with. A built-in table of OpenAI model prefixes, extended by the config's
 * tokens.models (checked first, so config can also override). */
#ifndef SLUICE_TOKENS_MODEL_ENCODING_H
#define SLUICE_TOKENS_MODEL_ENCODING_H

#include <stdbool.h>
#include <stddef.h>

#include "tokens.h"

#define TOK_MAX_MODEL_RULES 64

struct tok_model_rule {
    char pattern[128]; /* exact name, or a prefix ending in '*' */
    enum tok_encoding_id encoding;
};

struct tok_model_rules {
    size_t count;
    struct tok_model_rule rule[TOK_MAX_MODEL_RULES];
};

/* The encoding of model (len bytes): extra rules first, then the built-in
 * table; false when neither knows the model. */
bool tok_model_encoding(const struct tok_model_rules *extra, const char *model,
                        size_t len, enum tok_encoding_id *out);

/* Whether model (len bytes) matches pattern (exact, or prefix + '*'). */
bool tok_model_matches(const char *pattern, const char *model, size_t len);

#endif
