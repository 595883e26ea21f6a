/* The SDK 1.1 host services that outlive one hook: upstream calls made by
 * plugins (host_calls.c), per-worker timers (host_timers.c), and reads of
 * health and the configured upstreams (host_reads.c). This header is what
 * the rest of the core calls to wire them in: host.c fills the table,
 * runtime.c frees the per-instance state, worker.c arms and tears down per
 * worker, request.c ends a request's calls and runs on_cleanup. */
#ifndef SLUICE_HOST_SERVICES_H
#define SLUICE_HOST_SERVICES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/host.h"

struct config;
struct instance;
struct instance_host;
struct sluice_req;
struct worker;

/* A timer registered in create(), armed by each worker it names once that
 * worker has run thread_init for the instance. */
struct timer_spec {
    sluice_timer_t id;
    unsigned worker; /* index or SLUICE_WORKER_ALL */
    uint64_t delay_ms, period_ms;
    sluice_timer_fn fn;
    void *arg;
};

/* Per plugin instance; lives as long as the instance. */
struct host_services {
    struct instance *inst;
    const struct config *cfg; /* the instance's generation holds it */
    atomic_uint_fast64_t next_timer_id;
    /* Set by the first worker arming the instance: from then on the main
     * thread may no longer register timers (create() is over). */
    atomic_bool sealed;
    /* Written on the main thread in create() only, read-only afterwards
     * (workers receive the generation through a mutex-protected mailbox). */
    struct timer_spec *specs;
    size_t spec_count, spec_cap;
};

/* Main thread, from host_init / the generation's destruction. */
struct host_services *host_services_new(struct instance *inst,
                                        const struct config *cfg);
void host_services_free(struct host_services *s);
/* Puts the 1.1 members into the instance's table. */
void host_services_fill(struct sluice_host *h);
struct host_services *host_services_of(const struct sluice_host *h);

/* Worker thread: the instance became usable on w (after thread_init) /
 * leaves w (before thread_fini): arm its create()-time timers / cancel its
 * timers and its calls made outside requests. */
void host_services_thread_start(struct instance *inst, struct worker *w);
void host_services_thread_stop(struct instance *inst, struct worker *w);

/* Worker thread, from request_free: cancels the request's calls (their
 * callbacks are told CLIENT_GONE), then runs on_cleanup for every plugin
 * the request reached, in reverse order. */
void host_services_request_end(struct sluice_req *r);

/* True on a worker thread while s is leaving it (thread stop): no new
 * calls or timers for s there. */
bool host_services_leaving(const struct host_services *s);

/* host_calls.c / host_timers.c internals used by the above. */
void host_calls_cancel_request(struct sluice_req *r);
void host_calls_cancel_instance(struct host_services *s);
void host_timers_arm_specs(struct host_services *s, struct worker *w);
void host_timers_cancel_instance(struct host_services *s);

int host_call_upstream(const struct sluice_host *h, struct sluice_req *r,
                       const char *upstream, const char *path,
                       struct sluice_str body, const char *const *headers,
                       sluice_call_fn done, void *arg, sluice_call_t *out);
int host_call_upstream_raw(const struct sluice_host *h, struct sluice_req *r,
                           const char *upstream, const char *method,
                           const char *path, const char *content_type,
                           struct sluice_str body, const char *const *headers,
                           sluice_call_fn done, void *arg, sluice_call_t *out);
int host_call_cancel(const struct sluice_host *h, sluice_call_t call);
int host_timer_start(const struct sluice_host *h, unsigned worker,
                     uint64_t delay_ms, uint64_t period_ms, sluice_timer_fn fn,
                     void *arg, sluice_timer_t *out);
int host_timer_cancel(const struct sluice_host *h, sluice_timer_t timer);

#endif
