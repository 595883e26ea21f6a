#include "backoff.h"

uint64_t backoff_ceiling_ms(unsigned retry, uint32_t base_ms, uint32_t max_ms)
{
    uint64_t cap = base_ms;
    for (unsigned i = 1; i < retry && cap < max_ms; i++)
        cap *= 2;
    return cap > max_ms ? max_ms : cap;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t backoff_delay_ms(unsigned retry, uint32_t base_ms, uint32_t max_ms,
                          uint64_t *rng)
{
    uint64_t ceiling = backoff_ceiling_ms(retry, base_ms, max_ms);
    uint64_t r = splitmix64(rng);
    return ceiling ? r % (ceiling + 1) : 0;
}

bool backoff_wait_ms(uint64_t backoff_ms, uint64_t retry_after_ms,
                     uint64_t elapsed_ms, uint64_t deadline_ms,
                     uint64_t *wait_ms)
{
    uint64_t wait = retry_after_ms > backoff_ms ? retry_after_ms : backoff_ms;
    if (elapsed_ms >= deadline_ms || wait >= deadline_ms - elapsed_ms)
        return false;
    *wait_ms = wait;
    return true;
}
