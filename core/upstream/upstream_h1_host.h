/* Hosts of the native HTTP/1.1 transport (private to upstream_h1): one per
 * authority and connection cap, with its addresses (an IP literal, or
 * names resolved with evdns and refreshed after a TTL) and its connection
 * pool, which upstream_h1.c manages. */
#ifndef SLUICE_UPSTREAM_H1_HOST_H
#define SLUICE_UPSTREAM_H1_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/dns.h>
#include <event2/event.h>

/* Addresses kept per name; a refused one makes us try the next. */
#define H1_MAX_ADDRESSES 4

struct h1_host;
struct h1_conn;
struct h1_call;
struct upstream_h1;

/* One per client: the DNS base is made on the first name to resolve. */
struct h1_resolver {
    struct event_base *base;
    struct evdns_base *dns;
    /* A resolution ended: error is NULL on success. */
    void (*done)(struct h1_host *host, const char *error);
};

struct h1_host {
    struct h1_host *next;
    struct upstream_h1 *h;
    char *authority; /* "name:port" as in the URL: the Host header */
    char *name;
    char port[8];
    bool numeric;   /* an IP literal: no DNS */
    bool have_addr; /* addrs[] is valid */
    struct sockaddr_storage addrs[H1_MAX_ADDRESSES];
    socklen_t addr_lens[H1_MAX_ADDRESSES];
    unsigned n_addrs, cur_addr; /* cur_addr: the one to connect to */
    time_t resolved_at;
    struct h1_resolver *resolver;
    struct evdns_getaddrinfo_request *resolving;
    uint32_t cap;            /* max connections (0: none) */
    size_t open;             /* connections, connecting ones included */
    struct h1_conn *idle;    /* LIFO: the warmest connection first */
    struct h1_call *waiting; /* FIFO of calls without a connection */
    struct h1_call *waiting_tail;
};

/* NULL when the authority is malformed or memory runs out. */
struct h1_host *h1_host_new(const char *authority, size_t len, uint32_t cap);
/* Cancels a resolution under way; the pool must be empty. */
void h1_host_free(struct h1_host *host);
void h1_resolver_free(struct h1_resolver *r);

bool h1_host_address_fresh(const struct h1_host *host, time_t now);
/* Starts resolving unless under way; r->done may run before it returns. */
void h1_host_resolve(struct h1_host *host, struct h1_resolver *r);
/* After a failed connect: moves to the next address, false when *tries
 * says every one was tried. */
bool h1_host_next_address(struct h1_host *host, unsigned *tries);

#endif
