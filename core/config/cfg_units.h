/* Durations ("250ms", "1h30m") and sizes ("64MiB", "10KB") in plugin
 * config values. No server dependencies: the SDK's fake host links it. */
#ifndef SLUICE_CFG_UNITS_H
#define SLUICE_CFG_UNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One or more <number><unit> parts ("1h30m", "1.5s"); units ns us ms s m h
 * d. Returns false on anything else or past INT64_MAX nanoseconds. */
bool cfg_duration_parse(const char *s, int64_t *ns_out);

/* <number><unit> with unit B, KB MB GB TB (powers of 1000) or KiB MiB GiB
 * TiB (powers of 1024), case-insensitive, optional space before the unit;
 * a bare integer counts as bytes. Fractions allowed with a unit ("1.5GiB")
 * when the result is a whole number of bytes. */
bool cfg_size_parse(const char *s, int64_t *bytes_out);

#endif
