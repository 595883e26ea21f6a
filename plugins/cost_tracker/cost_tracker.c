/* cost_tracker: prices every request from its actual usage, attributes the
 * spend (tenant, user, key, model, upstream, feature), writes it to a
 * durable ledger, and enforces budgets that cannot be overspent: the worst
 * case is reserved at admission and settled when the answer ends. */
#include "cost_tracker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_money.h"
#include "ct_redis.h"
#include "ct_webhook.h"

#define TEXT(s) ((struct ct_text){(s).ptr, (s).len})

static void copy_str(char *dst, size_t cap, struct sluice_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

static struct sluice_str feature_of(const struct cost_tracker *ct,
                                    const struct sluice_req *r)
{
    struct sluice_str f = ct->h->var_get(r, ct->cfg.feature_var);
    if (!f.len && ct->cfg.feature_header && *ct->cfg.feature_header)
        f = ct->h->req_header(r, ct->cfg.feature_header);
    return f;
}

static struct sluice_str scope_value(const struct cost_tracker *ct,
                                     const struct sluice_req *r,
                                     enum ct_scope s)
{
    switch (s) {
    case CT_SCOPE_TENANT:
        return ct->h->req_identity(r, SLUICE_ID_TENANT);
    case CT_SCOPE_USER:
        return ct->h->req_identity(r, SLUICE_ID_USER);
    case CT_SCOPE_KEY:
        return ct->h->req_identity(r, SLUICE_ID_KEY);
    case CT_SCOPE_FEATURE:
        return feature_of(ct, r);
    default:
        return (struct sluice_str){"", 0};
    }
}

/* The budgets this request falls under. */
static void find_budgets(struct cost_tracker *ct, const struct sluice_req *r,
                         struct ct_req *st)
{
    for (size_t i = 0; i < ct->n_defs && st->n_refs < CT_MAX_REFS; i++) {
        const struct ct_budget_def *d = &ct->defs[i];
        struct sluice_str v = scope_value(ct, r, d->scope);
        if (d->scope != CT_SCOPE_GLOBAL && !v.len)
            continue;
        if (d->match &&
            (strlen(d->match) != v.len || memcmp(d->match, v.ptr, v.len)))
            continue;
        struct ct_entry *e = ct_budgets_entry(&ct->budgets, i, v.ptr, v.len);
        if (e)
            st->refs[st->n_refs++] = e;
    }
}

static const struct ct_price zero_price;

static const struct ct_price *price_of(struct cost_tracker *ct,
                                       const char *model)
{
    const struct ct_price *p =
        ct_prices_find(&ct->prices, model, strlen(model));
    if (p)
        return p;
    const char *v[] = {model};
    ct->h->counter_add(ct->h->metric_with(ct->m_unknown, v), 1);
    return &zero_price;
}

static unsigned discount(const struct cost_tracker *ct,
                         const struct sluice_req *r)
{
    return ct->cfg.batch_discount_for_batch_priority &&
                   ct->h->req_priority(r) == SLUICE_PRIO_BATCH
               ? ct->prices.batch_discount_percent
               : 0;
}

/* Past a budget's downgrade_at, a model with a cheaper one is rewritten. */
static void maybe_downgrade(struct cost_tracker *ct, struct sluice_req *r,
                            struct ct_req *st, int64_t now)
{
    const struct sluice_cfg_map *m = &ct->cfg.downgrade;
    for (size_t i = 0; i < m->count; i++) {
        if (strcmp(m->keys[i], st->model))
            continue;
        for (size_t j = 0; j < st->n_refs; j++) {
            if (!ct_wants_downgrade(&ct->budgets, st->refs[j], now))
                continue;
            const char *to = *SLUICE_CFG_VALUE(*m, const char *, i);
            if (ct->h->upstream_set_model(
                    r, (struct sluice_str){to, strlen(to)}) != SLUICE_OK)
                return;
            const char *v[] = {ct->defs[st->refs[j]->def].name};
            ct->h->counter_add(ct->h->metric_with(ct->m_downgraded, v), 1);
            ct->h->var_set(r, "cost.downgraded_by",
                           (struct sluice_str){v[0], strlen(v[0])});
            snprintf(st->model, sizeof st->model, "%s", to);
            return;
        }
        return;
    }
}

static enum sluice_action refuse(struct cost_tracker *ct, struct sluice_req *r,
                                 const struct ct_entry *e, uint64_t worst,
                                 int64_t now)
{
    const struct ct_budget_def *d = &ct->defs[e->def];
    struct ct_entry_view v =
        ct_entry_view(&ct->budgets, (struct ct_entry *)e, now);
    char limit[32], spent[32], need[32], scope[96], when[64], msg[512];
    int64_t end = ct_window_end_ms(d->period, now);

    ct_format_usd(v.limit, limit, sizeof limit);
    ct_format_usd(ct_add_sat(v.spent, v.reserved), spent, sizeof spent);
    ct_format_usd(worst, need, sizeof need);
    if (d->scope == CT_SCOPE_GLOBAL)
        snprintf(scope, sizeof scope, "global");
    else
        snprintf(scope, sizeof scope, "%s %.64s",
                 d->scope == CT_SCOPE_TENANT ? "tenant"
                 : d->scope == CT_SCOPE_USER ? "user"
                 : d->scope == CT_SCOPE_KEY  ? "key"
                                             : "feature",
                 e->value);
    if (end) {
        char day[32];
        ct_window_name(CT_DAILY, end, day, sizeof day);
        snprintf(when, sizeof when, "resets at %sT00:00:00Z", day);
    } else
        snprintf(when, sizeof when, "does not reset (total budget)");
    snprintf(msg, sizeof msg,
             "Budget '%s' (%s, %s, %s USD) is exhausted: %s USD spent or "
             "reserved, this request may cost up to %s USD. It %s.",
             d->name, scope,
             d->period == CT_DAILY     ? "daily"
             : d->period == CT_MONTHLY ? "monthly"
                                       : "total",
             limit, spent, need, when);
    const char *lv[] = {d->name};
    ct->h->counter_add(ct->h->metric_with(ct->m_refused, lv), 1);
    ct->h->var_set(r, "cost.refused_by",
                   (struct sluice_str){d->name, strlen(d->name)});
    return ct->h->reject(r, 429, "insufficient_quota", "budget_exceeded", msg,
                         end ? (uint64_t)(end - now) : 0);
}

static void ledger_reserve(struct cost_tracker *ct, struct sluice_req *r,
                           struct ct_req *st)
{
    const struct sluice_host *h = ct->h;
    struct sluice_str f = feature_of(ct, r);
    struct ct_ledger_row row = {
        .ts_ms = st->ts_ms,
        .request_id = TEXT(h->req_id(r)),
        .tenant = TEXT(h->req_identity(r, SLUICE_ID_TENANT)),
        .user = TEXT(h->req_identity(r, SLUICE_ID_USER)),
        .key = TEXT(h->req_identity(r, SLUICE_ID_KEY)),
        .feature = TEXT(f),
        .model = {st->model, strlen(st->model)},
        .upstream = TEXT(h->req_upstream(r)),
        .reserved = st->reserved,
        .streamed = h->req_stream(r),
    };
    st->ticket = h->wake_token(r);
    st->ledger_seq = ct_ledger_reserve_async(ct->ledger, &row, &st->ledger_id,
                                             h, st->ticket);
}

/* The reservation is held: its ledger row must be durable before the
 * upstream call, so an answer the provider served is never missing from
 * the ledger. The row joins the writer's next batch; the request waits
 * for that commit (woken by the writer). */
static enum sluice_action admitted(struct cost_tracker *ct,
                                   struct sluice_req *r, struct ct_req *st)
{
    st->active = true;
    st->phase = CT_PH_DONE;
    if (!ct->ledger)
        return SLUICE_CONTINUE;
    ledger_reserve(ct, r, st);
    if (!st->ledger_seq) { /* out of memory: go on without the row */
        ct->h->counter_add(ct->m_ledger_errors, 1);
        st->ledger_id = 0;
        return SLUICE_CONTINUE;
    }
    st->phase = CT_PH_LEDGER;
    return SLUICE_SUSPEND;
}

static enum sluice_action unavailable(const struct sluice_host *h,
                                      struct sluice_req *r)
{
    return h->reject(r, 503, "server_error", "budget_unavailable",
                     "The budget store is unavailable; retry later.",
                     RL_FAIL_CLOSED_RETRY_MS);
}

/* Redis failed or is down: decide locally (open) or refuse (closed). */
static enum sluice_action
redis_degraded(struct cost_tracker *ct, struct sluice_req *r, struct ct_req *st)
{
    st->phase = CT_PH_DONE;
    if (rl_backend_fail_closed(&ct->be))
        return unavailable(ct->h, r);
    rl_backend_count_fallback(&ct->be);
    int fail =
        ct_reserve(&ct->budgets, st->refs, st->n_refs, st->reserved, st->ts_ms);
    if (fail >= 0)
        return refuse(ct, r, st->refs[fail], st->reserved, st->ts_ms);
    return admitted(ct, r, st);
}

/* input tokens + (max_tokens or the default) at the model's prices. */
static uint64_t worst_case(struct cost_tracker *ct, struct sluice_req *r,
                           const char *model)
{
    const struct sluice_host *h = ct->h;
    struct sluice_str ep = h->req_endpoint(r);
    bool embeddings =
        ep.len >= 11 && !memcmp(ep.ptr + ep.len - 11, "/embeddings", 11);
    uint64_t out = embeddings ? 0 : h->req_max_tokens(r);
    if (!out && !embeddings)
        out = (uint64_t)ct->cfg.default_max_tokens;
    return ct_cost(price_of(ct, model), h->req_input_tokens(r), 0, out,
                   discount(ct, r));
}

static enum sluice_action ct_on_request(void *self, struct sluice_req *r,
                                        void *state)
{
    struct cost_tracker *ct = self;
    struct ct_req *st = state;
    const struct sluice_host *h = ct->h;

    if (st->phase == CT_PH_LEDGER) {
        if (ct_ledger_committed(ct->ledger, st->ledger_seq)) {
            st->phase = CT_PH_DONE;
            return SLUICE_CONTINUE;
        }
        /* A stale wake: the writer holds the first ticket, so poll. */
        h->resume_after(r, 1);
        return SLUICE_SUSPEND;
    }
    if (st->phase == CT_PH_REDIS) {
        if (st->call) { /* a stale wake: wait for the reply */
            st->ticket = h->wake_token(r);
            return SLUICE_SUSPEND;
        }
        int fail = ct_redis_reserve_result(ct, st);
        if (fail == -2) {
            rl_backend_count_error(&ct->be, h->req_worker(r));
            return redis_degraded(ct, r, st);
        }
        st->phase = CT_PH_DONE;
        if (fail >= 0)
            return refuse(ct, r, st->refs[fail], st->reserved, st->ts_ms);
        st->via_redis = true;
        return admitted(ct, r, st);
    }
    if (st->phase != CT_PH_NEW)
        return SLUICE_CONTINUE;
    st->ts_ms = h->wall_ms(h);
    h->counter_add(ct->m_requests, 1);
    copy_str(st->model, sizeof st->model, h->req_target_model(r));
    find_budgets(ct, r, st);
    maybe_downgrade(ct, r, st, st->ts_ms);

    st->reserved = worst_case(ct, r, st->model);

    if (st->n_refs && rl_backend_is_redis(&ct->be)) {
        if (!ct_redis_reserve(ct, r, st, st->reserved))
            return redis_degraded(ct, r, st);
        st->phase = CT_PH_REDIS;
        return SLUICE_SUSPEND;
    }
    int fail =
        ct_reserve(&ct->budgets, st->refs, st->n_refs, st->reserved, st->ts_ms);
    if (fail >= 0) {
        st->phase = CT_PH_DONE;
        return refuse(ct, r, st->refs[fail], st->reserved, st->ts_ms);
    }
    return admitted(ct, r, st);
}

/* A retry or fallback to a pricier model reserves the difference first,
 * so a fallback cannot overspend either. */
static enum sluice_action ct_on_attempt(void *self, struct sluice_req *r,
                                        void *state)
{
    struct cost_tracker *ct = self;
    struct ct_req *st = state;
    const struct sluice_host *h = ct->h;
    char model[sizeof st->model];

    if (st->phase == CT_PH_EXTRA_REDIS) {
        if (st->call) { /* a stale wake */
            st->ticket = h->wake_token(r);
            return SLUICE_SUSPEND;
        }
        st->phase = CT_PH_DONE;
        int fail = ct_redis_reserve_result(ct, st);
        if (fail == -2) /* no local share of a Redis reservation: refuse */
            return unavailable(h, r);
        if (fail >= 0)
            return refuse(ct, r, st->refs[fail], st->extra, h->wall_ms(h));
        st->reserved += st->extra;
        return SLUICE_CONTINUE;
    }
    if (!st->active)
        return SLUICE_CONTINUE;
    copy_str(model, sizeof model, h->req_target_model(r));
    if (!strcmp(model, st->model))
        return SLUICE_CONTINUE;
    uint64_t worst = worst_case(ct, r, model);
    snprintf(st->model, sizeof st->model, "%s", model);
    if (worst <= st->reserved || !st->n_refs)
        return SLUICE_CONTINUE;
    st->extra = worst - st->reserved;
    if (st->via_redis) {
        if (!ct_redis_reserve(ct, r, st, st->extra))
            return unavailable(h, r);
        st->phase = CT_PH_EXTRA_REDIS;
        return SLUICE_SUSPEND;
    }
    int fail = ct_reserve(&ct->budgets, st->refs, st->n_refs, st->extra,
                          h->wall_ms(h));
    if (fail >= 0)
        return refuse(ct, r, st->refs[fail], st->extra, h->wall_ms(h));
    st->reserved += st->extra;
    return SLUICE_CONTINUE;
}

static void add_cost_header(struct cost_tracker *ct, struct sluice_req *r,
                            uint64_t pico, const char *basis)
{
    char usd[32];
    size_t n = ct_format_usd(pico, usd, sizeof usd);
    if (ct->h->resp_add_header(r, "x-sluice-cost",
                               (struct sluice_str){usd, n}) == SLUICE_OK)
        ct->h->resp_add_header(r, "x-sluice-cost-basis",
                               (struct sluice_str){basis, strlen(basis)});
}

/* A stream's headers leave before its usage is known: it carries the
 * reservation, an upper bound of what it will cost. */
static enum sluice_action
ct_on_upstream_response(void *self, struct sluice_req *r, void *state)
{
    struct cost_tracker *ct = self;
    struct ct_req *st = state;
    int status = ct->h->resp_status(r);

    if (ct->cfg.cost_header && st->active && !st->header_sent &&
        ct->h->req_stream(r) && status >= 200 && status < 300) {
        add_cost_header(ct, r, st->reserved, "reserved");
        st->header_sent = true;
    }
    return SLUICE_CONTINUE;
}

void ct_publish(struct cost_tracker *ct, const struct ct_entry *e, int64_t now)
{
    const struct ct_budget_def *d = &ct->defs[e->def];
    struct ct_entry_view v =
        ct_entry_view(&ct->budgets, (struct ct_entry *)e, now);
    char name[200];
    ct_health_name(ct, e, name, sizeof name);
    ct->h->health_set(ct->h, name, v.ratio);
    const char *lv[] = {d->name, e->value};
    ct->h->gauge_set(ct->h->metric_with(ct->m_ratio, lv), v.ratio);
}

void ct_crossed(struct cost_tracker *ct, unsigned worker,
                const struct ct_crossing *c)
{
    const struct ct_budget_def *d = &ct->defs[c->e->def];
    char pct[16];
    snprintf(pct, sizeof pct, "%u", c->percent);
    const char *lv[] = {d->name, pct};
    ct->h->counter_add(ct->h->metric_with(ct->m_crossed, lv), 1);
    ct->h->log(ct->h, c->percent >= 100 ? SLUICE_LOG_ERROR : SLUICE_LOG_WARN,
               "budget %s%s%s crossed %u%% (used %.4f of the limit)", d->name,
               d->scope == CT_SCOPE_GLOBAL ? "" : " for ",
               d->scope == CT_SCOPE_GLOBAL ? "" : c->e->value, c->percent,
               c->ratio);
    ct_webhook_post(ct, worker, c, ct->h->wall_ms(ct->h));
}

static void ct_on_response(void *self, struct sluice_req *r, void *state)
{
    struct cost_tracker *ct = self;
    struct ct_req *st = state;
    const struct sluice_host *h = ct->h;
    int64_t now = h->wall_ms(h);
    struct sluice_usage u = h->resp_usage(r);
    int status = h->resp_status(r);
    uint64_t cost = 0;
    const char *how = "released";
    char model[128];
    struct sluice_attempt a;
    size_t n = h->resp_attempt_count(r);

    if (!st->active)
        return;
    snprintf(model, sizeof model, "%s", st->model);
    if (n && h->resp_attempt(r, n - 1, &a) && a.model.len)
        copy_str(model, sizeof model, a.model);
    if (u.known) {
        cost = ct_cost(price_of(ct, model), u.prompt_tokens, u.cached_tokens,
                       u.completion_tokens, discount(ct, r));
        how = "settled";
    } else if (status >= 200 && status < 300) {
        /* An answer without usage: what it cost is unknown, so the worst
         * case stays charged (never less than was spent). */
        cost = st->reserved;
        how = "charged";
    }
    st->active = false;
    struct ct_crossing cross[CT_MAX_REFS * CT_MAX_THRESHOLDS];
    size_t nc = 0;
    if (st->via_redis) /* crossings come with the reply */
        ct_redis_settle(ct, h->req_worker(r), st, cost);
    else
        nc = ct_settle(&ct->budgets, st->refs, st->n_refs, st->reserved, cost,
                       now, cross, sizeof cross / sizeof *cross);
    if (ct->ledger && st->ledger_id)
        ct_ledger_settle_async(ct->ledger, st->ledger_id, how, model,
                               u.prompt_tokens, u.cached_tokens,
                               u.completion_tokens, cost, now);
    if (cost) {
        struct sluice_str f = feature_of(ct, r);
        char tenant[65], user[65], key[65], feature[65], upstream[65];
        copy_str(tenant, sizeof tenant, h->req_identity(r, SLUICE_ID_TENANT));
        copy_str(user, sizeof user, h->req_identity(r, SLUICE_ID_USER));
        copy_str(key, sizeof key, h->req_identity(r, SLUICE_ID_KEY));
        copy_str(feature, sizeof feature, f);
        copy_str(upstream, sizeof upstream, h->req_upstream(r));
        const char *v1[] = {tenant, model, feature};
        const char *v2[] = {user, key};
        const char *v3[] = {upstream, model};
        h->counter_add(h->metric_with(ct->m_spend, v1), cost / 1000);
        h->counter_add(h->metric_with(ct->m_spend_upstream, v3), cost / 1000);
        h->counter_add(h->metric_with(ct->m_spend_user, v2), cost / 1000);
    }
    for (size_t i = 0; i < st->n_refs && !st->via_redis; i++)
        ct_publish(ct, st->refs[i], now);
    for (size_t i = 0; i < nc; i++)
        ct_crossed(ct, h->req_worker(r), &cross[i]);
    if (ct->cfg.cost_header && !st->header_sent && status)
        add_cost_header(ct, r, cost, u.known ? "usage" : "reserved");
}

/* However the request ended (rejected later in the pipeline, client gone
 * while suspended...), a reservation still held is given back. */
static void ct_on_cleanup(void *self, struct sluice_req *r, void *state)
{
    struct cost_tracker *ct = self;
    struct ct_req *st = state;
    ct_redis_cancel(st); /* gone while Redis was deciding */
    if (!st->active)
        return;
    st->active = false;
    if (st->via_redis)
        ct_redis_settle(ct, ct->h->req_worker(r), st, 0);
    else
        ct_settle(&ct->budgets, st->refs, st->n_refs, st->reserved, 0,
                  ct->h->wall_ms(ct->h), NULL, 0);
    if (ct->ledger && st->ledger_id)
        ct_ledger_settle_async(ct->ledger, st->ledger_id, "released", st->model,
                               0, 0, 0, 0, ct->h->wall_ms(ct->h));
}

static int ct_thread_init(void *self, unsigned worker)
{
    return ct_redis_thread_init(self, worker);
}

static void ct_thread_fini(void *self, unsigned worker)
{
    ct_redis_thread_fini(self, worker);
    ct_webhook_thread_fini(self, worker);
}

static const struct sluice_plugin cost_tracker_plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "cost_tracker",
    .version = "1.0.0",
    .summary = "spend per request from actual usage, durable ledger, budgets "
               "that cannot be overspent",
    .config = ct_config_fields,
    .config_size = sizeof(struct ct_config),
    .req_state_size = sizeof(struct ct_req),
    .create = ct_create,
    .destroy = ct_destroy,
    .thread_init = ct_thread_init,
    .thread_fini = ct_thread_fini,
    .on_request = ct_on_request,
    .on_upstream_response = ct_on_upstream_response,
    .on_response = ct_on_response,
    .on_cleanup = ct_on_cleanup,
    .on_attempt = ct_on_attempt,
    .status_json = ct_status_json,
};

SLUICE_PLUGIN_EXPORT(cost_tracker_plugin)
