/* Retries and fallback: see retry.h. An attempt that failed before any
 * byte reached the client goes again after a backoff delay, possibly on
 * the next step of the model's fallback chain, through the pacing plugins'
 * on_attempt hooks (pipeline_attempt) and then proxy_start. */
#include "retry.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "config/config_retry.h"
#include "health.h"
#include "log.h"
#include "pipeline.h"
#include "proxy.h"
#include "request.h"
#include "runtime.h"
#include "traffic_metrics.h"
#include "upstream/backoff.h"
#include "worker.h"

bool retry_status_retryable(const struct sluice_req *r, int status)
{
    return config_retry_status(&r->gen->cfg->retry, status);
}

/* Retry-After as delta-seconds, HTTP-date, or retry-after-ms; 0 if none. */
static uint64_t upstream_retry_after_ms(const struct sluice_req *r)
{
    size_t len = 0;
    const char *v = request_resp_header(r, "retry-after-ms", &len);
    if (v && len && isdigit((unsigned char)v[0]))
        return strtoull(v, NULL, 10);
    v = request_resp_header(r, "retry-after", &len);
    if (!v || !len)
        return 0;
    if (isdigit((unsigned char)v[0])) {
        double secs = strtod(v, NULL);
        return secs > 0 ? (uint64_t)(secs * 1000.0 + 0.5) : 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    char date[64];
    snprintf(date, sizeof date, "%.*s", (int)len, v);
    if (strptime(date, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
        time_t when = timegm(&tm);
        time_t now = time(NULL);
        return when > now ? (uint64_t)(when - now) * 1000 : 0;
    }
    return 0;
}

static bool upstream_down(const struct upstream_config *u)
{
    char name[96];
    double v = 0;
    snprintf(name, sizeof name, "upstream.%s.down", u->name);
    return !config_upstream_enabled(u) || (health_get(name, &v) && v >= 1.0);
}

/* Moves the request to the next usable step of its model's fallback
 * chain; false when there is none. */
static bool next_fallback(struct sluice_req *r)
{
    const struct fallback_chain *chain =
        config_fallbacks(r->gen->cfg, r->api.model, r->api.model_len);
    while (chain && r->fallback_step < chain->step_count) {
        const struct fallback_step *s = &chain->steps[r->fallback_step++];
        const char *model = s->model[0] ? s->model : NULL;
        size_t mlen;
        const char *current_model = request_target_model(r, &mlen);
        const struct upstream_config *u =
            s->upstream[0]
                ? config_upstream(r->gen->cfg, s->upstream, strlen(s->upstream))
                : config_route_model(r->gen->cfg, model ? model : current_model,
                                     model ? strlen(model) : mlen);
        if (!u || upstream_down(u))
            continue;
        r->upstream = u;
        if (model) {
            r->target_model = arena_strndup(&r->arena, model, strlen(model));
            r->body_dirty = true;
        }
        r->fallback_reason = "retry";
        metric_add(g_runtime.m.fallbacks, 1);
        return true;
    }
    return false;
}

static void retry_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sluice_req *r = arg;
    (void)fd;
    (void)what;
    worker_refresh_clock(r->w);
    if (r->in_attempt_hooks) { /* the deadline of a paced retry */
        if (r->suspended) {
            worker_unsuspend(r->w, r);
            if (r->resume_timer)
                evtimer_del(r->resume_timer);
            r->in_attempt_hooks = false;
            r->next_attempt_hook = 0;
            log_msg(LOG_DEBUG, "proxy", "%s: retry deadline while paced",
                    r->id);
            proxy_answer_last(r); /* plugins let go of it in on_log */
        }
        return;
    }
    pipeline_attempt(r); /* pacing and admission, then proxy_start */
}

/* Schedules another attempt if the failure is safe to retry and budget
 * remains. */
bool retry_schedule(struct sluice_req *r, bool retryable)
{
    const struct retry_config *rc = &r->gen->cfg->retry;
    if (!retryable || r->client_headers_sent || r->client_gone ||
        r->attempt_count >= rc->max_attempts ||
        r->attempt_count >= REQUEST_MAX_ATTEMPTS)
        return false;

    uint64_t now = worker_now_ns();
    uint64_t elapsed_ms = (now - r->started_ns) / 1000000;
    /* attempt_count attempts are done, so this is retry attempt_count. */
    uint64_t jitter = backoff_delay_ms(r->attempt_count, rc->base_delay_ms,
                                       rc->max_delay_ms, &r->w->rng);
    uint64_t delay;
    if (!backoff_wait_ms(jitter, 0, elapsed_ms, rc->deadline_ms, &delay))
        return false; /* before moving: the answer names its upstream */

    bool moved = rc->on_other_upstream && next_fallback(r);
    /* A breaker opened by this very failure marks the upstream down: retry
     * elsewhere or not at all, never into an open circuit. */
    if (!moved && upstream_down(r->upstream)) {
        if (!next_fallback(r))
            return false;
        moved = true;
    }
    /* Never retry the same upstream inside its Retry-After window; a
     * window past the deadline sends the answer to the client now. */
    if (!moved && !backoff_wait_ms(jitter, upstream_retry_after_ms(r),
                                   elapsed_ms, rc->deadline_ms, &delay))
        return false;

    if (!r->retry_timer)
        r->retry_timer = evtimer_new(r->w->base, retry_timer_cb, r);
    if (!r->retry_timer)
        return false;
    struct timeval tv = {(time_t)(delay / 1000),
                         (suseconds_t)((delay % 1000) * 1000)};
    evtimer_add(r->retry_timer, &tv);
    traffic_count_retry(r->upstream->name);
    log_msg(LOG_DEBUG, "proxy", "%s: retry %u in %llu ms on %s", r->id,
            r->attempt_count + 1, (unsigned long long)delay, r->upstream->name);
    return true;
}

void retry_bound_pacing(struct sluice_req *r)
{
    const struct retry_config *rc = &r->gen->cfg->retry;
    uint64_t elapsed_ms = (worker_now_ns() - r->started_ns) / 1000000;
    uint64_t left =
        elapsed_ms < rc->deadline_ms ? rc->deadline_ms - elapsed_ms : 0;
    struct timeval tv = {(time_t)(left / 1000),
                         (suseconds_t)((left % 1000) * 1000)};
    if (r->retry_timer)
        evtimer_add(r->retry_timer, &tv);
}

void retry_cancel(struct sluice_req *r)
{
    if (r->retry_timer)
        evtimer_del(r->retry_timer);
}
