/* cost_tracker instances: create/destroy, spend loaded from the ledger,
 * and the admin status. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cost_tracker.h"
#include "ct_money.h"
#include "ct_redis.h"

static const char *const l_spend[] = {"tenant", "model", "feature"};
static const char *const l_upstream[] = {"upstream", "model"};
static const char *const l_user[] = {"user", "key"};
static const char *const l_model[] = {"model"};
static const char *const l_budget[] = {"budget"};
static const char *const l_cross[] = {"budget", "threshold"};
static const char *const l_ratio[] = {"budget", "scope"};

static void make_metrics(struct cost_tracker *ct)
{
    const struct sluice_host *h = ct->h;
    ct->m_requests = h->counter(h, "sluice_cost_tracker_requests_total",
                                "requests priced by the cost tracker");
    ct->m_ledger_errors =
        h->counter(h, "sluice_cost_tracker_ledger_errors_total",
                   "ledger writes that failed (spend kept in memory only)");
    ct->m_orphaned = h->counter(
        h, "sluice_cost_tracker_ledger_orphaned_total",
        "reservations left by a process that died, charged at worst case");
    ct->m_webhook_ok =
        h->counter(h, "sluice_cost_tracker_webhook_delivered_total",
                   "threshold crossings the webhook accepted (2xx)");
    ct->m_webhook_failed =
        h->counter(h, "sluice_cost_tracker_webhook_failed_total",
                   "threshold crossings given up after the retries");
    ct->m_spend = h->counter_vec(
        h, "sluice_cost_tracker_spend_nanousd_total",
        "spend in nano-USD (the ledger holds exact pico-USD)", l_spend, 3, 15);
    ct->m_spend_upstream = h->counter_vec(
        h, "sluice_cost_tracker_spend_by_upstream_nanousd_total",
        "spend in nano-USD by upstream and model", l_upstream, 2, 63);
    ct->m_spend_user =
        h->counter_vec(h, "sluice_cost_tracker_spend_by_user_nanousd_total",
                       "spend in nano-USD by user and key hash", l_user, 2, 63);
    ct->m_unknown = h->counter_vec(
        h, "sluice_cost_tracker_unknown_model_total",
        "requests for a model without a price, counted at zero cost", l_model,
        1, 64);
    ct->m_refused =
        h->counter_vec(h, "sluice_cost_tracker_budget_refused_total",
                       "requests refused by a budget", l_budget, 1, 64);
    ct->m_downgraded = h->counter_vec(
        h, "sluice_cost_tracker_budget_downgraded_total",
        "requests moved to a cheaper model by a budget", l_budget, 1, 64);
    ct->m_crossed = h->counter_vec(
        h, "sluice_cost_tracker_budget_threshold_crossed_total",
        "alert thresholds crossed (once per window)", l_cross, 2, 63);
    ct->m_ratio = h->gauge_vec(h, "sluice_cost_tracker_budget_used_ratio",
                               "settled spend / limit in the current window",
                               l_ratio, 2, 63);
}

struct load_ctx {
    struct cost_tracker *ct;
    int64_t now;
};

/* One charged ledger row counts in every budget whose current window
 * contains it. */
static void load_row(void *arg, int64_t ts_ms, const char *tenant,
                     const char *user, const char *key, const char *feature,
                     uint64_t cost)
{
    struct load_ctx *lc = arg;
    struct cost_tracker *ct = lc->ct;
    for (size_t i = 0; i < ct->n_defs; i++) {
        const struct ct_budget_def *d = &ct->defs[i];
        const char *v = d->scope == CT_SCOPE_TENANT    ? tenant
                        : d->scope == CT_SCOPE_USER    ? user
                        : d->scope == CT_SCOPE_KEY     ? key
                        : d->scope == CT_SCOPE_FEATURE ? feature
                                                       : "";
        if (d->scope != CT_SCOPE_GLOBAL && !*v)
            continue;
        if (d->match && strcmp(d->match, v))
            continue;
        if (ct_window_of(d->period, ts_ms) != ct_window_of(d->period, lc->now))
            continue;
        struct ct_entry *e = ct_budgets_entry(&ct->budgets, i, v, strlen(v));
        if (e)
            ct_budgets_load(&ct->budgets, e, cost, lc->now);
    }
}

void ct_health_name(const struct cost_tracker *ct, const struct ct_entry *e,
                    char *buf, size_t cap)
{
    const struct ct_budget_def *d = &ct->defs[e->def];
    if (d->scope == CT_SCOPE_GLOBAL || d->match)
        snprintf(buf, cap, "budget.%s.used_ratio", d->name);
    else
        snprintf(buf, cap, "budget.%s.%s.used_ratio", d->name, e->value);
}

static void publish_entry(void *arg, const struct ct_entry *e,
                          const struct ct_entry_view *v)
{
    struct cost_tracker *ct = arg;
    char name[200];
    ct_health_name(ct, e, name, sizeof name);
    ct->h->health_set(ct->h, name, v->ratio);
}

static int load_spend(struct cost_tracker *ct, struct sluice_error *err)
{
    struct load_ctx lc = {ct, ct->h->wall_ms(ct->h)};
    int64_t since = lc.now;
    for (size_t i = 0; i < ct->n_defs; i++) {
        int64_t s = ct_window_start_ms(ct->defs[i].period, lc.now);
        if (s < since)
            since = s;
    }
    if (ct_ledger_scan(ct->ledger, since, load_row, &lc)) {
        snprintf(err->message, sizeof err->message,
                 "ledger %.100s: cannot read the spend", ct->cfg.ledger_path);
        return -1;
    }
    ct_budgets_each(&ct->budgets, lc.now, publish_entry, ct);
    return 0;
}

int ct_create(const struct sluice_host *h, const void *config,
              struct sluice_str raw_json, void **self, struct sluice_error *err)
{
    struct cost_tracker *ct = calloc(1, sizeof *ct);
    (void)raw_json;
    if (!ct) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    ct->h = h;
    ct->cfg = *(const struct ct_config *)config;
    /* Labelled metrics and on_cleanup (reservations released however a
     * request ends) are SDK 1.1. */
    if (!SLUICE_HOST_HAS(h, metric_with)) {
        snprintf(err->message, sizeof err->message,
                 "cost_tracker needs an SDK 1.1 core (labelled metrics, "
                 "on_cleanup)");
        free(ct);
        return -1;
    }
    if (ct_setup(ct, err))
        goto fail;
    make_metrics(ct);
    ct->workers = calloc(h->worker_count(h) ? h->worker_count(h) : 1,
                         sizeof *ct->workers);
    if (!ct->workers) {
        snprintf(err->message, sizeof err->message, "out of memory");
        goto fail;
    }
    /* Every cost_tracker shares its budget keys (they carry the budget's
     * name): the default prefix is sluice:cost_tracker:budgets:. */
    if (rl_backend_init(&ct->be, h, "cost_tracker", "cost_tracker", "budgets",
                        &ct->cfg.store, ct_redis_scripts, 2, err))
        goto fail;
    if (ct->cfg.ledger_path && *ct->cfg.ledger_path) {
        int64_t orphaned = 0;
        char msg[200];
        ct->ledger =
            ct_shared_ledger(ct->cfg.ledger_path, &orphaned, msg, sizeof msg);
        if (!ct->ledger) {
            snprintf(err->message, sizeof err->message, "ledger_path: %.200s",
                     msg);
            goto fail;
        }
        if (orphaned > 0) {
            h->counter_add(ct->m_orphaned, (uint64_t)orphaned);
            h->log(h, SLUICE_LOG_WARN,
                   "ledger: %lld reservation(s) of an earlier process that "
                   "ended mid-request, charged at their worst case",
                   (long long)orphaned);
        }
        /* A reload: the previous generation's queued settlements count. */
        ct_ledger_flush(ct->ledger);
        /* With Redis the shared spend comes from Redis replies. */
        if (!rl_backend_is_redis(&ct->be) && load_spend(ct, err))
            goto fail;
    }
    *self = ct;
    return 0;
fail:
    ct_destroy(ct);
    return -1;
}

void ct_destroy(void *self)
{
    struct cost_tracker *ct = self;
    if (!ct)
        return;
    if (ct->ledger) {
        /* Queued writes may wake through this instance's host. */
        ct_ledger_flush(ct->ledger);
        ct_shared_ledger_put(ct->ledger);
    }
    rl_backend_fini(&ct->be);
    free(ct->workers);
    ct_teardown(ct);
    free(ct);
}

struct status_ctx {
    struct cost_tracker *ct;
    char *buf;
    size_t cap, len, n;
    int64_t now;
};

static void put(struct status_ctx *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(struct status_ctx *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->len < s->cap ? s->buf + s->len : NULL,
                      s->len < s->cap ? s->cap - s->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        s->len += (size_t)n;
}

static void status_entry(void *arg, const struct ct_entry *e,
                         const struct ct_entry_view *v)
{
    struct status_ctx *s = arg;
    const struct ct_budget_def *d = &s->ct->defs[e->def];
    char spent[32], reserved[32], limit[32], window[32],
        value[2 * CT_VALUE_MAX + 1];
    size_t k = 0;

    ct_format_usd(v->spent, spent, sizeof spent);
    ct_format_usd(v->reserved, reserved, sizeof reserved);
    ct_format_usd(v->limit, limit, sizeof limit);
    ct_window_name(d->period, s->now, window, sizeof window);
    for (const char *p = e->value; *p && k + 2 < sizeof value; p++) {
        if (*p == '"' || *p == '\\')
            value[k++] = '\\';
        value[k++] = (unsigned char)*p < 0x20 ? '_' : *p;
    }
    value[k] = '\0';
    put(s,
        "%s{\"budget\":\"%s\",\"scope\":\"%s\",\"window\":\"%s\","
        "\"spent_usd\":\"%s\",\"reserved_usd\":\"%s\",\"limit_usd\":\"%s\","
        "\"used_ratio\":%.6f}",
        s->n++ ? "," : "", d->name, value, window, spent, reserved, limit,
        v->ratio);
}

size_t ct_status_json(void *self, char *buf, size_t cap)
{
    struct cost_tracker *ct = self;
    struct status_ctx s = {ct, buf, cap, 0, 0, ct->h->wall_ms(ct->h)};
    if (cap)
        buf[0] = '\0';
    put(&s,
        "{\"ledger\":\"%s\",\"ledger_write_errors\":%llu,\"backend\":"
        "\"%s\",\"models_priced\":%zu,\"budgets\":[",
        ct->ledger ? "sqlite" : "memory",
        ct->ledger ? (unsigned long long)ct_ledger_write_errors(ct->ledger)
                   : 0ull,
        rl_backend_is_redis(&ct->be) ? "redis" : "local", ct->prices.n);
    ct_budgets_each(&ct->budgets, s.now, status_entry, &s);
    put(&s, "]}");
    return s.len;
}
