/* A request answered later: after a latency, as a paced stream, or never
 * (hang). The call owns its timer and buffers. It ends in exactly one
 * way: reply sent, stream finished, connection reset on purpose, or the
 * client went away (mock_call_client_gone, from the close callback). */
#ifndef SLUICE_MOCK_CALL_H
#define SLUICE_MOCK_CALL_H

#include <stdbool.h>

#include "mock_faults.h"
#include "mock_openai.h"

struct event;
struct evbuffer;
struct evhttp_request;
struct mock_conn;
struct mock_worker;

enum mock_call_kind {
    MOCK_CALL_REPLY,  /* send status + body after the delay */
    MOCK_CALL_STREAM, /* SSE stream of gen, paced by f */
    MOCK_CALL_HANG,   /* never answer */
};

struct mock_call {
    struct mock_worker *worker;
    struct mock_conn *conn;
    struct evhttp_request *req;
    struct event *timer;
    struct event *watch; /* client gone? read event, then poll timer */
    int fd;              /* the client's socket (evhttp owns it) */
    enum mock_call_kind kind;
    int status;           /* REPLY */
    struct evbuffer *out; /* REPLY: the body; STREAM: one event at a time */
    struct mock_gen gen;  /* STREAM */
    struct mock_faults f; /* STREAM: pacing and faults */
    bool started;         /* STREAM: headers sent */
    long sent;            /* STREAM: text pieces sent */
    bool resetting;       /* STREAM: next timer tick resets the TCP conn */
    int flush_waits;
};

/* Registers a call for req on conn; NULL on allocation failure. */
struct mock_call *mock_call_new(struct mock_worker *w, struct mock_conn *conn,
                                struct evhttp_request *req,
                                enum mock_call_kind kind);
/* Runs the call after delay_ms (now if 0). A hang only waits. */
void mock_call_start(struct mock_call *c, long delay_ms);
/* The connection closed under the call: free it and, when evhttp has
 * disowned the request, the request too. */
void mock_call_client_gone(struct mock_call *c);

#endif
