#include "http_prescan.h"

#include <string.h>
#include <strings.h>

bool http_is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    default:
        return false;
    }
}

static struct http_prescan_result reject(int status, const char *reason)
{
    struct http_prescan_result r = {0};
    r.status = status;
    r.reason = reason;
    return r;
}

/* The specific smuggling-relevant reason for the byte at p, if any, so the
 * client (and the log) learns what was wrong rather than "malformed". */
static const char *bad_byte_reason(const char *p, const char *end)
{
    if (*p == '\0')
        return "NUL byte in request header";
    if (*p == '\n')
        return "bare LF in request header (line ends must be CRLF)";
    if (*p == '\r' && (p + 1 >= end || p[1] != '\n'))
        return "bare CR in request header";
    return NULL;
}

static struct http_prescan_result reject_at(const char *p, const char *end,
                                            const char *fallback)
{
    const char *why = p < end ? bad_byte_reason(p, end) : NULL;
    return reject(400, why ? why : fallback);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Facts gathered from the framing-relevant headers. */
struct framing {
    int64_t content_length;
    int te_count, host_count;
    bool chunked, expect_continue;
};

/* Checks one header whose name and trimmed value are known. Returns NULL
 * or the reason to reject. */
static const char *note_header(struct framing *f, const char *name,
                               size_t name_len, const char *v, size_t vlen)
{
    if (name_is(name, name_len, "content-length")) {
        if (f->content_length >= 0)
            return "duplicate Content-Length";
        /* 18 digits always fit in int64_t; longer is never a real body. */
        if (vlen == 0 || vlen > 18)
            return "invalid Content-Length";
        int64_t n = 0;
        for (size_t i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                return "invalid Content-Length";
            n = n * 10 + (v[i] - '0');
        }
        f->content_length = n;
    } else if (name_is(name, name_len, "transfer-encoding")) {
        if (++f->te_count > 1)
            return "duplicate Transfer-Encoding";
        if (!(vlen == 7 && strncasecmp(v, "chunked", 7) == 0))
            return "unsupported Transfer-Encoding (only chunked)";
        f->chunked = true;
    } else if (name_is(name, name_len, "host")) {
        f->host_count++;
    } else if (name_is(name, name_len, "expect")) {
        f->expect_continue =
            vlen == 12 && strncasecmp(v, "100-continue", 12) == 0;
    }
    return NULL;
}

/* method SP origin-form SP HTTP/1.x CRLF. Returns the byte after it, or
 * NULL with *out set to the rejection. */
static const char *scan_request_line(const char *p, const char *end,
                                     struct http_prescan_result *out)
{
    const char *method = p;
    while (p < end && http_is_tchar((unsigned char)*p))
        p++;
    if (p == method || p >= end || *p != ' ') {
        *out = reject_at(p, end, "malformed request line");
        return NULL;
    }
    if (p - method == 7 && memcmp(method, "CONNECT", 7) == 0) {
        *out = reject(400, "CONNECT is not supported");
        return NULL;
    }
    p++;
    /* Only origin-form: absolute-form and "*" have no use here and are
     * where proxies and servers disagree about the target. */
    if (p >= end || *p != '/') {
        *out = reject(400, "request target must start with /");
        return NULL;
    }
    while (p < end && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f &&
           *p != '#')
        p++;
    if (p >= end || *p != ' ') {
        *out = reject_at(p, end, "invalid character in request target");
        return NULL;
    }
    p++;
    if (end - p < 10 || memcmp(p, "HTTP/1.", 7) != 0 ||
        (p[7] != '0' && p[7] != '1')) {
        *out = reject(400, "unsupported HTTP version");
        return NULL;
    }
    if (p[8] != '\r' || p[9] != '\n') {
        *out = reject_at(p + 8, end, "malformed request line");
        return NULL;
    }
    out->http_minor = p[7] - '0';
    return p + 10;
}

struct http_prescan_result http_prescan(const char *block, size_t len,
                                        size_t max_header_bytes,
                                        size_t max_headers)
{
    struct http_prescan_result r = {0};
    if (len > max_header_bytes)
        return reject(431, "request header block too large");
    if (len < 4 || memcmp(block + len - 4, "\r\n\r\n", 4) != 0)
        return reject(400, "incomplete request header block");

    const char *p = block, *end = block + len;
    while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
        p += 2;
    p = scan_request_line(p, end, &r);
    if (!p)
        return r;

    struct framing f = {.content_length = -1};
    size_t count = 0;
    for (;;) {
        if (p >= end)
            return reject(400, "incomplete request header block");
        if (*p == '\r') {
            if (end - p == 2 && p[1] == '\n')
                break;
            return reject_at(p, end, "data after the header block");
        }
        if (is_ows(*p))
            return reject(400, "obsolete line folding is not allowed");

        const char *name = p;
        while (p < end && http_is_tchar((unsigned char)*p))
            p++;
        size_t name_len = (size_t)(p - name);
        if (p >= end || *p != ':') {
            if (p < end && bad_byte_reason(p, end))
                return reject_at(p, end, NULL);
            if (p < end && *p == '\r')
                return reject(400, "header line without colon");
            if (p < end && is_ows(*p))
                return reject(400, "whitespace before colon in header");
            return reject(400, "invalid character in header name");
        }
        if (name_len == 0)
            return reject(400, "empty header name");
        if (++count > max_headers)
            return reject(431, "too many request headers");

        const char *v = ++p;
        /* VCHAR, SP, HTAB and obs-text; every other control byte ends it. */
        while (p < end &&
               (((unsigned char)*p >= 0x20 && *p != 0x7f) || *p == '\t'))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return reject_at(p, end, "control character in header value");
        const char *vend = p;
        p += 2;
        while (v < vend && is_ows(*v))
            v++;
        while (vend > v && is_ows(vend[-1]))
            vend--;

        const char *why =
            note_header(&f, name, name_len, v, (size_t)(vend - v));
        if (why)
            return reject(400, why);
    }

    if (f.content_length >= 0 && f.chunked)
        return reject(400, "both Content-Length and Transfer-Encoding");
    if (f.chunked && r.http_minor == 0)
        return reject(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (f.host_count > 1)
        return reject(400, "duplicate Host header");
    if (f.host_count == 0 && r.http_minor == 1)
        return reject(400, "missing Host header");

    r.ok = true;
    r.header_count = count;
    r.content_length = f.content_length;
    r.chunked = f.chunked;
    r.expect_continue = f.expect_continue;
    return r;
}
