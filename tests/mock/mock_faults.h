/* Fault-injection knobs. The same set arrives four ways, later ones
 * winning: command-line defaults, POST /mock/config, x-mock-* request
 * headers, and the "mock" object of the request body. */
#ifndef SLUICE_MOCK_FAULTS_H
#define SLUICE_MOCK_FAULTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct evkeyvalq;

enum mock_knob {
    MOCK_LATENCY_MS = 1u << 0,
    MOCK_CHUNK_INTERVAL_MS = 1u << 1,
    MOCK_CHUNKS = 1u << 2,
    MOCK_COMPLETION_TOKENS = 1u << 3,
    MOCK_STATUS = 1u << 4,
    MOCK_RETRY_AFTER = 1u << 5,
    MOCK_ERROR_MESSAGE = 1u << 6,
    MOCK_HANG = 1u << 7,
    MOCK_RESET_AFTER_CHUNKS = 1u << 8,
    MOCK_MALFORMED_SSE = 1u << 9,
    MOCK_NO_USAGE = 1u << 10,
    MOCK_RATELIMIT_HEADERS = 1u << 11,
};

#define MOCK_ERROR_MESSAGE_MAX 256

struct mock_faults {
    unsigned set; /* enum mock_knob bits of the fields given */
    long latency_ms;
    long chunk_interval_ms;
    long chunks;
    long completion_tokens;
    long status;
    long retry_after;
    long reset_after_chunks;
    bool hang;
    bool malformed_sse;
    bool no_usage;
    bool ratelimit_headers;
    char error_message[MOCK_ERROR_MESSAGE_MAX];
};

static inline bool mock_faults_has(const struct mock_faults *f, unsigned knob)
{
    return (f->set & knob) != 0;
}

/* Copies the knobs set in src over dst. */
void mock_faults_overlay(struct mock_faults *dst,
                         const struct mock_faults *src);

/* Reads knobs from a JSON object. Unknown keys and bad values are errors
 * (a typo in a test should fail loudly); null values are skipped. On
 * error returns -1 and names the key in *bad_key. */
int mock_faults_from_json(const json_t *obj, struct mock_faults *out,
                          const char **bad_key, char *err, size_t errlen);

/* Reads x-mock-* headers (x-mock-latency-ms, ...). */
int mock_faults_from_headers(const struct evkeyvalq *headers,
                             struct mock_faults *out, const char **bad_key,
                             char *err, size_t errlen);

json_t *mock_faults_json(const struct mock_faults *f);

#endif
