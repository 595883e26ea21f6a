#include "mock_multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *find(const char *hay, size_t n, const char *needle, size_t m)
{
    for (size_t i = 0; m <= n && i + m <= n; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
}

/* name="value" inside a Content-Disposition line, into out. */
static void param(const char *hdr, size_t n, const char *key, char *out,
                  size_t cap)
{
    char pat[32];
    snprintf(pat, sizeof pat, " %s=\"", key);
    const char *p = find(hdr, n, pat, strlen(pat));
    out[0] = '\0';
    if (!p)
        return;
    p += strlen(pat);
    const char *q = memchr(p, '"', n - (size_t)(p - hdr));
    if (q)
        snprintf(out, cap, "%.*s", (int)(q - p), p);
}

size_t mock_multipart_parse(const char *content_type, const char *body,
                            size_t len, struct mock_part *parts, size_t max)
{
    const char *b = content_type ? strstr(content_type, "boundary=") : NULL;
    if (!b || strncasecmp(content_type, "multipart/form-data", 19) != 0)
        return 0;
    char delim[128];
    b += 9;
    size_t bl = strcspn(b, "\"; ");
    if (*b == '"') {
        b++;
        bl = strcspn(b, "\"");
    }
    if (bl == 0 || bl > 100)
        return 0;
    int dl = snprintf(delim, sizeof delim, "--%.*s", (int)bl, b);
    size_t n = 0;
    const char *at = find(body, len, delim, (size_t)dl);
    while (at && n < max) {
        const char *p = at + dl;
        size_t left = len - (size_t)(p - body);
        if (left >= 2 && p[0] == '-' && p[1] == '-')
            break; /* closing delimiter */
        const char *hend = find(p, left, "\r\n\r\n", 4);
        if (!hend)
            break;
        struct mock_part *pt = &parts[n];
        param(p, (size_t)(hend - p), "name", pt->name, sizeof pt->name);
        param(p, (size_t)(hend - p), "filename", pt->filename,
              sizeof pt->filename);
        pt->data = hend + 4;
        size_t rest = len - (size_t)(pt->data - body);
        char end[130];
        int el = snprintf(end, sizeof end, "\r\n%s", delim);
        const char *next = find(pt->data, rest, end, (size_t)el);
        if (!next)
            break;
        pt->len = (size_t)(next - pt->data);
        n++;
        at = next + 2;
    }
    return n;
}
