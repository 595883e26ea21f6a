/* Strict incremental decoder for chunked transfer coding (RFC 9112 §7.1),
 * shared by the request parser and the upstream response parser. CRLF is
 * required everywhere; extensions and trailers are validated, capped and
 * dropped. It never copies: data spans point into the caller's input.
 *
 * Why not llhttp's: Debian's llhttp 8.1.0 accepts any two bytes after
 * chunk data and a bare CR inside a chunk extension, which lets two HTTP
 * hops disagree on where a message ends. */
#ifndef SLUICE_HTTP_CHUNKED_H
#define SLUICE_HTTP_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

enum chunked_status {
    CHUNKED_MORE,  /* all input consumed; feed more */
    CHUNKED_DATA,  /* a span of body bytes (already consumed) */
    CHUNKED_DONE,  /* last chunk and trailer section read */
    CHUNKED_ERROR, /* error_status and error_reason say why */
};

struct chunked_decoder {
    /* limits, set by the caller */
    uint64_t max_chunk_size; /* bigger sizes fail with status 413 */
    size_t max_trailer_bytes, max_trailer_lines; /* beyond: 431; 0: none */

    int state;
    uint64_t left; /* data bytes left in the current chunk */
    unsigned digits;
    size_t ext_bytes, trailer_bytes, trailer_lines;
    int error_status; /* 400, 413 or 431 */
    const char *error_reason;
};

/* Starts a new body; keeps the limits. */
void chunked_reset(struct chunked_decoder *d);

/* Decodes from in[0..len). *consumed counts every byte used, data
 * included. Stops after each data span so the caller can take it. */
enum chunked_status chunked_decode(struct chunked_decoder *d, const char *in,
                                   size_t len, size_t *consumed,
                                   const char **data, size_t *data_len);

#endif
