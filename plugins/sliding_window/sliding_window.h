/* sliding_window: the instance, its config and per-request state. */
#ifndef SLIDING_WINDOW_H
#define SLIDING_WINDOW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/rl_backend.h"
#include "../common/rl_key.h"
#include "../common/rl_map.h"
#include "sluice/host.h"
#include "sluice/plugin.h"
#include "sw_core.h"

enum sw_mode { SW_MODE_REJECT = 0, SW_MODE_WAIT = 1 };

#define SW_EXACT_MAX 100000 /* above this, use approximate mode */

struct sw_config {
    int64_t limit;
    int64_t window_s;
    bool approximate;
    const char *scope;
    int mode;
    int64_t max_wait_ms;
    bool headers;
    const char *var_prefix;
    int64_t max_keys;
    struct rl_backend_cfg store;
    struct sluice_cfg_map tiers; /* of struct sw_tier_cfg */
};

struct sw_tier_cfg {
    int64_t limit;
};

struct sw_tier {
    char *name;
    uint64_t limit;
};

struct sliding_window {
    const struct sluice_host *h;
    struct sw_config cfg;
    struct rl_key_tmpl scope;
    uint64_t window_ns;
    uint64_t max_wait_ns;
    struct sw_tier *tiers;
    size_t ntiers;
    char var_tier[128], var_limit[128];
    struct rl_map *map;
    struct rl_backend be;
    _Atomic uint64_t evictions_seen;
    atomic_bool warned_bad_var;
    struct sluice_metric *m_allowed, *m_rejected, *m_waited, *m_keys,
        *m_evicted;
};

enum sw_phase { SW_PH_NEW = 0, SW_PH_REDIS, SW_PH_WAITING, SW_PH_DONE };
enum sw_via { SW_VIA_LOCAL = 0, SW_VIA_REDIS, SW_VIA_FALLBACK };

struct sw_req {
    const struct sliding_window *sw;
    struct rl_redis_call *call;
    sluice_wake_t ticket;
    uint64_t limit; /* effective: tier, then Lua override */
    uint64_t first_ns;
    struct sw_decision dec;
    uint8_t phase, via, redis_res;
    bool reserved; /* exact wait: holds a slot until it resumes */
    uint16_t key_len;
    char key[RL_KEY_MAX + 1];
};

/* sw_config.c */
extern const struct sluice_cfg_field sw_config_fields[];
int sw_setup(struct sliding_window *sw, struct sluice_error *err);
void sw_free_tiers(struct sliding_window *sw);
uint64_t sw_limit_for(struct sliding_window *sw, struct sluice_req *r);

#endif
