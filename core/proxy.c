/* The upstream exchange of one request.
 *
 *   proxy_start → upstream_call_start
 *     on_headers: record the attempt; for a 2xx stream, start the SSE
 *                 response to the client right away
 *     on_body:    stream → forward event by event (backpressure: pause the
 *                 upstream when the client is slow); otherwise buffer
 *     on_done:    retry (backoff with full jitter, honouring Retry-After,
 *                 maybe on the next fallback step) while nothing reached the
 *                 client; else answer and finish
 */
#include "proxy.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config/config.h"
#include "health.h"
#include "http/http_server.h"
#include "http/openai_error.h"
#include "log.h"
#include "pipeline.h"
#include "request.h"
#include "respond.h"
#include "runtime.h"
#include "upstream/backoff.h"
#include "upstream/sse.h"
#include "upstream/upstream_client.h"
#include "worker.h"

#define MAX_RESPONSE_BYTES (64u << 20)
#define MAX_SSE_EVENT_BYTES (8u << 20)

static const struct upstream_callbacks callbacks;

/* ---- building the upstream request ---- */

static const char *upstream_key(const struct upstream_config *u)
{
    if (!u->api_key_env[0])
        return NULL;
    const char *key = getenv(u->api_key_env);
    return key && *key ? key : NULL;
}

/* The common streaming case without building a jansson tree (~10 µs of
 * time to first byte): the client's object, validated already, with
 * "stream_options":{"include_usage":true} added before its closing brace.
 * NULL when the body mentions stream_options anywhere (then the member
 * must be merged, not added) or memory runs out. */
static char *with_stream_usage(const char *body, size_t body_len, size_t *len)
{
    static const char member[] = ",\"stream_options\":{\"include_usage\":true}";
    if (memmem(body, body_len, "stream_options", 14))
        return NULL;
    size_t end = body_len;
    while (end > 0 && body[end - 1] != '}')
        end--; /* trailing whitespace */
    if (end < 2)
        return NULL;
    size_t close = end - 1;
    size_t last = close; /* is the object empty? then no comma */
    while (last > 0 && (body[last - 1] == ' ' || body[last - 1] == '\t' ||
                        body[last - 1] == '\n' || body[last - 1] == '\r'))
        last--;
    bool empty = last > 0 && body[last - 1] == '{';
    size_t add = sizeof member - 1 - (empty ? 1 : 0);
    char *out = malloc(close + add + 2);
    if (!out)
        return NULL;
    memcpy(out, body, close);
    memcpy(out + close, member + (empty ? 1 : 0), add);
    out[close + add] = '}';
    out[close + add + 1] = '\0';
    *len = close + add + 1;
    return out;
}

/* The body to send: the client's bytes, unless the model was rewritten or
 * stream usage must be requested (so token accounting works for streams). */
static char *upstream_body(struct sluice_req *r, size_t *len)
{
    bool want_usage = r->api.stream && !r->api.include_usage &&
                      (r->kind == API_CHAT || r->kind == API_COMPLETIONS);
    if (!r->body_dirty && !want_usage) {
        *len = r->body_len;
        return NULL; /* send r->body as is */
    }
    if (!r->body_dirty) {
        char *out = with_stream_usage(r->body, r->body_len, len);
        if (out) {
            r->strip_usage_chunk = true;
            return out;
        }
    }
    /* shallow: we only replace members */
    json_t *copy = json_copy(request_json(r));
    if (!copy)
        return NULL;
    if (r->target_model)
        json_object_set_new(copy, "model", json_string(r->target_model));
    if (want_usage) {
        json_t *so = json_object_get(copy, "stream_options");
        json_t *fresh = json_is_object(so) ? json_copy(so) : json_object();
        json_object_set_new(fresh, "include_usage", json_true());
        json_object_set_new(copy, "stream_options", fresh);
        r->strip_usage_chunk = true;
    }
    char *out = json_dumps(copy, JSON_COMPACT);
    json_decref(copy);
    *len = out ? strlen(out) : 0;
    return out;
}

/* dst = a + b, cut to cap (like snprintf, without its ~700-instruction
 * format parsing: this runs several times per request). */
static void join(char *dst, size_t cap, const char *a, const char *b,
                 size_t blen)
{
    size_t alen = strlen(a);
    if (alen >= cap)
        alen = cap - 1;
    memcpy(dst, a, alen);
    if (blen > cap - 1 - alen)
        blen = cap - 1 - alen;
    memcpy(dst + alen, b, blen);
    dst[alen + blen] = '\0';
}

static void build_url(const struct sluice_req *r, char *url, size_t cap)
{
    /* base_url ends in the API root (".../v1"); the endpoint starts with
     * "/v1", which the base already carries. */
    const char *suffix = r->endpoint;
    if (strncmp(suffix, "/v1/", 4) == 0)
        suffix += 3;
    join(url, cap, r->upstream->base_url, suffix, strlen(suffix));
}

/* ---- attempts ---- */

static struct attempt_record *current_attempt(struct sluice_req *r)
{
    return r->attempt_count ? &r->attempts[r->attempt_count - 1] : NULL;
}

static void end_attempt(struct sluice_req *r, enum sluice_outcome outcome)
{
    struct attempt_record *a = current_attempt(r);
    if (a && !a->ended_ns) {
        a->outcome = outcome;
        a->ended_ns = worker_now_ns();
    }
    r->outcome = outcome;
}

static void reset_response(struct sluice_req *r)
{
    r->resp_status = 0;
    r->resp_truncated = false;
    r->resp_headers = NULL;
    r->resp_header_count = 0;
    memset(&r->usage, 0, sizeof r->usage);
    if (r->resp_body)
        evbuffer_drain(r->resp_body, evbuffer_get_length(r->resp_body));
    if (r->sse) {
        sse_parser_free(r->sse);
        r->sse = NULL;
    }
}

void proxy_start(struct sluice_req *r)
{
    char url[1024];
    const char *headers[REQUEST_MAX_KV + 6];
    size_t n = 0;
    char auth[600], rid[80];

    if (r->client_gone) {
        request_finish(r);
        return;
    }
    if (r->attempt_count == REQUEST_MAX_ATTEMPTS) {
        respond_set_error(r, 502, "api_error", "upstream_error",
                          "All upstream attempts failed.", NULL, 0);
        respond_send_local(r);
        return;
    }
    reset_response(r);
    build_url(r, url, sizeof url);

    const char *key = upstream_key(r->upstream);
    if (key) {
        join(auth, sizeof auth, "Authorization: Bearer ", key, strlen(key));
        headers[n++] = auth;
    }
    join(rid, sizeof rid, "x-request-id: ", r->id, strlen(r->id));
    headers[n++] = rid;
    headers[n++] = "Content-Type: application/json";
    if (r->api.stream)
        headers[n++] = "Accept: text/event-stream";
    for (size_t i = 0; i < r->upstream_headers.n; i++) {
        const struct kv_pair *kv = &r->upstream_headers.items[i];
        size_t name_len = strlen(kv->name);
        char *h = arena_alloc(&r->arena, name_len + kv->value_len + 3);
        if (!h)
            continue;
        memcpy(h, kv->name, name_len);
        memcpy(h + name_len, ": ", 2);
        memcpy(h + name_len + 2, kv->value, kv->value_len);
        h[name_len + 2 + kv->value_len] = '\0';
        headers[n++] = h;
    }
    headers[n] = NULL;

    size_t body_len = 0;
    char *body = upstream_body(r, &body_len);
    struct upstream_request req = {
        .url = url,
        .method = "POST",
        .headers = headers,
        .body = body ? body : r->body,
        .body_len = body ? body_len : r->body_len,
        .streaming = r->api.stream,
        .connect_timeout_ms = r->upstream->connect_timeout_ms,
        .first_byte_timeout_ms = r->upstream->first_byte_timeout_ms,
        .idle_timeout_ms = r->upstream->idle_timeout_ms,
        .max_host_connections = r->upstream->max_connections,
        .use_curl = r->upstream->use_curl,
    };

    struct attempt_record *a = &r->attempts[r->attempt_count++];
    memset(a, 0, sizeof *a);
    a->upstream = r->upstream;
    size_t mlen;
    const char *model = request_target_model(r, &mlen);
    a->model = arena_strndup(&r->arena, model, mlen);
    a->started_ns = worker_now_ns();
    metric_add(g_runtime.m.upstream_attempts, 1);

    r->phase = PHASE_UPSTREAM;
    r->call = upstream_call_start(r->w->upstream, &req, &callbacks, r);
    free(body);
    if (!r->call) {
        end_attempt(r, SLUICE_OUTCOME_CONNECT_ERROR);
        respond_set_error(r, 502, "api_error", "upstream_error",
                          "Could not start the upstream request.", NULL, 0);
        respond_send_local(r);
    }
}

/* ---- retries ---- */

static bool retryable_status(int status)
{
    return status == 429 || status == 502 || status == 503 || status == 504;
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
    proxy_start(r);
}

/* Schedules another attempt if the failure is safe to retry and budget
 * remains. */
static bool schedule_retry(struct sluice_req *r, bool retryable)
{
    const struct retry_config *rc = &r->gen->cfg->retry;
    if (!retryable || r->client_headers_sent || r->client_gone ||
        r->attempt_count >= rc->max_attempts ||
        r->attempt_count >= REQUEST_MAX_ATTEMPTS)
        return false;

    uint64_t now = worker_now_ns();
    uint64_t elapsed_ms = (now - r->started_ns) / 1000000;
    if (elapsed_ms >= rc->deadline_ms)
        return false;
    /* attempt_count attempts are done, so this is retry attempt_count. */
    uint64_t delay = backoff_delay_ms(r->attempt_count, rc->base_delay_ms,
                                      rc->max_delay_ms, &r->w->rng);
    uint64_t told = upstream_retry_after_ms(r);

    bool moved = rc->on_other_upstream && next_fallback(r);
    /* A breaker opened by this very failure marks the upstream down: retry
     * elsewhere or not at all, never into an open circuit. */
    if (!moved && upstream_down(r->upstream)) {
        if (!next_fallback(r))
            return false;
        moved = true;
    }
    if (told > delay && !moved)
        delay = told; /* never retry the same upstream inside its window */
    if (elapsed_ms + delay >= rc->deadline_ms)
        return false;

    if (!r->retry_timer)
        r->retry_timer = evtimer_new(r->w->base, retry_timer_cb, r);
    if (!r->retry_timer)
        return false;
    struct timeval tv = {(time_t)(delay / 1000),
                         (suseconds_t)((delay % 1000) * 1000)};
    evtimer_add(r->retry_timer, &tv);
    metric_add(g_runtime.m.upstream_retries, 1);
    log_msg(LOG_DEBUG, "proxy", "%s: retry %u in %llu ms on %s", r->id,
            r->attempt_count + 1, (unsigned long long)delay, r->upstream->name);
    return true;
}

/* ---- answering from the upstream response ---- */

static bool is_event_stream(const struct sluice_req *r)
{
    size_t len = 0;
    const char *ct = request_resp_header(r, "content-type", &len);
    return ct && len >= 17 && strncasecmp(ct, "text/event-stream", 17) == 0;
}

/* Sends a complete (non-streamed) upstream answer. Error bodies that are
 * not OpenAI-shaped are wrapped, so clients always get the same shape. */
static void reply_buffered(struct sluice_req *r)
{
    size_t len = evbuffer_get_length(r->resp_body);
    const char *body = (const char *)evbuffer_pullup(r->resp_body, -1);
    char headers[4096];
    size_t at = respond_client_headers(r, headers, sizeof headers);
    char *wrapped = NULL;
    int status = r->resp_status;

    if (status >= 400) {
        json_t *j = json_loadb(body ? body : "", len, 0, NULL);
        if (!json_is_object(json_object_get(j, "error"))) {
            char msg[128];
            snprintf(msg, sizeof msg, "The upstream '%s' returned HTTP %d.",
                     r->upstream->name, status);
            wrapped = openai_error_body(status, NULL, msg, NULL,
                                        "upstream_error", &len);
            body = wrapped;
        }
        json_decref(j);
        size_t ra_len = 0;
        const char *ra = request_resp_header(r, "retry-after", &ra_len);
        for (size_t i = 0; ra && i < ra_len; i++)
            if ((unsigned char)ra[i] < 0x20 || ra[i] == 0x7f)
                ra = NULL; /* never echo control characters into headers */
        if (ra && at < sizeof headers)
            at += (size_t)snprintf(headers + at, sizeof headers - at,
                                   "Retry-After: %.*s\r\n", (int)ra_len, ra);
    }
    if (at < sizeof headers)
        snprintf(headers + at, sizeof headers - at,
                 "Content-Type: application/json\r\n");
    r->final_status = status;
    r->client_headers_sent = true;
    http_set_close_cb(r->ex, NULL, NULL);
    http_reply(r->ex, status, headers, body, body ? len : 0);
    r->ex = NULL;
    free(wrapped);
}

static void fail_locally(struct sluice_req *r, enum upstream_result result,
                         const char *detail)
{
    int status = result == UPSTREAM_TIMEOUT ? 504 : 502;
    char msg[200];
    snprintf(msg, sizeof msg, "%s upstream '%s'%s.",
             result == UPSTREAM_TIMEOUT ? "Timed out waiting for"
                                        : "Could not reach",
             r->upstream->name,
             result == UPSTREAM_BROKEN ? " (connection broken)" : "");
    log_msg(LOG_WARN, "proxy", "%s: upstream %s: %s", r->id, r->upstream->name,
            detail ? detail : "failed");
    respond_set_error(r, status, status == 504 ? "timeout_error" : "api_error",
                      status == 504 ? "upstream_timeout" : "upstream_error",
                      msg, NULL, 0);
    respond_send_local(r);
}

/* ---- streaming to the client ---- */

static void on_client_drained(struct http_exchange *ex, void *arg)
{
    struct sluice_req *r = arg;
    (void)ex;
    if (r->upstream_paused && r->call) {
        r->upstream_paused = false;
        upstream_call_resume(r->call);
    }
}

static void start_client_stream(struct sluice_req *r)
{
    char headers[4096];
    size_t at = respond_client_headers(r, headers, sizeof headers);
    if (at < sizeof headers)
        snprintf(headers + at, sizeof headers - at,
                 "Content-Type: text/event-stream\r\n"
                 "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    r->final_status = r->resp_status;
    r->client_headers_sent = true;
    r->stream_to_client = true;
    r->phase = PHASE_STREAMING;
    http_stream_start(r->ex, r->resp_status, headers);
}

static void apply_backpressure(struct sluice_req *r, size_t queued);

/* Re-serialises one event (used when an event must be dropped, so raw
 * bytes cannot be passed through). */
static void write_event(struct sluice_req *r, const struct sse_event *ev)
{
    struct evbuffer *out = evbuffer_new();
    if (!out)
        return;
    if (ev->event)
        evbuffer_add_printf(out, "event: %.*s\n", (int)ev->event_len,
                            ev->event);
    const char *p = ev->data, *end = ev->data + ev->data_len;
    do {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        evbuffer_add(out, "data: ", 6);
        evbuffer_add(out, p, (size_t)(line_end - p));
        evbuffer_add(out, "\n", 1);
        p = nl ? nl + 1 : end;
    } while (p < end);
    evbuffer_add(out, "\n", 1);
    size_t len = evbuffer_get_length(out);
    const char *bytes = (const char *)evbuffer_pullup(out, -1);
    if (r->ex)
        apply_backpressure(r, http_stream_write(r->ex, bytes, len));
    r->bytes_to_client += len;
    evbuffer_free(out);
}

static void on_sse_event(const struct sse_event *ev, void *arg)
{
    struct sluice_req *r = arg;
    if (!r->strip_usage_chunk)
        return; /* raw bytes are forwarded as they come */
    if (ev->usage_only)
        return; /* we asked for it; the client did not */
    write_event(r, ev);
}

static void apply_backpressure(struct sluice_req *r, size_t queued)
{
    if (!r->ex)
        return;
    size_t high = r->gen->cfg->stream_high_water;
    if (queued > high && r->call && !r->upstream_paused) {
        r->upstream_paused = true;
        upstream_call_pause(r->call);
        metric_add(g_runtime.m.upstream_pauses, 1);
        http_stream_on_drain(r->ex, high / 4, on_client_drained, r);
    }
}

static void stream_chunk(struct sluice_req *r, const char *data, size_t len)
{
    if (!r->sse)
        r->sse = sse_parser_new(MAX_SSE_EVENT_BYTES);
    bool ok = r->sse && sse_parser_feed(r->sse, data, len, on_sse_event, r);
    if (!r->strip_usage_chunk && r->ex) {
        size_t queued = http_stream_write(r->ex, data, len);
        r->bytes_to_client += len;
        apply_backpressure(r, queued);
    }
    if (!ok && r->sse)
        log_msg(LOG_WARN, "proxy", "%s: malformed SSE from upstream %s", r->id,
                r->upstream->name);
}

static void end_client_stream(struct sluice_req *r, enum upstream_result res)
{
    bool complete =
        res == UPSTREAM_DONE && r->sse && sse_parser_saw_done(r->sse);
    if (r->sse) {
        struct sse_usage u = sse_parser_usage(r->sse);
        if (u.known) {
            r->usage.known = true;
            r->usage.prompt_tokens = u.prompt_tokens;
            r->usage.completion_tokens = u.completion_tokens;
            r->usage.cached_tokens = u.cached_tokens;
            r->usage.total_tokens = u.total_tokens;
        }
    }
    /* Responses API streams end with response.completed, not [DONE]. */
    if (res == UPSTREAM_DONE && !complete && r->kind == API_RESPONSES &&
        r->usage.known)
        complete = true;
    if (!complete && r->ex) {
        /* Never let a cut stream look like a finished answer. */
        static const char cut[] =
            "data: {\"error\":{\"message\":\"The upstream stream ended before "
            "completion.\",\"type\":\"api_error\",\"param\":null,\"code\":"
            "\"stream_truncated\"}}\n\n";
        http_stream_write(r->ex, cut, sizeof cut - 1);
    }
    end_attempt(r, complete
                       ? SLUICE_OUTCOME_OK
                       : (res == UPSTREAM_TIMEOUT ? SLUICE_OUTCOME_TIMEOUT
                                                  : SLUICE_OUTCOME_TRUNCATED));
    if (r->ex) {
        http_set_close_cb(r->ex, NULL, NULL);
        http_stream_end(r->ex);
        r->ex = NULL;
    }
}

/* ---- upstream callbacks ---- */

static void leave(struct sluice_req *r)
{
    if (--r->busy == 0 && r->finish_pending) {
        r->finish_pending = false;
        request_finish(r);
    }
}

static void on_headers(struct upstream_call *c, void *arg, int status,
                       const char *const *headers, size_t n)
{
    struct sluice_req *r = arg;
    (void)c;
    worker_refresh_clock(r->w);
    r->busy++;
    r->resp_status = status;
    r->resp_headers = arena_alloc(&r->arena, (n ? n : 1) * sizeof(char *));
    for (size_t i = 0; r->resp_headers && i < n; i++) {
        r->resp_headers[i] =
            arena_strndup(&r->arena, headers[i], strlen(headers[i]));
        if (r->resp_headers[i])
            r->resp_header_count++;
    }
    struct attempt_record *a = current_attempt(r);
    if (a) {
        a->status = status;
        /* An error status is final now; plugins judge it in this hook. */
        if (status >= 400)
            a->outcome = r->outcome = SLUICE_OUTCOME_HTTP_ERROR;
    }
    if (!r->first_byte_ns) {
        r->first_byte_ns = worker_now_ns();
        metric_observe(g_runtime.m.ttfb_seconds,
                       (double)(r->first_byte_ns - r->started_ns) / 1e9);
    }

    if (a)
        a->reported = true;
    if (pipeline_upstream_response(r) == SLUICE_RESPOND) {
        upstream_call_cancel(r->call);
        r->call = NULL;
        end_attempt(r, status < 400 ? SLUICE_OUTCOME_OK
                                    : SLUICE_OUTCOME_HTTP_ERROR);
        respond_send_local(r);
    } else if (status >= 200 && status < 300 && r->api.stream &&
               is_event_stream(r) && r->ex) {
        start_client_stream(r);
    } else if (!r->resp_body) {
        r->resp_body = evbuffer_new();
    }
    leave(r);
}

static bool on_body(struct upstream_call *c, void *arg, const char *data,
                    size_t len)
{
    struct sluice_req *r = arg;
    (void)c;
    worker_refresh_clock(r->w);
    if (r->stream_to_client) {
        r->busy++;
        stream_chunk(r, data, len);
        leave(r);
        return true;
    }
    if (!r->resp_body)
        r->resp_body = evbuffer_new();
    if (!r->resp_body ||
        evbuffer_get_length(r->resp_body) + len > MAX_RESPONSE_BYTES) {
        r->resp_truncated = true; /* on_done answers 502 */
        return true;
    }
    evbuffer_add(r->resp_body, data, len);
    return true;
}

static void on_done(struct upstream_call *c, void *arg,
                    enum upstream_result result, const char *detail)
{
    struct sluice_req *r = arg;
    (void)c;
    worker_refresh_clock(r->w);
    r->call = NULL;
    r->busy++;

    if (r->stream_to_client) {
        end_client_stream(r, result);
        request_finish(r);
        leave(r);
        return;
    }
    if (result == UPSTREAM_DONE && r->resp_truncated) {
        end_attempt(r, SLUICE_OUTCOME_TRUNCATED);
        respond_set_error(r, 502, "api_error", "upstream_response_too_large",
                          "The upstream response exceeded the gateway's "
                          "size limit.",
                          NULL, 0);
        respond_send_local(r);
        leave(r);
        return;
    }
    if (result == UPSTREAM_DONE) {
        int status = r->resp_status;
        end_attempt(r, status < 400 ? SLUICE_OUTCOME_OK
                                    : SLUICE_OUTCOME_HTTP_ERROR);
        if (schedule_retry(r, retryable_status(status))) {
            leave(r);
            return;
        }
        if (status < 300 && r->resp_body) {
            struct sse_usage u = usage_from_json_body(
                (const char *)evbuffer_pullup(r->resp_body, -1),
                evbuffer_get_length(r->resp_body));
            r->usage.known = u.known;
            r->usage.prompt_tokens = u.prompt_tokens;
            r->usage.completion_tokens = u.completion_tokens;
            r->usage.cached_tokens = u.cached_tokens;
            r->usage.total_tokens = u.total_tokens;
        }
        /* Response hooks first: they may still add client headers. */
        r->response_reported = true;
        pipeline_response(r);
        if (r->ex)
            reply_buffered(r);
        request_finish(r);
        leave(r);
        return;
    }
    enum sluice_outcome outcome = result == UPSTREAM_TIMEOUT
                                      ? SLUICE_OUTCOME_TIMEOUT
                                      : SLUICE_OUTCOME_CONNECT_ERROR;
    end_attempt(r, outcome);
    /* Plugins judge every attempt as it ends (a breaker may open now and
     * so stop the retry below); a failure without headers counts too. */
    struct attempt_record *a = current_attempt(r);
    bool report = a && !a->reported; /* once per attempt */
    if (a)
        a->reported = true;
    if (report && pipeline_upstream_response(r) == SLUICE_RESPOND) {
        respond_send_local(r);
        leave(r);
        return;
    }
    if (schedule_retry(r, result != UPSTREAM_CANCELLED)) {
        leave(r);
        return;
    }
    fail_locally(r, result, detail);
    leave(r);
}

static const struct upstream_callbacks callbacks = {
    .on_headers = on_headers,
    .on_body = on_body,
    .on_done = on_done,
};

void proxy_client_gone(struct sluice_req *r)
{
    if (r->call) {
        upstream_call_cancel(r->call);
        r->call = NULL;
        end_attempt(r, SLUICE_OUTCOME_CLIENT_GONE);
    }
    if (r->retry_timer)
        evtimer_del(r->retry_timer);
    if (r->suspended) {
        worker_unsuspend(r->w, r);
        if (r->resume_timer)
            evtimer_del(r->resume_timer);
    }
    if (r->outcome == SLUICE_OUTCOME_NONE && r->attempt_count)
        r->outcome = SLUICE_OUTCOME_CLIENT_GONE;
    r->phase = PHASE_DONE;
    request_finish(r);
}
