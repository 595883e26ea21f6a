/* The circuit breaker state machine for one key (an upstream, or an
 * upstream and model), with no host calls and no locking: the caller
 * passes the time in and serialises access. Kept apart from the plugin so
 * tests drive transitions directly on a fake clock.
 *
 *   CLOSED --(consecutive failures | failure rate over the window)--> OPEN
 *   OPEN --(cool-down over, noticed on the next admit or tick)--> HALF_OPEN
 *   HALF_OPEN --(success_threshold probe successes)--> CLOSED
 *   HALF_OPEN --(any probe failure)--> OPEN, deadline = max(old, now+cool-down)
 */
#ifndef SLUICE_BREAKER_FSM_H
#define SLUICE_BREAKER_FSM_H

#include <stdbool.h>
#include <stdint.h>

/* Numbers are what health "breaker.<key>.state" publishes. */
enum breaker_state {
    BREAKER_CLOSED = 0,
    BREAKER_OPEN = 1,
    BREAKER_HALF_OPEN = 2,
};

enum breaker_verdict {
    BREAKER_PASS,  /* closed: go ahead */
    BREAKER_PROBE, /* half-open: go ahead as one of the probes */
    BREAKER_DENY,  /* open, or half-open with every probe slot taken */
};

enum breaker_result {
    BREAKER_SUCCESS,
    BREAKER_FAILURE,
    BREAKER_NEUTRAL, /* no verdict on the upstream (client gone, no call) */
};

struct breaker_limits {
    uint32_t consecutive_failures; /* 0: only the failure rate trips */
    uint64_t window_ns;
    double failure_rate; /* trips when failed/total >= this ... */
    uint32_t min_volume; /* ... and total >= this, within the window */
    uint64_t recovery_ns;
    uint32_t half_open_max_calls;
    uint32_t success_threshold;
};

/* Rolling window: a ring of buckets, each covering window/nbuckets, with
 * running sums so recording and reading are O(1) (amortised over time). */
#define BREAKER_MAX_BUCKETS 60

struct breaker_window {
    uint64_t bucket_ns;
    uint32_t nbuckets;
    uint64_t head; /* absolute index (time / bucket_ns) of the newest bucket */
    uint32_t total[BREAKER_MAX_BUCKETS];
    uint32_t failed[BREAKER_MAX_BUCKETS];
    uint64_t sum_total, sum_failed;
};

struct breaker_fsm {
    enum breaker_state state;
    uint32_t consecutive; /* failures since the last success */
    struct breaker_window window;
    uint64_t open_until_ns;
    uint32_t probes_in_flight;
    uint32_t half_open_successes;
    uint32_t generation; /* bumped on entering half-open; stale probes of an
                            earlier half-open period are ignored */
    uint64_t successes_total, failures_total;
};

/* A state change, for the caller to log and publish. */
struct breaker_change {
    bool changed;
    enum breaker_state from, to;
    char reason[96];
};

void breaker_fsm_init(struct breaker_fsm *b, const struct breaker_limits *l);

/* Should a request go ahead at `now`? PROBE stores the half-open period in
 * *generation (hand it back to breaker_fsm_record). DENY stores a
 * Retry-After hint in *retry_ms: the remaining cool-down, rounded up to a
 * whole millisecond (0 when half-open is merely full). */
enum breaker_verdict breaker_fsm_admit(struct breaker_fsm *b,
                                       const struct breaker_limits *l,
                                       uint64_t now, uint32_t *generation,
                                       uint64_t *retry_ms,
                                       struct breaker_change *change);

/* Records the end of a request. `probe` and `generation` come from the
 * admit that let it through. Only probes of the current half-open period
 * move a half-open breaker; other results are counted. */
void breaker_fsm_record(struct breaker_fsm *b, const struct breaker_limits *l,
                        uint64_t now, enum breaker_result result, bool probe,
                        uint32_t generation, struct breaker_change *change);

/* Moves OPEN to HALF_OPEN once the cool-down is over. Returns true when it
 * did (then *change says so). */
bool breaker_fsm_tick(struct breaker_fsm *b, const struct breaker_limits *l,
                      uint64_t now, struct breaker_change *change);

/* Milliseconds of cool-down left, rounded up; 0 unless open. */
uint64_t breaker_fsm_remaining_ms(const struct breaker_fsm *b, uint64_t now);

/* Requests and failures currently inside the rolling window. */
void breaker_fsm_window(struct breaker_fsm *b, uint64_t now, uint64_t *total,
                        uint64_t *failed);

const char *breaker_state_name(enum breaker_state s);

#endif
