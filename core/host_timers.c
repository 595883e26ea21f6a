/* Per-worker plugin timers (host->timer_start): background work outside
 * any request, on the worker's own loop. Armed timers live in a list per
 * worker thread; an instance's timers are torn down before its
 * thread_fini on that worker, so none fires after destroy(). */
#include "host_services.h"

#include <stdlib.h>

#include "log.h"
#include "runtime.h"
#include "worker.h"

struct plugin_timer {
    struct plugin_timer *prev, *next;
    sluice_timer_t id;
    struct host_services *owner;
    struct worker *w;
    struct event *ev;
    uint64_t period_ms;
    sluice_timer_fn fn;
    void *arg;
    bool firing;    /* fn is on the stack */
    bool cancelled; /* cancelled from inside fn: free once it returns */
};

static _Thread_local struct plugin_timer *tl_timers;

static struct timeval tv_ms(uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static void unlink_timer(struct plugin_timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        tl_timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static void free_timer(struct plugin_timer *t)
{
    event_free(t->ev);
    free(t);
}

static void fire_cb(evutil_socket_t fd, short what, void *arg)
{
    struct plugin_timer *t = arg;
    (void)fd;
    (void)what;
    worker_refresh_clock(t->w);
    t->firing = true;
    t->fn(t->arg, t->w->index);
    t->firing = false;
    if (t->cancelled) {
        free_timer(t); /* already unlinked by cancel */
    } else if (!t->period_ms) {
        unlink_timer(t);
        free_timer(t);
    } else {
        struct timeval tv = tv_ms(t->period_ms);
        evtimer_add(t->ev, &tv);
    }
}

static int arm(struct host_services *s, struct worker *w, sluice_timer_t id,
               uint64_t delay_ms, uint64_t period_ms, sluice_timer_fn fn,
               void *arg)
{
    struct plugin_timer *t = calloc(1, sizeof *t);
    if (!t)
        return SLUICE_ENOMEM;
    t->ev = evtimer_new(w->base, fire_cb, t);
    struct timeval tv = tv_ms(delay_ms);
    if (!t->ev || evtimer_add(t->ev, &tv) != 0) {
        if (t->ev)
            event_free(t->ev);
        free(t);
        return SLUICE_ENOMEM;
    }
    t->id = id;
    t->owner = s;
    t->w = w;
    t->period_ms = period_ms;
    t->fn = fn;
    t->arg = arg;
    t->next = tl_timers;
    if (tl_timers)
        tl_timers->prev = t;
    tl_timers = t;
    return SLUICE_OK;
}

/* Drops t from this worker; t may be firing right now. */
static void disarm(struct plugin_timer *t)
{
    unlink_timer(t);
    event_del(t->ev);
    if (t->firing)
        t->cancelled = true;
    else
        free_timer(t);
}

/* create(): keep the spec until the workers arm it. */
static int add_spec(struct host_services *s, const struct timer_spec *spec)
{
    if (s->spec_count == s->spec_cap) {
        size_t cap = s->spec_cap ? s->spec_cap * 2 : 4;
        struct timer_spec *grown = realloc(s->specs, cap * sizeof *grown);
        if (!grown)
            return SLUICE_ENOMEM;
        s->specs = grown;
        s->spec_cap = cap;
    }
    s->specs[s->spec_count++] = *spec;
    return SLUICE_OK;
}

int host_timer_start(const struct sluice_host *h, unsigned worker,
                     uint64_t delay_ms, uint64_t period_ms, sluice_timer_fn fn,
                     void *arg, sluice_timer_t *out)
{
    struct host_services *s = host_services_of(h);
    struct worker *w = worker_current();
    if (out)
        *out = 0;
    if (!s)
        return SLUICE_ENOMEM;
    if (!fn)
        return SLUICE_EINVAL;
    sluice_timer_t id = atomic_fetch_add(&s->next_timer_id, 1);
    int rc;
    if (!w) {
        /* Main thread: only in create(), before any worker armed it. */
        if (atomic_load(&s->sealed))
            return SLUICE_EPHASE;
        if (worker != SLUICE_WORKER_ALL && worker >= g_runtime.worker_count &&
            g_runtime.worker_count)
            return SLUICE_EINVAL;
        struct timer_spec spec = {id, worker, delay_ms, period_ms, fn, arg};
        rc = add_spec(s, &spec);
    } else {
        if (host_services_leaving(s))
            return SLUICE_EPHASE;
        if (worker != w->index)
            return SLUICE_EINVAL;
        rc = arm(s, w, id, delay_ms, period_ms, fn, arg);
    }
    if (rc == SLUICE_OK && out)
        *out = id;
    return rc;
}

int host_timer_cancel(const struct sluice_host *h, sluice_timer_t id)
{
    struct host_services *s = host_services_of(h);
    if (!s)
        return SLUICE_ENOENT;
    if (!worker_current()) {
        if (atomic_load(&s->sealed))
            return SLUICE_EPHASE;
        for (size_t i = 0; i < s->spec_count; i++) {
            if (s->specs[i].id == id) {
                s->specs[i] = s->specs[--s->spec_count];
                return SLUICE_OK;
            }
        }
        return SLUICE_ENOENT;
    }
    for (struct plugin_timer *t = tl_timers; t; t = t->next) {
        if (t->owner == s && t->id == id) {
            disarm(t);
            return SLUICE_OK;
        }
    }
    return SLUICE_ENOENT;
}

void host_timers_arm_specs(struct host_services *s, struct worker *w)
{
    for (size_t i = 0; i < s->spec_count; i++) {
        const struct timer_spec *spec = &s->specs[i];
        if (spec->worker != SLUICE_WORKER_ALL && spec->worker != w->index)
            continue;
        if (arm(s, w, spec->id, spec->delay_ms, spec->period_ms, spec->fn,
                spec->arg) != SLUICE_OK)
            log_msg(LOG_ERROR, "plugin",
                    "instance '%s': out of memory arming "
                    "a timer on worker %u",
                    s->inst->name, w->index);
    }
}

void host_timers_cancel_instance(struct host_services *s)
{
    struct plugin_timer *t = tl_timers;
    while (t) {
        struct plugin_timer *next = t->next;
        if (t->owner == s)
            disarm(t);
        t = next;
    }
}
