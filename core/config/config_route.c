/* Upstreams and fallback chains: their parsing and the lookups the request
 * path uses (route a model, find an upstream, find a fallback chain). */
#include "config_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_MAX 3600000

/* ---- validation ---- */

static const char *check_base_url(const char *s, size_t len)
{
    size_t scheme = strncmp(s, "http://", 7) == 0    ? 7
                    : strncmp(s, "https://", 8) == 0 ? 8
                                                     : 0;
    if (scheme == 0)
        return "must start with http:// or https://";
    if (len == scheme || s[scheme] == '/')
        return "must name a host after the scheme";
    /* A user:password@ part would put a credential in the config (and in
     * every log line that names the URL): keys belong in api_key_env. */
    const char *host_end = strchr(s + scheme, '/');
    const char *at = strchr(s + scheme, '@');
    if (at && (!host_end || at < host_end))
        return "must not contain credentials (user@host); put the key in "
               "an environment variable named by api_key_env";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '?' ||
            s[i] == '#')
            return "must not contain spaces, control characters, a query "
                   "or a fragment";
    return NULL;
}

/* The field holds the NAME of a variable. A value that looks like a key is
 * refused without being echoed, so a pasted key never reaches a log. */
static const char *check_env_name(const char *s, size_t len)
{
    static const char *const msg = "must be the NAME of an environment "
                                   "variable, not the key itself";
    if (cfg_looks_like_secret(s, len))
        return msg;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return msg;
    if (len > 0 && s[0] >= '0' && s[0] <= '9')
        return msg;
    return NULL;
}

static const struct cfg_field upstream_fields[] = {
    CFG_STRING("name", struct upstream_config, name, cfg_check_name),
    CFG_STRING("base_url", struct upstream_config, base_url, check_base_url),
    CFG_STRING("api_key_env", struct upstream_config, api_key_env,
               check_env_name),
    CFG_BOOL("require_key", struct upstream_config, require_key),
    CFG_CUSTOM("models"),
    CFG_UINT("max_connections", struct upstream_config, max_connections, 1,
             100000),
    CFG_UINT("connect_timeout_ms", struct upstream_config, connect_timeout_ms,
             1, MS_MAX),
    CFG_UINT("first_byte_timeout_ms", struct upstream_config,
             first_byte_timeout_ms, 1, MS_MAX),
    CFG_UINT("idle_timeout_ms", struct upstream_config, idle_timeout_ms, 1,
             MS_MAX),
    CFG_CUSTOM("http_client"),
    CFG_END,
};

static void require_key(struct parse_ctx *ctx, json_t *obj, const char *path,
                        const char *key, const char *hint)
{
    if (json_object_get(obj, key))
        return;
    char p[CFG_PATH_MAX];
    cfg_path_key(p, sizeof p, path, key);
    cfg_error(ctx, p, "required%s", hint);
}

static void parse_models(struct parse_ctx *ctx, json_t *obj, const char *path,
                         struct upstream_config *u)
{
    char p[CFG_PATH_MAX];
    cfg_path_key(p, sizeof p, path, "models");
    json_t *arr = json_object_get(obj, "models");
    if (!arr)
        return; /* reported as required by the caller */
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        cfg_error(ctx, p,
                  "must be a non-empty array of model names "
                  "([\"*\"] serves any model)");
        return;
    }
    if (json_array_size(arr) > CONFIG_MAX_MODELS) {
        cfg_error(ctx, p, "at most %d models", CONFIG_MAX_MODELS);
        return;
    }
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        char mp[CFG_PATH_MAX];
        cfg_path_index(mp, sizeof mp, p, i);
        const char *s = json_string_value(m);
        size_t len = json_string_length(m);
        if (!s || len == 0 || len >= sizeof u->models[0]) {
            cfg_error(ctx, mp, "must be a string of 1 to %zu characters",
                      sizeof u->models[0] - 1);
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < u->model_count && !dup; j++)
            dup = strcmp(u->models[j], s) == 0;
        if (dup) {
            cfg_error(ctx, mp, "duplicate model");
            continue;
        }
        memcpy(u->models[u->model_count++], s, len + 1);
    }
}

/* "native" (sluice's HTTP/1.1 client for http:// URLs) or "curl". https://
 * goes through libcurl either way; the flag only matters for http://. */
static void parse_http_client(struct parse_ctx *ctx, json_t *obj,
                              const char *path, struct upstream_config *u)
{
    json_t *v = json_object_get(obj, "http_client");
    if (!v)
        return;
    const char *s = json_string_value(v);
    if (s && strcmp(s, "native") == 0)
        u->use_curl = false;
    else if (s && strcmp(s, "curl") == 0)
        u->use_curl = true;
    else {
        char p[CFG_PATH_MAX];
        cfg_path_key(p, sizeof p, path, "http_client");
        cfg_error(ctx, p, "must be \"native\" or \"curl\"");
    }
}

static void parse_upstream(struct parse_ctx *ctx, json_t *obj, const char *path,
                           struct upstream_config *u)
{
    u->max_connections = 64;
    u->connect_timeout_ms = 3000;
    u->first_byte_timeout_ms = 120000;
    u->idle_timeout_ms = 60000;

    cfg_apply_fields(ctx, obj, path, upstream_fields, u);
    parse_models(ctx, obj, path, u);
    parse_http_client(ctx, obj, path, u);
    require_key(ctx, obj, path, "name", "");
    require_key(ctx, obj, path, "base_url", "");
    require_key(ctx, obj, path, "models", " ([\"*\"] serves any model)");

    size_t len = strlen(u->base_url);
    while (len > 0 && u->base_url[len - 1] == '/')
        u->base_url[--len] = '\0';

    json_t *env = json_object_get(obj, "api_key_env");
    if (u->require_key &&
        (!env || (json_is_string(env) && json_string_length(env) == 0))) {
        char p[CFG_PATH_MAX];
        cfg_path_key(p, sizeof p, path, "require_key");
        cfg_error(ctx, p, "needs api_key_env (the variable that must be set)");
    }
}

void cfg_parse_upstreams(struct parse_ctx *ctx, json_t *root)
{
    struct config *c = ctx->cfg;
    json_t *arr = json_object_get(root, "upstreams");
    if (!arr) {
        cfg_error(ctx, "upstreams", "required (at least one upstream)");
        return;
    }
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        cfg_error(ctx, "upstreams", "must be a non-empty array");
        return;
    }
    if (json_array_size(arr) > CONFIG_MAX_UPSTREAMS) {
        cfg_error(ctx, "upstreams", "at most %d upstreams",
                  CONFIG_MAX_UPSTREAMS);
        return;
    }
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item)
    {
        char p[CFG_PATH_MAX];
        cfg_path_index(p, sizeof p, "upstreams", i);
        if (!json_is_object(item)) {
            cfg_error(ctx, p, "must be an object");
            continue;
        }
        struct upstream_config *u = &c->upstreams[c->upstream_count];
        parse_upstream(ctx, item, p, u);
        if (u->name[0] && config_upstream(c, u->name, strlen(u->name))) {
            char np[CFG_PATH_MAX];
            cfg_path_key(np, sizeof np, p, "name");
            cfg_error(ctx, np, "duplicate upstream name");
        }
        c->upstream_count++;
    }
}

/* ---- fallbacks ---- */

static bool serves(const struct upstream_config *u, const char *model)
{
    for (size_t i = 0; i < u->model_count; i++)
        if (strcmp(u->models[i], "*") == 0 || strcmp(u->models[i], model) == 0)
            return true;
    return false;
}

static bool anyone_serves(const struct config *c, const char *model)
{
    for (size_t i = 0; i < c->upstream_count; i++)
        if (serves(&c->upstreams[i], model))
            return true;
    return false;
}

static void list_upstreams(const struct config *c, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->upstream_count && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "",
                              c->upstreams[i].name);
}

static const struct cfg_field step_fields[] = {
    CFG_STRING("upstream", struct fallback_step, upstream, cfg_check_name),
    CFG_STRING("model", struct fallback_step, model, NULL),
    CFG_END,
};

/* Static checks that catch typos; whether an upstream is enabled is only
 * known per request. Values are never echoed (see check_env_name). */
static void check_step(struct parse_ctx *ctx, const char *path,
                       const char *chain_model, json_t *obj,
                       const struct fallback_step *s)
{
    const struct config *c = ctx->cfg;
    char p[CFG_PATH_MAX];
    if (s->upstream[0]) {
        const struct upstream_config *u =
            config_upstream(c, s->upstream, strlen(s->upstream));
        cfg_path_key(p, sizeof p, path, "upstream");
        if (!u) {
            char names[512];
            list_upstreams(c, names, sizeof names);
            cfg_error(ctx, p, "unknown upstream (configured: %s)", names);
            return;
        }
        const char *model = s->model[0] ? s->model : chain_model;
        if (strcmp(model, "*") != 0 && !serves(u, model))
            cfg_error(ctx, p, "this upstream does not serve the model");
    } else if (s->model[0]) {
        cfg_path_key(p, sizeof p, path, "model");
        if (!anyone_serves(c, s->model))
            cfg_error(ctx, p, "no upstream serves this model");
    } else if (!json_object_get(obj, "upstream") &&
               !json_object_get(obj, "model")) {
        cfg_error(ctx, path, "needs \"upstream\", \"model\" or both");
    }
}

static void parse_chain(struct parse_ctx *ctx, const char *path,
                        const char *model, json_t *steps)
{
    struct config *c = ctx->cfg;
    if (!json_is_array(steps) || json_array_size(steps) == 0) {
        cfg_error(ctx, path, "must be a non-empty array of steps");
        return;
    }
    if (json_array_size(steps) > CONFIG_MAX_FALLBACKS) {
        cfg_error(ctx, path, "at most %d steps", CONFIG_MAX_FALLBACKS);
        return;
    }
    if (model[0] == '\0') {
        cfg_error(ctx, path, "model name must not be empty");
        return;
    }
    if (strlen(model) >= sizeof c->fallbacks[0].model) {
        cfg_error(ctx, path, "model name is longer than %zu characters",
                  sizeof c->fallbacks[0].model - 1);
        return;
    }
    struct fallback_chain *chain = &c->fallbacks[c->fallback_count++];
    snprintf(chain->model, sizeof chain->model, "%s", model);
    size_t i;
    json_t *item;
    json_array_foreach(steps, i, item)
    {
        char sp[CFG_PATH_MAX];
        cfg_path_index(sp, sizeof sp, path, i);
        if (!json_is_object(item)) {
            cfg_error(ctx, sp, "must be an object");
            continue;
        }
        struct fallback_step *s = &chain->steps[chain->step_count++];
        cfg_apply_fields(ctx, item, sp, step_fields, s);
        check_step(ctx, sp, model, item, s);
    }
}

void cfg_parse_fallbacks(struct parse_ctx *ctx, json_t *root)
{
    json_t *obj = cfg_get_object(ctx, root, "", "fallbacks");
    if (!obj)
        return;
    if (json_object_size(obj) > CONFIG_MAX_UPSTREAMS) {
        cfg_error(ctx, "fallbacks", "at most %d chains", CONFIG_MAX_UPSTREAMS);
        return;
    }
    const char *model;
    json_t *steps;
    json_object_foreach(obj, model, steps)
    {
        char p[CFG_PATH_MAX];
        cfg_path_key(p, sizeof p, "fallbacks", model);
        parse_chain(ctx, p, model, steps);
    }
}

/* ---- lookups (request path) ---- */

static bool name_equals(const char *stored, const char *s, size_t len)
{
    /* stored is NUL-terminated; s is length-counted and may hold NULs. */
    return strnlen(stored, len + 1) == len && memcmp(stored, s, len) == 0;
}

bool config_upstream_enabled(const struct upstream_config *u)
{
    if (!u->require_key)
        return true;
    const char *key = getenv(u->api_key_env);
    return key && key[0];
}

const struct upstream_config *
config_route_model(const struct config *c, const char *model, size_t model_len)
{
    for (size_t i = 0; i < c->upstream_count; i++) {
        const struct upstream_config *u = &c->upstreams[i];
        if (!config_upstream_enabled(u))
            continue;
        for (size_t m = 0; m < u->model_count; m++)
            if (name_equals(u->models[m], "*", 1) ||
                name_equals(u->models[m], model, model_len))
                return u;
    }
    return NULL;
}

const struct upstream_config *config_upstream(const struct config *c,
                                              const char *name, size_t name_len)
{
    for (size_t i = 0; i < c->upstream_count; i++)
        if (name_equals(c->upstreams[i].name, name, name_len))
            return &c->upstreams[i];
    return NULL;
}

const struct fallback_chain *
config_fallbacks(const struct config *c, const char *model, size_t model_len)
{
    const struct fallback_chain *any = NULL;
    for (size_t i = 0; i < c->fallback_count; i++) {
        const struct fallback_chain *f = &c->fallbacks[i];
        if (name_equals(f->model, model, model_len))
            return f;
        if (!any && name_equals(f->model, "*", 1))
            any = f;
    }
    return any;
}
