/* Where a request goes: priority models, aliases, sticky splits, pools.
 * Every step can be overridden by the policy through per-request vars
 * (router.skip, router.variant, router.upstream, router.strategy); see
 * README.md. */
#include <stdio.h>
#include <string.h>

#include "router.h"
#include "router_split.h"

#define NAME_MAX_LEN 128

static const char *const PRIORITY_NAMES[] = {"critical", "realtime", "standard",
                                             "batch", "low"};

static int map_find(const struct sluice_cfg_map *m, const char *key)
{
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->keys[i], key) == 0)
            return (int)i;
    return -1;
}

static const char *map_string(const struct sluice_cfg_map *m, const char *key)
{
    int i = map_find(m, key);
    return i < 0 ? NULL : *SLUICE_CFG_VALUE(*m, const char *, i);
}

/* Aliases may name aliases; a cycle stops after a few hops. */
static const char *resolve_alias(const struct router_config *cfg,
                                 const char *model)
{
    for (int hop = 0; hop < 4; hop++) {
        const char *to = map_string(&cfg->aliases, model);
        if (!to)
            break;
        model = to;
    }
    return model;
}

/* The first of the split's `by` sources that is set for this request. */
static struct sluice_str who_of(struct router *rt, struct sluice_req *r,
                                const struct router_split_cfg *s)
{
    const struct sluice_host *h = rt->h;
    for (size_t i = 0; i < s->by.count; i++) {
        const char *by = *SLUICE_CFG_ITEM(s->by, const char *, i);
        struct sluice_str v = {NULL, 0};
        if (strcmp(by, "user") == 0)
            v = h->req_identity(r, SLUICE_ID_USER);
        else if (strcmp(by, "key") == 0)
            v = h->req_identity(r, SLUICE_ID_KEY);
        else if (strcmp(by, "tenant") == 0)
            v = h->req_identity(r, SLUICE_ID_TENANT);
        else if (strncmp(by, "header:", 7) == 0)
            v = h->req_header(r, by + 7);
        if (v.len)
            return v;
    }
    return h->req_id(r); /* nobody to stick to: spread by request */
}

static const struct router_variant_cfg *
split_variant(struct router *rt, struct sluice_req *r, const char *split,
              const struct router_split_cfg *s)
{
    char forced[64];
    const char *f = router_var(rt, r, "router.variant", forced, sizeof forced);
    double w[16];
    size_t n = s->variants.count < 16 ? s->variants.count : 16;
    for (size_t i = 0; i < n; i++) {
        const struct router_variant_cfg *v =
            SLUICE_CFG_ITEM(s->variants, struct router_variant_cfg, i);
        if (f[0] && strcmp(v->name, f) == 0)
            return v;
        w[i] = v->weight;
    }
    int i =
        router_split_pick(w, n, router_split_point(split, who_of(rt, r, s)));
    return i < 0 ? NULL
                 : SLUICE_CFG_ITEM(s->variants, struct router_variant_cfg, i);
}

static struct router_pool *pool_of(struct router *rt, const char *model)
{
    for (size_t i = 0; i < rt->n_pools; i++)
        if (strcmp(rt->pools[i].model, model) == 0)
            return &rt->pools[i];
    return NULL;
}

/* Not behind an open breaker (per upstream or per upstream and model) and
 * not marked down by the core. */
static bool member_usable(struct router *rt, const struct router_member *m)
{
    if (!SLUICE_HOST_HAS(rt->h, health_get))
        return true;
    for (int i = 0; i < 3; i++) {
        double v = 0;
        if (m->health[i] &&
            rt->h->health_get(rt->h, m->health[i], &v) == SLUICE_OK && v >= 1)
            return false;
    }
    return true;
}

static int strategy_named(const char *s, int fallback)
{
    static const char *const names[] = {"weighted", "least_inflight", "p2c"};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return fallback;
}

static void balance(struct router *rt, struct sluice_req *r,
                    struct router_state *st, struct router_pool *p)
{
    const struct sluice_host *h = rt->h;
    bool usable[32];
    for (size_t i = 0; i < p->n && i < 32; i++) {
        usable[i] = member_usable(rt, &p->members[i]);
        if (!usable[i])
            h->counter_add(p->members[i].skipped, 1);
    }
    char sbuf[32];
    const char *s = router_var(rt, r, "router.strategy", sbuf, sizeof sbuf);
    struct router_pool view = *p;
    view.strategy = strategy_named(s, p->strategy);
    int i = router_pool_pick(&view, usable, h->random_u64(h), h->random_u64(h));
    if (i < 0)
        return; /* all open: the core's route, the breaker answers */
    struct router_member *m = &p->members[i];
    if (h->upstream_set_name(
            r, (struct sluice_str){m->name, strlen(m->name)}) != SLUICE_OK)
        return;
    atomic_fetch_add(&m->inflight, 1);
    st->held = m;
    st->pool = p;
    h->counter_add(m->picks, 1);
}

/* The first configured upstream that lists `model` by name. */
static void upstream_for_model(struct router *rt, struct sluice_req *r,
                               const char *model)
{
    const struct sluice_host *h = rt->h;
    if (!SLUICE_HOST_HAS(h, upstream_model))
        return;
    size_t len = strlen(model);
    for (size_t i = 0; i < h->upstream_count(h); i++)
        for (size_t j = 0;; j++) {
            struct sluice_str m = h->upstream_model(h, i, j);
            if (!m.len)
                break;
            if (m.len == len && memcmp(m.ptr, model, len) == 0) {
                h->upstream_set_name(r, h->upstream_name(h, i));
                return;
            }
        }
}

static bool set_upstream_named(struct router *rt, struct sluice_req *r,
                               const char *name)
{
    return rt->h->upstream_set_name(
               r, (struct sluice_str){name, strlen(name)}) == SLUICE_OK;
}

void router_route(struct router *rt, struct sluice_req *r,
                  struct router_state *st)
{
    const struct sluice_host *h = rt->h;
    const struct router_config *cfg = rt->cfg;
    char asked[NAME_MAX_LEN], pinned[64];
    struct sluice_str m0 = h->req_target_model(r);
    if (m0.len >= sizeof asked)
        return;
    memcpy(asked, m0.ptr ? m0.ptr : "", m0.len);
    asked[m0.len] = '\0';
    const char *model = asked;

    if (strcmp(model, cfg->auto_model) == 0) {
        unsigned p = (unsigned)h->req_priority(r);
        const char *to =
            p < 5 ? map_string(&cfg->priority_models, PRIORITY_NAMES[p]) : NULL;
        if (to)
            model = to;
    }

    /* A split is looked up under the name asked for, then the alias's. */
    const char *split = model;
    int si = map_find(&cfg->splits, split);
    if (si < 0) {
        split = resolve_alias(cfg, model);
        si = map_find(&cfg->splits, split);
    }
    const char *variant_upstream = NULL;
    if (si >= 0) {
        const struct router_variant_cfg *v = split_variant(
            rt, r, split,
            SLUICE_CFG_VALUE(cfg->splits, struct router_split_cfg, si));
        if (v) {
            st->split = cfg->splits.keys[si];
            st->variant = v->name;
            if (v->model)
                model = v->model;
            variant_upstream = v->upstream;
            h->var_set(r, "router.split",
                       (struct sluice_str){st->split, strlen(st->split)});
            h->var_set(r, "router.variant",
                       (struct sluice_str){v->name, strlen(v->name)});
        }
    }
    model = resolve_alias(cfg, model);
    bool changed = strcmp(model, asked) != 0;
    if (changed &&
        h->upstream_set_model(r, (struct sluice_str){model, strlen(model)}) !=
            SLUICE_OK)
        return;

    const char *pin =
        router_var(rt, r, "router.upstream", pinned, sizeof pinned);
    if (pin[0] && set_upstream_named(rt, r, pin))
        return;
    if (variant_upstream && set_upstream_named(rt, r, variant_upstream))
        return;
    struct router_pool *p = pool_of(rt, model);
    if (p)
        balance(rt, r, st, p);
    else if (changed)
        upstream_for_model(rt, r, model);
}
