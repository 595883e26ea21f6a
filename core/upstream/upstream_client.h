/* Upstream HTTP client, one per worker, driven by the worker's libevent
 * loop. It knows nothing about plugins; the gateway starts calls and
 * reacts to their callbacks.
 *
 * Two transports sit behind this one interface:
 * - upstream_h1.c, sluice's own HTTP/1.1 keep-alive client, for plain
 *   http:// upstreams (local models, sidecars, the mock). It costs a
 *   fraction of libcurl per call (no per-call setup, no poll() before
 *   reuse, no header formatting through curl's printf).
 * - upstream_curl.c, libcurl's multi_socket API, for https:// (TLS, h2)
 *   and for any upstream configured with "http_client": "curl".
 *
 * Callers may call upstream_call_cancel/pause/resume from any callback:
 * both transports defer what cannot run inside their own callbacks.
 */
#ifndef SLUICE_UPSTREAM_CLIENT_H
#define SLUICE_UPSTREAM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct upstream_client;
struct upstream_call;

enum upstream_result {
    UPSTREAM_DONE = 0, /* response complete (any HTTP status) */
    UPSTREAM_CONNECT_ERROR =
        1,                /* refused, unreachable, DNS, reset before response */
    UPSTREAM_TIMEOUT = 2, /* connect, first-byte or idle timeout */
    UPSTREAM_BROKEN = 3,  /* connection cut mid-response */
    UPSTREAM_CANCELLED = 4, /* upstream_call_cancel() */
};

struct upstream_request {
    const char
        *url; /* full URL, e.g. http://127.0.0.1:9099/v1/chat/completions */
    const char *method;         /* "POST" or "GET" */
    const char *const *headers; /* NULL-terminated "Name: value" strings */
    const char *body;           /* copied by upstream_call_start */
    size_t body_len;
    bool streaming; /* forces HTTP/1.1 so pausing reaches TCP */
    uint32_t connect_timeout_ms;
    uint32_t first_byte_timeout_ms; /* request sent → first response byte */
    uint32_t idle_timeout_ms;       /* max gap between response bytes */
    uint32_t
        max_host_connections; /* per-host cap for this call's host (0: none) */
    bool use_curl; /* http:// through libcurl too (https:// always is) */
};

struct upstream_callbacks {
    /* Status line and all headers received. headers: array of n
     * "Name: value" strings without CRLF, valid during the call only. */
    void (*on_headers)(struct upstream_call *c, void *arg, int status,
                       const char *const *headers, size_t n);
    /* A piece of the body. Return false to pause the transfer (nothing of
     * this piece is consumed; it is delivered again after resume). */
    bool (*on_body)(struct upstream_call *c, void *arg, const char *data,
                    size_t len);
    /* Exactly once per call, unless cancelled (then never). `detail` is a
     * short human text for logs (curl's error), never containing secrets. */
    void (*on_done)(struct upstream_call *c, void *arg,
                    enum upstream_result result, const char *detail);
};

struct upstream_client *upstream_client_new(struct event_base *base);
/* Cancels all calls (no on_done) and frees everything. */
void upstream_client_free(struct upstream_client *uc);

struct upstream_call *upstream_call_start(struct upstream_client *uc,
                                          const struct upstream_request *req,
                                          const struct upstream_callbacks *cb,
                                          void *arg);
void upstream_call_pause(struct upstream_call *c);
void upstream_call_resume(struct upstream_call *c);
/* Aborts the transfer and closes its connection; no further callbacks. */
void upstream_call_cancel(struct upstream_call *c);
size_t upstream_client_active(const struct upstream_client *uc);
/* Total connections curl opened (for tests of connection reuse). */
uint64_t upstream_client_connects(const struct upstream_client *uc);

#endif
