/* Decisions of a pure policy, reused without running Lua.
 *
 * A script that sets `decide_is_pure = true` promises that decide() depends
 * only on what it reads from req. Then a request on which every read the
 * script made last time gives the same answer gets the same decision, and
 * the Lua state (whose code and data a cold cache makes cost 10-20 us) is
 * not touched at all.
 *
 * The reads of one call form a path in a tree. A pure script's first read
 * is always the same; each answer then fixes the next read, and the last
 * answer fixes the decision. A lookup follows the tree, asking the request
 * each node's question, and either reaches a decision or falls off at an
 * answer not seen yet; then the call runs recorded and its path is added.
 * A recorded path that contradicts the tree proves the script impure, and
 * the memo turns itself off; so does policy.c when a call changes the
 * script's state (policy_state.h).
 *
 * Per policy, so per worker thread: no locking. Internal to the policy
 * engine. */
#ifndef SLUICE_POLICY_MEMO_H
#define SLUICE_POLICY_MEMO_H

#include "policy.h"

#include <stdbool.h>
#include <stdint.h>

struct policy_memo;

struct policy_memo *policy_memo_new(void);
void policy_memo_free(struct policy_memo *m);

/* The decision at the end of the stored path whose every question req
 * answers the same way, or NULL. Valid until the next store or disable. */
const struct policy_decision *
policy_memo_find(struct policy_memo *m, const struct policy_req_view *req);

/* Counts a found decision as served. */
void policy_memo_count_hit(struct policy_memo *m);

/* Counts a call that must run; false (once per 4096 calls) when fewer than
 * a quarter of those calls were served from the tree: reuse does not pay
 * for itself and should be turned off. */
bool policy_memo_worth_running(struct policy_memo *m);

/* Starts recording one call: returns a view that answers from req and
 * notes each read. Valid until the next call on m. */
const struct policy_req_view *
policy_memo_record(struct policy_memo *m, const struct policy_req_view *req);

/* The recorded call also depended on something outside the reads (the
 * clock, health, randomness, the body) or had an effect (a log line):
 * its decision must not be stored. */
void policy_memo_spoil(struct policy_memo *m);

/* Adds the recorded call's path with its decision. Returns false when the
 * memo is (now) disabled: the path contradicts the tree, or paths do not
 * repeat within the memory cap. */
bool policy_memo_store(struct policy_memo *m, const struct policy_decision *d);

/* Stops reuse for good (for this load of the script); `why` (a static
 * string) completes the log line "decide_is_pure is set, but <why>". */
void policy_memo_disable(struct policy_memo *m, const char *why);
const char *policy_memo_why_off(const struct policy_memo *m); /* or NULL */
bool policy_memo_enabled(const struct policy_memo *m);

struct policy_memo_stats policy_memo_stats(const struct policy_memo *m);

#endif
