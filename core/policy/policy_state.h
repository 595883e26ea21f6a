/* A fingerprint of everything a policy script can reach and change: its
 * globals, the libraries' tables, every table reachable from them, and the
 * upvalues of every function reachable from them. Two equal fingerprints
 * taken before and after a decide() call mean the call changed nothing a
 * later call could see, which is what lets a pure script's decisions be
 * reused (policy_memo.h). Internal to the policy engine. */
#ifndef SLUICE_POLICY_STATE_H
#define SLUICE_POLICY_STATE_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Walks larger than this are refused: checking after every call must stay
 * cheap, and a script that keeps this much state is not one to trust with
 * reuse anyway. */
#define POLICY_STATE_MAX_ITEMS 5000

struct policy_state_walk {
    const void **seen; /* open-addressing set of visited tables/functions */
    size_t seen_cap;
};

/* Fingerprint of what is reachable from the table at env_idx (the script's
 * _ENV). Run it protected: it may grow the Lua stack. Returns false when
 * the state is over POLICY_STATE_MAX_ITEMS or nested deeper than 64, or
 * when the visited set cannot be allocated. */
bool policy_state_fingerprint(lua_State *L, int env_idx,
                              struct policy_state_walk *w, uint64_t *out);

void policy_state_walk_free(struct policy_state_walk *w);

#endif
