/* GCRA (generic cell rate algorithm) on a theoretical arrival time (TAT),
 * in exact fixed point.
 *
 * Times are "fx" values: nanoseconds << 32, held in 128 bits, so the
 * emission interval period/limit keeps 32 fractional bits of a nanosecond
 * (an error below 2^-32 ns per unit: exact over any realistic run). A
 * bucket holding `burst` units refills at `limit` units per `period`;
 * taking `cost` units moves the TAT forward by cost * interval, and is
 * allowed while the TAT stays within burst * interval of now. A TAT of 0
 * (fresh state) reads as "now": the bucket is full. */
#ifndef RL_GCRA_H
#define RL_GCRA_H

#include <stdbool.h>
#include <stdint.h>

__extension__ typedef unsigned __int128 rl_fx;

#define RL_FX_SHIFT 32

static inline rl_fx rl_fx_from_ns(uint64_t ns)
{
    return (rl_fx)ns << RL_FX_SHIFT;
}

/* Rounds up to whole ns; saturates at UINT64_MAX. */
uint64_t rl_fx_ceil_ns(rl_fx v);

struct rl_gcra {
    uint64_t limit;     /* units per period (> 0) */
    uint64_t burst;     /* bucket capacity in units (> 0) */
    uint64_t period_ns; /* > 0 */
    rl_fx interval;     /* period / limit */
    rl_fx tolerance;    /* burst * interval */
    rl_fx max_ahead;    /* how far the TAT may run past now: clamp */
};

/* max_wait_ns: the longest reservation a caller may make (wait mode);
 * together with one period it bounds how far the TAT may run ahead of
 * now (debts from reconciliation, clock anomalies). */
void rl_gcra_init(struct rl_gcra *g, uint64_t limit, uint64_t period_ns,
                  uint64_t burst, uint64_t max_wait_ns);

struct rl_gcra_take {
    rl_fx new_tat;    /* the TAT if the take is committed */
    uint64_t wait_ns; /* 0: fits now; else how long until it would */
    bool fits;        /* cost <= burst, i.e. it can ever be admitted */
};

/* Evaluates taking `cost` units at `now`; commits nothing. */
void rl_gcra_take(const struct rl_gcra *g, rl_fx tat, uint64_t now,
                  uint64_t cost, struct rl_gcra_take *out);
/* Whole units still available at `now` for a TAT. */
uint64_t rl_gcra_remaining(const struct rl_gcra *g, rl_fx tat, uint64_t now);
/* Time until the bucket is full again. */
uint64_t rl_gcra_reset_ns(rl_fx tat, uint64_t now);
/* Gives back (delta < 0) or charges (delta > 0) units after the fact. A
 * refund never fills the bucket past its burst; a debit runs ahead at most
 * max_ahead (the bucket then owes units and admits nothing until paid). */
rl_fx rl_gcra_adjust(const struct rl_gcra *g, rl_fx tat, uint64_t now,
                     int64_t delta);
/* Admits nothing before now + pause_ns (an upstream's Retry-After). */
rl_fx rl_gcra_pause(const struct rl_gcra *g, rl_fx tat, uint64_t now,
                    uint64_t pause_ns);
/* Clamps a TAT that runs too far ahead of now (a clock that stepped back,
 * a key reused with a much smaller limit), nginx-style. */
rl_fx rl_gcra_clamp(const struct rl_gcra *g, rl_fx tat, uint64_t now);

#endif
