/* The set of HTTP statuses that count as upstream failures, parsed from
 * config. Accepted forms, alone or mixed:
 *   "5xx,429"                  comma-separated string
 *   ["5xx", 429, "502-504"]    array of integers and strings
 * where a token is a class ("5xx"), an exact code ("429") or an inclusive
 * range ("500-504"). Codes must lie in 100..599. */
#ifndef SLUICE_BREAKER_STATUS_SET_H
#define SLUICE_BREAKER_STATUS_SET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct status_set {
    uint8_t bits[600 / 8];
};

/* Returns 0, or -1 with a message in err. */
int status_set_parse(struct status_set *s, const json_t *value, char *err,
                     size_t errlen);
bool status_set_has(const struct status_set *s, int status);

#endif
