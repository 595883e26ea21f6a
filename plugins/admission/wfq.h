/* The admission queue of one upstream: strict priority across levels
 * (critical first), and within a level weighted fair queuing across
 * tenants by virtual finish time (self-clocked fair queuing):
 *
 *   start  = max(level virtual time, tenant's last finish tag)
 *   finish = start + cost,  cost = WFQ_UNIT x WFQ_WEIGHT_ONE / weight
 *
 * The item with the smallest finish tag is served next (ties: arrival
 * order) and the level's virtual time becomes its finish tag. A tenant
 * with thousands of queued items therefore delays another tenant's lone
 * item by at most one item per unit of weight ratio.
 *
 * No locking and no host calls; the caller owns the items (embed a
 * struct wfq_item) and serialises access. Tenant flows are allocated on
 * first use and freed when their FIFO empties, so memory follows the
 * queue depth. */
#ifndef SLUICE_ADMISSION_WFQ_H
#define SLUICE_ADMISSION_WFQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/keymap.h"

#define WFQ_LEVELS 5
#define WFQ_UNIT 1000000ull /* cost of one request at weight 1 */
/* Weights are integers in thousandths (0.001..1000 -> 1..1000000), so the
 * fair-share comparisons below are exact. */
#define WFQ_WEIGHT_ONE 1000u
#define WFQ_WEIGHT_MAX 1000000u

struct wfq_flow;

struct wfq_item {
    struct wfq_item *prev, *next; /* in its tenant's FIFO */
    struct wfq_flow *flow;
    uint64_t finish; /* virtual finish tag */
    uint64_t seq;    /* arrival order, breaks ties */
    int level;
};

struct wfq_level {
    struct keymap flows;    /* tenant -> flow, only tenants with queued items */
    struct wfq_flow **heap; /* flows by (head finish, head seq) */
    size_t heap_len, heap_cap;
    uint64_t vtime;
    size_t depth;
    uint64_t weight_sum; /* of the tenants with queued items */
};

struct wfq {
    struct wfq_level level[WFQ_LEVELS];
    uint64_t seq;
    size_t depth;
};

int wfq_init(struct wfq *q, size_t expected_tenants);
/* Frees flows and tables; items still queued are simply forgotten. */
void wfq_fini(struct wfq *q);

/* Queues `it` at `level` (0 = most urgent) for `tenant` of `weight`
 * (WFQ_WEIGHT_ONE = 1, at most WFQ_WEIGHT_MAX; a tenant keeps the weight
 * of its first queued item). Returns 0, or -1 when out of memory. */
int wfq_push(struct wfq *q, struct wfq_item *it, int level, const char *tenant,
             size_t tenant_len, uint32_t weight);
/* The next item to serve, removed from the queue; NULL when empty. */
struct wfq_item *wfq_pop(struct wfq *q);
/* Removes a queued item (timed out, cancelled). */
void wfq_remove(struct wfq *q, struct wfq_item *it);
/* The item at `level` that would be served last (largest finish tag, then
 * newest), or NULL; O(tenants queued at that level). For shedding. */
struct wfq_item *wfq_last(const struct wfq *q, int level);

/* Fair share at a full level. `room` is the number of places the level
 * holds; a tenant's share of it is room x weight / (sum of the weights of
 * the tenants queued at the level, the newcomer's included). When the
 * newcomer `tenant` would still be within its share with one more item,
 * returns the newest item of the tenant furthest over its share (largest
 * items - share; ties: the newer newest item), to be displaced; else NULL.
 * O(tenants queued at that level). */
struct wfq_item *wfq_fair_victim(const struct wfq *q, int level,
                                 const char *tenant, size_t tenant_len,
                                 uint32_t weight, size_t room);

static inline size_t wfq_depth(const struct wfq *q, int level)
{
    return q->level[level].depth;
}

/* Items that would be served before a new item at `level`: everything
 * queued at that level or a more urgent one. */
size_t wfq_depth_upto(const struct wfq *q, int level);

#endif
