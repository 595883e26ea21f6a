/* Request side of the native HTTP/1.1 transport (private to upstream_h1):
 * splitting an http:// URL and serialising a request, head and body, into
 * one buffer so it leaves in one send(). */
#ifndef SLUICE_UPSTREAM_H1_REQUEST_H
#define SLUICE_UPSTREAM_H1_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "upstream_client.h"

struct h1_url {
    const char *authority, *path; /* into the URL; path may be "" */
    size_t authority_len;
};

/* False for anything but http://authority[/path] without userinfo. */
bool h1_split_url(const char *url, struct h1_url *u);

/* The request as bytes on the wire (malloc'd; NULL when out of memory).
 * Framing and hop-by-hop headers given by the caller are dropped: Host,
 * Content-Length and the rest are ours to write. */
char *h1_build_request(const struct upstream_request *req,
                       const struct h1_url *u, size_t *len, bool *is_head);

#endif
