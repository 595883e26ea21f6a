/* HTTP/1.1 server on libevent bufferevents + llhttp, one instance per
 * worker thread. It owns sockets, parsing, timeouts, keep-alive and
 * backpressure; it knows nothing about LLMs. The gateway sees one
 * `struct http_exchange` per request and answers it through this API.
 *
 * Threading: everything here runs on the listener's event_base thread,
 * except http_conn_budget_*, which are process-wide atomics.
 */
#ifndef SLUICE_HTTP_SERVER_H
#define SLUICE_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct http_server;
struct http_exchange;

struct http_limits {
    uint32_t header_timeout_ms; /* first byte to end of headers */
    uint32_t body_timeout_ms;   /* end of headers to end of body */
    uint32_t idle_timeout_ms;   /* keep-alive idle between requests */
    uint32_t send_timeout_ms;   /* client not reading our response */
    size_t max_header_bytes;    /* request line + headers; over → 431 */
    size_t max_headers;         /* header count; over → 431 */
    size_t max_body_bytes;      /* over → 413 */
};

struct http_header {
    const char *name; /* NUL-terminated, as received */
    const char *value;
    size_t name_len, value_len;
};

/* Called once per complete request (headers and body received). The
 * exchange stays valid until the response is finished or on_close fired. */
typedef void (*http_request_cb)(struct http_exchange *ex, void *arg);
/* The client went away (or a timeout hit) before the response finished.
 * After this returns the exchange is freed; do not touch it again. */
typedef void (*http_close_cb)(struct http_exchange *ex, void *arg);
/* The output buffer drained below the low-water mark (streaming). */
typedef void (*http_drain_cb)(struct http_exchange *ex, void *arg);

/* Process-wide connection cap shared by all workers' servers. */
void http_conn_budget_set(uint32_t max_connections);
uint32_t http_conn_budget_in_use(void);

/* Binds addr ("127.0.0.1:8080", "[::1]:8080", ":8080") with SO_REUSEPORT
 * so every worker can bind the same address. Returns NULL with err set. */
struct http_server *http_server_new(struct event_base *base, const char *addr,
                                    const struct http_limits *limits,
                                    http_request_cb on_request, void *arg,
                                    char *err, size_t errlen);
/* Port actually bound (useful with port 0 in tests). */
uint16_t http_server_port(const struct http_server *s);
/* Stop accepting; keep-alive connections close after their current
 * response; idle ones close now. */
void http_server_stop_accepting(struct http_server *s);
/* Connections still open (in flight or idle). */
size_t http_server_open_connections(const struct http_server *s);
size_t http_server_active_requests(const struct http_server *s);
/* Replace limits for connections accepted from now on (reload). */
void http_server_set_limits(struct http_server *s,
                            const struct http_limits *limits);
/* Closes every connection and frees the server. */
void http_server_free(struct http_server *s);

/* ---- request accessors ---- */
const char *http_method(const struct http_exchange *ex); /* "POST" */
const char *http_path(const struct http_exchange *ex);   /* no query */
const char *http_query(const struct http_exchange *ex);  /* NULL if none */
/* Case-insensitive; NULL when absent. */
const char *http_header(const struct http_exchange *ex, const char *name,
                        size_t *len);
size_t http_header_count(const struct http_exchange *ex);
const struct http_header *http_header_at(const struct http_exchange *ex,
                                         size_t i);
const char *http_body(const struct http_exchange *ex, size_t *len);
const char *http_peer(const struct http_exchange *ex); /* "ip:port" */
/* Monotonic ns when the first byte of this request arrived. */
uint64_t http_received_ns(const struct http_exchange *ex);

/* Install before returning from http_request_cb if the request may outlive
 * the callback (async upstream call). */
void http_set_close_cb(struct http_exchange *ex, http_close_cb cb, void *arg);

/* ---- responses: either one complete reply, or a stream ---- */
/* headers: "Name: value\r\n" lines (may be NULL). Content-Length, Date,
 * Connection are added by the server. */
void http_reply(struct http_exchange *ex, int status, const char *headers,
                const char *body, size_t body_len);
/* Starts a chunked response (Transfer-Encoding: chunked). */
void http_stream_start(struct http_exchange *ex, int status,
                       const char *headers);
/* Queues one chunk. Returns bytes now waiting in the output buffer, so the
 * caller can apply backpressure against a high-water mark. */
size_t http_stream_write(struct http_exchange *ex, const char *data,
                         size_t len);
/* Calls cb once when the output buffer drops to <= low_water bytes. */
void http_stream_on_drain(struct http_exchange *ex, size_t low_water,
                          http_drain_cb cb, void *arg);
/* Sends the final chunk; the exchange is freed once written. */
void http_stream_end(struct http_exchange *ex);
bool http_headers_sent(const struct http_exchange *ex);

/* Reason phrase for a status code ("Too Many Requests"). */
const char *http_status_text(int status);

#endif
