/* See batch_result_text.h. The minifier is a recursive-descent check of
 * RFC 8259 that writes each token as it accepts it. */
#include "batch_result_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mz {
    const unsigned char *p, *end;
    char *out;
    size_t n;
};

static void ws(struct mz *m)
{
    while (m->p < m->end &&
           (*m->p == ' ' || *m->p == '\t' || *m->p == '\n' || *m->p == '\r'))
        m->p++;
}

static void put(struct mz *m, const unsigned char *from, size_t n)
{
    memcpy(m->out + m->n, from, n);
    m->n += n;
}

static bool hex4(const unsigned char *p)
{
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
              (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* Length of the UTF-8 sequence at p (a byte >= 0x80), 0 when invalid
 * (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

static bool string(struct mz *m)
{
    const unsigned char *start = m->p++; /* the opening quote */
    while (m->p < m->end) {
        unsigned char c = *m->p;
        if (c == '"') {
            m->p++;
            put(m, start, (size_t)(m->p - start));
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (m->end - m->p < 2)
                return false;
            unsigned char e = m->p[1];
            if (e == 'u') {
                /* \u0000 is refused, as jansson does. */
                if (m->end - m->p < 6 || !hex4(m->p + 2) ||
                    memcmp(m->p + 2, "0000", 4) == 0)
                    return false;
                m->p += 6;
            } else if (strchr("\"\\/bfnrt", e) && e) {
                m->p += 2;
            } else {
                return false;
            }
        } else if (c >= 0x80) {
            size_t n = utf8_len(m->p, m->end);
            if (!n)
                return false;
            m->p += n;
        } else {
            m->p++;
        }
    }
    return false;
}

static bool digits(struct mz *m)
{
    const unsigned char *s = m->p;
    while (m->p < m->end && *m->p >= '0' && *m->p <= '9')
        m->p++;
    return m->p > s;
}

static bool number(struct mz *m)
{
    const unsigned char *s = m->p;
    if (*m->p == '-')
        m->p++;
    if (m->p < m->end && *m->p == '0')
        m->p++;
    else if (!digits(m))
        return false;
    if (m->p < m->end && *m->p == '.') {
        m->p++;
        if (!digits(m))
            return false;
    }
    if (m->p < m->end && (*m->p == 'e' || *m->p == 'E')) {
        m->p++;
        if (m->p < m->end && (*m->p == '+' || *m->p == '-'))
            m->p++;
        if (!digits(m))
            return false;
    }
    put(m, s, (size_t)(m->p - s));
    return true;
}

static bool literal(struct mz *m, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(m->end - m->p) < n || memcmp(m->p, word, n) != 0)
        return false;
    put(m, m->p, n);
    m->p += n;
    return true;
}

static bool value(struct mz *m, int depth);

/* An object or array: open/close are {} or [], members of objects are
 * "key": value. */
static bool container(struct mz *m, int depth, bool object)
{
    unsigned char close = object ? '}' : ']';
    put(m, m->p++, 1);
    ws(m);
    if (m->p < m->end && *m->p == close) {
        put(m, m->p++, 1);
        return true;
    }
    for (;;) {
        if (object) {
            if (m->p >= m->end || *m->p != '"' || !string(m))
                return false;
            ws(m);
            if (m->p >= m->end || *m->p != ':')
                return false;
            put(m, m->p++, 1);
        }
        if (!value(m, depth + 1))
            return false;
        ws(m);
        if (m->p >= m->end)
            return false;
        if (*m->p == close) {
            put(m, m->p++, 1);
            return true;
        }
        if (*m->p != ',')
            return false;
        put(m, m->p++, 1);
        ws(m);
    }
}

static bool value(struct mz *m, int depth)
{
    ws(m);
    if (m->p >= m->end || depth > 64)
        return false;
    switch (*m->p) {
    case '{':
        return container(m, depth, true);
    case '[':
        return container(m, depth, false);
    case '"':
        return string(m);
    case 't':
        return literal(m, "true");
    case 'f':
        return literal(m, "false");
    case 'n':
        return literal(m, "null");
    default:
        return (*m->p == '-' || (*m->p >= '0' && *m->p <= '9')) && number(m);
    }
}

bool batch_json_minify(const char *in, size_t len, char *out, size_t *out_len)
{
    struct mz m = {(const unsigned char *)in, (const unsigned char *)in + len,
                   out, 0};
    if (!value(&m, 0))
        return false;
    ws(&m);
    if (m.p != m.end)
        return false;
    *out_len = m.n;
    return true;
}

static bool plain_id(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
            return false;
    return true;
}

char *batch_result_ok_text(int status, const char *request_id, const char *body,
                           size_t body_len)
{
    if (!body || !plain_id(request_id))
        return NULL;
    static const char tail[] = "},\"error\":null}";
    char head[200];
    int hn = snprintf(head, sizeof head,
                      "{\"response\":{\"status_code\":%d,\"request_id\":\"%s\","
                      "\"body\":",
                      status, request_id);
    if (hn < 0 || (size_t)hn >= sizeof head)
        return NULL;
    char *out = malloc((size_t)hn + body_len + sizeof tail);
    size_t n = 0;
    if (!out)
        return NULL;
    memcpy(out, head, (size_t)hn);
    if (!batch_json_minify(body, body_len, out + hn, &n)) {
        free(out);
        return NULL;
    }
    memcpy(out + hn + n, tail, sizeof tail);
    return out;
}

static int grow(char **buf, size_t *len, size_t *cap, size_t more)
{
    if (*len + more + 1 <= *cap)
        return 0;
    size_t nc = (*cap + more + 1) * 2;
    char *nb = realloc(*buf, nc);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = nc;
    return 0;
}

int batch_output_line_append(char **buf, size_t *len, size_t *cap,
                             const char *id, const char *custom_id,
                             const char *result)
{
    static const char prefix[] = "{\"response\":";
    if (!result || strncmp(result, prefix, sizeof prefix - 1) != 0 ||
        !plain_id(id))
        return 0;
    size_t cl = strlen(custom_id), rl = strlen(result);
    /* Worst case: every custom_id byte as \u00XX. */
    if (grow(buf, len, cap, strlen(id) + cl * 6 + rl + 32) != 0)
        return -1;
    char *o = *buf + *len;
    o += sprintf(o, "{\"id\":\"%s\",\"custom_id\":\"", id);
    for (const unsigned char *p = (const unsigned char *)custom_id; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            static const char hexd[] = "0123456789abcdef";
            memcpy(o, "\\u00", 4);
            o[4] = hexd[c >> 4];
            o[5] = hexd[c & 15];
            o += 6;
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    *o++ = ',';
    memcpy(o, result + 1, rl - 1); /* after the result's '{' */
    o += rl - 1;
    *len = (size_t)(o - *buf);
    return 1;
}
