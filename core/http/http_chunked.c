#include "http_chunked.h"

#include <stdbool.h>

#include "http_prescan.h"

enum chunk_state {
    CH_SIZE,
    CH_SIZE_BWS, /* whitespace after the size: only ';' may follow */
    CH_EXT,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER_START,
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_LF,
    CH_END_LF,
    CH_DONE,
    CH_ERROR,
};

/* Chunk extensions carry nothing we use; cap them so a peer cannot keep
 * us parsing an endless extension (CVE-2024-22019 in llhttp). */
#define MAX_CHUNK_EXT_BYTES 4096

void chunked_reset(struct chunked_decoder *d)
{
    d->state = CH_SIZE;
    d->left = 0;
    d->digits = 0;
    d->ext_bytes = d->trailer_bytes = d->trailer_lines = 0;
    d->error_status = 0;
    d->error_reason = NULL;
}

static enum chunked_status fail(struct chunked_decoder *d, int status,
                                const char *reason)
{
    d->state = CH_ERROR;
    d->error_status = status;
    d->error_reason = reason;
    return CHUNKED_ERROR;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool is_field_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* The trailer section: field lines we validate, count and drop. */
static enum chunked_status trailer_byte(struct chunked_decoder *d,
                                        unsigned char c)
{
    if (d->max_trailer_bytes && ++d->trailer_bytes > d->max_trailer_bytes)
        return fail(d, 431, "trailers too large");
    switch (d->state) {
    case CH_TRAILER_START:
        if (c == '\r') {
            d->state = CH_END_LF;
            return CHUNKED_MORE;
        }
        if (!http_is_tchar(c))
            return fail(d, 400, "invalid trailer field");
        if (d->max_trailer_lines && ++d->trailer_lines > d->max_trailer_lines)
            return fail(d, 431, "too many trailers");
        d->state = CH_TRAILER_NAME;
        return CHUNKED_MORE;
    case CH_TRAILER_NAME:
        if (c == ':')
            d->state = CH_TRAILER_VALUE;
        else if (!http_is_tchar(c))
            return fail(d, 400, "invalid trailer field name");
        return CHUNKED_MORE;
    case CH_TRAILER_VALUE:
        if (c == '\r')
            d->state = CH_TRAILER_LF;
        else if (is_field_ctl(c))
            return fail(d, 400, "control character in trailer field");
        return CHUNKED_MORE;
    case CH_TRAILER_LF:
        if (c != '\n')
            return fail(d, 400, "bare CR in trailer field");
        d->state = CH_TRAILER_START;
        return CHUNKED_MORE;
    default:
        return fail(d, 400, "invalid chunked body");
    }
}

/* One framing byte (anything but chunk data). Returns ERROR, DONE or
 * MORE (keep going). */
static enum chunked_status framing_byte(struct chunked_decoder *d,
                                        unsigned char c)
{
    int v;
    switch (d->state) {
    case CH_SIZE:
        v = hex_value(c);
        if (v >= 0) {
            /* 16 hex digits fit in 64 bits. */
            if (++d->digits > 16)
                return fail(d, 400, "invalid chunk size");
            d->left = d->left * 16 + (unsigned)v;
            return CHUNKED_MORE;
        }
        if (d->digits == 0)
            return fail(d, 400, "invalid chunk size");
        if (d->left > d->max_chunk_size)
            return fail(d, 413, "body too large");
        if (c == ';')
            d->state = CH_EXT;
        else if (c == '\r')
            d->state = CH_SIZE_LF;
        else if (c == ' ' || c == '\t')
            d->state = CH_SIZE_BWS; /* RFC 9112: BWS before ';' */
        else
            return fail(d, 400, "invalid chunk size");
        return CHUNKED_MORE;
    case CH_SIZE_BWS:
        if (c == ';')
            d->state = CH_EXT;
        else if (c != ' ' && c != '\t')
            return fail(d, 400, "invalid chunk size");
        else if (++d->ext_bytes > MAX_CHUNK_EXT_BYTES)
            return fail(d, 400, "chunk extensions too long");
        return CHUNKED_MORE;
    case CH_EXT:
        if (c == '\r')
            d->state = CH_SIZE_LF;
        else if (is_field_ctl(c))
            return fail(d, 400, "control character in chunk extension");
        else if (++d->ext_bytes > MAX_CHUNK_EXT_BYTES)
            return fail(d, 400, "chunk extensions too long");
        return CHUNKED_MORE;
    case CH_SIZE_LF:
        if (c != '\n')
            return fail(d, 400, "bare CR in chunk size line");
        d->state = d->left ? CH_DATA : CH_TRAILER_START;
        return CHUNKED_MORE;
    case CH_DATA_CR:
        if (c != '\r')
            return fail(d, 400, "chunk data not followed by CRLF");
        d->state = CH_DATA_LF;
        return CHUNKED_MORE;
    case CH_DATA_LF:
        if (c != '\n')
            return fail(d, 400, "chunk data not followed by CRLF");
        d->state = CH_SIZE;
        d->digits = 0;
        d->left = 0;
        return CHUNKED_MORE;
    case CH_END_LF:
        if (c != '\n')
            return fail(d, 400, "bare CR after trailer section");
        d->state = CH_DONE;
        return CHUNKED_DONE;
    default:
        return trailer_byte(d, c);
    }
}

enum chunked_status chunked_decode(struct chunked_decoder *d, const char *in,
                                   size_t len, size_t *consumed,
                                   const char **data, size_t *data_len)
{
    size_t i = 0;
    *consumed = 0;
    if (d->state == CH_DONE)
        return CHUNKED_DONE;
    if (d->state == CH_ERROR)
        return CHUNKED_ERROR;
    while (i < len) {
        if (d->state == CH_DATA) {
            size_t n = len - i;
            if (n > d->left)
                n = (size_t)d->left;
            *data = in + i;
            *data_len = n;
            d->left -= n;
            if (!d->left)
                d->state = CH_DATA_CR;
            *consumed = i + n;
            return CHUNKED_DATA;
        }
        enum chunked_status st = framing_byte(d, (unsigned char)in[i++]);
        if (st != CHUNKED_MORE) {
            *consumed = i;
            return st;
        }
    }
    *consumed = i;
    return CHUNKED_MORE;
}
