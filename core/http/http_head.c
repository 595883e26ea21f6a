#include "http_head.h"

#include <stdlib.h>
#include <string.h>

/* The blank line ending the block. memchr on '\n' is vectorised; glibc's
 * memmem sets up a two-way search per call, which cost more than the
 * whole rest of the header handling. */
static const char *find_blank_line(const char *s, size_t n)
{
    const char *end = s + n;
    for (const char *p = s; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return NULL;
        if (nl - s >= 3 && nl[-1] == '\r' && nl[-2] == '\n' && nl[-3] == '\r')
            return nl - 3;
        p = nl + 1;
    }
    return NULL;
}

enum http_head_status http_head_append(struct http_head *h, const char *in,
                                       size_t n, size_t max_bytes,
                                       size_t *consumed)
{
    *consumed = 0;
    size_t room = max_bytes > h->len ? max_bytes - h->len : 0;
    size_t take = n < room ? n : room;
    if (h->len == 0) {
        /* The usual case, a whole block in one read: copy only the block,
         * not the body that came with it. */
        const char *end = find_blank_line(in, take);
        if (end)
            take = (size_t)(end + 4 - in);
    }
    if (h->len + take + 1 > h->cap) {
        size_t cap = h->cap ? h->cap : 1024;
        while (cap < h->len + take + 1)
            cap *= 2;
        if (cap > max_bytes + 1)
            cap = max_bytes + 1;
        char *b = realloc(h->buf, cap);
        if (!b)
            return HTTP_HEAD_NO_MEMORY;
        h->buf = b;
        h->cap = cap;
    }
    if (take)
        memcpy(h->buf + h->len, in, take);
    /* Resume the search 3 bytes back: the terminator may straddle reads. */
    size_t from = h->len >= 3 ? h->len - 3 : 0;
    size_t old_len = h->len;
    h->len += take;
    const char *end = find_blank_line(h->buf + from, h->len - from);
    if (!end) {
        *consumed = take;
        return h->len >= max_bytes ? HTTP_HEAD_TOO_LARGE : HTTP_HEAD_MORE;
    }
    h->len = (size_t)(end + 4 - h->buf);
    *consumed = h->len - old_len;
    return HTTP_HEAD_COMPLETE;
}
