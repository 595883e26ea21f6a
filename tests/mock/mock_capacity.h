/* Hidden provider capacity: exact token buckets for requests per second
 * and tokens per minute, each holding one second of capacity. A request
 * over either bucket gets 429. Thread-safe (one mutex, skipped when no
 * capacity is set). */
#ifndef SLUICE_MOCK_CAPACITY_H
#define SLUICE_MOCK_CAPACITY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evkeyvalq;

struct mock_bucket {
    double rate;  /* units per second; 0 = no limit */
    double burst; /* bucket size: one second of rate, at least 1 */
    double level;
    uint64_t last_ns;
};

struct mock_capacity {
    pthread_mutex_t mu;
    atomic_bool enabled;
    double rps, tpm;
    struct mock_bucket requests, tokens;
};

/* What x-ratelimit-* headers report, and the verdict. */
struct mock_admission {
    bool admitted;
    long retry_after_s; /* when refused */
    bool requests_on, tokens_on;
    long limit_requests, remaining_requests;
    double reset_requests_s; /* until the bucket is full again */
    long limit_tokens, remaining_tokens;
    double reset_tokens_s;
};

void mock_capacity_init(struct mock_capacity *c, double rps, double tpm);
void mock_capacity_destroy(struct mock_capacity *c);
/* Changes one or both limits (negative = keep); refills the buckets. */
void mock_capacity_configure(struct mock_capacity *c, double rps, double tpm);
void mock_capacity_get(struct mock_capacity *c, double *rps, double *tpm);
/* Admits a request costing `tokens` or refuses it; fills *a either way.
 * A request larger than the token bucket is admitted once the bucket is
 * full and leaves it in debt, so the long-run rate stays exact. */
bool mock_capacity_admit(struct mock_capacity *c, long tokens,
                         struct mock_admission *a);
/* Plausible headers for the ratelimit_headers knob when no capacity is
 * set; `limited` reports an exhausted window. */
void mock_admission_synthetic(struct mock_admission *a, long tokens,
                              bool limited, long retry_after_s);
/* Adds x-ratelimit-{limit,remaining,reset}-{requests,tokens}. */
void mock_admission_headers(const struct mock_admission *a,
                            struct evkeyvalq *headers);
/* OpenAI's duration format: "120ms", "1s", "8.64s", "6m0s". */
void mock_format_duration(double seconds, char *buf, size_t len);

#endif
