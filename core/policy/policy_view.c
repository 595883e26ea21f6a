/* The request as a policy sees it: a userdata whose fields are read
 * through the view callbacks only when the script touches them, so an
 * untouched body is never decoded. Plus the `sluice` API. */
#include "policy_view.h"

#include "policy_sandbox.h"

#include <jansson.h>
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define REQ_METATABLE "sluice.req"
#define JSON_BOX_METATABLE "sluice.jsonbox"
/* Deeper bodies raise an error instead of recursing further in C. */
#define BODY_MAX_DEPTH 64
/* One log line never exceeds this (the rest is cut). */
#define LOG_LINE_MAX 1024

struct req_handle {
    uint64_t call_id;
    bool body_decoded;
};

/* Userdata user values: memoized per call. */
enum { UV_BODY = 1, UV_HEADER_FN, UV_VAR_FN, UV_COUNT = UV_VAR_FN };

static const struct policy_req_view *
live_view(lua_State *L, const struct policy_host *h, const struct req_handle *r)
{
    if (h->view == NULL || r->call_id != h->call_id)
        luaL_error(L, "req used outside the decide() call that received it");
    return h->view;
}

static int push_text(lua_State *L, const char *(*get)(void *ctx, size_t *len),
                     void *ctx)
{
    size_t len = 0;
    const char *s = get != NULL ? get(ctx, &len) : NULL;
    if (s == NULL)
        lua_pushnil(L);
    else
        lua_pushlstring(L, s, len);
    return 1;
}

static int push_count(lua_State *L, uint64_t (*get)(void *ctx), void *ctx)
{
    if (get == NULL) {
        lua_pushnil(L);
        return 1;
    }
    uint64_t v = get(ctx);
    lua_pushinteger(L, v > (uint64_t)LUA_MAXINTEGER ? LUA_MAXINTEGER
                                                    : (lua_Integer)v);
    return 1;
}

/* ---- req.body ---- */

/* Owns the jansson tree while it is converted, so that a Lua error (memory
 * cap, depth) in the middle cannot leak it: __gc frees it. */
static int json_box_gc(lua_State *L)
{
    json_t **box = lua_touserdata(L, 1);
    json_decref(*box);
    *box = NULL;
    return 0;
}

static void push_json(lua_State *L, const json_t *j, int depth)
{
    if (depth > BODY_MAX_DEPTH)
        luaL_error(L, "req.body: JSON nested deeper than %d levels",
                   BODY_MAX_DEPTH);
    luaL_checkstack(L, 3, "req.body");
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *value;
        lua_createtable(L, 0, (int)json_object_size(j));
        json_object_foreach((json_t *)j, key, value)
        {
            push_json(L, value, depth + 1);
            lua_setfield(L, -2, key);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        lua_createtable(L, n > 1024 ? 1024 : (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push_json(L, json_array_get(j, i), depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(j));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(j));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        lua_pushboolean(L, json_is_true(j));
        break;
    case JSON_NULL:
        lua_pushlightuserdata(L, NULL); /* == sluice.null; keeps arrays whole */
        break;
    }
}

/* Pushes the decoded body, or nil when there is none or it is not JSON. */
static void decode_body(lua_State *L, const struct policy_req_view *v)
{
    size_t len = 0;
    const char *text = v->body != NULL ? v->body(v->ctx, &len) : NULL;
    if (text == NULL) {
        lua_pushnil(L);
        return;
    }
    json_t **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, JSON_BOX_METATABLE);
    json_error_t jerr;
    *box = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (*box == NULL) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return;
    }
    push_json(L, *box, 0);
    json_decref(*box);
    *box = NULL;
    lua_remove(L, -2);
}

static int decode_body_protected(lua_State *L)
{
    decode_body(L, lua_touserdata(L, 1));
    return 1;
}

/* Decoding is charged to memory but not to the instruction budget: it
 * happens at most once per call and its size is the gateway's body limit,
 * while budget charging exists to stop loops of copies. Protected, so that
 * charging is back on whatever happens. */
static void decode_body_uncharged(lua_State *L, const struct policy_req_view *v)
{
    struct policy_sandbox *sb = policy_sandbox_of(L);
    bool was_charging = sb->charging;

    sb->charging = false;
    lua_pushcfunction(L, decode_body_protected);
    lua_pushlightuserdata(L, (void *)v);
    int status = lua_pcall(L, 1, 1, 0);
    sb->charging = was_charging;
    if (status == LUA_ERRMEM)
        luaL_error(L, "req.body: memory limit of %I bytes exceeded",
                   (lua_Integer)sb->mem_limit);
    else if (status != LUA_OK)
        lua_error(L);
}

static int push_body(lua_State *L, struct req_handle *r,
                     const struct policy_req_view *v)
{
    if (!r->body_decoded) {
        decode_body_uncharged(L, v);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, 1, UV_BODY);
        r->body_decoded = true;
        return 1;
    }
    lua_getiuservalue(L, 1, UV_BODY);
    return 1;
}

/* ---- req.header(name), req.var(name) ---- */

/* Upvalues: 1 host, 2 the req userdata. Accepts req.header(n) and
 * req:header(n). */
static int req_lookup(lua_State *L, bool header)
{
    const struct policy_host *h = lua_touserdata(L, lua_upvalueindex(1));
    const struct req_handle *r = lua_touserdata(L, lua_upvalueindex(2));
    const struct policy_req_view *v = live_view(L, h, r);
    int arg = lua_rawequal(L, 1, lua_upvalueindex(2)) ? 2 : 1;
    size_t len;
    const char *name = luaL_checklstring(L, arg, &len);
    const char *(*get)(void *, const char *, size_t *) =
        header ? v->header : v->var;

    size_t vlen = 0;
    const char *value =
        get != NULL && strlen(name) == len ? get(v->ctx, name, &vlen) : NULL;
    if (value == NULL)
        lua_pushnil(L);
    else
        lua_pushlstring(L, value, vlen);
    return 1;
}

static int req_header(lua_State *L)
{
    return req_lookup(L, true);
}

static int req_var(lua_State *L)
{
    return req_lookup(L, false);
}

/* The function bound to this req, made once per call on first use. */
static int push_bound(lua_State *L, struct policy_host *h, int slot,
                      lua_CFunction fn)
{
    if (lua_getiuservalue(L, 1, slot) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    lua_pushlightuserdata(L, h);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, fn, 2);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, slot);
    return 1;
}

/* ---- req.<field> ---- */

enum req_field {
    RF_MODEL,
    RF_ENDPOINT,
    RF_TENANT,
    RF_USER,
    RF_TIER,
    RF_STREAM,
    RF_MESSAGE_COUNT,
    RF_MESSAGE_BYTES,
    RF_INPUT_TOKENS,
    RF_MAX_TOKENS,
    RF_PRIORITY,
    RF_HEADER,
    RF_BODY,
    RF_VAR,
    RF_COUNT
};

static const char *const req_field_names[RF_COUNT] = {
    [RF_MODEL] = "model",
    [RF_ENDPOINT] = "endpoint",
    [RF_TENANT] = "tenant",
    [RF_USER] = "user",
    [RF_TIER] = "tier",
    [RF_STREAM] = "stream",
    [RF_MESSAGE_COUNT] = "message_count",
    [RF_MESSAGE_BYTES] = "message_bytes",
    [RF_INPUT_TOKENS] = "input_tokens",
    [RF_MAX_TOKENS] = "max_tokens",
    [RF_PRIORITY] = "priority",
    [RF_HEADER] = "header",
    [RF_BODY] = "body",
    [RF_VAR] = "var",
};

#define LEN(s) (sizeof(s) - 1)
static const size_t req_field_len[RF_COUNT] = {
    [RF_MODEL] = LEN("model"),
    [RF_ENDPOINT] = LEN("endpoint"),
    [RF_TENANT] = LEN("tenant"),
    [RF_USER] = LEN("user"),
    [RF_TIER] = LEN("tier"),
    [RF_STREAM] = LEN("stream"),
    [RF_MESSAGE_COUNT] = LEN("message_count"),
    [RF_MESSAGE_BYTES] = LEN("message_bytes"),
    [RF_INPUT_TOKENS] = LEN("input_tokens"),
    [RF_MAX_TOKENS] = LEN("max_tokens"),
    [RF_PRIORITY] = LEN("priority"),
    [RF_HEADER] = LEN("header"),
    [RF_BODY] = LEN("body"),
    [RF_VAR] = LEN("var"),
};
#undef LEN

static int req_index(lua_State *L)
{
    struct policy_host *h = lua_touserdata(L, lua_upvalueindex(1));
    struct req_handle *r = lua_touserdata(L, 1);
    const struct policy_req_view *v = live_view(L, h, r);
    size_t len = 0;
    const char *key =
        lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len) : "";
    int field = 0;

    /* Length first: most candidates are rejected without a compare. */
    while (field < RF_COUNT && (req_field_len[field] != len ||
                                memcmp(key, req_field_names[field], len) != 0))
        field++;
    switch ((enum req_field)field) {
    case RF_MODEL:
        return push_text(L, v->model, v->ctx);
    case RF_ENDPOINT:
        return push_text(L, v->endpoint, v->ctx);
    case RF_TENANT:
        return push_text(L, v->tenant, v->ctx);
    case RF_USER:
        return push_text(L, v->user, v->ctx);
    case RF_TIER:
        return push_text(L, v->tier, v->ctx);
    case RF_STREAM:
        lua_pushboolean(L, v->stream != NULL && v->stream(v->ctx));
        return 1;
    case RF_MESSAGE_COUNT:
        return push_count(L, v->message_count, v->ctx);
    case RF_MESSAGE_BYTES:
        return push_count(L, v->message_bytes, v->ctx);
    case RF_INPUT_TOKENS:
        return push_count(L, v->input_tokens, v->ctx);
    case RF_MAX_TOKENS:
        return push_count(L, v->max_tokens, v->ctx);
    case RF_PRIORITY: {
        const char *prio = v->priority != NULL ? v->priority(v->ctx) : NULL;
        if (prio == NULL)
            lua_pushnil(L);
        else
            lua_pushstring(L, prio);
        return 1;
    }
    case RF_HEADER:
        return push_bound(L, h, UV_HEADER_FN, req_header);
    case RF_BODY:
        return push_body(L, r, v);
    case RF_VAR:
        return push_bound(L, h, UV_VAR_FN, req_var);
    case RF_COUNT:
        break;
    }
    /* A typo (req.modle) should fail loudly, not read as nil. */
    return luaL_error(L, "req has no field '%s'", luaL_tolstring(L, 2, NULL));
}

static int req_newindex(lua_State *L)
{
    return luaL_error(L, "req is read-only");
}

void policy_view_push_req(lua_State *L, struct policy_host *host)
{
    struct req_handle *r = lua_newuserdatauv(L, sizeof *r, UV_COUNT);
    r->call_id = host->call_id;
    r->body_decoded = false;
    luaL_setmetatable(L, REQ_METATABLE);
}

/* ---- sluice.* ---- */

static struct policy_host *api_host(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int sluice_health(lua_State *L)
{
    policy_sandbox_note_outside(L);
    const struct policy_host *h = api_host(L);
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    double value = 0;

    if (h->env.health != NULL && strlen(name) == len &&
        h->env.health(h->env.ctx, name, &value))
        lua_pushnumber(L, value);
    else
        lua_pushnil(L);
    return 1;
}

static int sluice_now(lua_State *L)
{
    policy_sandbox_note_outside(L);
    const struct policy_host *h = api_host(L);
    if (h->env.now_s != NULL) {
        lua_pushnumber(L, h->env.now_s(h->env.ctx));
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    }
    return 1;
}

/* sluice.log(...) and print(...): one line on stderr, control characters
 * replaced so that request data cannot forge log lines. */
static int sluice_log(lua_State *L)
{
    policy_sandbox_note_outside(L);
    const struct policy_host *h = api_host(L);
    char line[LOG_LINE_MAX];
    size_t used = 0;
    int n = lua_gettop(L);

    for (int i = 1; i <= n && used + 1 < sizeof line; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        if (i > 1)
            line[used++] = ' ';
        for (size_t k = 0; k < len && used + 1 < sizeof line; k++) {
            unsigned char c = (unsigned char)s[k];
            line[used++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
        lua_pop(L, 1);
    }
    line[used] = '\0';
    fprintf(stderr, "policy %s: %s\n", h->log_name, line);
    return 0;
}

static int sluice_newindex(lua_State *L)
{
    return luaL_error(L, "sluice is read-only");
}

static const luaL_Reg sluice_api[] = {
    {"health", sluice_health},
    {"now", sluice_now},
    {"log", sluice_log},
    {NULL, NULL},
};

/* A metatable no script can see or replace (no getmetatable). */
static void new_locked_metatable(lua_State *L, const char *name)
{
    luaL_newmetatable(L, name);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
}

void policy_view_install(lua_State *L, int env_idx, struct policy_host *host)
{
    int env = lua_absindex(L, env_idx);

    new_locked_metatable(L, REQ_METATABLE);
    lua_pushlightuserdata(L, host);
    lua_pushcclosure(L, req_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, req_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pop(L, 1);

    new_locked_metatable(L, JSON_BOX_METATABLE);
    lua_pushcfunction(L, json_box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    /* sluice: an empty proxy whose metatable serves the API and refuses
     * writes, so one script cannot replace sluice.health for itself
     * (and get surprising results) by accident. */
    lua_newtable(L);
    lua_createtable(L, 0, 3);
    lua_createtable(L, 0, 4);
    lua_pushlightuserdata(L, host);
    luaL_setfuncs(L, sluice_api, 1);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, sluice_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_setfield(L, env, "sluice");

    lua_pushlightuserdata(L, host);
    lua_pushcclosure(L, sluice_log, 1);
    lua_setfield(L, env, "print");
}
