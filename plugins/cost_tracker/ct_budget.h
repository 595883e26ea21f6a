/* Budgets: per scope value (a tenant, a user, a key, a feature tag, or
 * everything) and window, the settled spend and the reservations of the
 * requests in flight, in pico-USD. Admission reserves a request's worst
 * case against every budget it falls under, all or nothing, under one
 * lock, so concurrent requests cannot overspend; settlement swaps the
 * reservation for the actual cost and reports each threshold the spend
 * crossed (exactly once per window: old < t <= new). Thread-safe. */
#ifndef CT_BUDGET_H
#define CT_BUDGET_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ct_window.h"

enum ct_scope {
    CT_SCOPE_GLOBAL = 0,
    CT_SCOPE_TENANT = 1,
    CT_SCOPE_USER = 2,
    CT_SCOPE_KEY = 3,
    CT_SCOPE_FEATURE = 4,
};
#define CT_MAX_THRESHOLDS 8
#define CT_MAX_REFS 16 /* budgets one request can fall under */
#define CT_VALUE_MAX 64

struct ct_budget_def {
    const char *name;
    enum ct_scope scope;
    enum ct_period period;
    const char *match; /* NULL: every value has its own budget */
    uint64_t limit;    /* pico-USD */
    unsigned thresholds[CT_MAX_THRESHOLDS]; /* percent, ascending */
    size_t n_thresholds;
    unsigned downgrade_at; /* percent; 0: never */
};

struct ct_entry {
    struct ct_entry *next;
    size_t def;
    int64_t window;
    uint64_t spent, reserved;
    char value[CT_VALUE_MAX + 1];
};

struct ct_budgets {
    const struct ct_budget_def *defs;
    size_t n_defs;
    pthread_mutex_t mu;
    struct ct_entry **buckets;
    size_t n_buckets, n_entries, max_entries;
};

/* A threshold crossed by a settlement. */
struct ct_crossing {
    const struct ct_entry *e;
    unsigned percent;
    double ratio; /* spent / limit after the settlement */
};

int ct_budgets_init(struct ct_budgets *b, const struct ct_budget_def *defs,
                    size_t n_defs, size_t max_entries);
void ct_budgets_free(struct ct_budgets *b);

/* The entry of budget `def` for `value` (created, empty, when new; past
 * max_entries new values share the value "other"). Stable until free. */
struct ct_entry *ct_budgets_entry(struct ct_budgets *b, size_t def,
                                  const char *value, size_t len);

/* Reserves `amount` on every entry, or on none: returns -1 when all fit,
 * else the index in refs of the first budget it does not fit. */
int ct_reserve(struct ct_budgets *b, struct ct_entry *const *refs, size_t n,
               uint64_t amount, int64_t wall_ms);
/* Gives back `reserved` and charges `actual` (0 to release). Writes the
 * thresholds crossed into out (at most cap) and returns their number. */
size_t ct_settle(struct ct_budgets *b, struct ct_entry *const *refs, size_t n,
                 uint64_t reserved, uint64_t actual, int64_t wall_ms,
                 struct ct_crossing *out, size_t cap);
/* Thresholds of d crossed by going from `old` to `now_spent`. */
size_t ct_crossings(const struct ct_budget_def *d, const struct ct_entry *e,
                    uint64_t old, uint64_t now_spent, struct ct_crossing *out,
                    size_t cap);
/* Sets the spend another store (Redis) reported for the window of
 * wall_ms. */
void ct_budgets_mirror(struct ct_budgets *b, struct ct_entry *e, uint64_t spent,
                       int64_t wall_ms);
/* Adds spend recorded in an earlier run (startup, from the ledger). */
void ct_budgets_load(struct ct_budgets *b, struct ct_entry *e, uint64_t amount,
                     int64_t wall_ms);

/* Snapshot of an entry in the window of wall_ms. */
struct ct_entry_view {
    uint64_t spent, reserved, limit;
    double ratio;
};
struct ct_entry_view ct_entry_view(struct ct_budgets *b, struct ct_entry *e,
                                   int64_t wall_ms);
/* True when the settled spend reached the entry's downgrade_at. */
bool ct_wants_downgrade(struct ct_budgets *b, struct ct_entry *e,
                        int64_t wall_ms);
/* Calls fn for every entry, under the lock (fn must not call back). */
void ct_budgets_each(struct ct_budgets *b, int64_t wall_ms,
                     void (*fn)(void *arg, const struct ct_entry *e,
                                const struct ct_entry_view *v),
                     void *arg);

#endif
