/* One client connection of the HTTP server: the I/O state machine behind
 * http_server.h (reading and framing requests, timers, keep-alive and
 * pipelining, writing responses, backpressure, disconnects). Internal to
 * http_server.c and http_conn.c; the gateway only sees http_server.h. */
#ifndef SLUICE_HTTP_CONN_H
#define SLUICE_HTTP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "http_parse.h"
#include "http_server.h"

struct sockaddr;

enum conn_state {
    CONN_IDLE,     /* no byte of the next request yet */
    CONN_READING,  /* request arriving: header, then body */
    CONN_HANDLER,  /* handed to the gateway, response not finished */
    CONN_FLUSHING, /* response finished; keep-alive once it is written */
    CONN_CLOSING,  /* last response queued; close once written */
    CONN_LINGER,   /* write side shut; draining input before close */
};

enum timer_phase { TP_NONE, TP_IDLE, TP_HEADER, TP_BODY, TP_LINGER };

struct http_conn;

/* One request/response. Embedded in its connection (one exchange at a time
 * per connection), so a request costs no allocation of its own. */
struct http_exchange {
    struct http_conn *conn;
    bool dispatched, finished, dead, headers_sent, streaming;
    http_close_cb close_cb;
    void *close_arg;
    http_drain_cb drain_cb;
    void *drain_arg;
    size_t drain_low;
    uint64_t received_ns;
};

/* One client connection and its parse state, reused across keep-alive
 * requests. */
struct http_conn {
    struct http_server *srv;
    struct http_conn *prev, *next;
    struct bufferevent *bev; /* output side: buffering, send timeout, drain */
    struct event *rd;        /* input side: our own recv() (see on_readable) */
    struct event *timer;
    struct event *deferred;   /* created on first use */
    struct event *flush_soon; /* stream output: one write per loop pass */
    enum conn_state state;
    enum timer_phase timer_phase;
    bool keep_alive;    /* for the response being written */
    bool chunked_out;   /* the stream uses chunked framing */
    bool close_after;   /* server draining: close after this response */
    bool linger_wanted; /* our error response may race unread input */
    bool peer_eof;
    bool read_paused;  /* rd is not pending (EOF, or too much pipelined) */
    bool write_armed;  /* output left over: the bufferevent writes it */
    bool write_failed; /* a direct write hit EPIPE/ECONNRESET */
    bool counted;      /* holds a slot of the connection budget */
    bool flush_queued; /* flush_soon is active for this loop pass */
    char *stage;       /* output not yet handed to the bufferevent */
    size_t staged;
    const struct timeval *tv_header, *tv_body, *tv_idle;
    size_t lingered;
    struct http_exchange ex;
    struct http_request_parser req;
    char peer[64];
};

/* Per worker thread: the listener and its connections. */
struct http_server {
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *accept_retry;
    struct http_limits limits;
    const struct timeval *tv_header, *tv_body, *tv_idle, *tv_send, *tv_linger;
    struct timeval plain_tv[5]; /* if common timeouts run out */
    http_request_cb on_request;
    void *arg;
    struct http_conn *conns;
    size_t open, active;
    bool draining;
    uint16_t port;
    char *spare_stage; /* one idle connection's output stage, for reuse */
    time_t date_sec;
    char date[40];
};

/* Accepted socket → connection (owns fd from here on, even on failure).
 * counted: it holds a slot of the process-wide connection budget. */
struct http_conn *http_conn_new(struct http_server *s, evutil_socket_t fd,
                                const struct sockaddr *sa, bool counted);
/* Starts waiting for the first request (idle timer). */
void http_conn_start(struct http_conn *c);
/* Answers with a JSON error and closes, without reading a request (the
 * connection cap's 503). */
void http_conn_reject(struct http_conn *c, int status, const char *reason);
/* Server draining: idle connections close now, busy ones after their
 * current response. May free c. */
void http_conn_drain(struct http_conn *c);
/* Closes now; an in-flight exchange gets its close callback. */
void http_conn_free(struct http_conn *c);

/* Takes a budget slot; false when the cap is reached. */
bool http_conn_budget_take(void);

#endif
