/* Where a limiter keeps its state, shared by the three limiter plugins.
 *
 * "local": an in-process map shared by all workers. "redis": one script
 * call per decision on the worker's own connection (see rl_redis.h); when
 * Redis is down or late, "open" decides with the local map at a share of
 * the limit and "closed" refuses with 503. Transitions are logged once for
 * the instance (first worker down, last worker back) and counted. */
#ifndef RL_BACKEND_H
#define RL_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rl_redis.h"
#include "sluice/host.h"

enum rl_backend_kind { RL_BACKEND_LOCAL = 0, RL_BACKEND_REDIS = 1 };
enum rl_fail_mode { RL_FAIL_OPEN = 0, RL_FAIL_CLOSED = 1 };

/* Embedded in each plugin's config struct; filled by the core. */
struct rl_backend_cfg {
    int backend;
    const char *redis_url;
    int64_t redis_timeout_ms;
    int on_redis_error;
    int64_t local_fallback_divisor;
    const char *redis_key_prefix;
};

extern const char *const rl_backend_choices[];
extern const char *const rl_fail_choices[];

/* Config table rows for struct rl_backend_cfg at member M of struct T. */
/* clang-format off */
#define RL_BACKEND_FIELDS(T, M)                                               \
    {.name = "backend", .type = SLUICE_CFG_ENUM,                             \
     .default_value = "\"local\"", .choices = rl_backend_choices,            \
     .offset = offsetof(T, M.backend),                                     \
     .help = "local (this process, all workers) or redis (shared by "         \
             "instances)"},                                                   \
    {.name = "redis_url", .type = SLUICE_CFG_STRING,                          \
     .default_value = "\"redis://127.0.0.1:6379\"",                          \
     .offset = offsetof(T, M.redis_url),                                   \
     .help = "redis://[:password@]host[:port][/db]; use an IP address"},      \
    {.name = "redis_timeout_ms", .type = SLUICE_CFG_INT,                      \
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,                        \
     .default_value = "20", .min = 1, .max = 10000,                           \
     .offset = offsetof(T, M.redis_timeout_ms),                            \
     .help = "deadline of one Redis decision; later counts as down"},         \
    {.name = "on_redis_error", .type = SLUICE_CFG_ENUM,                       \
     .default_value = "\"open\"", .choices = rl_fail_choices,                \
     .offset = offsetof(T, M.on_redis_error),                              \
     .help = "open: decide locally at a share of the limit; closed: 503"},    \
    {.name = "local_fallback_divisor", .type = SLUICE_CFG_INT,                \
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,                        \
     .default_value = "1", .min = 1, .max = 1000000,                          \
     .offset = offsetof(T, M.local_fallback_divisor),                      \
     .help = "while Redis is down the local limit is limit / this (set it "   \
             "to the number of sluice instances)"},                           \
    {.name = "redis_key_prefix", .type = SLUICE_CFG_STRING,                   \
     .default_value = "\"\"",                                                 \
     .offset = offsetof(T, M.redis_key_prefix),                            \
     .help = "prefix of Redis keys (default: derived from plugin, period "    \
             "and scope, see README)"}
/* clang-format on */

struct rl_backend;

struct rl_backend_worker {
    struct rl_backend *b;
    unsigned index;
    struct rl_redis *client;
    bool counted_down; /* this worker is in b->down */
};

struct rl_backend {
    const struct sluice_host *host;
    char plugin[32];
    struct rl_backend_cfg cfg;
    struct rl_redis_config redis;
    char key_prefix[256];
    size_t key_prefix_len;
    const char *const *scripts;
    size_t nscripts;
    unsigned workers;
    struct rl_backend_worker *w;
    _Atomic unsigned down; /* workers whose Redis is down */
    _Atomic uint64_t last_error_log_ns;
    struct sluice_metric *m_errors, *m_fallbacks, *m_up;
};

/* kind and scope make the default key prefix (sluice:KIND:SCOPE:), so
 * instances that keep different data never share a key.
 * Creates the metrics sluice_PLUGIN_redis_errors_total,
 * sluice_PLUGIN_fallback_decisions_total and sluice_PLUGIN_redis_up.
 * Returns 0 or -1 with err filled. */
int rl_backend_init(struct rl_backend *b, const struct sluice_host *h,
                    const char *plugin, const char *kind, const char *scope,
                    const struct rl_backend_cfg *cfg,
                    const char *const *scripts, size_t nscripts,
                    struct sluice_error *err);
void rl_backend_fini(struct rl_backend *b);
/* On the worker's thread (thread_init / thread_fini). */
int rl_backend_thread_init(struct rl_backend *b, unsigned worker);
void rl_backend_thread_fini(struct rl_backend *b, unsigned worker);

static inline bool rl_backend_is_redis(const struct rl_backend *b)
{
    return b->cfg.backend == RL_BACKEND_REDIS;
}

static inline bool rl_backend_fail_closed(const struct rl_backend *b)
{
    return b->cfg.on_redis_error == RL_FAIL_CLOSED;
}

/* The worker's client when it can take a call now, else NULL. */
struct rl_redis *rl_backend_client(struct rl_backend *b, unsigned worker);

/* Writes prefix + "{" + key + "}" (a Redis Cluster hash tag) into buf;
 * returns the length. cap >= 256 + RL_KEY_MAX + 3. */
size_t rl_backend_redis_key(const struct rl_backend *b, const char *key,
                            size_t len, char *buf, size_t cap);

/* Counts a failed or late call; an error reply is also logged (at most
 * once per 10 s per instance). */
void rl_backend_count_error(struct rl_backend *b, unsigned worker);
void rl_backend_count_fallback(struct rl_backend *b);
bool rl_backend_all_up(struct rl_backend *b);

/* The local share of a limit while Redis is down (at least 1). */
uint64_t rl_backend_share(const struct rl_backend *b, uint64_t limit);

/* Milliseconds a fail-closed refusal tells the client to wait. */
#define RL_FAIL_CLOSED_RETRY_MS 1000

#endif
