/* Budget arithmetic under one mutex; entries in a chained hash table. */
#include "ct_budget.h"

#include <stdlib.h>
#include <string.h>

#include "ct_money.h"

int ct_budgets_init(struct ct_budgets *b, const struct ct_budget_def *defs,
                    size_t n_defs, size_t max_entries)
{
    memset(b, 0, sizeof *b);
    b->defs = defs;
    b->n_defs = n_defs;
    b->max_entries = max_entries ? max_entries : 1;
    b->n_buckets = 1024;
    b->buckets = calloc(b->n_buckets, sizeof *b->buckets);
    if (!b->buckets)
        return -1;
    pthread_mutex_init(&b->mu, NULL);
    return 0;
}

void ct_budgets_free(struct ct_budgets *b)
{
    if (!b->buckets)
        return;
    for (size_t i = 0; i < b->n_buckets; i++)
        for (struct ct_entry *e = b->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(b->buckets);
    pthread_mutex_destroy(&b->mu);
    b->buckets = NULL;
}

static size_t hash(size_t def, const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull ^ def;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)h;
}

static struct ct_entry *find_locked(struct ct_budgets *b, size_t def,
                                    const char *value, size_t len)
{
    size_t i = hash(def, value, len) % b->n_buckets;
    for (struct ct_entry *e = b->buckets[i]; e; e = e->next)
        if (e->def == def && strlen(e->value) == len &&
            !memcmp(e->value, value, len))
            return e;
    if (b->n_entries >= b->max_entries && strcmp(value, "other"))
        return find_locked(b, def, "other", 5);
    struct ct_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->def = def;
    memcpy(e->value, value, len);
    e->window = INT64_MIN;
    e->next = b->buckets[i];
    b->buckets[i] = e;
    b->n_entries++;
    return e;
}

struct ct_entry *ct_budgets_entry(struct ct_budgets *b, size_t def,
                                  const char *value, size_t len)
{
    if (len > CT_VALUE_MAX)
        len = CT_VALUE_MAX;
    pthread_mutex_lock(&b->mu);
    struct ct_entry *e = find_locked(b, def, value, len);
    pthread_mutex_unlock(&b->mu);
    return e;
}

/* A new window starts with no spend; reservations stay (they belong to
 * requests still in flight and are given back when those end). */
static void roll(struct ct_budgets *b, struct ct_entry *e, int64_t wall_ms)
{
    int64_t w = ct_window_of(b->defs[e->def].period, wall_ms);
    if (e->window != w) {
        e->window = w;
        e->spent = 0;
    }
}

int ct_reserve(struct ct_budgets *b, struct ct_entry *const *refs, size_t n,
               uint64_t amount, int64_t wall_ms)
{
    int fail = -1;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < n && fail < 0; i++) {
        roll(b, refs[i], wall_ms);
        uint64_t used = ct_add_sat(refs[i]->spent, refs[i]->reserved);
        if (ct_add_sat(used, amount) > b->defs[refs[i]->def].limit)
            fail = (int)i;
    }
    if (fail < 0)
        for (size_t i = 0; i < n; i++)
            refs[i]->reserved = ct_add_sat(refs[i]->reserved, amount);
    pthread_mutex_unlock(&b->mu);
    return fail;
}

static double ratio(uint64_t spent, uint64_t limit)
{
    return limit ? (double)spent / (double)limit : 1.0;
}

size_t ct_crossings(const struct ct_budget_def *d, const struct ct_entry *e,
                    uint64_t old, uint64_t now_spent, struct ct_crossing *out,
                    size_t cap)
{
    size_t k = 0;
    /* Crossed t%: old * 100 < t * limit <= new * 100, in 128 bits. */
    for (size_t j = 0; j < d->n_thresholds && k < cap; j++) {
        unsigned __int128 line = (unsigned __int128)d->limit * d->thresholds[j];
        if ((unsigned __int128)old * 100 < line &&
            line <= (unsigned __int128)now_spent * 100)
            out[k++] = (struct ct_crossing){e, d->thresholds[j],
                                            ratio(now_spent, d->limit)};
    }
    return k;
}

size_t ct_settle(struct ct_budgets *b, struct ct_entry *const *refs, size_t n,
                 uint64_t reserved, uint64_t actual, int64_t wall_ms,
                 struct ct_crossing *out, size_t cap)
{
    size_t k = 0;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < n; i++) {
        struct ct_entry *e = refs[i];
        const struct ct_budget_def *d = &b->defs[e->def];
        e->reserved = e->reserved > reserved ? e->reserved - reserved : 0;
        roll(b, e, wall_ms);
        uint64_t old = e->spent;
        e->spent = ct_add_sat(e->spent, actual);
        if (out)
            k += ct_crossings(d, e, old, e->spent, out + k, cap - k);
    }
    pthread_mutex_unlock(&b->mu);
    return k;
}

void ct_budgets_mirror(struct ct_budgets *b, struct ct_entry *e, uint64_t spent,
                       int64_t wall_ms)
{
    pthread_mutex_lock(&b->mu);
    roll(b, e, wall_ms);
    e->spent = spent;
    pthread_mutex_unlock(&b->mu);
}

void ct_budgets_load(struct ct_budgets *b, struct ct_entry *e, uint64_t amount,
                     int64_t wall_ms)
{
    pthread_mutex_lock(&b->mu);
    roll(b, e, wall_ms);
    e->spent = ct_add_sat(e->spent, amount);
    pthread_mutex_unlock(&b->mu);
}

static struct ct_entry_view view_locked(struct ct_budgets *b,
                                        struct ct_entry *e, int64_t wall_ms)
{
    roll(b, e, wall_ms);
    uint64_t limit = b->defs[e->def].limit;
    return (struct ct_entry_view){e->spent, e->reserved, limit,
                                  ratio(e->spent, limit)};
}

struct ct_entry_view ct_entry_view(struct ct_budgets *b, struct ct_entry *e,
                                   int64_t wall_ms)
{
    pthread_mutex_lock(&b->mu);
    struct ct_entry_view v = view_locked(b, e, wall_ms);
    pthread_mutex_unlock(&b->mu);
    return v;
}

bool ct_wants_downgrade(struct ct_budgets *b, struct ct_entry *e,
                        int64_t wall_ms)
{
    const struct ct_budget_def *d = &b->defs[e->def];
    if (!d->downgrade_at)
        return false;
    pthread_mutex_lock(&b->mu);
    roll(b, e, wall_ms);
    bool yes = (unsigned __int128)e->spent * 100 >=
               (unsigned __int128)d->limit * d->downgrade_at;
    pthread_mutex_unlock(&b->mu);
    return yes;
}

void ct_budgets_each(struct ct_budgets *b, int64_t wall_ms,
                     void (*fn)(void *arg, const struct ct_entry *e,
                                const struct ct_entry_view *v),
                     void *arg)
{
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->n_buckets; i++)
        for (struct ct_entry *e = b->buckets[i]; e; e = e->next) {
            struct ct_entry_view v = view_locked(b, e, wall_ms);
            fn(arg, e, &v);
        }
    pthread_mutex_unlock(&b->mu);
}
