/* Request framing for one connection, with no I/O: accumulates the header
 * block, pre-scans it, lets llhttp parse it, then reads the body (exact
 * Content-Length, or a strict chunked decoder). The socket side lives in
 * http_conn.c; the fuzz target drives this directly.
 *
 * Body framing is decoded here rather than by llhttp because Debian's
 * llhttp 8.1.0 accepts any two bytes after chunk data and a bare CR inside
 * a chunk extension, which lets a front proxy and sluice disagree on where
 * a request ends. */
#ifndef SLUICE_HTTP_PARSE_H
#define SLUICE_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "http_chunked.h"
#include "http_head.h"
#include "http_server.h"

enum http_parse_status {
    HTTP_PARSE_NEED_MORE, /* everything fed was consumed; feed more */
    HTTP_PARSE_HEADERS,   /* header block accepted; a body follows */
    HTTP_PARSE_DONE,      /* request complete; reset before the next one */
    HTTP_PARSE_ERROR,     /* error_status/error_reason say why */
};

struct http_request_parser {
    size_t max_header_bytes, max_headers, max_body_bytes;
    int phase;

    /* The header block, copied once; names, values, method and path point
     * into it (NUL-terminated in place). Kept across requests. */
    struct http_head head;
    struct http_header *headers;
    size_t header_count, headers_cap;
    const char *path, *query;
    size_t url_off, url_len; /* request target inside hdr */
    bool field_open;         /* llhttp is inside a header name */

    char *body; /* NUL-terminated for convenience */
    size_t body_len, body_cap;

    const char *method;
    int http_minor;
    bool keep_alive, expect_continue, is_head;
    int64_t content_length; /* -1 when absent */
    bool chunked;

    int error_status; /* 400, 408, 413, 431 */
    const char *error_reason;

    struct chunked_decoder chunks;

    llhttp_t llhttp;
};

void http_parse_init(struct http_request_parser *p,
                     const struct http_limits *limits);
void http_parse_set_limits(struct http_request_parser *p,
                           const struct http_limits *limits);
/* Forget the finished request; keeps (small) buffers for the next one. */
void http_parse_reset(struct http_request_parser *p);
void http_parse_free(struct http_request_parser *p);

/* Feeds bytes; *consumed gets how many were used. Bytes after a complete
 * request (pipelining) are left unconsumed. HEADERS is returned once, with
 * *consumed ending at the header block, so the caller can arm the body
 * timer and answer Expect: 100-continue before feeding the rest. */
enum http_parse_status http_parse_feed(struct http_request_parser *p,
                                       const char *data, size_t len,
                                       size_t *consumed);

/* True while the body is being read (header block done). */
bool http_parse_in_body(const struct http_request_parser *p);

#endif
