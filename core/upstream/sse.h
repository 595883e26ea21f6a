/* Incremental parser for the upstream's Server-Sent Events stream
 * (OpenAI chat/completions/responses streaming). Bytes may be split
 * anywhere; events come out whole. It also picks the usage object out of
 * the chunks, so token accounting works for streams.
 */
#ifndef SLUICE_SSE_H
#define SLUICE_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sse_usage {
    bool known;
    uint64_t prompt_tokens, completion_tokens, cached_tokens, total_tokens;
};

struct sse_event {
    /* Joined data: lines, without the trailing LF. Not NUL-terminated: a
     * one-line event points into the bytes fed. */
    const char *data;
    size_t data_len;
    const char *event; /* "event:" field or NULL */
    size_t event_len;
    size_t raw_len; /* bytes of the whole event as received, incl. blank line */
    /* Offset just past the event in the bytes passed to this
     * sse_parser_feed(): when raw_len <= end, the event arrived whole in
     * them, as [end - raw_len, end). */
    size_t end;
    bool done;       /* data is "[DONE]" */
    bool usage_only; /* a chunk carrying usage and an empty choices array */
};

struct sse_parser;

/* max_event_bytes caps one event; beyond it the parser reports an error. */
struct sse_parser *sse_parser_new(size_t max_event_bytes);
void sse_parser_free(struct sse_parser *p);

/* Feeds bytes; calls on_event for each complete event. Returns false on a
 * malformed or oversized stream (the parser stays in error). The event's
 * pointers are valid only during the callback. */
bool sse_parser_feed(struct sse_parser *p, const char *data, size_t len,
                     void (*on_event)(const struct sse_event *ev, void *arg),
                     void *arg);
/* Usage seen so far (from any chunk carrying "usage" / response.completed). */
struct sse_usage sse_parser_usage(const struct sse_parser *p);
bool sse_parser_saw_done(const struct sse_parser *p);

/* Non-streaming helper: usage from a complete JSON response body. */
struct sse_usage usage_from_json_body(const char *body, size_t len);

#endif
