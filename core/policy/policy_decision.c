/* Validation of decide()'s return value. Everything here uses raw table
 * access (lua_next, lua_rawget), so a returned value cannot run code, and
 * stops at the first bad key, so a huge table costs no more than a small
 * one. */
#include "policy_decision.h"

#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum field {
    F_ACTION,
    F_UPSTREAM,
    F_MODEL,
    F_PRIORITY,
    F_DEGRADE,
    F_DEGRADE_LEVEL,
    F_TAGS,
    F_STATUS,
    F_RETRY_AFTER,
    F_MESSAGE,
    F_COUNT
};

static const char *const field_names[F_COUNT] = {
    [F_ACTION] = "action",
    [F_UPSTREAM] = "upstream",
    [F_MODEL] = "model",
    [F_PRIORITY] = "priority",
    [F_DEGRADE] = "degrade",
    [F_DEGRADE_LEVEL] = "degrade_level",
    [F_TAGS] = "tags",
    [F_STATUS] = "status",
    [F_RETRY_AFTER] = "retry_after",
    [F_MESSAGE] = "message",
};

static const char *const priorities[] = {"critical", "realtime", "standard",
                                         "batch",    "low",      NULL};

#define MAX_DEGRADE_LEVEL 9
#define MAX_VARS                                                               \
    (sizeof(((struct policy_decision *)0)->vars) /                             \
     sizeof(((struct policy_decision *)0)->vars[0]))
#define VAR_TEXT_MAX (sizeof(((struct policy_decision *)0)->vars[0][0]) - 1)
/* Key names shown in errors are cut to this. */
#define SHOWN_NAME_MAX 40

/* What is being read, for error messages. */
struct reader {
    lua_State *L;
    const char *where; /* "script:line" */
    const char *what;  /* "returned bad field" | "set bad ctx.vars entry" */
    const char *name;  /* field name as shown */
};

static void raise_bad(const struct reader *r, const char *fmt, ...)
{
    char reason[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    lua_pushfstring(r->L, "%s: decide() %s '%s': %s", r->where, r->what,
                    r->name, reason);
    lua_error(r->L);
}

/* Field by field rather than a memset of the ~2 KiB struct: this runs on
 * every call. Every string is left empty, so none is read past its NUL. */
void policy_decision_clear(struct policy_decision *out)
{
    out->reject = false;
    out->reject_status = 0;
    out->reject_retry_after_s = 0;
    out->reject_message[0] = '\0';
    out->upstream[0] = '\0';
    out->model[0] = '\0';
    out->priority[0] = '\0';
    out->degrade_level = -1;
    out->tag_count = 0;
    out->var_count = 0;
    out->reused = false;
}

static void copy_text(char *dst, const char *src)
{
    memcpy(dst, src, strlen(src) + 1);
}

void policy_decision_copy(struct policy_decision *dst,
                          const struct policy_decision *src)
{
    dst->reject = src->reject;
    dst->reject_status = src->reject_status;
    dst->reject_retry_after_s = src->reject_retry_after_s;
    copy_text(dst->reject_message, src->reject_message);
    copy_text(dst->upstream, src->upstream);
    copy_text(dst->model, src->model);
    copy_text(dst->priority, src->priority);
    dst->degrade_level = src->degrade_level;
    dst->tag_count = src->tag_count;
    for (size_t i = 0; i < src->tag_count; i++)
        copy_text(dst->tags[i], src->tags[i]);
    dst->var_count = src->var_count;
    for (size_t i = 0; i < src->var_count; i++) {
        copy_text(dst->vars[i][0], src->vars[i][0]);
        copy_text(dst->vars[i][1], src->vars[i][1]);
    }
}

bool policy_decision_equal(const struct policy_decision *a,
                           const struct policy_decision *b)
{
    if (a->reject != b->reject || a->reject_status != b->reject_status ||
        a->reject_retry_after_s != b->reject_retry_after_s ||
        a->degrade_level != b->degrade_level || a->tag_count != b->tag_count ||
        a->var_count != b->var_count ||
        strcmp(a->reject_message, b->reject_message) != 0 ||
        strcmp(a->upstream, b->upstream) != 0 ||
        strcmp(a->model, b->model) != 0 ||
        strcmp(a->priority, b->priority) != 0)
        return false;
    for (size_t i = 0; i < a->tag_count; i++)
        if (strcmp(a->tags[i], b->tags[i]) != 0)
            return false;
    for (size_t i = 0; i < a->var_count; i++)
        if (strcmp(a->vars[i][0], b->vars[i][0]) != 0 ||
            strcmp(a->vars[i][1], b->vars[i][1]) != 0)
            return false;
    return true;
}

/* A printable form of the key at idx, for messages. Never converts the
 * key in place (that would break lua_next). */
static void describe_key(lua_State *L, int idx, char *buf, size_t size)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        size_t n = len < SHOWN_NAME_MAX ? len : SHOWN_NAME_MAX;
        size_t i;
        for (i = 0; i < n && i + 1 < size; i++) {
            unsigned char c = (unsigned char)s[i];
            buf[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
        }
        buf[i] = '\0';
        if (n < len && i + 4 < size)
            strcat(buf, "...");
    } else if (lua_isinteger(L, idx)) {
        snprintf(buf, size, "[%lld]", (long long)lua_tointeger(L, idx));
    } else {
        snprintf(buf, size, "[%s]", luaL_typename(L, idx));
    }
}

static bool valid_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t more;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            more = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            more = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            more = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i - 1 < more)
            return false;
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t min_for_length[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_for_length[more] || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += more + 1;
    }
    return true;
}

/* Decision strings end up in headers, logs and JSON: no control
 * characters (header injection, forged log lines), valid UTF-8. */
static const char *text_problem(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return "contains a control character";
    }
    return valid_utf8((const unsigned char *)s, len) ? NULL
                                                     : "is not valid UTF-8";
}

static void copy_string(const struct reader *r, int idx, char *dst,
                        size_t dst_size, bool allow_empty)
{
    lua_State *L = r->L;
    if (lua_type(L, idx) != LUA_TSTRING)
        raise_bad(r, "expected a string, got %s", luaL_typename(L, idx));
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (len >= dst_size)
        raise_bad(r, "longer than %zu bytes", dst_size - 1);
    if (len == 0 && !allow_empty)
        raise_bad(r, "empty string");
    const char *problem = text_problem(s, len);
    if (problem != NULL)
        raise_bad(r, "%s", problem);
    memcpy(dst, s, len);
    dst[len] = '\0';
}

static lua_Integer read_integer(const struct reader *r, int idx, lua_Integer lo,
                                lua_Integer hi)
{
    lua_State *L = r->L;
    int exact = 0;
    lua_Integer v = 0;
    if (lua_type(L, idx) == LUA_TNUMBER)
        v = lua_tointegerx(L, idx, &exact); /* 2.0 is fine, 2.5 is not */
    if (!exact)
        raise_bad(r, "expected an integer, got %s",
                  lua_type(L, idx) == LUA_TNUMBER ? "a fraction"
                                                  : luaL_typename(L, idx));
    if (v < lo || v > hi)
        raise_bad(r, "%lld is outside %lld..%lld", (long long)v, (long long)lo,
                  (long long)hi);
    return v;
}

static uint32_t read_seconds(const struct reader *r, int idx)
{
    lua_State *L = r->L;
    if (lua_type(L, idx) != LUA_TNUMBER)
        raise_bad(r, "expected seconds (a number), got %s",
                  luaL_typename(L, idx));
    double s = lua_tonumber(L, idx);
    if (!(s >= 0 && s <= (double)UINT32_MAX))
        raise_bad(r, "must be between 0 and %lu seconds",
                  (unsigned long)UINT32_MAX);
    return (uint32_t)ceil(s); /* a client must not retry early */
}

static void read_priority(const struct reader *r, int idx, char *dst,
                          size_t dst_size)
{
    copy_string(r, idx, dst, dst_size, false);
    for (const char *const *p = priorities; *p != NULL; p++)
        if (strcmp(dst, *p) == 0)
            return;
    raise_bad(r,
              "'%s' is not one of critical, realtime, standard, batch, "
              "low",
              dst);
}

static void read_tags(const struct reader *r, int idx,
                      struct policy_decision *out)
{
    lua_State *L = r->L;
    if (lua_type(L, idx) != LUA_TTABLE)
        raise_bad(r, "expected an array of strings, got %s",
                  luaL_typename(L, idx));
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (++count > POLICY_MAX_TAGS)
            raise_bad(r, "more than %d tags", POLICY_MAX_TAGS);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
            lua_tointeger(L, -1) > POLICY_MAX_TAGS)
            raise_bad(r, "expected an array of strings");
    }
    for (size_t i = 0; i < count; i++) {
        char name[32];
        snprintf(name, sizeof name, "tags[%zu]", i + 1);
        struct reader element = *r;
        element.name = name;
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        if (lua_isnil(L, -1))
            raise_bad(&element, "the array has a hole");
        copy_string(&element, lua_gettop(L), out->tags[i], sizeof out->tags[i],
                    false);
        lua_pop(L, 1);
    }
    out->tag_count = count;
}

static int field_of_key(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        return -1;
    size_t len;
    const char *key = lua_tolstring(L, idx, &len);
    for (int f = 0; f < F_COUNT; f++)
        if (strlen(field_names[f]) == len &&
            memcmp(key, field_names[f], len) == 0)
            return f;
    return -1;
}

/* at[f]: stack index of field f's value, 0 when absent. */
static void read_fields(struct reader *r, const int at[F_COUNT],
                        struct policy_decision *out)
{
    bool degrade = false;
    if (at[F_ACTION]) {
        char action[16];
        r->name = field_names[F_ACTION];
        copy_string(r, at[F_ACTION], action, sizeof action, false);
        if (strcmp(action, "reject") == 0)
            out->reject = true;
        else if (strcmp(action, "degrade") == 0)
            degrade = true;
        else if (strcmp(action, "route") != 0)
            raise_bad(r, "'%s' is not one of reject, degrade, route", action);
    }
    if (at[F_UPSTREAM]) {
        r->name = field_names[F_UPSTREAM];
        copy_string(r, at[F_UPSTREAM], out->upstream, sizeof out->upstream,
                    false);
    }
    if (at[F_MODEL]) {
        r->name = field_names[F_MODEL];
        copy_string(r, at[F_MODEL], out->model, sizeof out->model, false);
    }
    if (at[F_PRIORITY]) {
        r->name = field_names[F_PRIORITY];
        read_priority(r, at[F_PRIORITY], out->priority, sizeof out->priority);
    }
    if (at[F_DEGRADE] && at[F_DEGRADE_LEVEL]) {
        r->name = field_names[F_DEGRADE];
        raise_bad(r, "give either 'degrade' or 'degrade_level', not both");
    }
    for (int f = F_DEGRADE; f <= F_DEGRADE_LEVEL; f++) {
        if (at[f]) {
            r->name = field_names[f];
            out->degrade_level =
                (int)read_integer(r, at[f], 0, MAX_DEGRADE_LEVEL);
        }
    }
    if (degrade && out->degrade_level < 0)
        out->degrade_level = 1; /* "degrade" alone: one step down */
    if (at[F_TAGS]) {
        r->name = field_names[F_TAGS];
        read_tags(r, at[F_TAGS], out);
    }

    for (int f = F_STATUS; f <= F_MESSAGE; f++) {
        if (at[f] && !out->reject) {
            r->name = field_names[f];
            raise_bad(r, "only valid with action = \"reject\"");
        }
    }
    if (out->reject) {
        out->reject_status = 429;
        if (at[F_STATUS]) {
            r->name = field_names[F_STATUS];
            out->reject_status = (int)read_integer(r, at[F_STATUS], 400, 599);
        }
        if (at[F_RETRY_AFTER]) {
            r->name = field_names[F_RETRY_AFTER];
            out->reject_retry_after_s = read_seconds(r, at[F_RETRY_AFTER]);
        }
        if (at[F_MESSAGE]) {
            r->name = field_names[F_MESSAGE];
            copy_string(r, at[F_MESSAGE], out->reject_message,
                        sizeof out->reject_message, true);
        }
    }
}

void policy_decision_read(lua_State *L, int idx, const char *where,
                          struct policy_decision *out)
{
    int t = lua_absindex(L, idx);
    int type = lua_type(L, t);

    if (type == LUA_TNIL)
        return;
    if (type != LUA_TTABLE) {
        lua_pushfstring(L,
                        "%s: decide() returned a %s, expected a table or "
                        "nil",
                        where, lua_typename(L, type));
        lua_error(L);
    }

    char shown[SHOWN_NAME_MAX + 8];
    struct reader r = {L, where, "returned bad field", shown};
    int top = lua_gettop(L);
    int at[F_COUNT] = {0};

    /* One pass: values go to slots above the table (no string lookups);
     * the first unknown key stops it. */
    luaL_checkstack(L, F_COUNT + 2, "decide() result");
    for (int f = 0; f < F_COUNT; f++)
        lua_pushnil(L);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        int f = field_of_key(L, -2);
        if (f < 0) {
            describe_key(L, -2, shown, sizeof shown);
            raise_bad(&r, "unknown key");
        }
        at[f] = top + 1 + f;
        lua_copy(L, -1, at[f]);
        lua_pop(L, 1);
    }
    read_fields(&r, at, out);
    lua_settop(L, top);
}

static bool valid_var_name(const char *s, size_t len)
{
    if (len == 0 || len > VAR_TEXT_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-' ||
                  c == ':';
        if (!ok)
            return false;
    }
    return true;
}

static void read_var_value(const struct reader *r, int idx, char *dst,
                           size_t size)
{
    lua_State *L = r->L;
    if (lua_type(L, idx) == LUA_TSTRING) {
        copy_string(r, idx, dst, size, true);
    } else if (lua_isinteger(L, idx)) {
        snprintf(dst, size, "%lld", (long long)lua_tointeger(L, idx));
    } else if (lua_type(L, idx) == LUA_TNUMBER &&
               isfinite(lua_tonumber(L, idx))) {
        snprintf(dst, size, "%.14g", (double)lua_tonumber(L, idx));
    } else {
        raise_bad(r, "expected a string or a finite number, got %s",
                  luaL_typename(L, idx));
    }
}

void policy_decision_read_vars(lua_State *L, int ctx_idx, const char *where,
                               struct policy_decision *out)
{
    int ctx = lua_absindex(L, ctx_idx);
    lua_pushliteral(L, "vars");
    int type = lua_rawget(L, ctx);
    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (type != LUA_TTABLE) {
        lua_pushfstring(L,
                        "%s: decide() left ctx.vars as a %s, expected a "
                        "table",
                        where, lua_typename(L, type));
        lua_error(L);
    }
    int vars = lua_gettop(L);
    char shown[SHOWN_NAME_MAX + 8];
    struct reader r = {L, where, "set bad ctx.vars entry", shown};

    lua_pushnil(L);
    while (lua_next(L, vars) != 0) {
        describe_key(L, -2, shown, sizeof shown);
        size_t len = 0;
        const char *name =
            lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
        if (name == NULL || !valid_var_name(name, len))
            raise_bad(&r, "names are 1..%d characters of [A-Za-z0-9_.:-]",
                      (int)VAR_TEXT_MAX);
        if (out->var_count == MAX_VARS)
            raise_bad(&r, "more than %d entries", (int)MAX_VARS);
        char(*slot)[sizeof out->vars[0][0]] = out->vars[out->var_count];
        memcpy(slot[0], name, len);
        slot[0][len] = '\0';
        read_var_value(&r, lua_gettop(L), slot[1], sizeof slot[1]);
        out->var_count++;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}
