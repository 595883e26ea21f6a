/* The runner: on one worker, a timer walks the batches that are not
 * finished and moves each along validating -> in_progress -> finalizing ->
 * completed (or cancelling -> cancelled, or expired). Lines go out with
 * self_submit at `batch` priority, so the policy, limits, admission, cache
 * and cost apply to each like to a client's request.
 *
 * Durability: a line is marked in flight (committed) before it is sent,
 * and its result is committed (by the writer thread, batch_writer.c)
 * before it counts as done in SQLite. After a crash,
 * lines left in flight go back to pending and are sent again (at least
 * once for a line whose result was not stored); a line with a stored
 * result is never sent again. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "batch_jsonl.h"
#include "batch_result_text.h"
#include "batch_store.h"
#include "batch_writer.h"

struct act {
    char id[40];
    char endpoint[40];
    char ident[4][128]; /* tenant, user, tier, key */
    int64_t total;
    int inflight;
    double credit; /* lines the rate cap allows now */
    int64_t credit_ms;
    int64_t started_ms, finished_here;
    int64_t counts_ms;       /* when progress counts were last read */
    int64_t finish_check_ms; /* when "all lines done?" was last asked */
    bool used;
    bool running; /* in_progress and not expired: answers may pump */
};

struct batch_runner {
    struct batch *b;
    struct act acts[BATCH_MAX_ACTIVE];
    int64_t pid;
    int64_t write_failures_seen; /* batch_writer_failed() last logged */
    bool stopped;
};

struct sent {
    struct batch_runner *rn;
    char batch_id[40];
    int64_t idx;
    int attempts;
};

static int64_t now_ms(const struct batch *b)
{
    return b->h->wall_ms(b->h);
}

static struct act *act_find(struct batch_runner *rn, const char *id)
{
    for (int i = 0; i < BATCH_MAX_ACTIVE; i++)
        if (rn->acts[i].used && strcmp(rn->acts[i].id, id) == 0)
            return &rn->acts[i];
    return NULL;
}

static struct act *act_get(struct batch_runner *rn, const struct batch_row *row)
{
    struct act *a = act_find(rn, row->id);
    if (a)
        return a;
    for (int i = 0; i < BATCH_MAX_ACTIVE; i++) {
        a = &rn->acts[i];
        if (a->used)
            continue;
        memset(a, 0, sizeof *a);
        a->used = true;
        snprintf(a->id, sizeof a->id, "%s", row->id);
        snprintf(a->endpoint, sizeof a->endpoint, "%s", row->endpoint);
        const char *v[] = {row->tenant, row->user, row->tier, row->key};
        for (int k = 0; k < 4; k++)
            snprintf(a->ident[k], sizeof a->ident[k], "%s", v[k]);
        a->started_ms = now_ms(rn->b);
        a->credit_ms = a->started_ms;
        a->credit = 1;
        return a;
    }
    return NULL;
}

/* ---- one line's answer ---- */

static bool retryable(int status)
{
    return status == 0 || status == 408 || status == 409 || status == 429 ||
           status >= 500;
}

static int64_t backoff_ms(const struct batch *b, int attempts,
                          uint64_t retry_after_ms)
{
    int64_t base = b->cfg->backoff_base_ns / 1000000;
    int64_t cap = b->cfg->backoff_max_ns / 1000000;
    int64_t d = base;
    for (int i = 1; i < attempts && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    /* Jitter in [d/2, d] so retries of many lines spread out. */
    if (d > 1)
        d = d / 2 + (int64_t)(b->h->random_u64(b->h) % (uint64_t)(d / 2 + 1));
    return (int64_t)retry_after_ms > d ? (int64_t)retry_after_ms : d;
}

/* The "error" object of a failed line: the provider's code when it gave
 * one, and why it stopped. */
static json_t *line_error(json_t *body, int status, int attempts)
{
    const char *code = NULL, *msg = NULL;
    json_t *e = json_object_get(body, "error");
    if (json_is_object(e)) {
        code = json_string_value(json_object_get(e, "code"));
        if (!code)
            code = json_string_value(json_object_get(e, "type"));
        msg = json_string_value(json_object_get(e, "message"));
    }
    char c[32], m[400];
    if (!code) {
        snprintf(c, sizeof c, status ? "http_%d" : "no_response", status);
        code = c;
    }
    snprintf(m, sizeof m, "%s (status %d, %d attempt%s)",
             msg ? msg : "the request failed", status, attempts,
             attempts == 1 ? "" : "s");
    return json_pack("{s:s,s:s}", "code", code, "message", m);
}

static void pump(struct batch_runner *rn, struct act *a);

static void line_done(void *arg, const struct sluice_self_result *res)
{
    struct sent *s = arg;
    struct batch_runner *rn = s->rn;
    struct batch *b = rn->b;
    struct act *a = act_find(rn, s->batch_id);
    if (a && a->inflight > 0)
        a->inflight--;
    b->h->gauge_set(b->m_inflight, a ? a->inflight : 0);

    char rid[64];
    snprintf(rid, sizeof rid, "%.*s", (int)res->request_id.len,
             res->request_id.ptr ? res->request_id.ptr : "");
    bool ok = res->status >= 200 && res->status < 300;
    bool again = !ok && retryable(res->status) &&
                 (res->status == 429 || s->attempts < b->cfg->max_attempts);
    /* A JSON answer (the usual case) is spliced into the result as it
     * is, minified; anything else goes through jansson below. */
    char *text = ok ? batch_result_ok_text(res->status, rid, res->body.ptr,
                                           res->body.len)
                    : NULL;
    json_t *body = NULL;
    if (!text) {
        body = res->body.ptr ? json_loadb(res->body.ptr, res->body.len, 0, NULL)
                             : NULL;
        if (!body)
            body = res->body.len ? json_stringn(res->body.ptr, res->body.len)
                                 : json_null();
    }
    if (again) {
        json_t *err = line_error(body, res->status, s->attempts);
        int64_t next =
            now_ms(b) + backoff_ms(b, s->attempts, res->retry_after_ms);
        batch_db_line_retry(b->db, s->batch_id, s->idx, next,
                            json_string_value(json_object_get(err, "message")),
                            res->status == 429);
        json_decref(err);
        json_decref(body);
        b->h->counter_add(b->m_lines_retried, 1);
    } else {
        if (!text) {
            json_t *resp =
                res->status
                    ? json_pack("{s:i,s:s,s:O}", "status_code", res->status,
                                "request_id", rid, "body", body)
                    : json_null();
            json_t *out = json_pack(
                "{s:o,s:o}", "response", resp, "error",
                ok ? json_null() : line_error(body, res->status, s->attempts));
            json_decref(body);
            text = json_dumps(out, JSON_COMPACT);
            json_decref(out);
        }
        uint64_t pt = res->usage.known ? res->usage.prompt_tokens : 0;
        uint64_t ct = res->usage.known ? res->usage.completion_tokens : 0;
        /* The writer thread commits it (the line is done once committed;
         * until then it stays in flight and a kill -9 sends it again). */
        struct batch_line_result *r = text ? calloc(1, sizeof *r) : NULL;
        if (r) {
            snprintf(r->batch_id, sizeof r->batch_id, "%s", s->batch_id);
            r->idx = s->idx;
            r->state = ok ? LINE_DONE : LINE_FAILED;
            r->status = res->status;
            snprintf(r->request_id, sizeof r->request_id, "%s", rid);
            r->result_json = text;
            r->prompt_tokens = (int64_t)pt;
            r->completion_tokens = (int64_t)ct;
            batch_writer_put(b->writer, r);
            if (a)
                a->finished_here++;
            b->h->counter_add(ok ? b->m_lines_done : b->m_lines_failed, 1);
        } else {
            free(text);
            b->h->log(b->h, SLUICE_LOG_ERROR,
                      "batch %s line %lld: result not stored; it stays in "
                      "flight and is sent again after a restart",
                      s->batch_id, (long long)s->idx);
        }
    }
    free(s);
    /* Claims are transactions: an answer refills its batch's slots once
     * an eighth of them are free (one claim per few lines, not one per
     * line); the tick refills the rest. */
    int64_t step = b->cfg->concurrency / 8 > 1 ? b->cfg->concurrency / 8 : 1;
    if (a && a->running && !rn->stopped &&
        b->cfg->concurrency - a->inflight >= step)
        pump(rn, a);
}

/* ---- sending ---- */

static bool take_credit(struct batch_runner *rn, struct act *a)
{
    double rps = rn->b->cfg->max_rps;
    if (rps <= 0)
        return true;
    int64_t now = now_ms(rn->b);
    a->credit += (double)(now - a->credit_ms) * rps / 1000.0;
    a->credit_ms = now;
    double cap = rps < 1 ? 1 : rps;
    if (a->credit > cap)
        a->credit = cap;
    if (a->credit < 1)
        return false;
    a->credit -= 1;
    return true;
}

static void send_line(struct batch_runner *rn, struct act *a,
                      struct batch_line *l)
{
    struct batch *b = rn->b;
    struct sent *s = calloc(1, sizeof *s);
    char rid[40];
    /* batch_<24 hex>: the id's hex part names the batch in the access log. */
    snprintf(rid, sizeof rid, "b%.24s-%lld-%d", a->id + 6, (long long)l->idx,
             l->attempts % 100);
    struct sluice_self_request req = {
        .endpoint = a->endpoint,
        .body = {l->body, l->body ? strlen(l->body) : 0},
        .priority = SLUICE_PRIO_BATCH,
        .request_id = {rid, strlen(rid)},
    };
    for (int k = 0; k < 4; k++)
        req.identity[k] = (struct sluice_str){a->ident[k], strlen(a->ident[k])};
    int rc = s ? SLUICE_OK : SLUICE_ENOMEM;
    if (s) {
        s->rn = rn;
        snprintf(s->batch_id, sizeof s->batch_id, "%s", a->id);
        s->idx = l->idx;
        s->attempts = l->attempts;
        rc = b->h->self_submit(b->h, &req, line_done, s);
    }
    if (rc == SLUICE_OK) {
        a->inflight++;
        b->h->gauge_set(b->m_inflight, a->inflight);
        return;
    }
    free(s);
    /* Not sent: back to pending without spending an attempt. */
    batch_db_line_retry(b->db, a->id, l->idx,
                        now_ms(b) + b->cfg->tick_ns / 1000000,
                        "the gateway refused the internal request", true);
}

/* Sends as many due lines as the concurrency and rate caps allow. */
static void pump(struct batch_runner *rn, struct act *a)
{
    struct batch *b = rn->b;
    enum { CLAIM = 64 };
    struct batch_line lines[CLAIM];
    int want = (int)b->cfg->concurrency - a->inflight;
    if (want <= 0)
        return;
    if (want > CLAIM)
        want = CLAIM;
    int allowed = 0;
    while (allowed < want && take_credit(rn, a))
        allowed++;
    if (allowed == 0)
        return;
    int n = batch_db_claim(b->db, a->id, now_ms(b), rn->pid, lines, allowed);
    if (n < 0)
        return;
    a->credit += allowed - n; /* unused allowance stays */
    for (int i = 0; i < n; i++) {
        send_line(rn, a, &lines[i]);
        batch_line_clear(&lines[i]);
    }
}

/* ---- moving a batch along ---- */

static json_t *one_error(const char *code, const char *message, long line)
{
    json_t *e =
        json_pack("{s:s,s:s,s:n}", "code", code, "message", message, "param");
    json_object_set_new(e, "line", line > 0 ? json_integer(line) : json_null());
    return json_pack("{s:s,s:[o]}", "object", "list", "data", e);
}

static void fail_batch(struct batch *b, const char *id, json_t *errors)
{
    char *text = json_dumps(errors, JSON_COMPACT);
    json_decref(errors);
    batch_db_batch_fail(b->db, id, text, now_ms(b) / 1000);
    free(text);
}

static void validate(struct batch_runner *rn, const struct batch_row *row)
{
    struct batch *b = rn->b;
    size_t len = 0;
    char *data = batch_store_read(b->cfg->dir, row->input_file_id, &len);
    if (!data) {
        fail_batch(
            b, row->id,
            one_error("missing_file", "The input file no longer exists.", 0));
        return;
    }
    struct jsonl_check c;
    if (batch_jsonl_check(data, len, (size_t)b->cfg->max_lines, NULL, NULL,
                          JSONL_SPANS | JSONL_PARSED, &c) != 0) {
        fail_batch(b, row->id, one_error("invalid_file", c.error, 0));
        free(data);
        return;
    }
    if (strcmp(c.url, row->endpoint) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "The input file's url %s does not match the batch's "
                 "endpoint %s.",
                 c.url, row->endpoint);
        fail_batch(b, row->id, one_error("invalid_url", msg, 1));
        for (size_t i = 0; i < c.lines; i++)
            json_decref(c.at[i].json);
        free(c.at);
        free(data);
        return;
    }
    struct batch_line_in *in = calloc(c.lines, sizeof *in);
    json_t **keep = calloc(c.lines, sizeof *keep);
    char **bodies = calloc(c.lines, sizeof *bodies);
    bool ok = in && keep && bodies;
    for (size_t i = 0; i < c.lines; i++) { /* parsed once, by the check */
        if (keep)
            keep[i] = c.at[i].json;
        else
            json_decref(c.at[i].json);
    }
    for (size_t i = 0; ok && i < c.lines; i++) {
        json_t *cid = json_object_get(keep[i], "custom_id");
        bodies[i] = json_dumps(json_object_get(keep[i], "body"), JSON_COMPACT);
        if (!cid || !bodies[i]) {
            ok = false;
            break;
        }
        in[i].custom_id = json_string_value(cid);
        in[i].custom_id_len = json_string_length(cid);
        in[i].body = bodies[i];
        in[i].body_len = strlen(bodies[i]);
    }
    char upstream[64];
    if (ok && b->fwd &&
        batch_forward_pick(b, (void *const *)keep, c.lines, upstream,
                           sizeof upstream)) {
        /* The provider runs it (batch_forward.c); no lines here. */
        if (batch_db_forward_start(b->db, row->id, upstream,
                                   (int64_t)c.lines) != 0)
            b->h->log(b->h, SLUICE_LOG_ERROR, "batch %s: not recorded",
                      row->id);
    } else if (ok && batch_db_lines_insert(b->db, row->id, in, c.lines,
                                           now_ms(b) / 1000) != 0)
        b->h->log(b->h, SLUICE_LOG_ERROR, "batch %s: lines not stored",
                  row->id);
    for (size_t i = 0; i < c.lines; i++) {
        if (keep)
            json_decref(keep[i]);
        if (bodies)
            free(bodies[i]);
    }
    free(in);
    free(keep);
    free(bodies);
    free(c.at);
    free(data);
}

struct outputs {
    const char *batch_id;
    char *buf[2]; /* output, errors */
    size_t len[2], cap[2];
    int64_t n[2];
};

static int append(struct outputs *o, int which, const char *s, size_t len)
{
    if (o->len[which] + len + 1 > o->cap[which]) {
        size_t nc = (o->cap[which] + len + 1) * 2;
        char *nb = realloc(o->buf[which], nc);
        if (!nb)
            return -1;
        o->buf[which] = nb;
        o->cap[which] = nc;
    }
    memcpy(o->buf[which] + o->len[which], s, len);
    o->len[which] += len;
    return 0;
}

static int collect(void *arg, int64_t idx, const char *custom_id, int state,
                   int status, const char *request_id, const char *result)
{
    struct outputs *o = arg;
    (void)status;
    (void)request_id;
    char id[80];
    snprintf(id, sizeof id, "batch_req_%.24s_%lld", o->batch_id + 6,
             (long long)idx);
    int which = state == LINE_DONE ? 0 : 1;
    /* Results the runner stored are spliced; others are re-read. */
    int spliced = batch_output_line_append(
        &o->buf[which], &o->len[which], &o->cap[which], id, custom_id, result);
    if (spliced != 0) {
        o->n[which]++;
        return spliced > 0 ? append(o, which, "\n", 1) : -1;
    }
    json_t *line = result ? json_loads(result, 0, NULL) : NULL;
    if (!line)
        line = json_pack("{s:n,s:{s:s,s:s}}", "response", "error", "code",
                         "lost_result", "message", "the result was unreadable");
    /* OpenAI's order: id, custom_id, response, error. */
    json_t *out =
        json_pack("{s:s,s:s,s:O,s:O}", "id", id, "custom_id", custom_id,
                  "response", json_object_get(line, "response"), "error",
                  json_object_get(line, "error"));
    json_decref(line);
    char *text =
        out ? json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(out);
    int rc = text ? append(o, which, text, strlen(text)) : -1;
    if (rc == 0)
        rc = append(o, which, "\n", 1);
    o->n[which]++;
    free(text);
    return rc;
}

/* Writes the output and error files, then the final status, in that
 * order: a crash in between redoes it under the same file ids. */
static void finish(struct batch_runner *rn, const struct batch_row *row,
                   const char *status)
{
    struct batch *b = rn->b;
    struct outputs o = {.batch_id = row->id};
    if (batch_db_lines_each(b->db, row->id, collect, &o) != 0) {
        free(o.buf[0]);
        free(o.buf[1]);
        return;
    }
    char ids[2][40] = {"", ""};
    const char *kind[2] = {"file-out-", "file-err-"};
    int64_t now_s = now_ms(b) / 1000;
    for (int k = 0; k < 2; k++) {
        if (o.n[k] == 0)
            continue;
        snprintf(ids[k], sizeof ids[k], "%s%.24s", kind[k], row->id + 6);
        struct batch_file_row f = {0};
        snprintf(f.id, sizeof f.id, "%s", ids[k]);
        snprintf(f.tenant, sizeof f.tenant, "%s", row->tenant);
        snprintf(f.purpose, sizeof f.purpose, "batch_output");
        snprintf(f.filename, sizeof f.filename, "%s_%s.jsonl", row->id,
                 k ? "error" : "output");
        f.bytes = (int64_t)o.len[k];
        f.created_at = now_s;
        if (batch_store_write(b->cfg->dir, f.id, o.buf[k] ? o.buf[k] : "",
                              o.len[k]) != 0 ||
            batch_db_file_insert(b->db, &f) != 0) {
            b->h->log(b->h, SLUICE_LOG_ERROR,
                      "batch %s: result file not written; retrying", row->id);
            free(o.buf[0]);
            free(o.buf[1]);
            return;
        }
    }
    free(o.buf[0]);
    free(o.buf[1]);
    batch_db_batch_finish(b->db, row->id, status, ids[0][0] ? ids[0] : NULL,
                          ids[1][0] ? ids[1] : NULL, now_s);
}

static void abandon(struct batch *b, const char *id, const char *code,
                    const char *message)
{
    json_t *e = json_pack("{s:n,s:{s:s,s:s}}", "response", "error", "code",
                          code, "message", message);
    char *text = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    batch_db_lines_abandon(b->db, id, text);
    free(text);
}

static void progress_update(struct batch_runner *rn, struct act *a,
                            const struct batch_row *row)
{
    struct batch *b = rn->b;
    int64_t now = now_ms(b);
    struct line_counts c = {0};
    bool fresh = now - a->counts_ms >= 1000 || a->counts_ms == 0;
    if (fresh) {
        batch_db_line_counts(b->db, a->id, &c);
        a->counts_ms = now;
    }
    pthread_mutex_lock(&b->progress_mu);
    struct batch_progress *p = NULL;
    for (int i = 0; i < b->n_progress; i++)
        if (strcmp(b->progress[i].id, a->id) == 0)
            p = &b->progress[i];
    if (!p && b->n_progress < BATCH_MAX_ACTIVE) {
        p = &b->progress[b->n_progress++];
        memset(p, 0, sizeof *p);
        snprintf(p->id, sizeof p->id, "%s", a->id);
        snprintf(p->tenant, sizeof p->tenant, "%s", a->ident[0]);
    }
    if (p) {
        snprintf(p->status, sizeof p->status, "%s", row->status);
        p->total = row->total;
        if (fresh) {
            p->completed = c.done;
            p->failed = c.failed;
        }
        p->inflight = a->inflight;
        p->started_ms = a->started_ms;
        p->done_since_start = a->finished_here;
    }
    pthread_mutex_unlock(&b->progress_mu);
}

static void progress_drop(struct batch *b, const char *id)
{
    pthread_mutex_lock(&b->progress_mu);
    for (int i = 0; i < b->n_progress; i++)
        if (strcmp(b->progress[i].id, id) == 0) {
            b->progress[i] = b->progress[--b->n_progress];
            break;
        }
    pthread_mutex_unlock(&b->progress_mu);
}

/* A forwarded batch in the admin status: the provider's counts; the rate
 * counts what finished since this process first saw it. */
static void progress_forwarded(struct batch *b, const struct batch_row *row,
                               const struct batch_forward_row *f)
{
    int64_t done = f->completed + f->failed;
    pthread_mutex_lock(&b->progress_mu);
    struct batch_progress *p = NULL;
    for (int i = 0; i < b->n_progress; i++)
        if (strcmp(b->progress[i].id, row->id) == 0)
            p = &b->progress[i];
    if (!p && b->n_progress < BATCH_MAX_ACTIVE) {
        p = &b->progress[b->n_progress++];
        memset(p, 0, sizeof *p);
        snprintf(p->id, sizeof p->id, "%s", row->id);
        snprintf(p->tenant, sizeof p->tenant, "%s", row->tenant);
        p->started_ms = now_ms(b);
        p->done_at_start = done;
    }
    if (p) {
        snprintf(p->status, sizeof p->status, "%s", row->status);
        snprintf(p->forwarded_to, sizeof p->forwarded_to, "%s", f->upstream);
        p->total = row->total;
        p->completed = f->completed;
        p->failed = f->failed;
        p->done_since_start = done - p->done_at_start;
    }
    pthread_mutex_unlock(&b->progress_mu);
}

static void step(struct batch_runner *rn, const char *id)
{
    struct batch *b = rn->b;
    struct batch_row row;
    if (batch_db_batch_state(b->db, id, &row) != 0)
        return;
    struct batch_forward_row fr;
    if (batch_db_forward_get(b->db, id, &fr) == 0) {
        /* Forwarded: the provider runs it. A core that cannot make the
         * calls (a 1.0 core after a downgrade) leaves it waiting. */
        if (b->fwd && !rn->stopped)
            batch_forward_step(b->fwd, &row);
        progress_forwarded(b, &row, &fr);
        batch_row_clear(&row);
        return;
    }
    if (strcmp(row.status, "validating") == 0) {
        validate(rn, &row);
        batch_row_clear(&row);
        return;
    }
    struct act *a = act_get(rn, &row);
    if (!a) {
        batch_row_clear(&row);
        return; /* more running batches than slots: it waits its turn */
    }
    int64_t now_s = now_ms(b) / 1000;
    const char *final = NULL;
    if (strcmp(row.status, "in_progress") == 0 && now_s >= row.expires_at) {
        abandon(b, id, "batch_expired",
                "This line was not run before the batch's completion "
                "window ended.");
        final = "expired";
    } else if (strcmp(row.status, "cancelling") == 0) {
        abandon(b, id, "batch_cancelled",
                "This line was not run: the batch was cancelled.");
        final = "cancelled";
    } else if (strcmp(row.status, "finalizing") == 0) {
        final = "completed";
    } else if (strcmp(row.status, "in_progress") == 0) {
        pump(rn, a);
        /* Nothing of ours out: maybe all done. The count scans the
         * batch's lines, so at most every 200 ms while retries wait. */
        if (a->inflight == 0 && now_ms(b) - a->finish_check_ms >= 200) {
            a->finish_check_ms = now_ms(b);
            struct line_counts c;
            if (batch_db_line_counts(b->db, id, &c) == 0 &&
                c.pending + c.inflight == 0 &&
                batch_db_batch_move(b->db, id, "in_progress", "finalizing",
                                    now_s) == 0)
                final = "completed";
        }
    }
    a->running = final == NULL && strcmp(row.status, "in_progress") == 0;
    progress_update(rn, a, &row);
    /* Lines still out (ours, or an instance's before a reload) come back
     * first: their results belong in the files. */
    struct line_counts left;
    if (final && a->inflight == 0 &&
        batch_db_line_counts(b->db, id, &left) == 0 && left.inflight == 0) {
        finish(rn, &row, final);
        a->used = false;
        progress_drop(b, id);
    }
    batch_row_clear(&row);
}

static void tick(void *arg, unsigned worker)
{
    struct batch_runner *rn = arg;
    (void)worker;
    int64_t failed = batch_writer_failed(rn->b->writer);
    if (failed > rn->write_failures_seen) {
        rn->b->h->log(rn->b->h, SLUICE_LOG_ERROR,
                      "batch: %lld line results not stored; those lines stay "
                      "in flight and are sent again after a restart",
                      (long long)(failed - rn->write_failures_seen));
        rn->write_failures_seen = failed;
    }
    char ids[BATCH_MAX_ACTIVE][40];
    int n = batch_db_batch_active(rn->b->db, ids, BATCH_MAX_ACTIVE);
    for (int i = 0; i < n; i++)
        step(rn, ids[i]);
    /* Batches that ended (forwarded ones end in their callbacks) leave
     * the admin status. */
    pthread_mutex_lock(&rn->b->progress_mu);
    for (int i = 0; n >= 0 && i < rn->b->n_progress;) {
        bool active = false;
        for (int k = 0; k < n && !active; k++)
            active = strcmp(rn->b->progress[i].id, ids[k]) == 0;
        if (active)
            i++;
        else
            rn->b->progress[i] = rn->b->progress[--rn->b->n_progress];
    }
    pthread_mutex_unlock(&rn->b->progress_mu);
    rn->b->h->gauge_set(rn->b->m_active, n > 0 ? n : 0);
    rn->b->h->health_set(rn->b->h, "batch.active", n > 0 ? n : 0);
}

struct batch_runner *batch_runner_new(struct batch *b)
{
    struct batch_runner *rn = calloc(1, sizeof *rn);
    if (!rn)
        return NULL;
    rn->b = b;
    rn->pid = (int64_t)getpid();
    return rn;
}

void batch_runner_stop(struct batch_runner *rn)
{
    rn->stopped = true;
}

void batch_runner_free(struct batch_runner *rn)
{
    free(rn);
}

int batch_runner_start(struct batch_runner *rn)
{
    const struct sluice_host *h = rn->b->h;
    uint64_t period = (uint64_t)rn->b->cfg->tick_ns / 1000000;
    if (period == 0)
        period = 1;
    return h->timer_start(h, (unsigned)rn->b->cfg->worker, period, period, tick,
                          rn, NULL);
}
