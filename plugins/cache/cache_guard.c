#include "cache_guard.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FEATS 64
#define MAX_WORDS 1024
#define TEXT_MAX 16384

enum { F_NUM, F_QUOTE, F_CODE, F_URL, F_OPP, F_ENT, F_KINDS };

struct span {
    uint32_t off, len;
};

/* What one prompt says that must agree with the other. */
struct feats {
    char *text; /* working copy: code and URLs blanked once read */
    char *buf;  /* normalised feature strings */
    size_t used, cap;
    struct span item[F_KINDS][MAX_FEATS];
    size_t n[F_KINDS];
    struct span word[MAX_WORDS]; /* every word, lower-cased, in buf */
    size_t nwords;
    int negations;
    bool overflow;
};

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}
static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}
static bool is_upper(unsigned char c)
{
    return c >= 'A' && c <= 'Z';
}
static bool is_letter(unsigned char c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}
/* UTF-8 bytes count as letters: names in other scripts stay words. */
static bool is_wordch(unsigned char c)
{
    return is_letter(c) || is_digit(c) || c >= 0x80;
}
static char lower(char c)
{
    return is_upper((unsigned char)c) ? (char)(c | 0x20) : c;
}

/* Copies s (lower-cased when asked) into buf; the span, or overflow. */
static bool save(struct feats *f, const char *s, size_t len, bool fold,
                 struct span *out)
{
    if (f->used + len > f->cap) {
        f->overflow = true;
        return false;
    }
    for (size_t i = 0; i < len; i++)
        f->buf[f->used + i] = fold ? lower(s[i]) : s[i];
    out->off = (uint32_t)f->used;
    out->len = (uint32_t)len;
    f->used += len;
    return true;
}

static void add(struct feats *f, int kind, const char *s, size_t len, bool fold)
{
    if (f->n[kind] == MAX_FEATS) {
        f->overflow = true;
        return;
    }
    if (save(f, s, len, fold, &f->item[kind][f->n[kind]]))
        f->n[kind]++;
}

static bool word_in(const char *w, size_t len, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strlen(list[i]) == len && memcmp(list[i], w, len) == 0)
            return true;
    return false;
}

static const char *const negation_words[] = {
    "not",     "no",      "never",   "none",    "nobody",    "nothing",
    "neither", "nor",     "nowhere", "without", "cannot",    "dont",
    "doesnt",  "didnt",   "isnt",    "arent",   "wasnt",     "werent",
    "cant",    "couldnt", "wont",    "wouldnt", "shouldnt",  "havent",
    "hasnt",   "hadnt",   "mustnt",  "except",  "excluding", "exclude",
    "neednt",  "aint",    NULL};

/* Each member of a pair flips the other's answer. */
static const char *const opposite_words[] = {
    "more",       "less",          "fewer",     "most",      "least",
    "before",     "after",         "above",     "below",     "over",
    "under",      "increase",      "decrease",  "ascending", "descending",
    "max",        "min",           "maximum",   "minimum",   "largest",
    "smallest",   "biggest",       "highest",   "lowest",    "longest",
    "shortest",   "first",         "last",      "best",      "worst",
    "true",       "false",         "add",       "remove",    "enable",
    "disable",    "encrypt",       "decrypt",   "encode",    "decode",
    "upper",      "lower",         "uppercase", "lowercase", "start",
    "end",        "open",          "close",     "input",     "output",
    "import",     "export",        "buy",       "sell",      "win",
    "lose",       "early",         "late",      "earliest",  "latest",
    "oldest",     "newest",        "cheapest",  "expensive", "hot",
    "cold",       "left",          "right",     "north",     "south",
    "east",       "west",          "positive",  "negative",  "always",
    "sometimes",  "inside",        "outside",   "from",      "to",
    "into",       "between",       "faster",    "slower",    "higher",
    "lower",      "larger",        "smaller",   "bigger",    "older",
    "younger",    "better",        "worse",     "pros",      "cons",
    "advantages", "disadvantages", "benefits",  "risks",     "same",
    "different",  "similar",       "opposite",  "synonym",   "antonym",
    "male",       "female",        "he",        "she",       "him",
    "her",        "his",           "hers",      "past",      "future",
    "yesterday",  "today",         "tomorrow",  "morning",   "evening",
    "night",      "day",           "week",      "month",     "year",
    NULL};

static const char *const number_words[] = {
    "zero",     "one",      "two",      "three",   "four",    "five",
    "six",      "seven",    "eight",    "nine",    "ten",     "eleven",
    "twelve",   "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty",   "thirty",  "forty",   "fifty",
    "sixty",    "seventy",  "eighty",   "ninety",  "hundred", "thousand",
    "million",  "billion",  "trillion", "second",  "third",   "fourth",
    "fifth",    "sixth",    "seventh",  "eighth",  "ninth",   "tenth",
    "half",     "quarter",  "double",   "triple",  "twice",   "thrice",
    "dozen",    "once",     "single",   "pair",    "couple",  "percent",
    "plus",     "minus",    "times",    "divided", "squared", "cubed",
    NULL};

/* Capitalised words that start sentences and name nothing. */
static const char *const common_words[] = {
    "i",        "i'm",      "i've",      "i'd",       "i'll",      "a",
    "an",       "the",      "what",      "what's",    "whats",     "how",
    "how's",    "why",      "who",       "whom",      "whose",     "when",
    "where",    "which",    "is",        "are",       "was",       "were",
    "am",       "be",       "can",       "could",     "would",     "should",
    "will",     "shall",    "may",       "might",     "must",      "do",
    "does",     "did",      "have",      "has",       "had",       "please",
    "tell",     "explain",  "describe",  "write",     "give",      "list",
    "show",     "find",     "help",      "create",    "generate",  "make",
    "convert",  "compare",  "define",    "calculate", "compute",   "name",
    "provide",  "suggest",  "recommend", "summarize", "summarise", "translate",
    "let",      "let's",    "lets",      "hi",        "hello",     "hey",
    "thanks",   "thank",    "yes",       "ok",        "okay",      "it",
    "it's",     "its",      "this",      "that",      "these",     "those",
    "there",    "here",     "if",        "and",       "but",       "or",
    "so",       "we",       "you",       "your",      "our",       "they",
    "he",       "she",      "my",        "me",        "in",        "on",
    "at",       "for",      "of",        "to",        "from",      "with",
    "by",       "about",    "as",        "also",      "now",       "then",
    "just",     "some",     "any",       "all",       "each",      "every",
    "other",    "another",  "such",      "into",      "again",     "quick",
    "quickly",  "briefly",  "simply",    "kindly",    "dear",      "ques",
    "question", "answer",   "q",         "a:",        "is",        "in",
    "use",      "using",    "get",       "set",       "need",      "want",
    "looking",  "could",    "would",     "may",       "check",     "fix",
    "add",      "remove",   "update",    "delete",    "print",     "return",
    "read",     "rewrite",  "rephrase",  "tl;dr",     "note",      "hint",
    "example",  "examples", "step",      "steps",     "answer:",   "question:",
    "briefly,", "also,",    NULL};

static bool take_negation(const char *w, size_t len)
{
    char tmp[32];
    size_t n = 0;
    if (len >= sizeof tmp)
        return false;
    for (size_t i = 0; i < len; i++) /* don't = dont, can’t = cant */
        if (w[i] != '\'')
            tmp[n++] = w[i];
    return word_in(tmp, n, negation_words);
}

/* ```fenced``` and `inline` code: read whole, then blanked. */
static void read_code(struct feats *f, char *t, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (t[i] != '`')
            continue;
        size_t ticks = 1;
        while (i + ticks < len && t[i + ticks] == '`' && ticks < 3)
            ticks++;
        size_t j = i + ticks, end = 0;
        for (; j + ticks <= len; j++) {
            size_t k = 0;
            while (k < ticks && t[j + k] == '`')
                k++;
            if (k == ticks) {
                end = j;
                break;
            }
        }
        if (!end)
            continue;
        add(f, F_CODE, t + i + ticks, end - i - ticks, false);
        memset(t + i, ' ', end + ticks - i);
        i = end + ticks - 1;
    }
}

static bool url_start(const char *t, size_t i, size_t len)
{
    static const char *const schemes[] = {"http://", "https://", "ftp://",
                                          "www.",    "file://",  NULL};
    for (size_t s = 0; schemes[s]; s++) {
        size_t n = strlen(schemes[s]);
        if (i + n <= len) {
            bool eq = true;
            for (size_t k = 0; k < n && eq; k++)
                eq = lower(t[i + k]) == schemes[s][k];
            if (eq)
                return true;
        }
    }
    return false;
}

static size_t trim_tail(const char *t, size_t start, size_t end)
{
    while (end > start && strchr(".,;:!?)]}'\"", t[end - 1]))
        end--;
    return end;
}

/* URLs and e-mail addresses, whole tokens; blanked once read. */
static void read_urls(struct feats *f, char *t, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && is_space((unsigned char)t[i]))
            i++;
        size_t s = i;
        while (i < len && !is_space((unsigned char)t[i]))
            i++;
        if (s == i)
            continue;
        size_t p = s;
        while (p < i && strchr("(<[\"'", t[p]))
            p++;
        const char *at = memchr(t + p, '@', i - p);
        bool url = url_start(t, p, len);
        bool mail = at && at > t + p && memchr(at, '.', (size_t)(t + i - at));
        if (!url && !mail)
            continue;
        size_t e = trim_tail(t, p, i);
        add(f, F_URL, t + p, e - p, url ? false : true);
        memset(t + s, ' ', i - s);
    }
}

static bool utf8_at(const char *t, size_t i, size_t len, const char *seq)
{
    size_t n = strlen(seq);
    return i + n <= len && memcmp(t + i, seq, n) == 0;
}

/* Quoted text: its content must be the same, character for character. */
static void read_quotes(struct feats *f, const char *t, size_t len)
{
    static const char *const pairs[][2] = {{"\"", "\""},
                                           {"\xe2\x80\x9c", "\xe2\x80\x9d"},
                                           {"\xe2\x80\x98", "\xe2\x80\x99"},
                                           {"\xc2\xab", "\xc2\xbb"},
                                           {"'", "'"}};
    for (size_t i = 0; i < len; i++) {
        for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
            if (!utf8_at(t, i, len, pairs[p][0]))
                continue;
            bool ascii1 = pairs[p][0][0] == '\'';
            /* An apostrophe (it's) does not open a quote. */
            if (ascii1 && i > 0 && !is_space((unsigned char)t[i - 1]) &&
                !strchr("([{", t[i - 1]))
                continue;
            size_t o = strlen(pairs[p][0]), c = strlen(pairs[p][1]);
            size_t j = i + o;
            for (; j < len; j++) {
                if (!utf8_at(t, j, len, pairs[p][1]))
                    continue;
                if (ascii1 && j + 1 < len && is_wordch((unsigned char)t[j + 1]))
                    continue; /* an apostrophe inside: 'don't' */
                break;
            }
            if (j >= len || j == i + o)
                continue;
            add(f, F_QUOTE, t + i + o, j - i - o, false);
            i = j + c - 1;
            break;
        }
    }
}

static bool looks_like_code(const char *w, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (strchr("(){}[]<>=;$|&\\_#~^", w[i]))
            return true;
        if (w[i] == '/' && i > 0 && i + 1 < len && /* a path: src/main.c */
            is_wordch((unsigned char)w[i - 1]) &&
            is_letter((unsigned char)w[i + 1]))
            return true;
        if (i + 1 < len && ((w[i] == ':' && w[i + 1] == ':') ||
                            (w[i] == '-' && w[i + 1] == '>')))
            return true;
        /* a dotted call or member: os.path, obj.method */
        if (w[i] == '.' && i > 0 && i + 1 < len &&
            is_letter((unsigned char)w[i - 1]) &&
            is_letter((unsigned char)w[i + 1]))
            return true;
    }
    return false;
}

/* Code-looking whitespace-separated tokens (f(x), a_b, $HOME, a=b). */
static void read_code_tokens(struct feats *f, const char *t, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && is_space((unsigned char)t[i]))
            i++;
        size_t s = i;
        while (i < len && !is_space((unsigned char)t[i]))
            i++;
        size_t e = trim_tail(t, s, i);
        while (s < e && (t[s] == '"' || t[s] == '\''))
            s++;
        if (e > s && looks_like_code(t + s, e - s))
            add(f, F_CODE, t + s, e - s, false);
    }
}

static bool is_operator(char c)
{
    return c && strchr("+-*/^%=<>", c) != NULL;
}

/* A number with the arithmetic around it: "2 + 2" -> "2+2", "1,000" ->
 * "1000", "-3.5", "10:30", "1st". Returns where it ended. */
static size_t read_number(struct feats *f, const char *t, size_t i, size_t len)
{
    char out[128];
    size_t n = 0;
    for (;;) {
        if (t[i] == '-' && n < sizeof out)
            out[n++] = t[i++];
        while (i < len && n < sizeof out) {
            char c = t[i];
            if (is_digit((unsigned char)c) || is_wordch((unsigned char)c)) {
                out[n++] = lower(c);
                i++;
            } else if ((c == '.' || c == ':' || c == '/') && i + 1 < len &&
                       is_digit((unsigned char)t[i + 1])) {
                out[n++] = c;
                i++;
            } else if (c == ',' && i + 1 < len &&
                       is_digit((unsigned char)t[i + 1])) {
                i++; /* thousands separator */
            } else {
                break;
            }
        }
        size_t j = i; /* an operator and another number? */
        while (j < len && t[j] == ' ')
            j++;
        if (j < len && is_operator(t[j]) && n + 1 < sizeof out) {
            size_t k = j + 1;
            while (k < len && t[k] == ' ')
                k++;
            if (k < len && (is_digit((unsigned char)t[k]) || t[k] == '(')) {
                out[n++] = t[j];
                i = k;
                if (t[i] == '(')
                    i++;
                continue;
            }
        }
        break;
    }
    add(f, F_NUM, out, n, false);
    return i;
}

static void read_word(struct feats *f, const char *t, size_t s, size_t e)
{
    const char *w = t + s;
    size_t len = e - s;
    char low[64];
    struct span sp;

    if (len >= sizeof low) { /* a very long word: a name or an id */
        add(f, F_ENT, w, len, true);
        return;
    }
    for (size_t i = 0; i < len; i++)
        low[i] = lower(w[i]);
    if (f->nwords < MAX_WORDS && save(f, low, len, false, &sp))
        f->word[f->nwords++] = sp;
    else
        f->overflow = true;
    if (take_negation(low, len))
        f->negations++;
    if (word_in(low, len, number_words))
        add(f, F_NUM, low, len, false);
    if (word_in(low, len, opposite_words))
        add(f, F_OPP, low, len, false);
    bool caps = false;
    for (size_t i = 0; i < len && !caps; i++)
        caps = is_upper((unsigned char)w[i]);
    if (caps && !word_in(low, len, common_words))
        add(f, F_ENT, low, len, false);
}

static void read_words(struct feats *f, const char *t, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)t[i];
        bool neg_num = c == '-' && i + 1 < len &&
                       is_digit((unsigned char)t[i + 1]) &&
                       (i == 0 || !is_wordch((unsigned char)t[i - 1]));
        if (is_digit(c) || neg_num) {
            i = read_number(f, t, i, len);
        } else if (is_wordch(c)) {
            size_t s = i;
            /* apostrophes inside words: don't, it's, O'Neil */
            while (i < len && (is_wordch((unsigned char)t[i]) ||
                               (t[i] == '\'' && i + 1 < len &&
                                is_letter((unsigned char)t[i + 1]))))
                i++;
            read_word(f, t, s, i);
        } else {
            i++;
        }
    }
}

/* can’t -> can't, in place, once quotes are read (’ also closes ‘..’). */
static size_t typographic_apostrophes(char *t, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (utf8_at(t, i, len, "\xe2\x80\x99")) {
            t[o++] = '\'';
            i += 2;
        } else {
            t[o++] = t[i];
        }
    }
    t[o] = '\0';
    return o;
}

static struct feats *extract(const char *s, size_t len)
{
    if (len > TEXT_MAX)
        return NULL;
    struct feats *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->text = malloc(len + 1);
    f->cap = 2 * len + 64;
    f->buf = malloc(f->cap);
    if (!f->text || !f->buf) {
        free(f->text);
        free(f->buf);
        free(f);
        return NULL;
    }
    memcpy(f->text, s, len);
    f->text[len] = '\0';
    read_code(f, f->text, len);
    read_urls(f, f->text, len);
    read_quotes(f, f->text, len);
    read_code_tokens(f, f->text, len);
    len = typographic_apostrophes(f->text, len);
    read_words(f, f->text, len);
    return f;
}

static void release(struct feats *f)
{
    if (!f)
        return;
    free(f->text);
    free(f->buf);
    free(f);
}

static bool span_eq(const struct feats *fa, struct span a,
                    const struct feats *fb, struct span b)
{
    return a.len == b.len &&
           memcmp(fa->buf + a.off, fb->buf + b.off, a.len) == 0;
}

/* Same items in the same order. */
static bool same_sequence(const struct feats *a, const struct feats *b, int k)
{
    if (a->n[k] != b->n[k])
        return false;
    for (size_t i = 0; i < a->n[k]; i++)
        if (!span_eq(a, a->item[k][i], b, b->item[k][i]))
            return false;
    return true;
}

/* Same items as sets: every item of one is somewhere in the other. */
static bool covered(const struct feats *a, const struct feats *b, int k)
{
    for (size_t i = 0; i < a->n[k]; i++) {
        bool found = false;
        for (size_t j = 0; j < b->n[k] && !found; j++)
            found = span_eq(a, a->item[k][i], b, b->item[k][j]);
        if (!found)
            return false;
    }
    return true;
}

static bool same_set(const struct feats *a, const struct feats *b, int k)
{
    return covered(a, b, k) && covered(b, a, k);
}

/* Same items, counted (multisets). */
static bool same_multiset(struct feats *a, struct feats *b, int k)
{
    if (a->n[k] != b->n[k])
        return false;
    /* A quadratic match: the lists are short (MAX_FEATS). */
    bool used[MAX_FEATS] = {false};
    for (size_t i = 0; i < a->n[k]; i++) {
        bool found = false;
        for (size_t j = 0; j < b->n[k] && !found; j++)
            if (!used[j] && span_eq(a, a->item[k][i], b, b->item[k][j]))
                found = used[j] = true;
        if (!found)
            return false;
    }
    return true;
}

/* Each name of one prompt is a word of the other, in any case. */
static bool names_present(const struct feats *a, const struct feats *b)
{
    for (size_t i = 0; i < a->n[F_ENT]; i++) {
        bool found = false;
        for (size_t j = 0; j < b->nwords && !found; j++)
            found = span_eq(a, a->item[F_ENT][i], b, b->word[j]);
        if (!found)
            return false;
    }
    return true;
}

static bool is_name(const struct feats *w, struct span word,
                    const struct feats *a, const struct feats *b)
{
    for (size_t i = 0; i < a->n[F_ENT]; i++)
        if (span_eq(w, word, a, a->item[F_ENT][i]))
            return true;
    for (size_t i = 0; i < b->n[F_ENT]; i++)
        if (span_eq(w, word, b, b->item[F_ENT][i]))
            return true;
    return false;
}

/* The names of both prompts occur in the same order in each ("from
 * English to German" is not "from German to English"). */
static bool names_in_order(const struct feats *a, const struct feats *b)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < a->nwords && !is_name(a, a->word[i], a, b))
            i++;
        while (j < b->nwords && !is_name(b, b->word[j], a, b))
            j++;
        if (i == a->nwords || j == b->nwords)
            return i == a->nwords && j == b->nwords;
        if (!span_eq(a, a->word[i], b, b->word[j]))
            return false;
        i++;
        j++;
    }
}

enum cache_guard_rule cache_guard_check(const char *a, size_t alen,
                                        const char *b, size_t blen)
{
    struct feats *fa = extract(a, alen), *fb = extract(b, blen);
    enum cache_guard_rule r = CACHE_GUARD_AGREE;

    if (!fa || !fb || fa->overflow || fb->overflow)
        r = CACHE_GUARD_TOO_LONG;
    else if (!same_sequence(fa, fb, F_NUM))
        r = CACHE_GUARD_NUMBERS;
    else if (!same_multiset(fa, fb, F_QUOTE))
        r = CACHE_GUARD_QUOTES;
    else if (!same_multiset(fa, fb, F_CODE))
        r = CACHE_GUARD_CODE;
    else if (!same_multiset(fa, fb, F_URL))
        r = CACHE_GUARD_URLS;
    else if (fa->negations != fb->negations)
        r = CACHE_GUARD_NEGATION;
    else if (!same_set(fa, fb, F_OPP))
        r = CACHE_GUARD_OPPOSITES;
    else if (!names_present(fa, fb) || !names_present(fb, fa) ||
             !names_in_order(fa, fb))
        r = CACHE_GUARD_ENTITIES;
    release(fa);
    release(fb);
    return r;
}

const char *cache_guard_rule_name(enum cache_guard_rule rule)
{
    static const char *const names[CACHE_GUARD_RULES] = {
        "agree",    "numbers",   "quotes",   "code",    "urls",
        "negation", "opposites", "entities", "too_long"};
    return rule < CACHE_GUARD_RULES ? names[rule] : "unknown";
}
