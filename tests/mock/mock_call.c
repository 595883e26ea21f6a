#include "mock_call.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "mock_conns.h"
#include "mock_http.h"
#include "mock_server.h"

/* Enough for a peer on loopback to read what was flushed before the
 * reset, so it sees "K chunks, then a reset" and not a bare reset. */
#define RESET_MIN_DELAY_MS 20
#define FLUSH_POLL_MS 10
#define FLUSH_MAX_WAITS 200
#define PEER_POLL_MS 100
/* A stream writes its next event only while less than this waits in the
 * connection's output buffer, as a server blocked in write() would: a
 * reader that stops reading stops the stream (see stream_bytes). */
#define STREAM_HIGH_WATER (64 * 1024)
#define STREAM_BLOCKED_POLL_MS 1

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void on_peer_event(evutil_socket_t fd, short what, void *arg);

static struct mock_stats *stats_of(struct mock_call *c)
{
    return &c->worker->app->stats;
}

struct mock_call *mock_call_new(struct mock_worker *w, struct mock_conn *conn,
                                struct evhttp_request *req,
                                enum mock_call_kind kind)
{
    struct mock_call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->worker = w;
    c->conn = conn;
    c->req = req;
    c->kind = kind;
    c->timer = evtimer_new(w->base, on_timer, c);
    c->out = evbuffer_new();
    /* evhttp 2.1 stops reading once a request is in, so it would not see
     * the client leave before the reply starts; watch the socket too. */
    c->fd = bufferevent_getfd(
        evhttp_connection_get_bufferevent(evhttp_request_get_connection(req)));
    c->watch = event_new(w->base, c->fd, EV_READ, on_peer_event, c);
    if (!c->timer || !c->out || !c->watch || event_add(c->watch, NULL)) {
        if (c->timer)
            event_free(c->timer);
        if (c->watch)
            event_free(c->watch);
        if (c->out)
            evbuffer_free(c->out);
        free(c);
        return NULL;
    }
    conn->active = c;
    return c;
}

static void call_free(struct mock_call *c)
{
    event_free(c->timer);
    event_free(c->watch);
    evbuffer_free(c->out);
    mock_gen_free(&c->gen);
    free(c);
}

/* Once detached, a close of the connection no longer concerns the call. */
static void detach(struct mock_call *c)
{
    if (c->conn)
        c->conn->active = NULL;
    c->conn = NULL;
}

static void arm(struct mock_call *c, long ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void send_delayed_reply(struct mock_call *c)
{
    struct evhttp_request *req = c->req;
    detach(c);
    /* Counted before sending so a client that reads /mock/stats right
     * after its response sees it. */
    mock_stats_status(stats_of(c), c->status);
    mock_stats_end(stats_of(c));
    evhttp_send_reply(req, c->status, mock_reason(c->status), c->out);
    call_free(c);
}

/* Each event is its own write, so nothing is held back until the end. */
static void flush_event(struct mock_call *c)
{
    if (c->started)
        mock_stats_add(&stats_of(c)->stream_bytes,
                       (long)evbuffer_get_length(c->out));
    evhttp_send_reply_chunk(c->req, c->out);
}

static bool stream_blocked(struct mock_call *c)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);
    struct bufferevent *bev =
        evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    return bev &&
           evbuffer_get_length(bufferevent_get_output(bev)) > STREAM_HIGH_WATER;
}

static void start_stream(struct mock_call *c)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
    evhttp_remove_header(h, "Content-Type");
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    mock_stats_status(stats_of(c), 200);
    mock_stats_add(&stats_of(c)->streams_started, 1);
    evhttp_send_reply_start(c->req, 200, "OK");
    c->started = true;
    for (int k = 0; k < mock_gen_head_count(&c->gen); k++) {
        mock_gen_head(&c->gen, k, c->out);
        flush_event(c);
    }
}

static void finish_stream(struct mock_call *c)
{
    for (int k = 0; k < mock_gen_tail_count(&c->gen); k++) {
        mock_gen_tail(&c->gen, k, c->out);
        flush_event(c);
    }
    struct evhttp_request *req = c->req;
    detach(c);
    mock_stats_add(&stats_of(c)->streams_completed, 1);
    mock_stats_end(stats_of(c));
    evhttp_send_reply_end(req);
    call_free(c);
}

static bool reset_due(const struct mock_call *c)
{
    return mock_faults_has(&c->f, MOCK_RESET_AFTER_CHUNKS) &&
           c->sent >= c->f.reset_after_chunks;
}

static void begin_reset(struct mock_call *c)
{
    long delay = c->f.chunk_interval_ms;
    c->resetting = true;
    arm(c, delay > RESET_MIN_DELAY_MS ? delay : RESET_MIN_DELAY_MS);
}

/* Drops the TCP connection with an RST, as a crashing provider would. */
static void reset_connection(struct mock_call *c)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0 &&
        c->flush_waits++ < FLUSH_MAX_WAITS) {
        arm(c, FLUSH_POLL_MS); /* let the chunks already sent leave first */
        return;
    }
    evutil_socket_t fd = bufferevent_getfd(bev);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    /* Linux: connect(AF_UNSPEC) disconnects at once with an RST, before
     * evhttp's own shutdown() could send a polite FIN. */
    struct sockaddr unspec;
    memset(&unspec, 0, sizeof(unspec));
    unspec.sa_family = AF_UNSPEC;
    (void)connect(fd, &unspec, sizeof(unspec));

    detach(c);
    mock_stats_add(&stats_of(c)->streams_reset, 1);
    mock_stats_end(stats_of(c));
    call_free(c);
    evhttp_connection_free(evcon); /* also frees the request */
}

static void stream_step(struct mock_call *c)
{
    struct mock_gen *g = &c->gen;
    if (!c->started)
        start_stream(c);
    if (reset_due(c)) {
        begin_reset(c);
        return;
    }
    if (stream_blocked(c)) {
        arm(c, STREAM_BLOCKED_POLL_MS);
        return;
    }
    mock_gen_piece(g, c->sent++, c->out);
    flush_event(c);
    long garbage_after = g->nchunks / 2 > 0 ? g->nchunks / 2 : 1;
    if (c->f.malformed_sse && c->sent == garbage_after) {
        /* Not an SSE field line and not JSON: parsers must cope. */
        evbuffer_add_printf(c->out, "garbage!! this is not SSE {\"broken\n\n");
        flush_event(c);
    }
    if (reset_due(c)) {
        begin_reset(c);
        return;
    }
    if (c->sent >= g->nchunks) {
        finish_stream(c);
        return;
    }
    arm(c, c->f.chunk_interval_ms);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mock_call *c = arg;
    if (c->kind == MOCK_CALL_REPLY)
        send_delayed_reply(c);
    else if (c->resetting)
        reset_connection(c);
    else
        stream_step(c);
}

static bool peer_gone(evutil_socket_t fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* The client's socket became readable while we owe it a reply. If it
 * closed (FIN or RST), drop the connection; its close callback ends the
 * call. If it only pipelined its next request (evhttp reads that later),
 * readability tells us nothing more, so poll for a hang-up instead. */
static void on_peer_event(evutil_socket_t fd, short what, void *arg)
{
    struct mock_call *c = arg;
    if (peer_gone(c->fd)) {
        evhttp_connection_free(evhttp_request_get_connection(c->req));
        return;
    }
    if (what & EV_READ) {
        struct timeval tv = {.tv_sec = 0, .tv_usec = PEER_POLL_MS * 1000};
        event_del(c->watch);
        event_assign(c->watch, c->worker->base, -1, EV_PERSIST, on_peer_event,
                     c);
        event_add(c->watch, &tv);
    }
}

void mock_call_start(struct mock_call *c, long delay_ms)
{
    if (c->kind == MOCK_CALL_HANG)
        return;
    if (delay_ms > 0)
        arm(c, delay_ms);
    else
        on_timer(-1, EV_TIMEOUT, c);
}

void mock_call_client_gone(struct mock_call *c)
{
    /* After a client EOF evhttp unlinks an unanswered request from the
     * connection and leaves it to us; during evhttp_free it is still
     * linked and evhttp frees it. */
    if (evhttp_request_get_connection(c->req) == NULL)
        evhttp_request_free(c->req);
    mock_stats_add(&stats_of(c)->client_closed, 1);
    if (c->kind == MOCK_CALL_STREAM && c->started)
        mock_stats_add(&stats_of(c)->streams_client_closed, 1);
    detach(c);
    mock_stats_end(stats_of(c));
    call_free(c);
}
