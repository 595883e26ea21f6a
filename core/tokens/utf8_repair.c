#include "utf8_repair.h"

#include <string.h>

/* Length of the valid sequence at s[0..len), 0 if invalid; *bad receives
 * how many bytes form the maximal invalid subpart (>= 1) when invalid. */
static size_t sequence_at(const unsigned char *s, size_t len, size_t *bad)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        unsigned char lo_i = i == 1 ? lo : 0x80, hi_i = i == 1 ? hi : 0xBF;
        if (i >= len || s[i] < lo_i || s[i] > hi_i) {
            *bad = i;
            return 0;
        }
    }
    return need;
}

size_t tok_utf8_valid_prefix(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* ASCII eight bytes at a time: the common case. */
        while (i + 8 <= len) {
            unsigned long long w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= len)
            break;
        size_t bad, n = sequence_at(s + i, len - i, &bad);
        if (n == 0)
            return i;
        i += n;
    }
    return len;
}

size_t tok_utf8_repair(const unsigned char *s, size_t len, unsigned char *out)
{
    size_t i = 0, o = 0;
    /* While four bytes are left, every sequence fits in one: copy four
     * (out has the slack) and move by the sequence's length, with no call
     * to memcpy for a variable length. ASCII skips the decoding. */
    while (i + 4 <= len) {
        if (s[i] < 0x80) {
            out[o++] = s[i++];
            continue;
        }
        size_t bad, n = sequence_at(s + i, 4, &bad);
        if (n) {
            memcpy(out + o, s + i, 4);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += bad;
        }
    }
    while (i < len) {
        size_t bad, n = sequence_at(s + i, len - i, &bad);
        if (n) {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        } else {
            out[o++] = 0xEF;
            out[o++] = 0xBF;
            out[o++] = 0xBD;
            i += bad;
        }
    }
    return o;
}
