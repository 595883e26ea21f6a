/* token_bucket: the instance, its config and per-request state, shared by
 * the plugin's files. */
#ifndef TOKEN_BUCKET_H
#define TOKEN_BUCKET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/rl_backend.h"
#include "../common/rl_key.h"
#include "../common/rl_map.h"
#include "sluice/host.h"
#include "sluice/plugin.h"
#include "tb_core.h"

enum tb_mode { TB_MODE_REJECT = 0, TB_MODE_WAIT = 1 };

struct tb_config {
    int64_t requests_per_period;
    int64_t tokens_per_period;
    int64_t period_s;
    int64_t burst_requests;
    int64_t burst_tokens;
    const char *scope;
    int mode;
    int64_t max_wait_ms;
    int64_t default_max_tokens;
    bool headers;
    bool pause_on_upstream_429;
    int64_t upstream_429_pause_ms;
    const char *var_prefix;
    int64_t max_keys;
    struct rl_backend_cfg store;
    struct sluice_cfg_map tiers; /* of struct tb_tier_cfg */
};

/* One tier as configured; 0: not set (the base limit applies). */
struct tb_tier_cfg {
    int64_t dims[4]; /* requests_per_period, tokens_per_period,
                        burst_requests, burst_tokens */
};

/* Limits as configured and their local share while Redis is down. */
struct tb_pair {
    struct tb_limits lim;
    struct tb_limits fb;
};

struct tb_tier {
    char *name;
    struct tb_pair pair;
    /* The raw numbers, for per-request overrides on top of a tier. */
    uint64_t limit[TB_DIMS], burst[TB_DIMS];
};

enum tb_var {
    TB_VAR_TIER,
    TB_VAR_REQUESTS,
    TB_VAR_TOKENS,
    TB_VAR_BURST_REQUESTS,
    TB_VAR_BURST_TOKENS,
    TB_VARS
};

struct token_bucket {
    const struct sluice_host *h;
    struct tb_config cfg;
    struct rl_key_tmpl scope;
    struct tb_tier base;
    struct tb_tier *tiers;
    size_t ntiers;
    uint64_t max_wait_ns;
    char var_names[TB_VARS][128];
    struct rl_map *map; /* local state, or the fallback's with Redis */
    struct rl_backend be;
    _Atomic uint64_t evictions_seen;
    atomic_bool warned_bad_var;
    struct sluice_metric *m_allowed, *m_rejected, *m_waited, *m_keys,
        *m_evicted, *m_refunded, *m_debited, *m_pauses;
};

enum tb_phase { TB_PH_NEW = 0, TB_PH_REDIS, TB_PH_WAITING, TB_PH_DONE };
enum tb_via { TB_VIA_LOCAL = 0, TB_VIA_REDIS, TB_VIA_FALLBACK };

/* Per request (req_state_size); only 8-byte aligned members. */
struct tb_req {
    const struct token_bucket *tb;
    struct rl_redis_call *call;
    const struct tb_pair *pair;
    sluice_wake_t ticket;
    uint64_t first_ns;
    uint64_t tokens; /* tokens charged at admission */
    struct tb_decision dec;
    uint8_t phase, via, redis_res;
    bool charged; /* the buckets hold this request's charge */
    bool settled;
    bool paused;
    uint16_t key_len;
    char key[RL_KEY_MAX + 1];
};

/* tb_config.c */
extern const struct sluice_cfg_field tb_config_fields[];
int tb_setup_limits(struct token_bucket *tb, struct sluice_error *err);
void tb_free_tiers(struct token_bucket *tb);
/* Picks the tier and applies Lua overrides; NULL only on exhaustion. */
const struct tb_pair *tb_limits_for(struct token_bucket *tb,
                                    struct sluice_req *r);

#endif
