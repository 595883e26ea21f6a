/* Accumulates an HTTP/1.x header block (request or response) up to and
 * including its blank line, across reads, within a size cap. Shared by
 * the request parser and the upstream response parser. */
#ifndef SLUICE_HTTP_HEAD_H
#define SLUICE_HTTP_HEAD_H

#include <stddef.h>

enum http_head_status {
    HTTP_HEAD_MORE,      /* all input taken; the block goes on */
    HTTP_HEAD_COMPLETE,  /* buf[0..len) is the whole block */
    HTTP_HEAD_TOO_LARGE, /* max bytes reached without a blank line */
    HTTP_HEAD_NO_MEMORY,
};

/* buf always has room for a NUL after len. */
struct http_head {
    char *buf;
    size_t len, cap;
};

/* Appends from in[0..n); *consumed stops at the end of the block, so what
 * follows it (a body) stays with the caller. */
enum http_head_status http_head_append(struct http_head *h, const char *in,
                                       size_t n, size_t max_bytes,
                                       size_t *consumed);

#endif
