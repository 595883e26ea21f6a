/* HTTP/1.1 server: the listener, the connection cap, drain and the request
 * accessors. Connections themselves live in http_conn.c, request framing
 * in http_parse.c. */
#include "http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/listener.h>

#include "http_conn.h"

/* How long a connection closing after an error keeps draining input. */
#define LINGER_MS 1000
/* Pause after accept() fails (out of fds) before trying again. */
#define ACCEPT_RETRY_MS 100

/* Common timeouts keep same-duration timers in O(1) queues instead of the
 * heap: every connection re-arms one per request. A base holds at most 256
 * distinct ones; past that (many reloads) fall back to a plain timeval. */
static const struct timeval *phase_timeout(struct http_server *s, int kind,
                                           uint32_t ms)
{
    if (!ms)
        return NULL;
    struct timeval *tv = &s->plain_tv[kind];
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
    const struct timeval *common = event_base_init_common_timeout(s->base, tv);
    return common ? common : tv;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int socklen, void *arg)
{
    (void)l;
    (void)socklen;
    struct http_server *s = arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    bool admitted = http_conn_budget_take();
    struct http_conn *c = http_conn_new(s, fd, sa, admitted);
    if (!c)
        return;
    if (!admitted) {
        /* Answer and close rather than leave it in the backlog. */
        http_conn_reject(c, 503, "too many connections");
        return;
    }
    http_conn_start(c);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_server *s = arg;
    if (s->listener && !s->draining)
        evconnlistener_enable(s->listener);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct http_server *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    fprintf(stderr, "sluice http: accept: %s\n",
            evutil_socket_error_to_string(err));
    /* Out of fds or memory: back off instead of spinning on accept(). */
    evconnlistener_disable(l);
    struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
    event_add(s->accept_retry, &tv);
}
/* ---- server ---- */

static void apply_limits(struct http_server *s, const struct http_limits *in)
{
    static const struct http_limits defaults = {
        .header_timeout_ms = 10000,
        .body_timeout_ms = 60000,
        .idle_timeout_ms = 75000,
        .send_timeout_ms = 60000,
        .max_header_bytes = 32 * 1024,
        .max_headers = 100,
        .max_body_bytes = 10 * 1024 * 1024,
    };
    s->limits = in ? *in : defaults;
    /* Zero sizes mean "default"; zero timeouts mean "none". */
    if (!s->limits.max_header_bytes)
        s->limits.max_header_bytes = defaults.max_header_bytes;
    if (!s->limits.max_headers)
        s->limits.max_headers = defaults.max_headers;
    if (!s->limits.max_body_bytes)
        s->limits.max_body_bytes = defaults.max_body_bytes;
    s->tv_header = phase_timeout(s, 0, s->limits.header_timeout_ms);
    s->tv_body = phase_timeout(s, 1, s->limits.body_timeout_ms);
    s->tv_idle = phase_timeout(s, 2, s->limits.idle_timeout_ms);
    s->tv_send = phase_timeout(s, 3, s->limits.send_timeout_ms);
    s->tv_linger = phase_timeout(s, 4, LINGER_MS);
}

/* "host:port", "[v6]:port" or ":port" (all interfaces). */
static bool parse_addr(const char *addr, struct sockaddr_storage *ss,
                       int *sslen, char *err, size_t errlen)
{
    char buf[300];
    if (!addr || strlen(addr) >= sizeof(buf) - 8) {
        snprintf(err, errlen, "invalid listen address");
        return false;
    }
    if (addr[0] == ':')
        snprintf(buf, sizeof(buf), "0.0.0.0%s", addr);
    else
        snprintf(buf, sizeof(buf), "%s", addr);
    *sslen = (int)sizeof(*ss);
    memset(ss, 0, sizeof(*ss));
    if (evutil_parse_sockaddr_port(buf, (struct sockaddr *)ss, sslen) == 0)
        return true;

    /* A host name: resolve it once, at startup. */
    char *colon = strrchr(buf, ':');
    if (!colon || colon == buf || !colon[1]) {
        snprintf(err, errlen, "invalid listen address '%s'", addr);
        return false;
    }
    *colon = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(buf, colon + 1, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "cannot resolve listen address '%s': %s", addr,
                 gai_strerror(rc));
        return false;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (int)res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

struct http_server *http_server_new(struct event_base *base, const char *addr,
                                    const struct http_limits *limits,
                                    http_request_cb on_request, void *arg,
                                    char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    if (!base || !on_request) {
        snprintf(err, errlen, "http_server_new: base and callback required");
        return NULL;
    }
    /* A peer that resets mid-write must cost an EPIPE, not the process. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);

    struct sockaddr_storage ss;
    int sslen;
    if (!parse_addr(addr, &ss, &sslen, err, errlen))
        return NULL;

    struct http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->on_request = on_request;
    s->arg = arg;
    apply_limits(s, limits);
    s->accept_retry = evtimer_new(base, on_accept_retry, s);
    s->listener = evconnlistener_new_bind(
        base, on_accept, s,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT,
        SOMAXCONN, (struct sockaddr *)&ss, sslen);
    if (!s->listener || !s->accept_retry) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        if (s->listener)
            evconnlistener_free(s->listener);
        if (s->accept_retry)
            event_free(s->accept_retry);
        free(s);
        return NULL;
    }
    evconnlistener_set_error_cb(s->listener, on_accept_error);

    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(evconnlistener_get_fd(s->listener),
                    (struct sockaddr *)&bound, &blen) == 0) {
        if (bound.ss_family == AF_INET)
            s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        else if (bound.ss_family == AF_INET6)
            s->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    }
    return s;
}

uint16_t http_server_port(const struct http_server *s)
{
    return s ? s->port : 0;
}

void http_server_stop_accepting(struct http_server *s)
{
    if (!s || s->draining)
        return;
    s->draining = true;
    /* Close the socket, not just pause it: with SO_REUSEPORT the kernel
     * would keep queueing new connections on a paused listener. */
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    event_del(s->accept_retry);
    struct http_conn *c = s->conns;
    while (c) {
        struct http_conn *next = c->next;
        http_conn_drain(c);
        c = next;
    }
}

size_t http_server_open_connections(const struct http_server *s)
{
    return s ? s->open : 0;
}

size_t http_server_active_requests(const struct http_server *s)
{
    return s ? s->active : 0;
}

void http_server_set_limits(struct http_server *s,
                            const struct http_limits *limits)
{
    if (s && limits)
        apply_limits(s, limits);
}

void http_server_free(struct http_server *s)
{
    if (!s)
        return;
    s->draining = true;
    if (s->listener)
        evconnlistener_free(s->listener);
    while (s->conns)
        http_conn_free(s->conns);
    event_free(s->accept_retry);
    free(s->spare_stage);
    free(s);
}
/* ---- request accessors ---- */

const char *http_method(const struct http_exchange *ex)
{
    return ex->conn->req.method ? ex->conn->req.method : "";
}

const char *http_path(const struct http_exchange *ex)
{
    return ex->conn->req.path ? ex->conn->req.path : "";
}

const char *http_query(const struct http_exchange *ex)
{
    return ex->conn->req.query;
}

const char *http_header(const struct http_exchange *ex, const char *name,
                        size_t *len)
{
    const struct http_request_parser *p = &ex->conn->req;
    size_t n = strlen(name);
    for (size_t i = 0; i < p->header_count; i++) {
        const struct http_header *h = &p->headers[i];
        if (h->name_len == n && strncasecmp(h->name, name, n) == 0) {
            if (len)
                *len = h->value_len;
            return h->value;
        }
    }
    if (len)
        *len = 0;
    return NULL;
}

size_t http_header_count(const struct http_exchange *ex)
{
    return ex->conn->req.header_count;
}

const struct http_header *http_header_at(const struct http_exchange *ex,
                                         size_t i)
{
    const struct http_request_parser *p = &ex->conn->req;
    return i < p->header_count ? &p->headers[i] : NULL;
}

const char *http_body(const struct http_exchange *ex, size_t *len)
{
    const struct http_request_parser *p = &ex->conn->req;
    if (len)
        *len = p->body_len;
    return p->body_len ? p->body : "";
}

const char *http_peer(const struct http_exchange *ex)
{
    return ex->conn->peer;
}

uint64_t http_received_ns(const struct http_exchange *ex)
{
    return ex->received_ns;
}
