/* cache_answer: which upstream answers may be stored, and how a stored one
 * is served again. */
#ifndef SLUICE_CACHE_ANSWER_H
#define SLUICE_CACHE_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_finish_rules {
    const char *const *reasons; /* finish reasons that may be stored */
    size_t count;
};

/* True for a complete chat.completion or text_completion: a JSON object
 * without an "error" member, at least one choice, and every choice's
 * finish_reason in the list (a cut answer has none, a content filter
 * stop is "content_filter", tool calls "tool_calls"). */
bool cache_answer_storable(const char *body, size_t len,
                           const struct cache_finish_rules *rules);

/* The stored answer as served now: a fresh `id` (same prefix as the
 * provider's, e.g. chatcmpl-, then 24 random hex digits), `created` =
 * created_s, and usage.prompt_tokens_details.cached_tokens = prompt_tokens
 * (the whole prompt was answered from the cache). malloc'd, NUL-terminated;
 * NULL when memory ran out or body is not JSON. */
char *cache_answer_serve(const char *body, size_t len, uint64_t random,
                         int64_t created_s, size_t *out_len);

/* What the store keeps: the answer as served, with `id` and `created`
 * moved to the front as fixed-width placeholders
 * ({"id":"chatcmpl-sluice<24 hex>","created":<10 digits>,...}) and
 * cached_tokens set, so a hit only copies the bytes and overwrites the
 * placeholders (cache_answer_fill) instead of parsing and re-encoding.
 * malloc'd; NULL when memory ran out or body is not a JSON object. */
char *cache_answer_template(const char *body, size_t len, size_t *out_len);

/* A copy of a template with a fresh id and created_s; NULL when t is not a
 * template (e.g. an entry written by an older version): serve it with
 * cache_answer_serve() instead. */
char *cache_answer_fill(const char *t, size_t len, uint64_t random,
                        int64_t created_s);

#endif
