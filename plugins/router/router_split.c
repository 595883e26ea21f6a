/* Sticky weighted splits (see router_split.h). */
#include <string.h>

#include <xxhash.h>

#include "router_split.h"

double router_split_point(const char *split, struct sluice_str who)
{
    uint64_t seed = XXH3_64bits(split, strlen(split));
    uint64_t h = XXH3_64bits_withSeed(who.ptr ? who.ptr : "", who.len, seed);
    return (double)(h >> 11) * 0x1.0p-53; /* 53 bits: exact in a double */
}

int router_split_pick(const double *weights, size_t n, double u)
{
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += weights[i];
    if (!(total > 0))
        return -1;
    double at = u * total, edge = 0;
    int last = -1;
    for (size_t i = 0; i < n; i++) {
        if (weights[i] <= 0)
            continue;
        last = (int)i;
        edge += weights[i];
        if (at < edge)
            return (int)i;
    }
    return last; /* rounding at the very top */
}
