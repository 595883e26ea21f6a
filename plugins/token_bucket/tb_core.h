/* token_bucket internals: the two-dimension bucket (requests and tokens)
 * as pure arithmetic on a key's state, and its Redis twin. */
#ifndef TB_CORE_H
#define TB_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/rl_gcra.h"

struct redisReply;

enum tb_dim { TB_REQUESTS = 0, TB_TOKENS = 1, TB_DIMS = 2 };

enum tb_verdict {
    TB_DENY = 0,    /* not now; wait_ns says when */
    TB_ALLOW = 1,   /* admitted and charged */
    TB_WAIT = 2,    /* charged for a slot wait_ns from now (wait mode) */
    TB_TOO_BIG = 3, /* the cost exceeds the burst: never admissible */
};

/* Effective limits of one request (base config, tier, Lua override). */
struct tb_limits {
    uint64_t limit[TB_DIMS]; /* per period; 0: dimension off */
    uint64_t burst[TB_DIMS];
    uint64_t period_ns;
    struct rl_gcra g[TB_DIMS];
};

/* Per-key state: one TAT per dimension (32 bytes). */
struct tb_state {
    rl_fx tat[TB_DIMS];
};

struct tb_decision {
    enum tb_verdict verdict;
    enum tb_dim binding; /* the dimension that decided a deny or wait */
    uint64_t wait_ns;
    uint64_t remaining[TB_DIMS];
    uint64_t reset_ns[TB_DIMS];
};

/* limits/bursts of 0 turn a dimension off; a burst of 0 means "= limit".
 * max_wait_ns: the instance's wait allowance (bounds the TAT clamp). */
void tb_limits_init(struct tb_limits *l, uint64_t requests, uint64_t tokens,
                    uint64_t burst_requests, uint64_t burst_tokens,
                    uint64_t period_ns, uint64_t max_wait_ns);

/* Takes one request and `tokens` tokens at `now`, or reserves the slot
 * when it comes within wait_ns (0: no waiting). Charges both dimensions
 * or neither. */
void tb_take(struct tb_state *s, const struct tb_limits *l, uint64_t now,
             uint64_t tokens, uint64_t wait_ns, struct tb_decision *d);
/* Refund (< 0) or debit (> 0) after the fact. */
void tb_adjust(struct tb_state *s, const struct tb_limits *l, uint64_t now,
               int64_t requests, int64_t tokens);
/* Nothing is admitted before now + pause_ns (requests dimension; with only
 * tokens limited, the tokens dimension). */
void tb_pause(struct tb_state *s, const struct tb_limits *l, uint64_t now,
              uint64_t pause_ns);
/* When the state equals a fresh one (both buckets full). */
uint64_t tb_idle_at(const struct tb_state *s);

/* ---- Redis (tb_redis.c) ---- */

extern const char tb_redis_script[];

enum tb_redis_op { TB_OP_TAKE, TB_OP_ADJUST, TB_OP_PAUSE };

/* Builds the script's ARGV (strings in `store`, at most TB_REDIS_ARGS of
 * them) and returns their count. */
#define TB_REDIS_ARGS 11
struct tb_redis_args {
    char store[TB_REDIS_ARGS][24];
    const char *argv[TB_REDIS_ARGS + 1];
    size_t len[TB_REDIS_ARGS + 1];
};
size_t tb_redis_args(struct tb_redis_args *a, enum tb_redis_op op,
                     const struct tb_limits *l, uint64_t max_wait_ns,
                     uint64_t wait_or_pause_ns, int64_t requests,
                     int64_t tokens);
/* Reads a take reply; false when it is malformed. */
bool tb_redis_parse(const struct redisReply *reply, struct tb_decision *d);
/* Exact arithmetic in Redis needs (burst + limit) * period_us < 2^53. */
bool tb_redis_fits(const struct tb_limits *l);

#endif
