/* Tokenizer throughput, single-threaded: MB/s over each input file, the
 * time for 1 MB adversarial inputs, and the cost tok_count_request
 * adds to a 2 KB chat request. One line of JSON per measurement.
 *   bench_tokens ENCODING FILE...        throughput per file
 *   bench_tokens --worst ENCODING [CJK]  1 MB adversarial inputs
 *     (BENCH_ONLY="random bytes|random letters": only those)
 *   bench_tokens --chat FILE             2 KB chat request, o200k_base */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_request.h"
#include "tokens/request_count.h"
#include "tokens/tokens.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Best of several runs of at least 0.3 s of this thread's CPU time, to see
 * through a busy machine. BENCH_ONCE=1: one call (for valgrind). */
static double best_seconds(const struct tok_encoding *e, const char *s,
                           size_t n, size_t *tokens)
{
    if (getenv("BENCH_ONCE")) {
        double t0 = now_s();
        *tokens = tok_count(e, s, n);
        return now_s() - t0;
    }
    double best = 1e9;
    for (int round = 0; round < 5; round++) {
        int reps = 0;
        double t0 = now_s(), t;
        do {
            *tokens = tok_count(e, s, n);
            reps++;
        } while ((t = now_s() - t0) < 0.3);
        if (t / reps < best)
            best = t / reps;
    }
    return best;
}

static int throughput(const char *encname, int argc, char **argv)
{
    int id = tok_encoding_lookup(encname, strlen(encname));
    double t0 = now_s();
    const struct tok_encoding *e = id < 0 ? NULL : tok_encoding_get(id);
    double load = now_s() - t0;
    if (!e)
        return 2;
    printf("{\"encoding\":\"%s\",\"load_ms\":%.2f}\n", encname, load * 1e3);
    for (int i = 0; i < argc; i++) {
        size_t n, tokens;
        char *s = slurp(argv[i], &n);
        if (!s)
            return 2;
        double t = best_seconds(e, s, n, &tokens);
        printf("{\"encoding\":\"%s\",\"file\":\"%s\",\"bytes\":%zu,"
               "\"tokens\":%zu,\"mb_s\":%.1f}\n",
               encname, argv[i], n, tokens, n / t / 1e6);
        free(s);
    }
    return 0;
}

/* xorshift64: the same random inputs on every run. */
static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* One adversarial 1 MB input into s (room for n bytes); its length. */
static size_t make_worst(const char *name, char *s, size_t n, const char *cjk,
                         size_t cjk_len)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    size_t len = 0;
    if (strcmp(name, "random bytes") == 0) {
        for (; len < n; len++)
            s[len] = (char)next_rand(&x);
    } else if (strcmp(name, "random letters") == 0) {
        for (; len < n; len++)
            s[len] = (char)('a' + next_rand(&x) % 26);
    } else if (strcmp(name, "random CJK") == 0) {
        for (; len + 3 <= n; len += 3) { /* U+4E00..U+9FFF */
            unsigned c = 0x4E00 + (unsigned)(next_rand(&x) % 0x5200);
            s[len] = (char)(0xE0 | c >> 12);
            s[len + 1] = (char)(0x80 | (c >> 6 & 63));
            s[len + 2] = (char)(0x80 | (c & 63));
        }
    } else if (strcmp(name, "CJK text, no spaces") == 0) {
        /* The CJK bench text without whitespace, repeated to 1 MB and cut
         * at a character boundary. */
        for (size_t i = 0; cjk_len && len < n; i = (i + 1) % cjk_len)
            if (cjk[i] != ' ' && cjk[i] != '\n' && cjk[i] != '\t' &&
                cjk[i] != '\r')
                s[len++] = cjk[i];
        while (len > 0 && ((unsigned char)s[len - 1] & 0xC0) == 0x80)
            len--;
        if (len > 0 && (unsigned char)s[len - 1] >= 0xC0)
            len--;
    } else { /* the name is the unit repeated */
        size_t k = strlen(name);
        for (; len + k <= n; len += k)
            memcpy(s + len, name, k);
    }
    return len;
}

/* Whether name is one of the '|'-separated names in only. */
static int selected(const char *only, const char *name)
{
    size_t k = strlen(name);
    for (const char *p = only; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == k && memcmp(p, name, k) == 0)
            return 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    return 0;
}

/* 1 MB inputs built to be slow: runs of one character, of a short
 * pattern, random bytes (invalid UTF-8), random letters and CJK with no
 * space to split them, CJK text without its spaces (from cjk_path). */
static int worst(const char *encname, const char *cjk_path)
{
    int id = tok_encoding_lookup(encname, strlen(encname));
    const struct tok_encoding *e = id < 0 ? NULL : tok_encoding_get(id);
    if (!e)
        return 2;
    static const char *const inputs[] = {"a",
                                         " ",
                                         "1",
                                         "!",
                                         "\n",
                                         "\xc3\xa9",
                                         "\xe4\xb8\x80",
                                         "\xf0\x9f\x98\x80",
                                         "ab",
                                         "a b",
                                         "abc",
                                         "random bytes",
                                         "random letters",
                                         "random CJK",
                                         "CJK text, no spaces"};
    size_t n = 1 << 20, cjk_len = 0;
    char *s = malloc(n), *cjk = cjk_path ? slurp(cjk_path, &cjk_len) : NULL;
    const char *only = getenv("BENCH_ONLY");
    for (size_t u = 0; u < sizeof inputs / sizeof inputs[0]; u++) {
        if (strcmp(inputs[u], "CJK text, no spaces") == 0 && !cjk)
            continue;
        if (only && !selected(only, inputs[u]))
            continue;
        size_t len = make_worst(inputs[u], s, n, cjk, cjk_len), tokens;
        double t = best_seconds(e, s, len, &tokens);
        printf("{\"encoding\":\"%s\",\"worst\":\"%s\",\"bytes\":%zu,"
               "\"tokens\":%zu,\"ms\":%.2f}\n",
               encname, inputs[u][0] == '\n' ? "\\n" : inputs[u], len, tokens,
               t * 1e3);
    }
    free(s);
    free(cjk);
    return 0;
}

static int chat(const char *path)
{
    size_t n;
    char *body = slurp(path, &n);
    const struct tok_encoding *e = tok_encoding_get(TOK_O200K_BASE);
    if (!body || !e)
        return 2;
    struct tok_request_count c;
    struct api_request req;
    struct api_error err;
    double best_count = 1e9, best_decode = 1e9;
    for (int round = 0; round < 5; round++) {
        int reps = 20000;
        double t0 = now_s();
        for (int i = 0; i < reps; i++)
            tok_count_request(API_CHAT, body, n, e, 0, &c);
        double t1 = now_s();
        for (int i = 0; i < reps; i++) {
            api_request_decode(API_CHAT, body, n, &req, &err);
            api_request_release(&req);
        }
        double t2 = now_s();
        if ((t1 - t0) / reps < best_count)
            best_count = (t1 - t0) / reps;
        if ((t2 - t1) / reps < best_decode)
            best_decode = (t2 - t1) / reps;
    }
    printf("{\"chat_bytes\":%zu,\"tokens\":%llu,\"count_us\":%.2f,"
           "\"decode_us\":%.2f}\n",
           n, (unsigned long long)c.tokens, best_count * 1e6,
           best_decode * 1e6);
    free(body);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--worst") == 0)
        return worst(argv[2], argc >= 4 ? argv[3] : NULL);
    if (argc >= 3 && strcmp(argv[1], "--chat") == 0)
        return chat(argv[2]);
    if (argc >= 3)
        return throughput(argv[1], argc - 2, argv + 2);
    fputs("usage: bench_tokens ENCODING FILE... | --worst ENCODING [CJK_FILE] "
          "| --chat FILE\n",
          stderr);
    return 2;
}
