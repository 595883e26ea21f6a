/* Requests the gateway makes to itself (see self_request.h). */
#include "self_request.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "http/openai_error.h"
#include "metrics.h"
#include "request.h"
#include "runtime.h"
#include "worker.h"

#define SELF_MAX_IDENTITY 127

/* The virtual exchange: who to hand the answer to. In the request arena. */
struct self_request {
    sluice_self_fn done;
    void *arg;
    struct event *start; /* the first loop turn after self_submit */
    bool delivered;
};

/* The generation the calling instance belongs to, if it is still live on
 * this worker (current, or retired with requests in flight). */
static struct generation *generation_of(struct worker *w,
                                        const struct instance *inst)
{
    if (w->gen && inst >= w->gen->inst && inst < w->gen->inst + w->gen->count)
        return w->gen;
    for (size_t i = 0; i < w->retired_count; i++) {
        struct generation *g = w->retired[i];
        if (inst >= g->inst && inst < g->inst + g->count)
            return g;
    }
    return NULL;
}

static bool printable(struct sluice_str s, size_t max)
{
    if (s.len > max || (s.len && !s.ptr))
        return false;
    for (size_t i = 0; i < s.len; i++)
        if ((unsigned char)s.ptr[i] < 0x20 || s.ptr[i] == 0x7f)
            return false;
    return true;
}

static bool valid_request_id(struct sluice_str s)
{
    if (s.len >= sizeof((struct sluice_req *)0)->id || (s.len && !s.ptr))
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!isalnum((unsigned char)s.ptr[i]) && s.ptr[i] != '-' &&
            s.ptr[i] != '_' && s.ptr[i] != '.')
            return false;
    return true;
}

/* The answer is delivered whole: a streamed one would arrive as SSE text. */
static bool asks_for_stream(enum api_kind kind, struct sluice_str body)
{
    struct api_request api;
    struct api_error err;
    if (!api_request_decode(kind, body.ptr ? body.ptr : "", body.len, &api,
                            &err))
        return false; /* answered with a 400 like a client's */
    bool stream = api.stream;
    api_request_release(&api);
    return stream;
}

static void start_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sluice_req *r = arg;
    (void)fd;
    (void)what;
    event_free(r->self->start);
    r->self->start = NULL;
    worker_refresh_clock(r->w);
    gateway_api_start(r, r->body, r->body_len);
}

static int self_submit(const struct sluice_host *h,
                       const struct sluice_self_request *req,
                       sluice_self_fn done, void *arg)
{
    struct worker *w = worker_current();
    if (!w)
        return SLUICE_EPHASE;
    struct generation *g =
        generation_of(w, ((const struct instance_host *)h)->inst);
    if (!g)
        return SLUICE_EPHASE;
    enum api_kind kind;
    const char *endpoint = req && req->endpoint
                               ? gateway_api_endpoint(req->endpoint, &kind)
                               : NULL;
    if (!endpoint || !done || (unsigned)req->priority > SLUICE_PRIO_LOW ||
        !valid_request_id(req->request_id) || (req->body.len && !req->body.ptr))
        return SLUICE_EINVAL;
    for (int i = 0; i < 4; i++)
        if (!printable(req->identity[i], SELF_MAX_IDENTITY))
            return SLUICE_EINVAL;
    if (asks_for_stream(kind, req->body))
        return SLUICE_EINVAL;

    struct sluice_req *r = request_new(w, g, NULL);
    if (!r)
        return SLUICE_ENOMEM;
    struct self_request *s = arena_alloc(&r->arena, sizeof *s);
    r->body = arena_strndup(&r->arena, req->body.ptr ? req->body.ptr : "",
                            req->body.len);
    r->body_len = req->body.len;
    if (s)
        s->start = evtimer_new(w->base, start_cb, r);
    bool ok = s && s->start && r->body;
    for (int i = 0; ok && i < 4; i++) {
        if (i == SLUICE_ID_TENANT && !req->identity[i].len)
            continue; /* "default", from request_new */
        char *v = arena_strndup(&r->arena, req->identity[i].ptr,
                                req->identity[i].len);
        ok = v != NULL;
        r->identity[i] = v;
    }
    if (!ok) {
        if (s && s->start)
            event_free(s->start);
        r->logged = true; /* never started: nothing to log */
        request_free(r);
        return SLUICE_ENOMEM;
    }
    s->done = done;
    s->arg = arg;
    r->self = s;
    r->kind = kind;
    r->endpoint = endpoint;
    r->priority = req->priority;
    if (req->request_id.len) {
        memcpy(r->id, req->request_id.ptr, req->request_id.len);
        r->id[req->request_id.len] = '\0';
    } else {
        snprintf(r->id, sizeof r->id, "self-%016llx",
                 (unsigned long long)r->ticket);
    }
    metric_gauge_add(g_runtime.m.active, 1);
    /* Never inside self_submit: the caller may hold state the callback
     * changes, and a plugin hook may be on the stack. */
    struct timeval now = {0, 0};
    evtimer_add(s->start, &now);
    return SLUICE_OK;
}

/* Seconds (a Retry-After value) → ms; 0 when absent or not a number. */
static uint64_t retry_after_ms(const char *v, size_t len)
{
    uint64_t secs = 0;
    if (!v || !len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9' || secs > 1000000)
            return 0;
        secs = secs * 10 + (uint64_t)(v[i] - '0');
    }
    return secs * 1000;
}

/* Clients always get {"error": {...}} (proxy.c wraps other error bodies
 * the same way); so does the submitter. */
static bool error_shaped(struct sluice_str body)
{
    json_t *j = json_loadb(body.ptr ? body.ptr : "", body.len, 0, NULL);
    bool shaped = json_is_object(json_object_get(j, "error"));
    json_decref(j);
    return shaped;
}

void self_request_end(struct sluice_req *r)
{
    struct self_request *s = r->self;
    if (!s || s->delivered)
        return;
    s->delivered = true;
    struct sluice_self_result res;
    memset(&res, 0, sizeof res);
    char *wrapped = NULL;
    size_t len = 0;
    const char *ra = NULL;

    if (r->phase == PHASE_DONE && r->has_local_response) {
        /* What respond_send_local would have written to a client. */
        res.status = r->local_status;
        res.body.ptr = r->local_body;
        res.body.len = r->local_body_len;
        ra = kv_get(&r->client_headers, "Retry-After", &len);
    } else if (r->resp_status && r->resp_body) {
        res.status = r->resp_status;
        res.body.len = evbuffer_get_length(r->resp_body);
        res.body.ptr = (const char *)evbuffer_pullup(r->resp_body, -1);
        ra = request_resp_header(r, "retry-after", &len);
        if (res.status >= 400 && !error_shaped(res.body)) {
            char msg[128];
            snprintf(msg, sizeof msg, "The upstream '%s' returned HTTP %d.",
                     r->upstream ? r->upstream->name : "?", res.status);
            wrapped = openai_error_body(res.status, NULL, msg, NULL,
                                        "upstream_error", &res.body.len);
            res.body.ptr = wrapped;
        }
    } else {
        /* Every path answers first; never leave the submitter waiting. */
        res.status = 500;
        wrapped = openai_error_body(500, NULL, "internal gateway error", NULL,
                                    NULL, &res.body.len);
        res.body.ptr = wrapped;
    }
    if (!res.body.ptr)
        res.body.len = 0;
    res.retry_after_ms = retry_after_ms(ra, ra ? len : 0);
    res.request_id.ptr = r->id;
    res.request_id.len = strlen(r->id);
    res.usage = r->usage;
    r->final_status = res.status;
    s->done(s->arg, &res);
    free(wrapped);
}

void self_request_host_fill(struct sluice_host *h)
{
    h->self_submit = self_submit;
}
