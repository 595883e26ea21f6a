/* Durations in rate-limit headers.
 *
 * Providers write resets as Go-style durations ("1s", "120ms", "6m0s",
 * "1h2m3.5s", "0.5s"); Retry-After is delta-seconds or an HTTP date. We
 * write x-ratelimit-reset-* in the same Go style, so clients that parse
 * OpenAI's headers parse ours. */
#ifndef RL_DURATION_H
#define RL_DURATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/plugin.h"

/* Go-style duration ("6m0s", "120ms", "1.5s", "250us", "3ns"); a bare
 * number counts as seconds. Returns false on anything else. */
bool rl_duration_parse(struct sluice_str s, uint64_t *ns_out);

/* Retry-After: delta-seconds (fractions accepted) or an IMF-fixdate, the
 * latter against wall_ms. Returns false when absent or malformed. */
bool rl_retry_after_parse(struct sluice_str s, int64_t wall_ms,
                          uint64_t *ns_out);

/* Unsigned decimal; false unless the whole string is digits. */
bool rl_parse_u64(struct sluice_str s, uint64_t *out);

/* Decimal digits of v into buf (>= 21 bytes, NUL-terminated); returns
 * the length. */
size_t rl_format_u64(uint64_t v, char *buf);

/* Formats like OpenAI: "0s", "17ms", "1s", "6.5s", "6m0s", "1h2m3s".
 * Under a second: whole ms, rounded up; from a second: ms precision with
 * trailing zeros trimmed. Returns the length written (cap >= 32). */
size_t rl_duration_format(uint64_t ns, char *buf, size_t cap);

#endif
