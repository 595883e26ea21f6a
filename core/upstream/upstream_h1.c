/* Native HTTP/1.1 upstream transport for plain http:// upstreams.
 *
 * Per worker: a list of hosts, each with a LIFO pool of idle keep-alive
 * connections, a connection cap and a FIFO of calls waiting for a
 * connection. A call owns its connection from request to response end.
 * Sockets are read with recv() into the connection's buffer and written
 * with send() straight from the serialised request, so a reused
 * connection costs two syscalls per call plus the loop's epoll_wait, and
 * no epoll_ctl (the read event stays armed while the connection lives).
 *
 * Rules that keep callbacks safe:
 * - upstream_h1_start() never calls back: failures found there are
 *   delivered from the call's deferred event;
 * - a call cancelled inside one of its callbacks is torn down by the
 *   code that invoked the callback, once it returns;
 * - on_done runs after the connection went back to the pool (or was
 *   closed), so it may start a call that reuses it.
 * Response framing lives in http_response.c. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event_struct.h>

#include "http/http_response.h"
#include "upstream_h1_host.h"
#include "upstream_h1_request.h"
#include "upstream_transport.h"

/* Caps what a misbehaving upstream can make us buffer. */
#define MAX_RESPONSE_HEADER_BYTES (256 * 1024)
/* Read size; also what a paused call holds back. */
#define READ_BUFFER_BYTES (64 * 1024)
/* Idle keep-alive connections are closed after this. */
#define IDLE_CONNECTION_MS 60000
/* Reused connections that turn out closed before answering (the server
 * timed them out): the request is sent again on another one, but only
 * when the close came this soon after sending. Later, the server may have
 * been working on it (a crash mid-generation), and sending a POST twice
 * could bill it twice; the proxy's retry policy decides then. */
#define MAX_STALE_RETRIES 2
#define STALE_WINDOW_MS 1000

struct h1_conn {
    struct upstream_h1 *h;
    struct h1_host *host;
    evutil_socket_t fd;
    struct event rd, wr, idle_timer;
    bool connecting, reading, writing;
    bool reused; /* has carried a response before */
    struct h1_conn *idle_next;
    struct h1_call *call; /* NULL while idle */
    size_t wpos;          /* request bytes sent */
    struct http_response_parser resp;
    size_t in_start, in_end;
    char in[READ_BUFFER_BYTES];
};

struct h1_call {
    struct upstream_call base; /* first: the client casts between them */
    struct upstream_h1 *h;
    struct h1_host *host;
    struct h1_conn *conn;
    struct h1_call *prev, *next; /* every live call, for upstream_h1_free */
    struct h1_call *wait_next;
    struct upstream_callbacks cb;
    void *arg;
    char *request; /* head and body, kept to resend on a stale conn */
    size_t request_len;
    uint32_t connect_ms, first_byte_ms, idle_ms;
    struct event timer;    /* queue, connect, first-byte, then idle */
    struct event deferred; /* failure from start(), resume, teardown */
    int stale_retries;
    unsigned addr_tries; /* addresses that refused this call */
    int64_t sent_at_ms;
    bool waiting, sent_all, got_first_byte;
    bool paused, resume_pending, in_on_body;
    bool cancelled, ended;
    bool failing; /* on_done is on its way from the deferred event */
    bool is_head;
    int in_cb; /* a callback of this call is running */
    enum upstream_result fail_result;
    const char *body_pending; /* a span on_body refused: sent again */
    size_t body_pending_len;
    char detail[160];
};

struct upstream_h1 {
    struct event_base *base;
    struct h1_resolver resolver;
    struct h1_host *hosts;
    struct h1_call *calls;
    size_t active;
    uint64_t connects;
    bool closing;
};

static void acquire_connection(struct h1_call *c);
static void process_input(struct h1_conn *conn);
static void dispatch_waiters(struct h1_host *host);

/* ---- small helpers ---------------------------------------------------- */

static struct timeval ms_to_tv(uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static time_t now_seconds(struct upstream_h1 *h)
{
    struct timeval tv;
    event_base_gettimeofday_cached(h->base, &tv);
    return tv.tv_sec;
}

/* (Re)arms the call's single timer for the phase it is in. A paused call
 * has none: a slow client is not the upstream's fault. */
static void arm_timer(struct h1_call *c)
{
    uint32_t ms = 0;
    /* Paused only stops the clock once the response is flowing. */
    if (c->ended || c->failing ||
        (c->paused && c->conn && !c->conn->connecting))
        ms = 0;
    else if (c->waiting)
        ms = c->first_byte_ms;
    else if (c->conn && c->conn->connecting)
        ms = c->connect_ms;
    else if (c->got_first_byte)
        ms = c->idle_ms;
    else if (c->conn)
        ms = c->first_byte_ms;
    if (ms == 0) {
        evtimer_del(&c->timer);
        return;
    }
    struct timeval tv = ms_to_tv(ms);
    evtimer_add(&c->timer, &tv);
}

static void start_reading(struct h1_conn *conn)
{
    if (!conn->reading) {
        event_add(&conn->rd, NULL);
        conn->reading = true;
    }
}

static void stop_reading(struct h1_conn *conn)
{
    if (conn->reading) {
        event_del(&conn->rd);
        conn->reading = false;
    }
}

/* ---- connections ------------------------------------------------------ */

static void idle_unlink(struct h1_conn *conn)
{
    for (struct h1_conn **p = &conn->host->idle; *p; p = &(*p)->idle_next)
        if (*p == conn) {
            *p = conn->idle_next;
            break;
        }
    conn->idle_next = NULL;
}

/* Closes the socket and frees the connection. The call it carried, if
 * any, must already be detached. */
static void conn_close(struct h1_conn *conn)
{
    struct h1_host *host = conn->host;
    if (!conn->call)
        idle_unlink(conn);
    event_del(&conn->rd);
    event_del(&conn->wr);
    evtimer_del(&conn->idle_timer);
    close(conn->fd);
    http_response_free(&conn->resp);
    free(conn);
    host->open--;
    dispatch_waiters(host); /* a slot is free */
}

static void detach(struct h1_call *c)
{
    if (c->conn)
        c->conn->call = NULL;
    c->conn = NULL;
}

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);
static void on_idle_expired(evutil_socket_t fd, short what, void *arg);

static struct h1_conn *conn_open(struct h1_host *host, int *err)
{
    struct upstream_h1 *h = host->h;
    const struct sockaddr_storage *addr = &host->addrs[host->cur_addr];
    int fd =
        socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    upstream_socket_prepare(fd);
    bool connecting = false;
    if (connect(fd, (const struct sockaddr *)addr,
                host->addr_lens[host->cur_addr]) != 0) {
        if (errno != EINPROGRESS) {
            *err = errno;
            close(fd);
            return NULL;
        }
        connecting = true;
    }
    /* Not calloc: the read buffer needs no zeroing. */
    struct h1_conn *conn = malloc(sizeof(*conn));
    if (!conn) {
        *err = ENOMEM;
        close(fd);
        return NULL;
    }
    memset(conn, 0, offsetof(struct h1_conn, in));
    conn->h = h;
    conn->host = host;
    conn->fd = fd;
    conn->connecting = connecting;
    http_response_init(&conn->resp, MAX_RESPONSE_HEADER_BYTES);
    event_assign(&conn->rd, h->base, fd, EV_READ | EV_PERSIST, on_readable,
                 conn);
    event_assign(&conn->wr, h->base, fd, EV_WRITE | EV_PERSIST, on_writable,
                 conn);
    evtimer_assign(&conn->idle_timer, h->base, on_idle_expired, conn);
    if (connecting) {
        event_add(&conn->wr, NULL);
        conn->writing = true;
    } else {
        start_reading(conn);
    }
    host->open++;
    h->connects++;
    return conn;
}

static void conn_make_idle(struct h1_conn *conn)
{
    struct timeval tv = ms_to_tv(IDLE_CONNECTION_MS);
    conn->call = NULL;
    conn->reused = true;
    conn->in_start = conn->in_end = 0;
    start_reading(conn); /* notices the server closing it */
    evtimer_add(&conn->idle_timer, &tv);
    conn->idle_next = conn->host->idle;
    conn->host->idle = conn;
}

static void on_idle_expired(evutil_socket_t fd, short what, void *arg)
{
    conn_close(arg);
}

/* ---- ending calls ----------------------------------------------------- */

static void call_free(struct h1_call *c)
{
    struct upstream_h1 *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    evtimer_del(&c->timer);
    event_del(&c->deferred);
    free(c->request);
    free(c);
}

static void mark_ended(struct h1_call *c)
{
    if (c->ended)
        return;
    c->ended = true;
    c->h->active--;
    evtimer_del(&c->timer);
}

static void unqueue(struct h1_call *c)
{
    if (!c->waiting)
        return;
    struct h1_call **p = &c->host->waiting;
    struct h1_call *prev = NULL;
    while (*p && *p != c) {
        prev = *p;
        p = &(*p)->wait_next;
    }
    if (*p)
        *p = c->wait_next;
    if (c->host->waiting_tail == c)
        c->host->waiting_tail = prev;
    c->wait_next = NULL;
    c->waiting = false;
}

/* Drops the call's connection (mid-response, so never reused) and its
 * place in a queue. */
static void release_resources(struct h1_call *c)
{
    unqueue(c);
    if (c->conn) {
        struct h1_conn *conn = c->conn;
        detach(c);
        conn_close(conn);
    }
}

/* Ends the call with on_done and frees it. Only from an event, never
 * from inside start(). */
static void finish(struct h1_call *c, enum upstream_result result,
                   const char *detail)
{
    release_resources(c);
    mark_ended(c);
    if (c->cb.on_done) {
        c->in_cb++;
        c->cb.on_done(&c->base, c->arg, result, detail);
        c->in_cb--;
    }
    call_free(c);
}

/* The same, delivered from the call's deferred event. */
static void finish_later(struct h1_call *c, enum upstream_result result,
                         const char *detail)
{
    release_resources(c);
    c->failing = true;
    c->fail_result = result;
    if (detail != c->detail)
        snprintf(c->detail, sizeof c->detail, "%s", detail);
    evtimer_del(&c->timer);
    event_active(&c->deferred, EV_TIMEOUT, 0);
}

/* Cancelled inside a callback: now that it returned, tear down. */
static bool gone(struct h1_call *c)
{
    if (!c->cancelled)
        return false;
    release_resources(c);
    call_free(c);
    return true;
}

/* ---- sending ------------------------------------------------------------ */

/* A reused connection the server had already closed: nothing of the
 * response arrived, so the request can go again on another connection. */
static bool retry_if_stale(struct h1_call *c, struct h1_conn *conn)
{
    if (!conn->reused || http_response_started(&conn->resp) ||
        c->stale_retries >= MAX_STALE_RETRIES ||
        (c->sent_all && monotonic_ms() - c->sent_at_ms > STALE_WINDOW_MS))
        return false;
    c->stale_retries++;
    detach(c);
    conn_close(conn);
    c->sent_all = false;
    acquire_connection(c);
    return true;
}

static void send_failed(struct h1_call *c, struct h1_conn *conn, int err)
{
    if (retry_if_stale(c, conn))
        return;
    snprintf(c->detail, sizeof c->detail, "send to %s failed: %s",
             c->host->authority, strerror(err));
    finish_later(c, UPSTREAM_CONNECT_ERROR, c->detail);
}

static void send_request(struct h1_conn *conn)
{
    struct h1_call *c = conn->call;
    while (conn->wpos < c->request_len) {
        ssize_t n = send(conn->fd, c->request + conn->wpos,
                         c->request_len - conn->wpos, MSG_NOSIGNAL);
        if (n > 0) {
            conn->wpos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!conn->writing) {
                event_add(&conn->wr, NULL);
                conn->writing = true;
            }
            return;
        }
        send_failed(c, conn, n < 0 ? errno : EPIPE);
        return;
    }
    c->sent_all = true;
    c->sent_at_ms = monotonic_ms();
    if (conn->writing) {
        event_del(&conn->wr);
        conn->writing = false;
    }
}

static void attach(struct h1_call *c, struct h1_conn *conn)
{
    conn->call = c;
    c->conn = conn;
    conn->wpos = 0;
    conn->in_start = conn->in_end = 0;
    evtimer_del(&conn->idle_timer);
    http_response_begin(&conn->resp, c->is_head);
    arm_timer(c);
    if (!conn->connecting)
        send_request(conn);
}

static void enqueue(struct h1_call *c)
{
    struct h1_host *host = c->host;
    c->waiting = true;
    c->wait_next = NULL;
    if (host->waiting_tail)
        host->waiting_tail->wait_next = c;
    else
        host->waiting = c;
    host->waiting_tail = c;
    arm_timer(c);
}

static struct h1_call *dequeue(struct h1_host *host)
{
    struct h1_call *c = host->waiting;
    if (!c)
        return NULL;
    host->waiting = c->wait_next;
    if (!host->waiting)
        host->waiting_tail = NULL;
    c->wait_next = NULL;
    c->waiting = false;
    return c;
}

/* ---- name resolution ------------------------------------------------- */

static void fail_waiters(struct h1_host *host, const char *why)
{
    struct h1_call *c;
    while ((c = dequeue(host)) != NULL) {
        snprintf(c->detail, sizeof c->detail, "%s", why);
        finish_later(c, UPSTREAM_CONNECT_ERROR, c->detail);
    }
}

/* Name resolution ended: connect the waiters, or fail them. */
static void on_host_resolved(struct h1_host *host, const char *error)
{
    if (error)
        fail_waiters(host, error);
    else
        dispatch_waiters(host);
}

static bool address_fresh(struct h1_host *host)
{
    return h1_host_address_fresh(host, now_seconds(host->h));
}

static void resolve(struct h1_host *host)
{
    h1_host_resolve(host, &host->h->resolver);
}

/* ---- getting a connection ------------------------------------------- */

static void open_for(struct h1_call *c)
{
    int err = 0;
    struct h1_conn *conn;
    while (!(conn = conn_open(c->host, &err)) &&
           h1_host_next_address(c->host, &c->addr_tries))
        ;
    if (!conn) {
        snprintf(c->detail, sizeof c->detail, "connect to %s failed: %s",
                 c->host->authority, strerror(err));
        finish_later(c, UPSTREAM_CONNECT_ERROR, c->detail);
        return;
    }
    attach(c, conn);
}

static bool may_open(const struct h1_host *host)
{
    return host->cap == 0 || host->open < host->cap;
}

static void acquire_connection(struct h1_call *c)
{
    struct h1_host *host = c->host;
    if (host->idle) {
        struct h1_conn *conn = host->idle;
        host->idle = conn->idle_next;
        conn->idle_next = NULL;
        attach(c, conn);
        return;
    }
    /* Older waiters first; they are served as connections free up. */
    if (host->waiting || !may_open(host) || !address_fresh(host)) {
        enqueue(c);
        if (!address_fresh(host))
            resolve(host);
        return;
    }
    open_for(c);
}

static void dispatch_waiters(struct h1_host *host)
{
    if (host->h->closing)
        return;
    while (host->waiting) {
        if (host->idle) {
            acquire_connection(dequeue(host));
            continue;
        }
        if (!address_fresh(host)) {
            resolve(host);
            return;
        }
        if (!may_open(host))
            return;
        open_for(dequeue(host));
    }
}

/* ---- receiving --------------------------------------------------------- */

static void deliver_headers(struct h1_call *c, struct http_response_parser *r)
{
    if (!c->cb.on_headers)
        return;
    c->in_cb++;
    c->cb.on_headers(&c->base, c->arg, r->status, r->lines, r->n_lines);
    c->in_cb--;
}

/* False when delivery must stop: paused, refused or cancelled. */
static bool deliver_body(struct h1_call *c, const char *data, size_t len)
{
    if (!c->cb.on_body || len == 0)
        return true;
    c->in_cb++;
    c->in_on_body = true;
    bool consumed = c->cb.on_body(&c->base, c->arg, data, len);
    c->in_on_body = false;
    c->in_cb--;
    if (c->cancelled)
        return false;
    if (consumed && !c->paused)
        c->resume_pending = false; /* a resume that had nothing to do */
    if (!consumed) {
        /* Nothing of this span counts as consumed: keep it for resume. */
        c->body_pending = data;
        c->body_pending_len = len;
        c->paused = true;
        if (c->resume_pending)
            event_active(&c->deferred, EV_TIMEOUT, 0);
    }
    if (c->paused) {
        stop_reading(c->conn);
        arm_timer(c);
        return false;
    }
    return true;
}

/* The response is complete: the connection goes back to the pool (or is
 * closed), then on_done. */
static void complete_ok(struct h1_call *c)
{
    struct h1_conn *conn = c->conn;
    bool reusable =
        conn->resp.keep_alive && c->sent_all && conn->in_start == conn->in_end;
    detach(c);
    if (reusable) {
        conn_make_idle(conn);
        dispatch_waiters(conn->host);
    } else {
        conn_close(conn);
    }
    finish(c, UPSTREAM_DONE, "ok");
}

static void complete_broken(struct h1_call *c, const char *why)
{
    snprintf(c->detail, sizeof c->detail, "malformed response from %s: %s",
             c->host->authority, why ? why : "unknown");
    finish(c, c->got_first_byte ? UPSTREAM_BROKEN : UPSTREAM_CONNECT_ERROR,
           c->detail);
}

/* The body bytes of one read, handed on together: the data of every
 * chunk is moved up against the one before it, over the chunk framing
 * already parsed, so a read of many small chunks (an SSE stream sends an
 * event per chunk) costs one on_body, not one per chunk. */
struct gathered {
    char *start;
    size_t len;
};

static void gather(struct gathered *g, char *data, size_t len)
{
    if (!g->len)
        g->start = data;
    else if (data != g->start + g->len)
        memmove(g->start + g->len, data, len); /* over parsed framing */
    g->len += len;
}

/* Delivers what was gathered; false when delivery must stop. */
static bool deliver_gathered(struct h1_call *c, struct gathered *g)
{
    size_t len = g->len;
    g->len = 0;
    return deliver_body(c, g->start, len);
}

/* Feeds what the buffer holds to the parser and the call's callbacks,
 * until the buffer is empty, the call pauses, or the response ends. */
static void process_input(struct h1_conn *conn)
{
    struct h1_call *c = conn->call;
    if (c->body_pending_len) {
        const char *d = c->body_pending;
        size_t n = c->body_pending_len;
        c->body_pending = NULL;
        c->body_pending_len = 0;
        if (!deliver_body(c, d, n)) {
            gone(c);
            return;
        }
    }
    /* Bytes arrived: the first-byte clock stops, the idle clock starts
     * again. The timer is set only when this read leaves the call waiting
     * for more (most answers end within their last read, and re-arming it
     * just to delete it cost two timer-heap operations). */
    bool rearm =
        conn->in_end > conn->in_start && (!c->got_first_byte || c->idle_ms);
    if (conn->in_end > conn->in_start)
        c->got_first_byte = true;
    struct gathered body = {NULL, 0};
    for (;;) {
        const char *data = NULL;
        size_t data_len = 0, used = 0;
        enum http_response_status st = http_response_feed(
            &conn->resp, conn->in + conn->in_start,
            conn->in_end - conn->in_start, &used, &data, &data_len);
        conn->in_start += used;
        if (st == HTTP_RESPONSE_DATA) {
            /* data lies in conn->in, before in_start */
            gather(&body, conn->in + (data - conn->in), data_len);
            continue;
        }
        if (body.len && !deliver_gathered(c, &body)) {
            gone(c);
            return;
        }
        switch (st) {
        case HTTP_RESPONSE_MORE:
            conn->in_start = conn->in_end = 0;
            start_reading(conn);
            if (rearm)
                arm_timer(c);
            return;
        case HTTP_RESPONSE_HEADERS:
            deliver_headers(c, &conn->resp);
            if (gone(c))
                return;
            if (c->paused) {
                stop_reading(conn);
                arm_timer(c);
                return;
            }
            continue;
        case HTTP_RESPONSE_DONE:
            complete_ok(c);
            return;
        default:
            complete_broken(c, conn->resp.error);
            return;
        }
    }
}

/* The peer closed (err 0) or reset (err) the connection. */
static void input_ended(struct h1_conn *conn, int err)
{
    struct h1_call *c = conn->call;
    if (retry_if_stale(c, conn))
        return;
    if (!err && http_response_eof(&conn->resp) == HTTP_RESPONSE_DONE) {
        conn->resp.keep_alive = false;
        complete_ok(c);
        return;
    }
    if (err)
        snprintf(c->detail, sizeof c->detail, "connection to %s: %s",
                 c->host->authority, strerror(err));
    else
        snprintf(c->detail, sizeof c->detail, "%s closed the connection: %s",
                 c->host->authority,
                 conn->resp.error ? conn->resp.error : "response cut short");
    finish(c, c->got_first_byte ? UPSTREAM_BROKEN : UPSTREAM_CONNECT_ERROR,
           c->detail);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct h1_conn *conn = arg;
    if (!conn->call) {
        /* Idle: the server closed it, or sent what nobody asked for. */
        conn_close(conn);
        return;
    }
    if (conn->call->paused) {
        stop_reading(conn);
        return;
    }
    ssize_t n =
        recv(fd, conn->in + conn->in_end, sizeof conn->in - conn->in_end, 0);
    if (n > 0) {
        conn->in_end += (size_t)n;
        process_input(conn);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    input_ended(conn, n < 0 ? errno : 0);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct h1_conn *conn = arg;
    struct h1_call *c = conn->call;
    if (!conn->connecting) {
        send_request(conn);
        return;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        if (h1_host_next_address(c->host, &c->addr_tries)) {
            detach(c);
            conn_close(conn);
            acquire_connection(c); /* within the cap, like any call */
            return;
        }
        snprintf(c->detail, sizeof c->detail, "connect to %s failed: %s",
                 c->host->authority, strerror(err));
        finish(c, UPSTREAM_CONNECT_ERROR, c->detail);
        return;
    }
    conn->connecting = false;
    event_del(&conn->wr);
    conn->writing = false;
    start_reading(conn);
    arm_timer(c); /* connect timer → first-byte timer */
    send_request(conn);
}

/* ---- timers and deferred work ------------------------------------------ */

static void on_call_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct h1_call *c = arg;
    if (c->waiting)
        snprintf(c->detail, sizeof c->detail,
                 "no connection to %s free within %u ms", c->host->authority,
                 (unsigned)c->first_byte_ms);
    else if (c->conn && c->conn->connecting)
        snprintf(c->detail, sizeof c->detail,
                 "connect timeout: %s did not accept within %u ms",
                 c->host->authority, (unsigned)c->connect_ms);
    else if (c->got_first_byte)
        snprintf(c->detail, sizeof c->detail, "idle timeout: no data for %u ms",
                 (unsigned)c->idle_ms);
    else
        snprintf(c->detail, sizeof c->detail,
                 "first byte timeout: no response within %u ms",
                 (unsigned)c->first_byte_ms);
    finish(c, UPSTREAM_TIMEOUT, c->detail);
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
    struct h1_call *c = arg;
    if (c->cancelled) {
        release_resources(c);
        call_free(c);
        return;
    }
    if (c->failing) {
        finish(c, c->fail_result, c->detail);
        return;
    }
    if (!c->resume_pending || !c->paused)
        return;
    c->resume_pending = false;
    c->paused = false;
    arm_timer(c);
    if (c->conn && !c->conn->connecting)
        process_input(c->conn); /* held-back bytes, then reading again */
}

/* ---- hosts -------------------------------------------------------------- */

/* One pool per authority and cap: two upstreams at the same address
 * with different max_connections keep their own limits. */
static struct h1_host *host_for(struct upstream_h1 *h, const char *auth,
                                size_t len, uint32_t cap)
{
    for (struct h1_host *host = h->hosts; host; host = host->next)
        if (host->cap == cap && strlen(host->authority) == len &&
            memcmp(host->authority, auth, len) == 0)
            return host;
    struct h1_host *host = h1_host_new(auth, len, cap);
    if (!host)
        return NULL;
    host->h = h;
    host->next = h->hosts;
    h->hosts = host;
    return host;
}

/* ---- public API ---------------------------------------------------------- */

static void h1_call_pause(struct upstream_call *base);
static void h1_call_resume(struct upstream_call *base);
static void h1_call_cancel(struct upstream_call *base);

static const struct upstream_call_ops h1_ops = {
    .pause = h1_call_pause,
    .resume = h1_call_resume,
    .cancel = h1_call_cancel,
};

struct upstream_h1 *upstream_h1_new(struct event_base *base)
{
    struct upstream_h1 *h = calloc(1, sizeof(*h));
    if (h) {
        h->base = base;
        h->resolver.base = base;
        h->resolver.done = on_host_resolved;
    }
    return h;
}

void upstream_h1_free(struct upstream_h1 *h)
{
    if (!h)
        return;
    h->closing = true;
    while (h->calls) {
        struct h1_call *c = h->calls;
        c->cancelled = true;
        mark_ended(c);
        release_resources(c);
        call_free(c);
    }
    while (h->hosts) {
        struct h1_host *host = h->hosts;
        h->hosts = host->next;
        while (host->idle)
            conn_close(host->idle);
        h1_host_free(host);
    }
    h1_resolver_free(&h->resolver);
    free(h);
}

struct upstream_call *upstream_h1_start(struct upstream_h1 *h,
                                        const struct upstream_request *req,
                                        const struct upstream_callbacks *cb,
                                        void *arg)
{
    struct h1_url u;
    if (!h || !req || !req->url || !cb || !h1_split_url(req->url, &u))
        return NULL;
    struct h1_host *host =
        host_for(h, u.authority, u.authority_len, req->max_host_connections);
    struct h1_call *c = calloc(1, sizeof(*c));
    if (!host || !c ||
        !(c->request =
              h1_build_request(req, &u, &c->request_len, &c->is_head))) {
        free(c);
        return NULL;
    }
    c->base.ops = &h1_ops;
    c->h = h;
    c->host = host;
    c->cb = *cb;
    c->arg = arg;
    c->connect_ms = req->connect_timeout_ms;
    c->first_byte_ms = req->first_byte_timeout_ms;
    c->idle_ms = req->idle_timeout_ms;
    evtimer_assign(&c->timer, h->base, on_call_timeout, c);
    event_assign(&c->deferred, h->base, -1, 0, on_deferred, c);
    c->next = h->calls;
    if (c->next)
        c->next->prev = c;
    h->calls = c;
    h->active++;
    acquire_connection(c);
    return &c->base;
}

static void h1_call_pause(struct upstream_call *base)
{
    struct h1_call *c = (struct h1_call *)base;
    if (c->ended || c->failing)
        return;
    c->resume_pending = false;
    if (c->paused)
        return;
    c->paused = true;
    if (c->conn)
        stop_reading(c->conn);
    arm_timer(c);
}

static void h1_call_resume(struct upstream_call *base)
{
    struct h1_call *c = (struct h1_call *)base;
    if (c->ended || c->failing || !(c->paused || c->in_on_body))
        return;
    /* From a fresh event: resuming delivers held-back bytes, which must
     * not happen inside the callback that asked. */
    c->resume_pending = true;
    if (c->paused)
        event_active(&c->deferred, EV_TIMEOUT, 0);
}

static void h1_call_cancel(struct upstream_call *base)
{
    struct h1_call *c = (struct h1_call *)base;
    if (c->ended)
        return;
    c->cancelled = true;
    mark_ended(c);
    if (c->in_cb)
        return; /* torn down when the callback returns */
    release_resources(c);
    call_free(c);
}

size_t upstream_h1_active(const struct upstream_h1 *h)
{
    return h ? h->active : 0;
}

uint64_t upstream_h1_connects(const struct upstream_h1 *h)
{
    return h ? h->connects : 0;
}
