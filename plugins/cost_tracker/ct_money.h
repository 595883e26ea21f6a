/* Money in integers: prices in micro-USD per million tokens, costs in
 * pico-USD (1e-12 USD). A cost is tokens x price, exact, so sums never
 * drift; the USD text is rendered from the integer. */
#ifndef CT_MONEY_H
#define CT_MONEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CT_PICO_PER_USD 1000000000000ull

/* "2.50" (USD) with scale 6 -> 2500000 (micro-USD); scale 12 -> pico-USD.
 * Digits, at most one '.', at most `scale` decimals, no sign or exponent.
 * Returns false on anything else or overflow. */
bool ct_parse_decimal(const char *s, size_t len, unsigned scale, uint64_t *out);

/* a * b, saturating at UINT64_MAX (a ledger never wraps). */
uint64_t ct_mul_sat(uint64_t a, uint64_t b);
uint64_t ct_add_sat(uint64_t a, uint64_t b);

/* pico-USD as a USD decimal without trailing zeros: 3150000 ->
 * "0.00000315", 0 -> "0". Returns the length written (cap >= 32). */
size_t ct_format_usd(uint64_t pico, char *buf, size_t cap);

#endif
