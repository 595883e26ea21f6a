/* Decoding of a response body that an upstream compressed although sluice
 * asked it for `Accept-Encoding: identity` (some providers and proxies
 * compress regardless). sluice reads every answer (usage, plugins, the
 * stream relay), so it decodes rather than passing bytes the client could
 * not read once the Content-Encoding header is gone. Decoded output is
 * capped, so a small compressed body cannot expand without bound. */
#ifndef SLUICE_CONTENT_DECODE_H
#define SLUICE_CONTENT_DECODE_H

#include <stdbool.h>
#include <stddef.h>

enum content_coding {
    CODING_IDENTITY = 0,
    CODING_GZIP,        /* gzip, x-gzip */
    CODING_DEFLATE,     /* deflate: zlib-wrapped, or raw as some servers send */
    CODING_UNSUPPORTED, /* br, zstd, compress, a list of codings, ... */
};

enum content_decode_status {
    DECODE_OK = 0,
    DECODE_CORRUPT = -1,   /* not valid data for its coding */
    DECODE_TOO_LARGE = -2, /* decoded output would pass the cap */
    DECODE_NO_MEMORY = -3,
};

/* The coding named by a Content-Encoding value (case-insensitive, spaces
 * around it ignored). An empty value is identity. */
enum content_coding content_coding_parse(const char *value, size_t len);

struct content_decoder;

/* max_out: the most decoded bytes accepted over the whole body. */
struct content_decoder *content_decoder_new(enum content_coding coding,
                                            size_t max_out);
void content_decoder_free(struct content_decoder *d);

/* Receives decoded bytes, in pieces of at most 16 KiB. */
typedef void (*content_sink)(void *arg, const char *data, size_t len);

/* Decodes in[0..n) and hands every decoded byte to sink before returning.
 * After an error, further calls return the same error. */
enum content_decode_status content_decoder_feed(struct content_decoder *d,
                                                const char *in, size_t n,
                                                content_sink sink, void *arg);

/* True once the compressed stream's own end marker was read: a body that
 * ends before it was cut short. */
bool content_decoder_complete(const struct content_decoder *d);

#endif
