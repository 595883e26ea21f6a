/* Load balancing: weighted random, least in flight, power of two choices. */
#include "router_balance.h"
#include "router_config.h"

#define MAX_MEMBERS 32

static int weighted(struct router_pool *p, const int *ok, size_t k,
                    uint64_t rnd)
{
    uint64_t total = 0;
    for (size_t i = 0; i < k; i++)
        total += (uint64_t)p->members[ok[i]].weight;
    uint64_t at = rnd % total;
    for (size_t i = 0; i < k; i++) {
        uint64_t w = (uint64_t)p->members[ok[i]].weight;
        if (at < w)
            return ok[i];
        at -= w;
    }
    return ok[k - 1];
}

/* Ties start at a random member so equal upstreams share the load. */
static int least_inflight(struct router_pool *p, const int *ok, size_t k,
                          uint64_t rnd)
{
    size_t start = (size_t)(rnd % k);
    int best = ok[start];
    int64_t best_n = atomic_load(&p->members[best].inflight);
    for (size_t j = 1; j < k; j++) {
        int i = ok[(start + j) % k];
        int64_t n = atomic_load(&p->members[i].inflight);
        if (n < best_n) {
            best = i;
            best_n = n;
        }
    }
    return best;
}

double router_member_cost(struct router_member *m)
{
    int64_t n = atomic_load(&m->inflight);
    return (double)atomic_load(&m->ewma_ns) * (double)((n > 0 ? n : 0) + 1);
}

static int two_choices(struct router_pool *p, const int *ok, size_t k,
                       uint64_t rnd1, uint64_t rnd2)
{
    if (k == 1)
        return ok[0];
    size_t a = (size_t)(rnd1 % k), b = (size_t)(rnd2 % (k - 1));
    if (b >= a)
        b++;
    double ca = router_member_cost(&p->members[ok[a]]);
    double cb = router_member_cost(&p->members[ok[b]]);
    return cb < ca ? ok[b] : ok[a];
}

int router_pool_pick(struct router_pool *p, const bool *usable, uint64_t rnd1,
                     uint64_t rnd2)
{
    int ok[MAX_MEMBERS];
    size_t k = 0;
    for (size_t i = 0; i < p->n && k < MAX_MEMBERS; i++)
        if (usable[i])
            ok[k++] = (int)i;
    if (k == 0)
        return -1;
    switch (p->strategy) {
    case ROUTER_WEIGHTED:
        return weighted(p, ok, k, rnd1);
    case ROUTER_LEAST_INFLIGHT:
        return least_inflight(p, ok, k, rnd1);
    default:
        return two_choices(p, ok, k, rnd1, rnd2);
    }
}

void router_member_observe(struct router_member *m, uint64_t ns, double alpha)
{
    uint64_t old = atomic_load(&m->ewma_ns), next;
    do {
        next =
            old == 0
                ? ns
                : (uint64_t)((double)old + alpha * ((double)ns - (double)old));
        if (next == 0)
            next = 1; /* 0 means "never observed" */
    } while (!atomic_compare_exchange_weak(&m->ewma_ns, &old, next));
}
