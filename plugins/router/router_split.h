/* Sticky weighted splits: a user's place in [0,1) and the variant there. */
#ifndef ROUTER_SPLIT_H
#define ROUTER_SPLIT_H

#include <stddef.h>

#include <sluice/plugin.h>

/* Where `who` falls in [0,1) for the split named `split`: a hash, so the
 * same user always lands on the same point, and two splits place users
 * independently of each other. */
double router_split_point(const char *split, struct sluice_str who);

/* The variant at point u: variants own consecutive slices of [0,1) in
 * config order, each weight / sum(weights) wide. Moving weight between two
 * neighbours moves only the users in the slice that changed hands.
 * -1 when every weight is 0. */
int router_split_pick(const double *weights, size_t n, double u);

#endif
