/* Lua sandbox for policy scripts (recipe and measured escapes: shared
 * research/tech-notes.md §3). */
#include "policy_sandbox.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

/* Instructions between two budget checks while within budget: the hook
 * costs ~9% at this period (tech-notes §3). */
#define HOOK_PERIOD 1000

/* Keeps the estimate finite; anything near this is far over any cap. */
#define WORK_CEILING 1e30

/* ---- memory ---- */

static void budget_hook(lua_State *L, lua_Debug *ar);

/* Marks the budget spent and makes the very next VM instruction fail. */
static void exhaust_budget(struct policy_sandbox *sb)
{
    sb->budget_left = 0;
    sb->budget_exhausted = true;
    /* Safe from anywhere, even inside an allocation: it only sets fields
     * and the traps of the running Lua frames. */
    lua_sethook(sb->L, budget_hook, LUA_MASKCOUNT, 1);
}

static void charge(struct policy_sandbox *sb, uint64_t cost)
{
    if (!sb->charging || sb->budget_exhausted)
        return;
    if (cost < sb->budget_left)
        sb->budget_left -= cost;
    else
        exhaust_budget(sb);
}

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct policy_sandbox *sb = ud;
    /* With ptr == NULL, osize is a type tag, not a size. */
    size_t old = ptr != NULL ? osize : 0;
    /* One writer (this state's thread): relaxed load + store suffice. */
    size_t used = atomic_load_explicit(&sb->mem_used, memory_order_relaxed);

    if (nsize == 0) {
        free(ptr);
        atomic_store_explicit(&sb->mem_used, used - old, memory_order_relaxed);
        return NULL;
    }
    if (nsize > old) {
        size_t grow = nsize - old;
        if (grow > sb->mem_limit || used > sb->mem_limit - grow)
            return NULL; /* Lua runs an emergency GC, then raises ERRMEM */
    }
    void *np = realloc(ptr, nsize);
    if (np == NULL)
        return nsize <= old ? ptr : NULL; /* Lua assumes shrinking works */
    atomic_store_explicit(&sb->mem_used, used - old + nsize,
                          memory_order_relaxed);
    /* The allocation itself succeeds (failing it would make Lua run an
     * emergency GC per attempt); the next instruction stops the script. */
    if (nsize > old)
        charge(sb, (nsize - old) / POLICY_ALLOC_BYTES_PER_INSTRUCTION);
    return np;
}

static int panic_handler(lua_State *L)
{
    /* Only reachable through a bug: every entry into Lua is protected. */
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "sluice policy: unprotected Lua error: %s\n",
            msg != NULL ? msg : "(no message)");
    return 0; /* Lua aborts */
}

lua_State *policy_sandbox_new_state(struct policy_sandbox *sb)
{
    atomic_store_explicit(&sb->mem_used, 0, memory_order_relaxed);
    sb->charging = false;
    sb->L = lua_newstate(capped_alloc, sb);
    if (sb->L != NULL)
        lua_atpanic(sb->L, panic_handler);
    return sb->L;
}

struct policy_sandbox *policy_sandbox_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

/* ---- instruction budget ---- */

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    struct policy_sandbox *sb = policy_sandbox_of(L);

    if (!sb->budget_exhausted) {
        uint64_t period = (uint64_t)sb->hook_every;
        if (sb->budget_left > period) {
            sb->budget_left -= period;
            return;
        }
        /* From now on fail at every instruction, so that a pcall inside
         * the script cannot swallow the stop and carry on. */
        exhaust_budget(sb);
    }
    lua_getinfo(L, "Sl", ar);
    lua_pushfstring(L, "%s:%d: instruction budget of %I exhausted",
                    ar->short_src, ar->currentline, (lua_Integer)sb->budget);
    lua_error(L);
}

void policy_sandbox_arm_budget(lua_State *L, struct policy_sandbox *sb)
{
    sb->hook_every = sb->budget < HOOK_PERIOD ? (int)sb->budget : HOOK_PERIOD;
    if (sb->hook_every < 1)
        sb->hook_every = 1;
    sb->budget_left = sb->budget;
    sb->budget_exhausted = false;
    sb->charging = true;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, sb->hook_every);
}

void policy_sandbox_disarm(struct policy_sandbox *sb)
{
    sb->charging = false;
}

/* ---- pattern cost ---- */

/* End of the set starting at p[i] == '[' (mirrors lstrlib's classEnd);
 * plen when malformed, and the real function then reports it. */
static size_t set_end(const char *p, size_t plen, size_t i)
{
    size_t j = i + 1;
    if (j < plen && p[j] == '^')
        j++;
    do {
        if (j >= plen)
            return plen;
        if (p[j++] == '%' && j < plen)
            j++;
    } while (j < plen && p[j] != ']');
    return j < plen ? j + 1 : plen;
}

/* Lua's matcher backtracks inside one C call, where the count hook never
 * fires: ('.-'):rep(4)..'b' over 120 bytes takes seconds. So bound the
 * steps from the pattern's shape. An unbounded item ('*', '+', '-', %b,
 * a back-reference) followed by anything that can fail may take any
 * length; the lengths of q such items split at most n bytes in C(n+q, q)
 * ways; each '?' followed by more pattern doubles the paths; each start
 * position tries them all at up to #p steps each. A quantifier at the very
 * end never backtracks (the rest, empty, cannot fail). */
double policy_pattern_work(const char *p, size_t plen, size_t n, bool anchor_ok)
{
    size_t i = 0;
    bool anchored = false;
    unsigned unbounded = 0, optional = 0;
    enum { NONE, UNBOUNDED, OPTIONAL } pending = NONE;

    if (anchor_ok && plen > 0 && p[0] == '^') {
        anchored = true;
        i = 1;
    }
    while (i < plen) {
        char c = p[i];
        if (c == '(' || c == ')') {
            i++;
            continue;
        }
        /* More pattern follows the last quantifier: it can fail. */
        unbounded += pending == UNBOUNDED;
        optional += pending == OPTIONAL;
        pending = NONE;
        if (c == '$' && i + 1 == plen)
            break;

        size_t end = i + 1;
        bool quantifiable = true;
        if (c == '%' && i + 1 < plen) {
            char e = p[i + 1];
            quantifiable = e != 'b' && e != 'f' && !(e >= '0' && e <= '9');
            if (e == 'b' || (e >= '0' && e <= '9'))
                unbounded++; /* scans or compares up to n bytes, may fail */
            if (e == 'b')
                end = i + 4;
            else if (e == 'f' && i + 2 < plen && p[i + 2] == '[')
                end = set_end(p, plen, i + 2);
            else
                end = i + 2;
        } else if (c == '[') {
            end = set_end(p, plen, i);
        }
        i = end < plen ? end : plen;
        if (quantifiable && i < plen) {
            if (p[i] == '?') {
                pending = OPTIONAL;
                i++;
            } else if (p[i] == '*' || p[i] == '+' || p[i] == '-') {
                pending = UNBOUNDED;
                i++;
            }
        }
    }

    double work = (anchored ? 1.0 : (double)n + 1) * (double)(plen ? plen : 1);
    for (unsigned k = 1; k <= unbounded && work < WORK_CEILING; k++)
        work *= ((double)n + k) / k;
    for (unsigned k = 0; k < optional && work < WORK_CEILING; k++)
        work *= 2;
    /* Never below the documented #subject * #pattern rule. */
    double floor_work = (double)n * (double)plen;
    return work > floor_work ? work : floor_work;
}

/* ---- string library wrappers ---- */

enum pattern_fn { PAT_FIND, PAT_MATCH, PAT_GMATCH, PAT_GSUB };

/* Upvalues: 1 the original function, 2 its enum pattern_fn. */
static int guarded_pattern(lua_State *L)
{
    enum pattern_fn kind =
        (enum pattern_fn)lua_tointeger(L, lua_upvalueindex(2));
    size_t n, plen;

    luaL_checklstring(L, 1, &n);
    const char *pattern = luaL_checklstring(L, 2, &plen);
    bool plain = kind == PAT_FIND && lua_toboolean(L, 4);
    struct policy_sandbox *sb = policy_sandbox_of(L);
    /* Even a plain find scans the subject (memchr, then memcmp at each
     * hit): charge it like the allocation of a copy, up front. */
    charge(sb, ((uint64_t)n + (uint64_t)n / 64 * plen) /
                   POLICY_ALLOC_BYTES_PER_INSTRUCTION);
    if (sb->budget_exhausted)
        return luaL_error(L, "instruction budget of %I exhausted",
                          (lua_Integer)sb->budget);
    if (!plain) {
        double work = policy_pattern_work(pattern, plen, n, kind != PAT_GMATCH);
        if (work > (double)sb->max_pattern_work)
            return luaL_error(
                L,
                "pattern too costly for a %I-byte subject (worst case %f "
                "steps, max_pattern_work %I); use s:find(text, 1, true) or "
                "a shorter subject",
                (lua_Integer)n, (lua_Number)work,
                (lua_Integer)sb->max_pattern_work);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* Refuses a result larger than the whole state may hold before trying to
 * allocate it. Upvalue 1: the original string.rep. */
static int guarded_rep(lua_State *L)
{
    size_t len, seplen;

    luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &seplen);
    if (n > 0) {
        double total =
            (double)len * (double)n + (double)seplen * (double)(n - 1);
        if (total > (double)policy_sandbox_of(L)->mem_limit)
            return luaL_error(L,
                              "string.rep result of %f bytes exceeds the "
                              "policy memory limit",
                              (lua_Number)total);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Replaced in the string table itself: it is also the __index of the
 * shared string metatable, so s:find(...) gets the wrapper too. */
static void wrap_string_library(lua_State *L, int strtab)
{
    static const struct {
        const char *name;
        enum pattern_fn kind;
    } guarded[] = {{"find", PAT_FIND},
                   {"match", PAT_MATCH},
                   {"gmatch", PAT_GMATCH},
                   {"gsub", PAT_GSUB}};

    for (size_t i = 0; i < sizeof guarded / sizeof guarded[0]; i++) {
        lua_getfield(L, strtab, guarded[i].name);
        lua_pushinteger(L, guarded[i].kind);
        lua_pushcclosure(L, guarded_pattern, 2);
        lua_setfield(L, strtab, guarded[i].name);
    }
    lua_getfield(L, strtab, "rep");
    lua_pushcclosure(L, guarded_rep, 1);
    lua_setfield(L, strtab, "rep");
    /* Bytecode has no use without load, and is how VM bugs are reached. */
    lua_pushnil(L);
    lua_setfield(L, strtab, "dump");
}

/* ---- xpcall ---- */

/* Lua runs a message handler before unwinding, and when the error comes
 * from the count hook it runs it with hooks off: a handler that loops
 * would never be stopped. So this xpcall unwinds first (a plain pcall) and
 * calls the handler afterwards, under the budget. Without the debug
 * library a handler could not inspect the failed stack anyway. */
static int xpcall_finish(lua_State *L, int status, lua_KContext extra)
{
    if (status == LUA_OK || status == LUA_YIELD)
        return lua_gettop(L) - (int)extra; /* true, results... */
    lua_pushvalue(L, 2);                   /* the handler */
    lua_insert(L, -2);                     /* handler(err) */
    lua_pcall(L, 1, 1, 0); /* a failing handler yields its own error */
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2; /* false, handler's result */
}

static int safe_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* f, handler, true, f, args... */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 0, 2, xpcall_finish);
    return xpcall_finish(L, status, 2);
}

/* ---- calls that are not a function of req ---- */

void policy_sandbox_note_outside(lua_State *L)
{
    policy_sandbox_of(L)->left_req = true;
}

/* math.random and math.randomseed: the wrapped function (upvalue 1),
 * noted as leaving req, so a pure script's random pick is never reused. */
static int noted_call(lua_State *L)
{
    policy_sandbox_note_outside(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static void note_random(lua_State *L, int mathtab)
{
    static const char *const names[] = {"random", "randomseed", NULL};
    for (const char *const *name = names; *name != NULL; name++) {
        lua_getfield(L, mathtab, *name);
        lua_pushcclosure(L, noted_call, 1);
        lua_setfield(L, mathtab, *name);
    }
}

/* ---- libraries and environment ---- */

/* No coroutine library: when allocations spend the budget, the stop is
 * forced through the main thread's hook (exhaust_budget), and a coroutine
 * runs on a thread of its own. Policies have no use for coroutines. */
static const luaL_Reg safe_libraries[] = {
    {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
    {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
    {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL},
};

/* What a script's _ENV starts with. Everything else in base is left out:
 * load, loadfile, dofile, require, collectgarbage, setmetatable,
 * getmetatable, rawset, rawget, rawequal, rawlen, print (replaced by a
 * logger), warn; xpcall is replaced (safe_xpcall). */
static const char *const env_whitelist[] = {
    "assert",       "error",         "ipairs",        "next",
    "pairs",        "pcall",         "select",        "tonumber",
    "tostring",     "type",          "_VERSION",      LUA_STRLIBNAME,
    LUA_TABLIBNAME, LUA_MATHLIBNAME, LUA_UTF8LIBNAME, NULL,
};

/* Also removed from the real globals, which no script can reach: belt and
 * braces should a reference ever leak. */
static const char *const unsafe_globals[] = {
    "load",         "loadfile",     "dofile", "require", "collectgarbage",
    "setmetatable", "getmetatable", "rawset", "rawget",  "rawequal",
    "rawlen",       "print",        "warn",   NULL,
};

int policy_sandbox_open(lua_State *L)
{
    for (const luaL_Reg *lib = safe_libraries; lib->name != NULL; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    lua_pushglobaltable(L);
    int globals = lua_gettop(L);
    for (const char *const *name = unsafe_globals; *name != NULL; name++) {
        lua_pushnil(L);
        lua_setfield(L, globals, *name);
    }
    lua_getfield(L, globals, LUA_STRLIBNAME);
    wrap_string_library(L, lua_gettop(L));
    lua_pop(L, 1);
    lua_getfield(L, globals, LUA_MATHLIBNAME);
    note_random(L, lua_gettop(L));
    lua_pop(L, 1);

    lua_createtable(L, 0, 24);
    int env = lua_gettop(L);
    for (const char *const *name = env_whitelist; *name != NULL; name++) {
        lua_getfield(L, globals, *name);
        lua_setfield(L, env, *name);
    }
    lua_pushcfunction(L, safe_xpcall);
    lua_setfield(L, env, "xpcall");
    lua_pushvalue(L, env);
    lua_setfield(L, env, LUA_GNAME);
    return 1;
}
