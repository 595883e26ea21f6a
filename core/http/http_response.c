#include "http_response.h"

#include <stdlib.h>
#include <string.h>

enum phase {
    PH_HEADERS,
    PH_BODY_NONE, /* HEADERS returned; DONE comes next */
    PH_BODY_LENGTH,
    PH_BODY_CHUNKED,
    PH_BODY_CLOSE, /* until the peer closes */
    PH_DONE,
    PH_ERROR,
};

static struct http_response_parser *parser_of(llhttp_t *l)
{
    return l->data;
}

/* The whole header block is fed at once, so spans arrive whole; the
 * lengths still add up in case llhttp ever splits one. */
static int on_header_field(llhttp_t *l, const char *at, size_t len)
{
    struct http_response_parser *p = parser_of(l);
    if (p->in_value || p->field_len == 0) {
        p->in_value = false;
        p->field_start = (size_t)(at - p->head.buf);
        p->field_len = 0;
    }
    p->field_len += len;
    return 0;
}

static int on_header_value(llhttp_t *l, const char *at, size_t len)
{
    struct http_response_parser *p = parser_of(l);
    if (!p->in_value) {
        p->in_value = true;
        p->value_start = (size_t)(at - p->head.buf);
        p->value_len = 0;
    } else if (p->head.buf + p->value_start + p->value_len != at) {
        return -1; /* obs-fold (RFC 9112 §5.2): refused, never relayed */
    }
    p->value_len += len;
    return 0;
}

/* "Name: value" into lines_buf. It never overflows: each line of the
 * block had at least ':' and CRLF where we write ": " and a NUL. */
static int on_header_value_complete(llhttp_t *l)
{
    struct http_response_parser *p = parser_of(l);
    if (p->field_len == 0)
        return -1; /* ": value" without a name */
    if (p->n_lines == p->lines_slots) {
        size_t slots = p->lines_slots ? p->lines_slots * 2 : 32;
        const char **lines = realloc(p->lines, slots * sizeof(*lines));
        if (!lines)
            return -1;
        p->lines = lines;
        p->lines_slots = slots;
    }
    size_t used = p->lines_used; /* not strlen of the last line: O(n^2) */
    const char *value = p->in_value ? p->head.buf + p->value_start : "";
    size_t vlen = p->in_value ? p->value_len : 0;
    for (size_t i = 0; i < vlen; i++)
        if (((unsigned char)value[i] < 0x20 && value[i] != '\t') ||
            value[i] == 0x7f)
            return -1; /* a CR or LF here would reach client headers */
    while (vlen && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
        vlen--;
    char *line = p->lines_buf + used;
    memcpy(line, p->head.buf + p->field_start, p->field_len);
    memcpy(line + p->field_len, ": ", 2);
    memcpy(line + p->field_len + 2, value, vlen);
    line[p->field_len + 2 + vlen] = '\0';
    p->lines_used = used + p->field_len + 2 + vlen + 1;
    p->lines[p->n_lines++] = line;
    p->in_value = false;
    p->field_len = 0;
    return 0;
}

static int on_message_complete(llhttp_t *l)
{
    (void)l;
    return HPE_PAUSED; /* a body-less message: stop at its end */
}

static const llhttp_settings_t callbacks = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_message_complete = on_message_complete,
};

void http_response_init(struct http_response_parser *p, size_t max_header_bytes)
{
    memset(p, 0, sizeof(*p));
    p->max_header_bytes = max_header_bytes;
    llhttp_init(&p->llhttp, HTTP_RESPONSE, &callbacks);
    p->llhttp.data = p;
    p->chunks.max_chunk_size = UINT64_MAX;
    http_response_begin(p, false);
}

void http_response_free(struct http_response_parser *p)
{
    free(p->head.buf);
    free(p->lines_buf);
    free(p->lines);
    memset(p, 0, sizeof(*p));
}

static void start_header_block(struct http_response_parser *p)
{
    p->phase = PH_HEADERS;
    p->head.len = 0;
    p->n_lines = 0;
    p->lines_used = 0;
    p->field_len = p->value_len = 0;
    p->in_value = false;
    p->status = 0;
}

void http_response_begin(struct http_response_parser *p, bool no_body)
{
    start_header_block(p);
    p->no_body = no_body;
    p->any_bytes = false;
    p->keep_alive = false;
    p->left = 0;
    p->error = NULL;
    chunked_reset(&p->chunks);
}

bool http_response_started(const struct http_response_parser *p)
{
    return p->any_bytes || p->phase != PH_HEADERS;
}

static enum http_response_status fail(struct http_response_parser *p,
                                      const char *why)
{
    p->phase = PH_ERROR;
    p->error = why;
    return HTTP_RESPONSE_ERROR;
}

/* Body framing per RFC 9112 §6.3, from what llhttp saw in the block. */
static enum http_response_status choose_framing(struct http_response_parser *p)
{
    llhttp_t *l = &p->llhttp;
    bool has_te = (l->flags & F_TRANSFER_ENCODING) != 0;
    bool has_cl = (l->flags & F_CONTENT_LENGTH) != 0;
    p->keep_alive = llhttp_should_keep_alive(l) != 0;
    if (p->no_body || p->status == 204 || p->status == 304) {
        p->phase = PH_BODY_NONE;
    } else if (has_te && has_cl) {
        return fail(p, "both Transfer-Encoding and Content-Length");
    } else if (l->flags & F_CHUNKED) {
        p->phase = PH_BODY_CHUNKED;
    } else if (!has_te && has_cl) {
        p->left = l->content_length;
        p->phase = p->left ? PH_BODY_LENGTH : PH_BODY_NONE;
    } else {
        p->phase = PH_BODY_CLOSE;
        p->keep_alive = false;
    }
    return HTTP_RESPONSE_HEADERS;
}

/* A complete header block is in hdr: parse it. MORE after an interim
 * (1xx) response, which is dropped. */
static enum http_response_status
take_header_block(struct http_response_parser *p)
{
    if (p->lines_cap < p->head.len) {
        char *b = realloc(p->lines_buf, p->head.cap);
        if (!b)
            return fail(p, "out of memory");
        p->lines_buf = b;
        p->lines_cap = p->head.cap;
    }
    llhttp_reset(&p->llhttp);
    llhttp_errno_t e = llhttp_execute(&p->llhttp, p->head.buf, p->head.len);
    if (e != HPE_OK && e != HPE_PAUSED)
        return fail(p, p->llhttp.reason ? p->llhttp.reason
                                        : "malformed response headers");
    if (e == HPE_PAUSED &&
        llhttp_get_error_pos(&p->llhttp) != p->head.buf + p->head.len)
        return fail(p, "malformed response headers");
    p->status = p->llhttp.status_code;
    if (p->status < 100 || p->status > 599)
        return fail(p, "invalid status code");
    if (p->status == 101)
        return fail(p, "upstream switched protocols");
    if (p->status >= 100 && p->status < 200) {
        start_header_block(p); /* 100 Continue, 103 Early Hints... */
        return HTTP_RESPONSE_MORE;
    }
    return choose_framing(p);
}

/* Accumulates the header block; consumes only up to its end. */

/* Two LFs in a row (memchr is vectorised; glibc's memmem sets up a
 * two-way search per call). */
static bool has_lf_lf(const char *s, size_t n)
{
    const char *end = s + n;
    for (const char *p = s; p < end; p++) {
        p = memchr(p, '\n', (size_t)(end - p));
        if (!p || p + 1 >= end)
            return false;
        if (p[1] == '\n')
            return true;
    }
    return false;
}
static enum http_response_status feed_headers(struct http_response_parser *p,
                                              const char *in, size_t len,
                                              size_t *consumed)
{
    *consumed = 0;
    if (len == 0)
        return HTTP_RESPONSE_MORE;
    p->any_bytes = true;
    size_t from = p->head.len ? p->head.len - 1 : 0; /* only new bytes */
    enum http_head_status st =
        http_head_append(&p->head, in, len, p->max_header_bytes, consumed);
    if (st == HTTP_HEAD_NO_MEMORY)
        return fail(p, "out of memory");
    if (st == HTTP_HEAD_TOO_LARGE)
        return fail(p, "response headers too large");
    /* A blank line of bare LFs: such a block would never complete, so fail
     * now rather than at the idle timeout (checked on complete blocks too,
     * so the verdict does not depend on how the bytes were split). */
    if (p->head.len > from && has_lf_lf(p->head.buf + from, p->head.len - from))
        return fail(p, "bare LF line ends in response headers");
    if (st == HTTP_HEAD_MORE)
        return HTTP_RESPONSE_MORE;
    return take_header_block(p);
}

enum http_response_status
http_response_feed(struct http_response_parser *p, const char *in, size_t len,
                   size_t *consumed, const char **data, size_t *data_len)
{
    *consumed = 0;
    size_t used = 0, n;
    enum http_response_status st;
    switch (p->phase) {
    case PH_HEADERS:
        /* Interim responses loop here until the final header block. */
        do {
            st = feed_headers(p, in + *consumed, len - *consumed, &used);
            *consumed += used;
        } while (st == HTTP_RESPONSE_MORE && *consumed < len &&
                 p->phase == PH_HEADERS);
        return st;
    case PH_BODY_NONE:
        p->phase = PH_DONE;
        return HTTP_RESPONSE_DONE;
    case PH_BODY_LENGTH:
        if (p->left == 0) {
            p->phase = PH_DONE;
            return HTTP_RESPONSE_DONE;
        }
        if (len == 0)
            return HTTP_RESPONSE_MORE;
        n = len < p->left ? len : (size_t)p->left;
        p->left -= n;
        *data = in;
        *data_len = n;
        *consumed = n;
        return HTTP_RESPONSE_DATA;
    case PH_BODY_CHUNKED:
        switch (chunked_decode(&p->chunks, in, len, consumed, data, data_len)) {
        case CHUNKED_MORE:
            return HTTP_RESPONSE_MORE;
        case CHUNKED_DATA:
            return HTTP_RESPONSE_DATA;
        case CHUNKED_DONE:
            p->phase = PH_DONE;
            return HTTP_RESPONSE_DONE;
        default:
            return fail(p, p->chunks.error_reason);
        }
    case PH_BODY_CLOSE:
        if (len == 0)
            return HTTP_RESPONSE_MORE;
        *data = in;
        *data_len = len;
        *consumed = len;
        return HTTP_RESPONSE_DATA;
    case PH_DONE:
        return HTTP_RESPONSE_DONE;
    default:
        return HTTP_RESPONSE_ERROR;
    }
}

enum http_response_status http_response_eof(struct http_response_parser *p)
{
    switch (p->phase) {
    case PH_BODY_CLOSE:
    case PH_BODY_NONE:
    case PH_DONE:
        p->phase = PH_DONE;
        return HTTP_RESPONSE_DONE;
    case PH_ERROR:
        return HTTP_RESPONSE_ERROR;
    case PH_HEADERS:
        return fail(p, p->head.len ? "connection closed inside the headers"
                                   : "connection closed before a response");
    default:
        return fail(p, "connection closed before the body ended");
    }
}
