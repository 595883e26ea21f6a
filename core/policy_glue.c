/* Bridges the request object and the worker's Lua policy: a lazy view of
 * the request for the script, and the decision applied back. */
#include "policy_glue.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "config/config.h"
#include "gateway.h"
#include "health.h"
#include "http/http_server.h"
#include "log.h"
#include "metrics.h"
#include "policy/policy.h"
#include "request.h"
#include "respond.h"
#include "runtime.h"
#include "worker.h"

#define WATCH_INTERVAL_NS 500000000ull

/* ---- the view ---- */

static const char *v_model(void *ctx, size_t *len)
{
    struct sluice_req *r = ctx;
    *len = r->api.model_len;
    return r->api.model;
}

static const char *v_endpoint(void *ctx, size_t *len)
{
    struct sluice_req *r = ctx;
    *len = strlen(r->endpoint);
    return r->endpoint;
}

static const char *v_identity(struct sluice_req *r, int which, size_t *len)
{
    const char *s = r->identity[which];
    *len = s ? strlen(s) : 0;
    return s ? s : "";
}

static const char *v_tenant(void *ctx, size_t *len)
{
    return v_identity(ctx, SLUICE_ID_TENANT, len);
}

static const char *v_user(void *ctx, size_t *len)
{
    return v_identity(ctx, SLUICE_ID_USER, len);
}

static const char *v_tier(void *ctx, size_t *len)
{
    return v_identity(ctx, SLUICE_ID_TIER, len);
}

static const char *v_header(void *ctx, const char *name, size_t *len)
{
    struct sluice_req *r = ctx;
    /* Credentials are never visible to policies. */
    if (strcasecmp(name, "authorization") == 0 || !r->ex)
        return NULL;
    return http_header(r->ex, name, len);
}

static bool v_stream(void *ctx)
{
    return ((struct sluice_req *)ctx)->api.stream;
}

static uint64_t v_message_count(void *ctx)
{
    return ((struct sluice_req *)ctx)->api.message_count;
}

static uint64_t v_message_bytes(void *ctx)
{
    return ((struct sluice_req *)ctx)->api.text_bytes;
}

static uint64_t v_input_tokens(void *ctx)
{
    return ((struct sluice_req *)ctx)->api.input_tokens;
}

static uint64_t v_max_tokens(void *ctx)
{
    return ((struct sluice_req *)ctx)->api.max_tokens;
}

static const char *v_priority(void *ctx)
{
    return gateway_priority_name(((struct sluice_req *)ctx)->priority);
}

static const char *v_body(void *ctx, size_t *len)
{
    struct sluice_req *r = ctx;
    *len = r->body_len;
    return r->body;
}

static const char *v_var(void *ctx, const char *name, size_t *len)
{
    struct sluice_req *r = ctx;
    return kv_get(&r->vars, name, len);
}

static bool env_health(void *ctx, const char *name, double *value)
{
    (void)ctx;
    return health_get(name, value);
}

static double env_now(void *ctx)
{
    (void)ctx;
    return (double)worker_now_ns() / 1e9;
}

static const struct policy_env policy_env = {
    .ctx = NULL,
    .health = env_health,
    .now_s = env_now,
};

/* ---- loading ---- */

static long file_mtime(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_mtime : -1;
}

void policy_refresh(struct worker *w)
{
    const struct policy_config *pc = &w->gen->cfg->policy;
    bool same_script = strcmp(w->policy_path, pc->script) == 0;
    bool gen_changed = w->policy_generation != w->gen->id;

    if (!pc->script[0]) {
        if (w->policy)
            policy_free(w->policy);
        w->policy = NULL;
        w->policy_path[0] = '\0';
        w->policy_generation = w->gen->id;
        return;
    }
    long mtime = file_mtime(pc->script);
    if (!gen_changed && same_script && mtime == w->policy_mtime)
        return;
    struct policy_limits lim = {
        .instruction_budget = pc->instruction_budget,
        .memory_limit_bytes = pc->memory_limit_bytes,
        .max_pattern_work = pc->max_pattern_work,
    };
    char err[512] = "";
    struct policy *p =
        policy_load(pc->script, &lim, &policy_env, err, sizeof err);
    w->policy_generation = w->gen->id;
    w->policy_mtime = mtime;
    if (!p) {
        /* Keep the running policy; a broken edit must not take traffic
         * down. Worker 0 logs it so the message appears once. */
        if (w->index == 0)
            log_msg(LOG_ERROR, "policy",
                    "reload refused, keeping the old "
                    "policy: %s",
                    err);
        return;
    }
    if (w->policy)
        policy_free(w->policy);
    w->policy = p;
    snprintf(w->policy_path, sizeof w->policy_path, "%s", pc->script);
    if (w->index == 0 && !gen_changed)
        log_msg(LOG_INFO, "policy", "reloaded %s", pc->script);
}

/* ---- applying a decision ---- */

static int priority_of(const char *name)
{
    return name[0] ? gateway_priority_parse(name, strlen(name)) : -1;
}

static bool apply(struct sluice_req *r, const struct policy_decision *d)
{
    if (d->reject) {
        int status = d->reject_status ? d->reject_status : 429;
        respond_set_error(r, status, NULL, "policy_rejected",
                          d->reject_message[0] ? d->reject_message
                                               : "Rejected by policy.",
                          NULL, (uint64_t)d->reject_retry_after_s * 1000);
        return false;
    }
    if (d->upstream[0]) {
        const struct upstream_config *u =
            config_upstream(r->gen->cfg, d->upstream, strlen(d->upstream));
        if (u)
            r->upstream = u;
        else
            log_msg(LOG_WARN, "policy", "%s: unknown upstream '%s' ignored",
                    r->id, d->upstream);
    }
    if (d->model[0]) {
        r->target_model = arena_strndup(&r->arena, d->model, strlen(d->model));
        r->body_dirty = true;
        if (!d->upstream[0]) {
            const struct upstream_config *u =
                config_route_model(r->gen->cfg, d->model, strlen(d->model));
            if (u)
                r->upstream = u;
        }
    }
    int p = priority_of(d->priority);
    if (p >= 0)
        r->priority = (enum sluice_priority)p;
    if (d->degrade_level >= 0) {
        r->degrade_level = d->degrade_level;
        char lvl[8];
        int n = snprintf(lvl, sizeof lvl, "%d", d->degrade_level);
        kv_set(r, &r->vars, "sluice.degrade", lvl, (size_t)n);
    }
    if (d->tag_count) {
        char tags[POLICY_MAX_TAGS * 65] = "";
        size_t at = 0;
        for (size_t i = 0; i < d->tag_count && at < sizeof tags; i++)
            at += (size_t)snprintf(tags + at, sizeof tags - at, "%s%s",
                                   i ? "," : "", d->tags[i]);
        r->tags = arena_strndup(&r->arena, tags, strlen(tags));
        kv_set(r, &r->vars, "sluice.tags", tags, strlen(tags));
    }
    for (size_t i = 0; i < d->var_count; i++)
        kv_set(r, &r->vars, d->vars[i][0], d->vars[i][1],
               strlen(d->vars[i][1]));
    return true;
}

bool policy_apply(struct sluice_req *r)
{
    struct worker *w = r->w;
    static _Thread_local uint64_t last_watch_ns;

    if (w->gen->cfg->policy.watch &&
        w->now_ns - last_watch_ns > WATCH_INTERVAL_NS) {
        last_watch_ns = w->now_ns;
        policy_refresh(w);
    }
    if (!w->policy)
        return true;
    struct policy_req_view view = {
        .ctx = r,
        .model = v_model,
        .endpoint = v_endpoint,
        .tenant = v_tenant,
        .user = v_user,
        .tier = v_tier,
        .header = v_header,
        .stream = v_stream,
        .message_count = v_message_count,
        .message_bytes = v_message_bytes,
        .input_tokens = v_input_tokens,
        .max_tokens = v_max_tokens,
        .priority = v_priority,
        .body = v_body,
        .var = v_var,
    };
    struct policy_decision d;
    char err[512];
    if (policy_decide(w->policy, &view, &d, err, sizeof err) == POLICY_OK)
        return apply(r, &d);

    metric_add(g_runtime.m.policy_errors, 1);
    log_msg(LOG_ERROR, "policy", "%s: %s", r->id, err);
    if (w->gen->cfg->policy.fail_open)
        return true;
    respond_set_error(r, 500, "api_error", "policy_error",
                      "The gateway policy failed for this request.", NULL, 0);
    return false;
}
