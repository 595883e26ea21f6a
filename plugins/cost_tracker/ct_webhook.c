/* Webhook deliveries: one heap record per crossing, on its worker's list. */
#include "ct_webhook.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cost_tracker.h"
#include "ct_money.h"

struct delivery {
    struct delivery *prev, *next;
    struct cost_tracker *ct;
    unsigned worker;
    unsigned attempt;
    size_t len;
    char body[];
};

static void unlink_free(struct delivery *d)
{
    struct ct_worker *w = &d->ct->workers[d->worker];
    if (d->prev)
        d->prev->next = d->next;
    else
        w->hooks = d->next;
    if (d->next)
        d->next->prev = d->prev;
    free(d);
}

static void send_one(struct delivery *d);

static void retry_due(void *arg, unsigned worker)
{
    (void)worker;
    send_one(arg);
}

static void on_done(void *arg, const struct sluice_call_result *res)
{
    struct delivery *d = arg;
    struct cost_tracker *ct = d->ct;
    const struct sluice_host *h = ct->h;

    if (res->status >= 200 && res->status < 300) {
        h->counter_add(ct->m_webhook_ok, 1);
        unlink_free(d);
        return;
    }
    /* CLIENT_GONE: the instance is leaving this worker. */
    if (res->outcome == SLUICE_OUTCOME_CLIENT_GONE ||
        d->attempt > (unsigned)ct->cfg.webhook_retries) {
        h->counter_add(ct->m_webhook_failed, 1);
        h->log(h, SLUICE_LOG_WARN,
               "budget webhook: gave up after %u attempt(s) (last status %d)",
               d->attempt, res->status);
        unlink_free(d);
        return;
    }
    uint64_t delay = (uint64_t)ct->cfg.webhook_retry_ms << (d->attempt - 1);
    if (h->timer_start(h, d->worker, delay, 0, retry_due, d, NULL) != SLUICE_OK)
        unlink_free(d);
}

static void send_one(struct delivery *d)
{
    struct cost_tracker *ct = d->ct;
    const struct sluice_host *h = ct->h;
    d->attempt++;
    if (h->call_upstream(h, NULL, ct->cfg.webhook_upstream,
                         ct->cfg.webhook_path,
                         (struct sluice_str){d->body, d->len}, NULL, on_done, d,
                         NULL) != SLUICE_OK) {
        h->counter_add(ct->m_webhook_failed, 1);
        unlink_free(d);
    }
}

void ct_webhook_post(struct cost_tracker *ct, unsigned worker,
                     const struct ct_crossing *c, int64_t now_ms)
{
    const struct sluice_host *h = ct->h;
    const struct ct_budget_def *def = &ct->defs[c->e->def];
    static const char *const scopes[] = {"global", "tenant", "user", "key",
                                         "feature"};
    char limit[32], spent[32], window[32], value[2 * CT_VALUE_MAX + 1];
    size_t k = 0;

    if (!ct->cfg.webhook_upstream || !*ct->cfg.webhook_upstream ||
        !SLUICE_HOST_HAS(h, call_upstream) || !SLUICE_HOST_HAS(h, timer_start))
        return;
    for (const char *p = c->e->value; *p && k + 2 < sizeof value; p++) {
        if (*p == '"' || *p == '\\')
            value[k++] = '\\';
        value[k++] = (unsigned char)*p < 0x20 ? '_' : *p;
    }
    value[k] = '\0';
    ct_format_usd(def->limit, limit, sizeof limit);
    ct_format_usd((uint64_t)(c->ratio * (double)def->limit), spent,
                  sizeof spent);
    ct_window_name(def->period, now_ms, window, sizeof window);
    char body[768];
    int n =
        snprintf(body, sizeof body,
                 "{\"type\":\"budget.threshold_crossed\",\"budget\":\"%s\","
                 "\"scope\":\"%s\",\"value\":\"%s\",\"window\":\"%s\","
                 "\"threshold\":%u,\"used_ratio\":%.6f,\"spent_usd\":\"%s\","
                 "\"limit_usd\":\"%s\",\"ts_ms\":%lld}",
                 def->name, scopes[def->scope], value, window, c->percent,
                 c->ratio, spent, limit, (long long)now_ms);
    if (n < 0 || (size_t)n >= sizeof body)
        return;
    struct delivery *d = calloc(1, sizeof *d + (size_t)n + 1);
    if (!d)
        return;
    d->ct = ct;
    d->worker = worker;
    d->len = (size_t)n;
    memcpy(d->body, body, (size_t)n + 1);
    struct ct_worker *w = &ct->workers[worker];
    d->next = w->hooks;
    if (w->hooks)
        w->hooks->prev = d;
    w->hooks = d;
    send_one(d);
}

void ct_webhook_thread_fini(struct cost_tracker *ct, unsigned worker)
{
    struct ct_worker *w = &ct->workers[worker];
    while (w->hooks) {
        struct delivery *d = w->hooks;
        w->hooks = d->next;
        free(d);
    }
}
