/* sliding_window config: the key table, tiers and Lua overrides. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rl_duration.h"
#include "sliding_window.h"

#define OFF(f) offsetof(struct sw_config, f)
#define POSITIVE (SLUICE_CFG_HAS_MIN | SLUICE_CFG_MIN_EXCLUSIVE)
#define RANGE (SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX)
#define MAX_LIMIT 1e9

static const char *const mode_choices[] = {"reject", "wait", NULL};

/* One tier: {"limit": N}. */
static const struct sluice_cfg_field tier_keys[] = {
    {.name = "limit",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_REQUIRED | POSITIVE | SLUICE_CFG_HAS_MAX,
     .max = MAX_LIMIT,
     .offset = offsetof(struct sw_tier_cfg, limit),
     .help = "requests allowed in any rolling window for this tier"},
    {0},
};
static const struct sluice_cfg_field tier_elem = {
    .type = SLUICE_CFG_OBJECT,
    .fields = tier_keys,
    .size = sizeof(struct sw_tier_cfg)};

const struct sluice_cfg_field sw_config_fields[] = {
    {.name = "limit",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_REQUIRED | POSITIVE | SLUICE_CFG_HAS_MAX,
     .max = MAX_LIMIT,
     .offset = OFF(limit),
     .help = "requests allowed in any rolling window"},
    {.name = "window_s",
     .type = SLUICE_CFG_INT,
     .flags = POSITIVE | SLUICE_CFG_HAS_MAX,
     .default_value = "60",
     .max = 86400,
     .offset = OFF(window_s),
     .help = "length of the rolling window in seconds"},
    {.name = "approximate",
     .type = SLUICE_CFG_BOOL,
     .default_value = "false",
     .offset = OFF(approximate),
     .help = "two weighted fixed windows: O(1) memory, an estimate (for big "
             "limits)"},
    {.name = "scope",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"global\"",
     .offset = OFF(scope),
     .help = "key template: global, {tenant}, {user}, {tier}, {key}, {model}, "
             "{header.NAME}, ... and combinations"},
    {.name = "tiers",
     .type = SLUICE_CFG_MAP,
     .offset = OFF(tiers),
     .help = "per-tier limits: {\"free\": {\"limit\": 20}, ...}",
     .elem = &tier_elem},
    {.name = "mode",
     .type = SLUICE_CFG_ENUM,
     .default_value = "\"reject\"",
     .choices = mode_choices,
     .offset = OFF(mode),
     .help = "reject: 429 at once; wait: hold the request up to max_wait_ms"},
    {.name = "max_wait_ms",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "10000",
     .max = 3600000,
     .offset = OFF(max_wait_ms),
     .help = "longest wait in wait mode"},
    {.name = "headers",
     .type = SLUICE_CFG_BOOL,
     .default_value = "true",
     .offset = OFF(headers),
     .help = "add x-ratelimit-{limit,remaining,reset}-requests"},
    {.name = "var_prefix",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"ratelimit.sliding_window\"",
     .offset = OFF(var_prefix),
     .help = "per-request overrides are read from vars PREFIX.tier and "
             "PREFIX.limit"},
    {.name = "max_keys",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "100000",
     .min = 1,
     .max = 100000000,
     .offset = OFF(max_keys),
     .help = "most keys held in memory (coldest dropped beyond)"},
    RL_BACKEND_FIELDS(struct sw_config, store),
    {0},
};

static int check_limit(const struct sliding_window *sw, uint64_t limit,
                       const char *where, struct sluice_error *err)
{
    if (!sw->cfg.approximate && limit > SW_EXACT_MAX) {
        snprintf(err->message, sizeof err->message,
                 "%slimit: exact mode keeps one timestamp per request; above "
                 "%d set \"approximate\": true",
                 where, SW_EXACT_MAX);
        return -1;
    }
    if (rl_backend_is_redis(&sw->be) && !sw_redis_fits(limit, sw->window_ns)) {
        snprintf(err->message, sizeof err->message,
                 "%slimit: too large for exact Redis arithmetic (limit * "
                 "window_s must stay below 4.5e9)",
                 where);
        return -1;
    }
    return 0;
}

/* Tiers come validated by the core; what is left is what depends on
 * other keys (exact mode, the Redis backend). */
static int parse_tiers(struct sliding_window *sw, struct sluice_error *err)
{
    const struct sluice_cfg_map *tiers = &sw->cfg.tiers;
    char where[96];

    if (!tiers->count)
        return 0;
    sw->tiers = calloc(tiers->count, sizeof *sw->tiers);
    if (!sw->tiers) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < tiers->count; i++) {
        const char *name = tiers->keys[i];
        uint64_t v =
            (uint64_t)SLUICE_CFG_VALUE(*tiers, struct sw_tier_cfg, i)->limit;
        snprintf(where, sizeof where, "tiers.%s.", name);
        if (check_limit(sw, v, where, err))
            return -1;
        sw->tiers[sw->ntiers].name = strdup(name);
        sw->tiers[sw->ntiers].limit = v;
        if (!sw->tiers[sw->ntiers].name) {
            snprintf(err->message, sizeof err->message, "out of memory");
            return -1;
        }
        sw->ntiers++;
    }
    return 0;
}

int sw_setup(struct sliding_window *sw, struct sluice_error *err)
{
    sw->window_ns = (uint64_t)sw->cfg.window_s * 1000000000ull;
    sw->max_wait_ns = sw->cfg.mode == SW_MODE_WAIT
                          ? (uint64_t)sw->cfg.max_wait_ms * 1000000ull
                          : 0;
    snprintf(sw->var_tier, sizeof sw->var_tier, "%s.tier", sw->cfg.var_prefix);
    snprintf(sw->var_limit, sizeof sw->var_limit, "%s.limit",
             sw->cfg.var_prefix);
    if (check_limit(sw, (uint64_t)sw->cfg.limit, "", err))
        return -1;
    return parse_tiers(sw, err);
}

void sw_free_tiers(struct sliding_window *sw)
{
    for (size_t i = 0; i < sw->ntiers; i++)
        free(sw->tiers[i].name);
    free(sw->tiers);
    sw->tiers = NULL;
    sw->ntiers = 0;
}

uint64_t sw_limit_for(struct sliding_window *sw, struct sluice_req *r)
{
    const struct sluice_host *h = sw->h;
    uint64_t limit = (uint64_t)sw->cfg.limit, v;
    struct sluice_str tier = h->var_get(r, sw->var_tier);

    if (!tier.len)
        tier = h->req_identity(r, SLUICE_ID_TIER);
    for (size_t i = 0; tier.len && i < sw->ntiers; i++)
        if (strlen(sw->tiers[i].name) == tier.len &&
            memcmp(sw->tiers[i].name, tier.ptr, tier.len) == 0)
            limit = sw->tiers[i].limit;

    struct sluice_str over = h->var_get(r, sw->var_limit);
    if (!over.len)
        return limit;
    bool ok =
        rl_parse_u64(over, &v) && v > 0 &&
        v <= (sw->cfg.approximate ? (uint64_t)MAX_LIMIT
                                  : (uint64_t)SW_EXACT_MAX) &&
        (!rl_backend_is_redis(&sw->be) || sw_redis_fits(v, sw->window_ns));
    if (ok)
        return v;
    if (!atomic_exchange(&sw->warned_bad_var, true))
        h->log(h, SLUICE_LOG_WARN,
               "ignoring var %s: not an integer limit this instance can "
               "hold (logged once)",
               sw->var_limit);
    return limit;
}
