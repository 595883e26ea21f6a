/* The Lua sandbox under a policy: a capped allocator, an instruction budget
 * that pcall cannot swallow, and a whitelisted standard library whose
 * pattern functions refuse work that would backtrack for too long.
 * Internal to the policy engine (core/policy*.c). */
#ifndef SLUICE_POLICY_SANDBOX_H
#define SLUICE_POLICY_SANDBOX_H

#include <lua.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Allocating this many bytes costs one instruction of the budget, so that
 * loops of C calls with big results (("x"):rep(1e6), big .. big,
 * s:upper()) are bounded by the budget, not only by the memory cap. */
#define POLICY_ALLOC_BYTES_PER_INSTRUCTION 16

struct policy_sandbox {
    lua_State *L;
    /* Written by the owning worker only; atomic so that the admin thread
     * may read it (policy_memory_used) without a data race. */
    _Atomic size_t mem_used;
    size_t mem_limit;
    uint64_t budget;      /* instructions per protected run */
    uint64_t budget_left; /* counts down during a run */
    int hook_every;       /* count-hook period while within budget */
    bool charging;        /* a protected run is under way */
    bool budget_exhausted;
    size_t max_pattern_work;
    /* Set by calls whose result or effect is not a function of req (the
     * clock, health, randomness, logging): such a decision of a pure
     * script is not kept for reuse. Cleared before each decide(). */
    bool left_req;
};

/* Marks the running call as having used more than req (see left_req). */
void policy_sandbox_note_outside(lua_State *L);

/* A new state whose allocations are charged to `sb` (sb->mem_limit must
 * be set). NULL when even the bare state does not fit. */
lua_State *policy_sandbox_new_state(struct policy_sandbox *sb);

/* The sandbox that owns L (also from coroutines of L). */
struct policy_sandbox *policy_sandbox_of(lua_State *L);

/* lua_CFunction, run it under lua_pcall: opens the safe libraries, wraps
 * the string functions and pushes a fresh environment table holding only
 * whitelisted globals (the script's _ENV). */
int policy_sandbox_open(lua_State *L);

/* Resets the instruction budget; call before each protected run, and
 * policy_sandbox_disarm after it. */
void policy_sandbox_arm_budget(lua_State *L, struct policy_sandbox *sb);
void policy_sandbox_disarm(struct policy_sandbox *sb);

/* Worst-case matcher steps for `pattern` over an n-byte subject (exposed
 * for tests). `anchor_ok`: a leading '^' anchors (not for gmatch). */
double policy_pattern_work(const char *pattern, size_t plen, size_t n,
                           bool anchor_ok);

#endif
