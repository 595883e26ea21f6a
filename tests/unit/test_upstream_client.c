/* Upstream client against real sockets: an evhttp server and a raw
 * canned-response server run on the same event_base as the client, on
 * 127.0.0.1 with kernel-chosen ports. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "upstream/upstream_client.h"

/* Every test runs twice: on the native HTTP/1.1 transport, then with
 * use_curl on libcurl. Both must behave the same. */
static bool g_use_curl;

/* ---- fixture: servers on one loop ------------------------------------- */

struct raw_conn {
    struct bufferevent *bev;
    struct raw_conn *next;
};

struct fixture {
    struct event_base *base;
    struct evhttp *http;
    int http_port;
    struct evconnlistener *raw;
    int raw_port;
    const char *raw_reply; /* canned bytes sent after the request head */
    bool raw_close_now;    /* close without answering */
    struct raw_conn *raw_conns;
    int server_closes; /* evhttp connection close callbacks */
    int server_requests;
    struct upstream_client *uc;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop until *flag or the deadline; true if the flag was set. */
static bool run_until(struct fixture *fx, const bool *flag, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (!*flag) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return false;
        struct timeval tv = {0, (left > 10 ? 10 : left) * 1000};
        event_base_loopexit(fx->base, &tv);
        event_base_dispatch(fx->base);
    }
    return true;
}

static void run_for(struct fixture *fx, int ms)
{
    bool never = false;
    run_until(fx, &never, ms);
}

static void on_generic_close(struct evhttp_connection *evcon, void *arg)
{
    struct fixture *fx = arg;
    fx->server_closes++;
}

/* /stream?n=N&gap=MS[&stall=1]: chunked "data: i" events, N of them. */
struct srv_stream {
    struct fixture *fx;
    struct evhttp_request *req;
    struct event *tick;
    int sent, n, gap_ms;
    bool stall_after_first;
};

static void srv_stream_free(struct srv_stream *s)
{
    event_free(s->tick);
    free(s);
}

static void on_stream_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct srv_stream *s = arg;
    s->fx->server_closes++;
    /* On a client EOF mid-reply evhttp detaches the request from the
     * connection and leaves it to us; otherwise the connection frees it. */
    if (!evhttp_request_get_connection(s->req))
        evhttp_request_free(s->req);
    srv_stream_free(s);
}

static void stream_tick(evutil_socket_t fd, short what, void *arg)
{
    struct srv_stream *s = arg;
    struct evbuffer *chunk = evbuffer_new();
    evbuffer_add_printf(chunk, "data: %d\n\n", s->sent++);
    evhttp_send_reply_chunk(s->req, chunk);
    evbuffer_free(chunk);
    if (s->stall_after_first)
        return; /* and never again */
    if (s->sent == s->n) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(s->req);
        evhttp_connection_set_closecb(evcon, on_generic_close, s->fx);
        evhttp_send_reply_end(s->req);
        srv_stream_free(s);
        return;
    }
    struct timeval tv = {0, s->gap_ms * 1000};
    evtimer_add(s->tick, &tv);
}

static int query_int(struct evhttp_request *req, const char *key, int dflt)
{
    struct evkeyvalq q;
    const char *query =
        evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    int v = dflt;
    if (query && evhttp_parse_query_str(query, &q) == 0) {
        const char *s = evhttp_find_header(&q, key);
        if (s)
            v = atoi(s);
        evhttp_clear_headers(&q);
    }
    return v;
}

static void start_stream(struct fixture *fx, struct evhttp_request *req,
                         bool stall)
{
    struct srv_stream *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->fx = fx;
    s->req = req;
    s->n = query_int(req, "n", 5);
    s->gap_ms = query_int(req, "gap", 50);
    s->stall_after_first = stall;
    s->tick = evtimer_new(fx->base, stream_tick, s);
    evhttp_connection_set_closecb(evhttp_request_get_connection(req),
                                  on_stream_conn_close, s);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/event-stream");
    evhttp_send_reply_start(req, 200, "OK");
    struct timeval tv = {0, stall ? 0 : s->gap_ms * 1000};
    evtimer_add(s->tick, &tv);
}

static void reply(struct evhttp_request *req, int code, const char *body,
                  size_t len)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Test", "yes");
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Unavailable", b);
    evbuffer_free(b);
}

/* Answers "METHOD|content-type|expect|body" so tests see what was sent. */
static void reply_echo(struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *type = evhttp_find_header(in, "Content-Type");
    const char *expect = evhttp_find_header(in, "Expect");
    const char *auth = evhttp_find_header(in, "Authorization");
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *method = cmd == EVHTTP_REQ_POST  ? "POST"
                         : cmd == EVHTTP_REQ_GET ? "GET"
                                                 : "OTHER";
    char head[512];
    int n =
        snprintf(head, sizeof(head), "%s|%s|%s|%s|", method, type ? type : "-",
                 expect ? expect : "-", auth ? auth : "-");
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, head, (size_t)n);
    evbuffer_add_buffer(out, body);
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void on_http_request(struct evhttp_request *req, void *arg)
{
    struct fixture *fx = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    fx->server_requests++;
    if (strcmp(path, "/stream") == 0 || strcmp(path, "/stall") == 0) {
        start_stream(fx, req, strcmp(path, "/stall") == 0);
        return;
    }
    evhttp_connection_set_closecb(evhttp_request_get_connection(req),
                                  on_generic_close, fx);
    if (strcmp(path, "/json") == 0) {
        reply(req, 200, "{\"ok\":true}", 11);
    } else if (strcmp(path, "/echo") == 0) {
        reply_echo(req);
    } else if (strcmp(path, "/status503") == 0) {
        reply(req, 503, "overloaded", 10);
    } else if (strcmp(path, "/big") == 0) {
        size_t size = (size_t)query_int(req, "size", 100000);
        char *b = malloc(size);
        for (size_t i = 0; i < size; i++)
            b[i] = (char)('a' + (i * 7 + i / 26) % 26);
        reply(req, 200, b, size);
        free(b);
    } else if (strcmp(path, "/hang") == 0) {
        /* never answer; evhttp_free() cleans up */
    } else {
        reply(req, 404, "no", 2);
    }
}

static void raw_conn_drop(struct fixture *fx, struct bufferevent *bev)
{
    for (struct raw_conn **pp = &fx->raw_conns; *pp; pp = &(*pp)->next) {
        if ((*pp)->bev == bev) {
            struct raw_conn *rc = *pp;
            *pp = rc->next;
            bufferevent_free(rc->bev);
            free(rc);
            return;
        }
    }
}

static void raw_on_written(struct bufferevent *bev, void *arg)
{
    raw_conn_drop(arg, bev); /* canned reply flushed: close */
}

static void raw_on_read(struct bufferevent *bev, void *arg)
{
    struct fixture *fx = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (evbuffer_search(in, "\r\n\r\n", 4, NULL).pos < 0)
        return;
    evbuffer_drain(in, evbuffer_get_length(in));
    if (fx->raw_close_now) {
        raw_conn_drop(fx, bev);
        return;
    }
    bufferevent_setcb(bev, NULL, raw_on_written, NULL, fx);
    bufferevent_write(bev, fx->raw_reply, strlen(fx->raw_reply));
}

static void raw_on_accept(struct evconnlistener *l, evutil_socket_t fd,
                          struct sockaddr *sa, int socklen, void *arg)
{
    struct fixture *fx = arg;
    struct raw_conn *rc = calloc(1, sizeof(*rc));
    rc->bev = bufferevent_socket_new(fx->base, fd, BEV_OPT_CLOSE_ON_FREE);
    rc->next = fx->raw_conns;
    fx->raw_conns = rc;
    bufferevent_setcb(rc->bev, raw_on_read, NULL, NULL, fx);
    bufferevent_enable(rc->bev, EV_READ);
}

static int bound_port(evutil_socket_t fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    return ntohs(sin.sin_port);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    fx->base = event_base_new();
    fx->http = evhttp_new(fx->base);
    evhttp_set_gencb(fx->http, on_http_request, fx);
    evhttp_set_allowed_methods(fx->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                             EVHTTP_REQ_PUT);
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(fx->http, "127.0.0.1", 0);
    assert_non_null(bs);
    fx->http_port = bound_port(evhttp_bound_socket_get_fd(bs));

    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fx->raw = evconnlistener_new_bind(fx->base, raw_on_accept, fx,
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                      16, (struct sockaddr *)&sin, sizeof(sin));
    assert_non_null(fx->raw);
    fx->raw_port = bound_port(evconnlistener_get_fd(fx->raw));
    fx->uc = upstream_client_new(fx->base);
    assert_non_null(fx->uc);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    upstream_client_free(fx->uc);
    run_for(fx, 20); /* let the servers see the closes */
    evhttp_free(fx->http);
    while (fx->raw_conns)
        raw_conn_drop(fx, fx->raw_conns->bev);
    evconnlistener_free(fx->raw);
    event_base_free(fx->base);
    free(fx);
    return 0;
}

/* ---- a call's observable behaviour ------------------------------------ */

struct call_log {
    struct fixture *fx;
    struct upstream_call *call;
    int status, headers_calls, body_calls, done_calls;
    char headers[2048];
    struct evbuffer *body;
    bool body_before_headers;
    bool done;
    enum upstream_result result;
    char detail[256];
    int64_t t_start, t_first_body, t_done;
    /* knobs */
    int refuse_every;    /* refuse the first delivery of every Nth piece */
    int resume_after_ms; /* after a refusal */
    bool cancel_on_body, cancel_on_headers, cancel_on_done;
    bool pause_api_on_body;             /* upstream_call_pause() and consume */
    struct upstream_call *cancel_other; /* cancel this one on first body */
    const char *start_path_on_body;     /* start a second call from on_body */
    struct call_log *second;
    /* bookkeeping */
    int pieces;
    bool refused_last, paused_now;
    int body_while_paused;
    struct event *resume_timer;
};

static void log_init(struct call_log *l, struct fixture *fx)
{
    memset(l, 0, sizeof(*l));
    l->fx = fx;
    l->body = evbuffer_new();
    l->t_start = now_ms();
    l->status = -1;
}

static void log_fini(struct call_log *l)
{
    evbuffer_free(l->body);
    if (l->resume_timer)
        event_free(l->resume_timer);
}

static void on_resume_timer(evutil_socket_t fd, short what, void *arg)
{
    struct call_log *l = arg;
    l->paused_now = false;
    upstream_call_resume(l->call);
}

static void schedule_resume(struct call_log *l)
{
    if (!l->resume_timer)
        l->resume_timer = evtimer_new(l->fx->base, on_resume_timer, l);
    struct timeval tv = {0, l->resume_after_ms * 1000};
    evtimer_add(l->resume_timer, &tv);
}

static void cb_headers(struct upstream_call *c, void *arg, int status,
                       const char *const *headers, size_t n)
{
    struct call_log *l = arg;
    l->headers_calls++;
    l->status = status;
    l->headers[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strncat(l->headers, headers[i],
                sizeof(l->headers) - strlen(l->headers) - 2);
        strcat(l->headers, "\n");
    }
    if (l->cancel_on_headers)
        upstream_call_cancel(c);
}

static struct upstream_call *start_call(struct call_log *l, const char *path,
                                        const struct upstream_request *tmpl);

static bool cb_body(struct upstream_call *c, void *arg, const char *data,
                    size_t len)
{
    struct call_log *l = arg;
    l->body_calls++;
    if (l->headers_calls == 0)
        l->body_before_headers = true;
    if (l->paused_now)
        l->body_while_paused++;
    if (!l->t_first_body)
        l->t_first_body = now_ms();
    if (l->refuse_every && !l->refused_last &&
        ++l->pieces % l->refuse_every == 0) {
        l->refused_last = true;
        l->paused_now = true;
        schedule_resume(l);
        return false;
    }
    l->refused_last = false;
    evbuffer_add(l->body, data, len);
    if (l->pause_api_on_body) {
        upstream_call_pause(c);
        l->paused_now = true;
        schedule_resume(l);
    }
    if (l->cancel_other) {
        upstream_call_cancel(l->cancel_other);
        l->cancel_other = NULL;
    }
    if (l->start_path_on_body && l->second) {
        start_call(l->second, l->start_path_on_body, NULL);
        l->start_path_on_body = NULL;
    }
    if (l->cancel_on_body)
        upstream_call_cancel(c);
    return true;
}

static void cb_done(struct upstream_call *c, void *arg,
                    enum upstream_result result, const char *detail)
{
    struct call_log *l = arg;
    l->done_calls++;
    l->done = true;
    l->result = result;
    l->t_done = now_ms();
    snprintf(l->detail, sizeof(l->detail), "%s", detail ? detail : "");
    if (l->cancel_on_done) {
        upstream_call_cancel(c); /* must be a no-op */
        upstream_call_pause(c);
        upstream_call_resume(c);
    }
    event_base_loopbreak(l->fx->base);
}

static const struct upstream_callbacks callbacks = {
    .on_headers = cb_headers, .on_body = cb_body, .on_done = cb_done};

static struct upstream_call *
start_call_port(struct call_log *l, int port, const char *path,
                const struct upstream_request *tmpl)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    struct upstream_request req = {.method = "GET",
                                   .connect_timeout_ms = 2000,
                                   .first_byte_timeout_ms = 5000,
                                   .idle_timeout_ms = 5000};
    if (tmpl)
        req = *tmpl;
    req.url = url;
    req.use_curl = g_use_curl;
    l->t_start = now_ms();
    l->call = upstream_call_start(l->fx->uc, &req, &callbacks, l);
    assert_non_null(l->call);
    return l->call;
}

static struct upstream_call *start_call(struct call_log *l, const char *path,
                                        const struct upstream_request *tmpl)
{
    return start_call_port(l, l->fx->http_port, path, tmpl);
}

static bool body_equals(struct call_log *l, const char *want, size_t len)
{
    size_t have = evbuffer_get_length(l->body);
    if (have != len)
        return false;
    return memcmp(evbuffer_pullup(l->body, -1), want, len) == 0;
}

static char *stream_text(int n, size_t *len)
{
    char *s = malloc((size_t)n * 16 + 1);
    size_t at = 0;
    for (int i = 0; i < n; i++)
        at += (size_t)sprintf(s + at, "data: %d\n\n", i);
    *len = at;
    return s;
}

/* ---- tests ------------------------------------------------------------ */

static void test_json_reply(void **state)
{
    struct fixture *fx = *state;
    struct call_log l;
    log_init(&l, fx);
    start_call(&l, "/json", NULL);
    assert_int_equal(upstream_client_active(fx->uc), 1);
    assert_true(run_until(fx, &l.done, 3000));
    assert_int_equal(l.result, UPSTREAM_DONE);
    assert_int_equal(l.status, 200);
    assert_int_equal(l.headers_calls, 1);
    assert_false(l.body_before_headers);
    assert_non_null(strstr(l.headers, "X-Test: yes\n"));
    assert_null(strstr(l.headers, "HTTP/1.1")); /* no status line */
    assert_null(strchr(l.headers, '\r'));
    assert_true(body_equals(&l, "{\"ok\":true}", 11));
    assert_int_equal(l.done_calls, 1);
    assert_int_equal(upstream_client_active(fx->uc), 0);
    log_fini(&l);
}

static void test_request_body_and_headers(void **state)
{
    struct fixture *fx = *state;
    static const char body[] = "{\"model\":\"m\",\"messages\":[]}";
    const char *headers[] = {"Authorization: Bearer sk-test",
                             "Expect: 100-continue", "Content-Length: 3", NULL};
    struct upstream_request req = {.method = "POST",
                                   .headers = headers,
                                   .body = body,
                                   .body_len = sizeof(body) - 1};
    struct call_log l;
    log_init(&l, fx);
    start_call(&l, "/echo", &req);
    assert_true(run_until(fx, &l.done, 3000));
    assert_int_equal(l.result, UPSTREAM_DONE);
    const char want[] = "POST|application/json|-|Bearer sk-test|"
                        "{\"model\":\"m\",\"messages\":[]}";
    evbuffer_add(l.body, "", 1);
    assert_string_equal((const char *)evbuffer_pullup(l.body, -1), want);
    log_fini(&l);

    /* The caller's Content-Type wins over the JSON default. */
    const char *typed[] = {"content-type: text/plain", NULL};
    req.headers = typed;
    log_init(&l, fx);
    start_call(&l, "/echo", &req);
    assert_true(run_until(fx, &l.done, 3000));
    evbuffer_add(l.body, "", 1);
    assert_non_null(
        strstr((const char *)evbuffer_pullup(l.body, -1), "POST|text/plain|"));
    log_fini(&l);

    /* Other methods keep their verb and body. */
    req.method = "PUT";
    req.headers = NULL;
    log_init(&l, fx);
    start_call(&l, "/echo", &req);
    assert_true(run_until(fx, &l.done, 3000));
    evbuffer_add(l.body, "", 1);
    assert_string_equal((const char *)evbuffer_pullup(l.body, -1),
                        "OTHER|application/json|-|-|"
                        "{\"model\":\"m\",\"messages\":[]}");
    log_fini(&l);
}

static void test_slow_stream_arrives_in_pieces(void **state)
{
    struct fixture *fx = *state;
    struct upstream_request req = {.method = "GET",
                                   .streaming = true,
                                   .first_byte_timeout_ms = 2000,
                                   .idle_timeout_ms = 1000};
    struct call_log l;
    log_init(&l, fx);
    start_call(&l, "/stream?n=6&gap=50", &req);
    assert_true(run_until(fx, &l.done, 5000));
    assert_int_equal(l.result, UPSTREAM_DONE);
    assert_int_equal(l.status, 200);
    assert_non_null(strstr(l.headers, "Content-Type: text/event-stream\n"));
    size_t len;
    char *want = stream_text(6, &len);
    assert_true(body_equals(&l, want, len));
    free(want);
    /* Not buffered whole: pieces came as they were sent. */
    assert_true(l.body_calls >= 4);
    assert_true(l.t_done - l.t_first_body >= 150);
    log_fini(&l);
}

static void test_503_with_body_is_done(void **state)
{
    struct fixture *fx = *state;
    struct call_log l;
    log_init(&l, fx);
    start_call(&l, "/status503", NULL);
    assert_true(run_until(fx, &l.done, 3000));
    assert_int_equal(l.result, UPSTREAM_DONE);
    assert_int_equal(l.status, 503);
    assert_true(body_equals(&l, "overloaded", 10));
    log_fini(&l);
}

static void test_first_byte_timeout(void **state)
{
    struct fixture *fx = *state;
    struct upstream_request req = {
        .method = "GET", .first_byte_timeout_ms = 200, .idle_timeout_ms = 50};
    struct call_log l;
    log_init(&l, fx);
    start_call(&l, "/hang", &req);
    assert_true(run_until(fx, &l.done, 3000));
    assert_int_equal(l.result, UPSTREAM_TIMEOUT);
    assert_non_null(strstr(l.detail, "first byte"));
    int64_t took = l.t_done - l.t_start;
    assert_true(took >= 195);
    assert_true(took <= 300);
    assert_int_equal(l.headers_calls, 0);
    assert_int_equal(upstream_client_active(fx->uc), 0);
    log_fini(&l);
}

static void test_idle_timeout_mid_body(void **state)
{
    struct fixture *fx = *state;
    struct upstream_request req = {.method = "GET",
                                   .streaming = true,
                                   .first_byte_timeout_ms = 2000,
                                   .idle_timeout_ms = 200};
    struct call_log l;
    log_init(&l, fx);
    start_call(&l, "/stall", &req);
    assert_true(run_until(fx, &l.done, 3000));
    assert_int_equal(l.result, UPSTREAM_TIMEOUT);
    assert_non_null(strstr(l.detail, "idle"));
    assert_int_equal(l.status, 200);
    assert_true(body_equals(&l, "data: 0\n\n", 9));
    int64_t took = l.t_done - l.t_first_body;
    assert_true(took >= 195 && took <= 300);
    /* The stalled connection is closed, not kept for reuse. */
    int closes = fx->server_closes;
    bool closed = false;
    for (int i = 0; i < 100 && !closed; i++) {
        run_for(fx, 10);
        closed = fx->server_closes > closes;
    }
    assert_true(closed);
    log_fini(&l);
}

static void test_connect_refused(void **state)
{
    struct fixture *fx = *state;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
    int port = bound_port(s);
    close(s); /* nothing listens there now */

    struct call_log l;
    log_init(&l, fx);
    start_call_port(&l, port, "/json", NULL);
    assert_true(run_until(fx, &l.done, 3000));
    assert_int_equal(l.result, UPSTREAM_CONNECT_ERROR);
    assert_int_equal(l.headers_calls, 0);
    assert_true(strlen(l.detail) > 0);
    log_fini(&l);
}

static void test_reset_before_response(void **state)
{
    struct fixture *fx = *state;
    fx->raw_close_now = true;
    struct call_log l;
    log_init(&l, fx);
    start_call_port(&l, fx->raw_port, "/x", NULL);
    assert_true(run_until(fx, &l.done, 3000));
    assert_int_equal(l.result, UPSTREAM_CONNECT_ERROR);
    assert_int_equal(l.headers_calls, 0);
    log_fini(&l);
}

static void test_server_closes_mid_body(void **state)
{
    struct fixture *fx = *state;
    const char *replies[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "a\r\n0123456789\r\n",
    };
    const char *headers[] = {"Authorization: Bearer sk-secret", NULL};
    struct upstream_request req = {.method = "GET", .headers = headers};
    for (size_t i = 0; i < 2; i++) {
        fx->raw_reply = replies[i];
        struct call_log l;
        log_init(&l, fx);
        start_call_port(&l, fx->raw_port, "/x", &req);
        assert_true(run_until(fx, &l.done, 3000));
        assert_int_equal(l.result, UPSTREAM_BROKEN);
        assert_null(strstr(l.detail, "sk-secret"));
        assert_int_equal(l.status, 200);
        assert_true(body_equals(&l, "0123456789", 10));
        log_fini(&l);
    }
}

static void test_interim_response_resets_headers(void **state)
{
    struct fixture *fx = *state;
    fx->raw_reply = "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: 1\r\n"
                    "\r\nok";
    struct call_log l;
    log_init(&l, fx);
    start_call_port(&l, fx->raw_port, "/x", NULL);
    assert_true(run_until(fx, &l.done, 3000));
    assert_int_equal(l.result, UPSTREAM_DONE);
    assert_int_equal(l.status, 200);
    assert_string_equal(l.headers, "Content-Length: 2\nX-Final: 1\n");
    assert_true(body_equals(&l, "ok", 2));
    log_fini(&l);

    /* No body at all: on_headers still comes, before on_done. */
    fx->raw_reply = "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n";
    log_init(&l, fx);
    start_call_port(&l, fx->raw_port, "/x", NULL);
    assert_true(run_until(fx, &l.done, 3000));
    assert_int_equal(l.result, UPSTREAM_DONE);
    assert_int_equal(l.status, 204);
    assert_int_equal(l.headers_calls, 1);
    assert_int_equal(l.body_calls, 0);
    assert_string_equal(l.headers, "X-A: 1\n");
    log_fini(&l);

    /* A redirect is not followed: it is the final response. */
    fx->raw_reply = "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n"
                    "Content-Length: 0\r\n\r\n";
    log_init(&l, fx);
    start_call_port(&l, fx->raw_port, "/x", NULL);
    assert_true(run_until(fx, &l.done, 3000));
    assert_int_equal(l.result, UPSTREAM_DONE);
    assert_int_equal(l.status, 302);
    log_fini(&l);
}

static void test_oversized_response_headers(void **state)
{
    struct fixture *fx = *state;
    /* 300 KiB of headers in 1 KiB lines: over the client's 256 KiB cap. */
    size_t size = 64 + 300 * 1024 + 64;
    char *reply = malloc(size), *w = reply;
    w += sprintf(w, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 300; i++) {
        w += sprintf(w, "X-Filler-%03d: ", i);
        memset(w, 'x', 1000);
        w += 1000;
        w += sprintf(w, "\r\n");
    }
    sprintf(w, "Content-Length: 0\r\n\r\n");
    fx->raw_reply = reply;
    struct call_log l;
    log_init(&l, fx);
    start_call_port(&l, fx->raw_port, "/x", NULL);
    assert_true(run_until(fx, &l.done, 3000));
    assert_int_equal(l.result, UPSTREAM_BROKEN);
    assert_non_null(strstr(l.detail, "response headers too large"));
    assert_int_equal(l.headers_calls, 0);
    log_fini(&l);
    free(reply);
}

static void test_connect_timeout(void **state)
{
    struct fixture *fx = *state;
    /* A listener that never accepts, with its queue filled: the kernel
     * drops further SYNs, so connecting hangs. */
    int lsn = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lsn, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(lsn, 0), 0);
    int port = bound_port(lsn);
    sin.sin_port = htons((uint16_t)port);
    int fillers[4];
    for (int i = 0; i < 4; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM, 0);
        evutil_make_socket_nonblocking(fillers[i]);
        connect(fillers[i], (struct sockaddr *)&sin, sizeof(sin));
    }
    run_for(fx, 20);

    struct upstream_request req = {.method = "GET", .connect_timeout_ms = 200};
    struct call_log l;
    log_init(&l, fx);
    start_call_port(&l, port, "/x", &req);
    assert_true(run_until(fx, &l.done, 3000));
    assert_int_equal(l.result, UPSTREAM_TIMEOUT);
    int64_t took = l.t_done - l.t_start;
    assert_true(took >= 190 && took <= 400);
    for (int i = 0; i < 4; i++)
        close(fillers[i]);
    close(lsn);
    log_fini(&l);
}

static void test_pause_by_refusing_then_resume(void **state)
{
    struct fixture *fx = *state;
    /* Idle timeout shorter than the pause: pausing must not trip it. */
    struct upstream_request req = {.method = "GET",
                                   .streaming = true,
                                   .first_byte_timeout_ms = 2000,
                                   .idle_timeout_ms = 60};
    struct call_log l;
    log_init(&l, fx);
    l.refuse_every = 3;
    l.resume_after_ms = 100;
    start_call(&l, "/stream?n=12&gap=5", &req);
    assert_true(run_until(fx, &l.done, 10000));
    assert_int_equal(l.result, UPSTREAM_DONE);
    size_t len;
    char *want = stream_text(12, &len);
    assert_true(body_equals(&l, want, len)); /* once each, in order */
    free(want);
    assert_int_equal(l.body_while_paused, 0);
    assert_true(l.pieces >= 3); /* at least one refusal happened */
    log_fini(&l);

    /* Refusing the last (or only) piece must not lose it. */
    const char *paths[] = {"/json", "/stream?n=3&gap=1"};
    for (int i = 0; i < 2; i++) {
        log_init(&l, fx);
        l.refuse_every = 1;
        l.resume_after_ms = 30;
        start_call(&l, paths[i], &req);
        assert_true(run_until(fx, &l.done, 3000));
        assert_int_equal(l.result, UPSTREAM_DONE);
        want = stream_text(3, &len);
        if (i == 0)
            assert_true(body_equals(&l, "{\"ok\":true}", 11));
        else
            assert_true(body_equals(&l, want, len));
        free(want);
        log_fini(&l);
    }
}

static bool refuse_and_resume_inside(struct upstream_call *c, void *arg,
                                     const char *data, size_t len)
{
    struct call_log *l = arg;
    if (l->pieces++ % 2 == 0) {
        upstream_call_resume(c); /* before returning false: not lost */
        return false;
    }
    evbuffer_add(l->body, data, len);
    return true;
}

/* A host name, not an IP literal: resolved (the hosts file maps localhost,
 * possibly to ::1 first, where nothing listens: the next address is
 * tried), then the connection is reused. An unknown name fails cleanly. */
static void test_host_name_is_resolved(void **state)
{
    struct fixture *fx = *state;
    char url[128];
    snprintf(url, sizeof(url), "http://localhost:%d/json", fx->http_port);
    for (int i = 0; i < 2; i++) {
        struct call_log l;
        log_init(&l, fx);
        struct upstream_request req = {
            .url = url, .method = "GET", .use_curl = g_use_curl};
        l.call = upstream_call_start(fx->uc, &req, &callbacks, &l);
        assert_non_null(l.call);
        assert_true(run_until(fx, &l.done, 5000));
        assert_int_equal(l.result, UPSTREAM_DONE);
        assert_true(body_equals(&l, "{\"ok\":true}", 11));
        log_fini(&l);
    }
    assert_int_equal(fx->server_requests, 2);

    snprintf(url, sizeof(url), "http://no-such-host.invalid:%d/json",
             fx->http_port);
    struct call_log l;
    log_init(&l, fx);
    struct upstream_request req = {
        .url = url, .method = "GET", .use_curl = g_use_curl};
    l.call = upstream_call_start(fx->uc, &req, &callbacks, &l);
    assert_true(run_until(fx, &l.done, 15000));
    assert_int_equal(l.result, UPSTREAM_CONNECT_ERROR);
    assert_int_equal(l.headers_calls, 0);
    log_fini(&l);
}

static void test_resume_requested_inside_on_body(void **state)
{
    struct fixture *fx = *state;
    struct upstream_callbacks cb = callbacks;
    cb.on_body = refuse_and_resume_inside;
    struct call_log l;
    log_init(&l, fx);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/stream?n=5&gap=5",
             fx->http_port);
    struct upstream_request req = {
        .url = url, .method = "GET", .streaming = true, .use_curl = g_use_curl};
    l.call = upstream_call_start(fx->uc, &req, &cb, &l);
    assert_true(run_until(fx, &l.done, 3000));
    assert_int_equal(l.result, UPSTREAM_DONE);
    size_t len;
    char *want = stream_text(5, &len);
    assert_true(body_equals(&l, want, len));
    free(want);
    log_fini(&l);
}

static void test_pause_large_body(void **state)
{
    struct fixture *fx = *state;
    const size_t size = 600000;
    struct call_log l;
    log_init(&l, fx);
    l.refuse_every = 2;
    l.resume_after_ms = 2;
    struct upstream_request req = {
        .method = "GET", .streaming = true, .idle_timeout_ms = 1000};
    start_call(&l, "/big?size=600000", &req);
    assert_true(run_until(fx, &l.done, 20000));
    assert_int_equal(l.result, UPSTREAM_DONE);
    assert_int_equal(evbuffer_get_length(l.body), size);
    const unsigned char *b = evbuffer_pullup(l.body, -1);
    for (size_t i = 0; i < size; i++)
        if (b[i] != (unsigned char)('a' + (i * 7 + i / 26) % 26))
            fail_msg("byte %zu differs", i);
    log_fini(&l);

    /* Pausing through the API from on_body (data consumed) works too. */
    log_init(&l, fx);
    l.pause_api_on_body = true;
    l.resume_after_ms = 1;
    start_call(&l, "/big?size=600000", &req);
    assert_true(run_until(fx, &l.done, 20000));
    assert_int_equal(l.result, UPSTREAM_DONE);
    assert_int_equal(evbuffer_get_length(l.body), size);
    assert_int_equal(l.body_while_paused, 0);
    log_fini(&l);
}

static bool wait_server_close(struct fixture *fx, int before, int ms)
{
    for (int waited = 0; waited < ms; waited += 10) {
        if (fx->server_closes > before)
            return true;
        run_for(fx, 10);
    }
    return fx->server_closes > before;
}

static void test_cancel_mid_stream_closes_upstream(void **state)
{
    struct fixture *fx = *state;
    struct upstream_request req = {.method = "GET", .streaming = true};
    struct call_log l;
    log_init(&l, fx);
    l.cancel_on_body = true; /* from inside curl's write callback */
    start_call(&l, "/stream?n=100&gap=30", &req);
    int before = fx->server_closes;
    assert_true(wait_server_close(fx, before, 2000));
    run_for(fx, 100);
    assert_int_equal(l.body_calls, 1);
    assert_int_equal(l.done_calls, 0);
    assert_int_equal(upstream_client_active(fx->uc), 0);
    log_fini(&l);
}

static void on_cancel_timer(evutil_socket_t fd, short what, void *arg)
{
    upstream_call_cancel(arg);
}

static void test_cancel_from_outside(void **state)
{
    struct fixture *fx = *state;
    struct upstream_request req = {.method = "GET", .streaming = true};
    struct call_log l;
    log_init(&l, fx);
    start_call(&l, "/stream?n=100&gap=20", &req);
    bool got_body = false;
    while (!got_body && now_ms() - l.t_start < 2000) {
        run_for(fx, 10);
        got_body = l.body_calls > 0;
    }
    assert_true(got_body);
    int before = fx->server_closes;
    struct event *t = evtimer_new(fx->base, on_cancel_timer, l.call);
    struct timeval tv = {0, 1000};
    evtimer_add(t, &tv);
    assert_true(wait_server_close(fx, before, 2000));
    int bodies = l.body_calls;
    run_for(fx, 100);
    assert_int_equal(l.body_calls, bodies);
    assert_int_equal(l.done_calls, 0);
    event_free(t);
    log_fini(&l);
}

static void test_cancel_in_every_phase(void **state)
{
    struct fixture *fx = *state;
    struct upstream_request req = {.method = "GET", .streaming = true};
    struct call_log a, b, c, d, e;

    /* Right after start, before the connection exists. */
    log_init(&a, fx);
    start_call(&a, "/stream?n=3&gap=10", &req);
    upstream_call_cancel(a.call);
    assert_int_equal(upstream_client_active(fx->uc), 0);

    /* From on_headers (inside curl). */
    log_init(&b, fx);
    b.cancel_on_headers = true;
    start_call(&b, "/stream?n=50&gap=20", &req);

    /* While paused (refused body, resume scheduled far away). */
    log_init(&c, fx);
    c.refuse_every = 1;
    c.resume_after_ms = 900;
    start_call(&c, "/stream?n=50&gap=20", &req);

    /* On_done: cancel/pause/resume there are no-ops. */
    log_init(&d, fx);
    d.cancel_on_done = true;
    start_call(&d, "/json", NULL);

    /* One call's on_body cancels another call. */
    log_init(&e, fx);
    struct call_log victim;
    log_init(&victim, fx);
    start_call(&victim, "/hang", NULL);
    e.cancel_other = victim.call;
    start_call(&e, "/stream?n=2&gap=10", &req);

    /* From on_headers delivered at the end of a body-less response. */
    struct call_log f;
    log_init(&f, fx);
    f.cancel_on_headers = true;
    fx->raw_reply = "HTTP/1.1 204 No Content\r\n\r\n";
    start_call_port(&f, fx->raw_port, "/x", NULL);

    run_for(fx, 300);
    upstream_call_cancel(c.call);
    run_for(fx, 50);

    assert_int_equal(a.headers_calls + a.body_calls + a.done_calls, 0);
    assert_int_equal(b.headers_calls, 1);
    assert_int_equal(b.body_calls + b.done_calls, 0);
    assert_int_equal(c.done_calls, 0);
    assert_int_equal(d.done_calls, 1);
    assert_int_equal(d.result, UPSTREAM_DONE);
    assert_int_equal(e.done_calls, 1);
    assert_int_equal(e.result, UPSTREAM_DONE);
    assert_int_equal(victim.done_calls, 0);
    assert_int_equal(f.headers_calls, 1);
    assert_int_equal(f.done_calls, 0);
    assert_int_equal(upstream_client_active(fx->uc), 0);
    log_fini(&f);
    log_fini(&a);
    log_fini(&b);
    /* c's resume timer is pending: freeing it is enough. */
    log_fini(&c);
    log_fini(&d);
    log_fini(&e);
    log_fini(&victim);
}

static void test_start_from_inside_callbacks(void **state)
{
    struct fixture *fx = *state;
    struct upstream_request req = {.method = "GET", .streaming = true};
    struct call_log first, second;
    log_init(&first, fx);
    log_init(&second, fx);
    first.second = &second;
    first.start_path_on_body = "/json";
    start_call(&first, "/stream?n=3&gap=20", &req);
    assert_true(run_until(fx, &first.done, 3000));
    assert_true(run_until(fx, &second.done, 3000));
    assert_int_equal(first.result, UPSTREAM_DONE);
    assert_int_equal(second.result, UPSTREAM_DONE);
    assert_true(body_equals(&second, "{\"ok\":true}", 11));
    log_fini(&first);
    log_fini(&second);
}

static void test_client_free_with_active_calls(void **state)
{
    struct fixture *fx = *state;
    struct upstream_request req = {.method = "GET", .streaming = true};
    struct call_log l[4];
    const char *paths[] = {"/hang", "/stream?n=100&gap=20", "/stall", "/json"};
    for (int i = 0; i < 4; i++) {
        log_init(&l[i], fx);
        start_call(&l[i], paths[i], &req);
    }
    upstream_call_pause(l[2].call);
    run_for(fx, 100);
    int before = fx->server_closes;
    assert_int_equal(l[3].done_calls, 1);
    assert_int_equal(upstream_client_active(fx->uc), 3);
    upstream_client_free(fx->uc);
    fx->uc = NULL;
    assert_true(wait_server_close(fx, before, 1000));
    for (int i = 0; i < 3; i++)
        assert_int_equal(l[i].done_calls, 0);
    for (int i = 0; i < 4; i++)
        log_fini(&l[i]);
}

static void test_connection_reuse(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < 20; i++) {
        struct call_log l;
        log_init(&l, fx);
        start_call(&l, "/json", NULL);
        assert_true(run_until(fx, &l.done, 3000));
        assert_int_equal(l.result, UPSTREAM_DONE);
        log_fini(&l);
    }
    assert_int_equal(fx->server_requests, 20);
    assert_int_equal(upstream_client_connects(fx->uc), 1);
}

static void test_max_host_connections(void **state)
{
    struct fixture *fx = *state;
    struct upstream_request req = {
        .method = "GET", .streaming = true, .max_host_connections = 2};
    struct call_log l[5];
    for (int i = 0; i < 5; i++) {
        log_init(&l[i], fx);
        start_call(&l[i], "/stream?n=3&gap=20", &req);
    }
    for (int i = 0; i < 5; i++) {
        assert_true(run_until(fx, &l[i].done, 5000));
        assert_int_equal(l[i].result, UPSTREAM_DONE);
        log_fini(&l[i]);
    }
    assert_int_equal(upstream_client_connects(fx->uc), 2);
}

int main(void)
{
    /* As in the gateway: a peer that closed must not kill the process
     * (the raw server writes into connections the client dropped). */
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_json_reply),
        T(test_request_body_and_headers),
        T(test_slow_stream_arrives_in_pieces),
        T(test_503_with_body_is_done),
        T(test_first_byte_timeout),
        T(test_idle_timeout_mid_body),
        T(test_connect_refused),
        T(test_reset_before_response),
        T(test_server_closes_mid_body),
        T(test_interim_response_resets_headers),
        T(test_oversized_response_headers),
        T(test_connect_timeout),
        T(test_pause_by_refusing_then_resume),
        T(test_pause_large_body),
        T(test_resume_requested_inside_on_body),
        T(test_cancel_mid_stream_closes_upstream),
        T(test_cancel_from_outside),
        T(test_cancel_in_every_phase),
        T(test_start_from_inside_callbacks),
        T(test_client_free_with_active_calls),
        T(test_connection_reuse),
        T(test_host_name_is_resolved),
        T(test_max_host_connections),
    };
    int rc = cmocka_run_group_tests_name("native HTTP/1.1 transport", tests,
                                         NULL, NULL);
    g_use_curl = true;
    rc |= cmocka_run_group_tests_name("libcurl transport", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
