#include "upstream_h1_host.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Host names are resolved again after this. */
#define DNS_TTL_SECONDS 60

/* An IP literal needs no DNS: its address is known at once. */
static void take_numeric_address(struct h1_host *host)
{
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
                                    .ai_socktype = SOCK_STREAM,
                                    .ai_flags = EVUTIL_AI_NUMERICHOST |
                                                EVUTIL_AI_NUMERICSERV};
    struct evutil_addrinfo *res = NULL;
    if (evutil_getaddrinfo(host->name, host->port, &hints, &res) == 0 && res &&
        res->ai_addrlen <= sizeof host->addrs[0]) {
        memcpy(&host->addrs[0], res->ai_addr, res->ai_addrlen);
        host->addr_lens[0] = (socklen_t)res->ai_addrlen;
        host->n_addrs = 1;
        host->numeric = host->have_addr = true;
    }
    if (res)
        evutil_freeaddrinfo(res);
}

struct h1_host *h1_host_new(const char *auth, size_t len, uint32_t cap)
{
    struct h1_host *host = calloc(1, sizeof(*host));
    if (!host)
        return NULL;
    host->cap = cap;
    host->authority = strndup(auth, len);
    /* [v6]:port, name:port or name (port 80) */
    const char *end = auth + len, *port = NULL;
    if (*auth == '[') {
        const char *close = memchr(auth, ']', len);
        if (!close)
            goto fail;
        port = close + 1 < end && close[1] == ':' ? close + 2 : NULL;
        host->name = strndup(auth + 1, (size_t)(close - auth - 1));
    } else {
        const char *colon = memchr(auth, ':', len);
        port = colon ? colon + 1 : NULL;
        host->name = strndup(auth, (size_t)((colon ? colon : end) - auth));
    }
    size_t plen = port ? (size_t)(end - port) : 0;
    if (!host->authority || !host->name || plen >= sizeof host->port ||
        (port && plen == 0))
        goto fail;
    memcpy(host->port, port ? port : "80", port ? plen : 2);
    take_numeric_address(host);
    return host;
fail:
    h1_host_free(host);
    return NULL;
}

void h1_host_free(struct h1_host *host)
{
    if (host->resolving)
        evdns_getaddrinfo_cancel(host->resolving);
    free(host->authority);
    free(host->name);
    free(host);
}

void h1_resolver_free(struct h1_resolver *r)
{
    if (r->dns)
        evdns_base_free(r->dns, 0);
    r->dns = NULL;
}

bool h1_host_address_fresh(const struct h1_host *host, time_t now)
{
    return host->have_addr &&
           (host->numeric || now - host->resolved_at < DNS_TTL_SECONDS);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    struct h1_host *host = arg;
    if (result == EVUTIL_EAI_CANCEL)
        return; /* the client is going away */
    host->resolving = NULL;
    if (result != 0 || !res) {
        char why[160];
        snprintf(why, sizeof why, "could not resolve %s: %s", host->name,
                 evutil_gai_strerror(result));
        host->resolver->done(host, why);
        return;
    }
    host->n_addrs = 0;
    host->cur_addr = 0;
    for (struct evutil_addrinfo *a = res; a && host->n_addrs < H1_MAX_ADDRESSES;
         a = a->ai_next) {
        if (a->ai_addrlen > sizeof host->addrs[0])
            continue;
        memcpy(&host->addrs[host->n_addrs], a->ai_addr, a->ai_addrlen);
        host->addr_lens[host->n_addrs++] = (socklen_t)a->ai_addrlen;
    }
    evutil_freeaddrinfo(res);
    host->have_addr = host->n_addrs > 0;
    struct timeval now;
    event_base_gettimeofday_cached(host->resolver->base, &now);
    host->resolved_at = now.tv_sec;
    host->resolver->done(host, host->have_addr ? NULL : "no usable address");
}

void h1_host_resolve(struct h1_host *host, struct h1_resolver *r)
{
    if (host->resolving)
        return;
    host->resolver = r;
    if (!r->dns) {
        r->dns = evdns_base_new(r->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
        if (!r->dns && (r->dns = evdns_base_new(r->base, 0)) != NULL)
            evdns_base_load_hosts(r->dns, NULL); /* no resolv.conf */
        if (!r->dns) {
            r->done(host, "no DNS resolver available");
            return;
        }
        /* A dead resolver must not hold calls for evdns's default 15 s. */
        evdns_base_set_option(r->dns, "timeout:", "2");
        evdns_base_set_option(r->dns, "attempts:", "2");
    }
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
                                    .ai_socktype = SOCK_STREAM,
                                    .ai_protocol = IPPROTO_TCP,
                                    .ai_flags = EVUTIL_AI_ADDRCONFIG};
    /* May call on_resolved before returning (hosts file, cache). */
    host->resolving = evdns_getaddrinfo(r->dns, host->name, host->port, &hints,
                                        on_resolved, host);
}

bool h1_host_next_address(struct h1_host *host, unsigned *tries)
{
    if (++*tries >= host->n_addrs)
        return false;
    host->cur_addr = (host->cur_addr + 1) % host->n_addrs;
    return true;
}
