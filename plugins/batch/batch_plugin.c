/* batch: the OpenAI Files and Batches API, run inside the gateway on the
 * capacity interactive traffic leaves free. The descriptor, config and
 * lifecycle; the routes are in batch_files.c and batch_batches.c, the
 * work in batch_runner.c. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/plugin.h>

#include "batch.h"
#include "batch_store.h"
#include "batch_writer.h"

#define F(field) offsetof(struct batch_config, field)

static const struct sluice_cfg_field upstream_name = {
    .type = SLUICE_CFG_STRING,
};

static const struct sluice_cfg_field config_fields[] = {
    {.name = "dir",
     .type = SLUICE_CFG_STRING,
     .flags = SLUICE_CFG_REQUIRED,
     .offset = F(dir),
     .help = "directory for the uploaded and result files and batch.db"},
    {.name = "max_storage_bytes",
     .type = SLUICE_CFG_SIZE,
     .flags = SLUICE_CFG_HAS_MIN,
     .default_value = "\"10GiB\"",
     .min = 1024,
     .offset = F(max_storage_bytes),
     .help = "total size of the stored files (inputs and results); uploads "
             "past it get 413"},
    {.name = "max_lines",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "50000",
     .min = 1,
     .max = 1000000,
     .offset = F(max_lines),
     .help = "most requests in one input file"},
    {.name = "concurrency",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "16",
     .min = 1,
     .max = 1024,
     .offset = F(concurrency),
     .help = "lines of one batch in flight at once"},
    {.name = "max_rps",
     .type = SLUICE_CFG_DOUBLE,
     .flags = SLUICE_CFG_HAS_MIN,
     .default_value = "0",
     .min = 0,
     .offset = F(max_rps),
     .help = "lines per second one batch may start (0: no cap)"},
    {.name = "max_attempts",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "4",
     .min = 1,
     .max = 100,
     .offset = F(max_attempts),
     .help = "tries of a line that fails with 5xx/408/409 or no answer "
             "(429 waits and does not count)"},
    {.name = "backoff_base",
     .type = SLUICE_CFG_DURATION,
     .default_value = "\"1s\"",
     .offset = F(backoff_base_ns),
     .help = "first retry delay; doubles per attempt"},
    {.name = "backoff_max",
     .type = SLUICE_CFG_DURATION,
     .default_value = "\"60s\"",
     .offset = F(backoff_max_ns),
     .help = "longest retry delay"},
    {.name = "tick",
     .type = SLUICE_CFG_DURATION,
     .default_value = "\"50ms\"",
     .offset = F(tick_ns),
     .help = "how often the runner looks for work"},
    {.name = "worker",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN,
     .default_value = "0",
     .min = 0,
     .offset = F(worker),
     .help = "the worker thread that runs the batches"},
    {.name = "forward",
     .type = SLUICE_CFG_ARRAY,
     .flags = SLUICE_CFG_ONE_OR_MANY,
     .default_value = "[]",
     .offset = F(forward),
     .help = "upstreams whose batches go to their own Batch API (all lines "
             "routed to one of them), e.g. [\"openai\"]",
     .elem = &upstream_name,
     .max_items = 64},
    {.name = "forward_poll",
     .type = SLUICE_CFG_DURATION,
     .default_value = "\"30s\"",
     .offset = F(forward_poll_ns),
     .help = "how often a forwarded batch is polled at the provider"},
    {.name = "forward_poll_max",
     .type = SLUICE_CFG_DURATION,
     .default_value = "\"10m\"",
     .offset = F(forward_poll_max_ns),
     .help = "longest wait between provider calls after failures (the "
             "wait doubles from forward_poll)"},
    {0},
};

static void batch_destroy(void *self)
{
    struct batch *b = self;
    if (!b)
        return;
    batch_runner_free(b->runner);
    batch_forwarder_free(b->fwd);
    batch_writer_stop(b->writer); /* commits what is queued */
    batch_db_close(b->db);
    pthread_mutex_destroy(&b->upload_mu);
    pthread_mutex_destroy(&b->progress_mu);
    free(b);
}

/* Every name in `forward` is a configured upstream, and the core can make
 * the calls forwarding needs. */
static int check_forward(const struct sluice_host *h,
                         const struct batch_config *cfg,
                         struct sluice_error *err)
{
    if (cfg->forward.count == 0)
        return SLUICE_OK;
    if (!SLUICE_HOST_HAS(h, call_upstream_raw) ||
        !SLUICE_HOST_HAS(h, upstream_count)) {
        snprintf(err->message, sizeof err->message,
                 "forward: needs a core with call_upstream_raw (SDK 1.1)");
        return SLUICE_EINVAL;
    }
    if (cfg->forward_poll_ns < 1000000 ||
        cfg->forward_poll_max_ns < cfg->forward_poll_ns) {
        snprintf(err->message, sizeof err->message,
                 "forward_poll: must be >= 1ms and <= forward_poll_max");
        return SLUICE_EINVAL;
    }
    for (size_t i = 0; i < cfg->forward.count; i++) {
        const char *name = *SLUICE_CFG_ITEM(cfg->forward, const char *, i);
        bool found = false;
        for (size_t u = 0; u < h->upstream_count(h) && !found; u++) {
            struct sluice_str n = h->upstream_name(h, u);
            found = n.len == strlen(name) && memcmp(n.ptr, name, n.len) == 0;
        }
        if (!found) {
            snprintf(err->message, sizeof err->message,
                     "forward[%zu]: '%.100s' is not a configured upstream", i,
                     name);
            return SLUICE_EINVAL;
        }
    }
    return SLUICE_OK;
}

static int batch_create(const struct sluice_host *h, const void *config,
                        struct sluice_str raw_json, void **self,
                        struct sluice_error *err)
{
    const struct batch_config *cfg = config;
    (void)raw_json;
    if (!SLUICE_HOST_HAS(h, route_add) || !SLUICE_HOST_HAS(h, self_submit) ||
        !SLUICE_HOST_HAS(h, timer_start) || !SLUICE_HOST_HAS(h, metric_with)) {
        snprintf(err->message, sizeof err->message,
                 "batch needs an SDK 1.1 core (routes, self_submit, timers)");
        return SLUICE_EINVAL;
    }
    if (cfg->worker >= (int64_t)h->worker_count(h)) {
        snprintf(err->message, sizeof err->message,
                 "worker: %lld is not a worker index (the gateway has %u)",
                 (long long)cfg->worker, h->worker_count(h));
        return SLUICE_EINVAL;
    }
    if (cfg->tick_ns < 1000000) {
        snprintf(err->message, sizeof err->message, "tick: must be >= 1ms");
        return SLUICE_EINVAL;
    }
    if (check_forward(h, cfg, err) != SLUICE_OK)
        return SLUICE_EINVAL;
    if (batch_store_init(cfg->dir) != 0) {
        snprintf(err->message, sizeof err->message,
                 "dir: cannot create %s/files", cfg->dir);
        return SLUICE_EINVAL;
    }
    struct batch *b = calloc(1, sizeof *b);
    if (!b)
        return SLUICE_ENOMEM;
    b->h = h;
    b->cfg = cfg;
    pthread_mutex_init(&b->upload_mu, NULL);
    pthread_mutex_init(&b->progress_mu, NULL);
    char path[4096], why[200];
    snprintf(path, sizeof path, "%s/batch.db", cfg->dir);
    b->db = batch_db_open(path, why, sizeof why);
    if (!b->db) {
        snprintf(err->message, sizeof err->message, "dir: %s", why);
        batch_destroy(b);
        return SLUICE_EINVAL;
    }
    /* Lines a previous process sent without storing their result go back
     * to pending (this process's own, on reload, are still running). */
    int64_t back = batch_db_recover(b->db, (int64_t)getpid());
    if (back > 0)
        h->log(h, SLUICE_LOG_INFO,
               "%lld lines were in flight at the last stop; they will be "
               "sent again",
               (long long)back);
    b->m_lines_done = h->counter(h, "sluice_batch_lines_completed_total",
                                 "batch lines with a stored 2xx result");
    b->m_lines_failed = h->counter(h, "sluice_batch_lines_failed_total",
                                   "batch lines that ended in the error file");
    b->m_lines_retried = h->counter(h, "sluice_batch_lines_retried_total",
                                    "batch line attempts that will be retried");
    b->m_uploads = h->counter(h, "sluice_batch_files_uploaded_total",
                              "input files accepted");
    b->m_rejected = h->counter(h, "sluice_batch_files_rejected_total",
                               "uploads refused by the JSONL check");
    b->m_active =
        h->gauge(h, "sluice_batch_active", "batches not yet finished");
    b->m_inflight = h->gauge(h, "sluice_batch_inflight",
                             "lines of the current batch in flight");
    b->writer = batch_writer_start(b->db);
    b->runner = b->writer ? batch_runner_new(b) : NULL;
    if (SLUICE_HOST_HAS(h, call_upstream_raw))
        b->fwd = batch_forwarder_new(b);
    if (!b->runner || (SLUICE_HOST_HAS(h, call_upstream_raw) && !b->fwd) ||
        batch_files_routes(b) != 0 || batch_batches_routes(b) != 0 ||
        batch_runner_start(b->runner) != 0) {
        snprintf(err->message, sizeof err->message,
                 "cannot register the batch routes or the runner timer");
        batch_destroy(b);
        return SLUICE_EINVAL;
    }
    *self = b;
    return SLUICE_OK;
}

static void batch_thread_fini(void *self, unsigned worker)
{
    struct batch *b = self;
    if ((int64_t)worker == b->cfg->worker)
        batch_runner_stop(b->runner);
}

/* Admin status: each running batch's counts, rate and ETA, and the
 * tokens its lines used so far (spend: the cost_tracker's ledger). */
static size_t batch_status_json(void *self, char *buf, size_t cap)
{
    struct batch *b = self;
    int64_t now = b->h->wall_ms(b->h);
    size_t at = 0;
#define OUT(...)                                                               \
    do {                                                                       \
        int w_ = snprintf(buf + (at < cap ? at : cap),                         \
                          at < cap ? cap - at : 0, __VA_ARGS__);               \
        at += w_ > 0 ? (size_t)w_ : 0;                                         \
    } while (0)
    OUT("{\"batches\":[");
    pthread_mutex_lock(&b->progress_mu);
    for (int i = 0; i < b->n_progress; i++) {
        const struct batch_progress *p = &b->progress[i];
        double secs = (double)(now - p->started_ms) / 1000.0;
        double rate = secs > 0 ? (double)p->done_since_start / secs : 0;
        int64_t left = p->total - p->completed - p->failed;
        OUT("%s{\"id\":\"%s\",\"tenant\":\"%s\",\"status\":\"%s\","
            "\"total\":%lld,\"completed\":%lld,\"failed\":%lld,"
            "\"in_flight\":%lld,\"lines_per_second\":%.2f,",
            i ? "," : "", p->id, p->tenant, p->status, (long long)p->total,
            (long long)p->completed, (long long)p->failed,
            (long long)p->inflight, rate);
        if (p->forwarded_to[0])
            OUT("\"forwarded_to\":\"%s\",", p->forwarded_to);
        if (rate > 0)
            OUT("\"eta_seconds\":%.0f}", (double)left / rate);
        else
            OUT("\"eta_seconds\":null}");
    }
    pthread_mutex_unlock(&b->progress_mu);
    OUT("]}");
#undef OUT
    return at;
}

static const struct sluice_plugin batch_plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "batch",
    .version = "1.0.0",
    .summary = "OpenAI Files and Batches API run inside the gateway at batch "
               "priority, durable in SQLite",
    .config = config_fields,
    .config_size = sizeof(struct batch_config),
    .create = batch_create,
    .destroy = batch_destroy,
    .thread_fini = batch_thread_fini,
    .status_json = batch_status_json,
};

SLUICE_PLUGIN_EXPORT(batch_plugin)
