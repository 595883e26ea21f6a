/* A per-worker Redis client for limiter scripts (hiredis 0.14 async on the
 * worker's libevent loop).
 *
 * hiredis 0.14 has no command timeouts and one context is one connection,
 * so this module adds: a deadline per call (our own libevent timer; a late
 * reply is dropped), a connect deadline, a breaker (after RL_REDIS_TRIP
 * timeouts in a row the connection is dropped and the server counts as
 * down), and reconnection with exponential backoff from a fresh context.
 * Scripts are loaded with SCRIPT LOAD on every connect and run with
 * EVALSHA; until the SHA is known, or after NOSCRIPT, the call is sent as
 * EVAL. The server counts as up from its first reply on a connection.
 *
 * Single-threaded: every function runs on the thread of `base`. Callbacks
 * never run inside rl_redis_eval(); they must not call back into this
 * module. The module knows nothing of the gateway, so tests drive it with
 * their own event_base. */
#ifndef RL_REDIS_H
#define RL_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redisReply;

#define RL_REDIS_TRIP 3 /* timeouts in a row that mark the server down */

enum rl_redis_result {
    RL_REDIS_OK = 0,      /* reply is the script's answer */
    RL_REDIS_ERROR = 1,   /* connection lost, error reply, not sent */
    RL_REDIS_TIMEOUT = 2, /* no reply within timeout_ms */
};

struct rl_redis_config {
    char host[128];
    int port;
    int db;
    char password[128];
    uint32_t timeout_ms;         /* per call */
    uint32_t connect_timeout_ms; /* connect + first reply */
    uint32_t backoff_min_ms, backoff_max_ms;
};

/* "redis://[:password@]host[:port][/db]" or "host[:port]"; IPv6 in
 * brackets. Defaults: port 6379, db 0. Leaves the timeouts alone. */
int rl_redis_parse_url(const char *url, struct rl_redis_config *cfg, char *err,
                       size_t errlen);

/* reply is valid only during the call (RL_REDIS_OK only). */
typedef void (*rl_redis_reply_fn)(void *arg, enum rl_redis_result res,
                                  const struct redisReply *reply);
/* Called on each change between up and down (the client starts "up", so
 * the first report is a failure or nothing). why: a short reason. */
typedef void (*rl_redis_state_fn)(void *arg, bool up, const char *why);

struct rl_redis;
struct rl_redis_call;

/* scripts: Lua sources, referred to by index; must outlive the client. */
struct rl_redis *rl_redis_new(struct event_base *base,
                              const struct rl_redis_config *cfg,
                              const char *const *scripts, size_t nscripts,
                              rl_redis_state_fn state_fn, void *state_arg);
/* Pending callbacks are dropped, not called. */
void rl_redis_free(struct rl_redis *c);

/* False while the server counts as down (between a failure and the next
 * reconnect attempt): decide locally without waiting. */
bool rl_redis_ready(const struct rl_redis *c);
bool rl_redis_up(const struct rl_redis *c);

/* Runs scripts[script] with the first nkeys of argv as KEYS and the rest
 * as ARGV. fn (may be NULL: fire and forget) is called exactly once unless
 * the call is cancelled. Returns NULL when the client is not ready or the
 * command could not be queued; fn is then never called. */
struct rl_redis_call *rl_redis_eval(struct rl_redis *c, size_t script,
                                    size_t nkeys, size_t argc,
                                    const char *const *argv,
                                    const size_t *argvlen, rl_redis_reply_fn fn,
                                    void *arg);
/* The call's fn will not be called (e.g. its request went away). */
void rl_redis_cancel(struct rl_redis_call *call);

/* The latest error reply since the last call (copied into buf), or NULL:
 * script errors, WRONGTYPE from a foreign key, OOM. */
const char *rl_redis_take_error(struct rl_redis *c, char *buf, size_t cap);

/* Reads element i of an array reply as an integer (0 when absent). */
long long rl_redis_int(const struct redisReply *reply, size_t i);

#endif
