/* OpenAI wire shapes for the three generation APIs (chat completions,
 * legacy completions, Responses): request parsing, whole bodies and the
 * events of a stream. No I/O here; the caller decides when to send. */
#ifndef SLUICE_MOCK_OPENAI_H
#define SLUICE_MOCK_OPENAI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mock_faults.h"
#include "mock_text.h"

struct evbuffer;

enum mock_api { MOCK_API_CHAT, MOCK_API_COMPLETIONS, MOCK_API_RESPONSES };

/* One generation request, from parsing to the last stream event. */
struct mock_gen {
    enum mock_api api;
    char id[48];
    char item_id[48]; /* Responses API output item */
    char *model;
    long created;
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    bool no_usage;      /* fault knob: leave usage out entirely */
    long prompt_tokens;
    long max_tokens; /* -1 = not given */
    long completion_tokens;
    bool truncated;    /* cut by max_tokens: finish_reason "length" */
    const char *about; /* last user text; borrowed from the body until plan */
    size_t about_len;
    struct mock_text text;
    long nchunks;
    long seq; /* Responses API sequence_number of the next event */
};

/* Reads the request body. On error returns -1, with the message and the
 * offending parameter (may be NULL) for a 400. */
int mock_gen_parse(struct mock_gen *g, enum mock_api api, const json_t *body,
                   const char **param, char *err, size_t errlen);
/* Decides the reply (length, chunks) from the knobs; ids use `num`. */
int mock_gen_plan(struct mock_gen *g, const struct mock_faults *f,
                  unsigned long num);
/* Tokens charged against the hidden capacity. */
long mock_gen_cost(const struct mock_gen *g);
void mock_gen_free(struct mock_gen *g);

/* Non-streamed response body. */
json_t *mock_gen_body(const struct mock_gen *g);

/* A stream is: head events (sent at once), one event per text piece
 * (paced), tail events (sent at once). Each call appends one complete
 * SSE event to out. */
int mock_gen_head_count(const struct mock_gen *g);
void mock_gen_head(struct mock_gen *g, int k, struct evbuffer *out);
void mock_gen_piece(struct mock_gen *g, long i, struct evbuffer *out);
int mock_gen_tail_count(const struct mock_gen *g);
void mock_gen_tail(struct mock_gen *g, int k, struct evbuffer *out);

/* {"error": {"message", "type", "param", "code"}} */
json_t *mock_error_json(const char *message, const char *type,
                        const char *param, const char *code);
json_t *mock_models_json(void);
json_t *mock_model_json(const char *id);

#endif
