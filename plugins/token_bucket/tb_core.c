#include "tb_core.h"

#include <string.h>

void tb_limits_init(struct tb_limits *l, uint64_t requests, uint64_t tokens,
                    uint64_t burst_requests, uint64_t burst_tokens,
                    uint64_t period_ns, uint64_t max_wait_ns)
{
    uint64_t limit[TB_DIMS] = {requests, tokens};
    uint64_t burst[TB_DIMS] = {burst_requests, burst_tokens};

    memset(l, 0, sizeof *l);
    l->period_ns = period_ns;
    for (int i = 0; i < TB_DIMS; i++) {
        if (!limit[i])
            continue;
        l->limit[i] = limit[i];
        l->burst[i] = burst[i] ? burst[i] : limit[i];
        rl_gcra_init(&l->g[i], l->limit[i], period_ns, l->burst[i],
                     max_wait_ns);
    }
}

static void report(const struct tb_state *s, const struct tb_limits *l,
                   uint64_t now, struct tb_decision *d)
{
    for (int i = 0; i < TB_DIMS; i++) {
        if (!l->limit[i])
            continue;
        d->remaining[i] = rl_gcra_remaining(&l->g[i], s->tat[i], now);
        d->reset_ns[i] = rl_gcra_reset_ns(s->tat[i], now);
    }
}

void tb_take(struct tb_state *s, const struct tb_limits *l, uint64_t now,
             uint64_t tokens, uint64_t wait_ns, struct tb_decision *d)
{
    const uint64_t cost[TB_DIMS] = {1, tokens};
    struct rl_gcra_take t[TB_DIMS];
    uint64_t wait = 0;

    memset(d, 0, sizeof *d);
    d->verdict = TB_ALLOW;
    for (int i = 0; i < TB_DIMS; i++) {
        if (!l->limit[i])
            continue;
        rl_gcra_take(&l->g[i], s->tat[i], now, cost[i], &t[i]);
        if (!t[i].fits) {
            d->verdict = TB_TOO_BIG;
            d->binding = (enum tb_dim)i;
        } else if (t[i].wait_ns > wait && d->verdict != TB_TOO_BIG) {
            wait = t[i].wait_ns;
            d->binding = (enum tb_dim)i;
        }
    }
    if (d->verdict != TB_TOO_BIG) {
        d->wait_ns = wait;
        if (wait == 0)
            d->verdict = TB_ALLOW;
        else if (wait <= wait_ns)
            d->verdict = TB_WAIT;
        else
            d->verdict = TB_DENY;
    }
    if (d->verdict == TB_ALLOW || d->verdict == TB_WAIT)
        for (int i = 0; i < TB_DIMS; i++)
            if (l->limit[i])
                s->tat[i] = t[i].new_tat;
    report(s, l, now, d);
}

void tb_adjust(struct tb_state *s, const struct tb_limits *l, uint64_t now,
               int64_t requests, int64_t tokens)
{
    const int64_t delta[TB_DIMS] = {requests, tokens};
    for (int i = 0; i < TB_DIMS; i++)
        if (l->limit[i] && delta[i])
            s->tat[i] = rl_gcra_adjust(&l->g[i], s->tat[i], now, delta[i]);
}

void tb_pause(struct tb_state *s, const struct tb_limits *l, uint64_t now,
              uint64_t pause_ns)
{
    int i = l->limit[TB_REQUESTS] ? TB_REQUESTS : TB_TOKENS;
    if (l->limit[i])
        s->tat[i] = rl_gcra_pause(&l->g[i], s->tat[i], now, pause_ns);
}

uint64_t tb_idle_at(const struct tb_state *s)
{
    rl_fx latest = s->tat[0] > s->tat[1] ? s->tat[0] : s->tat[1];
    return rl_fx_ceil_ns(latest);
}
