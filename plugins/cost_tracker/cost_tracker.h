/* cost_tracker: the instance, its config and per-request state, shared by
 * the plugin's files. */
#ifndef COST_TRACKER_H
#define COST_TRACKER_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/rl_backend.h"
#include "ct_budget.h"
#include "ct_ledger.h"
#include "ct_prices.h"
#include "sluice/host.h"
#include "sluice/plugin.h"

struct ct_budget_cfg {
    const char *name;
    int scope;  /* enum ct_scope */
    int period; /* enum ct_period */
    const char *limit_usd;
    const char *match;
    struct sluice_cfg_list thresholds; /* int64_t percent */
    int64_t downgrade_at;
};

struct ct_config {
    const char *ledger_path;
    const char *price_file;
    const char *prices;              /* JSON text of {"model": {...}} */
    struct sluice_cfg_list budgets;  /* of struct ct_budget_cfg */
    struct sluice_cfg_map downgrade; /* model -> cheaper model */
    int64_t default_max_tokens;
    const char *feature_header;
    const char *feature_var;
    bool cost_header;
    bool batch_discount_for_batch_priority;
    int64_t max_scopes;
    const char *webhook_upstream;
    const char *webhook_path;
    int64_t webhook_retries;
    int64_t webhook_retry_ms;
    struct rl_backend_cfg store;
};

struct ct_worker {
    struct pending *pending; /* Redis settlements awaiting their reply */
    struct delivery *hooks;  /* webhook posts not delivered yet */
};

struct cost_tracker {
    const struct sluice_host *h;
    struct ct_config cfg;
    struct ct_prices prices;
    struct ct_budget_def *defs;
    size_t n_defs;
    struct ct_budgets budgets;
    struct ct_ledger *ledger; /* NULL: memory only */
    struct rl_backend be;
    struct ct_worker *workers;
    struct sluice_metric_vec *m_spend, *m_spend_upstream, *m_spend_user,
        *m_unknown, *m_refused, *m_downgraded, *m_crossed, *m_ratio;
    struct sluice_metric *m_ledger_errors, *m_orphaned, *m_requests,
        *m_webhook_ok, *m_webhook_failed;
};

enum ct_phase {
    CT_PH_NEW = 0,
    CT_PH_REDIS,
    CT_PH_LEDGER,
    CT_PH_DONE,
    CT_PH_EXTRA_REDIS, /* a retry's extra reservation in Redis */
};

/* Per request (req_state_size). */
struct ct_req {
    struct cost_tracker *ct;
    struct ct_entry *refs[CT_MAX_REFS];
    size_t n_refs;
    int64_t ledger_id;
    uint64_t ledger_seq; /* the batch the reservation row commits in */
    int64_t ts_ms;       /* admission: the windows the request counts in */
    uint64_t reserved;
    uint64_t extra; /* more reserved for a pricier retry (on_attempt) */
    struct rl_redis_call *call; /* reservation in flight */
    sluice_wake_t ticket;
    uint64_t mirror[CT_MAX_REFS]; /* spend Redis reported */
    int redis_refused;            /* 1-based budget that refused */
    uint8_t phase;
    bool redis_fail;
    bool via_redis;   /* the reservation is held in Redis */
    bool active;      /* holds a reservation */
    bool header_sent; /* x-sluice-cost went out with a stream's headers */
    char model[128];
};

/* ct_config.c */
extern const struct sluice_cfg_field ct_config_fields[];
/* Prices and budget definitions from the validated config. */
int ct_setup(struct cost_tracker *ct, struct sluice_error *err);
void ct_teardown(struct cost_tracker *ct);

/* ct_instance.c: create/destroy (prices, budgets, metrics, the ledger and
 * the spend it holds) and the admin status. */
int ct_create(const struct sluice_host *h, const void *config,
              struct sluice_str raw_json, void **self,
              struct sluice_error *err);
void ct_destroy(void *self);
size_t ct_status_json(void *self, char *buf, size_t cap);
/* "budget.<name>.used_ratio", or "budget.<name>.<value>.used_ratio" for a
 * budget every value has its own of. */
void ct_health_name(const struct cost_tracker *ct, const struct ct_entry *e,
                    char *buf, size_t cap);

/* cost_tracker.c: health + gauge of an entry; a crossing's log + metric. */
void ct_publish(struct cost_tracker *ct, const struct ct_entry *e, int64_t now);
void ct_crossed(struct cost_tracker *ct, unsigned worker,
                const struct ct_crossing *c);

/* ct_shared.c: one ledger per file per process, shared across reloads;
 * rows orphaned by an earlier process are recovered on first open. */
struct ct_ledger *ct_shared_ledger(const char *path, int64_t *orphaned,
                                   char *err, size_t errlen);
void ct_shared_ledger_put(struct ct_ledger *l);

#endif
