#include "sw_core.h"

#include <stdlib.h>
#include <string.h>

__extension__ typedef unsigned __int128 u128;

/* ---- exact: a ring of admission times ---- */

static uint64_t at(const struct sw_ring *s, uint32_t i)
{
    return s->ts[(s->head + i) % s->cap];
}

/* Re-lays the ring out in a new array of `cap` entries, oldest first. */
static bool resize(struct sw_ring *s, uint32_t cap)
{
    uint64_t *ts = malloc((size_t)cap * sizeof *ts);
    if (!ts)
        return false;
    for (uint32_t i = 0; i < s->len; i++)
        ts[i] = at(s, i);
    free(s->ts);
    s->ts = ts;
    s->cap = cap;
    s->head = 0;
    return true;
}

static void prune(struct sw_ring *s, uint64_t window_ns, uint64_t now)
{
    while (s->len && at(s, 0) + window_ns <= now) {
        s->head = (s->head + 1) % s->cap;
        s->len--;
    }
    /* Give memory back when a busy key quietens down. */
    if (s->len == 0 && s->cap) {
        free(s->ts);
        memset(s, 0, sizeof *s);
    } else if (s->cap > 8 && s->len < s->cap / 4) {
        resize(s, s->cap / 2);
    }
}

static bool push(struct sw_ring *s, uint64_t t, uint64_t max_entries)
{
    if (s->len == s->cap) {
        uint64_t cap = s->cap ? (uint64_t)s->cap * 2 : 4;
        if (cap > max_entries)
            cap = max_entries;
        if (cap <= s->cap || !resize(s, (uint32_t)cap))
            return false;
    }
    s->ts[(s->head + s->len) % s->cap] = t;
    s->len++;
    return true;
}

void sw_exact_take(struct sw_ring *s, uint64_t limit, uint64_t window_ns,
                   uint64_t now, uint64_t allowance_ns, struct sw_decision *d)
{
    memset(d, 0, sizeof *d);
    prune(s, window_ns, now);
    /* The earliest time t >= now at which the window (t - W, t] holds
     * fewer than N entries: when the N-th newest has left it. */
    uint64_t t = now;
    if (s->len >= limit) {
        uint64_t edge = at(s, s->len - (uint32_t)limit) + window_ns;
        if (edge > t)
            t = edge;
    }
    d->wait_ns = t - now;
    if (d->wait_ns == 0)
        d->verdict = SW_ALLOW;
    else if (d->wait_ns <= allowance_ns && s->len < 2 * limit)
        d->verdict = SW_WAIT; /* at most one window of reservations */
    else
        d->verdict = SW_DENY;
    if (d->verdict != SW_DENY) {
        /* Keep the ring sorted even when another worker's cached clock was
         * a little ahead (nginx-style clamp): time never runs backwards
         * for a key. */
        uint64_t newest = s->len ? at(s, s->len - 1) : 0;
        d->slot = t > newest ? t : newest;
        if (!push(s, d->slot, allowance_ns ? 2 * limit : limit)) {
            d->verdict = SW_ALLOW; /* out of memory: admit, unrecorded */
            d->slot = 0;
        }
    }
    d->remaining = s->len < limit ? limit - s->len : 0;
    d->reset_ns = s->len ? at(s, s->len - 1) + window_ns - now : 0;
}

void sw_exact_release(struct sw_ring *s, uint64_t slot)
{
    /* Reservations sit at the new end: search from there. */
    for (uint32_t i = s->len; i-- > 0;) {
        if (at(s, i) == slot) {
            for (uint32_t j = i; j + 1 < s->len; j++)
                s->ts[(s->head + j) % s->cap] = at(s, j + 1);
            s->len--;
            return;
        }
        if (at(s, i) < slot)
            return;
    }
}

uint64_t sw_exact_idle_at(const struct sw_ring *s, uint64_t window_ns)
{
    return s->len ? at(s, s->len - 1) + window_ns : 0;
}

void sw_ring_fini(void *ring)
{
    struct sw_ring *s = ring;
    free(s->ts);
    memset(s, 0, sizeof *s);
}

/* ---- approximate: two fixed windows, the older one weighted ---- */

void sw_approx_take(struct sw_counter *s, uint64_t limit, uint64_t window_ns,
                    uint64_t now, uint64_t allowance_ns, struct sw_decision *d)
{
    uint64_t idx = now / window_ns;
    memset(d, 0, sizeof *d);
    if (idx < s->window) {
        idx = s->window; /* a worker's clock a little behind: clamp */
        now = idx * window_ns;
    } else if (idx > s->window) {
        s->prev = idx == s->window + 1 ? s->curr : 0;
        s->curr = 0;
        s->window = idx;
    }
    uint64_t e = now - idx * window_ns; /* into the current window */
    /* estimate = prev * (W - e) / W + curr; admit while estimate + 1 <= N,
     * compared in units of 1/W to stay exact. */
    u128 budget = (u128)limit * window_ns;
    u128 used = (u128)s->prev * (window_ns - e) + (u128)s->curr * window_ns;
    if (used + window_ns <= budget) {
        s->curr++;
        used += window_ns;
        d->verdict = SW_ALLOW;
    } else {
        /* When will prev's weight have dropped enough? */
        uint64_t wait;
        if (s->curr + 1 <= limit && s->prev) {
            u128 room = (u128)(limit - s->curr - 1) * window_ns;
            uint64_t cover = (uint64_t)(room / s->prev); /* W - e' max */
            wait = window_ns - cover - e;
        } else {
            /* Only the next window helps: there prev' = curr. */
            u128 room = (u128)(limit - 1) * window_ns;
            uint64_t cover = s->curr ? (uint64_t)(room / s->curr) : window_ns;
            if (cover > window_ns)
                cover = window_ns;
            wait = (window_ns - e) + (window_ns - cover);
        }
        d->wait_ns = wait ? wait : 1;
        d->verdict = d->wait_ns <= allowance_ns ? SW_WAIT : SW_DENY;
    }
    d->remaining = used < budget ? (uint64_t)((budget - used) / window_ns) : 0;
    if (s->curr)
        d->reset_ns = (idx + 2) * window_ns - now;
    else if (s->prev)
        d->reset_ns = (idx + 1) * window_ns - now;
}

uint64_t sw_approx_idle_at(const struct sw_counter *s, uint64_t window_ns)
{
    if (!s->curr && !s->prev)
        return 0;
    return (s->window + 2) * window_ns;
}
