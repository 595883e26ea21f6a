/* Strict validation of a raw HTTP/1.x request header block, run before
 * llhttp sees it. llhttp 8.1.0 (Debian) accepts bare CR, bare LF and
 * obs-fold, which are request-smuggling vectors; this closes them and
 * checks the message framing headers. Pure: no I/O, no allocation. */
#ifndef SLUICE_HTTP_PRESCAN_H
#define SLUICE_HTTP_PRESCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_prescan_result {
    bool ok;
    int status;         /* 400 or 431 when !ok, 0 when ok */
    const char *reason; /* static text for the error body; NULL when ok */
    /* Facts about the accepted block, valid when ok: */
    size_t header_count;
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool expect_continue;   /* Expect: 100-continue */
    int http_minor;         /* 0 or 1 */
};

/* block: request line + header lines, ending with the first CRLFCRLF
 * (included in len). Leading CRLFs before the request line are skipped
 * (RFC 9112 §2.2). Over max_header_bytes or max_headers → 431. */
struct http_prescan_result http_prescan(const char *block, size_t len,
                                        size_t max_header_bytes,
                                        size_t max_headers);

/* RFC 9110 tchar: the bytes allowed in a method or header name. */
bool http_is_tchar(unsigned char c);

#endif
