#include "image_size.h"

#include <stdlib.h>
#include <string.h>

uint64_t tok_image_tokens(unsigned width, unsigned height)
{
    double w = width, h = height;
    if (w > 2048 || h > 2048) {
        double s = 2048 / (w > h ? w : h);
        w *= s;
        h *= s;
    }
    double shortest = w < h ? w : h;
    if (shortest > 768) {
        double s = 768 / shortest;
        w *= s;
        h *= s;
    }
    uint64_t tw = (uint64_t)((w + 511) / 512), th = (uint64_t)((h + 511) / 512);
    return 170 * tw * th + 85;
}

static int b64(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Decodes up to cap bytes of base64 text; returns the bytes written. */
static size_t b64_decode(const char *s, size_t n, unsigned char *out,
                         size_t cap)
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && o < cap; i++) {
        int v = b64((unsigned char)s[i]);
        if (v < 0)
            break;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o;
}

static unsigned be16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static unsigned le16(const unsigned char *p)
{
    return p[0] | (unsigned)p[1] << 8;
}

/* JPEG: the first start-of-frame marker after any APPn/EXIF segments. */
static void jpeg_size(const unsigned char *p, size_t n, unsigned *w,
                      unsigned *h)
{
    size_t i = 2;
    while (i + 9 < n) {
        if (p[i] != 0xFF)
            return;
        unsigned char m = p[i + 1];
        if (m == 0xFF) {
            i++;
            continue;
        }
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            *h = be16(p + i + 5);
            *w = be16(p + i + 7);
            return;
        }
        i += 2 + be16(p + i + 2);
    }
}

void tok_image_size_from_data_url(const char *url, size_t len, unsigned *w,
                                  unsigned *h)
{
    *w = *h = 0;
    const char *comma = memchr(url, ',', len < 256 ? len : 256);
    if (len < 11 || memcmp(url, "data:image/", 11) != 0 || !comma ||
        comma - url < 7 || memcmp(comma - 7, ";base64", 7) != 0)
        return;
    const char *b = comma + 1;
    size_t blen = len - (size_t)(b - url);
    unsigned char buf[64];
    size_t n = b64_decode(b, blen, buf, sizeof buf);
    if (n >= 24 && memcmp(buf, "\x89PNG\r\n\x1a\n", 8) == 0) {
        *w = (unsigned)be16(buf + 18) | (unsigned)be16(buf + 16) << 16;
        *h = (unsigned)be16(buf + 22) | (unsigned)be16(buf + 20) << 16;
    } else if (n >= 10 && memcmp(buf, "GIF8", 4) == 0) {
        *w = le16(buf + 6);
        *h = le16(buf + 8);
    } else if (n >= 4 && buf[0] == 0xFF && buf[1] == 0xD8) {
        /* EXIF and other segments can precede the frame header. */
        size_t cap = 64 * 1024;
        unsigned char *jpeg = malloc(cap);
        if (jpeg) {
            jpeg_size(jpeg, b64_decode(b, blen, jpeg, cap), w, h);
            free(jpeg);
        }
    } else if (n >= 30 && memcmp(buf, "RIFF", 4) == 0 &&
               memcmp(buf + 8, "WEBPVP8", 7) == 0) {
        if (buf[15] == ' ') { /* lossy */
            *w = le16(buf + 26) & 0x3FFF;
            *h = le16(buf + 28) & 0x3FFF;
        } else if (buf[15] == 'L') { /* lossless: 14-bit fields */
            unsigned v = buf[21] | buf[22] << 8 | buf[23] << 16 |
                         (unsigned)buf[24] << 24;
            *w = (v & 0x3FFF) + 1;
            *h = ((v >> 14) & 0x3FFF) + 1;
        } else if (buf[15] == 'X') { /* extended: 24-bit minus one */
            *w = (buf[24] | buf[25] << 8 | (unsigned)buf[26] << 16) + 1;
            *h = (buf[27] | buf[28] << 8 | (unsigned)buf[29] << 16) + 1;
        }
    }
}
