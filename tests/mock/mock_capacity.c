#include "mock_capacity.h"

#include <event2/http.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define EPS 1e-9

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void bucket_setup(struct mock_bucket *b, double rate, uint64_t now)
{
    b->rate = rate > 0 ? rate : 0;
    b->burst = b->rate > 1 ? b->rate : 1;
    b->level = b->burst;
    b->last_ns = now;
}

static void bucket_refill(struct mock_bucket *b, uint64_t now)
{
    if (now > b->last_ns)
        b->level += (double)(now - b->last_ns) / 1e9 * b->rate;
    if (b->level > b->burst)
        b->level = b->burst;
    b->last_ns = now;
}

/* Seconds until the bucket holds `need`. */
static double bucket_wait(const struct mock_bucket *b, double need)
{
    return b->level + EPS >= need ? 0 : (need - b->level) / b->rate;
}

static void apply_limits(struct mock_capacity *c, double rps, double tpm)
{
    uint64_t now = now_ns();
    if (rps >= 0)
        c->rps = rps;
    if (tpm >= 0)
        c->tpm = tpm;
    bucket_setup(&c->requests, c->rps, now);
    bucket_setup(&c->tokens, c->tpm / 60.0, now);
    atomic_store(&c->enabled, c->rps > 0 || c->tpm > 0);
}

void mock_capacity_init(struct mock_capacity *c, double rps, double tpm)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    apply_limits(c, rps, tpm);
}

void mock_capacity_destroy(struct mock_capacity *c)
{
    pthread_mutex_destroy(&c->mu);
}

void mock_capacity_configure(struct mock_capacity *c, double rps, double tpm)
{
    pthread_mutex_lock(&c->mu);
    apply_limits(c, rps, tpm);
    pthread_mutex_unlock(&c->mu);
}

void mock_capacity_get(struct mock_capacity *c, double *rps, double *tpm)
{
    pthread_mutex_lock(&c->mu);
    *rps = c->rps;
    *tpm = c->tpm;
    pthread_mutex_unlock(&c->mu);
}

static void report(const struct mock_bucket *b, long *limit, long *remaining,
                   double *reset_s)
{
    *limit = (long)floor(b->burst + EPS);
    *remaining = b->level > 0 ? (long)floor(b->level + EPS) : 0;
    *reset_s = (b->burst - b->level) / b->rate;
}

bool mock_capacity_admit(struct mock_capacity *c, long tokens,
                         struct mock_admission *a)
{
    memset(a, 0, sizeof(*a));
    a->admitted = true;
    if (!atomic_load_explicit(&c->enabled, memory_order_acquire))
        return true;

    pthread_mutex_lock(&c->mu);
    uint64_t now = now_ns();
    struct mock_bucket *rq = &c->requests, *tk = &c->tokens;
    a->requests_on = rq->rate > 0;
    a->tokens_on = tk->rate > 0;
    double need_tokens = fmin((double)tokens, tk->burst);
    double wait = 0;
    if (a->requests_on) {
        bucket_refill(rq, now);
        wait = fmax(wait, bucket_wait(rq, 1));
    }
    if (a->tokens_on) {
        bucket_refill(tk, now);
        wait = fmax(wait, bucket_wait(tk, need_tokens));
    }
    if (wait > 0) {
        a->admitted = false;
        a->retry_after_s = (long)ceil(wait);
        if (a->retry_after_s < 1)
            a->retry_after_s = 1;
    } else {
        rq->level -= a->requests_on ? 1 : 0;
        tk->level -= a->tokens_on ? (double)tokens : 0;
    }
    if (a->requests_on)
        report(rq, &a->limit_requests, &a->remaining_requests,
               &a->reset_requests_s);
    if (a->tokens_on)
        report(tk, &a->limit_tokens, &a->remaining_tokens, &a->reset_tokens_s);
    pthread_mutex_unlock(&c->mu);
    return a->admitted;
}

void mock_admission_synthetic(struct mock_admission *a, long tokens,
                              bool limited, long retry_after_s)
{
    const long req_limit = 10000, tok_limit = 1000000;
    a->requests_on = a->tokens_on = true;
    a->limit_requests = req_limit;
    a->limit_tokens = tok_limit;
    if (limited) {
        double reset = retry_after_s > 0 ? (double)retry_after_s : 1.0;
        a->remaining_requests = a->remaining_tokens = 0;
        a->reset_requests_s = a->reset_tokens_s = reset;
        return;
    }
    a->remaining_requests = req_limit - 1;
    a->reset_requests_s = 60.0 / (double)req_limit;
    if (tokens > tok_limit)
        tokens = tok_limit;
    a->remaining_tokens = tok_limit - tokens;
    a->reset_tokens_s = (double)tokens * 60.0 / (double)tok_limit;
}

void mock_format_duration(double seconds, char *buf, size_t len)
{
    long long ms = seconds > 0 ? llround(seconds * 1000.0) : 0;
    if (ms < 1000) {
        snprintf(buf, len, ms == 0 ? "0s" : "%lldms", ms);
        return;
    }
    long long minutes = ms / 60000;
    ms %= 60000;
    char secs[32];
    snprintf(secs, sizeof(secs), "%lld.%03lld", ms / 1000, ms % 1000);
    char *end = secs + strlen(secs) - 1;
    while (*end == '0')
        *end-- = '\0';
    if (*end == '.')
        *end = '\0';
    if (minutes)
        snprintf(buf, len, "%lldm%ss", minutes, secs);
    else
        snprintf(buf, len, "%ss", secs);
}

static void put_long(struct evkeyvalq *h, const char *name, long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%ld", v);
    evhttp_add_header(h, name, buf);
}

static void put_duration(struct evkeyvalq *h, const char *name, double s)
{
    char buf[48];
    mock_format_duration(s, buf, sizeof(buf));
    evhttp_add_header(h, name, buf);
}

void mock_admission_headers(const struct mock_admission *a, struct evkeyvalq *h)
{
    if (a->requests_on) {
        put_long(h, "x-ratelimit-limit-requests", a->limit_requests);
        put_long(h, "x-ratelimit-remaining-requests", a->remaining_requests);
        put_duration(h, "x-ratelimit-reset-requests", a->reset_requests_s);
    }
    if (a->tokens_on) {
        put_long(h, "x-ratelimit-limit-tokens", a->limit_tokens);
        put_long(h, "x-ratelimit-remaining-tokens", a->remaining_tokens);
        put_duration(h, "x-ratelimit-reset-tokens", a->reset_tokens_s);
    }
}
