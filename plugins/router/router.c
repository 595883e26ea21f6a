/* router plugin: model aliases, priority models, sticky weighted splits,
 * load balancing with breaker awareness, token budgets per request type
 * and the degradation ladder's refusals. See README.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

#define LABEL_VALUES 32

const char *router_var(struct router *rt, struct sluice_req *r,
                       const char *name, char *buf, size_t cap)
{
    struct sluice_str v = rt->h->var_get(r, name);
    size_t n = v.len < cap ? v.len : cap - 1;
    if (n)
        memcpy(buf, v.ptr, n);
    buf[n] = '\0';
    return buf;
}

static bool upstream_known(const struct sluice_host *h, const char *name)
{
    if (!name || !SLUICE_HOST_HAS(h, upstream_name))
        return true;
    size_t len = strlen(name);
    for (size_t i = 0; i < h->upstream_count(h); i++) {
        struct sluice_str u = h->upstream_name(h, i);
        if (u.len == len && memcmp(u.ptr, name, len) == 0)
            return true;
    }
    return false;
}

static int check_upstreams(const struct sluice_host *h,
                           const struct router_config *cfg,
                           struct sluice_error *err)
{
    for (size_t i = 0; i < cfg->pools.count; i++) {
        const struct router_pool_cfg *p =
            SLUICE_CFG_VALUE(cfg->pools, struct router_pool_cfg, i);
        for (size_t j = 0; j < p->upstreams.count; j++) {
            const char *u =
                SLUICE_CFG_ITEM(p->upstreams, struct router_member_cfg, j)
                    ->name;
            if (!upstream_known(h, u)) {
                snprintf(err->message, sizeof err->message,
                         "pools.%.60s: unknown upstream '%.60s'",
                         cfg->pools.keys[i], u);
                return -1;
            }
        }
    }
    for (size_t i = 0; i < cfg->splits.count; i++) {
        const struct router_split_cfg *s =
            SLUICE_CFG_VALUE(cfg->splits, struct router_split_cfg, i);
        for (size_t j = 0; j < s->variants.count; j++) {
            const struct router_variant_cfg *v =
                SLUICE_CFG_ITEM(s->variants, struct router_variant_cfg, j);
            if (!upstream_known(h, v->upstream)) {
                snprintf(err->message, sizeof err->message,
                         "splits.%.60s: variant '%.40s' names unknown upstream "
                         "'%.60s'",
                         cfg->splits.keys[i], v->name, v->upstream);
                return -1;
            }
        }
    }
    return 0;
}

static char *name_of(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

/* The health names a pick reads and the member's metric series, made once. */
static int member_init(struct router *rt, struct router_member *m,
                       const struct router_member_cfg *cfg, const char *model)
{
    const struct sluice_host *h = rt->h;
    const char *const label[] = {cfg->name};
    char *up_model = name_of(cfg->name, "/", model);
    m->name = cfg->name;
    m->weight = cfg->weight;
    m->health[0] = name_of("breaker.", cfg->name, ".open");
    m->health[1] = up_model ? name_of("breaker.", up_model, ".open") : NULL;
    m->health[2] = name_of("upstream.", cfg->name, ".down");
    free(up_model);
    m->picks = h->metric_with(rt->picks, label);
    m->skipped = h->metric_with(rt->skipped, label);
    return m->health[0] && m->health[1] && m->health[2] ? 0 : -1;
}

static int build_pools(struct router *rt)
{
    const struct router_config *cfg = rt->cfg;
    rt->n_pools = cfg->pools.count;
    rt->pools = calloc(rt->n_pools ? rt->n_pools : 1, sizeof *rt->pools);
    if (!rt->pools)
        return -1;
    for (size_t i = 0; i < rt->n_pools; i++) {
        const struct router_pool_cfg *pc =
            SLUICE_CFG_VALUE(cfg->pools, struct router_pool_cfg, i);
        struct router_pool *p = &rt->pools[i];
        p->model = cfg->pools.keys[i];
        p->strategy = pc->strategy;
        p->n = pc->upstreams.count;
        p->members = calloc(p->n ? p->n : 1, sizeof *p->members);
        if (!p->members)
            return -1;
        for (size_t j = 0; j < p->n; j++) {
            const struct router_member_cfg *m =
                SLUICE_CFG_ITEM(pc->upstreams, struct router_member_cfg, j);
            if (member_init(rt, &p->members[j], m, p->model) != 0)
                return -1;
        }
    }
    return 0;
}

static void make_metrics(struct router *rt)
{
    const struct sluice_host *h = rt->h;
    static const char *const sv[] = {"split", "variant"};
    static const char *const up[] = {"upstream"};
    static const char *const reason[] = {"reason"};
    static const double bounds[] = {0.05, 0.1, 0.25, 0.5, 1,
                                    2.5,  5,   10,   30,  60};
    rt->requests =
        h->counter_vec(h, "sluice_router_variant_requests_total",
                       "Requests per split variant.", sv, 2, LABEL_VALUES);
    rt->errors = h->counter_vec(h, "sluice_router_variant_errors_total",
                                "Requests per split variant whose upstream "
                                "exchange failed (error status, timeout, cut).",
                                sv, 2, LABEL_VALUES);
    rt->latency = h->histogram_vec(
        h, "sluice_router_variant_latency_seconds",
        "Upstream time per split variant, all attempts.", sv, 2, LABEL_VALUES,
        bounds, sizeof bounds / sizeof bounds[0]);
    rt->prompt_tokens = h->counter_vec(
        h, "sluice_router_variant_prompt_tokens_total",
        "Prompt tokens per split variant, from the provider's usage.", sv, 2,
        LABEL_VALUES);
    rt->completion_tokens = h->counter_vec(
        h, "sluice_router_variant_completion_tokens_total",
        "Completion tokens per split variant, from the provider's usage.", sv,
        2, LABEL_VALUES);
    rt->picks = h->counter_vec(h, "sluice_router_upstream_picks_total",
                               "Requests the load balancer sent per upstream.",
                               up, 1, LABEL_VALUES);
    rt->skipped = h->counter_vec(
        h, "sluice_router_upstream_skipped_total",
        "Pool members passed over because their breaker was open or the "
        "core marked them down.",
        up, 1, LABEL_VALUES);
    rt->refused = h->counter_vec(
        h, "sluice_router_refused_total",
        "Requests the router answered itself, by reason (degraded_cache_only, "
        "static_answer, maintenance, input_over_budget).",
        reason, 1, 8);
    rt->clamped = h->counter(h, "sluice_router_max_tokens_clamped_total",
                             "Requests whose max_tokens was lowered to the "
                             "token budget's ceiling.");
}

static void destroy(void *self)
{
    struct router *rt = self;
    if (!rt)
        return;
    for (size_t i = 0; rt->pools && i < rt->n_pools; i++) {
        for (size_t j = 0; rt->pools[i].members && j < rt->pools[i].n; j++)
            for (int k = 0; k < 3; k++)
                free(rt->pools[i].members[j].health[k]);
        free(rt->pools[i].members);
    }
    free(rt->pools);
    router_rate_fini(&rt->rate429);
    free(rt);
}

static int create(const struct sluice_host *host, const void *config,
                  struct sluice_str raw_json, void **self,
                  struct sluice_error *err)
{
    (void)raw_json;
    if (!SLUICE_HOST_HAS(host, metric_with)) {
        snprintf(err->message, sizeof err->message,
                 "router needs SDK 1.1 (labelled metrics)");
        return -1;
    }
    const struct router_config *cfg = config;
    if (check_upstreams(host, cfg, err) != 0)
        return -1;
    if (strcmp(cfg->budget_by, "tier") != 0 &&
        !(strncmp(cfg->budget_by, "header:", 7) == 0 && cfg->budget_by[7])) {
        snprintf(err->message, sizeof err->message,
                 "budget_by: '%.60s' is neither tier nor header:NAME",
                 cfg->budget_by);
        return -1;
    }
    struct router *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -1;
    rt->h = host;
    rt->cfg = cfg;
    router_rate_init(&rt->rate429, (uint64_t)cfg->rate_window_s * 1000000000u);
    make_metrics(rt);
    if (build_pools(rt) != 0) {
        destroy(rt);
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    *self = rt;
    return 0;
}

static enum sluice_action on_request(void *self, struct sluice_req *r,
                                     void *state)
{
    struct router *rt = self;
    struct router_state *st = state;
    const struct sluice_host *h = rt->h;
    st->counted = true;
    h->health_set(h, "router.in_flight",
                  (double)(atomic_fetch_add(&rt->in_flight, 1) + 1));
    if (router_ladder(rt, r) == SLUICE_RESPOND ||
        router_token_budget(rt, r) == SLUICE_RESPOND)
        return SLUICE_RESPOND;
    char skip[8];
    if (strcmp(router_var(rt, r, "router.skip", skip, sizeof skip), "1") != 0)
        router_route(rt, r, state);
    return SLUICE_CONTINUE;
}

static bool failed(enum sluice_outcome o, int status)
{
    return (o != SLUICE_OUTCOME_OK && o != SLUICE_OUTCOME_NONE &&
            o != SLUICE_OUTCOME_CLIENT_GONE) ||
           status >= 500;
}

/* Latency EWMA of the pool members this request's attempts went to. */
static void observe_attempts(struct router *rt, struct sluice_req *r,
                             struct router_state *st, uint64_t *total_ns)
{
    const struct sluice_host *h = rt->h;
    size_t n = h->resp_attempt_count(r), answered = 0, limited = 0;
    for (size_t i = 0; i < n; i++) {
        struct sluice_attempt a;
        if (!h->resp_attempt(r, i, &a))
            continue;
        *total_ns += a.duration_ns;
        answered += a.status > 0;
        limited += a.status == 429;
        if (!st->pool || a.outcome == SLUICE_OUTCOME_CLIENT_GONE)
            continue;
        uint64_t ns = a.duration_ns;
        uint64_t floor_ns = (uint64_t)rt->cfg->failure_penalty_ms * 1000000u;
        if (failed(a.outcome, a.status) && ns < floor_ns)
            ns = floor_ns;
        for (size_t j = 0; j < st->pool->n; j++) {
            struct router_member *m = &st->pool->members[j];
            if (a.upstream.len == strlen(m->name) &&
                memcmp(a.upstream.ptr, m->name, a.upstream.len) == 0)
                router_member_observe(m, ns, rt->cfg->ewma_alpha);
        }
    }
    if (answered)
        h->health_set(
            h, "router.rate_429",
            router_rate_add(&rt->rate429, h->now_ns(h), answered, limited));
}

static void on_log(void *self, struct sluice_req *r, void *state)
{
    struct router *rt = self;
    struct router_state *st = state;
    const struct sluice_host *h = rt->h;
    uint64_t total_ns = 0;
    observe_attempts(rt, r, st, &total_ns);
    if (!st->split)
        return;
    const char *sv[] = {st->split, st->variant};
    h->counter_add(h->metric_with(rt->requests, sv), 1);
    enum sluice_outcome o = h->resp_outcome(r);
    if (failed(o, h->resp_status(r)))
        h->counter_add(h->metric_with(rt->errors, sv), 1);
    if (o != SLUICE_OUTCOME_NONE)
        h->observe(h->metric_with(rt->latency, sv), (double)total_ns / 1e9);
    struct sluice_usage u = h->resp_usage(r);
    if (u.known) {
        h->counter_add(h->metric_with(rt->prompt_tokens, sv), u.prompt_tokens);
        h->counter_add(h->metric_with(rt->completion_tokens, sv),
                       u.completion_tokens);
    }
}

/* A retry or fallback the core sends elsewhere: the in-flight count follows
 * it when the new upstream is in the same pool (the core, not the pool,
 * picked it: the hook cannot reroute). */
static enum sluice_action on_attempt(void *self, struct sluice_req *r,
                                     void *state)
{
    struct router *rt = self;
    struct router_state *st = state;
    if (!st->held)
        return SLUICE_CONTINUE;
    struct sluice_str up = rt->h->req_upstream(r);
    if (up.len == strlen(st->held->name) &&
        memcmp(up.ptr, st->held->name, up.len) == 0)
        return SLUICE_CONTINUE;
    atomic_fetch_sub(&st->held->inflight, 1);
    st->held = NULL;
    for (size_t i = 0; i < st->pool->n; i++) {
        struct router_member *m = &st->pool->members[i];
        if (up.len == strlen(m->name) && memcmp(up.ptr, m->name, up.len) == 0) {
            atomic_fetch_add(&m->inflight, 1);
            st->held = m;
        }
    }
    return SLUICE_CONTINUE;
}

static void on_cleanup(void *self, struct sluice_req *r, void *state)
{
    (void)r;
    struct router *rt = self;
    struct router_state *st = state;
    if (st->counted)
        rt->h->health_set(rt->h, "router.in_flight",
                          (double)(atomic_fetch_sub(&rt->in_flight, 1) - 1));
    st->counted = false;
    if (st->held)
        atomic_fetch_sub(&st->held->inflight, 1);
    st->held = NULL;
}

static size_t status_json(void *self, char *buf, size_t cap)
{
    struct router *rt = self;
    size_t at = 0;
#define PUT(...)                                                               \
    do {                                                                       \
        int n_ = snprintf(buf + (at < cap ? at : cap),                         \
                          at < cap ? cap - at : 0, __VA_ARGS__);               \
        at += n_ > 0 ? (size_t)n_ : 0;                                         \
    } while (0)
    PUT("{\"pools\":{");
    for (size_t i = 0; i < rt->n_pools; i++) {
        struct router_pool *p = &rt->pools[i];
        PUT("%s\"%s\":[", i ? "," : "", p->model);
        for (size_t j = 0; j < p->n; j++) {
            struct router_member *m = &p->members[j];
            PUT("%s{\"upstream\":\"%s\",\"in_flight\":%lld,\"ewma_ms\":%.3f}",
                j ? "," : "", m->name, (long long)atomic_load(&m->inflight),
                (double)atomic_load(&m->ewma_ns) / 1e6);
        }
        PUT("]");
    }
    PUT("}}");
#undef PUT
    return at;
}

static const struct sluice_plugin router_plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "router",
    .version = "1.0.0",
    .summary = "model aliases, priority models, sticky weighted splits, load "
               "balancing around open breakers, token budgets per request type",
    .config = router_config_fields,
    .config_size = sizeof(struct router_config),
    .req_state_size = sizeof(struct router_state),
    .create = create,
    .destroy = destroy,
    .on_request = on_request,
    .on_log = on_log,
    .on_cleanup = on_cleanup,
    .on_attempt = on_attempt,
    .status_json = status_json,
};

SLUICE_PLUGIN_EXPORT(router_plugin)
