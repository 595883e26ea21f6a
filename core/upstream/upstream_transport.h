/* What the upstream client's transports share (private to core/upstream_*):
 * every transport's call struct starts with a struct upstream_call, whose
 * ops let upstream_client.c route pause/resume/cancel without knowing
 * which transport owns the call. */
#ifndef SLUICE_UPSTREAM_TRANSPORT_H
#define SLUICE_UPSTREAM_TRANSPORT_H

#include <event2/event.h>

#include "upstream_client.h"

struct upstream_call_ops {
    void (*pause)(struct upstream_call *c);
    void (*resume)(struct upstream_call *c);
    void (*cancel)(struct upstream_call *c);
};

struct upstream_call {
    const struct upstream_call_ops *ops;
};

/* The receive buffer of every upstream socket, set before it connects.
 * Linux autotunes a loopback or LAN receive buffer up to tcp_rmem's max
 * (32 MiB here): a stream the gateway has paused for a slow client would
 * go on filling that much kernel memory per connection before the pause
 * reached the provider. 1 MiB (the kernel doubles it) still carries
 * 20 MB/s at 100 ms round trips, far above any model's output rate. */
#define UPSTREAM_RCVBUF_BYTES (1 << 20)
void upstream_socket_prepare(int fd);

/* libcurl (upstream_curl.c): https://, h2, and http:// on request. */
struct upstream_curl;
struct upstream_curl *upstream_curl_new(struct event_base *base);
void upstream_curl_free(struct upstream_curl *uc);
struct upstream_call *upstream_curl_start(struct upstream_curl *uc,
                                          const struct upstream_request *req,
                                          const struct upstream_callbacks *cb,
                                          void *arg);
size_t upstream_curl_active(const struct upstream_curl *uc);
uint64_t upstream_curl_connects(const struct upstream_curl *uc);

/* Native HTTP/1.1 keep-alive client (upstream_h1.c): plain http://. */
struct upstream_h1;
struct upstream_h1 *upstream_h1_new(struct event_base *base);
void upstream_h1_free(struct upstream_h1 *h);
struct upstream_call *upstream_h1_start(struct upstream_h1 *h,
                                        const struct upstream_request *req,
                                        const struct upstream_callbacks *cb,
                                        void *arg);
size_t upstream_h1_active(const struct upstream_h1 *h);
uint64_t upstream_h1_connects(const struct upstream_h1 *h);

#endif
