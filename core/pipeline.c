/* The plugin pipeline of one request: request hooks in config order (with
 * suspension), again for each retry (on_attempt), upstream-response,
 * response and log hooks in reverse. */
#include "pipeline.h"

#include <stdio.h>

#include "log.h"
#include "plugin_routes.h"
#include "policy_glue.h"
#include "proxy.h"
#include "request.h"
#include "respond.h"
#include "retry.h"
#include "runtime.h"
#include "worker.h"

static void *state_for(struct sluice_req *r, size_t i)
{
    const struct sluice_plugin *d = r->gen->inst[i].desc;
    if (!d->req_state_size)
        return NULL;
    if (!r->states) {
        r->states = arena_alloc(&r->arena, r->gen->count * sizeof(void *));
        if (!r->states)
            return NULL;
    }
    if (!r->states[i])
        r->states[i] = arena_alloc(&r->arena, d->req_state_size);
    return r->states[i];
}

static void resume_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sluice_req *r = arg;
    (void)fd;
    (void)what;
    worker_refresh_clock(r->w);
    pipeline_resume(r);
}

void pipeline_resume_after(struct sluice_req *r, uint64_t delay_ms)
{
    if (!r->resume_timer)
        r->resume_timer = evtimer_new(r->w->base, resume_timer_cb, r);
    if (!r->resume_timer)
        return;
    struct timeval tv = {(time_t)(delay_ms / 1000),
                         (suseconds_t)((delay_ms % 1000) * 1000)};
    evtimer_add(r->resume_timer, &tv);
}

/* What became of a request after one request-phase hook. */
enum hook_result {
    HOOK_NEXT,      /* the next hook may run */
    HOOK_SUSPENDED, /* waits for resume_after() or wake() */
    HOOK_ANSWERED,  /* answered: r may be freed already, do not touch it */
};

/* Runs one request-phase hook (on_request or on_attempt) and acts on its
 * answer. */
static enum hook_result
run_hook(struct sluice_req *r, size_t i,
         enum sluice_action (*hook)(void *, struct sluice_req *, void *))
{
    struct instance *inst = &r->gen->inst[i];
    void *state = state_for(r, i);
    if (inst->desc->req_state_size && !state) {
        respond_set_error(r, 500, "api_error", NULL,
                          "out of memory for plugin state", NULL, 0);
        respond_send_local(r);
        return HOOK_ANSWERED;
    }
    r->in_hook = true;
    enum sluice_action act = hook(inst->self, r, state);
    r->in_hook = false;
    switch (act) {
    case SLUICE_CONTINUE:
        r->resumed = false;
        return HOOK_NEXT;
    case SLUICE_SUSPEND:
        if (worker_suspend(r->w, r))
            return HOOK_SUSPENDED;
        if (r->resume_timer)
            evtimer_del(r->resume_timer);
        respond_set_error(r, 503, "api_error", NULL,
                          "The gateway is out of memory.", NULL, 0);
        respond_send_local(r);
        return HOOK_ANSWERED;
    case SLUICE_RESPOND:
    default:
        if (!r->has_local_response) {
            log_msg(LOG_ERROR, "pipeline",
                    "plugin instance '%s' returned RESPOND without "
                    "setting a response",
                    inst->name);
            respond_set_error(r, 500, "api_error", NULL,
                              "a gateway plugin failed", NULL, 0);
        }
        respond_send_local(r);
        return HOOK_ANSWERED;
    }
}

void pipeline_run(struct sluice_req *r)
{
    struct generation *g = r->gen;

    if (r->next_plugin == 0 && !r->resumed) {
        if (!policy_apply(r)) {
            respond_send_local(r);
            return;
        }
    }
    while (r->next_plugin < g->count) {
        size_t i = r->next_plugin;
        if (r->reached < i + 1)
            r->reached = i + 1;
        if (g->inst[i].desc->on_request &&
            run_hook(r, i, g->inst[i].desc->on_request) != HOOK_NEXT)
            return;
        r->next_plugin++;
    }
    r->phase = PHASE_UPSTREAM;
    proxy_start(r);
}

void pipeline_attempt(struct sluice_req *r)
{
    struct generation *g = r->gen;

    /* The hooks run under on_request's rules (suspend, reject, route). */
    r->in_attempt_hooks = true;
    r->phase = PHASE_REQUEST;
    while (r->next_attempt_hook < r->reached) {
        size_t i = r->next_attempt_hook;
        if (g->inst[i].desc->on_attempt) {
            enum hook_result res = run_hook(r, i, g->inst[i].desc->on_attempt);
            if (res == HOOK_SUSPENDED)
                retry_bound_pacing(r); /* never waits past the deadline */
            if (res != HOOK_NEXT)
                return;
        }
        r->next_attempt_hook++;
    }
    r->in_attempt_hooks = false;
    r->next_attempt_hook = 0; /* the next retry starts over */
    retry_cancel(r);          /* its deadline timer, if it waited */
    r->phase = PHASE_UPSTREAM;
    proxy_start(r);
}

void pipeline_resume(struct sluice_req *r)
{
    if (!r->suspended)
        return; /* stale wake or timer: the request moved on */
    worker_unsuspend(r->w, r);
    if (r->resume_timer)
        evtimer_del(r->resume_timer);
    r->resumed = true;
    if (r->route)
        plugin_route_run(r); /* a plugin route's handler suspended */
    else if (r->in_attempt_hooks)
        pipeline_attempt(r); /* a retry waits for its pacing */
    else
        pipeline_run(r);
}

enum sluice_action pipeline_upstream_response(struct sluice_req *r)
{
    struct generation *g = r->gen;
    for (size_t i = r->reached; i-- > 0;) {
        struct instance *inst = &g->inst[i];
        if (!inst->desc->on_upstream_response)
            continue;
        r->in_hook = true;
        enum sluice_action act =
            inst->desc->on_upstream_response(inst->self, r, state_for(r, i));
        r->in_hook = false;
        if (act == SLUICE_RESPOND && r->has_local_response)
            return SLUICE_RESPOND;
    }
    return SLUICE_CONTINUE;
}

void pipeline_response(struct sluice_req *r)
{
    struct generation *g = r->gen;
    for (size_t i = r->reached; i-- > 0;) {
        struct instance *inst = &g->inst[i];
        if (inst->desc->on_response)
            inst->desc->on_response(inst->self, r, state_for(r, i));
    }
}

void pipeline_log(struct sluice_req *r)
{
    struct generation *g = r->gen;
    for (size_t i = r->reached; i-- > 0;) {
        struct instance *inst = &g->inst[i];
        if (inst->desc->on_log)
            inst->desc->on_log(inst->self, r, state_for(r, i));
    }
}
