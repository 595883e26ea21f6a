#include "pretok.h"

#include <string.h>

/* tiktoken's patterns (from the npm package's encoders/<name>.json), with
 * \s and \S spelt out as the Unicode White_Space set that Rust's regex
 * crate uses: PCRE2's \s leaves out U+0085. */
#define WS                                                                     \
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}"     \
    "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

static const char o200k_pattern[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}"
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*"
    "|[" WS "]*[\\r\\n]+"
    "|[" WS "]+(?![^" WS "])"
    "|[" WS "]+";

static const char cl100k_pattern[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
                                     "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
                                     "|\\p{N}{1,3}"
                                     "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*"
                                     "|[" WS "]*[\\r\\n]+"
                                     "|[" WS "]+(?![^" WS "])"
                                     "|[" WS "]+";

bool tok_pretok_init(struct tok_pretok *pt, enum tok_encoding_id id)
{
    const char *pattern = id == TOK_O200K_BASE ? o200k_pattern : cl100k_pattern;
    int err;
    PCRE2_SIZE at;
    pt->o200k = id == TOK_O200K_BASE;
    pt->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                           PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err,
                           &at, NULL);
    if (!pt->re)
        return false; /* cannot happen with these fixed patterns */
    /* Without JIT (e.g. an unsupported CPU) pcre2_match still works. */
    (void)pcre2_jit_compile(pt->re, PCRE2_JIT_COMPLETE);
    return true;
}

void tok_pretok_free(struct tok_pretok *pt)
{
    pcre2_code_free(pt->re);
    pt->re = NULL;
}

void tok_piece_iter_init(struct tok_piece_iter *it, const struct tok_pretok *pt,
                         const unsigned char *s, size_t len,
                         pcre2_match_data *md, bool ascii_fast)
{
    *it = (struct tok_piece_iter){pt, s, len, 0, ascii_fast, md};
}

enum { C_UPPER = 1, C_LOWER = 2, C_DIGIT = 4, C_SPACE = 8, C_NL = 16 };
#define C_LETTER (C_UPPER | C_LOWER)
/* Two more classes, disjoint from the bits above: a byte >= 0x80 (decided
 * by PCRE2) and the end of the text. */
#define NONASCII 0x40
#define END 0x80

/* The class of every byte; "other" (0) is ASCII punctuation and control
 * characters, [^\s\p{L}\p{N}]. */
#define O 0
#define UP C_UPPER
#define LO C_LOWER
#define D C_DIGIT
#define S C_SPACE
#define NL (C_SPACE | C_NL)
#define X NONASCII
static const unsigned char byte_class[256] = {
    O,  O,  O,  O,  O,  O,  O,  O,  O,  S,  NL, S,  S,  NL, O,  O,  O,  O,  O,
    O,  O,  O,  O,  O,  O,  O,  O,  O,  O,  O,  O,  O,  S,  O,  O,  O,  O,  O,
    O,  O,  O,  O,  O,  O,  O,  O,  O,  O,  D,  D,  D,  D,  D,  D,  D,  D,  D,
    D,  O,  O,  O,  O,  O,  O,  O,  UP, UP, UP, UP, UP, UP, UP, UP, UP, UP, UP,
    UP, UP, UP, UP, UP, UP, UP, UP, UP, UP, UP, UP, UP, UP, UP, O,  O,  O,  O,
    O,  O,  LO, LO, LO, LO, LO, LO, LO, LO, LO, LO, LO, LO, LO, LO, LO, LO, LO,
    LO, LO, LO, LO, LO, LO, LO, LO, LO, O,  O,  O,  O,  O,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,
};
#undef O
#undef UP
#undef LO
#undef D
#undef S
#undef NL
#undef X

/* U+FFFD (EF BF BD), what invalid UTF-8 becomes: a symbol (So), so
 * "other" like ASCII punctuation. Random bytes turn into runs of it, and
 * PCRE2 for each of those pieces would cost more than the merge. */
static inline bool is_fffd(const unsigned char *s, size_t len, size_t i)
{
    return s[i] == 0xEF && i + 2 < len && s[i + 1] == 0xBF && s[i + 2] == 0xBD;
}

/* The class of the character at s[i]: U+FFFD is "other", any other
 * non-ASCII character NONASCII. */
static inline unsigned cls(const unsigned char *s, size_t len, size_t i)
{
    if (i >= len)
        return END;
    unsigned c = byte_class[s[i]];
    if (__builtin_expect(c == NONASCII, 0) && is_fffd(s, len, i))
        return 0;
    return c;
}

/* Bytes of the character at s[i] when its class is known not to be
 * NONASCII or END: 3 for U+FFFD, else 1. */
static inline size_t width(const unsigned char *s, size_t i)
{
    return s[i] == 0xEF ? 3 : 1;
}

static inline bool is_other(unsigned c)
{
    return c == 0;
}

/* Length of a contraction ('s 't 're 've 'm 'll 'd, any case) at s[i], 0 if
 * none, (size_t)-1 if a non-ASCII byte decides it (U+017F folds to s). */
static inline size_t contraction(const unsigned char *s, size_t len, size_t i)
{
    if (i >= len || s[i] != '\'')
        return 0;
    if (i + 1 >= len)
        return 0;
    unsigned char a = s[i + 1];
    if (a >= 0x80)
        return (size_t)-1;
    a |= 0x20;
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if (a != 'r' && a != 'v' && a != 'l')
        return 0;
    if (i + 2 >= len)
        return 0;
    unsigned char b = s[i + 2];
    if (b >= 0x80)
        return (size_t)-1; /* K-like folds are not in play, but stay exact */
    b |= 0x20;
    return (a == 'l' ? b == 'l' : b == 'e') ? 3 : 0;
}

/* [^\s\p{L}\p{N}]+ then [\r\n]* (and '/' for o200k) from i; 0 if a
 * non-ASCII byte is reached. */
static inline size_t other_run(bool o200k, const unsigned char *s, size_t len,
                               size_t i)
{
    size_t j = i;
    while (is_other(cls(s, len, j)))
        j += width(s, j);
    if (cls(s, len, j) == NONASCII)
        return 0;
    for (;;) {
        unsigned c = cls(s, len, j);
        if (c == NONASCII || c == END)
            break; /* [\r\n/]* stops: nothing non-ASCII qualifies */
        if ((c & C_NL) || (o200k && s[j] == '/'))
            j++;
        else
            break;
    }
    return j - i;
}

size_t tok_ascii_piece(bool o200k, const unsigned char *s, size_t len,
                       size_t pos)
{
    unsigned c0 = cls(s, len, pos);
    if (c0 == NONASCII)
        return 0;
    size_t w0 = c0 == 0 ? width(s, pos) : 1;
    unsigned c1 = cls(s, len, pos + w0);
    /* cl100k: a contraction first. */
    if (!o200k && s[pos] == '\'') {
        size_t k = contraction(s, len, pos);
        if (k == (size_t)-1)
            return 0;
        if (k)
            return k;
    }
    /* Letters, with an optional leading [^\r\n\p{L}\p{N}]. */
    size_t i = pos;
    if (!(c0 & (C_NL | C_LETTER | C_DIGIT)) && c0 != END) {
        if (c1 == NONASCII)
            return 0; /* a non-ASCII letter may follow the prefix */
        if (c1 & C_LETTER)
            i = pos + w0;
    }
    if (cls(s, len, i) & C_LETTER) {
        size_t j = i;
        if (o200k) { /* [upper]*[lower]+ | [upper]+[lower]* */
            while (cls(s, len, j) == C_UPPER)
                j++;
            while (cls(s, len, j) == C_LOWER)
                j++;
        } else {
            while (cls(s, len, j) & C_LETTER)
                j++;
        }
        if (cls(s, len, j) == NONASCII)
            return 0; /* accented letters and marks continue the run */
        if (o200k) {
            size_t k = contraction(s, len, j);
            if (k == (size_t)-1)
                return 0;
            j += k;
        }
        return j - pos;
    }
    if (c0 == C_DIGIT) {
        size_t j = pos;
        while (j - pos < 3 && cls(s, len, j) == C_DIGIT)
            j++;
        if (j - pos < 3 && cls(s, len, j) == NONASCII)
            return 0; /* other scripts' digits are \p{N} too */
        return j - pos;
    }
    /* " ?[^\s\p{L}\p{N}]+[\r\n]*" */
    if (is_other(c0))
        return other_run(o200k, s, len, pos);
    if (s[pos] == ' ' && is_other(c1)) {
        size_t k = other_run(o200k, s, len, pos + 1);
        return k ? 1 + k : 0;
    }
    /* Whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+ */
    size_t j = pos, last_nl = 0;
    bool nl = false;
    while (cls(s, len, j) & C_SPACE) {
        if (cls(s, len, j) & C_NL) {
            nl = true;
            last_nl = j;
        }
        j++;
    }
    if (cls(s, len, j) == NONASCII)
        return 0; /* U+00A0 and friends are \s */
    if (nl)
        return last_nl + 1 - pos;
    if (j >= len || j - pos == 1)
        return j - pos;
    return j - pos - 1;
}

bool tok_piece_next_pcre2(struct tok_piece_iter *it, size_t *start, size_t *end)
{
    int rc =
        pcre2_jit_match(it->pt->re, it->s, it->len, it->pos, 0, it->md, NULL);
    if (rc == PCRE2_ERROR_JIT_BADOPTION) /* no JIT on this machine */
        rc = pcre2_match(it->pt->re, it->s, it->len, it->pos,
                         PCRE2_NO_UTF_CHECK, it->md, NULL);
    if (rc < 0) {
        /* Every character matches some branch, so only resource limits end
         * up here: count the rest as one piece rather than losing it. */
        *start = it->pos;
        *end = it->pos = it->len;
        return true;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(it->md);
    *start = ov[0];
    *end = it->pos = ov[1];
    return true;
}
