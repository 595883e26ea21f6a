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
 * the memo turns itself off.
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

/* True, with *out filled, when req answers every question on a stored
 * path. */
bool policy_memo_find(struct policy_memo *m, const struct policy_req_view *req,
                      struct policy_decision *out);

/* Starts recording one call: returns a view that answers from req and
 * notes each read. Valid until the next call on m. */
const struct policy_req_view *
policy_memo_record(struct policy_memo *m, const struct policy_req_view *req);

/* The recorded call also depended on something outside the reads (the
 * clock, health, randomness, the body) or had an effect (a log line):
 * its decision must not be stored. */
void policy_memo_spoil(struct policy_memo *m);

/* Adds the recorded call's path with its decision. Returns false when the
 * path contradicts the tree: the memo is then disabled for good. */
bool policy_memo_store(struct policy_memo *m, const struct policy_decision *d);

struct policy_memo_stats policy_memo_stats(const struct policy_memo *m);

#endif
