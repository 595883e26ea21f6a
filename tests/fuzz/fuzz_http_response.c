/* libFuzzer target for upstream response framing (http_response.c and the
 * shared chunked decoder). The first input byte picks a split size; the
 * rest is what the upstream sent. Parsed whole and in pieces, both runs
 * must agree on status, headers, body bytes and how the response ended,
 * and every header line must be a NUL-terminated "Name: value". */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_response.h"

struct outcome {
    int status;
    int end; /* 0: needs more, 1: done, 2: error, 3: done at EOF */
    uint64_t hash;
    size_t body_len;
    size_t header_lines;
};

static uint64_t mix(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL; /* FNV-1a */
    return h;
}

static void check_headers(struct http_response_parser *p, struct outcome *o)
{
    for (size_t i = 0; i < p->n_lines; i++) {
        const char *line = p->lines[i];
        const char *colon = strstr(line, ": ");
        if (!colon || colon == line)
            abort(); /* every line is "Name: value" */
        o->hash = mix(o->hash, line, strlen(line) + 1);
    }
    o->header_lines = p->n_lines;
    o->status = p->status;
}

/* Feeds data in pieces of `step` bytes (all at once for step 0). */
static struct outcome run(const char *data, size_t len, size_t step)
{
    struct outcome o = {.hash = 14695981039346656037ULL};
    struct http_response_parser p;
    http_response_init(&p, 8192);
    size_t off = 0;
    while (o.end == 0) {
        size_t n = step && len - off > step ? step : len - off;
        size_t at = 0;
        /* one piece, until the parser wants more */
        for (;;) {
            const char *span = NULL;
            size_t span_len = 0, used = 0;
            enum http_response_status st = http_response_feed(
                &p, data + off + at, n - at, &used, &span, &span_len);
            if (used > n - at)
                abort();
            at += used;
            if (st == HTTP_RESPONSE_HEADERS)
                check_headers(&p, &o);
            else if (st == HTTP_RESPONSE_DATA) {
                if (span < data || span + span_len > data + len)
                    abort(); /* spans point into the input */
                o.hash = mix(o.hash, span, span_len);
                o.body_len += span_len;
            } else if (st == HTTP_RESPONSE_DONE) {
                o.end = 1;
                break;
            } else if (st == HTTP_RESPONSE_ERROR) {
                o.end = 2;
                break;
            } else if (at == n) {
                break;
            }
        }
        off += at;
        if (o.end == 0 && off >= len) {
            o.end = http_response_eof(&p) == HTTP_RESPONSE_DONE ? 3 : 2;
            break;
        }
    }
    http_response_free(&p);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = 1 + data[0] % 64;
    const char *body = (const char *)data + 1;
    struct outcome whole = run(body, size - 1, 0);
    struct outcome split = run(body, size - 1, step);
    if (whole.end != split.end || whole.status != split.status ||
        whole.hash != split.hash || whole.body_len != split.body_len ||
        whole.header_lines != split.header_lines)
        abort();
    return 0;
}
