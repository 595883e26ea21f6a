/* router config: what the key table (router_config.c) fills. */
#ifndef ROUTER_CONFIG_H
#define ROUTER_CONFIG_H

#include <sluice/plugin.h>

/* One variant of a weighted split. */
struct router_variant_cfg {
    const char *name;
    const char *model;    /* NULL: keep the model */
    const char *upstream; /* NULL: the pool or the model's upstream */
    double weight;
};

/* splits.<model or alias>: who is hashed, and the variants in order. */
struct router_split_cfg {
    struct sluice_cfg_list by;       /* const char *: user, key, tenant,
                                        header:NAME; first non-empty wins */
    struct sluice_cfg_list variants; /* struct router_variant_cfg */
};

struct router_member_cfg {
    const char *name; /* an upstream */
    int64_t weight;
};

enum router_strategy {
    ROUTER_WEIGHTED = 0,
    ROUTER_LEAST_INFLIGHT = 1,
    ROUTER_P2C = 2,
};

/* pools.<model>: upstreams serving one model. */
struct router_pool_cfg {
    int strategy;                     /* enum router_strategy */
    struct sluice_cfg_list upstreams; /* struct router_member_cfg */
};

/* token_budgets.<request type>. -1: no limit. */
struct router_budget_cfg {
    int64_t max_tokens;       /* ceiling sent upstream */
    int64_t max_input_tokens; /* larger estimated inputs are refused */
};

struct router_config {
    const char *auto_model;        /* the name priority_models answers */
    struct sluice_cfg_map aliases; /* const char * */
    struct sluice_cfg_map priority_models; /* const char * */
    struct sluice_cfg_map splits;          /* struct router_split_cfg */
    struct sluice_cfg_map pools;           /* struct router_pool_cfg */
    double ewma_alpha;
    int64_t failure_penalty_ms;
    struct sluice_cfg_map token_budgets; /* struct router_budget_cfg */
    const char *budget_by;               /* tier | header:NAME */
    const char *default_budget;          /* type when nothing names one */
    int64_t degraded_retry_after_s;
    int64_t rate_window_s;
    struct sluice_cfg_map static_answers; /* const char *: category -> text */
};

extern const struct sluice_cfg_field router_config_fields[];

#endif
