/* Forwarding: a batch whose lines all route to an upstream named in the
 * config's `forward` is not run here but sent to that upstream's own
 * Batch API (for the provider's batch discount). The runner's tick calls
 * batch_forward_step() for it; each step makes at most one call:
 *
 *   upload the input file (POST /v1/files, multipart, purpose=batch)
 *   -> create the provider batch (POST /v1/batches)
 *   -> poll it (GET /v1/batches/{id}) every `forward_poll`, backing off on
 *      errors, mirroring its status and request_counts here
 *   -> once it ended, download its output and error files
 *      (GET /v1/files/{id}/content) into the local store and finish the
 *      local batch with them, so the client reads them like a local
 *      batch's. A local cancel becomes POST /v1/batches/{id}/cancel.
 *
 * Durability: the provider file id and batch id are committed as soon as
 * the provider answered; after a restart the step goes on from there, so
 * the file is uploaded (and the batch created) once, except when the
 * process dies between the provider's answer and that commit. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "batch_forward_wire.h"
#include "batch_store.h"

enum call_kind {
    CALL_UPLOAD,
    CALL_CREATE,
    CALL_POLL,
    CALL_CANCEL,
    CALL_GET,
    CALL_FIND_FILE,  /* upload sent before, answer lost: is it there? */
    CALL_FIND_BATCH, /* same for the creation */
};

/* What this process knows of a forwarded batch beyond SQLite. */
struct slot {
    char id[40];
    bool used;
    bool busy;        /* a call is out */
    int64_t next_ms;  /* no call before */
    int fails;        /* calls in a row that failed */
    bool got[2];      /* output / error file stored here */
    bool searched[2]; /* provider's file / batch list searched */
};

struct batch_forwarder {
    struct batch *b;
    struct slot slots[BATCH_MAX_ACTIVE];
    char pid[24], me[64]; /* "<pid>", "<pid>:<instance>" (claims) */
};

struct call {
    struct batch_forwarder *fw;
    char id[40];
    enum call_kind kind;
    int which; /* CALL_GET: 0 output, 1 error */
};

static int64_t now_ms(const struct batch *b)
{
    return b->h->wall_ms(b->h);
}

static struct slot *slot_get(struct batch_forwarder *fw, const char *id,
                             bool make)
{
    struct slot *free_one = NULL;
    for (int i = 0; i < BATCH_MAX_ACTIVE; i++) {
        struct slot *s = &fw->slots[i];
        if (s->used && strcmp(s->id, id) == 0)
            return s;
        if (!s->used && !free_one)
            free_one = s;
    }
    if (!make || !free_one)
        return NULL;
    memset(free_one, 0, sizeof *free_one);
    free_one->used = true;
    snprintf(free_one->id, sizeof free_one->id, "%s", id);
    return free_one;
}

struct batch_forwarder *batch_forwarder_new(struct batch *b)
{
    struct batch_forwarder *fw = calloc(1, sizeof *fw);
    if (!fw)
        return NULL;
    fw->b = b;
    snprintf(fw->pid, sizeof fw->pid, "%ld", (long)getpid());
    snprintf(fw->me, sizeof fw->me, "%s:%016llx", fw->pid,
             (unsigned long long)b->h->random_u64(b->h));
    return fw;
}

void batch_forwarder_free(struct batch_forwarder *fw)
{
    free(fw);
}

static bool str_is(struct sluice_str s, const char *lit)
{
    return s.ptr && s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

bool batch_forward_pick(const struct batch *b, void *const *lines, size_t n,
                        char *out, size_t cap)
{
    const struct sluice_host *h = b->h;
    const struct sluice_cfg_list *fwd = &b->cfg->forward;
    if (fwd->count == 0 || n == 0 || !SLUICE_HOST_HAS(h, call_upstream_raw))
        return false;
    long up = -1;
    for (size_t i = 0; i < n; i++) {
        json_t *body = json_object_get(lines[i], "body");
        const char *model = json_string_value(json_object_get(body, "model"));
        long u = model ? batch_route_model(h, model) : -1;
        if (u < 0 || (up >= 0 && u != up))
            return false; /* lines for several upstreams: run it here */
        up = u;
    }
    struct sluice_str name = h->upstream_name(h, (size_t)up);
    for (size_t i = 0; i < fwd->count; i++) {
        const char *f = *SLUICE_CFG_ITEM(*fwd, const char *, i);
        if (str_is(name, f)) {
            snprintf(out, cap, "%s", f);
            return true;
        }
    }
    return false;
}

/* ---- ending the local batch ---- */

static void fail_local(struct batch_forwarder *fw, const char *id,
                       const char *code, const char *message)
{
    struct batch *b = fw->b;
    json_t *e =
        json_pack("{s:s,s:[{s:s,s:s,s:n,s:n}]}", "object", "list", "data",
                  "code", code, "message", message, "param", "line");
    char *text = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    batch_db_batch_fail(b->db, id, text, now_ms(b) / 1000);
    free(text);
    b->h->log(b->h, SLUICE_LOG_WARN, "batch %s failed: %s", id, message);
    struct slot *s = slot_get(fw, id, false);
    if (s)
        s->used = false;
}

/* The provider's own `errors` object of a failed batch. */
static void fail_like_provider(struct batch_forwarder *fw, const char *id,
                               const char *body, size_t len)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    json_t *errs = json_object_get(o, "errors");
    char *text = json_is_object(errs) ? json_dumps(errs, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) {
        fail_local(fw, id, "upstream_batch_failed",
                   "the provider reported the batch as failed");
        return;
    }
    batch_db_batch_fail(fw->b->db, id, text, now_ms(fw->b) / 1000);
    free(text);
    struct slot *s = slot_get(fw, id, false);
    if (s)
        s->used = false;
}

static void local_file_id(char *out, size_t cap, const char *batch_id,
                          int which)
{
    snprintf(out, cap, "%s%.24s", which ? "file-err-" : "file-out-",
             batch_id + 6);
}

static void finish(struct batch_forwarder *fw, const struct batch_row *row,
                   const struct batch_forward_row *f)
{
    struct batch *b = fw->b;
    char ids[2][40];
    local_file_id(ids[0], sizeof ids[0], row->id, 0);
    local_file_id(ids[1], sizeof ids[1], row->id, 1);
    batch_db_batch_finish(b->db, row->id, f->status,
                          f->output_id[0] ? ids[0] : NULL,
                          f->error_id[0] ? ids[1] : NULL, now_ms(b) / 1000);
    struct slot *s = slot_get(fw, row->id, false);
    if (s)
        s->used = false;
}

/* ---- answers ---- */

static bool retryable(int status)
{
    return status == 0 || status == 408 || status == 409 || status == 429 ||
           status >= 500;
}

/* After a failed call: the next try waits forward_poll doubled per
 * failure in a row, up to forward_poll_max. */
static void back_off(struct batch_forwarder *fw, struct slot *s)
{
    const struct batch_config *cfg = fw->b->cfg;
    int64_t d = cfg->forward_poll_ns / 1000000,
            cap = cfg->forward_poll_max_ns / 1000000;
    for (int i = 0; i < s->fails && d < cap; i++)
        d *= 2;
    s->fails++;
    s->next_ms = now_ms(fw->b) + (d < cap ? d : cap);
}

/* Stores a provider batch object (poll, create and cancel answers) and
 * moves the local status after it. */
static void mirror(struct batch_forwarder *fw, struct slot *s, const char *id,
                   const struct sluice_call_result *res, bool cancel_sent)
{
    struct batch *b = fw->b;
    struct batch_forward_row f;
    struct batch_row row;
    int64_t total = 0;
    if (batch_db_forward_get(b->db, id, &f) != 0 ||
        batch_db_batch_state(b->db, id, &row) != 0)
        return;
    struct batch_forward_row got = f;
    if (!batch_forward_read_batch(res->body.ptr, res->body.len, &got, &total)) {
        back_off(fw, s);
        batch_row_clear(&row);
        return;
    }
    got.cancel_sent = f.cancel_sent || cancel_sent;
    snprintf(got.upstream, sizeof got.upstream, "%s", f.upstream);
    snprintf(got.file_id, sizeof got.file_id, "%s", f.file_id);
    if (batch_db_forward_mirror(b->db, id, &got, total) != 0) {
        back_off(fw, s);
        batch_row_clear(&row);
        return;
    }
    s->fails = 0;
    s->next_ms = now_ms(b) + b->cfg->forward_poll_ns / 1000000;
    if (strcmp(got.status, "failed") == 0) {
        fail_like_provider(fw, id, res->body.ptr, res->body.len);
    } else {
        const char *want = batch_forward_local_status(got.status, row.status);
        /* `from` the status read above: a cancel that came meanwhile wins */
        if (want && strcmp(want, row.status) != 0)
            batch_db_batch_move(b->db, id, row.status, want, now_ms(b) / 1000);
        if (batch_forward_ended(got.status))
            s->next_ms = 0; /* fetch the files at once */
    }
    batch_row_clear(&row);
}

static void stored_file(struct batch_forwarder *fw, struct slot *s,
                        const char *id, int which,
                        const struct sluice_call_result *res)
{
    struct batch *b = fw->b;
    struct batch_row row;
    if (batch_db_batch_state(b->db, id, &row) != 0)
        return;
    struct batch_file_row f = {0};
    local_file_id(f.id, sizeof f.id, id, which);
    snprintf(f.tenant, sizeof f.tenant, "%s", row.tenant);
    snprintf(f.purpose, sizeof f.purpose, "batch_output");
    snprintf(f.filename, sizeof f.filename, "%s_%s.jsonl", id,
             which ? "error" : "output");
    f.bytes = (int64_t)res->body.len;
    f.created_at = now_ms(b) / 1000;
    batch_row_clear(&row);
    if (batch_store_write(b->cfg->dir, f.id, res->body.ptr ? res->body.ptr : "",
                          res->body.len) != 0 ||
        batch_db_file_insert(b->db, &f) != 0) {
        back_off(fw, s);
        return;
    }
    if (which == 0) {
        int64_t pt, ct;
        batch_forward_usage(res->body.ptr, res->body.len, &pt, &ct);
        batch_db_forward_usage(b->db, id, pt, ct);
    }
    s->got[which] = true;
    s->fails = 0;
    s->next_ms = 0;
}

/* The answer to a search for an upload or creation whose answer was lost
 * (a crash, a reload): found, it is used; not there, or the provider
 * cannot list (4xx), it is sent again; no answer: search again later. */
static void found_or_not(struct batch_forwarder *fw, struct slot *s,
                         const struct call *c,
                         const struct sluice_call_result *res)
{
    struct batch *b = fw->b;
    int k = c->kind == CALL_FIND_BATCH;
    if (res->outcome != SLUICE_OUTCOME_OK && retryable(res->status)) {
        back_off(fw, s);
        return;
    }
    s->searched[k] = true;
    s->fails = 0;
    s->next_ms = 0;
    if (res->outcome != SLUICE_OUTCOME_OK)
        return;
    if (!k) {
        char name[64], pid[96];
        snprintf(name, sizeof name, "%s.jsonl", c->id);
        if (batch_forward_find_file(res->body.ptr, res->body.len, name, pid,
                                    sizeof pid))
            batch_db_forward_file(b->db, c->id, pid);
        return;
    }
    char *text = batch_forward_find_batch(res->body.ptr, res->body.len, c->id);
    if (text) {
        struct sluice_call_result one = {
            .status = 200,
            .outcome = SLUICE_OUTCOME_OK,
            .body = {text, strlen(text)},
        };
        mirror(fw, s, c->id, &one, false);
        free(text);
    }
}

static void on_answer(void *arg, const struct sluice_call_result *res)
{
    struct call *c = arg;
    struct batch_forwarder *fw = c->fw;
    struct batch *b = fw->b;
    struct slot *s = slot_get(fw, c->id, false);
    if (!s || res->outcome == SLUICE_OUTCOME_CLIENT_GONE) {
        /* The instance leaves the worker: the next one takes over. */
        if (s)
            s->busy = false;
        batch_db_forward_release(b->db, c->id, fw->me);
        free(c);
        return;
    }
    s->busy = false;
    struct batch_forward_row f;
    if (batch_db_forward_get(b->db, c->id, &f) != 0) {
        batch_db_forward_release(b->db, c->id, fw->me);
        free(c);
        return;
    }
    bool ok = res->outcome == SLUICE_OUTCOME_OK;
    static const char *const what[] = {"batch input file upload",
                                       "batch creation",
                                       "batch retrieval",
                                       "batch cancel",
                                       "result file download",
                                       "file list",
                                       "batch list"};
    char why[400];
    batch_forward_reason(what[c->kind], f.upstream, res->status, res->body.ptr,
                         res->body.len, why, sizeof why);
    if (c->kind == CALL_GET && res->outcome == SLUICE_OUTCOME_TRUNCATED) {
        snprintf(why, sizeof why,
                 "the result file at upstream '%s' (%s) is larger than a "
                 "plugin call may read (%u MiB or limits.max_response_bytes)",
                 f.upstream, c->which ? f.error_id : f.output_id,
                 SLUICE_CALL_MAX_BODY >> 20);
        fail_local(fw, c->id, "upstream_file_too_large", why);
    } else if (ok && c->kind == CALL_UPLOAD) {
        char pid[96];
        if (batch_forward_read_id(res->body.ptr, res->body.len, pid,
                                  sizeof pid) &&
            batch_db_forward_file(b->db, c->id, pid) == 0) {
            s->fails = 0;
            s->next_ms = 0;
        } else {
            back_off(fw, s);
        }
    } else if (c->kind == CALL_FIND_FILE || c->kind == CALL_FIND_BATCH) {
        found_or_not(fw, s, c, res);
    } else if (ok && c->kind == CALL_GET) {
        stored_file(fw, s, c->id, c->which, res);
    } else if (ok) {
        mirror(fw, s, c->id, res, c->kind == CALL_CANCEL);
    } else if ((c->kind == CALL_GET && !retryable(res->status)) ||
               (c->kind == CALL_POLL && res->status == 404)) {
        /* The provider lost what it made: nothing to wait for. */
        fail_local(fw, c->id,
                   c->kind == CALL_GET ? "upstream_file_unreadable"
                                       : "upstream_batch_missing",
                   why);
    } else if (c->kind == CALL_CANCEL && !retryable(res->status)) {
        /* Refused (it ended meanwhile): polling tells how it ended. */
        f.cancel_sent = true;
        batch_db_forward_mirror(b->db, c->id, &f, 0);
        s->next_ms = 0;
    } else if ((c->kind == CALL_UPLOAD || c->kind == CALL_CREATE) &&
               (!retryable(res->status) ||
                s->fails + 1 >= b->cfg->max_attempts)) {
        fail_local(fw, c->id,
                   c->kind == CALL_UPLOAD ? "upstream_upload_failed"
                                          : "upstream_create_failed",
                   why);
    } else {
        b->h->log(b->h, SLUICE_LOG_WARN, "batch %s: %s; trying again later",
                  c->id, why);
        back_off(fw, s);
    }
    /* After the answer is stored: another instance may go on from it. */
    batch_db_forward_release(b->db, c->id, fw->me);
    free(c);
}

/* ---- the calls ---- */

static void call_provider(struct batch_forwarder *fw, struct slot *s,
                          const struct batch_forward_row *f,
                          enum call_kind kind, int which, const char *method,
                          const char *path, const char *ctype, const char *body,
                          size_t len)
{
    struct batch *b = fw->b;
    const struct sluice_host *h = b->h;
    struct call *c = calloc(1, sizeof *c);
    if (!c) {
        batch_db_forward_release(b->db, s->id, fw->me);
        return;
    }
    c->fw = fw;
    snprintf(c->id, sizeof c->id, "%s", s->id);
    c->kind = kind;
    c->which = which;
    int rc = h->call_upstream_raw(h, NULL, f->upstream, method, path, ctype,
                                  (struct sluice_str){body, body ? len : 0},
                                  NULL, on_answer, c, NULL);
    if (rc == SLUICE_OK) {
        s->busy = true;
        return;
    }
    free(c);
    batch_db_forward_release(b->db, s->id, fw->me);
    if (rc == SLUICE_ENOENT) {
        char why[200];
        snprintf(why, sizeof why,
                 "upstream '%s' is no longer configured (or has no key)",
                 f->upstream);
        fail_local(fw, s->id, "upstream_unknown", why);
        return;
    }
    back_off(fw, s);
}

static void upload(struct batch_forwarder *fw, struct slot *s,
                   const struct batch_row *row,
                   const struct batch_forward_row *f)
{
    struct batch *b = fw->b;
    size_t len = 0, blen = 0;
    char *data = batch_store_read(b->cfg->dir, row->input_file_id, &len);
    if (!data) {
        fail_local(fw, row->id, "missing_file",
                   "The input file no longer exists.");
        return;
    }
    char ctype[128], name[64];
    snprintf(name, sizeof name, "%s.jsonl", row->id);
    char *body = batch_forward_multipart(b->h->random_u64(b->h), name, data,
                                         len, ctype, sizeof ctype, &blen);
    free(data);
    if (body)
        call_provider(fw, s, f, CALL_UPLOAD, 0, "POST", "/v1/files", ctype,
                      body, blen);
    free(body);
}

static void create(struct batch_forwarder *fw, struct slot *s,
                   const struct batch_row *light,
                   const struct batch_forward_row *f)
{
    struct batch *b = fw->b;
    struct batch_row row;
    if (batch_db_batch_get(b->db, light->id, NULL, &row) != 0)
        return;
    json_t *meta = row.metadata ? json_loads(row.metadata, 0, NULL) : NULL;
    json_t *o =
        json_pack("{s:s,s:s,s:s}", "input_file_id", f->file_id, "endpoint",
                  row.endpoint, "completion_window", row.completion_window);
    if (!json_is_object(meta)) {
        json_decref(meta);
        meta = json_object();
    }
    /* Names the local batch, so a lost answer can be found (OpenAI takes
     * 16 keys: a client's full set is sent without it). */
    if (json_object_size(meta) < 16)
        json_object_set_new(meta, BATCH_FORWARD_META_KEY, json_string(row.id));
    json_object_set_new(o, "metadata", meta);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    batch_row_clear(&row);
    if (text)
        call_provider(fw, s, f, CALL_CREATE, 0, "POST", "/v1/batches",
                      "application/json", text, strlen(text));
    free(text);
}

/* Decides and makes this tick's call (s->busy then), or ends the local
 * batch; the caller holds the claim. */
static void act(struct batch_forwarder *fw, struct slot *s,
                const struct batch_row *row, const struct batch_forward_row *f)
{
    struct batch *b = fw->b;
    bool cancelling = strcmp(row->status, "cancelling") == 0;
    char path[200];
    if (cancelling && !f->batch_id[0]) {
        /* Cancelled before the provider batch existed: nothing ran. */
        batch_db_batch_finish(b->db, row->id, "cancelled", NULL, NULL,
                              now_ms(b) / 1000);
        s->used = false;
    } else if (!f->file_id[0] && f->upload_sent && !s->searched[0]) {
        call_provider(fw, s, f, CALL_FIND_FILE, 0, "GET",
                      "/v1/files?purpose=batch", NULL, NULL, 0);
    } else if (!f->file_id[0]) {
        if (batch_db_forward_sent(b->db, row->id, false) == 0)
            upload(fw, s, row, f);
    } else if (!f->batch_id[0] && f->create_sent && !s->searched[1]) {
        call_provider(fw, s, f, CALL_FIND_BATCH, 0, "GET",
                      "/v1/batches?limit=100", NULL, NULL, 0);
    } else if (!f->batch_id[0]) {
        if (batch_db_forward_sent(b->db, row->id, true) == 0)
            create(fw, s, row, f);
    } else if (cancelling && !f->cancel_sent &&
               !batch_forward_ended(f->status)) {
        snprintf(path, sizeof path, "/v1/batches/%s/cancel", f->batch_id);
        call_provider(fw, s, f, CALL_CANCEL, 0, "POST", path,
                      "application/json", "{}", 2);
    } else if (batch_forward_ended(f->status)) {
        const char *pid[2] = {f->output_id, f->error_id};
        for (int k = 0; k < 2; k++)
            if (pid[k][0] && !s->got[k]) {
                snprintf(path, sizeof path, "/v1/files/%s/content", pid[k]);
                call_provider(fw, s, f, CALL_GET, k, "GET", path, NULL, NULL,
                              0);
                return;
            }
        finish(fw, row, f);
    } else {
        snprintf(path, sizeof path, "/v1/batches/%s", f->batch_id);
        call_provider(fw, s, f, CALL_POLL, 0, "GET", path, NULL, NULL, 0);
    }
}

void batch_forward_step(struct batch_forwarder *fw, const struct batch_row *row)
{
    struct batch *b = fw->b;
    struct slot *s = slot_get(fw, row->id, true);
    if (!s || s->busy || now_ms(b) < s->next_ms)
        return; /* a call is out, or it is not time yet */
    /* One call per batch at a time across a reload's two instances: the
     * claim first, then the state as the other one may have left it. */
    struct batch_forward_row f;
    struct batch_row now;
    if (batch_db_forward_claim(b->db, row->id, fw->me, fw->pid) != 0)
        return;
    if (batch_db_batch_state(b->db, row->id, &now) == 0) {
        bool ended = strcmp(now.status, "completed") == 0 ||
                     strcmp(now.status, "failed") == 0 ||
                     strcmp(now.status, "cancelled") == 0 ||
                     strcmp(now.status, "expired") == 0;
        if (!ended && batch_db_forward_get(b->db, row->id, &f) == 0)
            act(fw, s, &now, &f);
        else if (ended)
            s->used = false; /* the other instance finished it */
        batch_row_clear(&now);
    }
    if (!s->busy)
        batch_db_forward_release(b->db, row->id, fw->me);
}
