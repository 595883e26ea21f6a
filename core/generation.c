/* Generations: a config plus the plugin instances built from it, their
 * lifetime across reloads, and the reload itself (SIGHUP). Main thread,
 * except generation_unref, which any worker may drop. */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/plugin_config.h"
#include "log.h"
#include "plugin_loader.h"
#include "plugin_routes.h"
#include "policy/policy.h"
#include "worker.h"

static void destroy_generation(struct generation *g)
{
    for (size_t i = g->count; i-- > 0;) {
        struct instance *inst = &g->inst[i];
        if (inst->self && inst->desc->destroy)
            inst->desc->destroy(inst->self);
        host_fini(&inst->host);
        free(inst->config);
        plugin_config_mem_free(inst->config_mem);
    }
    plugin_routes_free(g);
    free(g->inst);
    if (g->plugins)
        plugin_set_free(g->plugins);
    if (g->cfg)
        config_unref(g->cfg);
    free(g);
}

static void destroy_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    destroy_generation(arg);
}

void generation_ref(struct generation *g)
{
    atomic_fetch_add(&g->refs, 1);
}

void generation_unref(struct generation *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    /* destroy() is documented to run on the main thread. */
    if (worker_current() && g_runtime.main_base) {
        struct timeval now = {0, 0};
        if (event_base_once(g_runtime.main_base, -1, EV_TIMEOUT, destroy_cb, g,
                            &now) == 0)
            return;
    }
    destroy_generation(g);
}

static int build_instance(struct generation *g, size_t i, char *err,
                          size_t errlen)
{
    const struct config *c = g->cfg;
    const struct pipeline_entry *e = &c->pipeline[i];
    struct instance *inst = &g->inst[i];
    char path[1100], where[64];

    snprintf(where, sizeof where, "pipeline[%zu]", i);
    if (e->path[0])
        snprintf(path, sizeof path, "%s", e->path);
    else
        snprintf(path, sizeof path, "%s/%s.so", c->plugin_dir, e->plugin);
    char lerr[600];
    const struct loaded_plugin *lp =
        plugin_set_load(g->plugins, path, lerr, sizeof lerr);
    if (!lp) {
        snprintf(err, errlen, "%s.plugin: %s", where, lerr);
        return -1;
    }
    /* With a path too: "plugin" must say what is loaded, or the config
     * reads as one plugin while running another. */
    if (strcmp(lp->desc.name, e->plugin) != 0) {
        snprintf(err, errlen, "%s.plugin: %s declares the name '%s', not '%s'",
                 where, path, lp->desc.name, e->plugin);
        return -1;
    }
    inst->desc = &lp->desc;
    inst->index = i;
    snprintf(inst->name, sizeof inst->name, "%s", e->name);
    inst->config = calloc(1, lp->desc.config_size ? lp->desc.config_size : 1);
    if (!inst->config) {
        snprintf(err, errlen, "%s: out of memory", where);
        return -1;
    }
    char cpath[80];
    snprintf(cpath, sizeof cpath, "%s.config", where);
    if (plugin_config_fill(&lp->desc, e->config, cpath, inst->config,
                           &inst->config_mem, err, errlen))
        return -1;
    host_init(&inst->host, inst, g->cfg);
    if (!lp->desc.create)
        return 0;
    char *raw = json_dumps(e->config, JSON_COMPACT);
    struct sluice_str raw_json = {raw ? raw : "{}", raw ? strlen(raw) : 2};
    struct sluice_error perr;
    memset(&perr, 0, sizeof perr);
    int rc = lp->desc.create(&inst->host.pub, inst->config, raw_json,
                             &inst->self, &perr);
    free(raw);
    if (rc != 0) {
        snprintf(err, errlen, "%s.config: %s", where,
                 perr.message[0] ? perr.message : "plugin create() failed");
        inst->self = NULL;
        return -1;
    }
    return 0;
}

struct generation *generation_build(struct config *cfg, char *err,
                                    size_t errlen)
{
    struct generation *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&g->refs, 1);
    g->id = atomic_fetch_add(&g_runtime.next_generation, 1) + 1;
    g->cfg = config_ref(cfg);
    g->plugins = plugin_set_new();
    g->inst =
        calloc(cfg->pipeline_count ? cfg->pipeline_count : 1, sizeof *g->inst);
    if (!g->plugins || !g->inst) {
        snprintf(err, errlen, "out of memory");
        destroy_generation(g);
        return NULL;
    }
    for (size_t i = 0; i < cfg->pipeline_count; i++) {
        g->count = i + 1;
        if (build_instance(g, i, err, errlen)) {
            destroy_generation(g);
            return NULL;
        }
    }
    g->count = cfg->pipeline_count;

    if (cfg->policy.script[0]) {
        /* Each worker loads its own state later; load once here so a
         * broken script refuses the config instead of failing per worker. */
        struct policy_limits lim = {
            .instruction_budget = cfg->policy.instruction_budget,
            .memory_limit_bytes = cfg->policy.memory_limit_bytes,
            .max_pattern_work = cfg->policy.max_pattern_work,
        };
        char perr[512];
        struct policy *p =
            policy_load(cfg->policy.script, &lim, NULL, perr, sizeof perr);
        if (!p) {
            snprintf(err, errlen, "policy.script: %s", perr);
            destroy_generation(g);
            return NULL;
        }
        policy_free(p);
    }
    if (plugin_routes_build(g, err, errlen)) {
        destroy_generation(g);
        return NULL;
    }
    return g;
}

int runtime_reload(const char *path)
{
    char err[4096] = "";
    struct config *cfg = config_load(path, err, sizeof err);
    struct generation *g = NULL;
    if (cfg) {
        g = generation_build(cfg, err, sizeof err);
        config_unref(cfg);
    }
    if (!g) {
        metric_add(g_runtime.m.reloads_failed, 1);
        log_msg(LOG_ERROR, "reload",
                "new config refused, the old one keeps serving:\n%s", err);
        return -1;
    }
    if (strcmp(g->cfg->listen, g_runtime.current->cfg->listen) != 0 ||
        g->cfg->workers != g_runtime.current->cfg->workers)
        log_msg(LOG_WARN, "reload",
                "listen address and worker count changes need a restart");
    struct generation *old = g_runtime.current;
    g_runtime.current = g;
    for (unsigned i = 0; i < g_runtime.worker_count; i++)
        worker_adopt(g_runtime.workers[i], g);
    generation_unref(old);
    metric_add(g_runtime.m.reloads_ok, 1);
    log_set_level(log_level_parse(g->cfg->log_level));
    if (access_log_open(g->cfg->access_log) != 0)
        log_msg(LOG_WARN, "reload", "keeping the previous access log");
    log_msg(LOG_INFO, "reload",
            "config generation %llu is live (%zu plugin "
            "instances)",
            (unsigned long long)g->id, g->count);
    return 0;
}
