/* Framing of one upstream HTTP/1.x response, with no I/O: the header block
 * (llhttp in response mode, interim 1xx responses skipped), then the body
 * by Content-Length, strict chunked decoding, or until the connection
 * closes. Body bytes come out as spans of the caller's input, never
 * copied. The socket side is upstream_h1.c; a fuzz target drives this. */
#ifndef SLUICE_HTTP_RESPONSE_H
#define SLUICE_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "http_chunked.h"
#include "http_head.h"

enum http_response_status {
    HTTP_RESPONSE_MORE,    /* input consumed; feed more */
    HTTP_RESPONSE_HEADERS, /* final status and headers ready */
    HTTP_RESPONSE_DATA,    /* a span of body bytes */
    HTTP_RESPONSE_DONE,    /* response complete */
    HTTP_RESPONSE_ERROR,   /* error says why */
};

struct http_response_parser {
    size_t max_header_bytes;
    int phase;
    bool no_body; /* answer to HEAD */

    /* Header block as received, then the headers as "Name: value"
     * strings (NUL-terminated) in lines_buf, listed by lines[]. */
    struct http_head head;
    char *lines_buf;
    size_t lines_cap, lines_used; /* lines_used: bytes of lines_buf taken */
    const char **lines;
    size_t n_lines, lines_slots;
    size_t field_start, field_len, value_start, value_len;
    bool in_value;
    bool any_bytes; /* of this response, interim ones included */

    int status;
    bool keep_alive; /* the connection may carry another request */
    uint64_t left;   /* Content-Length bytes still to come */
    struct chunked_decoder chunks;
    const char *error;

    llhttp_t llhttp;
};

void http_response_init(struct http_response_parser *p,
                        size_t max_header_bytes);
void http_response_free(struct http_response_parser *p);
/* Before each response; `no_body` for the answer to a HEAD request. */
void http_response_begin(struct http_response_parser *p, bool no_body);

/* Feeds bytes; *consumed says how many were used. Returns after the header
 * block (HEADERS), after each body span (DATA) and at the end (DONE). */
enum http_response_status
http_response_feed(struct http_response_parser *p, const char *in, size_t len,
                   size_t *consumed, const char **data, size_t *data_len);

/* The peer closed the connection: DONE when that ends the body (no length
 * given), ERROR when the response was cut short. */
enum http_response_status http_response_eof(struct http_response_parser *p);

/* True once any byte of the response was fed. */
bool http_response_started(const struct http_response_parser *p);

#endif
