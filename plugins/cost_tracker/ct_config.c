/* cost_tracker config: the key table, prices and budget definitions. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cost_tracker.h"
#include "ct_money.h"

#define OFF(f) offsetof(struct ct_config, f)
#define BOFF(f) offsetof(struct ct_budget_cfg, f)
#define RANGE (SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX)

static const char *const scope_choices[] = {"global", "tenant",  "user",
                                            "key",    "feature", NULL};
static const char *const period_choices[] = {"daily", "monthly", "total", NULL};

static const struct sluice_cfg_field percent_elem = {
    .type = SLUICE_CFG_INT, .flags = RANGE, .min = 1, .max = 1000};

static const struct sluice_cfg_field budget_keys[] = {
    {.name = "name",
     .type = SLUICE_CFG_STRING,
     .flags = SLUICE_CFG_REQUIRED,
     .offset = BOFF(name),
     .help = "names the budget in errors, health, metrics and the ledger"},
    {.name = "scope",
     .type = SLUICE_CFG_ENUM,
     .default_value = "\"tenant\"",
     .choices = scope_choices,
     .offset = BOFF(scope),
     .help = "one budget per tenant, user, key, feature tag, or one global"},
    {.name = "period",
     .type = SLUICE_CFG_ENUM,
     .default_value = "\"monthly\"",
     .choices = period_choices,
     .offset = BOFF(period),
     .help = "daily and monthly reset at 00:00 UTC; total never resets"},
    {.name = "limit_usd",
     .type = SLUICE_CFG_STRING,
     .flags = SLUICE_CFG_REQUIRED | SLUICE_CFG_NUMBER_AS_TEXT,
     .offset = BOFF(limit_usd),
     .help = "the budget in USD, a decimal string (\"25.50\") or integer"},
    {.name = "match",
     .type = SLUICE_CFG_STRING,
     .offset = BOFF(match),
     .help = "only this tenant/user/key/feature (absent: each has its own)"},
    {.name = "thresholds",
     .type = SLUICE_CFG_ARRAY,
     .default_value = "[50, 75, 90, 100]",
     .offset = BOFF(thresholds),
     .help = "alert thresholds in percent of the limit, each fires once per "
             "window",
     .elem = &percent_elem,
     .max_items = CT_MAX_THRESHOLDS},
    {.name = "downgrade_at",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "0",
     .max = 100,
     .offset = BOFF(downgrade_at),
     .help = "from this percent of spend on, models in `downgrade` are "
             "rewritten to their cheaper one (0: never)"},
    {0},
};
static const struct sluice_cfg_field budget_elem = {
    .type = SLUICE_CFG_OBJECT,
    .fields = budget_keys,
    .size = sizeof(struct ct_budget_cfg)};
static const struct sluice_cfg_field model_elem = {.type = SLUICE_CFG_STRING};

const struct sluice_cfg_field ct_config_fields[] = {
    {.name = "ledger_path",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"sluice-cost.sqlite\"",
     .offset = OFF(ledger_path),
     .help = "SQLite ledger (WAL); \"\": memory only, spend lost on restart"},
    {.name = "price_file",
     .type = SLUICE_CFG_STRING,
     .offset = OFF(price_file),
     .help = "a price file like prices/openai.json, merged over the shipped "
             "table"},
    {.name = "prices",
     .type = SLUICE_CFG_JSON_TEXT,
     .offset = OFF(prices),
     .help = "{\"model\": {\"input\": \"2.50\", \"cached_input\": \"1.25\", "
             "\"output\": \"10\"}} in USD per 1M tokens, merged last"},
    {.name = "budgets",
     .type = SLUICE_CFG_ARRAY,
     .offset = OFF(budgets),
     .help = "budgets: [{name, scope, period, limit_usd, match, thresholds, "
             "downgrade_at}]",
     .elem = &budget_elem,
     .max_items = 64},
    {.name = "downgrade",
     .type = SLUICE_CFG_MAP,
     .offset = OFF(downgrade),
     .help = "model -> cheaper model, applied past a budget's downgrade_at",
     .elem = &model_elem},
    {.name = "default_max_tokens",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "4096",
     .max = 10000000,
     .offset = OFF(default_max_tokens),
     .help = "completion tokens reserved when a request sets no max_tokens"},
    {.name = "feature_header",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"x-sluice-feature\"",
     .offset = OFF(feature_header),
     .help = "request header carrying the feature tag"},
    {.name = "feature_var",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"cost.feature\"",
     .offset = OFF(feature_var),
     .help = "policy var carrying the feature tag (wins over the header)"},
    {.name = "cost_header",
     .type = SLUICE_CFG_BOOL,
     .default_value = "true",
     .offset = OFF(cost_header),
     .help = "add x-sluice-cost (USD) and x-sluice-cost-basis to responses"},
    {.name = "batch_discount_for_batch_priority",
     .type = SLUICE_CFG_BOOL,
     .default_value = "false",
     .offset = OFF(batch_discount_for_batch_priority),
     .help = "price requests of priority batch with the batch discount"},
    {.name = "max_scopes",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "100000",
     .min = 1,
     .max = 100000000,
     .offset = OFF(max_scopes),
     .help = "most budget entries (budget x value) in memory; later values "
             "share the entry \"other\""},
    {.name = "webhook_upstream",
     .type = SLUICE_CFG_STRING,
     .offset = OFF(webhook_upstream),
     .help = "upstream (from the gateway's upstreams) that threshold "
             "crossings are POSTed to; absent: no webhook"},
    {.name = "webhook_path",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"/v1/budget-alerts\"",
     .offset = OFF(webhook_path),
     .help = "path of the POST; /v1 stands for the upstream's base_url"},
    {.name = "webhook_retries",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "3",
     .max = 20,
     .offset = OFF(webhook_retries),
     .help = "attempts after the first one that did not get a 2xx"},
    {.name = "webhook_retry_ms",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "1000",
     .min = 1,
     .max = 600000,
     .offset = OFF(webhook_retry_ms),
     .help = "delay before the first retry, doubling after each"},
    RL_BACKEND_FIELDS(struct ct_config, store),
    {0},
};

static int setup_prices(struct cost_tracker *ct, struct sluice_error *err)
{
    const struct ct_config *c = &ct->cfg;
    char msg[200];

    if (ct_prices_merge(&ct->prices, ct_default_prices, true, msg,
                        sizeof msg)) {
        snprintf(err->message, sizeof err->message, "shipped prices: %.200s",
                 msg);
        return -1;
    }
    if (c->price_file && *c->price_file) {
        FILE *f = fopen(c->price_file, "rb");
        char *text = NULL;
        size_t len = 0;
        if (f) {
            fseek(f, 0, SEEK_END);
            long n = ftell(f);
            fseek(f, 0, SEEK_SET);
            text = n >= 0 ? calloc(1, (size_t)n + 1) : NULL;
            len = text ? fread(text, 1, (size_t)n, f) : 0;
            fclose(f);
        }
        int rc = text
                     ? ct_prices_merge(&ct->prices, text, true, msg, sizeof msg)
                     : -1;
        if (!text)
            snprintf(msg, sizeof msg, "cannot read the file");
        free(text);
        (void)len;
        if (rc) {
            snprintf(err->message, sizeof err->message,
                     "price_file %.80s: %.150s", c->price_file, msg);
            return -1;
        }
    }
    if (c->prices && strcmp(c->prices, "null") &&
        ct_prices_merge(&ct->prices, c->prices, false, msg, sizeof msg)) {
        snprintf(err->message, sizeof err->message, "%.200s", msg);
        return -1;
    }
    return 0;
}

static int setup_budget(struct ct_budget_def *d, const struct ct_budget_cfg *b,
                        size_t i, struct sluice_error *err)
{
    d->name = b->name;
    d->scope = (enum ct_scope)b->scope;
    d->period = (enum ct_period)b->period;
    d->match = b->match && *b->match ? b->match : NULL;
    d->downgrade_at = (unsigned)b->downgrade_at;
    if (!ct_parse_decimal(b->limit_usd, strlen(b->limit_usd), 12, &d->limit) ||
        !d->limit) {
        snprintf(err->message, sizeof err->message,
                 "budgets[%zu].limit_usd: must be a positive USD amount "
                 "(\"25.50\")",
                 i);
        return -1;
    }
    for (size_t j = 0; j < b->thresholds.count; j++) {
        d->thresholds[j] =
            (unsigned)*SLUICE_CFG_ITEM(b->thresholds, int64_t, j);
        if (j && d->thresholds[j] <= d->thresholds[j - 1]) {
            snprintf(err->message, sizeof err->message,
                     "budgets[%zu].thresholds: must be ascending", i);
            return -1;
        }
    }
    d->n_thresholds = b->thresholds.count;
    for (const char *p = d->name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')) {
            snprintf(err->message, sizeof err->message,
                     "budgets[%zu].name: letters, digits, '_' and '-' only "
                     "(it is part of health and metric names)",
                     i);
            return -1;
        }
    return 0;
}

int ct_setup(struct cost_tracker *ct, struct sluice_error *err)
{
    const struct sluice_cfg_list *bl = &ct->cfg.budgets;

    if (setup_prices(ct, err))
        return -1;
    ct->defs = calloc(bl->count ? bl->count : 1, sizeof *ct->defs);
    if (!ct->defs) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < bl->count; i++) {
        if (setup_budget(&ct->defs[i],
                         SLUICE_CFG_ITEM(*bl, struct ct_budget_cfg, i), i, err))
            return -1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(ct->defs[j].name, ct->defs[i].name)) {
                snprintf(err->message, sizeof err->message,
                         "budgets[%zu].name: \"%.64s\" is used twice", i,
                         ct->defs[i].name);
                return -1;
            }
    }
    ct->n_defs = bl->count;
    if (ct_budgets_init(&ct->budgets, ct->defs, ct->n_defs,
                        (size_t)ct->cfg.max_scopes)) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    return 0;
}

void ct_teardown(struct cost_tracker *ct)
{
    ct_budgets_free(&ct->budgets);
    free(ct->defs);
    ct_prices_free(&ct->prices);
}
