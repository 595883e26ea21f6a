/* A worker thread: its own event loop, HTTP listener, upstream client and
 * Lua policy state. Requests never leave their worker. Other threads talk
 * to a worker only through its mailbox (wake-ups, config adoption, stop).
 */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct generation;
struct sluice_req;

struct worker {
    unsigned index;
    pthread_t thread;
    struct event_base *base;
    struct http_server *http;
    struct http_server *admin_http; /* worker 0 only, when admin_listen set */
    struct upstream_client *upstream;
    struct policy *policy;
    uint64_t policy_generation; /* generation the policy was built for */
    char policy_path[512];
    struct policy_stamp { /* the script as last read (policy_glue.c) */
        int64_t mtime_ns, size;
        uint64_t ino, dev;
    } policy_stamp;
    bool policy_failed;     /* last read refused: look again at the next tick */
    struct generation *gen; /* current, one ref held */
    struct generation *retired[16];
    size_t retired_count;
    uint64_t now_ns; /* cached monotonic clock, refreshed per callback */
    uint64_t next_ticket;
    uint64_t rng;
    size_t active_requests;

    /* suspended requests by ticket (open addressing) */
    struct sluice_req **suspended;
    size_t suspended_cap, suspended_count;

    /* mailbox */
    pthread_mutex_t mail_lock;
    struct event *mail_ev;
    uint64_t *wake_tickets;
    size_t wake_count, wake_cap;
    struct generation *adopt; /* pending adoption, ref held */
    bool stop;
};

/* The worker running on this thread, or NULL (main thread). */
struct worker *worker_current(void);
/* Monotonic ns: the worker's cached value, or a fresh reading. */
uint64_t worker_now_ns(void);
void worker_refresh_clock(struct worker *w);

struct worker *worker_new(unsigned index, struct generation *gen, char *err,
                          size_t errlen);
int worker_start(struct worker *w);
/* Thread-safe: resumes the request suspended under `ticket`, if any. */
void worker_wake(uint64_t ticket);
/* Thread-safe: adopt a new generation (takes a ref). */
void worker_adopt(struct worker *w, struct generation *gen);
/* Thread-safe: stop accepting; exit the loop once idle. */
void worker_stop(struct worker *w);
void worker_join_and_free(struct worker *w);
/* Worker threads still running their loop. */
unsigned worker_running_count(void);

/* Worker thread: suspension bookkeeping. false: out of memory, the
 * request is not suspended. */
bool worker_suspend(struct worker *w, struct sluice_req *r);
void worker_unsuspend(struct worker *w, struct sluice_req *r);

/* Worker thread: a request started / ended on generation g. */
void worker_request_started(struct worker *w, struct generation *g);
void worker_request_ended(struct worker *w, struct generation *g);

#endif
