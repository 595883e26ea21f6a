/* Process-wide state: the metrics registry, the workers, and the current
 * *generation* (a config plus the plugin instances built from it).
 *
 * Reload builds a complete new generation on the main thread; if anything
 * fails the old one keeps serving. Each worker then adopts the new one
 * between requests. A worker keeps an old generation alive (and its
 * thread_init state) while requests that started on it are still running,
 * so in-flight requests finish on the config they started with.
 */
#ifndef SLUICE_RUNTIME_H
#define SLUICE_RUNTIME_H

#include <event2/event.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "metrics.h"
#include "sluice/host.h"

#define MAX_WORKERS 256

struct worker;
struct plugin_set;

/* The host table a plugin instance receives, plus what the core needs to
 * find the instance from it. `pub` must stay first. */
struct instance_host {
    struct sluice_host pub;
    struct instance *inst;
    struct host_services *services; /* SDK 1.1 calls, timers, reads */
};

struct instance {
    char name[64];
    const struct sluice_plugin *desc;
    void *self;
    void *config;                         /* the filled config struct */
    struct plugin_config_mem *config_mem; /* its lists, maps, JSON texts */
    struct instance_host host;
    size_t index; /* position in the pipeline */
    bool thread_ready[MAX_WORKERS];
};

struct generation {
    atomic_int refs;
    uint64_t id;
    struct config *cfg;
    struct plugin_set *plugins;
    size_t count;
    struct instance *inst;        /* pipeline order */
    struct plugin_routes *routes; /* plugin_routes.c; NULL: none */
    /* Requests running on each worker that started on this generation;
     * touched only by that worker's thread. */
    size_t inflight[MAX_WORKERS];
};

struct core_metrics {
    struct metric *requests[8]; /* by status class, see runtime.c */
    struct metric *request_seconds;
    struct metric *overhead_seconds;
    struct metric *active;
    struct metric *fallbacks;
    struct metric *prompt_tokens;
    struct metric *completion_tokens;
    struct metric *policy_errors;
    struct metric *policy_reused;
    struct metric *reloads_ok;
    struct metric *reloads_failed;
    struct metric *client_disconnects;
    struct metric *upstream_pauses;
    struct metric *response_budget_exceeded;
    struct metric *response_decoded;
    struct metric *connections;
};

struct runtime {
    struct event_base *main_base;
    struct metrics_registry *metrics;
    struct core_metrics m;
    unsigned worker_count;
    struct worker *workers[MAX_WORKERS];
    struct generation *current; /* main thread only */
    atomic_uint_fast64_t next_generation;
    atomic_bool draining;
    uint16_t port;       /* bound API port */
    uint16_t admin_port; /* bound admin port (0 = same listener) */
    uint64_t started_wall_ms;
};

extern struct runtime g_runtime;

/* Builds a generation from cfg (takes a ref on cfg): loads plugins, checks
 * their configs, creates instances. Returns NULL with err on any failure
 * (everything created so far is destroyed). Main thread. */
struct generation *generation_build(struct config *cfg, char *err,
                                    size_t errlen);
void generation_ref(struct generation *g);
/* Drops a ref; the last one destroys the instances on the main thread. */
void generation_unref(struct generation *g);

/* Loads `path` and, when valid, makes it current on every worker.
 * Returns 0, or -1 with the reasons logged (old config keeps serving). */
int runtime_reload(const char *path);

/* Registers the core's own metric families. */
void runtime_init_metrics(void);

/* Host table for one instance (host.c), created with the instance's
 * config; host_fini frees what host_init allocated (after destroy()). */
void host_init(struct instance_host *h, struct instance *inst,
               const struct config *cfg);
void host_fini(struct instance_host *h);

#endif
