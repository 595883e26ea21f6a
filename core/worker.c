/* Worker threads: one event loop each, with its own listener, upstream
 * client and policy. Cross-thread requests arrive through the mailbox. */
#include "worker.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "gateway.h"
#include "host_services.h"
#include "http/http_server.h"
#include "log.h"
#include "pipeline.h"
#include "policy/policy.h"
#include "policy_glue.h"
#include "request.h"
#include "runtime.h"
#include "upstream/upstream_client.h"

static _Thread_local struct worker *tls_worker;
static atomic_uint workers_running;

unsigned worker_running_count(void)
{
    return atomic_load(&workers_running);
}

struct worker *worker_current(void)
{
    return tls_worker;
}

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t worker_now_ns(void)
{
    struct worker *w = tls_worker;
    return w && w->now_ns ? w->now_ns : clock_ns();
}

void worker_refresh_clock(struct worker *w)
{
    w->now_ns = clock_ns();
}

/* ---- suspended requests: open addressing on the ticket ---- */

static size_t slot_of(uint64_t ticket, size_t cap)
{
    return (size_t)((ticket * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static void table_insert(struct sluice_req **tab, size_t cap,
                         struct sluice_req *r)
{
    size_t i = slot_of(r->ticket, cap);
    while (tab[i])
        i = (i + 1) & (cap - 1);
    tab[i] = r;
}

static int grow_table(struct worker *w)
{
    size_t cap = w->suspended_cap ? w->suspended_cap * 2 : 64;
    struct sluice_req **tab = calloc(cap, sizeof *tab);
    if (!tab)
        return -1;
    for (size_t i = 0; i < w->suspended_cap; i++)
        if (w->suspended[i])
            table_insert(tab, cap, w->suspended[i]);
    free(w->suspended);
    w->suspended = tab;
    w->suspended_cap = cap;
    return 0;
}

bool worker_suspend(struct worker *w, struct sluice_req *r)
{
    if (r->suspended)
        return true;
    if ((w->suspended_count + 1) * 2 > w->suspended_cap && grow_table(w)) {
        log_msg(LOG_ERROR, "worker", "out of memory suspending a request");
        return false;
    }
    table_insert(w->suspended, w->suspended_cap, r);
    w->suspended_count++;
    r->suspended = true;
    return true;
}

static struct sluice_req *table_find(struct worker *w, uint64_t ticket,
                                     size_t *pos)
{
    if (!w->suspended_cap)
        return NULL;
    size_t i = slot_of(ticket, w->suspended_cap);
    while (w->suspended[i]) {
        if (w->suspended[i]->ticket == ticket) {
            *pos = i;
            return w->suspended[i];
        }
        i = (i + 1) & (w->suspended_cap - 1);
    }
    return NULL;
}

void worker_unsuspend(struct worker *w, struct sluice_req *r)
{
    size_t pos;
    if (!r->suspended || !table_find(w, r->ticket, &pos))
        return;
    /* Backward-shift deletion keeps probe chains intact. */
    size_t cap = w->suspended_cap;
    w->suspended[pos] = NULL;
    for (size_t j = (pos + 1) & (cap - 1); w->suspended[j];
         j = (j + 1) & (cap - 1)) {
        struct sluice_req *moved = w->suspended[j];
        w->suspended[j] = NULL;
        table_insert(w->suspended, cap, moved);
    }
    w->suspended_count--;
    r->suspended = false;
}

/* ---- generations ---- */

static void init_instances(struct worker *w, struct generation *g)
{
    for (size_t i = 0; i < g->count; i++) {
        struct instance *inst = &g->inst[i];
        if (inst->desc->thread_init && !inst->thread_ready[w->index]) {
            if (inst->desc->thread_init(inst->self, w->index) != 0)
                log_msg(LOG_ERROR, "worker",
                        "plugin instance '%s': thread_init failed on worker "
                        "%u",
                        inst->name, w->index);
        }
        if (!inst->thread_ready[w->index])
            host_services_thread_start(inst, w); /* create()-time timers */
        inst->thread_ready[w->index] = true;
    }
}

static void fini_instances(struct worker *w, struct generation *g)
{
    for (size_t i = g->count; i-- > 0;) {
        struct instance *inst = &g->inst[i];
        if (inst->thread_ready[w->index]) /* its timers and calls first */
            host_services_thread_stop(inst, w);
        if (inst->desc->thread_fini && inst->thread_ready[w->index])
            inst->desc->thread_fini(inst->self, w->index);
        inst->thread_ready[w->index] = false;
    }
}

/* Releases retired generations that no request on this worker uses. */
static void collect_retired(struct worker *w)
{
    for (size_t i = 0; i < w->retired_count;) {
        struct generation *g = w->retired[i];
        if (g->inflight[w->index] == 0) {
            fini_instances(w, g);
            w->retired[i] = w->retired[--w->retired_count];
            generation_unref(g);
        } else {
            i++;
        }
    }
}

static void adopt(struct worker *w, struct generation *g)
{
    init_instances(w, g);
    struct generation *old = w->gen;
    w->gen = g; /* the mailbox's ref becomes ours */
    if (old) {
        if (w->retired_count < sizeof w->retired / sizeof w->retired[0]) {
            w->retired[w->retired_count++] = old;
        } else {
            /* Too many reloads in flight: keep it alive, just leak the
             * thread_fini (never the memory of live requests). */
            log_msg(LOG_WARN, "worker", "too many retired configs");
            for (size_t i = 0; i < old->count; i++) /* no timer may outlive */
                host_services_thread_stop(&old->inst[i], w);
            generation_unref(old);
        }
    }
    collect_retired(w);
    policy_refresh(w);
    if (w->http)
        http_server_set_limits(
            w->http, &(struct http_limits){
                         .header_timeout_ms = g->cfg->header_timeout_ms,
                         .body_timeout_ms = g->cfg->body_timeout_ms,
                         .idle_timeout_ms = g->cfg->idle_timeout_ms,
                         .send_timeout_ms = g->cfg->send_timeout_ms,
                         .max_header_bytes = g->cfg->max_header_bytes,
                         .max_headers = g->cfg->max_headers,
                         .max_body_bytes = g->cfg->max_body_bytes,
                     });
}

void worker_request_started(struct worker *w, struct generation *g)
{
    g->inflight[w->index]++;
    w->active_requests++;
}

void worker_request_ended(struct worker *w, struct generation *g)
{
    g->inflight[w->index]--;
    w->active_requests--;
    if (g != w->gen && g->inflight[w->index] == 0)
        collect_retired(w);
}

/* ---- mailbox ---- */

static void mailbox_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;

    pthread_mutex_lock(&w->mail_lock);
    size_t n = w->wake_count;
    uint64_t *tickets = w->wake_tickets;
    w->wake_tickets = NULL;
    w->wake_count = w->wake_cap = 0;
    struct generation *g = w->adopt;
    w->adopt = NULL;
    bool stop = w->stop;
    pthread_mutex_unlock(&w->mail_lock);

    worker_refresh_clock(w);
    if (g)
        adopt(w, g);
    for (size_t i = 0; i < n; i++) {
        size_t pos;
        struct sluice_req *r = table_find(w, tickets[i], &pos);
        if (r)
            pipeline_resume(r);
    }
    free(tickets);
    if (stop) {
        if (w->http)
            http_server_stop_accepting(w->http);
        if (w->admin_http)
            http_server_stop_accepting(w->admin_http);
    }
}

static void post(struct worker *w)
{
    event_active(w->mail_ev, EV_READ, 0);
}

void worker_wake(uint64_t ticket)
{
    unsigned index = (unsigned)(ticket >> 56);
    if (index >= g_runtime.worker_count || !g_runtime.workers[index])
        return;
    struct worker *w = g_runtime.workers[index];
    pthread_mutex_lock(&w->mail_lock);
    if (w->wake_count == w->wake_cap) {
        size_t cap = w->wake_cap ? w->wake_cap * 2 : 16;
        uint64_t *grown = realloc(w->wake_tickets, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&w->mail_lock);
            return;
        }
        w->wake_tickets = grown;
        w->wake_cap = cap;
    }
    w->wake_tickets[w->wake_count++] = ticket;
    pthread_mutex_unlock(&w->mail_lock);
    post(w);
}

void worker_adopt(struct worker *w, struct generation *gen)
{
    generation_ref(gen);
    pthread_mutex_lock(&w->mail_lock);
    struct generation *pending = w->adopt;
    w->adopt = gen;
    pthread_mutex_unlock(&w->mail_lock);
    if (pending)
        generation_unref(pending); /* superseded before adoption */
    post(w);
}

void worker_stop(struct worker *w)
{
    pthread_mutex_lock(&w->mail_lock);
    w->stop = true;
    pthread_mutex_unlock(&w->mail_lock);
    post(w);
}

/* ---- lifecycle ---- */

/* Exits the loop once stopped and idle (drain). */
static void drain_check_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&w->mail_lock);
    bool stop = w->stop;
    pthread_mutex_unlock(&w->mail_lock);
    if (stop && w->active_requests == 0 &&
        (!w->http || http_server_active_requests(w->http) == 0))
        event_base_loopexit(w->base, NULL);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    tls_worker = w;
    worker_refresh_clock(w);
    init_instances(w, w->gen);
    policy_refresh(w);
    struct event *drain = event_new(w->base, -1, EV_PERSIST, drain_check_cb, w);
    struct timeval tick = {0, 50000};
    event_add(drain, &tick);
    event_base_dispatch(w->base);
    event_free(drain);
    /* Close what is left (drain timeout hit) on this thread, so requests
     * finish their log phase before the plugins' thread state goes. */
    if (w->http)
        http_server_free(w->http);
    if (w->admin_http)
        http_server_free(w->admin_http);
    w->http = w->admin_http = NULL;
    fini_instances(w, w->gen);
    for (size_t i = 0; i < w->retired_count; i++) {
        fini_instances(w, w->retired[i]);
        generation_unref(w->retired[i]);
    }
    w->retired_count = 0;
    tls_worker = NULL;
    atomic_fetch_sub(&workers_running, 1);
    return NULL;
}

struct worker *worker_new(unsigned index, struct generation *gen, char *err,
                          size_t errlen)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->index = index;
    w->rng = 0x853c49e6748fea9bull ^ ((uint64_t)index << 32) ^ clock_ns();
    pthread_mutex_init(&w->mail_lock, NULL);
    w->base = event_base_new();
    if (!w->base)
        goto fail;
    w->mail_ev = event_new(w->base, -1, 0, mailbox_cb, w);
    w->upstream = upstream_client_new(w->base);
    if (!w->mail_ev || !w->upstream)
        goto fail;
    generation_ref(gen);
    w->gen = gen;

    const struct config *c = gen->cfg;
    struct http_limits lim = {
        .header_timeout_ms = c->header_timeout_ms,
        .body_timeout_ms = c->body_timeout_ms,
        .idle_timeout_ms = c->idle_timeout_ms,
        .send_timeout_ms = c->send_timeout_ms,
        .max_header_bytes = c->max_header_bytes,
        .max_headers = c->max_headers,
        .max_body_bytes = c->max_body_bytes,
    };
    char addr[160];
    snprintf(addr, sizeof addr, "%s", c->listen);
    if (g_runtime.port) /* port 0 in config: later workers share the port */
        gateway_addr_with_port(addr, sizeof addr, c->listen, g_runtime.port);
    w->http = http_server_new(w->base, addr, &lim, gateway_on_request, w, err,
                              errlen);
    if (!w->http)
        goto fail;
    if (!g_runtime.port)
        g_runtime.port = http_server_port(w->http);
    if (index == 0 && c->admin_listen[0]) {
        char aerr[256];
        w->admin_http =
            http_server_new(w->base, c->admin_listen, &lim,
                            gateway_on_admin_request, w, aerr, sizeof aerr);
        if (!w->admin_http) {
            snprintf(err, errlen, "admin_listen: %s", aerr);
            goto fail;
        }
        g_runtime.admin_port = http_server_port(w->admin_http);
    }
    return w;
fail:
    if (!err[0])
        snprintf(err, errlen, "cannot start worker %u", index);
    worker_join_and_free(w);
    return NULL;
}

int worker_start(struct worker *w)
{
    atomic_fetch_add(&workers_running, 1);
    if (pthread_create(&w->thread, NULL, worker_main, w) == 0)
        return 0;
    atomic_fetch_sub(&workers_running, 1);
    return -1;
}

void worker_join_and_free(struct worker *w)
{
    if (!w)
        return;
    if (w->thread)
        pthread_join(w->thread, NULL);
    if (w->http)
        http_server_free(w->http);
    if (w->admin_http)
        http_server_free(w->admin_http);
    if (w->upstream)
        upstream_client_free(w->upstream);
    if (w->policy)
        policy_free(w->policy);
    if (w->gen)
        generation_unref(w->gen);
    if (w->adopt)
        generation_unref(w->adopt);
    if (w->mail_ev)
        event_free(w->mail_ev);
    if (w->base)
        event_base_free(w->base);
    free(w->suspended);
    free(w->wake_tickets);
    pthread_mutex_destroy(&w->mail_lock);
    free(w);
}
