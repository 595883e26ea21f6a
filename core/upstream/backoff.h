/* Retry delays: exponential backoff with full jitter (AWS architecture
 * blog's "full jitter"): sleep = random(0, min(cap, base * 2^(n-1))).
 * Pure arithmetic on a caller-owned random state, so tests seed it. */
#ifndef SLUICE_BACKOFF_H
#define SLUICE_BACKOFF_H

#include <stdint.h>

/* Upper bound of the delay before retry number `retry` (1 = first). */
uint64_t backoff_ceiling_ms(unsigned retry, uint32_t base_ms, uint32_t max_ms);
/* A delay in [0, ceiling]; advances *rng (splitmix64). */
uint64_t backoff_delay_ms(unsigned retry, uint32_t base_ms, uint32_t max_ms,
                          uint64_t *rng);

#endif
