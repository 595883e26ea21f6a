/* multipart/form-data, read in place (see multipart.h). */
#include "http/multipart.h"

#include <string.h>
#include <strings.h>

static const char *find(const char *p, const char *end, const char *needle,
                        size_t n)
{
    while (p && (size_t)(end - p) >= n) {
        p = memchr(p, needle[0], (size_t)(end - p) - n + 1);
        if (!p || memcmp(p, needle, n) == 0)
            return p;
        p++;
    }
    return NULL;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* Case-insensitive: does [p, end) start with word? */
static bool starts_with(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && strncasecmp(p, word, n) == 0;
}

/* One `; name=value` parameter (value quoted or a token). Returns where
 * the next one starts, or NULL when there is none / it is malformed. */
static const char *next_param(const char *p, const char *end,
                              struct multipart_span *name,
                              struct multipart_span *value)
{
    p = skip_ws(p, end);
    if (p == end || *p != ';')
        return NULL;
    p = skip_ws(p + 1, end);
    name->ptr = p;
    while (p < end && *p != '=' && *p != ';' && *p != ' ')
        p++;
    name->len = (size_t)(p - name->ptr);
    p = skip_ws(p, end);
    if (p == end || *p != '=')
        return NULL;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '"') {
        /* Browsers and the OpenAI SDKs percent-encode quotes in names, so a
         * backslash only needs to keep the quote after it inside. */
        value->ptr = ++p;
        while (p < end && *p != '"')
            p += (*p == '\\' && p + 1 < end) ? 2 : 1;
        if (p >= end)
            return NULL;
        value->len = (size_t)(p - value->ptr);
        return p + 1;
    }
    value->ptr = p;
    while (p < end && *p != ';' && *p != ' ' && *p != '\t')
        p++;
    value->len = (size_t)(p - value->ptr);
    return p;
}

static bool span_is(struct multipart_span s, const char *word)
{
    return s.len == strlen(word) && strncasecmp(s.ptr, word, s.len) == 0;
}

/* After a delimiter: "--" ends the body, else (padding) CRLF starts the
 * next part. */
static int after_delimiter(struct multipart_reader *rd, const char *p,
                           const char **error)
{
    if (rd->end - p >= 2 && p[0] == '-' && p[1] == '-') {
        rd->at = NULL;
        return 0;
    }
    p = skip_ws(p, rd->end);
    if (rd->end - p < 2 || p[0] != '\r' || p[1] != '\n') {
        *error = "malformed multipart boundary line";
        return -1;
    }
    rd->at = p + 2;
    return 1;
}

bool multipart_open(struct multipart_reader *rd, const char *content_type,
                    size_t content_type_len, const char *body, size_t len,
                    const char **error)
{
    const char *p = content_type, *end = content_type + content_type_len;
    memset(rd, 0, sizeof *rd);
    p = content_type ? skip_ws(p, end) : NULL;
    if (!p || !starts_with(p, end, "multipart/form-data")) {
        *error = "the Content-Type must be multipart/form-data";
        return false;
    }
    p += strlen("multipart/form-data");
    struct multipart_span name, value, boundary = {NULL, 0};
    while ((p = next_param(p, end, &name, &value)) != NULL)
        if (span_is(name, "boundary"))
            boundary = value;
    if (!boundary.ptr || boundary.len == 0 ||
        boundary.len > MULTIPART_MAX_BOUNDARY) {
        *error = "the multipart boundary is missing or longer than 70 "
                 "characters";
        return false;
    }
    memcpy(rd->delim, "\r\n--", 4);
    memcpy(rd->delim + 4, boundary.ptr, boundary.len);
    rd->delim_len = boundary.len + 4;
    rd->body = body ? body : "";
    rd->end = rd->body + len;

    /* The first delimiter may open the body without the CRLF before it. */
    const char *first;
    if ((size_t)(rd->end - rd->body) >= rd->delim_len - 2 &&
        memcmp(rd->body, rd->delim + 2, rd->delim_len - 2) == 0)
        first = rd->body + rd->delim_len - 2;
    else if ((first = find(rd->body, rd->end, rd->delim, rd->delim_len)))
        first += rd->delim_len;
    if (!first) {
        *error = "the multipart body has no opening boundary";
        return false;
    }
    return after_delimiter(rd, first, error) >= 0;
}

/* Content-Disposition: form-data; name="..."; filename="..." */
static bool disposition(const char *p, const char *end,
                        struct multipart_part *out)
{
    p = skip_ws(p, end);
    if (!starts_with(p, end, "form-data"))
        return false;
    p += strlen("form-data");
    struct multipart_span name, value;
    while ((p = next_param(p, end, &name, &value)) != NULL) {
        if (span_is(name, "name"))
            out->name = value;
        else if (span_is(name, "filename"))
            out->filename = value;
    }
    return true;
}

int multipart_next(struct multipart_reader *rd, struct multipart_part *out,
                   const char **error)
{
    memset(out, 0, sizeof *out);
    if (!rd->at)
        return 0;
    const char *limit = rd->end;
    if ((size_t)(limit - rd->at) > MULTIPART_MAX_PART_HEADER + 4)
        limit = rd->at + MULTIPART_MAX_PART_HEADER + 4;
    const char *hdr_end = find(rd->at, limit, "\r\n\r\n", 4);
    if (!hdr_end) {
        *error = limit < rd->end ? "a multipart part's headers are too long"
                                 : "a multipart part's headers never end";
        return -1;
    }
    bool form_data = false;
    for (const char *line = rd->at; line < hdr_end;) {
        const char *eol = find(line, hdr_end + 2, "\r\n", 2);
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon && starts_with(line, colon, "content-disposition") &&
            colon - line == (long)strlen("content-disposition")) {
            form_data = disposition(colon + 1, eol, out);
        } else if (colon && starts_with(line, colon, "content-type") &&
                   colon - line == (long)strlen("content-type")) {
            const char *v = skip_ws(colon + 1, eol), *e = eol;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            out->content_type.ptr = v;
            out->content_type.len = (size_t)(e - v);
        }
        line = eol + 2;
    }
    if (!form_data || !out->name.ptr) {
        *error = "a multipart part has no Content-Disposition: form-data "
                 "with a name";
        return -1;
    }
    out->data.ptr = hdr_end + 4;
    const char *delim = find(out->data.ptr, rd->end, rd->delim, rd->delim_len);
    if (!delim) {
        *error = "the multipart body ends without its closing boundary";
        return -1;
    }
    out->data.len = (size_t)(delim - out->data.ptr);
    return after_delimiter(rd, delim + rd->delim_len, error) < 0 ? -1 : 1;
}
