/* libFuzzer target for the SSE parser. The first input byte picks a split
 * point; the rest is the stream. The stream is parsed whole and split, and
 * both runs must agree on every event, on usage and on success. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/sse.h"

#define MAX_EVENT_BYTES 4096

struct digest {
    uint64_t hash;
    size_t events;
    size_t raw_total;
};

static uint64_t mix(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL; /* FNV-1a */
    return h;
}

static void on_event(const struct sse_event *ev, void *arg)
{
    struct digest *d = arg;
    unsigned char flags = (unsigned char)(ev->done | ev->usage_only << 1 |
                                          (ev->event != NULL) << 2);
    d->hash = mix(d->hash, &flags, 1);
    d->hash = mix(d->hash, &ev->data_len, sizeof(ev->data_len));
    d->hash = mix(d->hash, ev->data, ev->data_len);
    if (ev->event)
        d->hash = mix(d->hash, ev->event, ev->event_len);
    d->events++;
    d->raw_total += ev->raw_len;
    /* The non-stream helper must cope with any event data too. */
    struct sse_usage u = usage_from_json_body(ev->data, ev->data_len);
    (void)u;
}

static bool run(const char *s, size_t len, size_t cut, struct digest *d,
                struct sse_usage *usage)
{
    struct sse_parser *p = sse_parser_new(MAX_EVENT_BYTES);
    if (!p)
        abort();
    memset(d, 0, sizeof(*d));
    d->hash = 14695981039346656037ULL;
    bool ok = sse_parser_feed(p, s, cut, on_event, d) &&
              sse_parser_feed(p, s + cut, len - cut, on_event, d);
    *usage = sse_parser_usage(p);
    sse_parser_free(p);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *s = (const char *)data + 1;
    size_t len = size - 1;
    size_t cut = len ? (size_t)data[0] * len / 255 : 0;

    struct digest whole, split;
    struct sse_usage u_whole, u_split;
    bool ok_whole = run(s, len, 0, &whole, &u_whole);
    bool ok_split = run(s, len, cut, &split, &u_split);

    if (ok_whole != ok_split || whole.hash != split.hash ||
        whole.events != split.events ||
        memcmp(&u_whole, &u_split, sizeof(u_whole)) != 0)
        abort();
    if (whole.raw_total > len || split.raw_total > len)
        abort();
    return 0;
}
