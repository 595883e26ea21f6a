/* Strict JSON scanning, bug-compatible with jansson 2.14's json_loadb()
 * under JSON_REJECT_DUPLICATES (see json_scan.h).
 *
 * The scanner is jansson's lexer and parser rewritten over a byte buffer:
 * the same tokens, read in the same order, with the same one-character
 * lookahead after numbers and literals, so that the first error it meets
 * is the one jansson meets (an invalid UTF-8 byte in a lookahead position
 * is a UTF-8 error, not a syntax error) and the consumed offset matches
 * jansson's stream position. Two of jansson's quirks are kept on purpose:
 *   - one NUL byte straight after a number or literal is skipped (jansson
 *     ungets the lookahead into a buffer where NUL means "empty");
 *   - Unicode escapes are checked after the whole string was read, so an
 *     unpaired surrogate loses to any later error in the same string.
 * Strings are scanned 16 bytes at a time (SSE2; 8 with plain 64-bit
 * arithmetic elsewhere); only quotes, backslashes, control characters and
 * non-ASCII bytes leave the fast loop, and runs of non-ASCII characters
 * are validated four bytes at a time.
 */
#include "json_scan.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define SPAN_MIN 32    /* values this long (bytes) get a skip index entry */
#define LINEAR_KEYS 32 /* objects with more keys switch to the hash table */
#define INLINE_FRAMES 32
#define INLINE_KEYS 64
#define TEXT_MAX 160 /* jansson's JSON_ERROR_TEXT_LENGTH */

enum {
    T_ERROR = -2,   /* an error was recorded */
    T_INVALID = -1, /* not a token; the parser reports it */
    T_EOF = 0,
    T_STRING = 256,
    T_INTEGER,
    T_REAL,
    T_TRUE,
    T_FALSE,
    T_NULL,
};

struct key {
    size_t pos; /* first byte after the opening quote */
    size_t raw; /* bytes between the quotes */
    size_t len; /* decoded bytes */
    uint32_t hash;
    bool escaped;
};

struct frame {
    size_t pos;      /* offset of '{' or '[' */
    size_t slot;     /* reserved skip index entry */
    size_t key_base; /* first key of this object on the key stack */
    size_t nkeys;
    bool object;
    bool hashed; /* keys are in the hash table */
};

struct hslot {
    size_t obj; /* object offset + 1; 0 = empty */
    size_t key; /* index on the key stack */
    uint32_t hash;
};

struct scanner {
    const unsigned char *b;
    size_t n;
    size_t p;   /* consumed: jansson's stream position */
    size_t tok; /* start of the current token (jansson's saved text) */
    bool drop_nul;
    uint64_t seed;
    /* the last string token */
    size_t str_len;
    bool str_esc, str_nul;
    struct jscan_doc *doc;
    struct jscan_error *err;
    struct frame *frames;
    size_t nframes, frame_cap;
    struct key *keys;
    size_t nkeys, key_cap;
    struct hslot *table;
    size_t table_cap, table_used;
    struct frame inline_frames[INLINE_FRAMES];
    struct key inline_keys[INLINE_KEYS];
};

/* ---- small helpers ---- */

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define NOINLINE __attribute__((noinline))

/* C_SKIP: what the cursor skips between tokens of a validated document:
 * whitespace and the NUL bytes jansson drops after numbers and literals */
enum { C_WS = 1, C_PUNCT = 2, C_SKIP = 4 };
static const unsigned char char_class[256] = {
    [' '] = C_WS | C_SKIP,  ['\t'] = C_WS | C_SKIP, ['\n'] = C_WS | C_SKIP,
    ['\r'] = C_WS | C_SKIP, [0] = C_SKIP,           ['{'] = C_PUNCT,
    ['}'] = C_PUNCT,        ['['] = C_PUNCT,        [']'] = C_PUNCT,
    [':'] = C_PUNCT,        [','] = C_PUNCT,
};

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static uint32_t hex4(const unsigned char *p)
{
    return (uint32_t)(hex_val(p[0]) << 12 | hex_val(p[1]) << 8 |
                      hex_val(p[2]) << 4 | hex_val(p[3]));
}

static size_t utf8_size(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static size_t utf8_put(unsigned char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at p (p[0] >= 0x80), 0 if invalid:
 * a stray continuation byte, an overlong form, a surrogate, beyond
 * U+10FFFF or cut short by the end of the buffer. */
static inline size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t len = c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
    if (!len || (size_t)(end - p) < len)
        return 0;
    /* the second byte's range excludes overlong forms (E0, F0),
     * surrogates (ED) and code points above U+10FFFF (F4) */
    unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    unsigned hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    if (p[1] < lo || p[1] > hi)
        return 0;
    if (len > 2 && (p[2] & 0xC0) != 0x80)
        return 0;
    if (len > 3 && (p[3] & 0xC0) != 0x80)
        return 0;
    return len;
}

/* Skips the common UTF-8 sequences from q on: 2, 3 and 4 bytes with a
 * lead byte whose second byte may be any continuation byte. Stops at
 * anything else (ASCII, the end, E0/ED/F0/F4 leads, invalid bytes), for
 * utf8_seq() to judge. */
static inline size_t utf8_run(const unsigned char *b, size_t q, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (n - q >= 4) {
        uint32_t w;
        memcpy(&w, b + q, 4);
        unsigned c = w & 0xFF;
        if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            if ((w & 0xC0C000u) != 0x808000u)
                break;
            q += 3;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if ((w & 0xC000u) != 0x8000u)
                break;
            q += 2;
        } else if (c >= 0xF1 && c <= 0xF3) {
            if ((w & 0xC0C0C000u) != 0x80808000u)
                break;
            q += 4;
        } else {
            break;
        }
    }
#endif
    return q;
}

#define REP(x) (0x0101010101010101ull * (uint64_t)(x))

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SWAR 1
/* High bit set in (at least) the lowest byte of w that is a quote, a
 * backslash, a control character or non-ASCII. Bits above the lowest may
 * be false positives (borrows), so only the lowest set bit is used. */
static uint64_t string_stops(uint64_t w)
{
    uint64_t q = w ^ REP('"'), bs = w ^ REP('\\');
    return (((q - REP(1)) & ~q) | ((bs - REP(1)) & ~bs) |
            ((w - REP(0x20)) & ~w) | w) &
           REP(0x80);
}

static uint64_t quote_or_backslash(uint64_t w)
{
    uint64_t q = w ^ REP('"'), bs = w ^ REP('\\');
    return (((q - REP(1)) & ~q) | ((bs - REP(1)) & ~bs)) & REP(0x80);
}
#else
#define SWAR 0
#endif

/* First byte at or after q that ends a run of plain string bytes. */
static inline size_t find_string_stop(const unsigned char *b, size_t q,
                                      size_t n)
{
#if defined(__SSE2__)
    /* signed: bytes >= 0x80 are negative, so "< 0x20" also flags them */
    const __m128i quote = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    while (n - q >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + q));
        int m = _mm_movemask_epi8(_mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bs)),
            _mm_cmplt_epi8(v, space)));
        if (m)
            return q + (size_t)__builtin_ctz((unsigned)m);
        q += 16;
    }
#endif
#if SWAR
    while (n - q >= 8) {
        uint64_t w;
        memcpy(&w, b + q, 8);
        uint64_t m = string_stops(w);
        if (m)
            return q + ((size_t)__builtin_ctzll(m) >> 3);
        q += 8;
    }
#endif
    while (q < n && b[q] != '"' && b[q] != '\\' && b[q] >= 0x20 && b[q] < 0x80)
        q++;
    return q;
}

/* In a validated string: the next quote or backslash at or after q. */
static inline size_t find_quote_or_backslash(const unsigned char *b, size_t q,
                                             size_t n)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\');
    while (n - q >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + q));
        int m = _mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bs)));
        if (m)
            return q + (size_t)__builtin_ctz((unsigned)m);
        q += 16;
    }
#endif
#if SWAR
    while (n - q >= 8) {
        uint64_t w;
        memcpy(&w, b + q, 8);
        uint64_t m = quote_or_backslash(w);
        if (m)
            return q + ((size_t)__builtin_ctzll(m) >> 3);
        q += 8;
    }
#endif
    while (q < n && b[q] != '"' && b[q] != '\\')
        q++;
    return q;
}

/* Decodes the next character of a validated string at *q into out;
 * returns its byte count, 0 at the closing quote. */
static size_t decode_next(const unsigned char *b, size_t *q,
                          unsigned char out[4])
{
    size_t i = *q;
    if (b[i] == '"')
        return 0;
    if (b[i] != '\\') {
        out[0] = b[i];
        *q = i + 1;
        return 1;
    }
    unsigned char c = b[i + 1];
    *q = i + 2;
    switch (c) {
    case 'b':
        out[0] = '\b';
        return 1;
    case 'f':
        out[0] = '\f';
        return 1;
    case 'n':
        out[0] = '\n';
        return 1;
    case 'r':
        out[0] = '\r';
        return 1;
    case 't':
        out[0] = '\t';
        return 1;
    case 'u': {
        uint32_t v = hex4(b + i + 2);
        *q = i + 6;
        if (v >= 0xD800 && v <= 0xDBFF) { /* validated: a low half follows */
            uint32_t lo = hex4(b + i + 8);
            v = ((v - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
            *q = i + 12;
        }
        return utf8_put(out, v);
    }
    default: /* '"', '\\', '/' */
        out[0] = c;
        return 1;
    }
}

/* ---- key hashing ---- */

static uint64_t process_seed(void)
{
    static _Atomic uint64_t seed;
    uint64_t s = atomic_load_explicit(&seed, memory_order_relaxed);
    if (s)
        return s;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s)
        s = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uintptr_t)&s;
    s |= 1;
    atomic_store_explicit(&seed, s, memory_order_relaxed);
    return s;
}

static uint64_t hash_mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    return h ^ (h >> 32);
}

/* The last n (< 8) bytes, as a little-endian word; `readable` bytes from
 * tail may be read. */
static uint64_t tail_word(const unsigned char *tail, size_t n, size_t readable)
{
    uint64_t w = 0;
#if SWAR
    if (readable >= 8) {
        memcpy(&w, tail, 8);
        return n ? w & (~0ull >> (64 - 8 * n)) : 0;
    }
#endif
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)tail[i] << (8 * i);
    return w;
}

static uint32_t hash_final(uint64_t h, uint64_t w)
{
    h = hash_mix(h, w) * 0xc4ceb9fe1a85ec53ull;
    return (uint32_t)(h >> 32);
}

/* Seeded hash of a key's decoded bytes. */
static uint32_t key_hash(const struct scanner *s, const struct key *k)
{
    uint64_t h = s->seed ^ k->len;
    if (!k->escaped) {
        const unsigned char *p = s->b + k->pos;
        size_t n = k->raw;
        for (; n >= 8; p += 8, n -= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            h = hash_mix(h, w);
        }
        return hash_final(h, tail_word(p, n, (size_t)(s->b + s->n - p)));
    }
    unsigned char chunk[12];
    size_t have = 0, q = k->pos;
    for (;;) {
        size_t got = decode_next(s->b, &q, chunk + have);
        if (!got)
            break;
        have += got;
        if (have >= 8) {
            uint64_t w;
            memcpy(&w, chunk, 8);
            h = hash_mix(h, w);
            memmove(chunk, chunk + 8, have - 8);
            have -= 8;
        }
    }
    return hash_final(h, tail_word(chunk, have, 0));
}

static bool keys_equal(const struct scanner *s, const struct key *a,
                       const struct key *k)
{
    if (a->len != k->len)
        return false;
    if (!a->escaped && !k->escaped)
        return memcmp(s->b + a->pos, s->b + k->pos, a->len) == 0;
    size_t qa = a->pos, qk = k->pos, na = 0, nk = 0, ia = 0, ik = 0;
    unsigned char ba[4], bk[4];
    for (;;) {
        if (ia == na) {
            na = decode_next(s->b, &qa, ba);
            ia = 0;
        }
        if (ik == nk) {
            nk = decode_next(s->b, &qk, bk);
            ik = 0;
        }
        if (!na || !nk)
            return !na && !nk;
        if (ba[ia++] != bk[ik++])
            return false;
    }
}

/* ---- errors ---- */

static void line_col(const unsigned char *b, size_t off, size_t tok, int *line,
                     int *col)
{
    int l = 1, c = 0;
    for (size_t i = 0; i < off; i++) {
        unsigned char x = b[i];
        if (x == '\n') {
            l++;
            c = 0;
        } else if ((x & 0xC0) != 0x80 && (x != 0 || i >= tok)) {
            /* jansson counts characters, not bytes; a NUL it skipped
             * after a number or literal was never counted */
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* snprintf that may truncate, as jansson's fixed-size messages do. */
static void text_printf(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

/* Records the first error, worded as jansson's error_set() words it: the
 * text of the current token so far as context when it is short. */
static void fail(struct scanner *s, enum jscan_status st, size_t consumed,
                 const char *fmt, ...)
{
    struct jscan_error *e = s->err;
    if (e->status != JSCAN_OK)
        return;
    char msg[TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t tok = s->tok < consumed ? s->tok : consumed;
    size_t saved = consumed - tok;
    const char *text = (const char *)s->b + tok;
    if (saved > 0 && text[0] != '\0') {
        if (saved <= 20)
            text_printf(e->text, sizeof e->text, "%s near '%.*s'", msg,
                        (int)strnlen(text, saved), text);
        else
            text_printf(e->text, sizeof e->text, "%s", msg);
    } else if (st == JSCAN_UTF8) {
        text_printf(e->text, sizeof e->text, "%s", msg);
    } else {
        text_printf(e->text, sizeof e->text, "%s near end of file", msg);
    }
    e->status = st;
    e->offset = consumed;
    line_col(s->b, consumed, tok, &e->line, &e->column);
}

static void fail_utf8(struct scanner *s, size_t at)
{
    fail(s, JSCAN_UTF8, at, "unable to decode byte 0x%x", s->b[at]);
}

static void fail_nomem(struct scanner *s)
{
    fail(s, JSCAN_NOMEM, s->p, "out of memory");
}

/* jansson reads the character at q: -1 at the end, -2 (error recorded)
 * for invalid UTF-8, else the byte. */
static int peek(struct scanner *s, size_t q)
{
    if (q >= s->n)
        return -1;
    unsigned c = s->b[q];
    if (c >= 0x80 && !utf8_seq(s->b + q, s->b + s->n)) {
        fail_utf8(s, q);
        return -2;
    }
    return (int)c;
}

/* ---- growable arrays ---- */

static bool grow(void **items, size_t *cap, size_t size, const void *inline_buf)
{
    size_t ncap = *cap * 2;
    void *p;
    if (*items == inline_buf) {
        p = malloc(ncap * size);
        if (p)
            memcpy(p, *items, *cap * size);
    } else {
        p = realloc(*items, ncap * size);
    }
    if (!p)
        return false;
    *items = p;
    *cap = ncap;
    return true;
}

static struct jscan_span *span_add(struct scanner *s)
{
    struct jscan_doc *d = s->doc;
    if (d->nspans == d->span_cap && !grow((void **)&d->spans, &d->span_cap,
                                          sizeof *d->spans, d->inline_spans)) {
        fail_nomem(s);
        return NULL;
    }
    return &d->spans[d->nspans++];
}

/* ---- lexer ---- */

static bool int_fits(const unsigned char *digits, size_t n, bool neg)
{
    if (n != 19)
        return n < 19;
    return memcmp(digits, neg ? "9223372036854775808" : "9223372036854775807",
                  19) <= 0;
}

/* Whether jansson's strtod() of the number text [p, p+n) overflows.
 * Returns -1 when out of memory. */
static int real_overflows(const unsigned char *p, size_t n, size_t int_digits,
                          bool int_zero, long exp)
{
    /* |value| < 10^(int_digits + exp): below DBL_MAX (~1.8e308) when that
     * power is at most 308, the common case, which needs no strtod. */
    long mag =
        (int_zero ? 0 : (long)(int_digits > 100000 ? 100000 : int_digits)) +
        exp;
    if (mag <= 308)
        return 0;
    char small[64];
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf)
        return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    errno = 0;
    double v = strtod(buf, NULL);
    int overflow = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
    if (buf != small)
        free(buf);
    return overflow;
}

static NOINLINE int lex_number(struct scanner *s, size_t p)
{
    const unsigned char *b = s->b;
    size_t q = p;
    bool neg = b[q] == '-';
    if (neg)
        q++;
    size_t int_start = q;
    int c = peek(s, q);
    if (c == -2)
        return T_ERROR;
    if (c == '0') {
        c = peek(s, ++q);
        if (c == -2)
            return T_ERROR;
        if (is_digit(c)) { /* leading zero */
            s->p = q;
            return T_INVALID;
        }
    } else if (is_digit(c)) {
        do
            c = peek(s, ++q);
        while (is_digit(c));
        if (c == -2)
            return T_ERROR;
    } else {
        s->p = q;
        return T_INVALID;
    }
    size_t int_digits = q - int_start;
    if (c != '.' && c != 'e' && c != 'E') {
        s->p = q;
        if (!int_fits(b + int_start, int_digits, neg)) {
            fail(s, JSCAN_SYNTAX, q,
                 neg ? "too big negative integer" : "too big integer");
            return T_ERROR;
        }
        s->drop_nul = true;
        return T_INTEGER;
    }
    if (c == '.') {
        c = peek(s, ++q);
        if (c == -2)
            return T_ERROR;
        if (!is_digit(c)) {
            s->p = q;
            return T_INVALID;
        }
        do
            c = peek(s, ++q);
        while (is_digit(c));
        if (c == -2)
            return T_ERROR;
    }
    long exp = 0;
    if (c == 'e' || c == 'E') {
        bool exp_neg = false;
        c = peek(s, ++q);
        if (c == '+' || c == '-') {
            exp_neg = c == '-';
            c = peek(s, ++q);
        }
        if (c == -2)
            return T_ERROR;
        if (!is_digit(c)) {
            s->p = q;
            return T_INVALID;
        }
        do {
            if (exp < 1000000)
                exp = exp * 10 + (c - '0');
            c = peek(s, ++q);
        } while (is_digit(c));
        if (c == -2)
            return T_ERROR;
        if (exp_neg)
            exp = -exp;
    }
    s->p = q;
    int of = real_overflows(b + p, q - p, int_digits,
                            int_digits == 1 && b[int_start] == '0', exp);
    if (of < 0) {
        fail_nomem(s);
        return T_ERROR;
    }
    if (of) {
        fail(s, JSCAN_SYNTAX, q, "real number overflow");
        return T_ERROR;
    }
    s->drop_nul = true;
    return T_REAL;
}

static int lex_word(struct scanner *s, size_t p)
{
    const unsigned char *b = s->b;
    size_t q = p;
    while (q < s->n && is_alpha(b[q]))
        q++;
    s->p = q;
    if (peek(s, q) == -2) /* the lookahead jansson reads */
        return T_ERROR;
    size_t n = q - p;
    int t = T_INVALID;
    if (n == 4 && memcmp(b + p, "true", 4) == 0)
        t = T_TRUE;
    else if (n == 5 && memcmp(b + p, "false", 5) == 0)
        t = T_FALSE;
    else if (n == 4 && memcmp(b + p, "null", 4) == 0)
        t = T_NULL;
    if (t != T_INVALID)
        s->drop_nul = true;
    return t;
}

static inline int lex_string(struct scanner *s, size_t p)
{
    const unsigned char *b = s->b;
    size_t n = s->n, q = p + 1, saved = 0;
    bool esc = false, nul = false;
    uint32_t pending_high = 0; /* a high surrogate directly before "\u" */
    int bad = 0;               /* first surrogate error: 1 or 2 escapes */
    uint32_t bad1 = 0, bad2 = 0;

    for (;;) {
        q = find_string_stop(b, q, n);
        if (q >= n) {
            s->p = n;
            fail(s, JSCAN_SYNTAX, n, "premature end of input");
            return T_ERROR;
        }
        unsigned c = b[q];
        if (c == '"')
            break;
        if (c >= 0x80) { /* a run of non-ASCII characters */
            do {
                q = utf8_run(b, q, n);
                if (q >= n || b[q] < 0x80)
                    break;
                size_t k = utf8_seq(b + q, b + n);
                if (!k) {
                    s->p = q;
                    fail_utf8(s, q);
                    return T_ERROR;
                }
                q += k;
            } while (q < n && b[q] >= 0x80);
            continue;
        }
        if (c < 0x20) { /* jansson ungets it: not consumed */
            s->p = q;
            if (c == '\n')
                fail(s, JSCAN_SYNTAX, q, "unexpected newline");
            else
                fail(s, JSCAN_SYNTAX, q, "control character 0x%x", c);
            return T_ERROR;
        }
        /* a backslash */
        esc = true;
        int e = peek(s, q + 1);
        if (e == -2)
            return T_ERROR;
        if (e != 'u') {
            if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' ||
                e == 'n' || e == 'r' || e == 't') {
                q += 2;
                saved += 1;
                continue;
            }
            s->p = e < 0 ? n : q + 2;
            fail(s, JSCAN_SYNTAX, s->p, "invalid escape");
            return T_ERROR;
        }
        uint32_t v = 0;
        for (int i = 0; i < 4; i++) {
            int h = peek(s, q + 2 + (size_t)i);
            if (h == -2)
                return T_ERROR;
            int d = hex_val(h);
            if (d < 0) {
                s->p = h < 0 ? n : q + 3 + (size_t)i;
                fail(s, JSCAN_SYNTAX, s->p, "invalid escape");
                return T_ERROR;
            }
            v = v << 4 | (uint32_t)d;
        }
        q += 6;
        if (pending_high) {
            if (v >= 0xDC00 && v <= 0xDFFF) {
                saved += 12 - 4;
            } else if (!bad) {
                bad = 2;
                bad1 = pending_high;
                bad2 = v;
            }
            pending_high = 0;
        } else if (v >= 0xD800 && v <= 0xDBFF) {
            if (q + 1 < n && b[q] == '\\' && b[q + 1] == 'u') {
                pending_high = v;
            } else if (!bad) {
                bad = 1;
                bad1 = v;
            }
        } else if (v >= 0xDC00 && v <= 0xDFFF) {
            if (!bad) {
                bad = 1;
                bad1 = v;
            }
        } else {
            saved += 6 - utf8_size(v);
            if (v == 0)
                nul = true;
        }
    }
    s->p = q + 1;
    if (bad == 1) {
        fail(s, JSCAN_SYNTAX, s->p, "invalid Unicode '\\u%04X'",
             (unsigned)bad1);
        return T_ERROR;
    }
    if (bad == 2) {
        fail(s, JSCAN_SYNTAX, s->p, "invalid Unicode '\\u%04X\\u%04X'",
             (unsigned)bad1, (unsigned)bad2);
        return T_ERROR;
    }
    s->str_len = q - p - 1 - saved;
    s->str_esc = esc;
    s->str_nul = nul;
    return T_STRING;
}

/* Numbers, literals and anything that is not a token. */
static NOINLINE int lex_other(struct scanner *s, size_t p)
{
    const unsigned char *b = s->b;
    unsigned c = b[p];
    if (c == '-' || is_digit((int)c))
        return lex_number(s, p);
    if (is_alpha((int)c))
        return lex_word(s, p);
    if (c >= 0x80) {
        size_t k = utf8_seq(b + p, b + s->n);
        if (!k) {
            s->p = p;
            fail_utf8(s, p);
            return T_ERROR;
        }
        s->p = p + k;
        return T_INVALID;
    }
    s->p = p + 1;
    return T_INVALID;
}

/* jansson's lex_scan: skips whitespace and reads one token. */
static inline int lex(struct scanner *s)
{
    const unsigned char *b = s->b;
    size_t p = s->p, n = s->n;
    if (UNLIKELY(s->drop_nul)) {
        s->drop_nul = false;
        if (p < n && b[p] == 0)
            p++;
    }
    while (p < n && (char_class[b[p]] & C_WS))
        p++;
    s->tok = p;
    if (UNLIKELY(p >= n)) {
        s->p = n;
        return T_EOF;
    }
    unsigned c = b[p];
    if (c == '"')
        return lex_string(s, p);
    if (char_class[c] & C_PUNCT) {
        s->p = p + 1;
        return (int)c;
    }
    return lex_other(s, p);
}

/* ---- parser ---- */

static bool push_frame(struct scanner *s, bool object)
{
    if (s->nframes == s->frame_cap &&
        !grow((void **)&s->frames, &s->frame_cap, sizeof *s->frames,
              s->inline_frames)) {
        fail_nomem(s);
        return false;
    }
    struct frame *f = &s->frames[s->nframes];
    f->pos = s->tok;
    f->slot = s->doc->nspans;
    f->key_base = s->nkeys;
    f->nkeys = 0;
    f->object = object;
    f->hashed = false;
    if (!span_add(s))
        return false;
    s->nframes++;
    return true;
}

static void pop_frame(struct scanner *s)
{
    struct frame *f = &s->frames[--s->nframes];
    struct jscan_doc *d = s->doc;
    if (s->p - f->pos >= SPAN_MIN) {
        struct jscan_span *sp = &d->spans[f->slot];
        sp->pos = f->pos;
        sp->end = s->p;
        sp->len = 0;
        sp->escaped = false;
    } else {
        /* short, so nothing inside it was long either: the slot is last */
        d->nspans = f->slot;
    }
    s->nkeys = f->key_base;
}

static bool table_insert(struct scanner *s, size_t obj, size_t key, uint32_t h)
{
    if ((s->table_used + 1) * 2 > s->table_cap) {
        size_t ncap = s->table_cap ? s->table_cap * 2 : 256;
        struct hslot *t = calloc(ncap, sizeof *t);
        if (!t)
            return false;
        for (size_t i = 0; i < s->table_cap; i++) {
            if (!s->table[i].obj)
                continue;
            size_t j = s->table[i].hash & (ncap - 1);
            while (t[j].obj)
                j = (j + 1) & (ncap - 1);
            t[j] = s->table[i];
        }
        free(s->table);
        s->table = t;
        s->table_cap = ncap;
    }
    size_t j = h & (s->table_cap - 1);
    while (s->table[j].obj)
        j = (j + 1) & (s->table_cap - 1);
    s->table[j].obj = obj;
    s->table[j].key = key;
    s->table[j].hash = h;
    s->table_used++;
    return true;
}

static uint32_t table_hash(size_t obj, uint32_t key_hash)
{
    uint64_t h = ((uint64_t)obj * 0x9E3779B97F4A7C15ull) ^ key_hash;
    h *= 0xff51afd7ed558ccdull;
    return (uint32_t)(h >> 32);
}

/* Adds the key just lexed to the current object. 1 = duplicate,
 * -1 = out of memory. */
static int add_key(struct scanner *s)
{
    struct frame *f = &s->frames[s->nframes - 1];
    struct key k = {
        .pos = s->tok + 1,
        .raw = s->p - s->tok - 2,
        .len = s->str_len,
        .escaped = s->str_esc,
    };
    k.hash = key_hash(s, &k);
    size_t obj = f->pos + 1;
    if (f->hashed) {
        uint32_t h = table_hash(obj, k.hash);
        for (size_t j = h & (s->table_cap - 1); s->table[j].obj;
             j = (j + 1) & (s->table_cap - 1)) {
            const struct hslot *t = &s->table[j];
            if (t->hash == h && t->obj == obj &&
                keys_equal(s, &s->keys[t->key], &k))
                return 1;
        }
    } else {
        for (size_t i = f->key_base; i < s->nkeys; i++)
            if (s->keys[i].hash == k.hash && keys_equal(s, &s->keys[i], &k))
                return 1;
    }
    if (s->nkeys == s->key_cap &&
        !grow((void **)&s->keys, &s->key_cap, sizeof *s->keys, s->inline_keys))
        return -1;
    size_t idx = s->nkeys++;
    s->keys[idx] = k;
    f->nkeys++;
    if (f->hashed)
        return table_insert(s, obj, idx, table_hash(obj, k.hash)) ? 0 : -1;
    if (f->nkeys > LINEAR_KEYS) {
        f->hashed = true;
        for (size_t i = f->key_base; i < s->nkeys; i++)
            if (!table_insert(s, obj, i, table_hash(obj, s->keys[i].hash)))
                return -1;
    }
    return 0;
}

static void scanner_free(struct scanner *s)
{
    if (s->frames != s->inline_frames)
        free(s->frames);
    if (s->keys != s->inline_keys)
        free(s->keys);
    free(s->table);
}

static void syntax(struct scanner *s, const char *what)
{
    fail(s, JSCAN_SYNTAX, s->p, "%s", what);
}

/* jansson's parse_json/parse_value/parse_object/parse_array, iterative. */
static bool parse(struct scanner *s)
{
    int t = lex(s);
    if (t == T_ERROR)
        return false;
    if (t != '[' && t != '{') {
        syntax(s, "'[' or '{' expected");
        return false;
    }
    s->doc->root = s->tok;

value: /* t is the value's first token */
    if (s->nframes + 1 > JSCAN_MAX_DEPTH) {
        syntax(s, "maximum parsing depth reached");
        return false;
    }
    switch (t) {
    case T_STRING:
        if (s->str_nul) {
            syntax(s, "\\u0000 is not allowed without JSON_ALLOW_NUL");
            return false;
        }
        if (s->p - s->tok >= SPAN_MIN) {
            struct jscan_span *sp = span_add(s);
            if (!sp)
                return false;
            sp->pos = s->tok;
            sp->end = s->p;
            sp->len = s->str_len;
            sp->escaped = s->str_esc;
        }
        goto done;
    case T_INTEGER:
    case T_REAL:
    case T_TRUE:
    case T_FALSE:
    case T_NULL:
        goto done;
    case '{':
        if (!push_frame(s, true))
            return false;
        t = lex(s);
        if (t == '}') {
            pop_frame(s);
            goto done;
        }
        goto key;
    case '[':
        if (!push_frame(s, false))
            return false;
        t = lex(s);
        if (t == ']') {
            pop_frame(s);
            goto done;
        }
        if (t == T_EOF) {
            syntax(s, "']' expected");
            return false;
        }
        goto value;
    case T_ERROR:
        return false;
    case T_INVALID:
        syntax(s, "invalid token");
        return false;
    default:
        syntax(s, "unexpected token");
        return false;
    }

key: /* t is the token where a key should be */
    if (t == T_ERROR)
        return false;
    if (t != T_STRING) {
        syntax(s, "string or '}' expected");
        return false;
    }
    if (s->str_nul) {
        syntax(s, "NUL byte in object key not supported");
        return false;
    }
    switch (add_key(s)) {
    case 0:
        break;
    case 1:
        syntax(s, "duplicate object key");
        return false;
    default:
        fail_nomem(s);
        return false;
    }
    t = lex(s);
    if (t == T_ERROR)
        return false;
    if (t != ':') {
        syntax(s, "':' expected");
        return false;
    }
    t = lex(s);
    goto value;

done: /* a value ended */
    if (s->nframes == 0) {
        t = lex(s);
        if (t == T_ERROR)
            return false;
        if (t != T_EOF) {
            syntax(s, "end of file expected");
            return false;
        }
        return true;
    }
    t = lex(s);
    if (t == T_ERROR)
        return false;
    if (s->frames[s->nframes - 1].object) {
        if (t == ',') {
            t = lex(s);
            goto key;
        }
        if (t != '}') {
            syntax(s, "'}' expected");
            return false;
        }
    } else {
        if (t == ',') {
            t = lex(s);
            if (t == T_EOF) {
                syntax(s, "']' expected");
                return false;
            }
            goto value;
        }
        if (t != ']') {
            syntax(s, "']' expected");
            return false;
        }
    }
    pop_frame(s);
    goto done;
}

enum jscan_status jscan_document(struct jscan_doc *doc, const char *buf,
                                 size_t len, struct jscan_error *err)
{
    struct scanner s;
    s.b = (const unsigned char *)buf;
    s.n = len;
    s.p = s.tok = 0;
    s.drop_nul = false;
    s.seed = process_seed();
    s.str_len = 0;
    s.str_esc = s.str_nul = false;
    s.doc = doc;
    s.err = err;
    s.frames = s.inline_frames;
    s.nframes = 0;
    s.frame_cap = INLINE_FRAMES;
    s.keys = s.inline_keys;
    s.nkeys = 0;
    s.key_cap = INLINE_KEYS;
    s.table = NULL;
    s.table_cap = s.table_used = 0;

    doc->buf = buf;
    doc->len = len;
    doc->root = 0;
    doc->spans = doc->inline_spans;
    doc->nspans = 0;
    doc->span_cap = JSCAN_INLINE_SPANS;
    err->status = JSCAN_OK;
    err->line = err->column = 0;
    err->offset = 0;
    err->text[0] = '\0';

    bool ok = buf != NULL && parse(&s);
    scanner_free(&s);
    if (ok)
        return JSCAN_OK;
    if (err->status == JSCAN_OK) /* buf == NULL */
        fail(&s, JSCAN_SYNTAX, 0, "wrong arguments");
    jscan_doc_free(doc);
    return err->status;
}

void jscan_doc_free(struct jscan_doc *doc)
{
    if (doc->spans != doc->inline_spans)
        free(doc->spans);
    doc->spans = doc->inline_spans;
    doc->nspans = 0;
    doc->span_cap = JSCAN_INLINE_SPANS;
}

/* ---- reading a validated document ---- */

static inline size_t skip_ws(const unsigned char *b, size_t p, size_t n)
{
    while (p < n && (char_class[b[p]] & C_SKIP))
        p++;
    return p;
}

static inline size_t string_end(const unsigned char *b, size_t p, size_t n,
                                size_t *len, bool *escaped)
{
    size_t q = p + 1, saved = 0;
    bool esc = false;
    for (;;) {
        q = find_quote_or_backslash(b, q, n);
        if (b[q] == '"')
            break;
        esc = true;
        if (b[q + 1] != 'u') {
            saved += 1;
            q += 2;
            continue;
        }
        uint32_t v = hex4(b + q + 2);
        if (v >= 0xD800 && v <= 0xDBFF) {
            saved += 12 - 4;
            q += 12;
        } else {
            saved += 6 - utf8_size(v);
            q += 6;
        }
    }
    *len = q - p - 1 - saved;
    *escaped = esc;
    return q + 1;
}

static size_t container_end(const unsigned char *b, size_t p, size_t n)
{
    size_t depth = 0;
    for (;;) {
        unsigned char c = b[p];
        if (c == '"') {
            size_t len;
            bool esc;
            p = string_end(b, p, n, &len, &esc);
            continue;
        }
        p++;
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return p;
        }
    }
}

static inline const struct jscan_span *span_at(const struct jscan_doc *d,
                                               size_t *idx, size_t pos)
{
    size_t i = *idx;
    while (i < d->nspans && d->spans[i].pos < pos)
        i++;
    *idx = i;
    return i < d->nspans && d->spans[i].pos == pos ? &d->spans[i] : NULL;
}

static inline void read_value(const struct jscan_doc *d, size_t *span, size_t p,
                              struct jscan_val *v)
{
    const unsigned char *b = (const unsigned char *)d->buf;
    const struct jscan_span *sp;
    v->pos = p;
    v->len = 0;
    v->escaped = false;
    v->inner = 0;
    switch (b[p]) {
    case '"':
        v->type = JSCAN_STRING;
        sp = span_at(d, span, p);
        if (sp) {
            v->end = sp->end;
            v->len = sp->len;
            v->escaped = sp->escaped;
        } else {
            v->end = string_end(b, p, d->len, &v->len, &v->escaped);
        }
        return;
    case '{':
    case '[':
        v->type = b[p] == '{' ? JSCAN_OBJECT : JSCAN_ARRAY;
        sp = span_at(d, span, p);
        v->end = sp ? sp->end : container_end(b, p, d->len);
        v->inner = *span + (sp != NULL);
        return;
    case 't':
        v->type = JSCAN_TRUE;
        v->end = p + 4;
        return;
    case 'f':
        v->type = JSCAN_FALSE;
        v->end = p + 5;
        return;
    case 'n':
        v->type = JSCAN_NULL;
        v->end = p + 4;
        return;
    default: {
        size_t q = p;
        bool real = false;
        for (; q < d->len; q++) {
            unsigned char c = b[q];
            if (c == '.' || c == 'e' || c == 'E')
                real = true;
            else if (!is_digit(c) && c != '-' && c != '+')
                break;
        }
        v->type = real ? JSCAN_REAL : JSCAN_INTEGER;
        v->end = q;
        return;
    }
    }
}

void jscan_doc_root(const struct jscan_doc *doc, struct jscan_val *out)
{
    size_t span = 0;
    read_value(doc, &span, doc->root, out);
}

void jscan_iter_begin(struct jscan_iter *it, const struct jscan_doc *doc,
                      const struct jscan_val *container)
{
    it->doc = doc;
    it->pos = container->pos + 1;
    it->object = container->type == JSCAN_OBJECT;
    it->span = container->inner;
}

bool jscan_iter_next(struct jscan_iter *it, struct jscan_val *key,
                     struct jscan_val *val)
{
    const struct jscan_doc *d = it->doc;
    const unsigned char *b = (const unsigned char *)d->buf;
    size_t p = skip_ws(b, it->pos, d->len);
    if (b[p] == ']' || b[p] == '}')
        return false;
    if (b[p] == ',')
        p = skip_ws(b, p + 1, d->len);
    if (it->object) {
        struct jscan_val k;
        read_value(d, &it->span, p, &k);
        if (key)
            *key = k;
        p = skip_ws(b, k.end, d->len) + 1; /* past ':' */
        p = skip_ws(b, p, d->len);
    }
    read_value(d, &it->span, p, val);
    it->pos = val->end;
    return true;
}

bool jscan_string_equals(const struct jscan_doc *doc, const struct jscan_val *s,
                         const char *name, size_t name_len)
{
    if (s->type != JSCAN_STRING || s->len != name_len)
        return false;
    const unsigned char *b = (const unsigned char *)doc->buf;
    if (!s->escaped)
        return memcmp(b + s->pos + 1, name, name_len) == 0;
    size_t q = s->pos + 1, off = 0, got;
    unsigned char ch[4];
    while ((got = decode_next(b, &q, ch)) != 0) {
        if (memcmp(name + off, ch, got) != 0)
            return false;
        off += got;
    }
    return true;
}

bool jscan_object_find(const struct jscan_doc *doc, const struct jscan_val *obj,
                       const char *name, size_t name_len, struct jscan_val *out)
{
    struct jscan_iter it;
    struct jscan_val k;
    jscan_iter_begin(&it, doc, obj);
    while (jscan_iter_next(&it, &k, out))
        if (jscan_string_equals(doc, &k, name, name_len))
            return true;
    memset(out, 0, sizeof *out);
    return false;
}

void jscan_string_decode(const struct jscan_doc *doc, const struct jscan_val *s,
                         char *out)
{
    const unsigned char *b = (const unsigned char *)doc->buf;
    if (!s->escaped) {
        memcpy(out, b + s->pos + 1, s->len);
        return;
    }
    size_t q = s->pos + 1, off = 0, got;
    unsigned char ch[4];
    while ((got = decode_next(b, &q, ch)) != 0) {
        memcpy(out + off, ch, got);
        off += got;
    }
}

const char *jscan_string_raw(const struct jscan_doc *doc,
                             const struct jscan_val *s)
{
    return doc->buf + s->pos + 1;
}

int64_t jscan_integer_get(const struct jscan_doc *doc,
                          const struct jscan_val *v)
{
    const unsigned char *b = (const unsigned char *)doc->buf;
    size_t p = v->pos;
    bool neg = b[p] == '-';
    if (neg)
        p++;
    uint64_t mag = 0;
    for (; p < v->end; p++)
        mag = mag * 10 + (uint64_t)(b[p] - '0');
    if (!neg)
        return (int64_t)mag;
    return mag > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)mag;
}

double jscan_number_get(const struct jscan_doc *doc, const struct jscan_val *v)
{
    if (v->type == JSCAN_INTEGER)
        return (double)jscan_integer_get(doc, v);
    size_t n = v->end - v->pos;
    char small[64];
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf)
        return NAN; /* out of memory */
    memcpy(buf, doc->buf + v->pos, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    if (buf != small)
        free(buf);
    return d;
}
