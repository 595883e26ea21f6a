/* Budgets in Redis: reserve and settle scripts, replies mirrored locally. */
#include "ct_redis.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cost_tracker.h"
#include "ct_money.h"

/* KEYS: one per budget. ARGV[1]: amount; ARGV[1+i]: limit of key i;
 * ARGV[1+n+i]: expiry (unix ms, 0: none). All or nothing. Returns
 * {0, spent_1, ...} when reserved, {i, spent_i, reserved_i} when key i
 * refuses. Comparisons are Lua doubles: exact below 2^53 pico-USD
 * (9007 USD) per budget window, off by at most a few pico-USD above. */
static const char reserve_script[] =
    "local amt, n = tonumber(ARGV[1]), #KEYS\n"
    "local spent = {}\n"
    "for i = 1, n do\n"
    "  local f = redis.call('HMGET', KEYS[i], 's', 'r')\n"
    "  local s, r = tonumber(f[1] or '0'), tonumber(f[2] or '0')\n"
    "  if s + r + amt > tonumber(ARGV[1 + i]) then\n"
    "    return {i, f[1] or '0', f[2] or '0'}\n"
    "  end\n"
    "  spent[i] = f[1] or '0'\n"
    "end\n"
    "local out = {0}\n"
    "for i = 1, n do\n"
    "  redis.call('HINCRBY', KEYS[i], 'r', ARGV[1])\n"
    "  local e = tonumber(ARGV[1 + n + i])\n"
    "  if e > 0 then redis.call('PEXPIREAT', KEYS[i], e) end\n"
    "  out[i + 1] = spent[i]\n"
    "end\n"
    "return out\n";

/* KEYS: the budgets reserved on. ARGV[1]: minus the reservation;
 * ARGV[2]: the actual cost. Integers throughout (HINCRBY). Returns the
 * new spent of each key, as text. */
static const char settle_script[] =
    "local out = {}\n"
    "for i = 1, #KEYS do\n"
    "  if redis.call('HINCRBY', KEYS[i], 'r', ARGV[1]) < 0 then\n"
    "    redis.call('HSET', KEYS[i], 'r', 0)\n"
    "  end\n"
    "  out[i] = tostring(redis.call('HINCRBY', KEYS[i], 's', ARGV[2]))\n"
    "end\n"
    "return out\n";

const char *const ct_redis_scripts[2] = {reserve_script, settle_script};

/* A settlement whose reply has not come; freed by the reply or when the
 * worker leaves (the client then drops its callbacks). */
struct pending {
    struct pending *prev, *next;
    struct cost_tracker *ct;
    unsigned worker;
    uint64_t actual;
    size_t n;
    struct ct_entry *refs[CT_MAX_REFS];
};

struct args {
    const char *argv[2 * CT_MAX_REFS + 3];
    size_t len[2 * CT_MAX_REFS + 3];
    char keys[CT_MAX_REFS][384];
    char nums[CT_MAX_REFS + 2][24];
    char exp[CT_MAX_REFS][24];
};

static size_t key_of(const struct cost_tracker *ct, const struct ct_entry *e,
                     int64_t ts_ms, char *buf, size_t cap)
{
    const struct ct_budget_def *d = &ct->defs[e->def];
    char window[32];
    ct_window_name(d->period, ts_ms, window, sizeof window);
    int n = snprintf(buf, cap, "%s{cost}:%s:%s:%s", ct->be.key_prefix, d->name,
                     e->value, window);
    return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

static size_t num(struct args *a, size_t i, size_t slot, const char *fmt,
                  long long v)
{
    int k = snprintf(a->nums[slot], sizeof a->nums[slot], fmt, v);
    a->argv[i] = a->nums[slot];
    a->len[i] = (size_t)k;
    return i + 1;
}

static void on_reserve(void *arg, enum rl_redis_result res,
                       const redisReply *reply)
{
    struct ct_req *st = arg;
    st->call = NULL;
    st->redis_fail = 0;
    st->redis_refused = 0;
    if (res != RL_REDIS_OK || !reply || reply->type != REDIS_REPLY_ARRAY ||
        !reply->elements || reply->element[0]->type != REDIS_REPLY_INTEGER) {
        st->redis_fail = 1;
    } else {
        long long i = reply->element[0]->integer;
        if (i > 0 && (size_t)i <= st->n_refs && reply->elements >= 3) {
            st->redis_refused = (int)i;
            st->mirror[0] = (uint64_t)strtoull(
                reply->element[1]->str ? reply->element[1]->str : "0", NULL,
                10);
        } else if (i == 0 && reply->elements == st->n_refs + 1) {
            for (size_t k = 0; k < st->n_refs; k++) {
                const redisReply *e = reply->element[k + 1];
                st->mirror[k] = e->type == REDIS_REPLY_STRING
                                    ? (uint64_t)strtoull(e->str, NULL, 10)
                                    : 0;
            }
        } else
            st->redis_fail = 1;
    }
    st->ct->h->wake(st->ct->h, st->ticket);
}

bool ct_redis_reserve(struct cost_tracker *ct, struct sluice_req *r,
                      struct ct_req *st, uint64_t amount)
{
    struct rl_redis *c = rl_backend_client(&ct->be, ct->h->req_worker(r));
    struct args *a;
    size_t n = st->n_refs, i = 0;

    if (!c || !(a = malloc(sizeof *a)))
        return false;
    for (size_t k = 0; k < n; k++) {
        a->len[i] =
            key_of(ct, st->refs[k], st->ts_ms, a->keys[k], sizeof a->keys[k]);
        a->argv[i++] = a->keys[k];
    }
    i = num(a, i, 0, "%lld", (long long)amount);
    for (size_t k = 0; k < n; k++) {
        uint64_t limit = ct->defs[st->refs[k]->def].limit;
        i = num(a, i, k + 1, "%lld",
                (long long)(limit > INT64_MAX ? INT64_MAX : limit));
    }
    for (size_t k = 0; k < n; k++) {
        const struct ct_budget_def *d = &ct->defs[st->refs[k]->def];
        int64_t end = ct_window_end_ms(d->period, st->ts_ms);
        int len = snprintf(a->exp[k], sizeof a->exp[k], "%lld",
                           (long long)(end ? end + 86400000ll : 0));
        a->argv[i] = a->exp[k];
        a->len[i++] = (size_t)len;
    }
    st->ct = ct;
    st->ticket = ct->h->wake_token(r);
    st->call = rl_redis_eval(c, 0, n, i, a->argv, a->len, on_reserve, st);
    free(a);
    if (!st->call)
        rl_backend_count_error(&ct->be, ct->h->req_worker(r));
    return st->call != NULL;
}

int ct_redis_reserve_result(struct cost_tracker *ct, struct ct_req *st)
{
    if (st->redis_fail)
        return -2;
    if (st->redis_refused) {
        size_t k = (size_t)st->redis_refused - 1;
        ct_budgets_mirror(&ct->budgets, st->refs[k], st->mirror[0], st->ts_ms);
        return (int)k;
    }
    for (size_t k = 0; k < st->n_refs; k++)
        ct_budgets_mirror(&ct->budgets, st->refs[k], st->mirror[k], st->ts_ms);
    return -1;
}

static void on_settle(void *arg, enum rl_redis_result res,
                      const redisReply *reply)
{
    struct pending *p = arg;
    struct cost_tracker *ct = p->ct;
    struct ct_worker *w = &ct->workers[p->worker];
    int64_t now = ct->h->wall_ms(ct->h);

    if (res == RL_REDIS_OK && reply && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements == p->n) {
        for (size_t k = 0; k < p->n; k++) {
            const redisReply *e = reply->element[k];
            if (e->type != REDIS_REPLY_STRING)
                continue;
            uint64_t now_spent = (uint64_t)strtoull(e->str, NULL, 10);
            uint64_t old = now_spent > p->actual ? now_spent - p->actual : 0;
            struct ct_crossing cross[CT_MAX_THRESHOLDS];
            size_t nc = ct_crossings(&ct->defs[p->refs[k]->def], p->refs[k],
                                     old, now_spent, cross, CT_MAX_THRESHOLDS);
            ct_budgets_mirror(&ct->budgets, p->refs[k], now_spent, now);
            ct_publish(ct, p->refs[k], now);
            for (size_t j = 0; j < nc; j++)
                ct_crossed(ct, p->worker, &cross[j]);
        }
    } else if (res != RL_REDIS_OK || !reply)
        rl_backend_count_error(&ct->be, p->worker);
    if (p->prev)
        p->prev->next = p->next;
    else
        w->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    free(p);
}

void ct_redis_settle(struct cost_tracker *ct, unsigned worker,
                     struct ct_req *st, uint64_t actual)
{
    struct rl_redis *c = rl_backend_client(&ct->be, worker);
    struct args *a = malloc(sizeof *a);
    struct pending *p = calloc(1, sizeof *p);
    size_t n = st->n_refs, i = 0;

    if (!c || !a || !p) {
        /* The reservation stays held in Redis until its key expires; the
         * ledger has the cost. */
        rl_backend_count_error(&ct->be, worker);
        free(a);
        free(p);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        a->len[i] =
            key_of(ct, st->refs[k], st->ts_ms, a->keys[k], sizeof a->keys[k]);
        a->argv[i++] = a->keys[k];
        p->refs[k] = st->refs[k];
    }
    i = num(a, i, 0, "-%lld", (long long)st->reserved);
    i = num(a, i, 1, "%lld", (long long)actual);
    p->ct = ct;
    p->worker = worker;
    p->actual = actual;
    p->n = n;
    if (!rl_redis_eval(c, 1, n, i, a->argv, a->len, on_settle, p)) {
        rl_backend_count_error(&ct->be, worker);
        free(p);
    } else {
        struct ct_worker *w = &ct->workers[worker];
        p->next = w->pending;
        if (w->pending)
            w->pending->prev = p;
        w->pending = p;
    }
    free(a);
}

void ct_redis_cancel(struct ct_req *st)
{
    if (st->call) {
        rl_redis_cancel(st->call);
        st->call = NULL;
    }
}

int ct_redis_thread_init(struct cost_tracker *ct, unsigned worker)
{
    return rl_backend_thread_init(&ct->be, worker);
}

void ct_redis_thread_fini(struct cost_tracker *ct, unsigned worker)
{
    rl_backend_thread_fini(&ct->be, worker);
    struct ct_worker *w = &ct->workers[worker];
    while (w->pending) {
        struct pending *p = w->pending;
        w->pending = p->next;
        free(p);
    }
}
