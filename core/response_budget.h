/* The gateway-wide budget of buffered upstream response bytes.
 *
 * A non-streamed answer is held whole before it is sent (usage, plugins,
 * the cache read it). Each answer has its own cap, but many concurrent
 * answers under their caps can still exhaust memory: eight upstreams
 * sending endless 64 KiB chunks once raised RSS by hundreds of MB. Every
 * buffered byte is therefore also taken from one budget shared by all
 * workers; past it, the request that asks for more fails with 503 and the
 * others keep going. */
#ifndef SLUICE_RESPONSE_BUDGET_H
#define SLUICE_RESPONSE_BUDGET_H

#include <stdbool.h>
#include <stddef.h>

/* Any thread. All or nothing: false (and nothing taken) when n more bytes
 * would pass `limit` (the request's config generation's, so a reload
 * applies at once; 0: no limit). */
bool response_budget_take(size_t n, size_t limit);
void response_budget_release(size_t n);

size_t response_budget_in_use(void);

#endif
