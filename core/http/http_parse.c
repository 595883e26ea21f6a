#include "http_parse.h"

#include <stdlib.h>
#include <string.h>

#include "http_prescan.h"

enum phase { PH_HEADERS, PH_BODY_LENGTH, PH_BODY_CHUNKED, PH_DONE, PH_ERROR };

/* Up-front body reservation for a declared Content-Length; beyond this the
 * buffer grows as bytes arrive, so a lying client costs us nothing. */
#define BODY_PREALLOC_MAX (256 * 1024)
/* Buffers above this are released between requests so idle keep-alive
 * connections stay small. */
#define BODY_KEEP_MAX (64 * 1024)

static struct http_request_parser *parser_of(llhttp_t *l)
{
    return l->data;
}

static int on_url(llhttp_t *l, const char *at, size_t len)
{
    struct http_request_parser *p = parser_of(l);
    if (p->url_len == 0)
        p->url_off = (size_t)(at - p->head.buf);
    p->url_len += len;
    return 0;
}

/* The whole header block is one buffer, so each span normally arrives in
 * one call; appending keeps us correct if llhttp ever splits one. */
static int on_header_field(llhttp_t *l, const char *at, size_t len)
{
    struct http_request_parser *p = parser_of(l);
    if (!p->field_open) {
        if (p->header_count == p->headers_cap)
            return -1; /* more than the pre-scan counted: inconsistent */
        struct http_header *h = &p->headers[p->header_count++];
        h->name = at;
        h->name_len = 0;
        h->value = NULL;
        h->value_len = 0;
        p->field_open = true;
    }
    p->headers[p->header_count - 1].name_len += len;
    return 0;
}

static int on_header_field_complete(llhttp_t *l)
{
    parser_of(l)->field_open = false;
    return 0;
}

static int on_header_value(llhttp_t *l, const char *at, size_t len)
{
    struct http_request_parser *p = parser_of(l);
    if (p->header_count == 0)
        return -1;
    struct http_header *h = &p->headers[p->header_count - 1];
    if (!h->value)
        h->value = at;
    h->value_len += len;
    return 0;
}

static int on_headers_complete(llhttp_t *l)
{
    struct http_request_parser *p = parser_of(l);
    p->method = llhttp_method_name((llhttp_method_t)l->method);
    p->is_head = l->method == HTTP_HEAD;
    /* We never switch protocols; after an Upgrade request the peer may
     * start talking something else, so do not read another request. */
    p->keep_alive = llhttp_should_keep_alive(l) && !l->upgrade;
    return 0;
}

static int on_message_complete(llhttp_t *l)
{
    (void)l;
    return HPE_PAUSED; /* stop exactly at the end of this request */
}

static const llhttp_settings_t llhttp_callbacks = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

void http_parse_set_limits(struct http_request_parser *p,
                           const struct http_limits *limits)
{
    p->max_header_bytes = limits->max_header_bytes;
    p->max_headers = limits->max_headers;
    p->max_body_bytes = limits->max_body_bytes;
    p->chunks.max_trailer_bytes = limits->max_header_bytes;
    p->chunks.max_trailer_lines = limits->max_headers;
}

void http_parse_init(struct http_request_parser *p,
                     const struct http_limits *limits)
{
    memset(p, 0, sizeof(*p));
    http_parse_set_limits(p, limits);
    llhttp_init(&p->llhttp, HTTP_REQUEST, &llhttp_callbacks);
    p->llhttp.data = p;
    http_parse_reset(p);
}

void http_parse_reset(struct http_request_parser *p)
{
    if (p->body_cap > BODY_KEEP_MAX) {
        free(p->body);
        p->body = NULL;
        p->body_cap = 0;
    }
    p->phase = PH_HEADERS;
    p->head.len = 0;
    p->header_count = 0;
    p->field_open = false;
    p->path = p->query = NULL;
    p->url_off = p->url_len = 0;
    p->body_len = 0;
    p->method = NULL;
    p->http_minor = 1;
    p->keep_alive = p->expect_continue = p->is_head = p->chunked = false;
    p->content_length = -1;
    p->error_status = 0;
    p->error_reason = NULL;
    chunked_reset(&p->chunks);
}

void http_parse_free(struct http_request_parser *p)
{
    free(p->head.buf);
    free(p->headers);
    free(p->body);
    memset(p, 0, sizeof(*p));
}

bool http_parse_in_body(const struct http_request_parser *p)
{
    return p->phase == PH_BODY_LENGTH || p->phase == PH_BODY_CHUNKED;
}

static enum http_parse_status fail(struct http_request_parser *p, int status,
                                   const char *reason)
{
    p->phase = PH_ERROR;
    p->error_status = status;
    p->error_reason = reason;
    return HTTP_PARSE_ERROR;
}

/* Geometric growth, never beyond what the body cap can need. */
static bool body_reserve(struct http_request_parser *p, size_t need)
{
    if (need <= p->body_cap)
        return true;
    size_t cap = p->body_cap ? p->body_cap : 4096;
    while (cap < need)
        cap *= 2;
    if (cap > p->max_body_bytes + 1)
        cap = p->max_body_bytes + 1;
    if (cap < need)
        cap = need;
    char *b = realloc(p->body, cap);
    if (!b)
        return false;
    p->body = b;
    p->body_cap = cap;
    return true;
}

static void body_append(struct http_request_parser *p, const char *data,
                        size_t n)
{
    memcpy(p->body + p->body_len, data, n);
    p->body_len += n;
    p->body[p->body_len] = '\0';
}

/* Trims the value, NUL-terminates names, values and the path in place, and
 * splits off the query. Runs after llhttp is done with the block. */
static void terminate_strings(struct http_request_parser *p)
{
    for (size_t i = 0; i < p->header_count; i++) {
        struct http_header *h = &p->headers[i];
        ((char *)h->name)[h->name_len] = '\0';
        /* llhttp reports an empty value as a zero-length span at the start
         * of the next line: never write through that pointer. */
        if (!h->value || h->value_len == 0) {
            h->value = "";
            h->value_len = 0;
            continue;
        }
        while (h->value_len && (h->value[h->value_len - 1] == ' ' ||
                                h->value[h->value_len - 1] == '\t'))
            h->value_len--;
        ((char *)h->value)[h->value_len] = '\0';
    }
    char *url = p->head.buf + p->url_off;
    url[p->url_len] = '\0';
    char *q = memchr(url, '?', p->url_len);
    if (q) {
        *q = '\0';
        p->query = q + 1;
    }
    p->path = url;
}

static enum http_parse_status take_header_block(struct http_request_parser *p)
{
    struct http_prescan_result r = http_prescan(
        p->head.buf, p->head.len, p->max_header_bytes, p->max_headers);
    if (!r.ok)
        return fail(p, r.status, r.reason);
    if (r.header_count > p->headers_cap) {
        struct http_header *h =
            realloc(p->headers, r.header_count * sizeof(*h));
        if (!h)
            return fail(p, 503, "server out of memory");
        p->headers = h;
        p->headers_cap = r.header_count;
    }

    llhttp_reset(&p->llhttp);
    p->header_count = 0;
    p->field_open = false;
    p->url_off = p->url_len = 0;
    llhttp_errno_t e = llhttp_execute(&p->llhttp, p->head.buf, p->head.len);
    bool complete = e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE;
    if (e != HPE_OK && !complete)
        return fail(p, 400,
                    p->llhttp.reason ? p->llhttp.reason : "malformed request");

    /* The pre-scan and llhttp must agree on framing; if they ever do not,
     * refuse rather than guess which one is right. */
    bool has_body = r.chunked || r.content_length > 0;
    bool ll_chunked = (p->llhttp.flags & F_CHUNKED) != 0;
    if (ll_chunked != r.chunked || complete == has_body ||
        (r.content_length > 0 &&
         p->llhttp.content_length != (uint64_t)r.content_length) ||
        (complete &&
         llhttp_get_error_pos(&p->llhttp) != p->head.buf + p->head.len) ||
        p->url_len == 0 || p->header_count != r.header_count)
        return fail(p, 400, "ambiguous request framing");

    terminate_strings(p);
    p->http_minor = r.http_minor;
    p->expect_continue = r.expect_continue && r.http_minor == 1;
    p->content_length = r.content_length;
    p->chunked = r.chunked;

    if (r.content_length > 0 &&
        (uint64_t)r.content_length > (uint64_t)p->max_body_bytes)
        return fail(p, 413, "request body too large");
    if (r.chunked) {
        p->phase = PH_BODY_CHUNKED;
        return HTTP_PARSE_HEADERS;
    }
    if (r.content_length > 0) {
        size_t pre = (size_t)r.content_length;
        if (!body_reserve(
                p, (pre < BODY_PREALLOC_MAX ? pre : BODY_PREALLOC_MAX) + 1))
            return fail(p, 503, "server out of memory");
        p->phase = PH_BODY_LENGTH;
        return HTTP_PARSE_HEADERS;
    }
    p->phase = PH_DONE;
    return HTTP_PARSE_DONE;
}

/* True when buf[from..to) holds a '\n' not preceded by '\r' (the byte
 * before `from` is looked at too, so the verdict does not depend on how
 * the bytes were split across reads). */
static bool has_bare_lf(const char *buf, size_t from, size_t to)
{
    for (size_t i = from; i < to;) {
        const char *nl = memchr(buf + i, '\n', to - i);
        if (!nl)
            return false;
        size_t at = (size_t)(nl - buf);
        if (at == 0 || buf[at - 1] != '\r')
            return true;
        i = at + 1;
    }
    return false;
}

static enum http_parse_status feed_headers(struct http_request_parser *p,
                                           const char *data, size_t len,
                                           size_t *consumed)
{
    /* Fail fast on what cannot start a request (a TLS hello, say) instead
     * of waiting for the header timeout. */
    if (p->head.len == 0 && len && data[0] != '\r' &&
        !http_is_tchar((unsigned char)data[0]))
        return fail(p, 400, "not an HTTP/1.x request");

    size_t used = 0;
    size_t old_len = p->head.len;
    enum http_head_status st =
        http_head_append(&p->head, data, len, p->max_header_bytes, &used);
    *consumed = used;
    if (st == HTTP_HEAD_NO_MEMORY)
        return fail(p, 503, "server out of memory");
    /* A bare LF can never be part of an accepted block (the pre-scan
     * refuses it), and a block framed with bare LFs only would never
     * complete: refuse now instead of at the header timeout. */
    if (has_bare_lf(p->head.buf, old_len, p->head.len))
        return fail(p, 400,
                    "bare LF in request header (line ends must be CRLF)");
    if (st == HTTP_HEAD_TOO_LARGE)
        return fail(p, 431, "request header block too large");
    if (st == HTTP_HEAD_MORE)
        return HTTP_PARSE_NEED_MORE;
    return take_header_block(p);
}

static enum http_parse_status feed_length(struct http_request_parser *p,
                                          const char *data, size_t len,
                                          size_t *consumed)
{
    size_t left = (size_t)p->content_length - p->body_len;
    size_t n = len < left ? len : left;
    if (!body_reserve(p, p->body_len + n + 1))
        return fail(p, 503, "server out of memory");
    body_append(p, data, n);
    *consumed = n;
    if (p->body_len < (size_t)p->content_length)
        return HTTP_PARSE_NEED_MORE;
    p->phase = PH_DONE;
    return HTTP_PARSE_DONE;
}

/* Request-side names for the decoder's errors. */
static const char *chunk_error(const struct chunked_decoder *d)
{
    switch (d->error_status) {
    case 413:
        return "request body too large";
    default:
        return d->error_reason;
    }
}

static enum http_parse_status feed_chunked(struct http_request_parser *p,
                                           const char *data, size_t len,
                                           size_t *consumed)
{
    size_t i = 0;
    while (i < len) {
        const char *span = NULL;
        size_t span_len = 0, used = 0;
        p->chunks.max_chunk_size = p->max_body_bytes - p->body_len;
        enum chunked_status st = chunked_decode(&p->chunks, data + i, len - i,
                                                &used, &span, &span_len);
        i += used;
        if (st == CHUNKED_DATA) {
            if (!body_reserve(p, p->body_len + span_len + 1))
                return fail(p, 503, "server out of memory");
            body_append(p, span, span_len);
            continue;
        }
        *consumed = i;
        if (st == CHUNKED_DONE) {
            p->phase = PH_DONE;
            return HTTP_PARSE_DONE;
        }
        if (st == CHUNKED_ERROR)
            return fail(p, p->chunks.error_status, chunk_error(&p->chunks));
    }
    *consumed = i;
    return HTTP_PARSE_NEED_MORE;
}

enum http_parse_status http_parse_feed(struct http_request_parser *p,
                                       const char *data, size_t len,
                                       size_t *consumed)
{
    *consumed = 0;
    switch (p->phase) {
    case PH_HEADERS:
        return feed_headers(p, data, len, consumed);
    case PH_BODY_LENGTH:
        return feed_length(p, data, len, consumed);
    case PH_BODY_CHUNKED:
        return feed_chunked(p, data, len, consumed);
    case PH_DONE:
        return HTTP_PARSE_DONE;
    default:
        return HTTP_PARSE_ERROR;
    }
}
