/* The HTTP server over real sockets: a server runs on its own event loop
 * thread on 127.0.0.1:0 and the tests talk raw HTTP/1.1 to it, checking
 * what a client relies on (keep-alive, pipelining order, limits, timeouts,
 * streaming, disconnect handling, drain). ASan/LSan make every abrupt
 * close a leak check too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "http/http_server.h"

#define HEADER_TIMEOUT_MS 300
#define BODY_TIMEOUT_MS 300
#define IDLE_TIMEOUT_MS 400
#define SEND_TIMEOUT_MS 500
#define MAX_BODY 1024
#define BIG_STREAM_BYTES (16 * 1024 * 1024)

static const struct http_limits limits = {
    .header_timeout_ms = HEADER_TIMEOUT_MS,
    .body_timeout_ms = BODY_TIMEOUT_MS,
    .idle_timeout_ms = IDLE_TIMEOUT_MS,
    .send_timeout_ms = SEND_TIMEOUT_MS,
    .max_header_bytes = 2048,
    .max_headers = 20,
    .max_body_bytes = MAX_BODY,
};

/* ---- the server under test, on its own loop thread ---- */

static struct {
    struct event_base *base;
    struct http_server *srv;
    pthread_t thread;
    uint16_t port;
} F;

static atomic_int n_requests, n_closes, n_drains, n_drain_waits, n_live_held;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* An exchange the handler answers later, from a timer. */
struct held {
    struct http_exchange *ex;
    struct event *timer;
    int kind, step;
    size_t sent;
};

enum { HELD_SLOW, HELD_STREAM, HELD_BIG, HELD_ENDLESS };

static void held_free(struct held *h)
{
    event_free(h->timer);
    free(h);
    atomic_fetch_sub(&n_live_held, 1);
}

static void held_on_close(struct http_exchange *ex, void *arg)
{
    (void)ex;
    struct held *h = arg;
    atomic_fetch_add(&n_closes, 1);
    /* Wrong use on purpose: must be ignored, not crash. */
    http_reply(ex, 200, NULL, "late", 4);
    if (h)
        held_free(h);
}

static void big_pump(struct http_exchange *ex, void *arg);

static void held_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct held *h = arg;
    struct timeval tv = {0, 50 * 1000};
    if (h->kind == HELD_SLOW) {
        http_reply(h->ex, 200, "X-Kind: slow\r\n", "slow", 4);
        held_free(h);
        return;
    }
    char line[32];
    int n = snprintf(line, sizeof(line), "data: %d\n\n", ++h->step);
    http_stream_write(h->ex, line, (size_t)n);
    if (h->step < 3) {
        evtimer_add(h->timer, &tv);
        return;
    }
    http_stream_end(h->ex);
    held_free(h);
}

static struct held *hold(struct http_exchange *ex, int kind)
{
    struct held *h = calloc(1, sizeof(*h));
    h->ex = ex;
    h->kind = kind;
    h->timer = evtimer_new(F.base, held_tick, h);
    atomic_fetch_add(&n_live_held, 1);
    http_set_close_cb(ex, held_on_close, h);
    return h;
}

/* Writes until the output buffer passes a high-water mark, then waits for
 * the drain callback: the backpressure loop an upstream relay runs. */
static void big_pump(struct http_exchange *ex, void *arg)
{
    struct held *h = arg;
    if (h->step++)
        atomic_fetch_add(&n_drains, 1);
    static char block[16384];
    memset(block, 'z', sizeof(block));
    size_t total = h->kind == HELD_BIG ? BIG_STREAM_BYTES : SIZE_MAX;
    while (h->sent < total) {
        size_t queued = http_stream_write(ex, block, sizeof(block));
        h->sent += sizeof(block);
        if (queued > 256 * 1024 && h->sent < total) {
            atomic_fetch_add(&n_drain_waits, 1);
            http_stream_on_drain(ex, 16 * 1024, big_pump, h);
            return;
        }
    }
    http_stream_end(ex);
    held_free(h);
}

static void on_request(struct http_exchange *ex, void *arg)
{
    (void)arg;
    atomic_fetch_add(&n_requests, 1);
    const char *path = http_path(ex);
    if (!strcmp(path, "/hello")) {
        http_reply(ex, 200, "Content-Type: text/plain\r\n", "hello", 5);
    } else if (!strcmp(path, "/echo")) {
        size_t len;
        const char *body = http_body(ex, &len);
        char hdr[256];
        const char *q = http_query(ex);
        size_t ua_len = 0;
        const char *ua = http_header(ex, "x-TEST", &ua_len);
        snprintf(hdr, sizeof(hdr),
                 "X-Method: %s\r\nX-Query: %s\r\nX-Test: %s\r\n"
                 "X-Header-Count: %zu",
                 http_method(ex), q ? q : "(none)", ua ? ua : "(none)",
                 http_header_count(ex));
        http_reply(ex, 200, hdr, body, len);
    } else if (!strcmp(path, "/twice")) {
        http_reply(ex, 200, NULL, "first", 5);
        http_reply(ex, 500, NULL, "second", 6); /* ignored */
        http_stream_write(ex, "x", 1);          /* ignored */
        http_stream_end(ex);                    /* ignored */
    } else if (!strcmp(path, "/slow")) {
        struct held *h = hold(ex, HELD_SLOW);
        struct timeval tv = {0, 200 * 1000};
        evtimer_add(h->timer, &tv);
    } else if (!strcmp(path, "/stream")) {
        struct held *h = hold(ex, HELD_STREAM);
        http_stream_start(ex, 200, "Content-Type: text/event-stream\r\n");
        http_stream_write(ex, "data: 0\n\n", 9);
        struct timeval tv = {0, 50 * 1000};
        evtimer_add(h->timer, &tv);
    } else if (!strcmp(path, "/hold-stream")) {
        hold(ex, HELD_STREAM); /* never ends: only the client can */
        http_stream_start(ex, 200, "Content-Type: text/event-stream\r\n");
        http_stream_write(ex, "data: 0\n\n", 9);
    } else if (!strcmp(path, "/hold")) {
        hold(ex, HELD_SLOW); /* timer never armed */
    } else if (!strcmp(path, "/big") || !strcmp(path, "/endless")) {
        struct held *h =
            hold(ex, !strcmp(path, "/big") ? HELD_BIG : HELD_ENDLESS);
        http_stream_start(ex, 200, NULL);
        big_pump(ex, h);
    } else {
        http_reply(ex, 404, NULL, "nope", 4);
    }
}

static void *loop_main(void *arg)
{
    (void)arg;
    event_base_loop(F.base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

struct loop_call {
    void (*fn)(void *);
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

static void loop_call_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct loop_call *c = arg;
    c->fn(c->arg);
    pthread_mutex_lock(&c->mu);
    c->done = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Runs fn on the server's thread and waits for it. */
static void run_on_loop(void (*fn)(void *), void *arg)
{
    struct loop_call c = {.fn = fn,
                          .arg = arg,
                          .mu = PTHREAD_MUTEX_INITIALIZER,
                          .cv = PTHREAD_COND_INITIALIZER};
    assert_int_equal(
        event_base_once(F.base, -1, EV_TIMEOUT, loop_call_cb, &c, NULL), 0);
    pthread_mutex_lock(&c.mu);
    while (!c.done)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
}

struct counts {
    size_t open, active;
};

static void read_counts(void *arg)
{
    struct counts *c = arg;
    c->open = http_server_open_connections(F.srv);
    c->active = http_server_active_requests(F.srv);
}

static struct counts server_counts(void)
{
    struct counts c;
    run_on_loop(read_counts, &c);
    return c;
}

static void stop_accepting(void *arg)
{
    (void)arg;
    http_server_stop_accepting(F.srv);
}

static int setup(void **state)
{
    (void)state;
    F.base = event_base_new();
    char err[256];
    F.srv = http_server_new(F.base, "127.0.0.1:0", &limits, on_request, NULL,
                            err, sizeof(err));
    if (!F.srv) {
        print_error("server: %s\n", err);
        return -1;
    }
    F.port = http_server_port(F.srv);
    atomic_store(&n_requests, 0);
    atomic_store(&n_closes, 0);
    atomic_store(&n_drains, 0);
    atomic_store(&n_drain_waits, 0);
    http_conn_budget_set(0);
    pthread_create(&F.thread, NULL, loop_main, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    event_base_loopbreak(F.base);
    pthread_join(F.thread, NULL);
    http_server_free(F.srv); /* runs close callbacks of anything held */
    event_base_free(F.base);
    if (atomic_load(&n_live_held) != 0) {
        print_error("held exchanges leaked: %d\n", atomic_load(&n_live_held));
        return -1;
    }
    if (http_conn_budget_in_use() != 0) {
        print_error("connection budget leaked: %u\n",
                    http_conn_budget_in_use());
        return -1;
    }
    return 0;
}

/* ---- a tiny blocking HTTP client ---- */

struct client {
    int fd;
    char buf[256 * 1024];
    size_t len;
};

struct response {
    int status;
    char head[4096];
    char body[64 * 1024];
    size_t body_len;
    char raw[64 * 1024]; /* body bytes as sent, chunk framing included */
    size_t raw_len;
};

/* rcvbuf > 0 shrinks the receive window so the server meets backpressure
 * (loopback buffers would otherwise swallow megabytes). */
static struct client *client_open_rcvbuf(int rcvbuf)
{
    struct client *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(F.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {3, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return c;
}

static struct client *client_open(void)
{
    return client_open_rcvbuf(0);
}

static void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

/* Close with RST instead of FIN: the rudest disconnect there is. */
static void client_reset(struct client *c)
{
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    client_close(c);
}

static void client_send(struct client *c, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

static void client_sends(struct client *c, const char *s)
{
    client_send(c, s, strlen(s));
}

/* Reads more bytes; false on EOF, reset or timeout. */
static bool client_fill(struct client *c)
{
    if (c->len == sizeof(c->buf))
        return false;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

static void client_consume(struct client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* The connection is closed by the server with nothing more to read. */
static bool client_sees_close(struct client *c)
{
    if (c->len)
        return false;
    char b;
    ssize_t n = recv(c->fd, &b, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static const char *find_header(const struct response *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2];
         p = strstr(p + 2, "\r\n")) {
        if (!strncasecmp(p + 2, name, n) && p[2 + n] == ':')
            return p + 3 + n + strspn(p + 3 + n, " ");
    }
    return NULL;
}

static bool header_is(const struct response *r, const char *name,
                      const char *value)
{
    const char *v = find_header(r, name);
    return v && !strncasecmp(v, value, strlen(value)) &&
           v[strlen(value)] == '\r';
}

static bool need(struct client *c, size_t n)
{
    while (c->len < n)
        if (!client_fill(c))
            return false;
    return true;
}

/* One whole response (Content-Length, chunked or until-close). */
static bool read_response(struct client *c, struct response *r)
{
    memset(r, 0, sizeof(*r));
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (!client_fill(c))
            return false;
    size_t hlen = (size_t)(end - c->buf) + 4;
    if (hlen >= sizeof(r->head))
        return false;
    memcpy(r->head, c->buf, hlen);
    client_consume(c, hlen);
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return false;
    if (r->status < 200)
        return true;

    const char *cl = find_header(r, "Content-Length");
    if (cl) {
        size_t n = strtoul(cl, NULL, 10);
        if (n > sizeof(r->body) || !need(c, n))
            return false;
        memcpy(r->body, c->buf, n);
        r->body_len = n;
        client_consume(c, n);
        return true;
    }
    if (header_is(r, "Transfer-Encoding", "chunked")) {
        for (;;) {
            char *eol;
            while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
                if (!client_fill(c))
                    return false;
            size_t size = strtoul(c->buf, NULL, 16);
            size_t line = (size_t)(eol - c->buf) + 2;
            if (!need(c, line + size + 2) ||
                r->raw_len + line + size + 2 > sizeof(r->raw) ||
                r->body_len + size > sizeof(r->body))
                return false;
            memcpy(r->raw + r->raw_len, c->buf, line + size + 2);
            r->raw_len += line + size + 2;
            memcpy(r->body + r->body_len, c->buf + line, size);
            r->body_len += size;
            bool crlf = !memcmp(c->buf + line + size, "\r\n", 2);
            client_consume(c, line + size + 2);
            if (!crlf)
                return false;
            if (size == 0)
                return true;
        }
    }
    while (client_fill(c)) {
    }
    size_t n = c->len < sizeof(r->body) ? c->len : sizeof(r->body);
    memcpy(r->body, c->buf, n);
    r->body_len = n;
    client_consume(c, c->len);
    return true;
}

static void expect_error(struct client *c, int status)
{
    struct response r;
    assert_true(read_response(c, &r));
    assert_int_equal(r.status, status);
    assert_true(header_is(&r, "Content-Type", "application/json"));
    assert_true(header_is(&r, "Connection", "close"));
    assert_non_null(strstr(r.body, "\"error\""));
    assert_non_null(strstr(r.body, "\"message\""));
    assert_true(client_sees_close(c));
}

static bool wait_until(atomic_int *v, int want, int ms)
{
    uint64_t end = mono_ms() + (uint64_t)ms;
    while (mono_ms() < end) {
        if (atomic_load(v) >= want)
            return true;
        usleep(5000);
    }
    return atomic_load(v) >= want;
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

/* ---- tests ---- */

static void test_keep_alive(void **state)
{
    (void)state;
    struct client *c = client_open();
    struct response r;
    for (int i = 0; i < 2; i++) {
        client_sends(c, GET("/hello"));
        assert_true(read_response(c, &r));
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, 5);
        assert_memory_equal(r.body, "hello", 5);
        assert_true(header_is(&r, "Connection", "keep-alive"));
        assert_true(header_is(&r, "Content-Type", "text/plain"));
        assert_non_null(find_header(&r, "Date"));
    }
    assert_int_equal(atomic_load(&n_requests), 2);
    client_close(c);
}

static void test_pipelined_in_order(void **state)
{
    (void)state;
    struct client *c = client_open();
    /* Includes a slow one first: later answers must wait for it. */
    client_sends(c, GET("/slow") "POST /echo HTTP/1.1\r\nHost: t\r\n"
                                 "Content-Length: 3\r\n\r\nabc" GET(
                                     "/hello") "POST /echo?q=1 HTTP/1.1\r\n"
                                               "Host: t\r\nContent-Length: "
                                               "2\r\n\r\nxy");
    struct response r;
    assert_true(read_response(c, &r));
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "slow", 4);
    assert_true(read_response(c, &r));
    assert_memory_equal(r.body, "abc", 3);
    assert_true(read_response(c, &r));
    assert_memory_equal(r.body, "hello", 5);
    assert_true(read_response(c, &r));
    assert_int_equal(r.body_len, 2);
    assert_memory_equal(r.body, "xy", 2);
    assert_true(header_is(&r, "X-Query", "q=1"));
    client_close(c);
}

static void test_chunked_request_body(void **state)
{
    (void)state;
    struct client *c = client_open();
    client_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nX-Test:  v1 \r\n"
                    "Transfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n");
    usleep(20000); /* body split across reads */
    client_sends(c, "1;ext=x\r\n,\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n");
    struct response r;
    assert_true(read_response(c, &r));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 12);
    assert_memory_equal(r.body, "hello, world", 12);
    assert_true(header_is(&r, "X-Method", "POST"));
    assert_true(header_is(&r, "X-Query", "(none)"));
    assert_true(header_is(&r, "X-Test", "v1"));
    assert_true(header_is(&r, "X-Header-Count", "3"));
    client_close(c);
}

static void test_413_content_length(void **state)
{
    (void)state;
    struct client *c = client_open();
    client_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\n"
                    "Content-Length: 5000\r\n\r\n");
    /* The server answers before reading the body. */
    expect_error(c, 413);
    assert_int_equal(atomic_load(&n_requests), 0);
    client_close(c);
}

static void test_413_chunked(void **state)
{
    (void)state;
    struct client *c = client_open();
    client_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n");
    char chunk[600];
    memset(chunk, 'a', sizeof(chunk));
    client_sends(c, "258\r\n"); /* 600 */
    client_send(c, chunk, sizeof(chunk));
    client_sends(c, "\r\n258\r\n");
    expect_error(c, 413);
    assert_int_equal(atomic_load(&n_requests), 0);
    client_close(c);
}

static void test_431(void **state)
{
    (void)state;
    struct client *c = client_open();
    char big[3000];
    memset(big, 'a', sizeof(big));
    client_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ");
    client_send(c, big, sizeof(big));
    expect_error(c, 431);
    client_close(c);

    c = client_open();
    client_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 25; i++)
        client_sends(c, "X-Many: 1\r\n");
    client_sends(c, "\r\n");
    expect_error(c, 431);
    client_close(c);
}

static void test_400_smuggling(void **state)
{
    (void)state;
    static const char *bad[] = {
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        "Content-Length: 3\r\n\r\nabc",
        "GET /hello HTTP/1.1\r\nHost: t\r\nX: a\r\n Content-Length: 3\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: t\r\nX: a\rY: b\r\n\r\n",
        "GET /hello HTTP/1.1\nHost: t\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabcXX0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct client *c = client_open();
        client_sends(c, bad[i]);
        expect_error(c, 400);
        client_close(c);
    }
    assert_int_equal(atomic_load(&n_requests), 0);
}

/* Issue 8 item 10: a block framed with bare LFs only never ends with
 * CRLFCRLF; it must get 400 at once, not 408 at the header timeout, and a
 * CRLF split across reads must not be mistaken for a bare LF. */
static void test_bare_lf_framing_400_at_once(void **state)
{
    (void)state;
    /* Before the fix these got 408 (the header timeout), not 400. */
    struct client *c = client_open();
    client_sends(c, "POST /echo HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}");
    expect_error(c, 400);
    client_close(c);

    c = client_open();
    client_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\n");
    usleep(20000);
    client_sends(c, "X: 1\n");
    expect_error(c, 400);
    client_close(c);

    c = client_open();
    client_sends(c, "GET /hello HTTP/1.1\r");
    usleep(20000);
    client_sends(c, "\nHost: t\r");
    usleep(20000);
    client_sends(c, "\n\r");
    usleep(20000);
    client_sends(c, "\n");
    struct response r;
    assert_true(read_response(c, &r));
    assert_int_equal(r.status, 200);
    client_close(c);
    assert_int_equal(atomic_load(&n_requests), 1);
}

static void test_header_timeout_408(void **state)
{
    (void)state;
    struct client *c = client_open();
    uint64_t t0 = mono_ms();
    client_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\n");
    /* Dripping bytes must not extend the deadline. */
    for (int i = 0; i < 4; i++) {
        usleep(60000);
        client_sends(c, "X: 1\r\n");
    }
    expect_error(c, 408);
    uint64_t took = mono_ms() - t0;
    assert_true(took >= HEADER_TIMEOUT_MS - 20);
    assert_true(took < HEADER_TIMEOUT_MS + 400);
    client_close(c);
}

static void test_body_timeout_408(void **state)
{
    (void)state;
    struct client *c = client_open();
    client_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\n"
                    "Content-Length: 10\r\n\r\nabc");
    expect_error(c, 408);
    assert_int_equal(atomic_load(&n_requests), 0);
    client_close(c);
}

static void test_idle_timeout_closes(void **state)
{
    (void)state;
    struct client *c = client_open();
    client_sends(c, GET("/hello"));
    struct response r;
    assert_true(read_response(c, &r));
    uint64_t t0 = mono_ms();
    assert_true(client_sees_close(c)); /* silently: no 408 */
    uint64_t took = mono_ms() - t0;
    assert_true(took >= IDLE_TIMEOUT_MS - 50);
    assert_true(took < IDLE_TIMEOUT_MS + 400);
    client_close(c);
    struct counts n = server_counts();
    assert_int_equal(n.open, 0);
}

static void test_connection_cap_503(void **state)
{
    (void)state;
    http_conn_budget_set(2);
    struct client *a = client_open(), *b = client_open();
    struct response r;
    client_sends(a, GET("/hello"));
    assert_true(read_response(a, &r));
    client_sends(b, GET("/hello"));
    assert_true(read_response(b, &r));
    assert_int_equal(http_conn_budget_in_use(), 2);

    struct client *c = client_open();
    expect_error(c, 503);
    client_close(c);

    /* A slot frees up when a connection goes away. */
    client_close(a);
    for (int i = 0; i < 200 && http_conn_budget_in_use() != 1; i++)
        usleep(5000);
    c = client_open();
    client_sends(c, GET("/hello"));
    assert_true(read_response(c, &r));
    assert_int_equal(r.status, 200);
    client_close(c);
    client_close(b);
    for (int i = 0; i < 200 && http_conn_budget_in_use() != 0; i++)
        usleep(5000);
    http_conn_budget_set(0);
}

static void test_streaming_response(void **state)
{
    (void)state;
    struct client *c = client_open();
    client_sends(c, GET("/stream"));
    struct response r;
    assert_true(read_response(c, &r));
    assert_int_equal(r.status, 200);
    assert_true(header_is(&r, "Transfer-Encoding", "chunked"));
    assert_null(find_header(&r, "Content-Length"));
    assert_true(header_is(&r, "Content-Type", "text/event-stream"));
    const char *want = "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\n";
    assert_int_equal(r.body_len, strlen(want));
    assert_memory_equal(r.body, want, strlen(want));
    const char *raw = "9\r\ndata: 0\n\n\r\n9\r\ndata: 1\n\n\r\n"
                      "9\r\ndata: 2\n\n\r\n9\r\ndata: 3\n\n\r\n0\r\n\r\n";
    assert_int_equal(r.raw_len, strlen(raw));
    assert_memory_equal(r.raw, raw, strlen(raw));
    /* Still keep-alive after a stream. */
    client_sends(c, GET("/hello"));
    assert_true(read_response(c, &r));
    assert_int_equal(r.status, 200);
    client_close(c);
}

static void test_stream_http10_until_close(void **state)
{
    (void)state;
    struct client *c = client_open();
    client_sends(c, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    struct response r;
    assert_true(read_response(c, &r));
    assert_null(find_header(&r, "Transfer-Encoding"));
    assert_true(header_is(&r, "Connection", "close"));
    const char *want = "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\n";
    assert_int_equal(r.body_len, strlen(want));
    assert_memory_equal(r.body, want, strlen(want));
    client_close(c);
}

static void test_close_cb_on_disconnect_mid_stream(void **state)
{
    (void)state;
    struct client *c = client_open();
    client_sends(c, GET("/hold-stream"));
    while (!memmem(c->buf, c->len, "data: 0", 7))
        assert_true(client_fill(c));
    assert_int_equal(server_counts().active, 1);
    client_close(c);
    assert_true(wait_until(&n_closes, 1, 2000));
    struct counts n = server_counts();
    assert_int_equal(n.active, 0);
    assert_int_equal(n.open, 0);
    assert_int_equal(atomic_load(&n_closes), 1);
}

static void test_abrupt_closes_do_not_leak(void **state)
{
    (void)state;
    /* Mid-headers, mid-body, in flight (FIN and RST), mid-response. */
    struct client *c = client_open();
    client_sends(c, "GET /hello HTTP/1.1\r\nHo");
    client_reset(c);
    c = client_open();
    client_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n"
                    "\r\nabc");
    client_close(c);
    c = client_open();
    client_sends(c, GET("/hold"));
    assert_true(wait_until(&n_requests, 1, 2000));
    client_reset(c);
    c = client_open();
    client_sends(c, GET("/slow"));
    assert_true(wait_until(&n_requests, 2, 2000));
    client_close(c);
    assert_true(wait_until(&n_closes, 2, 2000));
    for (int i = 0; i < 200 && server_counts().open; i++)
        usleep(5000);
    struct counts n = server_counts();
    assert_int_equal(n.open, 0);
    assert_int_equal(n.active, 0);
    assert_int_equal(atomic_load(&n_live_held), 0);
}

static void test_drain(void **state)
{
    (void)state;
    struct client *idle = client_open(), *busy = client_open();
    struct response r;
    client_sends(idle, GET("/hello"));
    assert_true(read_response(idle, &r));
    client_sends(busy, GET("/slow"));
    assert_true(wait_until(&n_requests, 2, 2000));

    run_on_loop(stop_accepting, NULL);
    assert_true(client_sees_close(idle)); /* at once, not at idle timeout */
    struct counts n = server_counts();
    assert_int_equal(n.open, 1);
    assert_int_equal(n.active, 1);

    /* The in-flight request still gets its answer, then the close. */
    assert_true(read_response(busy, &r));
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "slow", 4);
    assert_true(header_is(&r, "Connection", "close"));
    assert_true(client_sees_close(busy));
    n = server_counts();
    assert_int_equal(n.open, 0);
    assert_int_equal(n.active, 0);

    /* No longer listening. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(F.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_not_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    client_close(idle);
    client_close(busy);
}

static void test_reply_twice_is_harmless(void **state)
{
    (void)state;
    struct client *c = client_open();
    client_sends(c, GET("/twice") GET("/hello"));
    struct response r;
    assert_true(read_response(c, &r));
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "first", 5);
    assert_true(read_response(c, &r));
    assert_memory_equal(r.body, "hello", 5);
    client_close(c);
}

static void test_http10_and_connection_close(void **state)
{
    (void)state;
    struct response r;
    struct client *c = client_open();
    client_sends(c, "GET /hello HTTP/1.0\r\n\r\n");
    assert_true(read_response(c, &r));
    assert_true(header_is(&r, "Connection", "close"));
    assert_true(client_sees_close(c));
    client_close(c);

    c = client_open();
    client_sends(c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_true(read_response(c, &r));
    assert_true(header_is(&r, "Connection", "keep-alive"));
    client_sends(c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_true(read_response(c, &r));
    assert_int_equal(r.status, 200);
    client_close(c);

    c = client_open();
    client_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                    "\r\n" GET("/hello"));
    assert_true(read_response(c, &r));
    assert_true(header_is(&r, "Connection", "close"));
    assert_true(client_sees_close(c)); /* the second one is not answered */
    client_close(c);
    assert_int_equal(atomic_load(&n_requests), 4);
}

static void test_expect_100_continue(void **state)
{
    (void)state;
    struct client *c = client_open();
    client_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                    "Expect: 100-continue\r\n\r\n");
    struct response r;
    assert_true(read_response(c, &r));
    assert_int_equal(r.status, 100);
    client_sends(c, "ping");
    assert_true(read_response(c, &r));
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "ping", 4);
    client_close(c);
}

static void test_backpressure_drain(void **state)
{
    (void)state;
    struct client *c = client_open_rcvbuf(16 * 1024);
    client_sends(c, GET("/big"));
    /* Headers first. */
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        assert_true(client_fill(c));
    client_consume(c, (size_t)(end - c->buf) + 4);
    /* Do not read until the server is blocked on us. */
    assert_true(wait_until(&n_drain_waits, 1, 3000));
    size_t payload = 0;
    bool done = false;
    while (!done) {
        /* Strip chunk framing as it arrives. */
        char *eol;
        while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
            assert_true(client_fill(c));
        size_t size = strtoul(c->buf, NULL, 16);
        size_t line = (size_t)(eol - c->buf) + 2;
        assert_true(need(c, line + size + 2));
        payload += size;
        client_consume(c, line + size + 2);
        done = size == 0;
    }
    assert_int_equal(payload, BIG_STREAM_BYTES);
    assert_true(atomic_load(&n_drains) >= 1);
    client_close(c);
}

static void test_send_timeout(void **state)
{
    (void)state;
    struct client *c = client_open_rcvbuf(4096);
    client_sends(c, GET("/endless"));
    /* Never read: the server must give up after the send timeout and
     * report the exchange closed. */
    assert_true(wait_until(&n_closes, 1, SEND_TIMEOUT_MS + 2000));
    struct counts n = server_counts();
    assert_int_equal(n.active, 0);
    /* Issue 8 item 14: once cut, the connection is closed at once. A
     * reader that wakes up later must see the end (RST) right after what
     * its own receive buffer already held, not more of the stream from
     * the server's send buffer and then nothing. */
    size_t after_cut = 0;
    bool ended = false;
    uint64_t deadline = mono_ms() + 2000;
    while (mono_ms() < deadline) {
        char tmp[64 * 1024];
        ssize_t got = recv(c->fd, tmp, sizeof tmp, 0);
        if (got <= 0) {
            ended = got == 0 || errno == ECONNRESET;
            break;
        }
        after_cut += (size_t)got;
    }
    assert_true(ended);
    /* Usually just the 4 KB receive buffer. Without the RST a reader gets
     * the server's whole send queue (2.8 MB measured); the bound leaves
     * room for the kernel having moved a few windows more before the
     * close (it once read over 64 KB on a loaded machine). */
    assert_in_range(after_cut, 0, 512 * 1024);
    client_close(c);
}

static struct http_server *second;

static void bind_second(void *arg)
{
    (void)arg;
    char addr[64], err[256];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)F.port);
    second = http_server_new(F.base, addr, &limits, on_request, NULL, err,
                             sizeof(err));
    if (!second)
        print_error("second bind: %s\n", err);
}

static void free_second(void *arg)
{
    (void)arg;
    http_server_free(second);
    second = NULL;
}

static void test_second_worker_binds_same_port(void **state)
{
    (void)state;
    /* How workers share one address: the first binds port 0, the rest
     * bind the port it got (SO_REUSEPORT). */
    run_on_loop(bind_second, NULL);
    assert_non_null(second);
    assert_int_equal(http_server_port(second), F.port);
    for (int i = 0; i < 8; i++) {
        struct client *c = client_open();
        struct response r;
        client_sends(c, GET("/hello"));
        assert_true(read_response(c, &r));
        assert_int_equal(r.status, 200);
        client_close(c);
    }
    run_on_loop(free_second, NULL);

    char err[256];
    assert_null(http_server_new(F.base, "not-an-address", &limits, on_request,
                                NULL, err, sizeof(err)));
    assert_true(strlen(err) > 0);
}

int main(void)
{
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_chunked_request_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_413_content_length, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_413_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_431, setup, teardown),
        cmocka_unit_test_setup_teardown(test_400_smuggling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bare_lf_framing_400_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_header_timeout_408, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_body_timeout_408, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout_closes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connection_cap_503, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_streaming_response, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_http10_until_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_cb_on_disconnect_mid_stream,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_abrupt_closes_do_not_leak, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_twice_is_harmless, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http10_and_connection_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_expect_100_continue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_drain, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_send_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_worker_binds_same_port,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("http_server", tests, NULL, NULL);
}
