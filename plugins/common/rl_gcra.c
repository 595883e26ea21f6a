#include "rl_gcra.h"

uint64_t rl_fx_ceil_ns(rl_fx v)
{
    rl_fx ns = (v + (((rl_fx)1 << RL_FX_SHIFT) - 1)) >> RL_FX_SHIFT;
    return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

void rl_gcra_init(struct rl_gcra *g, uint64_t limit, uint64_t period_ns,
                  uint64_t burst, uint64_t max_wait_ns)
{
    g->limit = limit ? limit : 1;
    g->burst = burst ? burst : g->limit;
    g->period_ns = period_ns ? period_ns : 1;
    g->interval = rl_fx_from_ns(g->period_ns) / g->limit;
    g->tolerance = g->interval * g->burst;
    g->max_ahead =
        g->tolerance + rl_fx_from_ns(g->period_ns) + rl_fx_from_ns(max_wait_ns);
}

rl_fx rl_gcra_clamp(const struct rl_gcra *g, rl_fx tat, uint64_t now)
{
    rl_fx cap = rl_fx_from_ns(now) + g->max_ahead;
    return tat > cap ? cap : tat;
}

void rl_gcra_take(const struct rl_gcra *g, rl_fx tat, uint64_t now,
                  uint64_t cost, struct rl_gcra_take *out)
{
    rl_fx nowfx = rl_fx_from_ns(now);
    tat = rl_gcra_clamp(g, tat, now);
    if (tat < nowfx)
        tat = nowfx;
    out->fits = cost <= g->burst;
    out->new_tat = tat + g->interval * cost;
    /* Allowed once new_tat <= now + tolerance (no subtraction: the
     * monotonic clock may be smaller than the tolerance). */
    rl_fx horizon = nowfx + g->tolerance;
    out->wait_ns =
        out->new_tat > horizon ? rl_fx_ceil_ns(out->new_tat - horizon) : 0;
}

uint64_t rl_gcra_remaining(const struct rl_gcra *g, rl_fx tat, uint64_t now)
{
    rl_fx nowfx = rl_fx_from_ns(now);
    tat = rl_gcra_clamp(g, tat, now);
    if (tat < nowfx)
        tat = nowfx;
    rl_fx horizon = nowfx + g->tolerance;
    if (tat >= horizon)
        return 0;
    rl_fx units = (horizon - tat) / g->interval;
    return units > g->burst ? g->burst : (uint64_t)units;
}

uint64_t rl_gcra_reset_ns(rl_fx tat, uint64_t now)
{
    rl_fx nowfx = rl_fx_from_ns(now);
    return tat > nowfx ? rl_fx_ceil_ns(tat - nowfx) : 0;
}

rl_fx rl_gcra_adjust(const struct rl_gcra *g, rl_fx tat, uint64_t now,
                     int64_t delta)
{
    rl_fx nowfx = rl_fx_from_ns(now);
    tat = rl_gcra_clamp(g, tat, now);
    if (tat < nowfx)
        tat = nowfx;
    if (delta < 0) {
        rl_fx back = g->interval * (uint64_t)(-(delta + 1) + 1);
        return tat - nowfx > back ? tat - back : nowfx;
    }
    return rl_gcra_clamp(g, tat + g->interval * (uint64_t)delta, now);
}

rl_fx rl_gcra_pause(const struct rl_gcra *g, rl_fx tat, uint64_t now,
                    uint64_t pause_ns)
{
    /* With TAT = now + pause + tolerance - interval, the first unit fits
     * exactly at now + pause. */
    rl_fx want = rl_fx_from_ns(now) + rl_fx_from_ns(pause_ns) + g->tolerance -
                 g->interval;
    tat = rl_gcra_clamp(g, tat, now);
    return want > tat ? rl_gcra_clamp(g, want, now) : tat;
}
