/* Input tokens of an OpenAI request body as the provider bills them: the
 * text through the exact tokenizer plus the chat format's framing (see
 * README.md for the rules and where they come from). */
#ifndef SLUICE_TOKENS_REQUEST_COUNT_H
#define SLUICE_TOKENS_REQUEST_COUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_request.h"
#include "tokens.h"

struct tok_request_count {
    uint64_t tokens;
    bool extrapolated;    /* more text than max_bytes: the rest scaled */
    bool media_estimated; /* images of unknown size, audio or files */
};

/* Counts body (len bytes, already validated by api_request_decode for
 * kind). At most max_bytes of text go through the tokenizer (0 = all); the
 * tokens of the rest are extrapolated from the ratio seen so far. False
 * only when out of memory or the body is not JSON. */
bool tok_count_request(enum api_kind kind, const char *body, size_t len,
                       const struct tok_encoding *e, size_t max_bytes,
                       struct tok_request_count *out);

#endif
