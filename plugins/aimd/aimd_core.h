/* aimd internals: one key's adaptive limit (per upstream, or upstream +
 * model) as plain operations on its state; the caller holds the key's
 * shard lock.
 *
 * Concurrency: at most floor(limit) requests in flight; the rest wait in a
 * bounded FIFO and are handed a slot by whoever frees one. Rate: requests
 * start at least 1/rate apart (a reserved start time, no bursts). Both
 * grow additively on success (+increase per `limit` successes, i.e. per
 * round trip; +increase req/s per second at full use) and shrink
 * multiplicatively on 429 / 503 / timeouts, once per "epoch" (the requests
 * admitted since the last decrease), within [min, max]. Provider headers
 * (x-ratelimit-remaining / -reset) slow admissions down before the
 * provider refuses: below the low-water mark, starts are paced at the
 * provider's own refill rate; at zero, they pause until the next slot. */
#ifndef AIMD_CORE_H
#define AIMD_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/host.h"

struct aimd_req;

struct aimd_params {
    bool by_concurrency, by_rate;
    double init_limit, min_limit, max_limit;
    double init_rate, min_rate, max_rate; /* requests per second */
    double increase;
    double factor;    /* multiplicative decrease, in (0, 1) */
    double low_water; /* share of the provider's limit */
    uint32_t max_queue;
};

struct aimd_waiter {
    struct aimd_req *req; /* valid while queued: the request's state */
    sluice_wake_t ticket;
    uint64_t deadline_ns;
    uint32_t worker;
    bool woken_late; /* already told its deadline passed */
};

struct aimd_key {
    double limit;
    double rate;
    uint64_t next_start_ns; /* pacing: the earliest next start */
    uint64_t pause_until_ns;
    uint64_t hint_interval_ns, hint_until_ns;
    uint64_t last_active_ns;
    double avg_tokens; /* EWMA of tokens per request (provider hints) */
    uint32_t in_flight;
    uint32_t paced; /* holding a reserved start time */
    uint32_t epoch;
    uint32_t q_head, q_len, q_cap;
    struct aimd_waiter *q; /* grows on demand up to max_queue */
    bool ready;
};

void aimd_key_init(struct aimd_key *k, const struct aimd_params *p);
void aimd_key_fini(void *key); /* rl_map value_fini */
uint32_t aimd_cap(const struct aimd_key *k, const struct aimd_params *p);
/* True when nothing is queued, in flight or reserved. */
bool aimd_key_quiet(const struct aimd_key *k);

/* A request may start now under the concurrency limit. */
bool aimd_can_start(const struct aimd_key *k, const struct aimd_params *p,
                    uint64_t now);
bool aimd_queue_push(struct aimd_key *k, const struct aimd_waiter *w,
                     uint32_t max_queue);
bool aimd_queue_remove(struct aimd_key *k, const struct aimd_req *req);
/* Hands free slots to the oldest waiters: marks them granted through
 * `grant(req)`, counts them in flight and writes their tickets to out.
 * Returns how many (at most max). */
size_t aimd_dispatch(struct aimd_key *k, const struct aimd_params *p,
                     uint64_t now, void (*grant)(struct aimd_req *),
                     sluice_wake_t *out, size_t max);
/* Tickets of waiters whose deadline passed (each reported once). */
size_t aimd_expired(struct aimd_key *k, uint64_t now, uint32_t worker,
                    sluice_wake_t *out, size_t max);

/* The spacing between starts now (0: no pacing). */
uint64_t aimd_interval(const struct aimd_key *k, const struct aimd_params *p,
                       uint64_t now);
/* When a request arriving now could start; commit to take that time. */
uint64_t aimd_next_start(const struct aimd_key *k, const struct aimd_params *p,
                         uint64_t now);
void aimd_commit_start(struct aimd_key *k, const struct aimd_params *p,
                       uint64_t now, uint64_t start);

/* Feedback. busy: the limit was actually in use (worth growing). */
void aimd_success(struct aimd_key *k, const struct aimd_params *p, bool busy);
/* Returns true when it decreased (once per epoch). */
bool aimd_overload(struct aimd_key *k, const struct aimd_params *p,
                   uint32_t epoch, uint64_t now, uint64_t retry_after_ns);

/* Provider rate-limit headers for one dimension: limit (0: unknown),
 * remaining, time to full reset; unit_tokens: tokens one request costs
 * (1 for the requests dimension). Returns true when it slowed down. */
bool aimd_provider_hint(struct aimd_key *k, const struct aimd_params *p,
                        uint64_t now, uint64_t limit, uint64_t remaining,
                        uint64_t reset_ns, double unit_tokens);

#endif
