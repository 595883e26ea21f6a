/* The request object: everything the gateway knows about one API call,
 * from arrival to the access-log line. Plugins see it as the opaque
 * `struct sluice_req` through the host table (host.c); core files use the
 * fields directly. It lives on one worker thread.
 */
#ifndef SLUICE_REQUEST_H
#define SLUICE_REQUEST_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api_request.h"
#include "arena.h"
#include "sluice/host.h"
#include "tokens/request_tokens.h"

#define REQUEST_MAGIC 0x5111ce5u
#define REQUEST_MAX_ATTEMPTS 8
#define REQUEST_MAX_KV 32

struct worker;
struct generation;
struct http_exchange;
struct upstream_call;
struct upstream_config;
struct sse_parser;
struct stream_whole;

/* A small list of name/value pairs; strings live in the request arena. */
struct kv_list {
    size_t n;
    struct kv_pair {
        const char *name;
        const char *value;
        size_t value_len;
    } items[REQUEST_MAX_KV];
};

enum request_phase {
    PHASE_REQUEST = 0,   /* policy + on_request hooks */
    PHASE_UPSTREAM = 1,  /* call in flight, nothing sent to the client */
    PHASE_STREAMING = 2, /* response headers sent to the client */
    PHASE_DONE = 3,      /* response finished or client gone */
};

struct attempt_record {
    const struct upstream_config *upstream;
    const char *model;
    bool reported; /* on_upstream_response ran for it */
    int status;
    enum sluice_outcome outcome;
    uint64_t started_ns, ended_ns;
};

struct content_decoder;

struct sluice_req {
    uint32_t magic;
    struct worker *w;
    struct generation *gen;   /* held: config and plugin instances */
    struct http_exchange *ex; /* NULL once the client is gone */
    uint64_t ticket;          /* wake() ticket: worker index in the top byte */
    char id[40];
    uint64_t started_ns;

    /* ---- what the client sent ---- */
    enum api_kind kind;
    const char *endpoint;
    char *body; /* arena copy; the upstream body unless rewritten */
    size_t body_len;
    json_t *json; /* lazily parsed body: use request_json() */
    struct api_request api;
    /* api.input_tokens made exact on first use: request_input_tokens() */
    struct req_tokens tokens;
    const char *identity[4]; /* tenant, user, tier, key hash */
    enum sluice_priority priority;

    /* ---- where it goes ---- */
    const struct upstream_config *upstream;
    const char *target_model; /* NULL = api.model */
    struct kv_list upstream_headers;
    bool body_dirty;     /* model rewritten etc.: re-serialise before sending */
    bool max_tokens_set; /* upstream_set_max_tokens: api.max_tokens goes up */
    char *fallback_reason; /* set when a fallback served the request */
    size_t fallback_step;  /* next step in the model's fallback chain */
    const char *tags;      /* comma-joined policy tags, for logs */
    int degrade_level;

    /* ---- plugin pipeline ---- */
    enum request_phase phase;
    size_t next_plugin; /* index of the on_request hook to run next */
    size_t reached;     /* instances whose on_request ran (on_log set) */
    void **states;      /* per instance state, or NULL */
    struct kv_list vars;
    bool suspended;
    bool resumed;
    bool in_hook; /* a plugin hook is on the stack */
    struct event *resume_timer;
    /* retries: the on_attempt hook to run next, and whether they run */
    size_t next_attempt_hook;
    bool in_attempt_hooks;

    /* ---- the local answer, when a plugin or the core responds ---- */
    bool has_local_response;
    int local_status;
    const char *local_content_type;
    char *local_body;
    size_t local_body_len;
    struct kv_list client_headers; /* added for the client */
    bool client_headers_sent;

    /* ---- the upstream exchange ---- */
    struct upstream_call *call;
    unsigned attempt_count;
    struct attempt_record attempts[REQUEST_MAX_ATTEMPTS];
    struct event *retry_timer;
    int resp_status;
    char **resp_headers; /* "Name: value", arena */
    size_t resp_header_count;
    enum sluice_outcome outcome;
    struct sluice_usage usage;
    struct evbuffer *resp_body; /* non-streamed body */
    struct sse_parser *sse;
    /* host_streams.h: the stream assembled for plugins reading it whole */
    struct stream_whole *whole;
    bool stream_to_client;  /* forwarding SSE */
    bool strip_usage_chunk; /* client did not ask for usage */
    /* stream_relay.c, while stripping: the upstream read being relayed
     * and the span of it whose events go to the client as they came */
    const char *relay_read;
    size_t keep_from, keep_to;
    /* stream_relay.c: from [DONE] on, output waits here until the response
     * hooks and metrics have run (see stream_relay_hold) */
    bool holding;
    char *held; /* in the arena */
    size_t held_len;
    bool upstream_paused;
    struct content_decoder
        *decoder; /* upstream/content_decode.h: it compressed its answer */
    size_t resp_budget_taken; /* bytes of resp_body in the response budget */
    uint64_t first_byte_ns;
    uint64_t bytes_to_client;

    /* ---- end ---- */
    int final_status;       /* what the client got */
    bool response_reported; /* on_response ran */
    bool logged;
    bool counted; /* in the metrics: request_count() */
    bool client_gone;
    int busy;            /* core code for this request is on the stack */
    bool finish_pending; /* finish once busy drops to 0 */

    /* ---- requests without a plain client ---- */
    struct route_call *route;  /* plugin_routes.c: a plugin route answers */
    struct self_request *self; /* self_request.c: the gateway asked itself */

    /* Last: request_new zeroes everything before it, not the 4 KiB of
     * inline arena space (a calloc of the whole struct cost ~7k
     * instructions per request). */
    struct arena arena;
};

/* Creates a request bound to `ex` on worker `w`, holding a ref on gen. */
struct sluice_req *request_new(struct worker *w, struct generation *gen,
                               struct http_exchange *ex);
/* Frees everything; the request must be finished (logged). */
void request_free(struct sluice_req *r);

/* kv helpers (case-insensitive names; values copied into the arena). */
int kv_set(struct sluice_req *r, struct kv_list *l, const char *name,
           const char *value, size_t len);
const char *kv_get(const struct kv_list *l, const char *name, size_t *len);

/* The body as a jansson tree, parsed on first use and kept for the
 * request's lifetime (borrowed: do not decref). NULL without a body or
 * out of memory. Only plugins and body rewrites need it; the gateway's
 * own fields come from api_request_decode without a tree. */
json_t *request_json(struct sluice_req *r);

/* The model actually sent upstream. */
const char *request_target_model(const struct sluice_req *r, size_t *len);
/* Upstream response header lookup (case-insensitive), NULL if absent. */
const char *request_resp_header(const struct sluice_req *r, const char *name,
                                size_t *len);

#endif
