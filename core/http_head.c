#include "http_head.h"

#include <stdlib.h>
#include <string.h>

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
        const char *end = memmem(in, take, "\r\n\r\n", 4);
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
    const char *end = memmem(h->buf + from, h->len - from, "\r\n\r\n", 4);
    if (!end) {
        *consumed = take;
        return h->len >= max_bytes ? HTTP_HEAD_TOO_LARGE : HTTP_HEAD_MORE;
    }
    h->len = (size_t)(end + 4 - h->buf);
    *consumed = h->len - old_len;
    return HTTP_HEAD_COMPLETE;
}
