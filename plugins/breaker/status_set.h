/* The set of HTTP statuses that count as upstream failures, parsed from
 * config (the core hands a lone string over as a list of one, and
 * integers as their decimal text). Accepted forms, alone or mixed:
 *   "5xx,429"                  comma-separated string
 *   ["5xx", 429, "502-504"]    array of integers and strings
 * where a token is a class ("5xx"), an exact code ("429") or an inclusive
 * range ("500-504"). Codes must lie in 100..599. */
#ifndef SLUICE_BREAKER_STATUS_SET_H
#define SLUICE_BREAKER_STATUS_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct status_set {
    uint8_t bits[600 / 8];
};

/* tokens: the configured list, each entry one or more comma-separated
 * tokens. Returns 0, or -1 with a message in err. */
int status_set_parse(struct status_set *s, const char *const *tokens, size_t n,
                     char *err, size_t errlen);
bool status_set_has(const struct status_set *s, int status);

#endif
