/* SDK 1.1 host services: per-instance state, the per-worker and per-request
 * lifecycle hooks, and the read-only services (health_get, the configured
 * upstreams). Upstream calls are in host_calls.c, timers in host_timers.c. */
#include "host_services.h"

#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "health.h"
#include "request.h"
#include "runtime.h"
#include "worker.h"

struct host_services *host_services_new(struct instance *inst,
                                        const struct config *cfg)
{
    struct host_services *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->inst = inst;
    s->cfg = cfg;
    atomic_init(&s->next_timer_id, 1);
    atomic_init(&s->sealed, false);
    return s;
}

void host_services_free(struct host_services *s)
{
    if (!s)
        return;
    free(s->specs);
    free(s);
}

struct host_services *host_services_of(const struct sluice_host *h)
{
    return ((const struct instance_host *)h)->services;
}

/* ---- lifecycle hooks ---- */

void host_services_thread_start(struct instance *inst, struct worker *w)
{
    struct host_services *s = inst->host.services;
    if (!s)
        return;
    atomic_store(&s->sealed, true);
    host_timers_arm_specs(s, w);
}

static _Thread_local const struct host_services *tl_leaving;

bool host_services_leaving(const struct host_services *s)
{
    return s == tl_leaving;
}

void host_services_thread_stop(struct instance *inst, struct worker *w)
{
    struct host_services *s = inst->host.services;
    (void)w;
    if (!s)
        return;
    /* Callbacks told CLIENT_GONE here may try to start more: refused. */
    tl_leaving = s;
    host_calls_cancel_instance(s);
    host_timers_cancel_instance(s);
    tl_leaving = NULL;
}

void host_services_request_end(struct sluice_req *r)
{
    host_calls_cancel_request(r);
    struct generation *g = r->gen;
    for (size_t i = r->reached; i-- > 0;) {
        struct instance *inst = &g->inst[i];
        if (inst->desc->on_cleanup)
            inst->desc->on_cleanup(inst->self, r,
                                   r->states ? r->states[i] : NULL);
    }
}

/* ---- reads: health and the configured upstreams ---- */

static int h_health_get(const struct sluice_host *h, const char *name,
                        double *value)
{
    (void)h;
    if (!name || !value)
        return SLUICE_EINVAL;
    return health_get(name, value) ? SLUICE_OK : SLUICE_ENOENT;
}

static const struct config *cfg_of(const struct sluice_host *h)
{
    const struct host_services *s = host_services_of(h);
    return s ? s->cfg : NULL;
}

static struct sluice_str str_of(const char *p)
{
    struct sluice_str out = {p, strlen(p)};
    if (!out.len)
        out.ptr = NULL;
    return out;
}

static size_t h_upstream_count(const struct sluice_host *h)
{
    const struct config *c = cfg_of(h);
    return c ? c->upstream_count : 0;
}

static struct sluice_str h_upstream_name(const struct sluice_host *h, size_t i)
{
    const struct config *c = cfg_of(h);
    if (!c || i >= c->upstream_count)
        return (struct sluice_str){NULL, 0};
    return str_of(c->upstreams[i].name);
}

static struct sluice_str h_upstream_model(const struct sluice_host *h, size_t i,
                                          size_t j)
{
    const struct config *c = cfg_of(h);
    if (!c || i >= c->upstream_count || j >= c->upstreams[i].model_count)
        return (struct sluice_str){NULL, 0};
    return str_of(c->upstreams[i].models[j]);
}

void host_services_fill(struct sluice_host *h)
{
    h->call_upstream = host_call_upstream;
    h->call_upstream_raw = host_call_upstream_raw;
    h->call_cancel = host_call_cancel;
    h->timer_start = host_timer_start;
    h->timer_cancel = host_timer_cancel;
    h->health_get = h_health_get;
    h->upstream_count = h_upstream_count;
    h->upstream_name = h_upstream_name;
    h->upstream_model = h_upstream_model;
}
