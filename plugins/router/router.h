/* router plugin: shared state and the pieces of router.c's glue. */
#ifndef ROUTER_H
#define ROUTER_H

#include <sluice/host.h>

#include "router_balance.h"
#include "router_config.h"
#include "router_rate.h"

struct router {
    const struct sluice_host *h;
    const struct router_config *cfg;
    struct router_pool *pools; /* one per cfg->pools entry, same order */
    size_t n_pools;
    struct sluice_metric_vec *requests, *errors, *latency;
    struct sluice_metric_vec *prompt_tokens, *completion_tokens;
    struct sluice_metric_vec *picks, *skipped, *refused;
    struct sluice_metric *clamped;
    /* Published as health for the degradation ladder. */
    struct router_rate rate429; /* router.rate_429 */
    _Atomic int64_t in_flight;  /* router.in_flight */
};

/* Per request (req_state_size). */
struct router_state {
    const char *split;          /* NULL: no split applied */
    const char *variant;        /* name of the variant taken */
    struct router_member *held; /* a pool member counted in flight */
    struct router_pool *pool;
    bool counted; /* in rt->in_flight */
};

/* router_guard.c: the degradation ladder's levels 2-4 and token budgets.
 * SLUICE_CONTINUE, or SLUICE_RESPOND after answering. */
enum sluice_action router_ladder(struct router *rt, struct sluice_req *r);
enum sluice_action router_token_budget(struct router *rt, struct sluice_req *r);

/* router_route.c: aliases, priority models, splits, pools. */
void router_route(struct router *rt, struct sluice_req *r,
                  struct router_state *st);

/* A per-request var as a NUL-terminated copy in buf ("" when unset). */
const char *router_var(struct router *rt, struct sluice_req *r,
                       const char *name, char *buf, size_t cap);

#endif
