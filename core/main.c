/* sluice: command line, start-up, signals (SIGHUP reload, SIGTERM drain).
 *
 * Reading order for the request path: gateway.c (routing, identity,
 * decoding) → pipeline.c (policy + plugin hooks) → proxy.c (upstream call,
 * streaming, retries) → respond.c (answers and the end of a request).
 */
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/batch_client.h"
#include "config/config.h"
#include "config/plugin_config.h"
#include "http/http_server.h"
#include "log.h"
#include "plugin_loader.h"
#include "runtime.h"
#include "tokens/tokens_cli.h"
#include "worker.h"

#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: sluice serve [-c FILE]        run the gateway\n"
    "       sluice check [-c FILE]        validate config, plugins and "
    "policy\n"
    "       sluice plugin-help NAME [-c FILE | --plugin-dir DIR]\n"
    "                                     show a plugin's config keys\n"
    "       sluice tokens [--model M] [--chat] [FILE]\n"
    "                                     count tokens as the gateway does\n"
    "       sluice batch [options] INPUT.jsonl\n"
    "                                     run or --dry-run a batch file "
    "(--help)\n"
    "       sluice --version | --help\n"
    "\n"
    "Without -c, the bundled default config is used. Signals: SIGHUP "
    "reloads\nconfig, plugins and policies; SIGTERM drains in-flight "
    "requests and exits.\n";

static const char *config_path;
static const char *plugin_dir_opt;

static int parse_options(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"plugin-dir", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'p':
            plugin_dir_opt = optarg;
            break;
        default:
            fputs(usage_text, stderr);
            return -1;
        }
    }
    if (!config_path)
        config_path = config_default_path();
    return 0;
}

static unsigned worker_count_for(const struct config *c);

/* ---- check ---- */

static int cmd_check(void)
{
    char err[8192] = "";
    struct config *cfg = config_load(config_path, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s: invalid config:\n%s", config_path, err);
        return EXIT_USAGE;
    }
    g_runtime.metrics = metrics_registry_new();
    runtime_init_metrics();
    g_runtime.worker_count = worker_count_for(cfg);
    struct generation *g = generation_build(cfg, err, sizeof err);
    config_unref(cfg);
    if (!g) {
        fprintf(stderr, "%s: invalid config:\n%s\n", config_path, err);
        metrics_registry_free(g_runtime.metrics);
        return EXIT_USAGE;
    }
    printf("%s: OK (%zu upstreams, %zu plugin instances%s)\n", config_path,
           g->cfg->upstream_count, g->count,
           g->cfg->policy.script[0] ? ", policy loaded" : "");
    generation_unref(g);
    metrics_registry_free(g_runtime.metrics);
    return 0;
}

/* ---- plugin-help ---- */

static int cmd_plugin_help(const char *name)
{
    char path[1100];
    if (strchr(name, '/')) {
        snprintf(path, sizeof path, "%s", name);
    } else {
        char dir[600] = SLUICE_BUILD_DIR "/plugins";
        if (plugin_dir_opt) {
            snprintf(dir, sizeof dir, "%s", plugin_dir_opt);
        } else {
            char err[2048];
            struct config *cfg = config_load(config_path, err, sizeof err);
            if (cfg) {
                snprintf(dir, sizeof dir, "%s", cfg->plugin_dir);
                config_unref(cfg);
            }
        }
        snprintf(path, sizeof path, "%s/%s.so", dir, name);
    }
    struct plugin_set *set = plugin_set_new();
    char err[1024];
    const struct loaded_plugin *lp =
        plugin_set_load(set, path, err, sizeof err);
    if (!lp) {
        fprintf(stderr, "sluice: %s\n", err);
        plugin_set_free(set);
        return EXIT_USAGE;
    }
    plugin_config_describe(&lp->desc, stdout);
    plugin_set_free(set);
    return 0;
}

/* ---- serve ---- */

static struct event *drain_timer, *drain_poll;

static void stop_loops(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_msg(LOG_WARN, "main", "drain timeout: closing remaining connections");
    for (unsigned i = 0; i < g_runtime.worker_count; i++)
        event_base_loopexit(g_runtime.workers[i]->base, NULL);
}

static void poll_workers(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (worker_running_count() == 0)
        event_base_loopexit(g_runtime.main_base, NULL);
}

static void on_sigterm(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (atomic_exchange(&g_runtime.draining, true))
        return;
    log_msg(LOG_INFO, "main", "signal %d: draining (up to %u ms)", (int)sig,
            g_runtime.current->cfg->drain_timeout_ms);
    for (unsigned i = 0; i < g_runtime.worker_count; i++)
        worker_stop(g_runtime.workers[i]);
    uint32_t ms = g_runtime.current->cfg->drain_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    drain_timer = evtimer_new(g_runtime.main_base, stop_loops, NULL);
    evtimer_add(drain_timer, &tv);
    struct timeval tick = {0, 20000};
    drain_poll =
        event_new(g_runtime.main_base, -1, EV_PERSIST, poll_workers, NULL);
    event_add(drain_poll, &tick);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    if (atomic_load(&g_runtime.draining))
        return;
    log_msg(LOG_INFO, "main", "SIGHUP: reloading %s", config_path);
    runtime_reload(config_path);
}

static unsigned worker_count_for(const struct config *c)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = c->workers ? c->workers : (unsigned)(cores > 0 ? cores : 1);
    return n > MAX_WORKERS ? MAX_WORKERS : n;
}

static int cmd_serve(void)
{
    char err[8192] = "";
    int rc = 0;

    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);

    struct config *cfg = config_load(config_path, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s: invalid config:\n%s", config_path, err);
        return EXIT_USAGE;
    }
    log_set_level(log_level_parse(cfg->log_level));
    if (access_log_open(cfg->access_log) != 0)
        log_msg(LOG_WARN, "main", "cannot open access log %s", cfg->access_log);
    g_runtime.main_base = event_base_new();
    g_runtime.metrics = metrics_registry_new();
    g_runtime.started_wall_ms = (uint64_t)time(NULL) * 1000;
    runtime_init_metrics();
    /* Before create(): plugins size their per-worker state from it. */
    g_runtime.worker_count = worker_count_for(cfg);
    g_runtime.current = generation_build(cfg, err, sizeof err);
    config_unref(cfg);
    if (!g_runtime.current) {
        fprintf(stderr, "%s: invalid config:\n%s\n", config_path, err);
        return EXIT_USAGE;
    }
    const struct config *c = g_runtime.current->cfg;
    http_conn_budget_set(c->max_connections);
    for (unsigned i = 0; i < g_runtime.worker_count; i++) {
        g_runtime.workers[i] =
            worker_new(i, g_runtime.current, err, sizeof err);
        if (!g_runtime.workers[i]) {
            fprintf(stderr, "sluice: cannot listen on %s: %s\n", c->listen,
                    err);
            g_runtime.worker_count = i;
            rc = 1;
            goto shutdown;
        }
    }
    for (unsigned i = 0; i < g_runtime.worker_count; i++)
        worker_start(g_runtime.workers[i]);

    /* Signals are handled before the port is announced: whoever reads the
     * announcement may send SIGHUP or SIGTERM at once, and SIGHUP's default
     * action would end the process. */
    struct event *term =
        evsignal_new(g_runtime.main_base, SIGTERM, on_sigterm, NULL);
    struct event *intr =
        evsignal_new(g_runtime.main_base, SIGINT, on_sigterm, NULL);
    struct event *hup =
        evsignal_new(g_runtime.main_base, SIGHUP, on_sighup, NULL);
    event_add(term, NULL);
    event_add(intr, NULL);
    event_add(hup, NULL);

    char where[160];
    const char *colon = strrchr(c->listen, ':');
    snprintf(where, sizeof where, "%.*s:%u",
             (int)(colon ? colon - c->listen : 0), c->listen,
             (unsigned)g_runtime.port);
    printf("sluice %s listening on http://%s (%u workers, %zu plugin "
           "instances)\n",
           SLUICE_VERSION, where, g_runtime.worker_count,
           g_runtime.current->count);
    if (g_runtime.admin_port)
        printf("sluice admin on port %u\n", (unsigned)g_runtime.admin_port);
    fflush(stdout);

    event_base_dispatch(g_runtime.main_base);
    event_free(term);
    event_free(intr);
    event_free(hup);
    if (drain_timer)
        event_free(drain_timer);
    if (drain_poll)
        event_free(drain_poll);

shutdown:
    for (unsigned i = 0; i < g_runtime.worker_count; i++) {
        if (rc)
            worker_stop(g_runtime.workers[i]);
        worker_join_and_free(g_runtime.workers[i]);
        g_runtime.workers[i] = NULL;
    }
    /* Run destroys that workers posted while shutting down. */
    event_base_loop(g_runtime.main_base, EVLOOP_NONBLOCK);
    generation_unref(g_runtime.current);
    g_runtime.current = NULL;
    event_base_free(g_runtime.main_base);
    metrics_registry_free(g_runtime.metrics);
    access_log_close();
    curl_global_cleanup();
    libevent_global_shutdown();
    if (rc == 0)
        log_msg(LOG_INFO, "main", "stopped");
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("sluice %s (plugin ABI %d.%d)\n", SLUICE_VERSION,
               SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
        strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0) {
        return parse_options(argc, argv) ? EXIT_USAGE : cmd_serve();
    }
    if (strcmp(cmd, "check") == 0) {
        return parse_options(argc, argv) ? EXIT_USAGE : cmd_check();
    }
    if (strcmp(cmd, "plugin-help") == 0) {
        if (argc < 3 || argv[2][0] == '-') {
            fputs(usage_text, stderr);
            return EXIT_USAGE;
        }
        const char *name = argv[2];
        argv[2] = argv[1]; /* options follow the name */
        return parse_options(argc - 1, argv + 1) ? EXIT_USAGE
                                                 : cmd_plugin_help(name);
    }
    if (strcmp(cmd, "tokens") == 0)
        return tokens_cli_main(argc - 1, argv + 1);
    if (strcmp(cmd, "batch") == 0)
        return batch_client_main(argc - 1, argv + 1);
    fprintf(stderr, "sluice: unknown command '%s'\n\n%s", cmd, usage_text);
    return EXIT_USAGE;
}
