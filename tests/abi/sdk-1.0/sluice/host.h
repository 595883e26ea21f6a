/* sluice plugin SDK: the host table.
 *
 * The core hands each plugin instance its own `const struct sluice_host *`
 * in create(). Every service a plugin may use is a member of this table; a
 * plugin never links against the core. Members are append-only: check
 * `host->struct_size` before using a member added after 1.0 (see
 * SLUICE_HOST_HAS).
 *
 * Threads and phases are stated per member. "Request thread" means the
 * worker thread the request lives on, inside one of its hooks (or a
 * callback that thread runs). Calls made in the wrong phase return
 * SLUICE_EPHASE and change nothing.
 */
#ifndef SLUICE_HOST_H
#define SLUICE_HOST_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

enum sluice_log_level {
    SLUICE_LOG_ERROR = 0,
    SLUICE_LOG_WARN = 1,
    SLUICE_LOG_INFO = 2,
    SLUICE_LOG_DEBUG = 3,
};

/* Who is calling, from the client key map. Empty strings when auth is off
 * (tenant then defaults to "default"). */
enum sluice_identity {
    SLUICE_ID_TENANT = 0,
    SLUICE_ID_USER = 1,
    SLUICE_ID_TIER = 2,
    SLUICE_ID_KEY = 3, /* hex SHA-256 prefix of the client key, never the key */
};

enum sluice_priority {
    SLUICE_PRIO_CRITICAL = 0,
    SLUICE_PRIO_REALTIME = 1,
    SLUICE_PRIO_STANDARD = 2,
    SLUICE_PRIO_BATCH = 3,
    SLUICE_PRIO_LOW = 4,
};

/* How the upstream exchange ended, readable from on_response on. */
enum sluice_outcome {
    SLUICE_OUTCOME_NONE = 0,          /* no upstream call (rejected, cached) */
    SLUICE_OUTCOME_OK = 1,            /* 2xx, body complete */
    SLUICE_OUTCOME_HTTP_ERROR = 2,    /* upstream answered 4xx/5xx */
    SLUICE_OUTCOME_CONNECT_ERROR = 3, /* unreachable, refused, reset */
    SLUICE_OUTCOME_TIMEOUT = 4,       /* connect/first-byte/idle timeout */
    SLUICE_OUTCOME_CLIENT_GONE = 5,   /* the client disconnected first */
    SLUICE_OUTCOME_TRUNCATED = 6,     /* stream ended without its final event */
};

/* Token usage. `known` is false until the provider reported usage. */
struct sluice_usage {
    bool known;
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    uint64_t cached_tokens;
    uint64_t total_tokens;
};

/* Cross-thread wake-up ticket for a suspended request. Stale tickets (the
 * request ended meanwhile) are ignored by wake(). */
typedef uint64_t sluice_wake_t;

/* One upstream attempt of a request (retries and fallbacks make several). */
struct sluice_attempt {
    struct sluice_str upstream;
    struct sluice_str model;
    int status; /* 0 when no response arrived */
    enum sluice_outcome outcome;
    uint64_t duration_ns;
};

struct sluice_metric; /* opaque handle */

struct sluice_host {
    uint32_t abi_major, abi_minor, struct_size;

    /* ---- time and randomness (any thread) ---- */
    /* Monotonic ns, cached once per event-loop turn on worker threads. */
    uint64_t (*now_ns)(const struct sluice_host *h);
    /* Wall clock, ms since the Unix epoch (daily budgets, log stamps). */
    int64_t (*wall_ms)(const struct sluice_host *h);
    /* Seeded per thread; deterministic under the fake host. */
    uint64_t (*random_u64)(const struct sluice_host *h);

    /* ---- logging (any thread); lines carry the instance name ---- */
    void (*log)(const struct sluice_host *h, enum sluice_log_level level,
                const char *fmt, ...) __attribute__((format(printf, 3, 4)));

    /* ---- metrics ----
     * Create handles in create() only (main thread). Names look like
     * sluice_<plugin>_<what>_total; the core adds an instance="NAME" label.
     * Updates are lock-free and allowed from any thread. */
    struct sluice_metric *(*counter)(const struct sluice_host *h,
                                     const char *name, const char *help);
    struct sluice_metric *(*gauge)(const struct sluice_host *h,
                                   const char *name, const char *help);
    /* bounds: ascending upper bounds, n <= 32; +Inf is implicit. */
    struct sluice_metric *(*histogram)(const struct sluice_host *h,
                                       const char *name, const char *help,
                                       const double *bounds, size_t n);
    void (*counter_add)(struct sluice_metric *m, uint64_t v);
    void (*gauge_set)(struct sluice_metric *m, double v);
    void (*observe)(struct sluice_metric *m, double v);

    /* ---- gateway health published for Lua policies (any thread) ----
     * A flat map of names to numbers, e.g. "breaker.mock.open" = 1. The
     * policy reads it with sluice.health(name). */
    void (*health_set)(const struct sluice_host *h, const char *name,
                       double value);

    /* ---- reading the request (request thread, any phase) ---- */
    struct sluice_str (*req_id)(const struct sluice_req *r);
    struct sluice_str (*req_endpoint)(const struct sluice_req *r); /* path */
    struct sluice_str (*req_header)(const struct sluice_req *r,
                                    const char *name); /* case-insensitive */
    struct sluice_str (*req_identity)(const struct sluice_req *r,
                                      enum sluice_identity which);
    /* The model the client asked for. */
    struct sluice_str (*req_model)(const struct sluice_req *r);
    bool (*req_stream)(const struct sluice_req *r);
    /* Raw JSON body as received. */
    struct sluice_str (*req_body)(const struct sluice_req *r);
    /* The decoded body as a borrowed jansson `json_t *` (read-only); NULL
     * for bodies that are not JSON objects. Built on the first call (the
     * gateway's own fields come from a faster scan), then cached for the
     * request: prefer req_model() and friends when they suffice. */
    const void *(*req_json)(const struct sluice_req *r);
    /* Estimated input tokens (message text), and max_tokens (0 if absent). */
    uint64_t (*req_input_tokens)(const struct sluice_req *r);
    uint64_t (*req_max_tokens)(const struct sluice_req *r);
    enum sluice_priority (*req_priority)(const struct sluice_req *r);

    /* ---- routing: where the request goes (request thread) ---- */
    /* Current target; final after on_request. */
    struct sluice_str (*req_upstream)(const struct sluice_req *r);
    struct sluice_str (*req_target_model)(const struct sluice_req *r);
    /* on_request only. set_upstream fails with SLUICE_ENOENT for an unknown
     * upstream name. */
    int (*upstream_set_model)(struct sluice_req *r, struct sluice_str model);
    int (*upstream_set_name)(struct sluice_req *r, struct sluice_str name);
    int (*upstream_set_header)(struct sluice_req *r, const char *name,
                               struct sluice_str value);
    int (*set_priority)(struct sluice_req *r, enum sluice_priority p);

    /* ---- the upstream's answer (on_upstream_response and later) ---- */
    int (*resp_status)(const struct sluice_req *r); /* 0: none */
    struct sluice_str (*resp_header)(const struct sluice_req *r,
                                     const char *name);
    struct sluice_usage (*resp_usage)(const struct sluice_req *r);
    /* Complete body of a non-streamed upstream response (on_response);
     * empty for streams and failed calls. */
    struct sluice_str (*resp_body)(const struct sluice_req *r);
    enum sluice_outcome (*resp_outcome)(const struct sluice_req *r);
    /* Every upstream attempt so far, oldest first (on_upstream_response and
     * later). Health tracking (breakers) should judge each attempt, not
     * just the last one, since a retry may have hidden a failure. */
    size_t (*resp_attempt_count)(const struct sluice_req *r);
    bool (*resp_attempt)(const struct sluice_req *r, size_t i,
                         struct sluice_attempt *out);
    /* Adds a header to what the client receives (e.g. x-ratelimit-*).
     * Allowed until the response headers are sent; then SLUICE_EPHASE. */
    int (*resp_add_header)(struct sluice_req *r, const char *name,
                           struct sluice_str value);

    /* ---- answering the client (on_request, on_upstream_response) ----
     * reject() builds the OpenAI-style error body {"error":{message,type,
     * param,code}}, adds Retry-After in whole seconds rounded up when
     * retry_after_ms > 0, and returns SLUICE_RESPOND for the hook to return.
     * `code` may be NULL. */
    enum sluice_action (*reject)(struct sluice_req *r, int status,
                                 const char *type, const char *code,
                                 const char *message, uint64_t retry_after_ms);
    /* respond() serves a complete body (cache hits, static fallbacks). */
    enum sluice_action (*respond)(struct sluice_req *r, int status,
                                  const char *content_type,
                                  struct sluice_str body);

    /* ---- suspending (on_request only) ----
     * Return SLUICE_SUSPEND after calling resume_after() and/or taking a
     * wake_token(); the core calls the same on_request again on the
     * request's thread when the first of them fires (the timer is then
     * cancelled). Re-entry can be spurious (a stale wake for the same
     * request): re-check your condition and suspend again if needed. */
    void (*resume_after)(struct sluice_req *r, uint64_t delay_ms);
    /* Ticket for wake(); take it before returning SLUICE_SUSPEND. */
    sluice_wake_t (*wake_token)(struct sluice_req *r);
    /* Any thread. Resumes the suspended request on its own worker; a stale
     * ticket is ignored. */
    void (*wake)(const struct sluice_host *h, sluice_wake_t ticket);
    /* True when the hook runs again after a suspension. */
    bool (*req_resumed)(const struct sluice_req *r);

    /* ---- request scope (request thread) ---- */
    /* Zeroed memory freed with the request. NULL on exhaustion. */
    void *(*req_alloc)(struct sluice_req *r, size_t size);
    /* Per-request variables shared with later plugins and the Lua policy
     * (ctx.vars). The value is copied. */
    int (*var_set)(struct sluice_req *r, const char *name,
                   struct sluice_str value);
    struct sluice_str (*var_get)(const struct sluice_req *r, const char *name);

    /* ---- event loop access for plugins doing their own I/O ----
     * The worker's `struct event_base *` (libevent), for e.g. a hiredis
     * async context created in thread_init(). Request thread / thread_init. */
    void *(*event_base)(const struct sluice_host *h, unsigned worker);
    unsigned (*worker_count)(const struct sluice_host *h);
    unsigned (*req_worker)(const struct sluice_req *r);

    /* 1.x members are appended here. */
};

/* True when the host table carries `member` (for members added after 1.0). */
#define SLUICE_HOST_HAS(h, member)                                             \
    ((h)->struct_size >=                                                       \
         offsetof(struct sluice_host, member) + sizeof((h)->member) &&         \
     (h)->member != NULL)

#ifdef __cplusplus
}
#endif
#endif
