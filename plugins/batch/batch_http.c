/* Small request and reply helpers shared by the file and batch routes. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"

void batch_tenant(const struct batch *b, const struct sluice_req *r, char *out,
                  size_t cap)
{
    struct sluice_str t = b->h->req_identity(r, SLUICE_ID_TENANT);
    if (!t.ptr || t.len == 0)
        snprintf(out, cap, "default");
    else
        snprintf(out, cap, "%.*s", (int)t.len, t.ptr);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool batch_query(const struct batch *b, const struct sluice_req *r,
                 const char *name, char *out, size_t cap)
{
    struct sluice_str q = b->h->req_query(r);
    size_t nlen = strlen(name);
    for (size_t i = 0; q.ptr && i < q.len;) {
        size_t end = i;
        while (end < q.len && q.ptr[end] != '&')
            end++;
        if (end - i > nlen && memcmp(q.ptr + i, name, nlen) == 0 &&
            q.ptr[i + nlen] == '=') {
            size_t o = 0;
            for (size_t k = i + nlen + 1; k < end && o + 1 < cap; k++) {
                char c = q.ptr[k];
                if (c == '%' && k + 2 < end && hexval(q.ptr[k + 1]) >= 0 &&
                    hexval(q.ptr[k + 2]) >= 0) {
                    c = (char)(hexval(q.ptr[k + 1]) * 16 +
                               hexval(q.ptr[k + 2]));
                    k += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                out[o++] = c;
            }
            out[o] = '\0';
            return true;
        }
        i = end + 1;
    }
    return false;
}

bool batch_path_id(const struct batch *b, const struct sluice_req *r,
                   const char *prefix, char *out, size_t cap, const char **rest)
{
    struct sluice_str p = b->h->req_endpoint(r);
    size_t plen = strlen(prefix);
    if (!p.ptr || p.len <= plen || memcmp(p.ptr, prefix, plen) != 0)
        return false;
    size_t i = plen, end = plen;
    while (end < p.len && p.ptr[end] != '/' && p.ptr[end] != '?')
        end++;
    if (end == i || end - i >= cap)
        return false;
    memcpy(out, p.ptr + i, end - i);
    out[end - i] = '\0';
    /* rest points into a static copy: enough for the few suffixes used. */
    static _Thread_local char tail[64];
    snprintf(tail, sizeof tail, "%.*s", (int)(p.len - end), p.ptr + end);
    *rest = tail;
    return true;
}

enum sluice_action batch_json_reply(const struct batch *b, struct sluice_req *r,
                                    int status, void *json)
{
    char *text = json ? json_dumps(json, JSON_COMPACT) : NULL;
    json_decref(json);
    if (!text)
        return b->h->reject(r, 503, "api_error", NULL, "out of memory", 0);
    struct sluice_str body = {text, strlen(text)};
    enum sluice_action a = b->h->respond(r, status, "application/json", body);
    free(text);
    return a;
}

enum sluice_action batch_error(const struct batch *b, struct sluice_req *r,
                               int status, const char *param, const char *code,
                               const char *message)
{
    const char *type = status == 404   ? "invalid_request_error"
                       : status >= 500 ? "api_error"
                                       : "invalid_request_error";
    json_t *e = json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message",
                          message, "type", type, "param", param, "code", code);
    return batch_json_reply(b, r, status, e);
}

long batch_route_model(const struct sluice_host *h, const char *model)
{
    size_t n = h->upstream_count(h), len = strlen(model);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0;; j++) {
            struct sluice_str m = h->upstream_model(h, i, j);
            if (!m.ptr || m.len == 0)
                break;
            if ((m.len == 1 && m.ptr[0] == '*') ||
                (m.len == len && memcmp(m.ptr, model, len) == 0))
                return (long)i;
        }
    return -1;
}
