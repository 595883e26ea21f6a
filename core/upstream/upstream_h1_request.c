#include "upstream_h1_request.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool h1_split_url(const char *url, struct h1_url *u)
{
    if (strncasecmp(url, "http://", 7) != 0)
        return false;
    u->authority = url + 7;
    u->authority_len = strcspn(u->authority, "/?#");
    u->path = u->authority + u->authority_len;
    return u->authority_len > 0 &&
           memchr(u->authority, '@', u->authority_len) == NULL;
}

static bool header_named(const char *h, const char *name, size_t n)
{
    return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

/* Hop-by-hop and framing headers are ours to write. Names are compared
 * only when their lengths match: this runs for every header of every
 * request. */
static bool caller_may_set(const char *h)
{
    const char *colon = strchr(h, ':');
    size_t n = colon ? (size_t)(colon - h) : strlen(h);
    static const struct {
        const char *name;
        size_t len;
    } ours[] = {
        {"Host", 4},
        {"Content-Length", 14},
        {"Transfer-Encoding", 17},
        {"Connection", 10},
        {"Keep-Alive", 10},
        {"Expect", 6},
        {"Upgrade", 7},
        {"TE", 2},
        {"Proxy-Connection", 16},
    };
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        if (ours[i].len == n && strncasecmp(h, ours[i].name, n) == 0)
            return false;
    return true;
}

static void put(char **p, const char *s, size_t n)
{
    memcpy(*p, s, n);
    *p += n;
}

/* snprintf costs ~700 instructions per call; this is the hot path. */
static void put_decimal(char **p, size_t v)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *(*p)++ = digits[--n];
}

char *h1_build_request(const struct upstream_request *req,
                       const struct h1_url *u, size_t *len, bool *is_head)
{
    const char *method = req->method ? req->method : req->body ? "POST" : "GET";
    bool has_body = strcasecmp(method, "POST") == 0 || req->body_len > 0;
    const char *path = *u->path == '/' ? u->path : "/";
    size_t path_len = strcspn(path, "#");
    static const char json_type[] = "Content-Type: application/json\r\n";

    size_t size = strlen(method) + 1 + path_len + 11 + 6 + u->authority_len +
                  2 + sizeof json_type + 40 + 2 + req->body_len;
    bool has_type = false;
    for (const char *const *h = req->headers; h && *h; h++) {
        size += strlen(*h) + 2;
        has_type = has_type || header_named(*h, "Content-Type", 12);
    }
    char *buf = malloc(size), *p = buf;
    if (!buf)
        return NULL;
    put(&p, method, strlen(method));
    put(&p, " ", 1);
    put(&p, path, path_len);
    put(&p, " HTTP/1.1\r\nHost: ", 17);
    put(&p, u->authority, u->authority_len);
    put(&p, "\r\n", 2);
    for (const char *const *h = req->headers; h && *h; h++) {
        if (!caller_may_set(*h))
            continue;
        put(&p, *h, strlen(*h));
        put(&p, "\r\n", 2);
    }
    if (has_body) {
        if (!has_type)
            put(&p, json_type, sizeof json_type - 1);
        put(&p, "Content-Length: ", 16);
        put_decimal(&p, req->body_len);
        put(&p, "\r\n", 2);
    }
    put(&p, "\r\n", 2);
    if (req->body_len)
        put(&p, req->body, req->body_len);
    *len = (size_t)(p - buf);
    *is_head = strcasecmp(method, "HEAD") == 0;
    return buf;
}
