/* sliding_window internals: "at most N in any rolling window of W".
 *
 * Exact mode keeps the admission times of one key in a ring, oldest
 * first (8 bytes per request in the window; the ring grows on demand up to
 * N entries, 2N in wait mode where the second N are reserved slots).
 * Approximate mode keeps two fixed-window counters and weighs the previous
 * one by how much of it the rolling window still covers (24 bytes). */
#ifndef SW_CORE_H
#define SW_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redisReply;

enum sw_verdict {
    SW_DENY = 0,  /* not now; wait_ns says when */
    SW_ALLOW = 1, /* admitted */
    SW_WAIT = 2,  /* exact: a slot wait_ns from now is reserved for it;
                     approximate: try again in wait_ns */
};

struct sw_decision {
    enum sw_verdict verdict;
    uint64_t wait_ns;
    uint64_t remaining;
    uint64_t reset_ns; /* until the key's window is empty */
    uint64_t slot;     /* the recorded time (exact), to release a slot */
};

struct sw_ring {
    uint64_t *ts;
    uint32_t cap, head, len, spare;
};

struct sw_counter {
    uint64_t window; /* index of the current fixed window */
    uint64_t prev, curr;
};

/* allowance_ns: how long the caller may wait (0: reject mode). */
void sw_exact_take(struct sw_ring *s, uint64_t limit, uint64_t window_ns,
                   uint64_t now, uint64_t allowance_ns, struct sw_decision *d);
/* Gives back a reserved slot (its request went away). */
void sw_exact_release(struct sw_ring *s, uint64_t slot);
uint64_t sw_exact_idle_at(const struct sw_ring *s, uint64_t window_ns);
void sw_ring_fini(void *ring); /* rl_map value_fini */

void sw_approx_take(struct sw_counter *s, uint64_t limit, uint64_t window_ns,
                    uint64_t now, uint64_t allowance_ns, struct sw_decision *d);
uint64_t sw_approx_idle_at(const struct sw_counter *s, uint64_t window_ns);

/* ---- Redis (sw_redis.c) ---- */

extern const char sw_redis_exact_script[];
extern const char sw_redis_approx_script[];

#define SW_REDIS_ARGS 5
struct sw_redis_args {
    char store[SW_REDIS_ARGS][24];
    const char *argv[SW_REDIS_ARGS];
    size_t len[SW_REDIS_ARGS];
};
/* op: "take" or "release" (slot: what take recorded). */
size_t sw_redis_args(struct sw_redis_args *a, bool release, uint64_t limit,
                     uint64_t window_ns, uint64_t allowance_ns, uint64_t slot);
bool sw_redis_parse(const struct redisReply *reply, struct sw_decision *d);
/* Exact arithmetic in Redis needs limit * window_us < 2^53. */
bool sw_redis_fits(uint64_t limit, uint64_t window_ns);

#endif
