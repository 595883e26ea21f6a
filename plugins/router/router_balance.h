/* Load balancing across the upstreams of one model. */
#ifndef ROUTER_BALANCE_H
#define ROUTER_BALANCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sluice_metric;

/* One upstream of a pool; the counters are shared by every worker. */
struct router_member {
    const char *name;
    int64_t weight;
    _Atomic int64_t inflight;
    _Atomic uint64_t ewma_ns; /* 0 until the first observation */
    /* Made once in create() so a pick formats no names (router.c). */
    char *health[3]; /* breaker.<up>.open, breaker.<up>/<model>.open,
                        upstream.<up>.down */
    struct sluice_metric *picks, *skipped;
};

struct router_pool {
    const char *model;
    int strategy; /* enum router_strategy */
    size_t n;
    struct router_member *members;
};

/* Picks a member among those with usable[i]; -1 when none is. rnd1 and
 * rnd2 are independent random numbers (the host's random_u64). */
int router_pool_pick(struct router_pool *p, const bool *usable, uint64_t rnd1,
                     uint64_t rnd2);

/* P2C's cost of a member: latency EWMA x (in flight + 1). */
double router_member_cost(struct router_member *m);

/* Folds one latency into the member's EWMA (lock-free). */
void router_member_observe(struct router_member *m, uint64_t ns, double alpha);

#endif
