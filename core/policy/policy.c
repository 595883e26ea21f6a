/* Lua policy engine: loads a script into its own sandboxed state and runs
 * its decide(req, ctx) per request. See policy.h for the contract and
 * policies/README.md for what scripts see. */
#include "policy.h"

#include "policy_decision.h"
#include "policy_memo.h"
#include "policy_sandbox.h"
#include "policy_state.h"
#include "policy_view.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Defaults for limits left at 0 (the same as the config's defaults). */
#define DEFAULT_INSTRUCTION_BUDGET 100000
#define DEFAULT_MEMORY_LIMIT (8u << 20)
#define DEFAULT_MAX_PATTERN_WORK 100000
/* A policy is a page of Lua, not a data file. */
#define MAX_SCRIPT_BYTES (1u << 20)

struct policy {
    struct policy_sandbox sandbox; /* first: it is the allocator's ud */
    struct policy_host host;
    lua_State *L;
    int decide_ref;
    int ctx_meta_ref; /* the metatable every ctx gets: see push_ctx */
    int decide_line;
    int env_ref; /* the script's globals */
    /* The script set decide_is_pure = true: its decisions are reused,
     * checked by the fingerprint of its state taken after loading. */
    bool pure;
    struct policy_memo *memo; /* when pure */
    struct policy_state_walk walk;
    uint64_t state_at_load;
    /* "script:line" of decide(), prefix of return-value errors; the
     * script path until decide() is known. */
    char where[256];
    /* The script as Lua names it in messages (may be shortened). */
    char source[LUA_IDSIZE];
    const char *path; /* only during load */
};

static struct policy *policy_of(lua_State *L)
{
    return (struct policy *)policy_sandbox_of(L);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* True when msg already starts with "<source>:<digit>". */
static bool has_position(const char *msg, const char *source)
{
    size_t n = strlen(source);
    return n > 0 && strncmp(msg, source, n) == 0 && msg[n] == ':' &&
           msg[n + 1] >= '0' && msg[n + 1] <= '9';
}

/* Message handler: every error leaves with "script:line: ". Runs as C,
 * so an exhausted budget does not stop it. */
static int add_position(lua_State *L)
{
    struct policy *p = policy_of(L);
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = lua_pushfstring(L, "error object is a %s value",
                              luaL_typename(L, 1));
    if (has_position(msg, p->source))
        return 1;
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline > 0) {
            lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
            return 1;
        }
    }
    if (p->decide_line > 0)
        lua_pushfstring(L, "%s: %s", p->where, msg);
    else
        lua_pushfstring(L, "%s: %s", p->path != NULL ? p->path : p->source,
                        msg);
    return 1;
}

/* The error at the top of L after a failed protected call, into err. */
static void take_error(struct policy *p, int status, char *err, size_t errlen)
{
    const char *msg = lua_tostring(p->L, -1);
    if (status == LUA_ERRMEM && p->sandbox.budget_exhausted)
        set_err(err, errlen, "%s: instruction budget of %llu exhausted",
                p->where, (unsigned long long)p->sandbox.budget);
    else if (status == LUA_ERRMEM)
        set_err(err, errlen, "%s: memory limit of %zu bytes exceeded", p->where,
                p->sandbox.mem_limit);
    else
        set_err(err, errlen, "%s", msg != NULL ? msg : "unknown error");
}

/* ---- load ---- */

static int read_script(const char *path, char **text, size_t *len, char *err,
                       size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(MAX_SCRIPT_BYTES + 1);
    size_t n = buf != NULL ? fread(buf, 1, MAX_SCRIPT_BYTES + 1, f) : 0;
    int failed = buf == NULL || ferror(f);
    int saved_errno = errno;
    fclose(f);
    if (failed) {
        set_err(err, errlen, "%s: cannot read: %s", path,
                buf == NULL ? "out of memory" : strerror(saved_errno));
        free(buf);
        return -1;
    }
    if (n > MAX_SCRIPT_BYTES) {
        set_err(err, errlen, "%s: larger than %u bytes", path,
                MAX_SCRIPT_BYTES);
        free(buf);
        return -1;
    }
    *text = buf;
    *len = n;
    return 0;
}

struct load_args {
    const char *text;
    size_t len;
};

/* ---- ctx ---- */

/* ctx.vars is made on first use, so a decide() that never touches it does
 * not pay for a second table per call. rawset: later reads are plain. */
static int ctx_index(lua_State *L)
{
    size_t len = 0;
    const char *key = lua_tolstring(L, 2, &len);
    if (lua_type(L, 2) != LUA_TSTRING || len != 4 || memcmp(key, "vars", 4))
        return 0;
    lua_newtable(L);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
}

/* Shared by every ctx of the state. The sandbox has no getmetatable or
 * setmetatable; __metatable guards it as well, so that one call can never
 * change the next one's ctx. */
static void make_ctx_metatable(lua_State *L)
{
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, ctx_index);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
}

/* A fresh ctx for one decide() call. */
static void push_ctx(lua_State *L, const struct policy *p)
{
    lua_createtable(L, 0, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ctx_meta_ref);
    lua_setmetatable(L, -2);
}

/* ---- decide_is_pure ---- */

/* Reads the script's decide_is_pure (absent is false). */
static bool read_pure(lua_State *L, int env)
{
    lua_pushliteral(L, "decide_is_pure");
    int type = lua_rawget(L, env);
    bool pure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        luaL_error(L, "decide_is_pure must be true or false");
    return pure;
}

static bool fingerprint(struct policy *p, uint64_t *out);
static void reuse_off(struct policy *p, const char *why);

/* In a pure script the library tables become views: an empty table that
 * reads through to the library. Calls work as before, a script's own
 * additions land in the view, and the state check after each call walks
 * four empty tables instead of ~60 library functions (the libraries
 * themselves are then out of the script's reach: no getmetatable). */
static void view_libraries(lua_State *L, int env)
{
    static const char *const libraries[] = {
        LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME, LUA_UTF8LIBNAME, NULL};
    for (const char *const *name = libraries; *name != NULL; name++) {
        if (lua_getfield(L, env, *name) != LUA_TTABLE) {
            lua_pop(L, 1);
            continue;
        }
        lua_createtable(L, 0, 0);
        lua_createtable(L, 0, 2);
        lua_pushvalue(L, -3);
        lua_setfield(L, -2, "__index");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_setmetatable(L, -2);
        lua_setfield(L, env, *name);
        lua_pop(L, 1);
    }
}

/* Protected: builds the sandbox, compiles and runs the script's top level
 * under the instruction budget, and keeps decide(). */
static int load_protected(lua_State *L)
{
    struct policy *p = policy_of(L);
    const struct load_args *args = lua_touserdata(L, 1);

    lua_pushcfunction(L, policy_sandbox_open);
    lua_call(L, 0, 1);
    int env = lua_gettop(L);
    policy_view_install(L, env, &p->host);

    char chunkname[4096];
    snprintf(chunkname, sizeof chunkname, "@%s", p->path);
    /* "t": text only. Precompiled bytecode can break the VM. */
    if (luaL_loadbufferx(L, args->text, args->len, chunkname, "t") != LUA_OK)
        return lua_error(L);
    int chunk = lua_gettop(L);

    lua_Debug ar;
    lua_pushvalue(L, chunk);
    lua_getinfo(L, ">S", &ar);
    snprintf(p->source, sizeof p->source, "%s", ar.short_src);

    lua_pushvalue(L, env);
    lua_setupvalue(L, chunk, 1); /* the script's own _ENV */
    policy_sandbox_arm_budget(L, &p->sandbox);
    lua_call(L, 0, 0);

    lua_pushliteral(L, "decide");
    if (lua_rawget(L, env) != LUA_TFUNCTION)
        return luaL_error(L, "the script must define a global function "
                             "decide(req, ctx)");
    lua_pushvalue(L, -1);
    lua_getinfo(L, ">S", &ar);
    p->decide_line = ar.linedefined > 0 ? ar.linedefined : 1;
    snprintf(p->where, sizeof p->where, "%s:%d", p->source, p->decide_line);
    p->decide_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    make_ctx_metatable(L);
    p->ctx_meta_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    p->pure = read_pure(L, env);
    if (p->pure)
        view_libraries(L, env);
    lua_pushvalue(L, env);
    p->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static void apply_limits(struct policy_sandbox *sb,
                         const struct policy_limits *limits)
{
    struct policy_limits l =
        limits != NULL ? *limits : (struct policy_limits){0};
    sb->budget = l.instruction_budget ? l.instruction_budget
                                      : DEFAULT_INSTRUCTION_BUDGET;
    sb->mem_limit =
        l.memory_limit_bytes ? l.memory_limit_bytes : DEFAULT_MEMORY_LIMIT;
    sb->max_pattern_work =
        l.max_pattern_work ? l.max_pattern_work : DEFAULT_MAX_PATTERN_WORK;
}

struct policy *policy_load(const char *script_path,
                           const struct policy_limits *limits,
                           const struct policy_env *env, char *err,
                           size_t errlen)
{
    struct load_args args;
    char *text = NULL;

    if (script_path == NULL) {
        set_err(err, errlen, "policy: no script path");
        return NULL;
    }
    if (read_script(script_path, &text, &args.len, err, errlen) != 0)
        return NULL;
    args.text = text;

    struct policy *p = calloc(1, sizeof *p);
    if (p == NULL) {
        set_err(err, errlen, "%s: out of memory", script_path);
        free(text);
        return NULL;
    }
    apply_limits(&p->sandbox, limits);
    if (env != NULL)
        p->host.env = *env;
    snprintf(p->host.log_name, sizeof p->host.log_name, "%s", script_path);
    p->path = script_path;
    p->decide_ref = p->ctx_meta_ref = p->env_ref = LUA_NOREF;
    snprintf(p->where, sizeof p->where, "%s", script_path);

    p->L = policy_sandbox_new_state(&p->sandbox);
    if (p->L == NULL) {
        set_err(err, errlen, "%s: cannot create a Lua state within %zu bytes",
                script_path, p->sandbox.mem_limit);
        free(p);
        free(text);
        return NULL;
    }
    lua_pushcfunction(p->L, add_position);
    lua_pushcfunction(p->L, load_protected);
    lua_pushlightuserdata(p->L, &args);
    int status = lua_pcall(p->L, 1, 0, 1);
    policy_sandbox_disarm(&p->sandbox);
    free(text);
    if (status != LUA_OK) {
        take_error(p, status, err, errlen);
        p->path = NULL;
        policy_free(p);
        return NULL;
    }
    lua_settop(p->L, 0);
    p->path = NULL;
    if (p->pure && (p->memo = policy_memo_new()) == NULL) {
        set_err(err, errlen, "%s: out of memory", script_path);
        policy_free(p);
        return NULL;
    }
    if (p->memo != NULL && !fingerprint(p, &p->state_at_load))
        reuse_off(p, "its state is too large to check after each call");
    lua_gc(p->L, LUA_GCCOLLECT);
    /* Generational: what a decision allocates (ctx, its vars, the req
     * handle, strings) dies young, and the script's own tables live long;
     * incremental mode kept re-marking the latter on every few requests. */
    lua_gc(p->L, LUA_GCGEN, 0, 0);
    return p;
}

void policy_free(struct policy *p)
{
    if (p == NULL)
        return;
    if (p->L != NULL)
        lua_close(p->L);
    policy_memo_free(p->memo);
    policy_state_walk_free(&p->walk);
    free(p);
}

/* ---- decide ---- */

struct decide_args {
    struct policy *p;
    struct policy_decision *out;
};

/* Protected: everything that may allocate happens in here, so a memory
 * error anywhere (including while validating) is an ordinary error. */
static int decide_protected(lua_State *L)
{
    const struct decide_args *args = lua_touserdata(L, 1);
    struct policy *p = args->p;

    push_ctx(L, p);
    int ctx = lua_gettop(L);

    lua_rawgeti(L, LUA_REGISTRYINDEX, p->decide_ref);
    policy_view_push_req(L, &p->host);
    lua_pushvalue(L, ctx);
    lua_call(L, 2, 1);

    policy_decision_read(L, -1, p->where, args->out);
    policy_decision_read_vars(L, ctx, p->where, args->out);
    return 0;
}

/* ---- checking a pure script ---- */

struct fingerprint_args {
    struct policy *p;
    uint64_t value;
    bool ok;
};

static int fingerprint_protected(lua_State *L)
{
    struct fingerprint_args *args = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, args->p->env_ref);
    args->ok = policy_state_fingerprint(L, -1, &args->p->walk, &args->value);
    return 0;
}

/* False when the walk failed (too large, or out of memory). */
static bool fingerprint(struct policy *p, uint64_t *out)
{
    struct fingerprint_args args = {.p = p};
    int top = lua_gettop(p->L);
    lua_pushcfunction(p->L, fingerprint_protected);
    lua_pushlightuserdata(p->L, &args);
    int status = lua_pcall(p->L, 1, 0, 0);
    lua_settop(p->L, top);
    *out = args.value;
    return status == LUA_OK && args.ok;
}

static void reuse_off(struct policy *p, const char *why)
{
    policy_memo_disable(p->memo, why);
    fprintf(stderr,
            "policy %s: decide_is_pure is set, but %s; its decisions are no "
            "longer reused\n",
            p->host.log_name, why);
}

/* After every call of a pure script that ran (d is NULL when it failed),
 * before its decision is kept: a call that changed what a later call can
 * see would make kept decisions guesses, so reuse ends there. Checked
 * after each call, not lazily before the next reuse: a state changed and
 * changed back between two checks would go unseen, and a decision kept in
 * between would be served. */
static void keep_for_reuse(struct policy *p, const struct policy_decision *d)
{
    uint64_t now;
    if (!fingerprint(p, &now)) {
        reuse_off(p, "its state could not be checked after a call");
        return;
    }
    if (now != p->state_at_load) {
        reuse_off(p, "decide() changed the script's state (a global, a "
                     "local of the script or a table it keeps)");
        return;
    }
    if (d == NULL)
        return;
    if (p->sandbox.left_req)
        policy_memo_spoil(p->memo);
    if (!policy_memo_store(p->memo, d))
        reuse_off(p, policy_memo_why_off(p->memo));
}

enum policy_status policy_decide(struct policy *p,
                                 const struct policy_req_view *req,
                                 struct policy_decision *out, char *err,
                                 size_t errlen)
{
    policy_decision_clear(out);
    if (p == NULL || req == NULL) {
        set_err(err, errlen, "policy: no policy or request");
        return POLICY_ERROR;
    }
    bool reusing = p->memo != NULL && policy_memo_enabled(p->memo);
    if (reusing) {
        const struct policy_decision *kept = policy_memo_find(p->memo, req);
        if (kept != NULL) {
            policy_decision_copy(out, kept);
            out->reused = true;
            policy_memo_count_hit(p->memo);
            return POLICY_OK;
        }
        if (policy_memo_worth_running(p->memo)) {
            req = policy_memo_record(p->memo, req);
        } else {
            reuse_off(p, "fewer than a quarter of its last 4096 calls were "
                         "answered from kept decisions");
            reusing = false;
        }
    }
    lua_State *L = p->L;
    int top = lua_gettop(L);
    struct decide_args args = {p, out};

    p->host.view = req;
    p->host.call_id++;
    p->sandbox.left_req = false;
    policy_sandbox_arm_budget(L, &p->sandbox);
    lua_pushcfunction(L, add_position);
    lua_pushcfunction(L, decide_protected);
    lua_pushlightuserdata(L, &args);
    int status = lua_pcall(L, 1, 0, top + 1);
    policy_sandbox_disarm(&p->sandbox);
    /* From here on, a req the script kept raises an error when used. */
    p->host.view = NULL;

    if (status == LUA_OK) {
        lua_settop(L, top);
        if (reusing)
            keep_for_reuse(p, out);
        return POLICY_OK;
    }
    take_error(p, status, err, errlen);
    policy_decision_clear(out); /* nothing half-read leaks out */
    lua_settop(L, top);
    /* Give the next call room: after a memory error collect everything,
     * otherwise a step keeps the cost of failing calls bounded. */
    lua_gc(L, status == LUA_ERRMEM ? LUA_GCCOLLECT : LUA_GCSTEP, 0);
    /* A call may change state before it fails. */
    if (reusing)
        keep_for_reuse(p, NULL);
    return POLICY_ERROR;
}

struct policy_memo_stats policy_memo_counts(const struct policy *p)
{
    if (p == NULL || p->memo == NULL)
        return (struct policy_memo_stats){0};
    return policy_memo_stats(p->memo);
}

size_t policy_memory_used(const struct policy *p)
{
    return p != NULL ? atomic_load_explicit(&p->sandbox.mem_used,
                                            memory_order_relaxed)
                     : 0;
}
