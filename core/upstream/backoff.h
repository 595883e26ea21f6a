/* Retry delays: exponential backoff with full jitter (AWS architecture
 * blog's "full jitter"): sleep = random(0, min(cap, base * 2^(n-1))).
 * Pure arithmetic on a caller-owned random state, so tests seed it. */
#ifndef SLUICE_BACKOFF_H
#define SLUICE_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

/* Upper bound of the delay before retry number `retry` (1 = first). */
uint64_t backoff_ceiling_ms(unsigned retry, uint32_t base_ms, uint32_t max_ms);
/* A delay in [0, ceiling]; advances *rng (splitmix64). */
uint64_t backoff_delay_ms(unsigned retry, uint32_t base_ms, uint32_t max_ms,
                          uint64_t *rng);
/* The wait before the next attempt: the backoff, or the provider's
 * Retry-After when it asks for longer (pass 0 when the attempt goes to
 * another upstream). False when that wait would end at or past the retry
 * deadline: the last answer then goes to the client at once, never held
 * for a retry that cannot happen. */
bool backoff_wait_ms(uint64_t backoff_ms, uint64_t retry_after_ms,
                     uint64_t elapsed_ms, uint64_t deadline_ms,
                     uint64_t *wait_ms);

#endif
