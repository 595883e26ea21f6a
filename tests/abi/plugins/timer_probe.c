/* timer_probe: a test plugin for the SDK 1.1 timers, calls outside any
 * request, health_get and the upstream list.
 *
 * create() registers, for every worker:
 *   - a periodic "tick" timer (tick_ms), counted in ticks_total, with the
 *     workers it ran on as a bitmask in the workers_seen gauge;
 *   - a periodic "limited" timer that cancels itself from inside its own
 *     callback after `limit` runs on its worker (limited_total must end at
 *     exactly limit x workers);
 *   - a periodic "ghost" timer, cancelled again in create(): it must never
 *     run (ghosts_total stays 0);
 * and, on worker 0 only, a one-shot timer that asks the upstream for
 * GET /v1/models outside any request and publishes the answer's status
 * with health_set("timer_probe.models_status").
 *
 * on_request reads that back with health_get into x-models-status and
 * lists the configured upstreams in x-upstreams ("name=model,model;...").
 * Each 1.1 member is checked with SLUICE_HOST_HAS: without timers nothing
 * is registered; without health_get (a 1.0 host) the request gets
 * "x-probe-degraded: 1" instead.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/host.h>
#include <sluice/plugin.h>

#define PROBE_MAX_WORKERS 64

struct probe_config {
    int64_t tick_ms;
    int64_t limit;
    const char *upstream;
};

static const struct sluice_cfg_field probe_keys[] = {
    {.name = "tick_ms",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN,
     .min = 1,
     .default_value = "10",
     .offset = offsetof(struct probe_config, tick_ms),
     .help = "period of the tick timer"},
    {.name = "limit",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN,
     .min = 1,
     .default_value = "3",
     .offset = offsetof(struct probe_config, limit),
     .help = "runs of the self-cancelling timer per worker"},
    {.name = "upstream",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"mock\"",
     .offset = offsetof(struct probe_config, upstream),
     .help = "upstream asked for /v1/models"},
    {0},
};

struct probe {
    const struct sluice_host *host;
    const char *upstream;
    int64_t limit;
    sluice_timer_t limited_id;
    atomic_uint_fast64_t seen; /* bitmask of workers that ticked */
    /* each slot touched only by its own worker's thread */
    int64_t limited_runs[PROBE_MAX_WORKERS];
    struct sluice_metric *ticks, *limited, *workers_seen, *models_calls,
        *ghosts;
};

static void on_tick(void *arg, unsigned worker)
{
    struct probe *p = arg;
    p->host->counter_add(p->ticks, 1);
    uint64_t bit = 1ull << (worker % PROBE_MAX_WORKERS);
    uint64_t seen = atomic_fetch_or(&p->seen, bit) | bit;
    p->host->gauge_set(p->workers_seen, (double)seen);
}

static void on_limited(void *arg, unsigned worker)
{
    struct probe *p = arg;
    const struct sluice_host *h = p->host;
    h->counter_add(p->limited, 1);
    if (++p->limited_runs[worker % PROBE_MAX_WORKERS] == p->limit)
        h->timer_cancel(h, p->limited_id); /* from inside its own run */
}

static void on_ghost(void *arg, unsigned worker)
{
    struct probe *p = arg;
    (void)worker;
    p->host->counter_add(p->ghosts, 1); /* cancelled in create(): never */
}

static void on_models(void *arg, const struct sluice_call_result *res)
{
    struct probe *p = arg;
    const struct sluice_host *h = p->host;
    h->counter_add(p->models_calls, 1);
    /* The answer must be the mock's model list, not just any 200. */
    bool listed = res->body.ptr && memmem(res->body.ptr, res->body.len,
                                          "\"object\":\"list\"", 15) != NULL;
    h->health_set(h, "timer_probe.models_status",
                  listed ? res->status : -res->status);
}

static void ask_models(void *arg, unsigned worker)
{
    struct probe *p = arg;
    const struct sluice_host *h = p->host;
    (void)worker;
    int rc = h->call_upstream(h, NULL, p->upstream, "/v1/models",
                              (struct sluice_str){NULL, 0}, NULL, on_models, p,
                              NULL);
    if (rc != SLUICE_OK)
        h->health_set(h, "timer_probe.models_status", -1000 - rc);
}

static int probe_create(const struct sluice_host *h, const void *config,
                        struct sluice_str raw_json, void **self,
                        struct sluice_error *err)
{
    const struct probe_config *cfg = config;
    struct probe *p = calloc(1, sizeof *p);
    (void)raw_json;
    if (!p)
        return SLUICE_ENOMEM;
    p->host = h;
    p->upstream = cfg->upstream;
    p->limit = cfg->limit;
    atomic_init(&p->seen, 0);
    p->ticks = h->counter(h, "sluice_timer_probe_ticks_total", "Tick runs.");
    p->limited = h->counter(h, "sluice_timer_probe_limited_total",
                            "Runs of the self-cancelling timer.");
    p->workers_seen = h->gauge(h, "sluice_timer_probe_workers_seen",
                               "Bitmask of workers the tick ran on.");
    p->models_calls = h->counter(h, "sluice_timer_probe_models_calls_total",
                                 "Answers to the /v1/models call.");
    p->ghosts = h->counter(h, "sluice_timer_probe_ghosts_total",
                           "Runs of a timer cancelled in create().");
    *self = p;
    if (!SLUICE_HOST_HAS(h, timer_start) || !SLUICE_HOST_HAS(h, call_upstream))
        return SLUICE_OK; /* an older host: serve without background work */
    int rc = h->timer_start(h, SLUICE_WORKER_ALL, 0, (uint64_t)cfg->tick_ms,
                            on_tick, p, NULL);
    if (rc == SLUICE_OK)
        rc = h->timer_start(h, SLUICE_WORKER_ALL, 1, 1, on_limited, p,
                            &p->limited_id);
    if (rc == SLUICE_OK)
        rc = h->timer_start(h, 0, 0, 0, ask_models, p, NULL);
    sluice_timer_t ghost = 0;
    if (rc == SLUICE_OK)
        rc = h->timer_start(h, SLUICE_WORKER_ALL, 0, 1, on_ghost, p, &ghost);
    if (rc == SLUICE_OK)
        rc = h->timer_cancel(h, ghost);
    if (rc == SLUICE_OK && h->timer_cancel(h, ghost) != SLUICE_ENOENT)
        rc = SLUICE_EINVAL; /* a second cancel must find nothing */
    if (rc != SLUICE_OK) {
        snprintf(err->message, sizeof err->message, "timer_start: %d", rc);
        free(p);
        return rc;
    }
    return SLUICE_OK;
}

static void probe_destroy(void *self)
{
    free(self);
}

static void add_header(const struct sluice_host *h, struct sluice_req *r,
                       const char *name, const char *value)
{
    h->resp_add_header(r, name, (struct sluice_str){value, strlen(value)});
}

static void list_upstreams(const struct sluice_host *h, struct sluice_req *r)
{
    char buf[512];
    size_t len = 0;
    for (size_t i = 0; i < h->upstream_count(h); i++) {
        struct sluice_str name = h->upstream_name(h, i);
        len +=
            (size_t)snprintf(buf + len, sizeof buf - len,
                             "%s%.*s=", i ? ";" : "", (int)name.len, name.ptr);
        struct sluice_str m;
        for (size_t j = 0; (m = h->upstream_model(h, i, j)).len && len < 400;
             j++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%.*s",
                                    j ? "," : "", (int)m.len, m.ptr);
        if (len >= 400)
            break;
    }
    buf[len] = '\0';
    add_header(h, r, "x-upstreams", buf);
}

static enum sluice_action probe_on_request(void *self, struct sluice_req *r,
                                           void *state)
{
    struct probe *p = self;
    const struct sluice_host *h = p->host;
    (void)state;
    if (!SLUICE_HOST_HAS(h, health_get)) {
        add_header(h, r, "x-probe-degraded", "1"); /* a 1.0 host */
        return SLUICE_CONTINUE;
    }
    double v;
    char buf[32];
    if (h->health_get(h, "timer_probe.models_status", &v) == SLUICE_OK) {
        snprintf(buf, sizeof buf, "%.0f", v);
        add_header(h, r, "x-models-status", buf);
    }
    if (SLUICE_HOST_HAS(h, upstream_model))
        list_upstreams(h, r);
    return SLUICE_CONTINUE;
}

static const struct sluice_plugin timer_probe = {
    SLUICE_PLUGIN_HEADER,
    .name = "timer_probe",
    .version = "1.1.0",
    .summary = "test: timers, a call outside requests, health_get",
    .config = probe_keys,
    .config_size = sizeof(struct probe_config),
    .create = probe_create,
    .destroy = probe_destroy,
    .on_request = probe_on_request,
};

SLUICE_PLUGIN_EXPORT(timer_probe)
