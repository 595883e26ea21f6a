/* Gateway health published by plugins (host->health_set) and read by Lua
 * policies (sluice.health(name)) and the core's fallback selection
 * ("upstream.<name>.down"). A small fixed-capacity map: writers take a
 * mutex, readers go through a seqlock-free atomic snapshot per slot. */
#ifndef SLUICE_HEALTH_H
#define SLUICE_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

void health_set(const char *name, double value);
bool health_get(const char *name, double *value);
/* Writes {"name": value, ...} into buf (snprintf semantics). */
size_t health_json(char *buf, size_t cap);

#endif
