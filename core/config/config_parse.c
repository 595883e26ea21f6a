/* The field-table machinery and the plain sections: top level, limits,
 * retry, policy, log and pipeline. Each section is a table of fields (key,
 * type, destination, bounds), so docs/config.md can mirror it line by
 * line; only what a table cannot say is written out as code. */
#include "config_internal.h"
#include "config_retry.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define MS_MAX 3600000 /* one hour: the upper bound of every timeout */

/* ---- field machinery ---- */

static const struct cfg_field *find_field(const struct cfg_field *fields,
                                          const char *key)
{
    for (const struct cfg_field *f = fields; f->key; f++)
        if (strcmp(f->key, key) == 0)
            return f;
    return NULL;
}

/* Levenshtein distance, capped: enough to suggest a fix for a typo. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static void report_unknown(struct parse_ctx *ctx, const char *path,
                           const char *key, const struct cfg_field *fields)
{
    const char *best = NULL;
    size_t best_d = 3; /* suggest only close matches */
    for (const struct cfg_field *f = fields; f->key; f++) {
        size_t d = edit_distance(key, f->key);
        if (d < best_d) {
            best_d = d;
            best = f->key;
        }
    }
    if (best)
        cfg_error(ctx, path, "unknown key (did you mean \"%s\"?)", best);
    else
        cfg_error(ctx, path, "unknown key");
}

/* Destinations are uint32_t, unsigned, uint64_t or size_t. */
static void store_uint(void *dst, size_t size, uint64_t v)
{
    if (size == sizeof(uint32_t)) {
        uint32_t v32 = (uint32_t)v;
        memcpy(dst, &v32, sizeof v32);
    } else if (size == sizeof(uint64_t)) {
        memcpy(dst, &v, sizeof v);
    }
}

static void apply_uint(struct parse_ctx *ctx, const struct cfg_field *f,
                       json_t *val, const char *path, void *dst)
{
    if (!json_is_integer(val)) {
        cfg_error(ctx, path, "must be an integer");
        return;
    }
    json_int_t v = json_integer_value(val);
    if (v < 0 || (uint64_t)v < f->min) {
        cfg_error(ctx, path, "must be >= %llu", (unsigned long long)f->min);
        return;
    }
    if ((uint64_t)v > f->max) {
        cfg_error(ctx, path, "must be <= %llu", (unsigned long long)f->max);
        return;
    }
    store_uint(dst, f->size, (uint64_t)v * f->scale);
}

static bool has_control_chars(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

static void apply_string(struct parse_ctx *ctx, const struct cfg_field *f,
                         json_t *val, const char *path, char *dst)
{
    if (!json_is_string(val)) {
        cfg_error(ctx, path, "must be a string");
        return;
    }
    const char *s = json_string_value(val);
    size_t len = json_string_length(val);

    if (f->kind == CFG_KIND_ENUM) {
        for (const char *const *c = f->choices; *c; c++) {
            if (strcmp(*c, s) == 0) {
                snprintf(dst, f->size, "%s", s);
                return;
            }
        }
        char list[256] = "";
        size_t n = 0;
        for (const char *const *c = f->choices; *c && n < sizeof list; c++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s",
                                  c == f->choices ? "" : ", ", *c);
        cfg_error(ctx, path, "must be one of: %s", list);
        return;
    }
    const char *why = f->validate ? f->validate(s, len) : NULL;
    if (why) {
        cfg_error(ctx, path, "%s", why);
        return;
    }
    if (has_control_chars(s, len)) {
        cfg_error(ctx, path, "must not contain control characters");
        return;
    }
    if (f->kind == CFG_KIND_PATH && len > 0 && strcmp(s, "-") != 0) {
        cfg_resolve_path(ctx, path, s, dst, f->size);
        return;
    }
    if (len >= f->size) {
        cfg_error(ctx, path, "must be at most %zu characters", f->size - 1);
        return;
    }
    memcpy(dst, s, len + 1);
}

void cfg_apply_fields(struct parse_ctx *ctx, json_t *obj, const char *path,
                      const struct cfg_field *fields, void *base)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        char p[CFG_PATH_MAX];
        cfg_path_key(p, sizeof p, path, key);
        const struct cfg_field *f = find_field(fields, key);
        if (!f) {
            report_unknown(ctx, p, key, fields);
            continue;
        }
        char *dst = (char *)base + f->offset;
        switch (f->kind) {
        case CFG_KIND_UINT:
            apply_uint(ctx, f, val, p, dst);
            break;
        case CFG_KIND_BOOL:
            if (json_is_boolean(val))
                *(bool *)dst = json_is_true(val);
            else
                cfg_error(ctx, p, "must be true or false");
            break;
        case CFG_KIND_STRING:
        case CFG_KIND_ENUM:
        case CFG_KIND_PATH:
            apply_string(ctx, f, val, p, dst);
            break;
        case CFG_KIND_CUSTOM:
            break;
        }
    }
}

static json_t *get_typed(struct parse_ctx *ctx, json_t *obj, const char *path,
                         const char *key, json_type type, const char *what)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_typeof(v) == type)
        return v;
    char p[CFG_PATH_MAX];
    cfg_path_key(p, sizeof p, path, key);
    cfg_error(ctx, p, "must be %s", what);
    return NULL;
}

json_t *cfg_get_object(struct parse_ctx *ctx, json_t *obj, const char *path,
                       const char *key)
{
    return get_typed(ctx, obj, path, key, JSON_OBJECT, "an object");
}

json_t *cfg_get_array(struct parse_ctx *ctx, json_t *obj, const char *path,
                      const char *key)
{
    return get_typed(ctx, obj, path, key, JSON_ARRAY, "an array");
}

const char *cfg_check_name(const char *value, size_t len)
{
    if (len < 1 || len > 63)
        return "must be 1 to 63 characters from [A-Za-z0-9_.-]";
    for (size_t i = 0; i < len; i++) {
        char ch = value[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
            return "must be 1 to 63 characters from [A-Za-z0-9_.-]";
    }
    return NULL;
}

/* ---- listen addresses ---- */

static bool parse_port(const char *s)
{
    if (!*s || strlen(s) > 5)
        return false;
    unsigned port = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        port = port * 10 + (unsigned)(*s - '0');
    }
    return port <= 65535;
}

static bool hostname_ok(const char *h, size_t len)
{
    if (len == 0)
        return true; /* ":port": all interfaces */
    bool numeric = true;
    for (size_t i = 0; i < len; i++) {
        char ch = h[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '-'))
            return false;
        if (!(ch == '.' || (ch >= '0' && ch <= '9')))
            numeric = false;
    }
    if (!numeric)
        return true;
    /* All digits and dots: must then be a real IPv4 address. */
    char buf[16];
    struct in_addr a;
    if (len >= sizeof buf)
        return false;
    memcpy(buf, h, len);
    buf[len] = '\0';
    return inet_pton(AF_INET, buf, &a) == 1;
}

/* host:port, [v6]:port or :port (all interfaces); "" only for admin. */
static const char *check_listen_syntax(const char *s, size_t len)
{
    static const char *const msg =
        "must be host:port, [ipv6]:port or :port (port 0-65535)";
    if (len == 0 || len >= 128)
        return msg;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || close - s - 1 >= 46)
            return msg;
        char v6[46];
        memcpy(v6, s + 1, (size_t)(close - s - 1));
        v6[close - s - 1] = '\0';
        struct in6_addr a;
        if (inet_pton(AF_INET6, v6, &a) != 1)
            return msg;
        return parse_port(close + 2) ? NULL : msg;
    }
    const char *colon = strrchr(s, ':');
    if (!colon || !hostname_ok(s, (size_t)(colon - s)))
        return msg;
    return parse_port(colon + 1) ? NULL : msg;
}

static const char *check_admin_listen(const char *s, size_t len)
{
    return len == 0 ? NULL : check_listen_syntax(s, len);
}

/* ---- sections ---- */

static const struct cfg_field limit_fields[] = {
    CFG_UINT("max_connections", struct config, max_connections, 1, 1000000),
    CFG_UINT("max_body_bytes", struct config, max_body_bytes, 1024, 1u << 30),
    CFG_UINT("max_header_bytes", struct config, max_header_bytes, 1024,
             1u << 20),
    CFG_UINT("max_headers", struct config, max_headers, 1, 10000),
    CFG_UINT("header_timeout_ms", struct config, header_timeout_ms, 1, MS_MAX),
    CFG_UINT("body_timeout_ms", struct config, body_timeout_ms, 1, MS_MAX),
    CFG_UINT("idle_timeout_ms", struct config, idle_timeout_ms, 1, MS_MAX),
    CFG_UINT("send_timeout_ms", struct config, send_timeout_ms, 1, MS_MAX),
    CFG_UINT("drain_timeout_ms", struct config, drain_timeout_ms, 1, MS_MAX),
    CFG_UINT("stream_high_water_bytes", struct config, stream_high_water, 4096,
             64u << 20),
    CFG_UINT("max_response_bytes", struct config, max_response_bytes, 4096,
             1u << 30),
    CFG_UINT("max_buffered_response_bytes", struct config,
             max_buffered_response_bytes, 0, 1ull << 40),
    CFG_END,
};

static const struct cfg_field retry_fields[] = {
    CFG_UINT("max_attempts", struct retry_config, max_attempts, 1, 10),
    CFG_UINT("base_delay_ms", struct retry_config, base_delay_ms, 0, 60000),
    CFG_UINT("max_delay_ms", struct retry_config, max_delay_ms, 0, MS_MAX),
    CFG_UINT("deadline_ms", struct retry_config, deadline_ms, 1, MS_MAX),
    CFG_BOOL("on_other_upstream", struct retry_config, on_other_upstream),
    CFG_CUSTOM("on_status"),
    CFG_END,
};

static const struct cfg_field policy_fields[] = {
    CFG_PATH("script", struct policy_config, script),
    CFG_CUSTOM("fail"),
    CFG_UINT("instruction_budget", struct policy_config, instruction_budget,
             1000, 1000000000),
    CFG_UINT_SCALED("memory_limit_kb", struct policy_config, memory_limit_bytes,
                    64, 4u << 20, 1024),
    CFG_UINT("max_pattern_work", struct policy_config, max_pattern_work, 1000,
             1000000000),
    CFG_BOOL("watch", struct policy_config, watch),
    CFG_END,
};

static const char *const log_levels[] = {"error", "warn", "info", "debug",
                                         NULL};

static const struct cfg_field log_fields[] = {
    CFG_ENUM("level", struct config, log_level, log_levels),
    CFG_PATH("access_log", struct config, access_log),
    CFG_END,
};

static const struct cfg_field root_fields[] = {
    CFG_STRING("listen", struct config, listen, check_listen_syntax),
    CFG_STRING("admin_listen", struct config, admin_listen, check_admin_listen),
    CFG_UINT("workers", struct config, workers, 0, 256),
    CFG_CUSTOM("limits"),
    CFG_CUSTOM("auth"),
    CFG_CUSTOM("upstreams"),
    CFG_CUSTOM("fallbacks"),
    CFG_CUSTOM("retry"),
    CFG_CUSTOM("policy"),
    CFG_PATH("plugin_dir", struct config, plugin_dir),
    CFG_CUSTOM("pipeline"),
    CFG_CUSTOM("log"),
    CFG_CUSTOM("tokens"),
    CFG_END,
};

static void parse_policy(struct parse_ctx *ctx, json_t *policy)
{
    struct policy_config *p = &ctx->cfg->policy;
    cfg_apply_fields(ctx, policy, "policy", policy_fields, p);
    json_t *fail = json_object_get(policy, "fail");
    if (!fail)
        return;
    const char *v = json_string_value(fail);
    if (v && strcmp(v, "open") == 0)
        p->fail_open = true;
    else if (v && strcmp(v, "closed") == 0)
        p->fail_open = false;
    else
        cfg_error(ctx, "policy.fail", "must be \"open\" or \"closed\"");
}

void cfg_parse_root(struct parse_ctx *ctx, json_t *root)
{
    struct config *c = ctx->cfg;
    if (!json_is_object(root)) {
        cfg_error(ctx, "(root)", "must be an object");
        return;
    }
    cfg_apply_fields(ctx, root, "", root_fields, c);
    if (c->admin_listen[0] && strcmp(c->admin_listen, c->listen) == 0)
        cfg_error(ctx, "admin_listen",
                  "must differ from listen (use \"\" to serve admin "
                  "endpoints on the main listener)");

    json_t *obj;
    if ((obj = cfg_get_object(ctx, root, "", "limits")))
        cfg_apply_fields(ctx, obj, "limits", limit_fields, c);
    if ((obj = cfg_get_object(ctx, root, "", "auth")))
        cfg_parse_auth(ctx, obj);

    /* Upstreams before fallbacks: fallbacks refer to them by name. */
    cfg_parse_upstreams(ctx, root);
    cfg_parse_fallbacks(ctx, root);

    if ((obj = cfg_get_object(ctx, root, "", "retry"))) {
        unsigned before = ctx->error_count;
        cfg_apply_fields(ctx, obj, "retry", retry_fields, &c->retry);
        cfg_parse_retry_statuses(ctx, obj, &c->retry);
        /* Compare only values that parsed, not a value with a default. */
        if (ctx->error_count == before &&
            c->retry.max_delay_ms < c->retry.base_delay_ms)
            cfg_error(ctx, "retry.max_delay_ms", "must be >= base_delay_ms");
    }
    if ((obj = cfg_get_object(ctx, root, "", "policy")))
        parse_policy(ctx, obj);
    cfg_parse_pipeline(ctx, root);
    if ((obj = cfg_get_object(ctx, root, "", "log")))
        cfg_apply_fields(ctx, obj, "log", log_fields, c);
    if ((obj = cfg_get_object(ctx, root, "", "tokens")))
        cfg_parse_tokens(ctx, obj);
}

/* ---- pipeline ---- */

static const struct cfg_field pipeline_fields[] = {
    CFG_STRING("plugin", struct pipeline_entry, plugin, cfg_check_name),
    CFG_STRING("name", struct pipeline_entry, name, cfg_check_name),
    CFG_PATH("path", struct pipeline_entry, path),
    CFG_CUSTOM("config"),
    CFG_END,
};

static bool instance_name_taken(const struct config *c, size_t count,
                                const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(c->pipeline[i].name, name) == 0)
            return true;
    return false;
}

/* Unnamed instances get the plugin's name, then name_2, name_3, ...: the
 * first free one, so explicit names always win. */
static void name_instances(struct parse_ctx *ctx, bool explicit_name[])
{
    struct config *c = ctx->cfg;
    for (size_t i = 0; i < c->pipeline_count; i++) {
        struct pipeline_entry *e = &c->pipeline[i];
        if (explicit_name[i] || !e->plugin[0])
            continue;
        char cand[80];
        snprintf(cand, sizeof cand, "%s", e->plugin);
        for (unsigned k = 2; instance_name_taken(c, c->pipeline_count, cand);
             k++)
            snprintf(cand, sizeof cand, "%s_%u", e->plugin, k);
        if (strlen(cand) >= sizeof e->name) {
            char p[CFG_PATH_MAX];
            cfg_path_index(p, sizeof p, "pipeline", i);
            cfg_error(ctx, p,
                      "generated instance name is too long; set \"name\"");
            continue;
        }
        memcpy(e->name, cand, strlen(cand) + 1);
    }
}

void cfg_parse_pipeline(struct parse_ctx *ctx, json_t *root)
{
    struct config *c = ctx->cfg;
    json_t *arr = cfg_get_array(ctx, root, "", "pipeline");
    if (!arr)
        return;
    if (json_array_size(arr) > CONFIG_MAX_PIPELINE) {
        cfg_error(ctx, "pipeline", "at most %d plugin instances",
                  CONFIG_MAX_PIPELINE);
        return;
    }
    bool explicit_name[CONFIG_MAX_PIPELINE] = {false};
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item)
    {
        char p[CFG_PATH_MAX];
        cfg_path_index(p, sizeof p, "pipeline", i);
        struct pipeline_entry *e = &c->pipeline[c->pipeline_count];
        if (!json_is_object(item)) {
            cfg_error(ctx, p, "must be an object");
            continue;
        }
        /* Count the entry first so config_unref() releases its config. */
        json_t *conf = json_object_get(item, "config");
        if (conf && !json_is_object(conf)) {
            char cp[CFG_PATH_MAX];
            cfg_path_key(cp, sizeof cp, p, "config");
            cfg_error(ctx, cp, "must be an object");
            conf = NULL;
        }
        e->config = conf ? json_incref(conf) : json_object();
        c->pipeline_count++;

        cfg_apply_fields(ctx, item, p, pipeline_fields, e);
        if (!json_object_get(item, "plugin")) {
            char pp[CFG_PATH_MAX];
            cfg_path_key(pp, sizeof pp, p, "plugin");
            cfg_error(ctx, pp, "required");
        }
        if (!e->name[0])
            continue;
        explicit_name[c->pipeline_count - 1] = true;
        if (instance_name_taken(c, c->pipeline_count - 1, e->name)) {
            char np[CFG_PATH_MAX];
            cfg_path_key(np, sizeof np, p, "name");
            cfg_error(ctx, np, "duplicate instance name");
        }
    }
    name_instances(ctx, explicit_name);
}
