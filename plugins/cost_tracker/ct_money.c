/* Integer money: parsing decimals exactly and formatting pico-USD. */
#include "ct_money.h"

#include <stdio.h>
#include <string.h>

bool ct_parse_decimal(const char *s, size_t len, unsigned scale, uint64_t *out)
{
    uint64_t v = 0;
    unsigned decimals = 0;
    bool dot = false, digits = false;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.' && !dot) {
            dot = true;
            continue;
        }
        if (c < '0' || c > '9')
            return false;
        if (dot && ++decimals > scale)
            return false;
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(c - '0');
        digits = true;
    }
    if (!digits)
        return false;
    for (; decimals < scale; decimals++) {
        if (v > UINT64_MAX / 10)
            return false;
        v *= 10;
    }
    *out = v;
    return true;
}

uint64_t ct_mul_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

uint64_t ct_add_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

size_t ct_format_usd(uint64_t pico, char *buf, size_t cap)
{
    uint64_t whole = pico / CT_PICO_PER_USD, frac = pico % CT_PICO_PER_USD;
    int n;

    if (!frac)
        n = snprintf(buf, cap, "%llu", (unsigned long long)whole);
    else {
        char digits[16];
        snprintf(digits, sizeof digits, "%012llu", (unsigned long long)frac);
        size_t k = 12;
        while (k > 0 && digits[k - 1] == '0')
            k--;
        digits[k] = '\0';
        n = snprintf(buf, cap, "%llu.%s", (unsigned long long)whole, digits);
    }
    return n < 0 ? 0 : (size_t)n;
}
