/* The batch plugin's instance: config, state, and the pieces that share
 * it (file routes, batch routes, the runner, rendering). */
#ifndef BATCH_H
#define BATCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <sluice/host.h>

#include "batch_db.h"

struct batch_config {
    const char *dir;
    int64_t max_storage_bytes;
    int64_t max_lines;
    int64_t concurrency;
    double max_rps;
    int64_t max_attempts;
    int64_t backoff_base_ns;
    int64_t backoff_max_ns;
    int64_t tick_ns;
    int64_t worker;
    struct sluice_cfg_list forward; /* upstream names (const char *) */
    int64_t forward_poll_ns;
    int64_t forward_poll_max_ns;
};

/* What the admin status shows of one running batch (runner-owned, read
 * under progress_mu). */
struct batch_progress {
    char id[40];
    char tenant[128];
    char status[16];
    int64_t total, completed, failed, inflight;
    int64_t prompt_tokens, completion_tokens;
    int64_t started_ms, done_since_start;
    int64_t done_at_start; /* forwarded: provider count when first seen */
    char forwarded_to[64]; /* upstream, or "" when run here */
};
#define BATCH_MAX_ACTIVE 64

struct batch_runner;
struct batch_forwarder;

struct batch {
    const struct sluice_host *h;
    const struct batch_config *cfg;
    struct batch_db *db;
    struct batch_writer *writer; /* commits the runner's line results */
    pthread_mutex_t upload_mu;   /* storage cap check + insert */
    struct batch_runner *runner;
    struct batch_forwarder *fwd; /* NULL on a core without call_upstream_raw */
    pthread_mutex_t progress_mu;
    struct batch_progress progress[BATCH_MAX_ACTIVE];
    int n_progress;
    struct sluice_metric *m_lines_done, *m_lines_failed, *m_lines_retried;
    struct sluice_metric *m_active, *m_inflight, *m_uploads, *m_rejected;
};

/* ---- routes (batch_files.c, batch_batches.c) ---- */
int batch_files_routes(struct batch *b);
int batch_batches_routes(struct batch *b);

/* ---- the runner (batch_runner.c): worker `cfg->worker` only ---- */
struct batch_runner *batch_runner_new(struct batch *b);
void batch_runner_free(struct batch_runner *rn);
int batch_runner_start(struct batch_runner *rn);
/* The instance leaves the worker: answers still coming are stored but
 * send nothing more. */
void batch_runner_stop(struct batch_runner *rn);

/* ---- forwarding to an upstream's own Batch API (batch_forward.c) ----
 * Runner worker only, like the runner. */
struct batch_forwarder *batch_forwarder_new(struct batch *b);
void batch_forwarder_free(struct batch_forwarder *fw);
/* True, with the upstream's name in out, when every line (parsed JSONL
 * objects, json_t *) routes to one upstream listed in `forward`. */
bool batch_forward_pick(const struct batch *b, void *const *lines, size_t n,
                        char *out, size_t cap);
/* One tick of a forwarded batch: at most one call to the provider. */
void batch_forward_step(struct batch_forwarder *fw,
                        const struct batch_row *row);

/* ---- helpers shared by the routes (batch_http.c) ---- */
/* The index of the upstream the core routes `model` to by config: the
 * first listing it by name or "*" (as config_route_model); -1: none. */
long batch_route_model(const struct sluice_host *h, const char *model);
/* The caller's tenant ("default" when auth is off), copied into out. */
void batch_tenant(const struct batch *b, const struct sluice_req *r, char *out,
                  size_t cap);
/* Value of `name` in the query string, decoded; false when absent. */
bool batch_query(const struct batch *b, const struct sluice_req *r,
                 const char *name, char *out, size_t cap);
/* The path segment after `prefix` up to the next '/', into out; *rest
 * points at what follows (may be ""). False when empty or too long. */
bool batch_path_id(const struct batch *b, const struct sluice_req *r,
                   const char *prefix, char *out, size_t cap,
                   const char **rest);
enum sluice_action batch_json_reply(const struct batch *b, struct sluice_req *r,
                                    int status,
                                    void *json /* json_t *, stolen */);
enum sluice_action batch_error(const struct batch *b, struct sluice_req *r,
                               int status, const char *param, const char *code,
                               const char *message);

/* ---- rendering (batch_render.c); return json_t * ---- */
void *batch_render_file(const struct batch_file_row *f);
void *batch_render_batch(const struct batch_row *b);

#endif
