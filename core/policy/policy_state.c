/* The fingerprint of a policy script's state: see policy_state.h. */
#include "policy_state.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define FIRST_SEEN_CAP 512 /* a power of two */

struct walker {
    lua_State *L;
    struct policy_state_walk *w;
    uint64_t h;
    size_t items;
    size_t seen_count;
    bool failed;
};

static void mix(struct walker *k, uint64_t v)
{
    k->h = (k->h ^ v) * 0x9E3779B97F4A7C15ull;
    k->h ^= k->h >> 29;
}

/* Strings by content, not address: a string freed during a call and a
 * different one allocated at the same place must not look alike. */
static void mix_bytes(struct walker *k, const char *s, size_t len)
{
    mix(k, len);
    uint64_t word;
    for (; len >= 8; s += 8, len -= 8) {
        memcpy(&word, s, 8);
        mix(k, word);
    }
    word = 0;
    memcpy(&word, s, len);
    mix(k, word);
}

static size_t slot_of(const void *p, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 32) & (cap - 1);
}

static bool grow_seen(struct walker *k)
{
    struct policy_state_walk *w = k->w;
    size_t cap = w->seen_cap ? w->seen_cap * 2 : FIRST_SEEN_CAP;
    const void **seen = calloc(cap, sizeof *seen);
    if (seen == NULL)
        return false;
    for (size_t i = 0; i < w->seen_cap; i++) {
        if (w->seen[i] == NULL)
            continue;
        size_t j = slot_of(w->seen[i], cap);
        while (seen[j] != NULL)
            j = (j + 1) & (cap - 1);
        seen[j] = w->seen[i];
    }
    free(w->seen);
    w->seen = seen;
    w->seen_cap = cap;
    return true;
}

/* Marks p visited; false when it already was (or the set cannot grow,
 * which fails the walk). */
static bool first_visit(struct walker *k, const void *p)
{
    struct policy_state_walk *w = k->w;
    if ((k->seen_count + 1) * 2 > w->seen_cap && !grow_seen(k)) {
        k->failed = true;
        return false;
    }
    size_t i = slot_of(p, w->seen_cap);
    while (w->seen[i] != NULL) {
        if (w->seen[i] == p)
            return false;
        i = (i + 1) & (w->seen_cap - 1);
    }
    w->seen[i] = p;
    k->seen_count++;
    return true;
}

static void walk_value(struct walker *k, int idx, int depth);

/* Each level of the walk holds at most a key and a value on the stack. */
static bool room_for_level(struct walker *k, int depth)
{
    if (depth >= MAX_DEPTH || !lua_checkstack(k->L, 3)) {
        k->failed = true;
        return false;
    }
    return true;
}

static void walk_table(struct walker *k, int t, int depth)
{
    lua_State *L = k->L;
    if (!room_for_level(k, depth))
        return;
    int top = lua_gettop(L);
    lua_pushnil(L);
    while (!k->failed && lua_next(L, t) != 0) {
        walk_value(k, top + 1, depth + 1);
        walk_value(k, top + 2, depth + 1);
        lua_settop(L, top + 1);
    }
    lua_settop(L, top);
}

/* A Lua function is its code (where it is defined) and its upvalues: a
 * counter kept in a local of the script lives in one. A C function's
 * upvalues are out of a script's reach (no debug library). */
static void walk_function(struct walker *k, int f, int depth)
{
    lua_State *L = k->L;
    if (lua_iscfunction(L, f)) {
        mix(k, (uint64_t)(uintptr_t)lua_tocfunction(L, f));
        return;
    }
    if (!room_for_level(k, depth))
        return;
    lua_Debug ar;
    lua_pushvalue(L, f);
    lua_getinfo(L, ">S", &ar);
    mix(k, (uint64_t)ar.linedefined << 32 | (uint32_t)ar.lastlinedefined);
    int top = lua_gettop(L);
    for (int n = 1; !k->failed && lua_getupvalue(L, f, n) != NULL; n++) {
        walk_value(k, top + 1, depth + 1);
        lua_settop(L, top);
    }
}

/* idx is absolute. */
static void walk_value(struct walker *k, int idx, int depth)
{
    lua_State *L = k->L;
    if (++k->items > POLICY_STATE_MAX_ITEMS) {
        k->failed = true;
        return;
    }
    int type = lua_type(L, idx);
    mix(k, (uint64_t)type);
    switch (type) {
    case LUA_TNIL:
        return;
    case LUA_TBOOLEAN:
        mix(k, (uint64_t)lua_toboolean(L, idx));
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            mix(k, (uint64_t)lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            uint64_t bits;
            memcpy(&bits, &d, sizeof bits);
            mix(k, ~bits);
        }
        return;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        mix_bytes(k, s, len);
        return;
    }
    case LUA_TTABLE:
    case LUA_TFUNCTION: {
        /* Identity too: a table rebuilt with the same contents is still a
         * change (a script could compare or print it). */
        const void *p = lua_topointer(L, idx);
        mix(k, (uint64_t)(uintptr_t)p);
        if (!first_visit(k, p))
            return;
        if (type == LUA_TTABLE)
            walk_table(k, idx, depth);
        else
            walk_function(k, idx, depth);
        return;
    }
    default: /* userdata, light userdata, threads: by identity */
        mix(k, (uint64_t)(uintptr_t)lua_topointer(L, idx));
        return;
    }
}

bool policy_state_fingerprint(lua_State *L, int env_idx,
                              struct policy_state_walk *w, uint64_t *out)
{
    struct walker k = {.L = L, .w = w, .h = 0x243F6A8885A308D3ull};
    if (w->seen != NULL)
        memset(w->seen, 0, w->seen_cap * sizeof *w->seen);
    walk_value(&k, lua_absindex(L, env_idx), 0);
    *out = k.h;
    return !k.failed;
}

void policy_state_walk_free(struct policy_state_walk *w)
{
    free(w->seen);
    w->seen = NULL;
    w->seen_cap = 0;
}
