/* Bridges the request object and the worker's Lua policy: a lazy view of
 * the request for the script, and the decision applied back. */
#include "policy_glue.h"

#include <pthread.h>
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

_Static_assert(sizeof(((struct upstream_config *)0)->models[0]) ==
                   API_MODEL_NAME_MAX + 1,
               "the request's model limit is the config's");

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
    return request_input_tokens(ctx);
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

/* Nanosecond mtime, size and inode: a script rewritten in place within one
 * second (truncate, then write) or replaced by a rename must still read as
 * changed. */
static struct policy_stamp file_stamp(const char *path)
{
    struct stat st;
    struct policy_stamp s = {.mtime_ns = -1, .size = -1};
    if (stat(path, &st) == 0) {
        s.mtime_ns =
            (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        s.size = (int64_t)st.st_size;
        s.ino = (uint64_t)st.st_ino;
        s.dev = (uint64_t)st.st_dev;
    }
    return s;
}

static bool same_stamp(const struct policy_stamp *a,
                       const struct policy_stamp *b)
{
    return a->mtime_ns == b->mtime_ns && a->size == b->size &&
           a->ino == b->ino && a->dev == b->dev;
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
    struct policy_stamp stamp = file_stamp(pc->script);
    bool changed = !same_stamp(&stamp, &w->policy_stamp);
    /* After a refused read, look again even when the file seems unchanged:
     * it may have been caught half-written and finished within the same
     * stamp. */
    if (!gen_changed && same_script && !changed && !w->policy_failed)
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
    w->policy_stamp = stamp;
    w->policy_failed = !p;
    if (!p) {
        /* Keep the running policy; a broken edit must not take traffic
         * down. Worker 0 logs it so the message appears once per edit. */
        if (w->index == 0 && (changed || gen_changed))
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

/* sluice_policy_tags_total{tag=...}: one series per distinct tag, at most
 * TAG_SERIES_MAX per process (a policy that builds tags from user input
 * would otherwise grow /metrics without bound); later tags count under
 * tag="_other". */
#define TAG_SERIES_MAX 32

static struct {
    pthread_mutex_t lock;
    size_t count;
    char names[TAG_SERIES_MAX][64];
    struct metric *series[TAG_SERIES_MAX];
    struct metric *other;
} tag_metrics = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct metric *tag_series(const char *tag)
{
    char labels[160] = "tag=\"";
    size_t at = strlen(labels);
    for (const char *p = tag; *p && at < 150; p++) {
        if (*p == '"' || *p == '\\')
            labels[at++] = '\\';
        labels[at++] = *p;
    }
    labels[at++] = '"';
    labels[at] = '\0';
    return metrics_counter(g_runtime.metrics, "sluice_policy_tags_total",
                           "Requests by tag set by the policy (at most 32 "
                           "tags, then tag=\"_other\").",
                           labels);
}

static void count_tag(const char *tag)
{
    struct metric *m = NULL;
    pthread_mutex_lock(&tag_metrics.lock);
    for (size_t i = 0; i < tag_metrics.count && !m; i++)
        if (strcmp(tag_metrics.names[i], tag) == 0)
            m = tag_metrics.series[i];
    if (!m && tag_metrics.count < TAG_SERIES_MAX) {
        size_t i = tag_metrics.count++;
        snprintf(tag_metrics.names[i], sizeof tag_metrics.names[i], "%s", tag);
        m = tag_metrics.series[i] = tag_series(tag);
    }
    if (!m) {
        if (!tag_metrics.other)
            tag_metrics.other = tag_series("_other");
        m = tag_metrics.other;
    }
    pthread_mutex_unlock(&tag_metrics.lock);
    metric_add(m, 1);
}

static int priority_of(const char *name)
{
    return name[0] ? gateway_priority_parse(name, strlen(name)) : -1;
}

/* A decision naming what the config does not have. */
static bool invalid_decision(struct sluice_req *r,
                             const struct policy_decision *d, char *err,
                             size_t errlen)
{
    if (!d->reject && d->upstream[0] &&
        !config_upstream(r->gen->cfg, d->upstream, strlen(d->upstream))) {
        snprintf(err, errlen, "decide() returned the unknown upstream '%.64s'",
                 d->upstream);
        return true;
    }
    return false;
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
        for (size_t i = 0; i < d->tag_count; i++)
            count_tag(d->tags[i]);
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
    if (policy_decide(w->policy, &view, &d, err, sizeof err) == POLICY_OK) {
        if (d.reused)
            metric_add(g_runtime.m.policy_reused, 1);
        /* Under fail: open an invalid part is ignored with a warning (in
         * apply); under fail: closed it is a policy failure like any
         * other, never a silent detour through the default route. */
        if (w->gen->cfg->policy.fail_open ||
            !invalid_decision(r, &d, err, sizeof err))
            return apply(r, &d);
    }

    metric_add(g_runtime.m.policy_errors, 1);
    log_msg(LOG_ERROR, "policy", "%s: %s", r->id, err);
    if (w->gen->cfg->policy.fail_open)
        return true;
    respond_set_error(r, 500, "api_error", "policy_error",
                      "The gateway policy failed for this request.", NULL, 0);
    return false;
}
