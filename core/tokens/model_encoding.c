#include "model_encoding.h"

#include <string.h>

/* Longest prefixes first where they overlap ("gpt-4o" before "gpt-4").
 * From tiktoken's model.py / the npm package's model_to_encoding.json. */
static const struct tok_model_rule builtin[] = {
    {"gpt-4o*", TOK_O200K_BASE},
    {"chatgpt-4o*", TOK_O200K_BASE},
    {"gpt-4.1*", TOK_O200K_BASE},
    {"gpt-4.5*", TOK_O200K_BASE},
    {"gpt-5*", TOK_O200K_BASE},
    {"gpt-oss*", TOK_O200K_BASE},
    {"o1*", TOK_O200K_BASE},
    {"o3*", TOK_O200K_BASE},
    {"o4*", TOK_O200K_BASE},
    {"codex-mini*", TOK_O200K_BASE},
    {"omni-moderation*", TOK_O200K_BASE},
    {"gpt-4*", TOK_CL100K_BASE},
    {"gpt-3.5*", TOK_CL100K_BASE},
    {"gpt-35*", TOK_CL100K_BASE},
    {"text-embedding-3*", TOK_CL100K_BASE},
    {"text-embedding-ada-002", TOK_CL100K_BASE},
    {"davinci-002", TOK_CL100K_BASE},
    {"babbage-002", TOK_CL100K_BASE},
};

bool tok_model_matches(const char *pattern, const char *model, size_t len)
{
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*')
        return len >= n - 1 && memcmp(pattern, model, n - 1) == 0;
    return len == n && memcmp(pattern, model, n) == 0;
}

/* Fine-tuned models ("ft:gpt-4o-mini:org::id") count as their base. */
static void strip_fine_tune(const char **model, size_t *len)
{
    if (*len > 3 && memcmp(*model, "ft:", 3) == 0) {
        *model += 3;
        *len -= 3;
    }
}

bool tok_model_encoding(const struct tok_model_rules *extra, const char *model,
                        size_t len, enum tok_encoding_id *out)
{
    for (size_t i = 0; extra && i < extra->count; i++)
        if (tok_model_matches(extra->rule[i].pattern, model, len)) {
            *out = extra->rule[i].encoding;
            return true;
        }
    strip_fine_tune(&model, &len);
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (tok_model_matches(builtin[i].pattern, model, len)) {
            *out = builtin[i].encoding;
            return true;
        }
    return false;
}
