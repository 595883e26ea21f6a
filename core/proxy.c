/* The upstream exchange of one request.
 *
 *   proxy_start → upstream_call_start
 *     on_headers: record the attempt; for a 2xx stream, start the SSE
 *                 response to the client right away (stream_relay.c)
 *     on_body:    stream → stream_relay_chunk; otherwise buffer
 *     on_done:    retry_schedule (retry.c: backoff, Retry-After, fallback)
 *                 while nothing reached the client; else answer and finish
 */
#include "proxy.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "http/http_server.h"
#include "http/openai_error.h"
#include "log.h"
#include "pipeline.h"
#include "request.h"
#include "request_end.h"
#include "respond.h"
#include "response_budget.h"
#include "retry.h"
#include "runtime.h"
#include "stream_relay.h"
#include "traffic_metrics.h"
#include "upstream/content_decode.h"
#include "upstream/sse.h"
#include "upstream/upstream_client.h"
#include "worker.h"

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

/* upstream_set_max_tokens: every length field the client used, or the
 * endpoint's own when it used none. */
static void set_max_tokens(json_t *body, enum api_kind kind, uint64_t n)
{
    static const char *const fields[] = {"max_tokens", "max_completion_tokens",
                                         "max_output_tokens"};
    bool set = false;
    for (size_t i = 0; i < 3; i++)
        if (json_object_get(body, fields[i])) {
            json_object_set_new(body, fields[i], json_integer((json_int_t)n));
            set = true;
        }
    if (!set)
        json_object_set_new(
            body, kind == API_RESPONSES ? "max_output_tokens" : "max_tokens",
            json_integer((json_int_t)n));
}

/* Where the model's value sits in the client's bytes: [*start, *end),
 * between its quotes. False when the decoded model is a copy (it had
 * escapes) or the new one would need escaping. */
static bool model_span(const struct sluice_req *r, size_t *start, size_t *end)
{
    const char *b = r->body, *m = r->api.model, *t = r->target_model;
    if (r->api.model_copy || !m || m <= b ||
        m + r->api.model_len >= b + r->body_len)
        return false;
    *start = (size_t)(m - b);
    *end = *start + r->api.model_len;
    if (b[*start - 1] != '"' || b[*end] != '"')
        return false;
    for (; *t; t++)
        if (*t == '"' || *t == '\\' || (unsigned char)*t < 0x20)
            return false;
    return true;
}

/* A length field is added only to a body that names none (a mention in
 * the text also counts: then jansson decides). */
static bool names_no_length(const struct sluice_req *r)
{
    static const char *const fields[] = {
        "max_tokens\"", "max_completion_tokens\"", "max_output_tokens\""};
    for (size_t i = 0; i < 3; i++)
        if (memmem(r->body, r->body_len, fields[i], strlen(fields[i])))
            return false;
    return true;
}

/* The client's bytes with the model's value replaced and/or the length
 * field added after the opening brace, when that is all that changed and
 * can be done without re-serialising: a router or policy rewriting the
 * model, or a clamp on a request without max_tokens, then costs a copy,
 * not a parse and a dump. NULL: the caller re-serialises. */
static char *with_body_spliced(const struct sluice_req *r, size_t *len)
{
    size_t start = 0, end = 0, open = 0;
    const char *t = r->target_model ? r->target_model : "";
    if (r->target_model && !model_span(r, &start, &end))
        return NULL;
    char field[64] = "";
    if (r->max_tokens_set) {
        if (!names_no_length(r))
            return NULL;
        while (open < r->body_len && r->body[open] != '{')
            open++;
        if (open >= r->body_len || (r->target_model && open >= start))
            return NULL;
        open++;
        snprintf(field, sizeof field, "\"%s\":%llu,",
                 r->kind == API_RESPONSES ? "max_output_tokens" : "max_tokens",
                 (unsigned long long)r->api.max_tokens);
    }
    size_t flen = strlen(field), tlen = strlen(t);
    if (!r->target_model)
        start = end = r->body_len; /* nothing replaced */
    *len = r->body_len + flen + tlen - (end - start);
    char *out = malloc(*len + 1), *at = out;
    if (!out)
        return NULL;
    memcpy(at, r->body, open);
    at += open;
    memcpy(at, field, flen);
    at += flen;
    memcpy(at, r->body + open, start - open);
    at += start - open;
    memcpy(at, t, tlen);
    at += tlen;
    memcpy(at, r->body + end, r->body_len - end);
    out[*len] = '\0';
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
    if (!want_usage) {
        char *out = with_body_spliced(r, len);
        if (out)
            return out;
    }
    /* shallow: we only replace members */
    json_t *copy = json_copy(request_json(r));
    if (!copy)
        return NULL;
    if (r->target_model)
        json_object_set_new(copy, "model", json_string(r->target_model));
    if (r->max_tokens_set)
        set_max_tokens(copy, r->kind, r->api.max_tokens);
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
    r->resp_headers = NULL;
    r->resp_header_count = 0;
    memset(&r->usage, 0, sizeof r->usage);
    if (r->resp_body)
        evbuffer_drain(r->resp_body, evbuffer_get_length(r->resp_body));
    response_budget_release(r->resp_budget_taken);
    r->resp_budget_taken = 0;
    content_decoder_free(r->decoder);
    r->decoder = NULL;
    if (r->sse) {
        sse_parser_free(r->sse);
        r->sse = NULL;
    }
}

void proxy_start(struct sluice_req *r)
{
    char url[1024];
    const char *headers[REQUEST_MAX_KV + 7];
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
    /* sluice reads every answer (usage, plugins, the relay): ask for it
     * uncompressed; content_decode.c handles upstreams that ignore this. */
    headers[n++] = "Accept-Encoding: identity";
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
    traffic_count_attempt(r->upstream->name);

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
    request_count(r); /* before the client can see the answer */
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

void proxy_answer_last(struct sluice_req *r)
{
    const struct attempt_record *a = current_attempt(r);
    if (a && a->upstream)
        r->upstream = a->upstream; /* not a fallback that never went */
    r->phase = PHASE_UPSTREAM;
    if (r->resp_status && r->resp_body) {
        r->response_reported = true;
        pipeline_response(r);
        if (r->ex)
            reply_buffered(r);
        request_finish(r);
        return;
    }
    fail_locally(r,
                 r->outcome == SLUICE_OUTCOME_TIMEOUT ? UPSTREAM_TIMEOUT
                                                      : UPSTREAM_CONNECT_ERROR,
                 "the retry was still paced at the retry deadline");
}

static void leave(struct sluice_req *r)
{
    if (--r->busy == 0 && r->finish_pending) {
        r->finish_pending = false;
        request_finish(r);
    }
}

/* A relayed stream ended. The response hooks and the metrics run before
 * [DONE] and the end of the client's stream leave: a client that reads the
 * end and asks again at once must find what they recorded (a cached
 * answer, the spend, the counts). Events of this read still queued go out
 * with them, in one send: a send of their own first was measured slower
 * to the first byte (the client wakes on this CPU and waits for the
 * second send anyway). */
static void finish_stream(struct sluice_req *r, enum upstream_result result)
{
    enum sluice_outcome outcome = stream_relay_end(r, result);
    end_attempt(r, outcome);
    r->response_reported = true;
    pipeline_response(r);
    if (r->ex)
        request_count(r);
    stream_relay_close(r);
    request_finish(r);
}

/* ---- what the upstream answered: compressed, too large, over budget ---- */

/* Gives up on an answer mid-way: the transfer is cancelled (an endless
 * upstream would otherwise be read to its end) and the client told why. */
static void abandon_answer(struct sluice_req *r, int status, const char *code,
                           const char *message, uint64_t retry_after_ms)
{
    upstream_call_cancel(r->call);
    r->call = NULL;
    if (r->stream_to_client) {
        finish_stream(r, UPSTREAM_BROKEN);
        return;
    }
    end_attempt(r, SLUICE_OUTCOME_TRUNCATED);
    respond_set_error(r, status, "api_error", code, message, NULL,
                      retry_after_ms);
    respond_send_local(r);
}

/* Answer bytes (decoded if need be): relayed to a streaming client, or
 * held within the answer's cap and the gateway-wide buffering budget.
 * False when the answer was abandoned. */
static bool take_answer_bytes(struct sluice_req *r, const char *data,
                              size_t len)
{
    if (r->stream_to_client) {
        if (stream_relay_chunk(r, data, len))
            return true;
        abandon_answer(r, 502, "upstream_event_too_large",
                       "An upstream event exceeded the gateway's size limit.",
                       0);
        return false;
    }
    const struct config *cfg = r->gen->cfg;
    if (!r->resp_body)
        r->resp_body = evbuffer_new();
    if (!r->resp_body ||
        evbuffer_get_length(r->resp_body) + len > cfg->max_response_bytes) {
        abandon_answer(r, 502, "upstream_response_too_large",
                       "The upstream response exceeded the gateway's size "
                       "limit.",
                       0);
        return false;
    }
    if (!response_budget_take(len, cfg->max_buffered_response_bytes)) {
        metric_add(g_runtime.m.response_budget_exceeded, 1);
        abandon_answer(r, 503, "buffer_budget_exceeded",
                       "The gateway is holding too many upstream answers at "
                       "once; retry shortly.",
                       1000);
        return false;
    }
    r->resp_budget_taken += len;
    evbuffer_add(r->resp_body, data, len);
    return true;
}

struct decoded_sink {
    struct sluice_req *r;
    bool abandoned;
};

static void on_decoded(void *arg, const char *data, size_t len)
{
    struct decoded_sink *s = arg;
    if (!s->abandoned && !take_answer_bytes(s->r, data, len))
        s->abandoned = true;
}

static void take_compressed_bytes(struct sluice_req *r, const char *data,
                                  size_t len)
{
    struct decoded_sink sink = {.r = r};
    enum content_decode_status st =
        content_decoder_feed(r->decoder, data, len, on_decoded, &sink);
    if (st != DECODE_OK && !sink.abandoned)
        abandon_answer(r, 502, "upstream_error",
                       "The upstream sent a compressed answer that could "
                       "not be decoded.",
                       0);
}

/* ---- upstream callbacks ---- */

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
        traffic_observe_first_byte(r->upstream->name,
                                   (double)(r->first_byte_ns - r->started_ns) /
                                       1e9);
    }
    size_t coding_len = 0;
    const char *coding_name =
        request_resp_header(r, "content-encoding", &coding_len);
    enum content_coding coding =
        coding_name ? content_coding_parse(coding_name, coding_len)
                    : CODING_IDENTITY;
    if (coding == CODING_UNSUPPORTED) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "The upstream answered with Content-Encoding '%.*s', which "
                 "the gateway cannot decode.",
                 (int)(coding_len < 40 ? coding_len : 40), coding_name);
        abandon_answer(r, 502, "upstream_error", msg, 0);
        leave(r);
        return;
    }
    if (coding != CODING_IDENTITY) {
        metric_add(g_runtime.m.response_decoded, 1);
        /* Sizes are capped where the decoded bytes land. */
        r->decoder = content_decoder_new(coding, SIZE_MAX);
        if (!r->decoder) {
            abandon_answer(r, 503, "server_error", "Out of memory.", 1000);
            leave(r);
            return;
        }
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
        stream_relay_start(r);
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
    r->busy++;
    if (r->decoder)
        take_compressed_bytes(r, data, len);
    else
        take_answer_bytes(r, data, len);
    leave(r);
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
    /* A compressed answer must end with its own end marker too. */
    if (result == UPSTREAM_DONE && r->decoder &&
        !content_decoder_complete(r->decoder))
        result = UPSTREAM_BROKEN;

    if (r->stream_to_client) {
        finish_stream(r, result);
        leave(r);
        return;
    }
    if (result == UPSTREAM_DONE) {
        int status = r->resp_status;
        end_attempt(r, status < 400 ? SLUICE_OUTCOME_OK
                                    : SLUICE_OUTCOME_HTTP_ERROR);
        if (retry_schedule(r, retry_status_retryable(r, status))) {
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
    if (retry_schedule(r, result != UPSTREAM_CANCELLED)) {
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
    retry_cancel(r);
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
