/* Assembling a streamed answer into the object the same request would have
 * received without `stream: true`: a `chat.completion` from its
 * `chat.completion.chunk` events (content and refusal concatenated, tool
 * calls merged by index with their arguments concatenated, finish_reason,
 * usage), or a `text_completion` from a /v1/completions stream.
 *
 * Fed one SSE event at a time by the stream relay, only for requests where
 * some loaded plugin asked for whole answers; the result exists only for a
 * stream that ended cleanly ([DONE] seen and every choice finished).
 * No core dependencies: unit-tested on its own (tests/streams/).
 */
#ifndef SLUICE_STREAM_ASSEMBLE_H
#define SLUICE_STREAM_ASSEMBLE_H

#include <stdbool.h>
#include <stddef.h>

enum stream_assemble_kind {
    STREAM_ASSEMBLE_CHAT = 0,        /* /v1/chat/completions */
    STREAM_ASSEMBLE_COMPLETIONS = 1, /* /v1/completions */
};

struct stream_assembly;

/* max_bytes caps the text kept (content, arguments, ...); past it the
 * assembly fails and gives no result. NULL when out of memory. */
struct stream_assembly *stream_assembly_new(enum stream_assemble_kind kind,
                                            size_t max_bytes);
void stream_assembly_free(struct stream_assembly *a);

/* One event's data (the joined `data:` lines). "[DONE]" ends the stream;
 * a chunk that is not JSON, an `error` event, or a chunk after [DONE]
 * makes the assembly fail. */
void stream_assembly_event(struct stream_assembly *a, const char *data,
                           size_t len);

/* True once [DONE] was seen, nothing failed, and every choice has a
 * finish_reason. */
bool stream_assembly_complete(const struct stream_assembly *a);

/* The assembled object as compact JSON, malloc'd (the caller frees it),
 * with *len set; NULL when the stream is not complete or out of memory. */
char *stream_assembly_result(const struct stream_assembly *a, size_t *len);

#endif
