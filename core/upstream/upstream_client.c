/* Picks the transport for each upstream call and routes the call's
 * pause/resume/cancel to it. Plain http:// goes to the native HTTP/1.1
 * client unless the upstream asks for libcurl; everything else (https://,
 * so TLS and h2) goes to libcurl. */
#include "upstream_client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>

#include "upstream_transport.h"

struct upstream_client {
    struct upstream_h1 *h1;
    struct upstream_curl *curl;
};

struct upstream_client *upstream_client_new(struct event_base *base)
{
    struct upstream_client *uc = calloc(1, sizeof(*uc));
    if (!uc)
        return NULL;
    uc->h1 = upstream_h1_new(base);
    uc->curl = upstream_curl_new(base);
    if (!uc->h1 || !uc->curl) {
        upstream_client_free(uc);
        return NULL;
    }
    return uc;
}

void upstream_client_free(struct upstream_client *uc)
{
    if (!uc)
        return;
    upstream_h1_free(uc->h1);
    upstream_curl_free(uc->curl);
    free(uc);
}

static bool native_transport_fits(const struct upstream_request *req)
{
    return !req->use_curl && strncasecmp(req->url, "http://", 7) == 0;
}

struct upstream_call *upstream_call_start(struct upstream_client *uc,
                                          const struct upstream_request *req,
                                          const struct upstream_callbacks *cb,
                                          void *arg)
{
    if (!uc || !req || !req->url || !cb)
        return NULL;
    if (native_transport_fits(req))
        return upstream_h1_start(uc->h1, req, cb, arg);
    return upstream_curl_start(uc->curl, req, cb, arg);
}

void upstream_call_pause(struct upstream_call *c)
{
    if (c)
        c->ops->pause(c);
}

void upstream_call_resume(struct upstream_call *c)
{
    if (c)
        c->ops->resume(c);
}

void upstream_call_cancel(struct upstream_call *c)
{
    if (c)
        c->ops->cancel(c);
}

size_t upstream_client_active(const struct upstream_client *uc)
{
    return uc ? upstream_h1_active(uc->h1) + upstream_curl_active(uc->curl) : 0;
}

uint64_t upstream_client_connects(const struct upstream_client *uc)
{
    return uc ? upstream_h1_connects(uc->h1) + upstream_curl_connects(uc->curl)
              : 0;
}

void upstream_socket_prepare(int fd)
{
    int one = 1, rcvbuf = UPSTREAM_RCVBUF_BYTES;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
}
