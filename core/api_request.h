/* Decodes and validates an OpenAI API request body once, into the fields
 * the rest of the gateway keys on. Shared by the core and the SDK's fake
 * host, so plugin unit tests see the same decoded values as production. */
#ifndef SLUICE_API_REQUEST_H
#define SLUICE_API_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum api_kind {
    API_CHAT = 0,        /* POST /v1/chat/completions */
    API_COMPLETIONS = 1, /* POST /v1/completions */
    API_EMBEDDINGS = 2,  /* POST /v1/embeddings */
    API_RESPONSES = 3,   /* POST /v1/responses */
};

struct api_request {
    const char *model; /* points into the json root */
    size_t model_len;
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    bool has_temperature;
    double temperature;
    uint64_t
        max_tokens; /* max_tokens | max_completion_tokens | max_output_tokens */
    uint64_t message_count; /* messages / prompts / inputs */
    uint64_t text_bytes;    /* bytes of text content */
    uint64_t input_tokens;  /* estimate, see api_estimate_tokens() */
};

struct api_error {
    int status;        /* 400 */
    char message[400]; /* precise, user-facing */
    char param[48];    /* offending field or "" */
};

/* Parses body (len bytes). On success returns the root object (caller
 * decrefs) and fills out; on failure returns NULL and fills err. */
json_t *api_request_decode(enum api_kind kind, const char *body, size_t len,
                           struct api_request *out, struct api_error *err);

/* Estimated tokens for `bytes` of text in `messages` messages: about four
 * bytes per token plus the chat format's per-message overhead. */
uint64_t api_estimate_tokens(uint64_t bytes, uint64_t messages);

#endif
