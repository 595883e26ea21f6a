/* Upstream calls made by plugins (host->call_upstream), over the calling
 * worker's own upstream client: the provider key, pool, timeouts and the
 * attempts counter of proxied requests.
 *
 * Calls in flight live in a list per worker thread. A call belongs either
 * to a request (cancelled when the request ends) or to the plugin instance
 * on that worker (cancelled when the instance leaves the worker). Either
 * way the plugin's callback runs exactly once, unless the plugin cancelled
 * the call itself, and never after the memory it might point into. */
#include "host_services.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "request.h"
#include "runtime.h"
#include "traffic_metrics.h"
#include "upstream/upstream_client.h"
#include "worker.h"

#define CALL_MAX_HEADERS 16
#define CALL_MAX_PATH 512

struct plugin_call {
    struct plugin_call *prev, *next;
    sluice_call_t id;
    struct host_services *owner;
    struct sluice_req *req; /* NULL: belongs to the instance */
    struct worker *w;
    struct upstream_call *call;
    sluice_call_fn done;
    void *arg;
    int status;
    struct evbuffer *body;
    bool starting; /* inside upstream_call_start */
    bool finished; /* on_done came while starting: deliver later */
    enum sluice_outcome early_outcome;
    struct event *deliver_ev;
    size_t max_body; /* SLUICE_CALL_MAX_BODY or limits.max_response_bytes */
};

static _Thread_local struct plugin_call *tl_calls;
static _Thread_local uint64_t tl_next_id;
/* The request whose end is running: it may not start calls any more. */
static _Thread_local const struct sluice_req *tl_ending;

static void unlink_call(struct plugin_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        tl_calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void free_call(struct plugin_call *c)
{
    if (c->body)
        evbuffer_free(c->body);
    if (c->deliver_ev)
        event_free(c->deliver_ev);
    free(c);
}

/* Unlinks, tells the plugin, frees. */
static void deliver(struct plugin_call *c, enum sluice_outcome outcome)
{
    struct sluice_call_result res = {.status = c->status, .outcome = outcome};
    if (outcome == SLUICE_OUTCOME_OK || outcome == SLUICE_OUTCOME_HTTP_ERROR) {
        size_t len = evbuffer_get_length(c->body);
        res.body.ptr = len ? (const char *)evbuffer_pullup(c->body, -1) : NULL;
        res.body.len = len;
    }
    unlink_call(c);
    worker_refresh_clock(c->w);
    c->done(c->arg, &res);
    free_call(c);
}

/* ---- upstream client callbacks ---- */

static void on_headers(struct upstream_call *uc, void *arg, int status,
                       const char *const *headers, size_t n)
{
    struct plugin_call *c = arg;
    (void)uc;
    (void)headers;
    (void)n;
    c->status = status;
}

static bool on_body(struct upstream_call *uc, void *arg, const char *data,
                    size_t len)
{
    struct plugin_call *c = arg;
    if (evbuffer_get_length(c->body) + len > c->max_body ||
        evbuffer_add(c->body, data, len) != 0) {
        /* Over the limit: stop reading now rather than buffer it. */
        upstream_call_cancel(uc);
        c->call = NULL;
        evbuffer_drain(c->body, evbuffer_get_length(c->body));
        deliver(c, SLUICE_OUTCOME_TRUNCATED);
        return false;
    }
    return true;
}

static enum sluice_outcome outcome_of(const struct plugin_call *c,
                                      enum upstream_result result)
{
    switch (result) {
    case UPSTREAM_DONE:
        return c->status >= 200 && c->status < 300 ? SLUICE_OUTCOME_OK
                                                   : SLUICE_OUTCOME_HTTP_ERROR;
    case UPSTREAM_TIMEOUT:
        return SLUICE_OUTCOME_TIMEOUT;
    case UPSTREAM_CANCELLED:
        return SLUICE_OUTCOME_CLIENT_GONE;
    case UPSTREAM_BROKEN:
        return SLUICE_OUTCOME_TRUNCATED;
    case UPSTREAM_CONNECT_ERROR:
    default:
        return SLUICE_OUTCOME_CONNECT_ERROR;
    }
}

static void on_done(struct upstream_call *uc, void *arg,
                    enum upstream_result result, const char *detail)
{
    struct plugin_call *c = arg;
    (void)uc;
    (void)detail;
    c->call = NULL;
    if (c->starting) { /* the promise: never inside call_upstream() */
        c->finished = true;
        c->early_outcome = outcome_of(c, result);
        return;
    }
    deliver(c, outcome_of(c, result));
}

static const struct upstream_callbacks callbacks = {
    .on_headers = on_headers,
    .on_body = on_body,
    .on_done = on_done,
};

static void deliver_later_cb(evutil_socket_t fd, short what, void *arg)
{
    struct plugin_call *c = arg;
    (void)fd;
    (void)what;
    deliver(c, c->early_outcome);
}

/* ---- building the call ---- */

static bool header_ok(const char *h)
{
    const char *colon = strchr(h, ':');
    if (!colon || colon == h || strpbrk(h, "\r\n"))
        return false;
    return !((size_t)(colon - h) == 13 &&
             strncasecmp(h, "authorization", 13) == 0);
}

static bool path_ok(const char *path)
{
    size_t len = path ? strlen(path) : 0;
    return len > 1 && len < CALL_MAX_PATH && path[0] == '/' &&
           !strpbrk(path, " \t\r\n");
}

static void build_url(char *url, size_t cap, const struct upstream_config *u,
                      const char *path)
{
    /* base_url is the API root (".../v1"), as for proxied requests. */
    if (strncmp(path, "/v1/", 4) == 0)
        path += 3;
    snprintf(url, cap, "%s%s", u->base_url, path);
}

static const char *provider_key(const struct upstream_config *u)
{
    const char *key = u->api_key_env[0] ? getenv(u->api_key_env) : NULL;
    return key && *key ? key : NULL;
}

/* "POST", "DELETE": an upper-case token the request line can carry. */
static bool method_ok(const char *m)
{
    size_t len = m ? strlen(m) : 0;
    if (len == 0 || len > 16)
        return false;
    for (size_t i = 0; i < len; i++)
        if (m[i] < 'A' || m[i] > 'Z')
            return false;
    return true;
}

/* Both call_upstream and call_upstream_raw: content_type NULL sends no
 * Content-Type header. */
static int start_call(const struct sluice_host *h, struct sluice_req *r,
                      const char *upstream, const char *method,
                      const char *path, const char *content_type,
                      struct sluice_str body, const char *const *headers,
                      sluice_call_fn done, void *arg, sluice_call_t *out)
{
    struct host_services *s = host_services_of(h);
    struct worker *w = worker_current();
    if (out)
        *out = 0;
    if (!s)
        return SLUICE_ENOMEM;
    if (!w || host_services_leaving(s) ||
        (r && (r->w != w || r->logged || r->client_gone || r == tl_ending)))
        return SLUICE_EPHASE;
    if (!done || !upstream || !path_ok(path) || !method_ok(method) ||
        (content_type &&
         (strlen(content_type) > 400 || strpbrk(content_type, "\r\n"))))
        return SLUICE_EINVAL;
    const struct upstream_config *u =
        config_upstream(s->cfg, upstream, strlen(upstream));
    if (!u || !config_upstream_enabled(u))
        return SLUICE_ENOENT;

    const char *list[CALL_MAX_HEADERS + 5];
    size_t n = 0;
    char auth[600], rid[80], url[1100], ctype[420];
    const char *key = provider_key(u);
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        list[n++] = auth;
    }
    if (r) {
        snprintf(rid, sizeof rid, "x-request-id: %s", r->id);
        list[n++] = rid;
    }
    if (content_type) {
        snprintf(ctype, sizeof ctype, "Content-Type: %s", content_type);
        list[n++] = ctype;
    }
    for (size_t i = 0; headers && headers[i]; i++) {
        if (i == CALL_MAX_HEADERS || !header_ok(headers[i]))
            return SLUICE_EINVAL;
        list[n++] = headers[i];
    }
    list[n] = NULL;
    build_url(url, sizeof url, u, path);

    struct plugin_call *c = calloc(1, sizeof *c);
    if (!c || !(c->body = evbuffer_new())) {
        free(c);
        return SLUICE_ENOMEM;
    }
    c->id = ((uint64_t)w->index << 56) | (++tl_next_id & ((1ull << 56) - 1));
    c->owner = s;
    c->req = r;
    c->w = w;
    c->done = done;
    c->arg = arg;
    c->max_body = SLUICE_CALL_MAX_BODY;
    if (s->cfg->max_response_bytes && s->cfg->max_response_bytes < c->max_body)
        c->max_body = s->cfg->max_response_bytes;
    struct upstream_request req = {
        .url = url,
        .method = method,
        .headers = list,
        .body = body.ptr,
        .body_len = body.ptr ? body.len : 0,
        .connect_timeout_ms = u->connect_timeout_ms,
        .first_byte_timeout_ms = u->first_byte_timeout_ms,
        .idle_timeout_ms = u->idle_timeout_ms,
        .max_host_connections = u->max_connections,
        .use_curl = u->use_curl,
    };
    c->starting = true;
    c->call = upstream_call_start(w->upstream, &req, &callbacks, c);
    c->starting = false;
    if (!c->call && !c->finished) {
        free_call(c);
        return SLUICE_ENOMEM;
    }
    traffic_count_attempt(u->name);
    c->next = tl_calls;
    if (tl_calls)
        tl_calls->prev = c;
    tl_calls = c;
    if (c->finished) {
        c->deliver_ev = evtimer_new(w->base, deliver_later_cb, c);
        struct timeval now = {0, 0};
        if (!c->deliver_ev || evtimer_add(c->deliver_ev, &now) != 0) {
            deliver(c, c->early_outcome); /* out of memory: better late */
            return SLUICE_ENOMEM;
        }
    }
    if (out)
        *out = c->id;
    return SLUICE_OK;
}

int host_call_upstream(const struct sluice_host *h, struct sluice_req *r,
                       const char *upstream, const char *path,
                       struct sluice_str body, const char *const *headers,
                       sluice_call_fn done, void *arg, sluice_call_t *out)
{
    return start_call(h, r, upstream, body.ptr ? "POST" : "GET", path,
                      body.ptr ? "application/json" : NULL, body, headers, done,
                      arg, out);
}

int host_call_upstream_raw(const struct sluice_host *h, struct sluice_req *r,
                           const char *upstream, const char *method,
                           const char *path, const char *content_type,
                           struct sluice_str body, const char *const *headers,
                           sluice_call_fn done, void *arg, sluice_call_t *out)
{
    if (out)
        *out = 0;
    return start_call(h, r, upstream, method, path, content_type, body, headers,
                      done, arg, out);
}

static void abort_call(struct plugin_call *c)
{
    if (c->call) {
        upstream_call_cancel(c->call);
        c->call = NULL;
    }
}

int host_call_cancel(const struct sluice_host *h, sluice_call_t id)
{
    (void)h;
    for (struct plugin_call *c = tl_calls; c; c = c->next) {
        if (c->id == id) {
            abort_call(c);
            unlink_call(c);
            free_call(c);
            return SLUICE_OK;
        }
    }
    return SLUICE_ENOENT;
}

void host_calls_cancel_request(struct sluice_req *r)
{
    const struct sluice_req *outer = tl_ending;
    tl_ending = r;
    struct plugin_call *c = tl_calls;
    while (c) {
        struct plugin_call *next = c->next;
        if (c->req == r) {
            abort_call(c);
            deliver(c, SLUICE_OUTCOME_CLIENT_GONE);
            next = tl_calls; /* the callback may have changed the list */
        }
        c = next;
    }
    tl_ending = outer;
}

void host_calls_cancel_instance(struct host_services *s)
{
    struct plugin_call *c = tl_calls;
    while (c) {
        struct plugin_call *next = c->next;
        if (c->owner == s && !c->req) {
            abort_call(c);
            deliver(c, SLUICE_OUTCOME_CLIENT_GONE);
            next = tl_calls;
        }
        c = next;
    }
}
