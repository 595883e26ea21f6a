#include "breaker_fsm.h"

#include <stdio.h>
#include <string.h>

#define NS_PER_MS 1000000ull

const char *breaker_state_name(enum breaker_state s)
{
    switch (s) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    case BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "?";
}

static void window_clear(struct breaker_window *w)
{
    memset(w->total, 0, sizeof w->total);
    memset(w->failed, 0, sizeof w->failed);
    w->sum_total = 0;
    w->sum_failed = 0;
}

/* Drops the buckets that fell out of the window since the last call. */
static void window_advance(struct breaker_window *w, uint64_t now)
{
    uint64_t abs = now / w->bucket_ns;

    if (abs <= w->head)
        return;
    if (abs - w->head >= w->nbuckets) {
        window_clear(w);
    } else {
        for (uint64_t i = w->head + 1; i <= abs; i++) {
            uint32_t slot = (uint32_t)(i % w->nbuckets);
            w->sum_total -= w->total[slot];
            w->sum_failed -= w->failed[slot];
            w->total[slot] = 0;
            w->failed[slot] = 0;
        }
    }
    w->head = abs;
}

static void window_add(struct breaker_window *w, uint64_t now, bool failed)
{
    window_advance(w, now);
    uint32_t slot = (uint32_t)(w->head % w->nbuckets);
    w->total[slot]++;
    w->sum_total++;
    if (failed) {
        w->failed[slot]++;
        w->sum_failed++;
    }
}

void breaker_fsm_init(struct breaker_fsm *b, const struct breaker_limits *l)
{
    memset(b, 0, sizeof *b);
    /* One-second buckets up to a minute; longer windows get coarser
     * buckets so every key costs the same memory. */
    uint64_t seconds = l->window_ns / 1000000000ull;
    uint32_t n = seconds < 1                     ? 1
                 : seconds > BREAKER_MAX_BUCKETS ? BREAKER_MAX_BUCKETS
                                                 : (uint32_t)seconds;
    b->window.nbuckets = n;
    b->window.bucket_ns = l->window_ns / n ? l->window_ns / n : 1;
}

static void set_change(struct breaker_change *c, enum breaker_state from,
                       enum breaker_state to, const char *reason)
{
    c->changed = true;
    c->from = from;
    c->to = to;
    snprintf(c->reason, sizeof c->reason, "%s", reason);
}

static void trip_open(struct breaker_fsm *b, const struct breaker_limits *l,
                      uint64_t now, struct breaker_change *change,
                      const char *reason)
{
    enum breaker_state from = b->state;
    uint64_t deadline = now + l->recovery_ns;

    /* Never shorten a cool-down already promised (peers.md pain point 14). */
    if (deadline > b->open_until_ns)
        b->open_until_ns = deadline;
    b->state = BREAKER_OPEN;
    b->probes_in_flight = 0;
    b->half_open_successes = 0;
    set_change(change, from, BREAKER_OPEN, reason);
}

static void enter_half_open(struct breaker_fsm *b,
                            struct breaker_change *change)
{
    b->state = BREAKER_HALF_OPEN;
    b->generation++;
    b->probes_in_flight = 0;
    b->half_open_successes = 0;
    set_change(change, BREAKER_OPEN, BREAKER_HALF_OPEN, "cool-down over");
}

static void close_again(struct breaker_fsm *b, struct breaker_change *change)
{
    char reason[96];

    snprintf(reason, sizeof reason, "%u successful probes",
             b->half_open_successes);
    b->state = BREAKER_CLOSED;
    b->consecutive = 0;
    b->probes_in_flight = 0;
    b->half_open_successes = 0;
    /* Failures from before the outage must not re-trip a healed key. */
    window_clear(&b->window);
    set_change(change, BREAKER_HALF_OPEN, BREAKER_CLOSED, reason);
}

bool breaker_fsm_tick(struct breaker_fsm *b, const struct breaker_limits *l,
                      uint64_t now, struct breaker_change *change)
{
    (void)l;
    change->changed = false;
    if (b->state != BREAKER_OPEN || now < b->open_until_ns)
        return false;
    enter_half_open(b, change);
    return true;
}

enum breaker_verdict breaker_fsm_admit(struct breaker_fsm *b,
                                       const struct breaker_limits *l,
                                       uint64_t now, uint32_t *generation,
                                       uint64_t *retry_ms,
                                       struct breaker_change *change)
{
    *retry_ms = 0;
    breaker_fsm_tick(b, l, now, change);
    switch (b->state) {
    case BREAKER_CLOSED:
        return BREAKER_PASS;
    case BREAKER_OPEN:
        *retry_ms = breaker_fsm_remaining_ms(b, now);
        return BREAKER_DENY;
    case BREAKER_HALF_OPEN:
        if (b->probes_in_flight >= l->half_open_max_calls)
            return BREAKER_DENY;
        b->probes_in_flight++;
        *generation = b->generation;
        return BREAKER_PROBE;
    }
    return BREAKER_DENY;
}

static void check_trip(struct breaker_fsm *b, const struct breaker_limits *l,
                       uint64_t now, struct breaker_change *change)
{
    char reason[96];
    const struct breaker_window *w = &b->window;

    if (l->consecutive_failures && b->consecutive >= l->consecutive_failures) {
        snprintf(reason, sizeof reason, "%u consecutive failures",
                 b->consecutive);
        trip_open(b, l, now, change, reason);
    } else if (w->sum_total >= l->min_volume &&
               (double)w->sum_failed >=
                   l->failure_rate * (double)w->sum_total) {
        snprintf(reason, sizeof reason, "failure rate %llu of %llu in %llus",
                 (unsigned long long)w->sum_failed,
                 (unsigned long long)w->sum_total,
                 (unsigned long long)(l->window_ns / 1000000000ull));
        trip_open(b, l, now, change, reason);
    }
}

void breaker_fsm_record(struct breaker_fsm *b, const struct breaker_limits *l,
                        uint64_t now, enum breaker_result result, bool probe,
                        uint32_t generation, struct breaker_change *change)
{
    bool current_probe =
        probe && b->state == BREAKER_HALF_OPEN && generation == b->generation;

    change->changed = false;
    if (current_probe && b->probes_in_flight > 0)
        b->probes_in_flight--;
    if (result == BREAKER_NEUTRAL)
        return;

    bool failed = result == BREAKER_FAILURE;
    window_add(&b->window, now, failed);
    if (failed) {
        b->failures_total++;
        b->consecutive++;
    } else {
        b->successes_total++;
        b->consecutive = 0;
    }

    switch (b->state) {
    case BREAKER_CLOSED:
        if (failed)
            check_trip(b, l, now, change);
        break;
    case BREAKER_HALF_OPEN:
        if (!current_probe)
            break; /* started before the outage: says nothing about now */
        if (failed) {
            trip_open(b, l, now, change, "probe failed in half-open");
        } else if (++b->half_open_successes >= l->success_threshold) {
            close_again(b, change);
        }
        break;
    case BREAKER_OPEN:
        break;
    }
}

uint64_t breaker_fsm_remaining_ms(const struct breaker_fsm *b, uint64_t now)
{
    if (b->state != BREAKER_OPEN || b->open_until_ns <= now)
        return 0;
    return (b->open_until_ns - now + NS_PER_MS - 1) / NS_PER_MS;
}

void breaker_fsm_window(struct breaker_fsm *b, uint64_t now, uint64_t *total,
                        uint64_t *failed)
{
    window_advance(&b->window, now);
    *total = b->window.sum_total;
    *failed = b->window.sum_failed;
}
