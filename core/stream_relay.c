/* The SSE relay of one request: see stream_relay.h. */
#include "stream_relay.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "host_streams.h"
#include "http/http_server.h"
#include "log.h"
#include "request.h"
#include "respond.h"
#include "runtime.h"
#include "upstream/sse.h"
#include "worker.h"

#define MAX_SSE_EVENT_BYTES (8u << 20)

static void on_client_drained(struct http_exchange *ex, void *arg)
{
    struct sluice_req *r = arg;
    (void)ex;
    if (r->upstream_paused && r->call) {
        r->upstream_paused = false;
        upstream_call_resume(r->call);
    }
}

void stream_relay_start(struct sluice_req *r)
{
    static const char sse_headers[] =
        "Content-Type: text/event-stream\r\n"
        "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
    char headers[4096];
    size_t at = respond_client_headers(r, headers, sizeof headers);
    if (at + sizeof sse_headers <= sizeof headers)
        memcpy(headers + at, sse_headers, sizeof sse_headers);
    r->final_status = r->resp_status;
    r->client_headers_sent = true;
    r->stream_to_client = true;
    r->phase = PHASE_STREAMING;
    if (!r->whole) /* only when a plugin reads streams whole */
        r->whole = stream_whole_start(r);
    http_stream_start(r->ex, r->resp_status, headers);
}

static void apply_backpressure(struct sluice_req *r, size_t queued);

/* Keeps bytes from [DONE] on for stream_relay_close. */
static void hold(struct sluice_req *r, const char *data, size_t len)
{
    char *grown = arena_alloc(&r->arena, r->held_len + len);
    if (!grown)
        return; /* out of memory: the stream then ends without them */
    if (r->held_len)
        memcpy(grown, r->held, r->held_len);
    memcpy(grown + r->held_len, data, len);
    r->held = grown;
    r->held_len += len;
}

/* Queues bytes for the client. They leave at the end of this loop pass,
 * the head and every event of one upstream read in one writev: writing
 * the first event on its own was measured 10 µs slower to the first byte
 * (bench/ab.sh), the extra syscall and wake-up costing more than parsing
 * the rest of the read. */
static void send_to_client(struct sluice_req *r, const char *data, size_t len)
{
    if (!r->ex)
        return;
    if (r->holding) {
        hold(r, data, len);
        return;
    }
    size_t queued = http_stream_write(r->ex, data, len);
    r->bytes_to_client += len;
    apply_backpressure(r, queued);
}

/* Bytes held since [DONE] go out; used when more data follows it (an odd
 * upstream) and when the stream ends. */
static void release_held(struct sluice_req *r)
{
    r->holding = false;
    if (r->held_len)
        send_to_client(r, r->held, r->held_len);
    r->held_len = 0;
}

/* Re-serialises one event that did not arrive whole in this read (its
 * first bytes were held back with the parser). A one-line event without a
 * name, the usual kind, is laid out in place; others go through an
 * evbuffer. */
static void write_event(struct sluice_req *r, const struct sse_event *ev)
{
    char line[4096];
    if (!ev->event && ev->data_len + 8 <= sizeof line &&
        !memchr(ev->data, '\n', ev->data_len)) {
        memcpy(line, "data: ", 6);
        memcpy(line + 6, ev->data, ev->data_len);
        memcpy(line + 6 + ev->data_len, "\n\n", 2);
        send_to_client(r, line, ev->data_len + 8);
        return;
    }
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
    send_to_client(r, (const char *)evbuffer_pullup(out, -1), len);
    evbuffer_free(out);
}

/* Sends the span of this read kept so far. */
static void flush_kept(struct sluice_req *r)
{
    if (r->keep_to > r->keep_from)
        send_to_client(r, r->relay_read + r->keep_from,
                       r->keep_to - r->keep_from);
    r->keep_from = r->keep_to = 0;
}

/* While stripping the usage chunk the gateway asked for: events that
 * arrived whole in this read pass as their raw bytes, in as few writes as
 * the dropped chunk allows; an event begun in an earlier read (whose
 * bytes the parser held) is re-serialised. */
static void relay_stripped(struct sluice_req *r, const struct sse_event *ev)
{
    bool whole_here = ev->raw_len <= ev->end;
    size_t start = whole_here ? ev->end - ev->raw_len : 0;
    if (ev->usage_only || !whole_here || start != r->keep_to)
        flush_kept(r);
    if (ev->usage_only) /* we asked for it; the client did not */
        return;
    if (!whole_here) {
        write_event(r, ev);
        return;
    }
    if (r->keep_to == r->keep_from)
        r->keep_from = start;
    r->keep_to = ev->end;
}

static void on_sse_event(const struct sse_event *ev, void *arg)
{
    struct sluice_req *r = arg;
    if (r->whole)
        stream_whole_event(r->whole, ev->data, ev->data_len);
    if (ev->done && !r->holding) {
        /* A client may act on [DONE] without waiting for the end of the
         * body: it is held back until the response hooks and the metrics
         * have run (a cached answer, the spend, the token counts are in
         * place once anyone can see the end). What came before it goes
         * now. */
        size_t start = ev->raw_len <= ev->end ? ev->end - ev->raw_len : 0;
        if (r->strip_usage_chunk)
            flush_kept(r);
        else
            send_to_client(r, r->relay_read + r->keep_to, start - r->keep_to);
        r->keep_from = r->keep_to = start;
        r->holding = true;
    }
    if (r->strip_usage_chunk)
        relay_stripped(r, ev);
    /* else raw bytes are forwarded as they come */
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

/* Ends the client's stream with an error event; the blank lines first
 * end whatever part of the failed event was already passed through. */
static void cut_client(struct sluice_req *r)
{
    static const char cut[] =
        "\n\ndata: {\"error\":{\"message\":\"An upstream event exceeded the "
        "gateway's size limit.\",\"type\":\"api_error\",\"param\":null,"
        "\"code\":\"upstream_event_too_large\"}}\n\n";
    if (!r->ex)
        return;
    http_stream_write(r->ex, cut, sizeof cut - 1);
    http_set_close_cb(r->ex, NULL, NULL);
    http_stream_end(r->ex);
    r->ex = NULL;
}

bool stream_relay_chunk(struct sluice_req *r, const char *data, size_t len)
{
    if (!r->sse)
        r->sse = sse_parser_new(MAX_SSE_EVENT_BYTES);
    if (r->holding)
        release_held(r); /* more came after [DONE]: keep the order */
    r->relay_read = data;
    r->keep_from = r->keep_to = 0;
    bool ok = r->sse && sse_parser_feed(r->sse, data, len, on_sse_event, r);
    if (r->strip_usage_chunk)
        flush_kept(r); /* the unfinished tail stays with the parser */
    r->relay_read = NULL;
    if (!ok) {
        /* An event over the cap (or no memory for it): the rest of the
         * stream cannot be relayed, so the caller stops the upstream. */
        log_msg(LOG_WARN, "proxy",
                "%s: SSE event from upstream %s over %u bytes: stream cut",
                r->id, r->upstream->name, MAX_SSE_EVENT_BYTES);
        cut_client(r);
        return false;
    }
    if (!r->strip_usage_chunk) /* raw bytes pass as they came */
        send_to_client(r, data + r->keep_to, len - r->keep_to);
    return true;
}

enum sluice_outcome stream_relay_end(struct sluice_req *r,
                                     enum upstream_result res)
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
        send_to_client(r, cut, sizeof cut - 1); /* after anything held */
    }
    if (complete)
        return SLUICE_OUTCOME_OK;
    return res == UPSTREAM_TIMEOUT ? SLUICE_OUTCOME_TIMEOUT
                                   : SLUICE_OUTCOME_TRUNCATED;
}

void stream_relay_close(struct sluice_req *r)
{
    release_held(r);
    if (r->ex) {
        http_set_close_cb(r->ex, NULL, NULL);
        http_stream_end(r->ex);
        r->ex = NULL;
    }
}
