/* libFuzzer target: arbitrary bytes through the request framing a
 * connection uses (pre-scan + llhttp + body decoding), fed whole and in
 * small pieces. Checks memory safety, that the parser always makes
 * progress, that accepted requests are well-formed, and that how the bytes
 * are split never changes the outcome. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parse.h"
#include "http/http_prescan.h"

#define MAX_OUTCOMES 16

struct outcome {
    int status; /* 200 complete, else the error status */
    size_t end; /* stream offset where it ended */
    size_t body_len, header_count;
    uint32_t digest; /* body, path, query, header names and values */
};

static const struct http_limits limits = {
    .max_header_bytes = 2048,
    .max_headers = 16,
    .max_body_bytes = 4096,
};

static uint32_t mix(uint32_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

static uint32_t check_request(const struct http_request_parser *p)
{
    check(p->method && p->path && p->path[0] == '/', "method and path set");
    check(p->body_len <= limits.max_body_bytes, "body within the cap");
    check(p->content_length < 0 || (size_t)p->content_length == p->body_len,
          "Content-Length honoured");
    check(p->header_count <= limits.max_headers, "header count within cap");
    uint32_t h = mix(2166136261u, p->path, strlen(p->path));
    if (p->query)
        h = mix(h, p->query, strlen(p->query));
    for (size_t i = 0; i < p->header_count; i++) {
        const struct http_header *hd = &p->headers[i];
        check(strlen(hd->name) == hd->name_len && hd->name_len > 0,
              "header name NUL-terminated");
        check(strlen(hd->value) == hd->value_len, "header value terminated");
        for (size_t j = 0; j < hd->name_len; j++)
            check(http_is_tchar((unsigned char)hd->name[j]),
                  "header name is a token");
        h = mix(h, hd->name, hd->name_len);
        h = mix(h, hd->value, hd->value_len);
    }
    if (p->body_len)
        h = mix(h, p->body, p->body_len);
    return h;
}

/* Runs the whole input through one parser, `step` bytes at a time (0: all
 * available), recording each request's outcome like a connection would. */
static size_t run(const uint8_t *data, size_t size, size_t step,
                  struct outcome *out)
{
    struct http_request_parser p;
    http_parse_init(&p, &limits);
    size_t off = 0, n_out = 0;
    while (off < size && n_out < MAX_OUTCOMES) {
        size_t n = size - off;
        if (step && n > step)
            n = step;
        size_t used = 0;
        enum http_parse_status st =
            http_parse_feed(&p, (const char *)data + off, n, &used);
        check(used <= n, "consumed no more than given");
        off += used;
        if (st == HTTP_PARSE_NEED_MORE) {
            check(used == n, "NEED_MORE consumes everything");
            continue;
        }
        if (st == HTTP_PARSE_HEADERS)
            continue;
        struct outcome *o = &out[n_out++];
        memset(o, 0, sizeof(*o));
        o->end = off;
        if (st == HTTP_PARSE_ERROR) {
            check(p.error_reason != NULL, "error has a reason");
            check(p.error_status == 400 || p.error_status == 413 ||
                      p.error_status == 431,
                  "error status is 400, 413 or 431");
            o->status = p.error_status;
            break; /* the connection closes */
        }
        o->status = 200;
        o->body_len = p.body_len;
        o->header_count = p.header_count;
        o->digest = check_request(&p);
        if (!p.keep_alive)
            break;
        http_parse_reset(&p);
    }
    http_parse_free(&p);
    return n_out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The pre-scan alone, on the raw bytes. */
    struct http_prescan_result r =
        http_prescan((const char *)data, size, 4096, 32);
    check(r.ok == (r.status == 0) && r.ok == (r.reason == NULL),
          "prescan result is consistent");

    struct outcome whole[MAX_OUTCOMES], split[MAX_OUTCOMES];
    size_t n_whole = run(data, size, 0, whole);
    size_t step = size % 13 + 1;
    size_t n_split = run(data, size, step, split);
    /* Same requests, same ends, same content, however the bytes arrive.
     * (A request cut short by the end of input is just NEED_MORE.) */
    check(n_whole == n_split, "same number of outcomes");
    for (size_t i = 0; i < n_whole; i++) {
        check(whole[i].status == split[i].status, "same status");
        check(whole[i].end == split[i].end || whole[i].status != 200,
              "same request boundary");
        check(whole[i].digest == split[i].digest, "same request content");
    }
    return 0;
}
