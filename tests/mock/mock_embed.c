#include "mock_embed.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Separate seed space for 3-grams so "abc" the word and "abc" the
 * trigram land in different slots. */
#define TRIGRAM_SALT 0x9e3779b97f4a7c15ULL
#define FALLBACK_SALT 0xc2b2ae3d27d4eb4fULL

static bool is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static void add_feature(float *v, int dim, const char *p, size_t n,
                        uint64_t seed)
{
    uint64_t h = XXH64(p, n, seed);
    v[h % (uint64_t)dim] += (h >> 63) ? -1.0f : 1.0f;
}

/* Lower-cases ASCII letters and collapses every run of other characters
 * into one space, with a space at both ends: " hello world ". */
static size_t normalise(const char *text, size_t len, char *out)
{
    size_t n = 0;
    out[n++] = ' ';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (is_word_byte(c))
            out[n++] = (char)c;
        else if (out[n - 1] != ' ')
            out[n++] = ' ';
    }
    if (out[n - 1] != ' ')
        out[n++] = ' ';
    return n;
}

void mock_embed_text(const char *text, size_t len, uint64_t seed, float *v,
                     int dim)
{
    memset(v, 0, sizeof(float) * (size_t)dim);
    char *norm = malloc(len + 2);
    if (!norm)
        return;
    size_t n = normalise(text, len, norm);

    for (size_t i = 0; i < n;) {
        while (i < n && norm[i] == ' ')
            i++;
        size_t start = i;
        while (i < n && norm[i] != ' ')
            i++;
        if (i > start)
            add_feature(v, dim, norm + start, i - start, seed);
    }
    for (size_t i = 0; n >= 3 && i + 3 <= n; i++)
        add_feature(v, dim, norm + i, 3, seed ^ TRIGRAM_SALT);
    free(norm);

    double sum = 0;
    for (int i = 0; i < dim; i++)
        sum += (double)v[i] * v[i];
    if (sum == 0) {
        /* No word and no 3-gram (e.g. "?!"): still a unit vector, so
         * callers computing cosines never divide by zero. */
        add_feature(v, dim, text, len, seed ^ FALLBACK_SALT);
        return;
    }
    float scale = (float)(1.0 / sqrt(sum));
    for (int i = 0; i < dim; i++)
        v[i] *= scale;
}

char *mock_embed_base64(const float *v, int dim)
{
    static const char table[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = sizeof(float) * (size_t)dim;
    unsigned char *raw = malloc(len);
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!raw || !out) {
        free(raw);
        free(out);
        return NULL;
    }
    for (int i = 0; i < dim; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], sizeof(bits));
        for (int b = 0; b < 4; b++)
            raw[i * 4 + b] = (unsigned char)(bits >> (8 * b));
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t w = (uint32_t)raw[i] << 16;
        if (i + 1 < len)
            w |= (uint32_t)raw[i + 1] << 8;
        if (i + 2 < len)
            w |= raw[i + 2];
        out[o++] = table[(w >> 18) & 63];
        out[o++] = table[(w >> 12) & 63];
        out[o++] = i + 1 < len ? table[(w >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? table[w & 63] : '=';
    }
    out[o] = '\0';
    free(raw);
    return out;
}
