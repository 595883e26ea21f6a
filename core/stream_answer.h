/* Answering as a stream: a complete `chat.completion` (or `text_completion`)
 * body, e.g. a cache hit or a coalesced answer, rendered as the SSE events
 * the provider would have sent for the same request with `stream: true`:
 * a role chunk, content (and refusal) chunks, tool-call chunks, a finish
 * chunk per choice, the usage chunk when the client set
 * stream_options.include_usage, then `data: [DONE]`. Official clients
 * parse it as a live stream. No core dependencies (tests/streams/).
 */
#ifndef SLUICE_STREAM_ANSWER_H
#define SLUICE_STREAM_ANSWER_H

#include <stdbool.h>
#include <stddef.h>

#include "stream_assemble.h"

/* The SSE bytes, malloc'd (the caller frees), with *out_len set. NULL when
 * body is not a complete answer of that kind (not JSON, another object, no
 * choices array), so the caller can serve it as it is; NULL also when out
 * of memory. */
char *stream_answer_render(enum stream_assemble_kind kind, const char *body,
                           size_t len, bool include_usage, size_t *out_len);

#endif
