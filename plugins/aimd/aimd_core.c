#include "aimd_core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S 1e9

void aimd_key_init(struct aimd_key *k, const struct aimd_params *p)
{
    memset(k, 0, sizeof *k);
    k->limit = p->init_limit;
    k->rate = p->init_rate;
    k->ready = true;
}

void aimd_key_fini(void *key)
{
    struct aimd_key *k = key;
    free(k->q);
    k->q = NULL;
}

uint32_t aimd_cap(const struct aimd_key *k, const struct aimd_params *p)
{
    if (!p->by_concurrency)
        return UINT32_MAX;
    double c = floor(k->limit);
    return c < 1 ? 1 : (uint32_t)c;
}

bool aimd_key_quiet(const struct aimd_key *k)
{
    return !k->in_flight && !k->q_len && !k->paced;
}

bool aimd_can_start(const struct aimd_key *k, const struct aimd_params *p,
                    uint64_t now)
{
    if (!p->by_concurrency)
        return true;
    return k->q_len == 0 && k->in_flight < aimd_cap(k, p) &&
           now >= k->pause_until_ns;
}

static struct aimd_waiter *slot_at(struct aimd_key *k, uint32_t i)
{
    return &k->q[(k->q_head + i) % k->q_cap];
}

bool aimd_queue_push(struct aimd_key *k, const struct aimd_waiter *w,
                     uint32_t max_queue)
{
    if (k->q_len >= max_queue)
        return false;
    if (k->q_len == k->q_cap) {
        uint32_t cap = k->q_cap ? k->q_cap * 2 : 8;
        if (cap > max_queue)
            cap = max_queue;
        struct aimd_waiter *q = malloc((size_t)cap * sizeof *q);
        if (!q)
            return false;
        for (uint32_t i = 0; i < k->q_len; i++)
            q[i] = *slot_at(k, i);
        free(k->q);
        k->q = q;
        k->q_cap = cap;
        k->q_head = 0;
    }
    *slot_at(k, k->q_len) = *w;
    k->q_len++;
    return true;
}

static void drop_at(struct aimd_key *k, uint32_t i)
{
    for (; i + 1 < k->q_len; i++)
        *slot_at(k, i) = *slot_at(k, i + 1);
    k->q_len--;
    if (k->q_len == 0 && k->q_cap > 64) { /* a burst is over: shrink */
        free(k->q);
        k->q = NULL;
        k->q_cap = 0;
        k->q_head = 0;
    }
}

bool aimd_queue_remove(struct aimd_key *k, const struct aimd_req *req)
{
    for (uint32_t i = 0; i < k->q_len; i++) {
        if (slot_at(k, i)->req == req) {
            drop_at(k, i);
            return true;
        }
    }
    return false;
}

size_t aimd_dispatch(struct aimd_key *k, const struct aimd_params *p,
                     uint64_t now, void (*grant)(struct aimd_req *),
                     sluice_wake_t *out, size_t max)
{
    size_t n = 0;
    while (n < max && k->q_len && k->in_flight < aimd_cap(k, p) &&
           now >= k->pause_until_ns) {
        struct aimd_waiter w = *slot_at(k, 0);
        k->q_head = (k->q_head + 1) % k->q_cap;
        k->q_len--;
        k->in_flight++;
        grant(w.req);
        out[n++] = w.ticket;
    }
    return n;
}

size_t aimd_expired(struct aimd_key *k, uint64_t now, uint32_t worker,
                    sluice_wake_t *out, size_t max)
{
    size_t n = 0;
    for (uint32_t i = 0; i < k->q_len && n < max; i++) {
        struct aimd_waiter *w = slot_at(k, i);
        if (w->deadline_ns <= now && !w->woken_late && w->worker == worker) {
            w->woken_late = true;
            out[n++] = w->ticket;
        }
    }
    return n;
}

uint64_t aimd_interval(const struct aimd_key *k, const struct aimd_params *p,
                       uint64_t now)
{
    uint64_t iv = p->by_rate ? (uint64_t)(NS_PER_S / k->rate) : 0;
    if (now < k->hint_until_ns && k->hint_interval_ns > iv)
        iv = k->hint_interval_ns;
    return iv;
}

uint64_t aimd_next_start(const struct aimd_key *k, const struct aimd_params *p,
                         uint64_t now)
{
    uint64_t start = now;
    if (aimd_interval(k, p, now) && k->next_start_ns > start)
        start = k->next_start_ns;
    if (k->pause_until_ns > start)
        start = k->pause_until_ns;
    return start;
}

void aimd_commit_start(struct aimd_key *k, const struct aimd_params *p,
                       uint64_t now, uint64_t start)
{
    k->next_start_ns = start + aimd_interval(k, p, now);
    k->last_active_ns = now;
}

void aimd_success(struct aimd_key *k, const struct aimd_params *p, bool busy)
{
    if (!busy)
        return; /* an idle limit proves nothing: do not let it drift up */
    if (p->by_concurrency) {
        k->limit += p->increase / (k->limit > 1 ? k->limit : 1);
        if (k->limit > p->max_limit)
            k->limit = p->max_limit;
    }
    if (p->by_rate) {
        k->rate += p->increase / (k->rate > 1 ? k->rate : 1);
        if (k->rate > p->max_rate)
            k->rate = p->max_rate;
    }
}

bool aimd_overload(struct aimd_key *k, const struct aimd_params *p,
                   uint32_t epoch, uint64_t now, uint64_t retry_after_ns)
{
    if (retry_after_ns && now + retry_after_ns > k->pause_until_ns)
        k->pause_until_ns = now + retry_after_ns;
    /* Requests admitted before the last decrease report the same
     * congestion: one cut per round, not one per refused request. */
    if (epoch != k->epoch)
        return false;
    k->epoch++;
    k->limit *= p->factor;
    if (k->limit < p->min_limit)
        k->limit = p->min_limit;
    k->rate *= p->factor;
    if (k->rate < p->min_rate)
        k->rate = p->min_rate;
    return true;
}

bool aimd_provider_hint(struct aimd_key *k, const struct aimd_params *p,
                        uint64_t now, uint64_t limit, uint64_t remaining,
                        uint64_t reset_ns, double unit_tokens)
{
    if (limit && (double)remaining >= p->low_water * (double)limit)
        return false;
    if (!limit && remaining > 0)
        return false; /* no way to tell how close the edge is */
    /* The provider refills (limit - remaining) in reset_ns: one unit takes
     * reset / (limit - remaining); one request takes unit_tokens units. */
    uint64_t missing = limit > remaining ? limit - remaining : 1;
    double per_request = (double)reset_ns / (double)missing *
                         (unit_tokens > 1 ? unit_tokens : 1);
    if (per_request > (double)reset_ns)
        per_request = (double)reset_ns;
    uint64_t iv = (uint64_t)per_request;
    if (iv > k->hint_interval_ns || now >= k->hint_until_ns)
        k->hint_interval_ns = iv;
    if (now + reset_ns > k->hint_until_ns)
        k->hint_until_ns = now + reset_ns;
    if ((double)remaining < (unit_tokens > 1 ? unit_tokens : 1) &&
        now + iv > k->pause_until_ns)
        k->pause_until_ns = now + iv; /* empty: wait for the next unit */
    return true;
}
