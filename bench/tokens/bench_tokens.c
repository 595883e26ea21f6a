/* Tokenizer throughput, single-threaded: MB/s over each input file, the
 * time for 1 MB of one repeated character, and the cost tok_count_request
 * adds to a 2 KB chat request. One line of JSON per measurement.
 *   bench_tokens ENCODING FILE...        throughput per file
 *   bench_tokens --worst ENCODING        1 MB runs of one character
 *   bench_tokens --chat FILE             2 KB chat request, o200k_base */
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
 * through a busy machine. */
static double best_seconds(const struct tok_encoding *e, const char *s,
                           size_t n, size_t *tokens)
{
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

static int worst(const char *encname)
{
    int id = tok_encoding_lookup(encname, strlen(encname));
    const struct tok_encoding *e = id < 0 ? NULL : tok_encoding_get(id);
    if (!e)
        return 2;
    static const char *const units[] = {
        "a", " ", "1", "!", "\n", "\xc3\xa9", "\xe4\xb8\x80", "ab"};
    size_t n = 1 << 20;
    char *s = malloc(n);
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t k = strlen(units[u]);
        for (size_t i = 0; i + k <= n; i += k)
            memcpy(s + i, units[u], k);
        size_t len = n - n % k, tokens;
        double t = best_seconds(e, s, len, &tokens);
        printf("{\"encoding\":\"%s\",\"worst\":\"%s\",\"bytes\":%zu,"
               "\"tokens\":%zu,\"ms\":%.2f}\n",
               encname, units[u][0] == '\n' ? "\\n" : units[u], len, tokens,
               t * 1e3);
    }
    free(s);
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
        return worst(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "--chat") == 0)
        return chat(argv[2]);
    if (argc >= 3)
        return throughput(argv[1], argc - 2, argv + 2);
    fputs("usage: bench_tokens ENCODING FILE... | --worst ENCODING | --chat "
          "FILE\n",
          stderr);
    return 2;
}
