#include "content_decode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define OUT_CHUNK (16 * 1024)

struct content_decoder {
    z_stream z;
    enum content_coding coding;
    size_t max_out, total_out;
    bool started;   /* inflate has produced or consumed something */
    bool raw_tried; /* deflate: fell back to a raw stream already */
    bool complete;
    enum content_decode_status error;
    char out[OUT_CHUNK];
};

static bool token_is(const char *v, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len == n && strncasecmp(v, name, n) == 0;
}

enum content_coding content_coding_parse(const char *value, size_t len)
{
    while (len && (*value == ' ' || *value == '\t')) {
        value++;
        len--;
    }
    while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    if (len == 0 || token_is(value, len, "identity"))
        return CODING_IDENTITY;
    if (token_is(value, len, "gzip") || token_is(value, len, "x-gzip"))
        return CODING_GZIP;
    if (token_is(value, len, "deflate"))
        return CODING_DEFLATE;
    return CODING_UNSUPPORTED;
}

/* windowBits: 15+32 reads a zlib or a gzip header; -15 a raw deflate
 * stream. */
static bool start(struct content_decoder *d, int window_bits)
{
    memset(&d->z, 0, sizeof d->z);
    return inflateInit2(&d->z, window_bits) == Z_OK;
}

struct content_decoder *content_decoder_new(enum content_coding coding,
                                            size_t max_out)
{
    if (coding != CODING_GZIP && coding != CODING_DEFLATE)
        return NULL;
    struct content_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->coding = coding;
    d->max_out = max_out;
    if (!start(d, 15 + 32)) {
        free(d);
        return NULL;
    }
    return d;
}

void content_decoder_free(struct content_decoder *d)
{
    if (!d)
        return;
    inflateEnd(&d->z);
    free(d);
}

/* "deflate" is meant to be zlib-wrapped, but servers long sent raw
 * deflate: if the very first bytes are not a zlib header, start over raw. */
static bool retry_raw(struct content_decoder *d)
{
    if (d->coding != CODING_DEFLATE || d->started || d->raw_tried)
        return false;
    inflateEnd(&d->z);
    d->raw_tried = true;
    return start(d, -15);
}

static enum content_decode_status fail(struct content_decoder *d,
                                       enum content_decode_status st)
{
    d->error = st;
    return st;
}

enum content_decode_status content_decoder_feed(struct content_decoder *d,
                                                const char *in, size_t n,
                                                content_sink sink, void *arg)
{
    if (d->error)
        return d->error;
    const char *const first = in;
    const size_t first_n = n;
    d->z.next_in = (Bytef *)(uintptr_t)in;
    d->z.avail_in = (uInt)n;
    while (d->z.avail_in > 0 && !d->complete) {
        d->z.next_out = (Bytef *)d->out;
        d->z.avail_out = sizeof d->out;
        int rc = inflate(&d->z, Z_NO_FLUSH);
        size_t produced = sizeof d->out - d->z.avail_out;
        if (rc == Z_DATA_ERROR && produced == 0 && retry_raw(d)) {
            d->z.next_in = (Bytef *)(uintptr_t)first;
            d->z.avail_in = (uInt)first_n;
            continue;
        }
        if (rc == Z_MEM_ERROR)
            return fail(d, DECODE_NO_MEMORY);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
            return fail(d, DECODE_CORRUPT);
        if (produced || d->z.avail_in < n)
            d->started = true;
        if (produced > d->max_out - d->total_out)
            return fail(d, DECODE_TOO_LARGE);
        d->total_out += produced;
        if (produced)
            sink(arg, d->out, produced);
        if (rc == Z_STREAM_END)
            d->complete = true;
        else if (rc == Z_BUF_ERROR && produced == 0)
            break; /* needs more input */
    }
    /* Bytes after the end of the compressed stream are not part of it. */
    if (d->complete && d->z.avail_in > 0)
        return fail(d, DECODE_CORRUPT);
    return DECODE_OK;
}

bool content_decoder_complete(const struct content_decoder *d)
{
    return d->complete;
}
