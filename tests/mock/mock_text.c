#include "mock_text.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ABOUT_CHARS 40

static const char *const filler[] = {
    "lorem",      "ipsum", "dolor",  "sit",   "amet",    "consectetur",
    "adipiscing", "elit",  "sed",    "do",    "eiusmod", "tempor",
    "incididunt", "ut",    "labore", "et",    "dolore",  "magna",
    "aliqua",     "enim",  "ad",     "minim", "veniam",  "quis",
};
#define NFILLER (sizeof(filler) / sizeof(filler[0]))

static bool is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

size_t mock_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += !is_cont((unsigned char)s[i]);
    return n;
}

size_t mock_utf8_prefix(const char *s, size_t len, size_t max_bytes)
{
    if (len <= max_bytes)
        return len;
    size_t n = max_bytes;
    while (n > 0 && is_cont((unsigned char)s[n]))
        n--;
    return n;
}

long mock_tokens_for_chars(size_t chars)
{
    long t = (long)((chars + 3) / 4);
    return t < 1 ? 1 : t;
}

/* Bytes of the first ABOUT_CHARS code points of about. */
static size_t about_prefix(const char *about, size_t len)
{
    size_t i = 0, chars = 0;
    while (i < len) {
        if (!is_cont((unsigned char)about[i]) && chars++ == ABOUT_CHARS)
            break;
        i++;
    }
    return i;
}

static bool is_space(unsigned char c)
{
    return c <= ' ' || c == 0x7f;
}

/* Calls emit(word) for every word of the natural reply; returns count. */
static long natural_words(const char *about, size_t len,
                          void (*emit)(void *, const char *, size_t), void *arg)
{
    static const char *const lead[] = {"mock", "reply", "to:"};
    long n = 0;
    for (size_t i = 0; i < 3; i++, n++)
        if (emit)
            emit(arg, lead[i], strlen(lead[i]));
    size_t end = about_prefix(about, len), i = 0;
    while (i < end) {
        while (i < end && is_space((unsigned char)about[i]))
            i++;
        size_t start = i;
        while (i < end && !is_space((unsigned char)about[i]))
            i++;
        if (i > start) {
            if (emit)
                emit(arg, about + start, i - start);
            n++;
        }
    }
    return n;
}

long mock_text_natural_words(const char *about, size_t about_len)
{
    return natural_words(about, about_len, NULL, NULL);
}

struct builder {
    struct mock_text *t;
    long want;
    size_t cap;
    bool failed;
};

static void add_word(void *arg, const char *w, size_t n)
{
    struct builder *b = arg;
    struct mock_text *t = b->t;
    if (b->failed || t->nwords >= b->want)
        return;
    size_t need = t->len + n + 2;
    if (need > b->cap) {
        size_t cap = b->cap * 2 > need ? b->cap * 2 : need;
        char *buf = realloc(t->buf, cap);
        if (!buf) {
            b->failed = true;
            return;
        }
        t->buf = buf;
        b->cap = cap;
    }
    if (t->nwords > 0)
        t->buf[t->len++] = ' ';
    t->starts[t->nwords++] = t->len;
    memcpy(t->buf + t->len, w, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

int mock_text_make(struct mock_text *t, const char *about, size_t about_len,
                   long words)
{
    memset(t, 0, sizeof(*t));
    struct builder b = {.t = t, .want = words < 0 ? 0 : words, .cap = 64};
    t->starts = malloc(sizeof(size_t) * (size_t)(b.want + 1));
    t->buf = malloc(b.cap);
    if (!t->starts || !t->buf) {
        mock_text_free(t);
        return -1;
    }
    t->buf[0] = '\0';
    natural_words(about, about_len, add_word, &b);
    for (size_t i = 0; t->nwords < b.want && !b.failed; i++)
        add_word(&b, filler[i % NFILLER], strlen(filler[i % NFILLER]));
    if (b.failed) {
        mock_text_free(t);
        return -1;
    }
    t->starts[t->nwords] = t->len + 1;
    return 0;
}

/* Offset where the piece starting at word i begins (its leading space). */
static size_t boundary(const struct mock_text *t, long i)
{
    return i == 0 ? 0 : t->starts[i] - 1;
}

void mock_text_piece(const struct mock_text *t, long chunk, long nchunks,
                     const char **p, size_t *n)
{
    long a = chunk * t->nwords / nchunks;
    long b = (chunk + 1) * t->nwords / nchunks;
    size_t from = boundary(t, a), to = boundary(t, b);
    *p = t->buf + from;
    *n = to - from;
}

void mock_text_free(struct mock_text *t)
{
    free(t->buf);
    free(t->starts);
    memset(t, 0, sizeof(*t));
}
