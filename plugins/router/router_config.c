/* router config: the key table. */
#include <stddef.h>

#include "router_config.h"

#define OFF(f) offsetof(struct router_config, f)
#define RANGE (SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX)

static const struct sluice_cfg_field string_elem = {.type = SLUICE_CFG_STRING};

static const struct sluice_cfg_field variant_keys[] = {
    {.name = "name",
     .type = SLUICE_CFG_STRING,
     .flags = SLUICE_CFG_REQUIRED,
     .offset = offsetof(struct router_variant_cfg, name),
     .help = "variant name, the metrics' variant label"},
    {.name = "model",
     .type = SLUICE_CFG_STRING,
     .offset = offsetof(struct router_variant_cfg, model),
     .help = "model (or alias) this variant sends (absent: unchanged)"},
    {.name = "upstream",
     .type = SLUICE_CFG_STRING,
     .offset = offsetof(struct router_variant_cfg, upstream),
     .help = "upstream this variant goes to (absent: pool or model's)"},
    {.name = "weight",
     .type = SLUICE_CFG_DOUBLE,
     .flags = RANGE | SLUICE_CFG_REQUIRED,
     .min = 0,
     .max = 1e9,
     .offset = offsetof(struct router_variant_cfg, weight),
     .help = "share of the users, relative to the other variants"},
    {0},
};
static const struct sluice_cfg_field variant_elem = {
    .type = SLUICE_CFG_OBJECT,
    .fields = variant_keys,
    .size = sizeof(struct router_variant_cfg)};

static const struct sluice_cfg_field split_keys[] = {
    {.name = "by",
     .type = SLUICE_CFG_ARRAY,
     .flags = SLUICE_CFG_ONE_OR_MANY,
     .default_value = "[\"user\", \"key\", \"tenant\"]",
     .offset = offsetof(struct router_split_cfg, by),
     .help = "what a user is: user, key, tenant or header:NAME; the first "
             "non-empty one is hashed",
     .elem = &string_elem,
     .max_items = 8},
    {.name = "variants",
     .type = SLUICE_CFG_ARRAY,
     .flags = SLUICE_CFG_REQUIRED,
     .offset = offsetof(struct router_split_cfg, variants),
     .help = "variants in a stable order: grow the last one for a canary",
     .elem = &variant_elem,
     .max_items = 16},
    {0},
};
static const struct sluice_cfg_field split_elem = {
    .type = SLUICE_CFG_OBJECT,
    .fields = split_keys,
    .size = sizeof(struct router_split_cfg)};

static const struct sluice_cfg_field member_keys[] = {
    {.name = "name",
     .type = SLUICE_CFG_STRING,
     .flags = SLUICE_CFG_REQUIRED,
     .offset = offsetof(struct router_member_cfg, name),
     .help = "an upstream from the config"},
    {.name = "weight",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "1",
     .min = 1,
     .max = 1000000,
     .offset = offsetof(struct router_member_cfg, weight),
     .help = "share of the traffic under strategy weighted"},
    {0},
};
static const struct sluice_cfg_field member_elem = {
    .type = SLUICE_CFG_OBJECT,
    .fields = member_keys,
    .size = sizeof(struct router_member_cfg)};

static const char *const strategy_choices[] = {"weighted", "least_inflight",
                                               "p2c", NULL};
static const struct sluice_cfg_field pool_keys[] = {
    {.name = "strategy",
     .type = SLUICE_CFG_ENUM,
     .default_value = "\"p2c\"",
     .choices = strategy_choices,
     .offset = offsetof(struct router_pool_cfg, strategy),
     .help = "weighted, least_inflight, or p2c (two random choices, the "
             "lower latency EWMA x (in flight + 1))"},
    {.name = "upstreams",
     .type = SLUICE_CFG_ARRAY,
     .flags = SLUICE_CFG_REQUIRED,
     .offset = offsetof(struct router_pool_cfg, upstreams),
     .help = "the upstreams serving this model",
     .elem = &member_elem,
     .max_items = 32},
    {0},
};
static const struct sluice_cfg_field pool_elem = {
    .type = SLUICE_CFG_OBJECT,
    .fields = pool_keys,
    .size = sizeof(struct router_pool_cfg)};

static const struct sluice_cfg_field budget_keys[] = {
    {.name = "max_tokens",
     .type = SLUICE_CFG_INT,
     .flags = RANGE | SLUICE_CFG_MARK_UNSET,
     .min = 1,
     .max = 1e9,
     .offset = offsetof(struct router_budget_cfg, max_tokens),
     .help = "ceiling on max_tokens sent upstream (absent: none)"},
    {.name = "max_input_tokens",
     .type = SLUICE_CFG_INT,
     .flags = RANGE | SLUICE_CFG_MARK_UNSET,
     .min = 1,
     .max = 1e9,
     .offset = offsetof(struct router_budget_cfg, max_input_tokens),
     .help = "estimated input tokens above this are refused (absent: none)"},
    {0},
};
static const struct sluice_cfg_field budget_elem = {
    .type = SLUICE_CFG_OBJECT,
    .fields = budget_keys,
    .size = sizeof(struct router_budget_cfg)};

const struct sluice_cfg_field router_config_fields[] = {
    {.name = "auto_model",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"auto\"",
     .offset = OFF(auto_model),
     .help = "the model name that priority_models resolves"},
    {.name = "aliases",
     .type = SLUICE_CFG_MAP,
     .offset = OFF(aliases),
     .help = "model names clients use -> upstream models: {\"fast\": "
             "\"gpt-4o-mini\"}",
     .elem = &string_elem,
     .max_items = 256},
    {.name = "priority_models",
     .type = SLUICE_CFG_MAP,
     .offset = OFF(priority_models),
     .help = "priority -> model or alias for requests asking for auto_model",
     .elem = &string_elem,
     .max_items = 5},
    {.name = "splits",
     .type = SLUICE_CFG_MAP,
     .offset = OFF(splits),
     .help = "model or alias -> sticky weighted split {by, variants}",
     .elem = &split_elem,
     .max_items = 64},
    {.name = "pools",
     .type = SLUICE_CFG_MAP,
     .offset = OFF(pools),
     .help = "model -> load-balanced upstreams {strategy, upstreams}",
     .elem = &pool_elem,
     .max_items = 64},
    {.name = "ewma_alpha",
     .type = SLUICE_CFG_DOUBLE,
     .flags = RANGE | SLUICE_CFG_MIN_EXCLUSIVE,
     .default_value = "0.3",
     .min = 0,
     .max = 1,
     .offset = OFF(ewma_alpha),
     .help = "weight of the newest latency in an upstream's EWMA"},
    {.name = "failure_penalty_ms",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "1000",
     .min = 0,
     .max = 600000,
     .offset = OFF(failure_penalty_ms),
     .help = "a failed attempt counts as at least this latency in the EWMA"},
    {.name = "token_budgets",
     .type = SLUICE_CFG_MAP,
     .offset = OFF(token_budgets),
     .help = "request type -> {max_tokens, max_input_tokens}",
     .elem = &budget_elem,
     .max_items = 64},
    {.name = "budget_by",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"tier\"",
     .offset = OFF(budget_by),
     .help = "the request type: tier or header:NAME (the policy's var "
             "router.budget wins)"},
    {.name = "default_budget",
     .type = SLUICE_CFG_STRING,
     .offset = OFF(default_budget),
     .help = "token_budgets entry for requests whose type has none"},
    {.name = "degraded_retry_after_s",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "30",
     .min = 0,
     .max = 86400,
     .offset = OFF(degraded_retry_after_s),
     .help = "Retry-After of the 503 at degradation level 2 and 4"},
    {.name = "rate_window_s",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "60",
     .min = 6,
     .max = 3600,
     .offset = OFF(rate_window_s),
     .help = "window of the router.rate_429 health value, seconds"},
    {.name = "static_answers",
     .type = SLUICE_CFG_MAP,
     .offset = OFF(static_answers),
     .help = "category -> answer text served at degradation level 3 "
             "(\"default\" for any other category)",
     .elem = &string_elem,
     .max_items = 64},
    {0},
};
