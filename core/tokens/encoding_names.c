/* Encoding names on their own, so config parsing links without the
 * tokenizer. */
#include <string.h>

#include "tokens.h"

static const char *const names[TOK_ENCODING_COUNT] = {"o200k_base",
                                                      "cl100k_base"};

int tok_encoding_lookup(const char *name, size_t len)
{
    for (int i = 0; i < TOK_ENCODING_COUNT; i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return i;
    return -1;
}

const char *tok_encoding_name(enum tok_encoding_id id)
{
    return (unsigned)id < TOK_ENCODING_COUNT ? names[id] : "unknown";
}
