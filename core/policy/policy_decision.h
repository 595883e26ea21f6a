/* Turns what decide() returned (and what it left in ctx.vars) into a
 * struct policy_decision, trusting nothing. Internal to the policy engine. */
#ifndef SLUICE_POLICY_DECISION_H
#define SLUICE_POLICY_DECISION_H

#include "policy.h"

#include <lua.h>
#include <stdbool.h>

/* Empty decision: nothing set, degrade_level -1. */
void policy_decision_clear(struct policy_decision *out);

/* Copies src into dst, reading and writing only the parts in use (the
 * struct is ~2 KiB, mostly empty). */
void policy_decision_copy(struct policy_decision *dst,
                          const struct policy_decision *src);

/* Same decision: every field in use is equal. */
bool policy_decision_equal(const struct policy_decision *a,
                           const struct policy_decision *b);

/* Reads the value at idx (nil or a table) into out. On a bad value raises
 * a Lua error "<where>: decide() returned bad field 'x': reason", where
 * `where` is "script:line". Uses raw access only, never metamethods. */
void policy_decision_read(lua_State *L, int idx, const char *where,
                          struct policy_decision *out);

/* Copies ctx.vars of the ctx table at idx into out->vars; raises a Lua
 * error naming the entry on a bad one. */
void policy_decision_read_vars(lua_State *L, int ctx_idx, const char *where,
                               struct policy_decision *out);

#endif
