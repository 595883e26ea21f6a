/* aimd: the instance, its config and per-request state. */
#ifndef AIMD_H
#define AIMD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/rl_key.h"
#include "../common/rl_map.h"
#include "aimd_core.h"
#include "sluice/host.h"
#include "sluice/plugin.h"

enum aimd_limit_by { AIMD_CONCURRENCY = 0, AIMD_RATE = 1, AIMD_BOTH = 2 };

struct aimd_config {
    const char *scope;
    int limit_by;
    int64_t initial_concurrency, min_concurrency, max_concurrency;
    double initial_rate, min_rate, max_rate;
    double increase;
    double decrease_factor;
    int64_t max_queue;
    int64_t max_wait_ms;
    int64_t reject_status;
    bool use_provider_headers;
    double provider_low_water;
    int64_t idle_forget_s;
    int64_t max_keys;
};

struct aimd_worker {
    struct aimd *a;
    unsigned index;
    struct event *timer; /* the reaper: late waiters, ends of pauses */
};

struct aimd {
    const struct sluice_host *h;
    struct aimd_config cfg;
    struct aimd_params p;
    struct rl_key_tmpl scope;
    uint64_t max_wait_ns;
    struct rl_map *map;
    unsigned workers;
    struct aimd_worker *w;
    struct sluice_metric *m_allowed, *m_queued, *m_paced, *m_rejected,
        *m_decreases, *m_slowdowns, *g_limit, *g_rate, *g_in_flight, *g_waiting;
};

enum aimd_phase {
    AIMD_PH_NEW = 0,
    AIMD_PH_QUEUED,   /* waiting for a concurrency slot */
    AIMD_PH_PACED,    /* holding a start time (rate or provider pacing) */
    AIMD_PH_ADMITTED, /* sent upstream, holds a slot */
    AIMD_PH_DONE,
};

/* Fields marked "lock" are read and written under the key's lock only:
 * another worker grants the slot. */
struct aimd_req {
    uint64_t deadline_ns;
    sluice_wake_t ticket;
    uint32_t epoch;
    uint8_t phase;
    bool holds_slot; /* lock: counted in the key's in_flight */
    bool waited;     /* was held back: the limit is in use */
    bool settled;    /* feedback given, slot released */
    uint16_t key_len;
    char key[RL_KEY_MAX + 1];
};

/* Runs the reaper once (the worker's timer calls it every few ms): wakes
 * this worker's waiters whose max_wait passed and hands slots out when a
 * pause has ended. Tests call it directly. */
void aimd_tick(struct aimd *a, unsigned worker);

#endif
