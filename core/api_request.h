/* Decodes and validates an OpenAI API request body once, into the fields
 * the rest of the gateway keys on. Shared by the core and the SDK's fake
 * host, so plugin unit tests see the same decoded values as production. */
#ifndef SLUICE_API_REQUEST_H
#define SLUICE_API_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest model name accepted: the length a config can route
 * (upstreams[].models entries are char[128]). A longer one can match
 * nothing and would only fill logs and headers: refused with 400. */
#define API_MODEL_NAME_MAX 127

enum api_kind {
    API_CHAT = 0,        /* POST /v1/chat/completions */
    API_COMPLETIONS = 1, /* POST /v1/completions */
    API_EMBEDDINGS = 2,  /* POST /v1/embeddings */
    API_RESPONSES = 3,   /* POST /v1/responses */
};

struct api_request {
    /* The decoded model name, model_len bytes, not NUL-terminated: points
     * into the body when the JSON string has no escapes, else to a copy
     * owned by this struct (see api_request_release). */
    const char *model;
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
    char *model_copy;       /* owned: the unescaped model, or NULL */
};

struct api_error {
    int status;        /* 400 */
    char message[400]; /* precise, user-facing */
    char param[48];    /* offending field or "" */
};

/* Validates body (len bytes) as strict JSON (what jansson's json_loadb
 * with JSON_REJECT_DUPLICATES accepts) and decodes the fields above
 * without building a tree. On success fills out and returns true; body
 * must then outlive out, and out must be released with
 * api_request_release(). On failure returns false, fills err and leaves
 * out zeroed (nothing to release). */
bool api_request_decode(enum api_kind kind, const char *body, size_t len,
                        struct api_request *out, struct api_error *err);

/* Frees what a successful decode allocated (safe on a zeroed struct). */
void api_request_release(struct api_request *r);

/* Estimated tokens for `bytes` of text in `messages` messages: about four
 * bytes per token plus the chat format's per-message overhead. */
uint64_t api_estimate_tokens(uint64_t bytes, uint64_t messages);

#endif
