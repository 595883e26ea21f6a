/* The degradation ladder's refusals (levels 2-4) and token budgets per
 * request type. The policy sets the level (decide() -> degrade_level, the
 * core's var sluice.degrade) and the category (var ladder.category); the
 * router sits after the cache in the pipeline, so what reaches it at
 * level 2 is a cache miss. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "router.h"

static const char *map_string(const struct sluice_cfg_map *m, const char *key)
{
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->keys[i], key) == 0)
            return *SLUICE_CFG_VALUE(*m, const char *, i);
    return NULL;
}

static enum sluice_action unavailable(struct router *rt, struct sluice_req *r,
                                      const char *code, const char *message)
{
    rt->h->counter_add(
        rt->h->metric_with(rt->refused, (const char *const[]){code}), 1);
    return rt->h->reject(r, 503, "server_error", code, message,
                         (uint64_t)rt->cfg->degraded_retry_after_s * 1000);
}

/* A chat.completion carrying the category's canned text. */
static enum sluice_action static_answer(struct router *rt, struct sluice_req *r,
                                        const char *text)
{
    const struct sluice_host *h = rt->h;
    struct sluice_str model = h->req_model(r), id = h->req_id(r);
    json_t *msg = json_pack("{s:s, s:s}", "role", "assistant", "content", text);
    json_t *body = json_pack(
        "{s:s%, s:s, s:I, s:s%, s:[{s:i, s:o, s:s}], s:{s:i, s:i, s:i}}", "id",
        id.ptr ? id.ptr : "", id.len, "object", "chat.completion", "created",
        (json_int_t)(h->wall_ms(h) / 1000), "model", model.ptr ? model.ptr : "",
        model.len, "choices", "index", 0, "message", msg, "finish_reason",
        "stop", "usage", "prompt_tokens", 0, "completion_tokens", 0,
        "total_tokens", 0);
    char *out = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!out)
        return unavailable(rt, r, "degraded", "The service is degraded.");
    h->resp_add_header(r, "x-sluice-degraded", (struct sluice_str){"3", 1});
    h->counter_add(
        h->metric_with(rt->refused, (const char *const[]){"static_answer"}), 1);
    enum sluice_action a = h->respond(r, 200, "application/json",
                                      (struct sluice_str){out, strlen(out)});
    free(out);
    return a;
}

enum sluice_action router_ladder(struct router *rt, struct sluice_req *r)
{
    char buf[64];
    const char *lvl = router_var(rt, r, "sluice.degrade", buf, sizeof buf);
    int level = lvl[0] ? atoi(lvl) : 0;
    if (level < 2)
        return SLUICE_CONTINUE;
    if (level >= 4)
        return unavailable(rt, r, "maintenance",
                           "The service is down for maintenance.");
    if (level == 3) {
        struct sluice_str ep = rt->h->req_endpoint(r);
        bool chat =
            ep.len == 20 && memcmp(ep.ptr, "/v1/chat/completions", 20) == 0;
        char cat[64];
        const char *c = router_var(rt, r, "ladder.category", cat, sizeof cat);
        const char *text = map_string(&rt->cfg->static_answers, c);
        if (!text)
            text = map_string(&rt->cfg->static_answers, "default");
        if (text && chat)
            return static_answer(rt, r, text);
    }
    return unavailable(rt, r, "degraded_cache_only",
                       "The service is degraded: only cached answers are "
                       "served. Retry later.");
}

/* The request type: the policy's var, the header or tier, the default. */
static const char *budget_type(struct router *rt, struct sluice_req *r,
                               char *buf, size_t cap)
{
    const struct sluice_host *h = rt->h;
    const char *by = rt->cfg->budget_by;
    const char *t = router_var(rt, r, "router.budget", buf, cap);
    if (t[0])
        return t;
    struct sluice_str v = {NULL, 0};
    if (strncmp(by, "header:", 7) == 0)
        v = h->req_header(r, by + 7);
    else if (strcmp(by, "tier") == 0)
        v = h->req_identity(r, SLUICE_ID_TIER);
    if (v.len && v.len < cap) {
        memcpy(buf, v.ptr, v.len);
        buf[v.len] = '\0';
        return buf;
    }
    return rt->cfg->default_budget;
}

static const struct router_budget_cfg *budget_of(struct router *rt,
                                                 const char *type)
{
    const struct sluice_cfg_map *m = &rt->cfg->token_budgets;
    for (size_t i = 0; type && i < m->count; i++)
        if (strcmp(m->keys[i], type) == 0)
            return SLUICE_CFG_VALUE(*m, struct router_budget_cfg, i);
    return NULL;
}

/* Endpoints whose answer max_tokens bounds (not embeddings). */
static bool generates(struct sluice_str ep)
{
    static const char *const eps[] = {"/v1/chat/completions", "/v1/completions",
                                      "/v1/responses"};
    for (size_t i = 0; i < 3; i++)
        if (ep.len == strlen(eps[i]) && memcmp(ep.ptr, eps[i], ep.len) == 0)
            return true;
    return false;
}

enum sluice_action router_token_budget(struct router *rt, struct sluice_req *r)
{
    const struct sluice_host *h = rt->h;
    char tbuf[128], vbuf[32];
    const char *type = budget_type(rt, r, tbuf, sizeof tbuf);
    const struct router_budget_cfg *b = budget_of(rt, type);
    if (b && b->max_input_tokens > 0) {
        uint64_t in = h->req_input_tokens(r);
        if (in > (uint64_t)b->max_input_tokens) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "The input is estimated at %" PRIu64
                     " tokens; request type '%.64s' allows %" PRId64
                     " input tokens.",
                     in, type, b->max_input_tokens);
            h->counter_add(
                h->metric_with(rt->refused,
                               (const char *const[]){"input_over_budget"}),
                1);
            return h->reject(r, 400, "invalid_request_error",
                             "input_over_token_budget", msg, 0);
        }
    }
    /* The ceiling: the type's, lowered by the policy's router.max_tokens. */
    uint64_t ceiling = b && b->max_tokens > 0 ? (uint64_t)b->max_tokens : 0;
    const char *v = router_var(rt, r, "router.max_tokens", vbuf, sizeof vbuf);
    char *end;
    unsigned long long pv = strtoull(v, &end, 10);
    if (v[0] && *end == '\0' && pv > 0 && (ceiling == 0 || pv < ceiling))
        ceiling = pv;
    uint64_t asked = h->req_max_tokens(r);
    if (ceiling && generates(h->req_endpoint(r)) &&
        (asked == 0 || asked > ceiling) &&
        SLUICE_HOST_HAS(h, upstream_set_max_tokens) &&
        h->upstream_set_max_tokens(r, ceiling) == SLUICE_OK)
        h->counter_add(rt->clamped, 1);
    return SLUICE_CONTINUE;
}
