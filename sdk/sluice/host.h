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
 *
 * ABI log of this table (the full log is in plugin.h):
 *   1.1  call_upstream, call_cancel, timer_start, timer_cancel, health_get,
 *        upstream_count, upstream_name, upstream_model
 *   1.1  counter_vec, gauge_vec, histogram_vec, metric_with (labelled
 *        metrics with bounded cardinality)
 *   1.1  upstream_set_max_tokens (clamp the answer's length)
 *   1.1  call_upstream_raw (any method, content type and body: multipart
 *        uploads and provider file APIs)
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

struct sluice_metric;     /* opaque handle */
struct sluice_metric_vec; /* a labelled family (1.1) */

/* ---- 1.1 types for the host services below (upstream calls, timers) ---- */

/* Handle of an upstream call or a timer; 0 is never a valid one. Stale
 * handles (the call finished, the timer was cancelled) are harmless. */
typedef uint64_t sluice_call_t;
typedef uint64_t sluice_timer_t;

/* The answer to call_upstream(); valid during the callback only. */
struct sluice_call_result {
    int status;                  /* HTTP status; 0 when none arrived */
    enum sluice_outcome outcome; /* OK, HTTP_ERROR, CONNECT_ERROR, TIMEOUT,
                                    TRUNCATED (cut, or over the limit), or
                                    CLIENT_GONE: the core cancelled it (its
                                    request ended, or its instance is
                                    leaving the worker) */
    struct sluice_str body;      /* complete body; empty unless a response
                                    arrived whole within the limit */
};
typedef void (*sluice_call_fn)(void *arg, const struct sluice_call_result *res);
typedef void (*sluice_timer_fn)(void *arg, unsigned worker);

/* Largest response body call_upstream() delivers (bigger: TRUNCATED), or
 * the gateway's limits.max_response_bytes when that is smaller. */
#define SLUICE_CALL_MAX_BODY (16u << 20)
/* timer_start(): arm the timer on every worker. */
#define SLUICE_WORKER_ALL 0xffffffffu

/* ---- 1.1 types for routes, multipart uploads and self-submitted requests
 * (route_add, multipart_parse, self_submit below) ---- */

/* Answers a request to a route the plugin registered; `arg` is what it
 * passed to route_add(). `state` is the plugin's req_state_size bytes for
 * this request (NULL when 0), zeroed before the first call and kept across
 * re-entries; it is arena memory, freed with the request (no on_cleanup
 * runs for route requests). Same contract as on_request: return
 * SLUICE_RESPOND after respond()/reject(), or SLUICE_SUSPEND after
 * resume_after()/wake_token() to be called again later (the client
 * waits). SLUICE_CONTINUE is a plugin bug: the client gets a 500. */
typedef enum sluice_action (*sluice_route_fn)(void *arg, struct sluice_req *r,
                                              void *state);

/* One part of a multipart/form-data body; every span points into the
 * body passed to multipart_parse(). */
struct sluice_form_part {
    struct sluice_str name;         /* the form field's name */
    struct sluice_str filename;     /* absent for plain fields */
    struct sluice_str content_type; /* absent when the part has none */
    struct sluice_str data;
};

/* A request the gateway makes to itself (self_submit). Zero-initialise it
 * (designated initialisers): members may be appended, and the core reads
 * only those of the SDK version the plugin was built with. */
struct sluice_self_request {
    const char *endpoint;   /* "/v1/chat/completions", "/v1/completions",
                               "/v1/embeddings" or "/v1/responses" */
    struct sluice_str body; /* the JSON body, copied; "stream": true is
                               refused (the answer is delivered whole) */
    /* By enum sluice_identity: tenant (empty: "default"), user, tier and
     * key hash, as the limits, policy and logs see them. Copied; at most
     * 127 bytes each, no control characters. */
    struct sluice_str identity[4];
    enum sluice_priority priority;
    /* x-request-id of the request ([A-Za-z0-9._-], < 40 bytes); absent:
     * generated. */
    struct sluice_str request_id;
};

/* How a self-submitted request ended; valid during the callback only. */
struct sluice_self_result {
    int status;             /* what a client would have received */
    struct sluice_str body; /* complete body (OpenAI-style error on 4xx/5xx) */
    struct sluice_str request_id;
    struct sluice_usage usage;
    uint64_t retry_after_ms; /* from Retry-After on a 429/503; 0 if none */
};
typedef void (*sluice_self_fn)(void *arg, const struct sluice_self_result *res);

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
     * Allowed until the response headers are sent, then SLUICE_EPHASE (and
     * the header is dropped): always in on_request and
     * on_upstream_response; in on_response only for a buffered answer,
     * since a stream's headers left with its first event. A header every
     * answer must carry belongs in on_upstream_response (or on_request). */
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
    /* respond() serves a complete body (cache hits, static fallbacks).
     * 1.1: a chat.completion body for a `stream: true` request goes out as
     * a stream (see "answering as a stream" at the end). */
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

    /* ==== 1.1: upstream calls, timers, health and upstream reads ====
     * Check each with SLUICE_HOST_HAS(h, member) before use: a 1.0 core
     * has none of them. */

    /* ---- upstream calls made by the plugin ----
     * call_upstream() sends `body` (JSON; NULL ptr: a GET without a body)
     * to `path` (e.g. "/v1/embeddings"; "/v1" is the upstream's base_url
     * root, as for clients) on the configured upstream named `upstream`,
     * through the calling worker's own upstream client: the same provider
     * key (api_key_env), connection pool, timeouts and
     * sluice_upstream_attempts_total as proxied requests. `headers` is NULL
     * or a NULL-terminated array of "Name: value" strings (copied; no
     * Authorization, no CR/LF). `done` runs exactly once on the calling
     * worker's loop, never inside call_upstream(), unless call_cancel()
     * came first. *out (may be NULL) receives the handle.
     *
     * Threads and phases: a worker thread only (any hook, a timer or call
     * callback, thread_init); SLUICE_EPHASE on the main thread.
     * - With `r` (request thread, on_request or later, before the request
     *   ends): the call belongs to r. The usual pattern: start it in
     *   on_request, take wake_token(), return SLUICE_SUSPEND; `done` stores
     *   the result in `state` and calls wake(). If r ends first (client
     *   gone), the call is cancelled and `done` runs during r's end with
     *   SLUICE_OUTCOME_CLIENT_GONE, before on_cleanup and before r's memory
     *   is freed; r must not be used in that callback.
     * - With r == NULL (timers, batch work): the call belongs to the
     *   instance on this worker; it is cancelled (`done` runs with
     *   CLIENT_GONE) before thread_fini when the instance leaves the worker
     *   (reload, shutdown).
     * Returns SLUICE_OK, SLUICE_ENOENT (unknown upstream), SLUICE_EINVAL
     * (bad path or header), SLUICE_EPHASE or SLUICE_ENOMEM; `done` runs
     * only after SLUICE_OK. */
    int (*call_upstream)(const struct sluice_host *h, struct sluice_req *r,
                         const char *upstream, const char *path,
                         struct sluice_str body, const char *const *headers,
                         sluice_call_fn done, void *arg, sluice_call_t *out);
    /* Worker thread that started the call. Aborts it; `done` does not run.
     * Unknown or finished handles: SLUICE_ENOENT. */
    int (*call_cancel)(const struct sluice_host *h, sluice_call_t call);

    /* ---- timers: background work per worker, outside any request ----
     * `fn(arg, worker)` runs on that worker's loop after delay_ms, then
     * every period_ms (0: once). In create() (main thread) `worker` may be
     * a worker index or SLUICE_WORKER_ALL: the timer is armed on each
     * worker once it has run thread_init for this instance. On a worker
     * thread, `worker` must be that worker's index (from thread_init, a
     * hook, a callback). Elsewhere SLUICE_EPHASE. Timers are torn down
     * before thread_fini (reload, shutdown); none runs after destroy().
     * One handle names the timer on every worker it was armed on. */
    int (*timer_start)(const struct sluice_host *h, unsigned worker,
                       uint64_t delay_ms, uint64_t period_ms,
                       sluice_timer_fn fn, void *arg, sluice_timer_t *out);
    /* In create(): forgets the timer. On a worker thread (also from inside
     * its own callback): stops it on this worker only. SLUICE_ENOENT when
     * it is not armed there. */
    int (*timer_cancel)(const struct sluice_host *h, sluice_timer_t timer);

    /* ---- reading gateway health (any thread) ----
     * The value health_set() published under `name` (any plugin's, or the
     * core's, e.g. "upstream.mock.down"): SLUICE_OK, or SLUICE_ENOENT when
     * never set. */
    int (*health_get)(const struct sluice_host *h, const char *name,
                      double *value);

    /* ---- the configured upstreams (any thread) ----
     * From the config this instance was created with, in config order;
     * strings live as long as the instance. upstream_model(h, i, j) is the
     * j-th model upstream i serves ("*" = any model); empty past the end. */
    size_t (*upstream_count)(const struct sluice_host *h);
    struct sluice_str (*upstream_name)(const struct sluice_host *h, size_t i);
    struct sluice_str (*upstream_model)(const struct sluice_host *h, size_t i,
                                        size_t j);
    /* ==== end of the 1.1 upstream-call/timer/health members ==== */
    /* ==== 1.1: routes, multipart uploads, self-submitted requests ====
     * Check each with SLUICE_HOST_HAS(h, member) before use. */

    /* ---- routes the plugin answers itself (create() only) ----
     * Registers `handler` for `method` ("GET", "POST", "DELETE", ...) and
     * `path`: a path ending in '/' is a prefix ("/v1/files/" matches
     * "/v1/files/file-abc/content"), any other path matches exactly
     * ("/v1/files"). The longest matching path wins. Route requests get
     * the core's body cap (413), header/body timeouts, auth (401 before the
     * handler runs when auth is on; req_identity() says who), x-request-id,
     * the access log and the request metrics; they skip the policy and the
     * plugin pipeline. In the handler the request reads like any other
     * (req_header, req_body: the raw body, any content type; req_endpoint:
     * the path) plus req_method/req_query; respond()/reject() answer it.
     * A route that overlaps another instance's, or a built-in endpoint
     * (/v1/chat/completions, /v1/models, /metrics, /admin/...), refuses the
     * whole config at load with an error naming both. Returns SLUICE_OK,
     * SLUICE_EINVAL (bad method/path), SLUICE_EPHASE outside create(). */
    int (*route_add)(const struct sluice_host *h, const char *method,
                     const char *path, sluice_route_fn handler, void *arg);
    /* Request thread, any phase. The method and the query string (after
     * '?', absent when none; read it before answering). */
    struct sluice_str (*req_method)(const struct sluice_req *r);
    struct sluice_str (*req_query)(const struct sluice_req *r);

    /* ---- multipart/form-data (any thread; a pure function) ----
     * Splits `body` (e.g. req_body() of an upload) into at most max_parts
     * parts using the boundary from `content_type` (the Content-Type header
     * value). Nothing is copied: the parts point into `body`. Each part's
     * header block is limited to 8 KiB. Returns SLUICE_OK with *n_parts
     * set, SLUICE_ETOOBIG when the body has more than max_parts parts, or
     * SLUICE_EINVAL when it is not well-formed multipart/form-data; then
     * *error (may be NULL) names the problem in a sentence fit for a 400. */
    int (*multipart_parse)(const struct sluice_host *h,
                           struct sluice_str content_type,
                           struct sluice_str body,
                           struct sluice_form_part *parts, size_t max_parts,
                           size_t *n_parts, const char **error);

    /* ---- requests the gateway makes to itself ----
     * Runs `req` as if a client had sent it on this worker: the Lua policy,
     * every pipeline plugin (limits, admission, cache, cost...), routing,
     * retries and fallbacks apply; it is counted in the request metrics
     * and written to the access log with "internal": true. There is no
     * authentication: the identity is taken as given (copy it from the
     * client request the work came from). `done` runs
     * exactly once on the calling worker when the request ends, never
     * inside self_submit(), after the plugins' on_log; it may submit again.
     * The request runs on the config generation of the calling instance.
     * Worker thread only (a hook, a route handler, a timer or callback);
     * SLUICE_EPHASE on the main thread or when the instance is no longer
     * live on this worker. SLUICE_EINVAL: unknown endpoint, "stream": true,
     * bad identity or request id (the body itself is checked like a
     * client's: a bad one ends in a 400 given to `done`). */
    int (*self_submit)(const struct sluice_host *h,
                       const struct sluice_self_request *req,
                       sluice_self_fn done, void *arg);
    /* ==== end of the 1.1 route/multipart/self-request members ==== */

    /* ==== 1.1: whole answers, and answering as a stream ====
     * Check with SLUICE_HOST_HAS(h, resp_whole_body) before use: a 1.0 core
     * has neither. */

    /* ---- the whole answer, streams included (on_response, on_log) ----
     * The upstream's answer as one complete JSON body. Non-streamed: the
     * body as received (as resp_body). Streamed chat or completions request
     * that ended cleanly ([DONE], every choice finished): the equivalent
     * non-streamed object assembled from the chunks, a `chat.completion`
     * (id, created, model, choices[].message with content, refusal and
     * tool_calls merged by index with their arguments concatenated,
     * logprobs, finish_reason, usage when the provider sent it) or a
     * `text_completion`. Streams are assembled only on pipelines where some
     * plugin sets `whole_streams` in its descriptor. Empty: a cut or failed
     * stream, a Responses API stream, no plugin asked, or no upstream
     * answer. Request thread; the bytes live until the request ends. */
    struct sluice_str (*resp_whole_body)(const struct sluice_req *r);

    /* ---- answering as a stream (no member of its own) ----
     * On a 1.1 core, respond() with a 2xx status, a JSON content type (or
     * NULL) and a complete `chat.completion` body (`text_completion` on
     * /v1/completions) to a request that asked for `stream: true` sends the
     * SSE events the provider would have sent: a role chunk, content and
     * refusal pieces, tool-call chunks (name first, then arguments), a
     * finish chunk per choice, the usage chunk when the client set
     * stream_options.include_usage, then `data: [DONE]`, with
     * Content-Type text/event-stream. Any other body goes out as given.
     * So a cache stores what resp_whole_body() returned and replays it with
     * respond() whatever the client's `stream` was. */
    /* ==== end of the 1.1 streams members ==== */
    /* ==== 1.1: labelled metrics ====
     * Check with SLUICE_HOST_HAS(h, metric_with) before use: a 1.0 core has
     * none of them.
     *
     * A family with fixed label names (1 to 4, snake_case, not `instance`,
     * which the core adds, nor `le`/`quantile`) whose series are made on
     * first use. Create in create() only (main thread), like counter();
     * creating it again on reload returns the same family with its counts.
     * Each label keeps at most `max_values` distinct values (1..64); later
     * values, and the value "other" itself, count in the series where that
     * label reads "other", so a family never holds more than
     * (max_values + 1) ^ n_labels series (at most 4096, else NULL). Values
     * are cut at 128 bytes; bytes outside printable ASCII read '_'. NULL on
     * a bad name, label or bound (logged). */
    struct sluice_metric_vec *(*counter_vec)(const struct sluice_host *h,
                                             const char *name, const char *help,
                                             const char *const *labels,
                                             size_t n_labels,
                                             size_t max_values);
    struct sluice_metric_vec *(*gauge_vec)(const struct sluice_host *h,
                                           const char *name, const char *help,
                                           const char *const *labels,
                                           size_t n_labels, size_t max_values);
    struct sluice_metric_vec *(*histogram_vec)(
        const struct sluice_host *h, const char *name, const char *help,
        const char *const *labels, size_t n_labels, size_t max_values,
        const double *bounds, size_t n_bounds);
    /* Any thread, lock-free once the series exists: the series for
     * `values` (one per label, in order; NULL reads ""), updated with
     * counter_add / gauge_set / observe. NULL only when `v` is NULL (a
     * refused family) or memory ran out; those calls ignore NULL. */
    struct sluice_metric *(*metric_with)(struct sluice_metric_vec *v,
                                         const char *const *values);
    /* ==== end of the 1.1 labelled-metrics members ==== */
    /* ==== 1.1: the length of the answer ====
     * Check with SLUICE_HOST_HAS(h, upstream_set_max_tokens) before use. */
    /* on_request only. The upstream is asked for at most `max_tokens`
     * output tokens: the body sent upstream carries it in every field the
     * client used (max_tokens, max_completion_tokens, max_output_tokens),
     * or in max_tokens (max_output_tokens on /v1/responses) when it used
     * none. req_max_tokens() reads the new value from then on, so later
     * plugins (budgets) reserve for it. SLUICE_EINVAL for 0. */
    int (*upstream_set_max_tokens)(struct sluice_req *r, uint64_t max_tokens);
    /* ==== 1.1: upstream calls with any method and body ====
     * Check with SLUICE_HOST_HAS(h, call_upstream_raw) before use. */
    /* call_upstream() with the method and the body's content type chosen
     * by the plugin: `method` is an upper-case token ("GET", "POST",
     * "DELETE", ...); `content_type` (NULL: no Content-Type header) is sent
     * as given, e.g. "multipart/form-data; boundary=..." for a file upload;
     * `body` (NULL ptr: none) is sent as bytes, not parsed. Everything else
     * (threads, phases, ownership, the provider key, pools, timeouts, the
     * response limit, return codes, `done`) is exactly call_upstream()'s;
     * SLUICE_EINVAL also for a bad method or content type (CR/LF). */
    int (*call_upstream_raw)(const struct sluice_host *h, struct sluice_req *r,
                             const char *upstream, const char *method,
                             const char *path, const char *content_type,
                             struct sluice_str body, const char *const *headers,
                             sluice_call_fn done, void *arg,
                             sluice_call_t *out);
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
