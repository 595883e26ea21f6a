/* token_bucket config: the key table, tiers and per-request overrides. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rl_duration.h"
#include "token_bucket.h"

#define OFF(f) offsetof(struct tb_config, f)
#define POSITIVE (SLUICE_CFG_HAS_MIN | SLUICE_CFG_MIN_EXCLUSIVE)
#define RANGE (SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX)
#define MAX_UNITS 1e12

static const char *const mode_choices[] = {"reject", "wait", NULL};

/* One tier: any of the four limits; the others come from the base. */
#define TIER_KEY(i, key)                                                       \
    {                                                                          \
        .name = key, .type = SLUICE_CFG_INT,                                   \
        .flags = POSITIVE | SLUICE_CFG_HAS_MAX, .max = MAX_UNITS,              \
        .offset = offsetof(struct tb_tier_cfg, dims) + (i) * sizeof(int64_t),  \
        .help = "this tier's " key " (absent: the instance's)"                 \
    }
static const struct sluice_cfg_field tier_keys[] = {
    TIER_KEY(0, "requests_per_period"),
    TIER_KEY(1, "tokens_per_period"),
    TIER_KEY(2, "burst_requests"),
    TIER_KEY(3, "burst_tokens"),
    {0},
};
static const struct sluice_cfg_field tier_elem = {
    .type = SLUICE_CFG_OBJECT,
    .fields = tier_keys,
    .size = sizeof(struct tb_tier_cfg)};

const struct sluice_cfg_field tb_config_fields[] = {
    {.name = "requests_per_period",
     .type = SLUICE_CFG_INT,
     .flags = POSITIVE | SLUICE_CFG_HAS_MAX,
     .max = MAX_UNITS,
     .offset = OFF(requests_per_period),
     .help = "requests per period (absent: requests are not limited)"},
    {.name = "tokens_per_period",
     .type = SLUICE_CFG_INT,
     .flags = POSITIVE | SLUICE_CFG_HAS_MAX,
     .max = MAX_UNITS,
     .offset = OFF(tokens_per_period),
     .help = "tokens per period: input estimate + max_tokens, reconciled with "
             "usage "
             "(absent: tokens are not limited)"},
    {.name = "period_s",
     .type = SLUICE_CFG_INT,
     .flags = POSITIVE | SLUICE_CFG_HAS_MAX,
     .default_value = "60",
     .max = 86400,
     .offset = OFF(period_s),
     .help = "length of the period in seconds"},
    {.name = "burst_requests",
     .type = SLUICE_CFG_INT,
     .flags = POSITIVE | SLUICE_CFG_HAS_MAX,
     .max = MAX_UNITS,
     .offset = OFF(burst_requests),
     .help = "bucket size for requests (default: requests_per_period)"},
    {.name = "burst_tokens",
     .type = SLUICE_CFG_INT,
     .flags = POSITIVE | SLUICE_CFG_HAS_MAX,
     .max = MAX_UNITS,
     .offset = OFF(burst_tokens),
     .help = "bucket size for tokens (default: tokens_per_period)"},
    {.name = "scope",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"global\"",
     .offset = OFF(scope),
     .help = "key template: global, {tenant}, {user}, {tier}, {key}, {model}, "
             "{header.NAME}, ... and combinations"},
    {.name = "tiers",
     .type = SLUICE_CFG_MAP,
     .offset = OFF(tiers),
     .help = "per-tier limits: {\"free\": {\"requests_per_period\": 20}, ...}",
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
    {.name = "default_max_tokens",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "256",
     .max = 10000000,
     .offset = OFF(default_max_tokens),
     .help = "completion tokens reserved when a request sets no max_tokens"},
    {.name = "headers",
     .type = SLUICE_CFG_BOOL,
     .default_value = "true",
     .offset = OFF(headers),
     .help = "add x-ratelimit-{limit,remaining,reset}-{requests,tokens}"},
    {.name = "pause_on_upstream_429",
     .type = SLUICE_CFG_BOOL,
     .default_value = "false",
     .offset = OFF(pause_on_upstream_429),
     .help = "an upstream 429 pauses the key for its Retry-After"},
    {.name = "upstream_429_pause_ms",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "1000",
     .max = 600000,
     .offset = OFF(upstream_429_pause_ms),
     .help = "pause when the 429 has no Retry-After"},
    {.name = "var_prefix",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"ratelimit.token_bucket\"",
     .offset = OFF(var_prefix),
     .help = "per-request overrides are read from vars PREFIX.tier, "
             "PREFIX.requests_per_period, ..."},
    {.name = "max_keys",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "100000",
     .min = 1,
     .max = 100000000,
     .offset = OFF(max_keys),
     .help = "most keys held in memory (coldest dropped beyond)"},
    RL_BACKEND_FIELDS(struct tb_config, store),
    {0},
};

static const char *const dim_keys[] = {"requests_per_period",
                                       "tokens_per_period", "burst_requests",
                                       "burst_tokens"};

static uint64_t share(const struct token_bucket *tb, uint64_t v)
{
    uint64_t div = tb->cfg.store.local_fallback_divisor > 1
                       ? (uint64_t)tb->cfg.store.local_fallback_divisor
                       : 1;
    return v ? (v / div ? v / div : 1) : 0;
}

static void make_pair(const struct token_bucket *tb, struct tb_pair *p,
                      const uint64_t limit[TB_DIMS],
                      const uint64_t burst[TB_DIMS])
{
    uint64_t period = (uint64_t)tb->cfg.period_s * 1000000000ull;
    tb_limits_init(&p->lim, limit[0], limit[1], burst[0], burst[1], period,
                   tb->max_wait_ns);
    tb_limits_init(&p->fb, share(tb, limit[0]), share(tb, limit[1]),
                   share(tb, p->lim.burst[0]), share(tb, p->lim.burst[1]),
                   period, tb->max_wait_ns);
}

static int check_redis(const struct token_bucket *tb, const struct tb_pair *p,
                       const char *where, struct sluice_error *err)
{
    if (!rl_backend_is_redis(&tb->be) || tb_redis_fits(&p->lim))
        return 0;
    snprintf(err->message, sizeof err->message,
             "%stokens_per_period: too large for exact Redis arithmetic "
             "((burst + limit) * period_s must stay below 9e9)",
             where);
    return -1;
}

/* One tier, validated by the core, on top of the base. */
static int parse_tier(struct token_bucket *tb, struct tb_tier *t,
                      const char *name, const struct tb_tier_cfg *cfg,
                      struct sluice_error *err)
{
    uint64_t vals[4];
    char where[96];

    snprintf(where, sizeof where, "tiers.%s.", name);
    for (int k = 0; k < 4; k++)
        vals[k] = (uint64_t)cfg->dims[k];
    t->name = strdup(name);
    if (!t->name) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    for (int i = 0; i < TB_DIMS; i++) {
        t->limit[i] = vals[i] ? vals[i] : tb->base.limit[i];
        /* A tier that changes a limit but not its burst gets burst = limit. */
        t->burst[i] = vals[2 + i] ? vals[2 + i]
                      : vals[i]   ? vals[i]
                                  : tb->base.burst[i];
        if (t->burst[i] && !t->limit[i]) {
            snprintf(err->message, sizeof err->message, "%s%s: needs %s", where,
                     dim_keys[2 + i], dim_keys[i]);
            return -1;
        }
    }
    make_pair(tb, &t->pair, t->limit, t->burst);
    return check_redis(tb, &t->pair, where, err);
}

static int parse_tiers(struct token_bucket *tb, struct sluice_error *err)
{
    const struct sluice_cfg_map *tiers = &tb->cfg.tiers;

    if (!tiers->count)
        return 0;
    tb->tiers = calloc(tiers->count, sizeof *tb->tiers);
    if (!tb->tiers) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < tiers->count; i++) {
        if (parse_tier(tb, &tb->tiers[tb->ntiers], tiers->keys[i],
                       SLUICE_CFG_VALUE(*tiers, struct tb_tier_cfg, i), err)) {
            free(tb->tiers[tb->ntiers].name);
            return -1;
        }
        tb->ntiers++;
    }
    return 0;
}

int tb_setup_limits(struct token_bucket *tb, struct sluice_error *err)
{
    const struct tb_config *c = &tb->cfg;

    if (!c->requests_per_period && !c->tokens_per_period) {
        snprintf(err->message, sizeof err->message,
                 "requests_per_period: set it, tokens_per_period or both");
        return -1;
    }
    if (c->burst_requests && !c->requests_per_period) {
        snprintf(err->message, sizeof err->message,
                 "burst_requests: needs requests_per_period");
        return -1;
    }
    if (c->burst_tokens && !c->tokens_per_period) {
        snprintf(err->message, sizeof err->message,
                 "burst_tokens: needs tokens_per_period");
        return -1;
    }
    tb->max_wait_ns =
        c->mode == TB_MODE_WAIT ? (uint64_t)c->max_wait_ms * 1000000ull : 0;
    tb->base.limit[0] = (uint64_t)c->requests_per_period;
    tb->base.limit[1] = (uint64_t)c->tokens_per_period;
    tb->base.burst[0] =
        c->burst_requests ? (uint64_t)c->burst_requests : tb->base.limit[0];
    tb->base.burst[1] =
        c->burst_tokens ? (uint64_t)c->burst_tokens : tb->base.limit[1];
    make_pair(tb, &tb->base.pair, tb->base.limit, tb->base.burst);
    if (check_redis(tb, &tb->base.pair, "", err))
        return -1;
    static const char *const suffix[TB_VARS] = {
        "tier", "requests_per_period", "tokens_per_period", "burst_requests",
        "burst_tokens"};
    for (int i = 0; i < TB_VARS; i++)
        snprintf(tb->var_names[i], sizeof tb->var_names[i], "%s.%s",
                 c->var_prefix, suffix[i]);
    return parse_tiers(tb, err);
}

void tb_free_tiers(struct token_bucket *tb)
{
    for (size_t i = 0; i < tb->ntiers; i++)
        free(tb->tiers[i].name);
    free(tb->tiers);
    tb->tiers = NULL;
    tb->ntiers = 0;
}

static const struct tb_tier *find_tier(const struct token_bucket *tb,
                                       struct sluice_str name)
{
    for (size_t i = 0; i < tb->ntiers; i++)
        if (strlen(tb->tiers[i].name) == name.len &&
            memcmp(tb->tiers[i].name, name.ptr, name.len) == 0)
            return &tb->tiers[i];
    return &tb->base;
}

static void warn_bad_var(struct token_bucket *tb, const char *name)
{
    if (!atomic_exchange(&tb->warned_bad_var, true))
        tb->h->log(tb->h, SLUICE_LOG_WARN,
                   "ignoring var %s: not an integer in 1..1e12 (logged once)",
                   name);
}

const struct tb_pair *tb_limits_for(struct token_bucket *tb,
                                    struct sluice_req *r)
{
    const struct sluice_host *h = tb->h;
    struct sluice_str tier = h->var_get(r, tb->var_names[TB_VAR_TIER]);
    if (!tier.len)
        tier = h->req_identity(r, SLUICE_ID_TIER);
    const struct tb_tier *t = tier.len ? find_tier(tb, tier) : &tb->base;

    uint64_t over[4] = {0};
    bool any = false;
    for (int k = 0; k < 4; k++) {
        struct sluice_str v = h->var_get(r, tb->var_names[TB_VAR_REQUESTS + k]);
        if (!v.len)
            continue;
        if (!rl_parse_u64(v, &over[k]) || !over[k] || over[k] > MAX_UNITS) {
            warn_bad_var(tb, tb->var_names[TB_VAR_REQUESTS + k]);
            over[k] = 0;
            continue;
        }
        any = true;
    }
    if (!any)
        return &t->pair;

    uint64_t limit[TB_DIMS], burst[TB_DIMS];
    for (int i = 0; i < TB_DIMS; i++) {
        limit[i] = over[i] ? over[i] : t->limit[i];
        burst[i] = over[2 + i] ? over[2 + i] : over[i] ? over[i] : t->burst[i];
        if (!limit[i])
            burst[i] = 0;
    }
    /* The pair holds 128-bit values: align the request-scoped block. */
    unsigned char *raw = h->req_alloc(r, sizeof(struct tb_pair) + 16);
    if (!raw)
        return &t->pair;
    struct tb_pair *p =
        (struct tb_pair *)(((uintptr_t)raw + 15) & ~(uintptr_t)15);
    make_pair(tb, p, limit, burst);
    if (rl_backend_is_redis(&tb->be) && !tb_redis_fits(&p->lim)) {
        warn_bad_var(tb, tb->var_names[TB_VAR_TOKENS]);
        return &t->pair;
    }
    return p;
}
