/* Lua 5.4 policy engine. One `struct policy` (one lua_State) per worker
 * thread; never shared. The policy script defines
 *
 *     function decide(req, ctx) ... return { ... } or nil end
 *
 * and runs sandboxed: only base (minus load/dofile/require/...), string
 * (with non-backtracking-safe pattern wrappers), table, math and utf8; an
 * instruction budget that pcall cannot swallow; a memory cap.
 *
 * Hot reload: build a new policy from the new script on each worker and swap
 * it in between requests; a script that fails to load leaves the old one.
 */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct policy;

struct policy_limits {
    uint64_t instruction_budget; /* VM instructions per decide() call */
    size_t memory_limit_bytes;   /* whole lua_State */
    size_t max_pattern_work;     /* cap on #subject * #pattern for
                                    find/match/gmatch/gsub */
};

/* What the script sees as `req`: read lazily through these callbacks, so an
 * untouched field costs nothing. All strings are length-counted. */
struct policy_req_view {
    void *ctx;
    const char *(*model)(void *ctx, size_t *len);
    const char *(*endpoint)(void *ctx, size_t *len);
    const char *(*tenant)(void *ctx, size_t *len);
    const char *(*user)(void *ctx, size_t *len);
    const char *(*tier)(void *ctx, size_t *len);
    const char *(*header)(void *ctx, const char *name, size_t *len);
    bool (*stream)(void *ctx);
    uint64_t (*message_count)(void *ctx);
    uint64_t (*message_bytes)(void *ctx); /* total text bytes of messages */
    uint64_t (*input_tokens)(void *ctx);  /* estimate */
    uint64_t (*max_tokens)(void *ctx);
    const char *(*priority)(void *ctx); /* "standard", ... */
    /* The whole body as JSON text; the engine decodes it only when the
     * script reads req.body. */
    const char *(*body)(void *ctx, size_t *len);
    /* Per-request variables set by plugins (ctx.vars in Lua, read side). */
    const char *(*var)(void *ctx, const char *name, size_t *len);
};

/* Read-only gateway health that plugins publish (sluice.health(name)) and
 * the clock (sluice.now() in seconds, float). */
struct policy_env {
    void *ctx;
    bool (*health)(void *ctx, const char *name, double *value);
    double (*now_s)(void *ctx);
};

#define POLICY_MAX_TAGS 8

/* The validated result of decide(). Unset fields are empty/zero. Strings
 * are copies owned by the decision (NUL-terminated, bounded). */
struct policy_decision {
    bool reject;
    int reject_status; /* default 429 */
    uint32_t reject_retry_after_s;
    char reject_message[256];
    char upstream[64];
    char model[128];
    char priority[16]; /* critical|realtime|standard|batch|low */
    int degrade_level; /* -1 when not set; 0..9 */
    size_t tag_count;
    char tags[POLICY_MAX_TAGS][64];
    /* ctx.vars written by the script, "name=value" pairs, for later
     * plugins and logs. */
    size_t var_count;
    char vars[8][2][64];
    /* Served from the memo of a pure script: decide() did not run. */
    bool reused;
};

/* Loads `script_path`. On failure returns NULL and writes "file:line:
 * message" into err. `name` labels log lines. */
struct policy *policy_load(const char *script_path,
                           const struct policy_limits *limits,
                           const struct policy_env *env, char *err,
                           size_t errlen);
void policy_free(struct policy *p);

enum policy_status {
    POLICY_OK = 0,    /* out holds the decision (possibly empty) */
    POLICY_ERROR = 1, /* runtime error, budget or memory exhausted, or a bad
                         return value; err has "script:line: message" */
};

enum policy_status policy_decide(struct policy *p,
                                 const struct policy_req_view *req,
                                 struct policy_decision *out, char *err,
                                 size_t errlen);

/* Reuse of decisions by a script that sets decide_is_pure = true (see
 * policy_memo.h); all zero for any other script. */
struct policy_memo_stats {
    uint64_t hits;   /* decisions served without running decide() */
    uint64_t stored; /* calls whose reads and decision were kept */
    uint64_t resets; /* times the kept decisions hit their memory cap */
    bool disabled;   /* reuse turned off: see the log line for why */
};
struct policy_memo_stats policy_memo_counts(const struct policy *p);

/* Bytes currently used by the Lua state (for admin status/metrics). */
size_t policy_memory_used(const struct policy *p);

#endif
