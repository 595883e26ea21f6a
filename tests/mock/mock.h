/* sluice-mock: an OpenAI-compatible provider for tests and benchmarks.
 * This header holds what all threads share; each worker thread has its
 * own event_base, evhttp and connection table (mock_server.h). */
#ifndef SLUICE_MOCK_H
#define SLUICE_MOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mock_capacity.h"
#include "mock_control.h"
#include "mock_faults.h"
#include "mock_stats.h"

#define MOCK_DEFAULT_LISTEN "127.0.0.1:8089"
#define MOCK_DEFAULT_SEED 0x51c3a0cULL

struct mock_options {
    const char *listen; /* HOST:PORT, [V6]:PORT */
    int threads;
    double capacity_rps, capacity_tpm; /* 0 = unlimited */
    uint64_t seed;                     /* embedding feature hashing */
    bool quiet;
    struct mock_faults defaults; /* --latency-ms, --chunk-interval-ms, ... */
};

/* Process-wide state. Everything mutable here is atomic or locked. */
struct mock_app {
    struct mock_options opt;
    struct mock_control control;
    struct mock_capacity capacity;
    struct mock_stats stats;
    atomic_ulong next_id; /* numbers the ids of responses */
};

#endif
