/* A share over a sliding window (the upstream 429 rate the degradation
 * ladder reads): slots of window/RATE_SLOTS each, the oldest dropped. */
#ifndef ROUTER_RATE_H
#define ROUTER_RATE_H

#include <pthread.h>
#include <stdint.h>

#define RATE_SLOTS 6

struct router_rate {
    pthread_mutex_t lock;
    uint64_t slot_ns;
    struct {
        uint64_t index; /* now / slot_ns when the slot was filled */
        uint64_t total, hits;
    } slots[RATE_SLOTS];
};

void router_rate_init(struct router_rate *w, uint64_t window_ns);
void router_rate_fini(struct router_rate *w);
/* Adds `total` events of which `hits` count, at now_ns; returns the share
 * of hits over the window (0 when it saw nothing). */
double router_rate_add(struct router_rate *w, uint64_t now_ns, uint64_t total,
                       uint64_t hits);

#endif
