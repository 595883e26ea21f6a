#include "http_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>

#include "openai_error.h"

/* Lifetime rule: a connection is only freed from the top of an event
 * callback (socket event, timer, deferred event) or from the server's
 * stop/free calls, never from inside an API call the gateway makes. So a
 * handler can call http_reply twice, or touch the exchange right after
 * replying, without a use-after-free. */

#ifndef NDEBUG
#define MISUSE(...) fprintf(stderr, "sluice http: " __VA_ARGS__)
#else
#define MISUSE(...) ((void)0)
#endif

/* Pipelined bytes buffered while a response is in progress; past this we
 * stop reading until the current exchange is done. */
#define READ_HIGH_WATER (64 * 1024)
#define READ_CHUNK (16 * 1024)
/* After an error response we keep reading (and discarding) for a short
 * while, so the client sees our answer instead of a reset; up to this. */
#define LINGER_MAX_BYTES (1024 * 1024)
/* A response's output is staged in one flat buffer of this size while
 * nothing is queued in the bufferevent, and leaves with one send(): the
 * evbuffer's chains, callbacks and iovecs cost a tenth of relaying a
 * streamed answer. Whatever does not fit goes through the bufferevent. */
#define STAGE_BYTES (8 * 1024)

enum body_mode { BODY_LENGTH, BODY_CHUNKED, BODY_UNTIL_CLOSE };

/* ---- connection budget (process-wide) ---- */

static atomic_uint budget_max; /* 0: unlimited */
static atomic_uint budget_used;

void http_conn_budget_set(uint32_t max_connections)
{
    atomic_store(&budget_max, max_connections);
}

uint32_t http_conn_budget_in_use(void)
{
    return atomic_load(&budget_used);
}

bool http_conn_budget_take(void)
{
    unsigned max = atomic_load_explicit(&budget_max, memory_order_relaxed);
    unsigned prev = atomic_fetch_add(&budget_used, 1);
    if (max && prev >= max) {
        atomic_fetch_sub(&budget_used, 1);
        return false;
    }
    return true;
}

static void budget_release(void)
{
    atomic_fetch_sub(&budget_used, 1);
}

/* ---- small helpers ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* RFC 9110 IMF-fixdate, cached per second; locale-independent. */
static const char *date_now(struct http_server *s)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    struct timeval tv;
    event_base_gettimeofday_cached(s->base, &tv);
    if (tv.tv_sec != s->date_sec || !s->date[0]) {
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        snprintf(s->date, sizeof(s->date),
                 "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        s->date_sec = tv.tv_sec;
    }
    return s->date;
}

static size_t put_str(char *dst, const char *s, size_t n)
{
    memcpy(dst, s, n);
    return n;
}

static size_t put_cstr(char *dst, const char *s)
{
    return put_str(dst, s, strlen(s));
}

static size_t put_uint(char *dst, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
}

/* The bufferevent's output, with the staged bytes moved into it first so
 * that whoever adds to it or measures it sees all output in order. */
static struct evbuffer *conn_output(struct http_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (c->staged) {
        evbuffer_add(out, c->stage, c->staged);
        c->staged = 0;
    }
    return out;
}

/* Bytes written by the server and not yet sent. */
static size_t conn_queued(struct http_conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev)) + c->staged;
}

/* Room for n more bytes in the stage, or NULL when they must go through
 * the bufferevent: something is queued there already (order), or they do
 * not fit. The caller fills them and adds n to c->staged. */
static char *stage_reserve(struct http_conn *c, size_t n)
{
    if (c->staged + n > STAGE_BYTES || c->write_armed || c->write_failed ||
        evbuffer_get_length(bufferevent_get_output(c->bev)))
        return NULL;
    if (!c->stage) {
        c->stage =
            c->srv->spare_stage ? c->srv->spare_stage : malloc(STAGE_BYTES);
        c->srv->spare_stage = NULL;
        if (!c->stage)
            return NULL;
    }
    return c->stage + c->staged;
}

static void conn_append(struct http_conn *c, const char *data, size_t n)
{
    char *dst = stage_reserve(c, n);
    if (!dst) {
        evbuffer_add(conn_output(c), data, n);
        return;
    }
    memcpy(dst, data, n);
    c->staged += n;
}

/* ---- timers ---- */

/* Arms the timer for the connection's current phase. A phase's deadline is
 * set once when the phase starts and never pushed back by later reads,
 * so a slow-drip client cannot stretch it. */
static void conn_arm_phase(struct http_conn *c)
{
    enum timer_phase want = TP_NONE;
    const struct timeval *tv = NULL;
    switch (c->state) {
    case CONN_IDLE:
        want = TP_IDLE;
        tv = c->tv_idle;
        break;
    case CONN_READING:
        if (http_parse_in_body(&c->req)) {
            want = TP_BODY;
            tv = c->tv_body;
        } else {
            want = TP_HEADER;
            tv = c->tv_header;
        }
        break;
    case CONN_LINGER:
        want = TP_LINGER;
        tv = c->srv->tv_linger;
        break;
    default:
        break;
    }
    if (want == c->timer_phase)
        return;
    c->timer_phase = want;
    if (tv)
        event_add(c->timer, tv);
    else
        event_del(c->timer);
}

/* ---- connection lifetime ---- */

static void conn_free(struct http_conn *c)
{
    struct http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->open--;

    bool in_flight = c->ex.dispatched && !c->ex.finished;
    if (in_flight)
        c->ex.dead = true; /* API calls from the close callback are no-ops */
    event_free(c->rd);     /* before the fd is closed by bufferevent_free */
    /* The socket closes (with RST when aborting) before the close callback
     * is told: once anyone hears the client was cut, no more of what the
     * kernel still held for it can reach it. */
    bufferevent_free(c->bev);
    if (in_flight) {
        s->active--;
        if (c->ex.close_cb)
            c->ex.close_cb(&c->ex, c->ex.close_arg);
    }
    event_free(c->timer);
    if (c->deferred)
        event_free(c->deferred);
    if (c->flush_soon)
        event_free(c->flush_soon);
    http_parse_free(&c->req);
    if (c->counted)
        budget_release();
    free(c->stage);
    free(c);
}

/* Makes the coming close an abortive one: SO_LINGER with a zero timeout
 * discards unsent output and sends RST. */
static void conn_abort_on_close(struct http_conn *c)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

static void on_deferred(evutil_socket_t fd, short what, void *arg);

/* Runs the output-drained logic from the loop, for when no write will
 * happen to trigger it. */
static void conn_defer(struct http_conn *c)
{
    if (!c->deferred)
        c->deferred = event_new(c->srv->base, -1, 0, on_deferred, c);
    if (c->deferred)
        event_active(c->deferred, EV_TIMEOUT, 0);
}

static void conn_resume_reading(struct http_conn *c)
{
    if (c->read_paused && !c->peer_eof) {
        c->read_paused = false;
        event_add(c->rd, NULL);
    }
}

static void conn_start_linger(struct http_conn *c)
{
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    c->state = CONN_LINGER;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    c->lingered = evbuffer_get_length(in);
    evbuffer_drain(in, c->lingered);
    conn_resume_reading(c);
    conn_arm_phase(c);
}

static void conn_process_input(struct http_conn *c);

static void conn_go_idle(struct http_conn *c)
{
    /* An idle connection holds no output memory; the server keeps one
     * stage for the next response instead of a malloc per response. */
    if (!c->srv->spare_stage)
        c->srv->spare_stage = c->stage;
    else
        free(c->stage);
    c->stage = NULL;
    http_parse_reset(&c->req);
    c->ex = (struct http_exchange){.conn = c};
    c->state = CONN_IDLE;
    c->keep_alive = c->chunked_out = false;
    conn_resume_reading(c);
    conn_process_input(c); /* a pipelined request may be waiting */
}

/* The last response is fully written. May free c. */
static void conn_output_flushed(struct http_conn *c)
{
    if (c->state == CONN_FLUSHING) {
        conn_go_idle(c);
    } else if (c->state == CONN_CLOSING) {
        bool unread = evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;
        if (!c->peer_eof && (c->linger_wanted || unread))
            conn_start_linger(c);
        else
            conn_free(c);
    }
}

static void fire_drain(struct http_conn *c)
{
    http_drain_cb cb = c->ex.drain_cb;
    c->ex.drain_cb = NULL;
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    cb(&c->ex, c->ex.drain_arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;
    (void)bev;
    size_t out = conn_queued(c);
    if (out == 0 && c->write_armed) {
        bufferevent_disable(bev, EV_WRITE);
        c->write_armed = false;
    }
    if (c->state == CONN_HANDLER) {
        if (c->ex.drain_cb && out <= c->ex.drain_low)
            fire_drain(c);
        return;
    }
    if (out == 0)
        conn_output_flushed(c);
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_conn *c = arg;
    if (c->write_failed) {
        conn_free(c);
        return;
    }
    on_write(c->bev, c);
}

/* Peer gone: free from the loop, not inside the caller's API call; until
 * then further output just queues and is freed with c. */
static void conn_write_failed(struct http_conn *c)
{
    c->write_failed = true;
    conn_defer(c);
}

/* Sends the stage with one send(); a part the socket did not take moves
 * to the bufferevent, whose write event then sends it. */
static void flush_stage(struct http_conn *c)
{
    ssize_t n =
        send(bufferevent_getfd(c->bev), c->stage, c->staged, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_write_failed(c);
        return;
    }
    size_t sent = n > 0 ? (size_t)n : 0;
    if (sent < c->staged) {
        evbuffer_add(bufferevent_get_output(c->bev), c->stage + sent,
                     c->staged - sent);
        c->write_armed = true;
        bufferevent_enable(c->bev, EV_WRITE);
    }
    c->staged = 0;
}

/* Writes queued output straight away: the socket is almost always
 * writable, and going through the loop would cost two epoll_ctl calls and
 * an extra iteration per response. Only a leftover arms the bufferevent's
 * write event (and with it the send timeout and the drain callback). */
static void conn_flush(struct http_conn *c)
{
    if (c->write_armed || c->write_failed)
        return;
    if (c->staged && !evbuffer_get_length(bufferevent_get_output(c->bev))) {
        flush_stage(c);
        return;
    }
    struct evbuffer *out = conn_output(c);
    if (!evbuffer_get_length(out))
        return;
    /* A bufferevent keeps the start of its output frozen so only it can
     * drain it; thaw it for this write just as its own write callback does. */
    evbuffer_unfreeze(out, 1);
    errno = 0;
    int n = evbuffer_write(out, bufferevent_getfd(c->bev));
    int err = errno;
    evbuffer_freeze(out, 1);
    if (n < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
        conn_write_failed(c);
        return;
    }
    if (evbuffer_get_length(out)) {
        c->write_armed = true;
        bufferevent_enable(c->bev, EV_WRITE);
    }
}

static void on_flush_soon(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_conn *c = arg;
    c->flush_queued = false;
    conn_flush(c);
    /* The writer may be waiting for a drain that this very write brought
     * about; with nothing left over, no write event will report it. */
    if (c->state == CONN_HANDLER && c->ex.drain_cb && !c->write_armed &&
        !c->write_failed && conn_queued(c) <= c->ex.drain_low)
        fire_drain(c);
}

/* Stream output is written once the current callback returns, still in
 * this loop pass: the head and every event of one upstream read then go
 * out in one writev (one segment for the client to wake up for) instead
 * of one syscall each. */
static void conn_flush_soon(struct http_conn *c)
{
    if (c->flush_queued)
        return;
    if (!c->flush_soon)
        c->flush_soon = event_new(c->srv->base, -1, 0, on_flush_soon, c);
    if (c->flush_soon) {
        event_active(c->flush_soon, EV_TIMEOUT, 0);
        c->flush_queued = true;
    } else {
        conn_flush(c);
    }
}

/* ---- writing responses ---- */

static void write_head(struct http_conn *c, int status, const char *headers,
                       enum body_mode mode, size_t content_length)
{
    struct http_server *s = c->srv;
    c->keep_alive = c->keep_alive && !c->close_after && !s->draining;
    if (status < 100 || status > 999)
        status = 500;

    char buf[1024];
    size_t n = put_cstr(buf, "HTTP/1.1 ");
    n += put_uint(buf + n, (uint64_t)status);
    buf[n++] = ' ';
    n += put_cstr(buf + n, http_status_text(status));
    n += put_cstr(buf + n, "\r\nDate: ");
    n += put_cstr(buf + n, date_now(s));
    if (mode == BODY_LENGTH) {
        n += put_cstr(buf + n, "\r\nContent-Length: ");
        n += put_uint(buf + n, content_length);
    } else if (mode == BODY_CHUNKED) {
        n += put_cstr(buf + n, "\r\nTransfer-Encoding: chunked");
    }
    n += put_cstr(buf + n, c->keep_alive ? "\r\nConnection: keep-alive\r\n"
                                         : "\r\nConnection: close\r\n");

    size_t hl = headers ? strlen(headers) : 0;
    bool needs_crlf = hl && (hl < 2 || memcmp(headers + hl - 2, "\r\n", 2));
    if (n + hl + 4 <= sizeof(buf)) {
        /* The common case: one copy into the output. */
        n += put_str(buf + n, headers ? headers : "", hl);
        if (needs_crlf)
            n += put_str(buf + n, "\r\n", 2);
        n += put_str(buf + n, "\r\n", 2);
        conn_append(c, buf, n);
        return;
    }
    struct evbuffer *out = conn_output(c);
    evbuffer_add(out, buf, n);
    evbuffer_add(out, headers, hl);
    if (needs_crlf)
        evbuffer_add(out, "\r\n", 2);
    evbuffer_add(out, "\r\n", 2);
}

/* An error the server answers by itself (no exchange): JSON body, then
 * close. Used for 400, 408, 413, 431 and 503. */
static void conn_send_error(struct http_conn *c, int status, const char *reason)
{
    size_t len = 0;
    char *body = openai_error_body(status, NULL, reason, NULL, NULL, &len);
    c->keep_alive = false;
    write_head(c, status, "Content-Type: application/json\r\n", BODY_LENGTH,
               body ? len : 0);
    if (body)
        conn_append(c, body, len);
    free(body);
    c->state = CONN_CLOSING;
    c->linger_wanted = true;
    conn_arm_phase(c);
    conn_flush(c);
    if (evbuffer_get_length(conn_output(c)) == 0)
        conn_defer(c);
}

static bool exchange_usable(const struct http_exchange *ex, const char *what)
{
    if (!ex || !ex->dispatched || ex->finished || ex->dead) {
        MISUSE("%s on a finished exchange ignored\n", what);
        return false;
    }
    return true;
}

static void exchange_finish(struct http_conn *c)
{
    struct http_server *s = c->srv;
    c->ex.finished = true;
    c->ex.drain_cb = NULL;
    s->active--;
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    bool keep = c->keep_alive && !c->close_after && !s->draining;
    c->state = keep ? CONN_FLUSHING : CONN_CLOSING;
    conn_flush(c);
    if (evbuffer_get_length(conn_output(c)) == 0)
        conn_defer(c); /* written already: finish from the loop */
}

void http_reply(struct http_exchange *ex, int status, const char *headers,
                const char *body, size_t body_len)
{
    if (!exchange_usable(ex, "http_reply"))
        return;
    if (ex->headers_sent) {
        MISUSE("http_reply after http_stream_start ignored\n");
        return;
    }
    struct http_conn *c = ex->conn;
    write_head(c, status, headers, BODY_LENGTH, body_len);
    if (body_len && !c->req.is_head)
        conn_append(c, body, body_len);
    ex->headers_sent = true;
    exchange_finish(c);
}

void http_stream_start(struct http_exchange *ex, int status,
                       const char *headers)
{
    if (!exchange_usable(ex, "http_stream_start"))
        return;
    if (ex->headers_sent) {
        MISUSE("http_stream_start twice ignored\n");
        return;
    }
    struct http_conn *c = ex->conn;
    /* HTTP/1.0 has no chunked encoding: the body ends at close. */
    c->chunked_out = c->req.http_minor >= 1;
    if (!c->chunked_out)
        c->keep_alive = false;
    write_head(c, status, headers,
               c->chunked_out ? BODY_CHUNKED : BODY_UNTIL_CLOSE, 0);
    ex->headers_sent = ex->streaming = true;
    conn_flush_soon(c); /* with the first events, if they came along */
}

/* "<len in hex>\r\n" into buf (24 bytes); its length. Not snprintf: that
 * was a fifth of the cost of relaying an event. */
static size_t chunk_size_line(char *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char digits[16];
    size_t n = 0;
    do {
        digits[n++] = hex[len & 15];
        len >>= 4;
    } while (len);
    for (size_t i = 0; i < n; i++)
        buf[i] = digits[n - 1 - i];
    buf[n] = '\r';
    buf[n + 1] = '\n';
    return n + 2;
}

/* One chunk, framed, into the stage; false when it does not fit there. */
static bool stage_chunk(struct http_conn *c, const char *data, size_t len)
{
    char size[24];
    size_t n = chunk_size_line(size, len);
    char *p = stage_reserve(c, n + len + 2);
    if (!p)
        return false;
    memcpy(p, size, n);
    memcpy(p + n, data, len);
    memcpy(p + n + len, "\r\n", 2);
    c->staged += n + len + 2;
    return true;
}

/* One chunk, framed, into the bufferevent with one commit: each
 * evbuffer_add runs the buffer's callbacks (evbuffer_add_iovec adds piece
 * by piece). */
static void queue_chunk(struct http_conn *c, const char *data, size_t len)
{
    struct evbuffer *out = conn_output(c);
    char size[24];
    size_t n = chunk_size_line(size, len);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, (ev_ssize_t)(n + len + 2), &v, 1) == 1) {
        char *p = v.iov_base;
        memcpy(p, size, n);
        memcpy(p + n, data, len);
        memcpy(p + n + len, "\r\n", 2);
        v.iov_len = n + len + 2;
        evbuffer_commit_space(out, &v, 1);
    } else {
        evbuffer_add(out, size, n);
        evbuffer_add(out, data, len);
        evbuffer_add(out, "\r\n", 2);
    }
}

size_t http_stream_write(struct http_exchange *ex, const char *data, size_t len)
{
    if (!exchange_usable(ex, "http_stream_write"))
        return 0;
    struct http_conn *c = ex->conn;
    if (!ex->streaming) {
        MISUSE("http_stream_write before http_stream_start ignored\n");
        return conn_queued(c);
    }
    /* A zero-length chunk would end the stream; skip it. */
    if (len && !c->req.is_head) {
        if (!c->chunked_out)
            conn_append(c, data, len);
        else if (!stage_chunk(c, data, len))
            queue_chunk(c, data, len);
        conn_flush_soon(c);
    }
    return conn_queued(c);
}

void http_stream_on_drain(struct http_exchange *ex, size_t low_water,
                          http_drain_cb cb, void *arg)
{
    if (!exchange_usable(ex, "http_stream_on_drain"))
        return;
    struct http_conn *c = ex->conn;
    ex->drain_cb = cb;
    ex->drain_arg = arg;
    ex->drain_low = low_water;
    /* The write callback runs whenever output is at or below the low mark
     * after a write; that is our drain signal. */
    bufferevent_setwatermark(c->bev, EV_WRITE, cb ? low_water : 0, 0);
    if (cb && evbuffer_get_length(conn_output(c)) <= low_water)
        conn_defer(c); /* already drained: no write will tell us */
}

void http_stream_end(struct http_exchange *ex)
{
    if (!exchange_usable(ex, "http_stream_end"))
        return;
    struct http_conn *c = ex->conn;
    if (!ex->streaming) {
        MISUSE("http_stream_end before http_stream_start ignored\n");
        return;
    }
    if (c->chunked_out && !c->req.is_head)
        conn_append(c, "0\r\n\r\n", 5);
    exchange_finish(c);
}

bool http_headers_sent(const struct http_exchange *ex)
{
    return ex && ex->headers_sent;
}

void http_set_close_cb(struct http_exchange *ex, http_close_cb cb, void *arg)
{
    if (!exchange_usable(ex, "http_set_close_cb"))
        return;
    ex->close_cb = cb;
    ex->close_arg = arg;
}

/* ---- reading requests ---- */

static void conn_dispatch(struct http_conn *c)
{
    struct http_server *s = c->srv;
    c->state = CONN_HANDLER;
    conn_arm_phase(c);
    c->keep_alive = c->req.keep_alive && !c->close_after && !s->draining;
    c->ex.dispatched = true;
    s->active++;
    s->on_request(&c->ex, s->arg);
}

static void conn_headers_done(struct http_conn *c)
{
    if (!c->req.expect_continue)
        return;
    /* Only if the client is actually waiting for it. */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        evbuffer_add(conn_output(c), cont, sizeof(cont) - 1);
        conn_flush(c);
    }
}

/* Feeds buffered input to the parser until a request is complete, an error
 * is answered, or the input runs dry. Never frees c. */
static void conn_process_input(struct http_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (c->state == CONN_IDLE || c->state == CONN_READING) {
        if (evbuffer_get_length(in) == 0)
            break;
        if (c->state == CONN_IDLE) {
            c->state = CONN_READING;
            c->ex.received_ns = now_ns();
        }
        struct evbuffer_iovec v[4];
        int n = evbuffer_peek(in, -1, NULL, v, 4);
        if (n > 4)
            n = 4;
        size_t used_total = 0;
        enum http_parse_status st = HTTP_PARSE_NEED_MORE;
        for (int i = 0; i < n && st == HTTP_PARSE_NEED_MORE; i++) {
            size_t used = 0;
            st = http_parse_feed(&c->req, v[i].iov_base, v[i].iov_len, &used);
            used_total += used;
        }
        evbuffer_drain(in, used_total);

        switch (st) {
        case HTTP_PARSE_NEED_MORE:
            if (used_total == 0)
                goto out;
            break;
        case HTTP_PARSE_HEADERS:
            conn_headers_done(c);
            break;
        case HTTP_PARSE_DONE:
            conn_dispatch(c);
            return;
        case HTTP_PARSE_ERROR:
            conn_send_error(c, c->req.error_status, c->req.error_reason);
            return;
        }
    }
out:
    conn_arm_phase(c);
}

static void conn_on_input(struct http_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (c->state == CONN_IDLE || c->state == CONN_READING) {
        conn_process_input(c);
    } else if (c->state == CONN_LINGER) {
        c->lingered += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->lingered > LINGER_MAX_BYTES)
            conn_free(c);
    } else if (evbuffer_get_length(in) >= READ_HIGH_WATER && !c->read_paused) {
        /* Pipelined bytes wait until the current response is done; past
         * the mark, stop reading (and so stop noticing EOF) until then. */
        c->read_paused = true;
        event_del(c->rd);
    }
}

/* EOF, a socket error, or the send timeout. May free c. */
static void conn_on_event(struct http_conn *c, short what)
{
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
        (c->state == CONN_FLUSHING || c->state == CONN_CLOSING)) {
        /* Half-close after a finished response: still deliver it. */
        c->peer_eof = true;
        c->state = CONN_CLOSING;
        if (evbuffer_get_length(conn_output(c)) == 0)
            conn_free(c);
        return;
    }
    /* A client cut for not reading: abort (RST) rather than close, so the
     * kernel drops what is still queued for it instead of trickling more
     * of the stream to a reader that wakes up later, with the FIN stuck
     * behind it. */
    if (what & BEV_EVENT_TIMEOUT)
        conn_abort_on_close(c);
    /* EOF/error while idle, reading, in flight or lingering; or the send
     * timeout. In flight, conn_free runs the close callback. */
    conn_free(c);
}

static void on_bev_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    conn_on_event(arg, what);
}

/* Reads with a plain recv() into the bufferevent's input buffer instead of
 * letting the bufferevent read: its evbuffer_read() issues an extra
 * ioctl(FIONREAD) per read, a syscall that costs as much as the recv. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct http_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(in, READ_CHUNK, &v, 1) < 1) {
        conn_on_event(c, BEV_EVENT_READING | BEV_EVENT_ERROR);
        return;
    }
    ssize_t n = recv(fd, v.iov_base, v.iov_len, 0);
    if (n > 0) {
        v.iov_len = (size_t)n;
        evbuffer_commit_space(in, &v, 1);
        conn_on_input(c);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    /* Stop watching a socket that will only ever say EOF again. */
    c->read_paused = true;
    event_del(c->rd);
    if (n == 0) {
        conn_on_event(c, BEV_EVENT_READING | BEV_EVENT_EOF);
        return;
    }
    conn_on_event(c, BEV_EVENT_READING | BEV_EVENT_ERROR);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_conn *c = arg;
    enum timer_phase phase = c->timer_phase;
    c->timer_phase = TP_NONE;
    switch (phase) {
    case TP_HEADER:
        conn_send_error(c, 408, "timed out reading the request headers");
        break;
    case TP_BODY:
        conn_send_error(c, 408, "timed out reading the request body");
        break;
    case TP_IDLE:
    case TP_LINGER:
        conn_free(c);
        break;
    default:
        break;
    }
}

/* ---- accepting ---- */

static void format_peer(char *dst, size_t n, const struct sockaddr *sa)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        port = ntohs(in->sin_port);
        snprintf(dst, n, "%s:%u", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
        snprintf(dst, n, "[%s]:%u", ip, port);
    } else {
        snprintf(dst, n, "unknown");
    }
}

struct http_conn *http_conn_new(struct http_server *s, evutil_socket_t fd,
                                const struct sockaddr *sa, bool counted)
{
    struct http_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        if (counted)
            budget_release();
        return NULL;
    }
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(s->base, on_timer, c);
    c->rd = event_new(s->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    if (!c->bev || !c->timer || !c->rd) {
        if (c->rd)
            event_free(c->rd);
        if (c->bev)
            bufferevent_free(c->bev); /* closes fd */
        else
            evutil_closesocket(fd);
        if (c->timer)
            event_free(c->timer);
        free(c);
        if (counted)
            budget_release();
        return NULL;
    }
    c->srv = s;
    c->counted = counted;
    c->ex.conn = c;
    c->tv_header = s->tv_header;
    c->tv_body = s->tv_body;
    c->tv_idle = s->tv_idle;
    http_parse_init(&c->req, &s->limits);
    format_peer(c->peer, sizeof(c->peer), sa);

    bufferevent_setcb(c->bev, NULL, on_write, on_bev_event, c);
    /* The bufferevent never reads (on_readable does), so let us append. */
    bufferevent_disable(c->bev, EV_READ);
    evbuffer_unfreeze(bufferevent_get_input(c->bev), 0);
    event_add(c->rd, NULL);
    /* The write timeout only runs while output is pending: a send timeout. */
    bufferevent_set_timeouts(c->bev, NULL, s->tv_send);
    /* EV_WRITE is enabled only while output is left over (conn_flush). */
    bufferevent_disable(c->bev, EV_WRITE);

    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->open++;
    return c;
}

void http_conn_start(struct http_conn *c)
{
    conn_arm_phase(c);
}

void http_conn_reject(struct http_conn *c, int status, const char *reason)
{
    conn_send_error(c, status, reason);
}

void http_conn_drain(struct http_conn *c)
{
    if (c->state == CONN_IDLE) {
        conn_free(c);
        return;
    }
    c->close_after = true;
    if (c->state == CONN_FLUSHING)
        c->state = CONN_CLOSING;
}

void http_conn_free(struct http_conn *c)
{
    conn_free(c);
}
