/* Sliding-window share (see router_rate.h). */
#include "router_rate.h"

void router_rate_init(struct router_rate *w, uint64_t window_ns)
{
    pthread_mutex_init(&w->lock, NULL);
    w->slot_ns = window_ns / RATE_SLOTS ? window_ns / RATE_SLOTS : 1;
    for (int i = 0; i < RATE_SLOTS; i++)
        w->slots[i].index = UINT64_MAX;
}

void router_rate_fini(struct router_rate *w)
{
    pthread_mutex_destroy(&w->lock);
}

double router_rate_add(struct router_rate *w, uint64_t now_ns, uint64_t total,
                       uint64_t hits)
{
    uint64_t idx = now_ns / w->slot_ns, sum = 0, sum_hits = 0;
    pthread_mutex_lock(&w->lock);
    int s = (int)(idx % RATE_SLOTS);
    if (w->slots[s].index != idx) {
        w->slots[s].index = idx;
        w->slots[s].total = w->slots[s].hits = 0;
    }
    w->slots[s].total += total;
    w->slots[s].hits += hits;
    for (int i = 0; i < RATE_SLOTS; i++)
        if (w->slots[i].index != UINT64_MAX &&
            idx - w->slots[i].index < RATE_SLOTS) {
            sum += w->slots[i].total;
            sum_hits += w->slots[i].hits;
        }
    pthread_mutex_unlock(&w->lock);
    return sum ? (double)sum_hits / (double)sum : 0;
}
