/* A request's input tokens, counted exactly on first use and cached: the
 * value behind req_input_tokens for plugins and req.input_tokens in Lua.
 * Models the table does not know keep the byte estimate from
 * api_request_decode, logged once per model and counted in
 * sluice_input_token_counts_total{method="estimate"}. */
#ifndef SLUICE_TOKENS_REQUEST_TOKENS_H
#define SLUICE_TOKENS_REQUEST_TOKENS_H

#include <stdbool.h>
#include <stdint.h>

struct sluice_req;

struct req_tokens {
    bool done;            /* api.input_tokens holds the final value */
    bool exact;           /* from the tokenizer (else the estimate) */
    bool extrapolated;    /* past tokens.max_bytes */
    bool media_estimated; /* images of unknown size, audio, files */
};

/* The count (computed once per request, on the request's thread). */
uint64_t request_input_tokens(struct sluice_req *r);

#endif
