#include "mock_batches.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mock_batch_run.h"
#include "mock_http.h"
#include "mock_multipart.h"
#include "mock_server.h"

struct mfile {
    struct mfile *next;
    char id[40];
    char purpose[32];
    char filename[128];
    struct mock_buf data;
    long created_at;
};

struct mbatch {
    struct mbatch *next;
    char id[40];
    char input_file_id[40], endpoint[40], window[16];
    char status[16];
    char output_file_id[40], error_file_id[40];
    json_t *metadata;
    long created_at, in_progress_at, finalizing_at, completed_at, cancelling_at,
        cancelled_at;
    long long start_ms, delay_ms;
    size_t total, done, ok, failed;
    size_t *off, *len; /* the input lines */
    struct mock_buf out, err;
};

/* One process-wide store: the mock's threads share it. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct mfile *files;
static struct mbatch *batches;
static unsigned long next_num;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct mfile *file_find(const char *id)
{
    for (struct mfile *f = files; f; f = f->next)
        if (strcmp(f->id, id) == 0)
            return f;
    return NULL;
}

static struct mbatch *batch_find(const char *id)
{
    for (struct mbatch *b = batches; b; b = b->next)
        if (strcmp(b->id, id) == 0)
            return b;
    return NULL;
}

static json_t *file_json(const struct mfile *f)
{
    return json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:s}", "id", f->id, "object",
                     "file", "bytes", (json_int_t)f->data.len, "created_at",
                     (json_int_t)f->created_at, "filename", f->filename,
                     "purpose", f->purpose, "status", "processed");
}

static json_t *stamp(long v)
{
    return v ? json_integer(v) : json_null();
}

static json_t *batch_json(const struct mbatch *b)
{
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:n,s:s,s:s,s:s,s:I}", "id", b->id, "object",
                  "batch", "endpoint", b->endpoint, "errors", "input_file_id",
                  b->input_file_id, "completion_window", b->window, "status",
                  b->status, "created_at", (json_int_t)b->created_at);
    json_object_set_new(o, "output_file_id",
                        b->output_file_id[0] ? json_string(b->output_file_id)
                                             : json_null());
    json_object_set_new(o, "error_file_id",
                        b->error_file_id[0] ? json_string(b->error_file_id)
                                            : json_null());
    json_object_set_new(o, "in_progress_at", stamp(b->in_progress_at));
    json_object_set_new(o, "finalizing_at", stamp(b->finalizing_at));
    json_object_set_new(o, "completed_at", stamp(b->completed_at));
    json_object_set_new(o, "cancelling_at", stamp(b->cancelling_at));
    json_object_set_new(o, "cancelled_at", stamp(b->cancelled_at));
    json_object_set_new(
        o, "request_counts",
        json_pack("{s:I,s:I,s:I}", "total", (json_int_t)b->total, "completed",
                  (json_int_t)b->ok, "failed", (json_int_t)b->failed));
    json_object_set_new(o, "metadata",
                        b->metadata ? json_incref(b->metadata) : json_null());
    return o;
}

static struct mfile *file_add(const char *purpose, const char *filename,
                              struct mock_buf *data)
{
    struct mfile *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    snprintf(f->id, sizeof f->id, "file-mock-%lu", ++next_num);
    snprintf(f->purpose, sizeof f->purpose, "%s", purpose);
    snprintf(f->filename, sizeof f->filename, "%s", filename);
    f->data = *data;
    memset(data, 0, sizeof *data);
    f->created_at = (long)(now_ms() / 1000);
    f->next = files;
    files = f;
    return f;
}

/* Runs the lines whose time has come and moves the batch along; a
 * cancelled batch's lines not yet run go to its error file. Under mu. */
static void advance(struct mock_worker *w, struct mbatch *b)
{
    long long now = now_ms();
    long now_s = (long)(now / 1000);
    const struct mfile *in = file_find(b->input_file_id);
    if (strcmp(b->status, "validating") == 0) {
        snprintf(b->status, sizeof b->status, "in_progress");
        b->in_progress_at = now_s;
    }
    bool cancel = strcmp(b->status, "cancelling") == 0;
    if (strcmp(b->status, "in_progress") == 0 || cancel) {
        size_t due = b->total;
        if (!cancel && b->delay_ms > 0 && now - b->start_ms < b->delay_ms)
            due = (size_t)((double)b->total * (double)(now - b->start_ms) /
                           (double)b->delay_ms);
        for (; !cancel && in && b->done < due; b->done++) {
            bool ok = mock_batch_run_line(in->data.p + b->off[b->done],
                                          b->len[b->done], w->app->opt.seed,
                                          ++next_num, &b->out, &b->err);
            ok ? b->ok++ : b->failed++;
            mock_stats_add(&w->app->stats.batch_lines, 1);
        }
        for (; cancel && in && b->done < b->total; b->done++, b->failed++)
            mock_batch_skip_line(in->data.p + b->off[b->done], b->len[b->done],
                                 ++next_num, "batch_cancelled",
                                 "The batch was cancelled.", &b->err);
        if (b->done < b->total)
            return;
        b->finalizing_at = now_s;
        struct mfile *o =
            b->out.len ? file_add("batch_output", "batch_output.jsonl", &b->out)
                       : NULL;
        struct mfile *e =
            b->err.len ? file_add("batch_output", "batch_errors.jsonl", &b->err)
                       : NULL;
        if (o)
            snprintf(b->output_file_id, sizeof b->output_file_id, "%s", o->id);
        if (e)
            snprintf(b->error_file_id, sizeof b->error_file_id, "%s", e->id);
        snprintf(b->status, sizeof b->status,
                 cancel ? "cancelled" : "completed");
        if (cancel)
            b->cancelled_at = now_s;
        else
            b->completed_at = now_s;
    }
}

/* Global faults (POST /mock/config) and x-mock-* headers apply here too:
 * an injected status answers instead; latency_ms delays the answer. */
static bool injected(struct mock_worker *w, struct evhttp_request *req,
                     struct mock_conn *conn, long *latency_ms)
{
    struct mock_faults f = w->app->opt.defaults, hf = {0};
    char err[200];
    const char *param = NULL;
    mock_control_apply(&w->app->control, &f);
    if (mock_faults_from_headers(evhttp_request_get_input_headers(req), &hf,
                                 &param, err, sizeof err) == 0)
        mock_faults_overlay(&f, &hf);
    *latency_ms = mock_faults_has(&f, MOCK_LATENCY_MS) ? f.latency_ms : 0;
    if (!mock_faults_has(&f, MOCK_STATUS) || f.status < 400)
        return false;
    mock_reply_error(w, req, conn, (int)f.status, "Mock injected error.", NULL,
                     *latency_ms);
    return true;
}

static void upload(struct mock_worker *w, struct evhttp_request *req,
                   struct mock_conn *conn, long latency_ms)
{
    struct evbuffer *inb = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(inb);
    const char *body = n ? (const char *)evbuffer_pullup(inb, -1) : "";
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req),
                                        "Content-Type");
    struct mock_part parts[8];
    size_t np = mock_multipart_parse(ct, body, n, parts, 8);
    const struct mock_part *purpose = NULL, *file = NULL;
    for (size_t i = 0; i < np; i++) {
        if (strcmp(parts[i].name, "purpose") == 0)
            purpose = &parts[i];
        if (strcmp(parts[i].name, "file") == 0)
            file = &parts[i];
    }
    if (!purpose || !file || purpose->len != 5 ||
        memcmp(purpose->data, "batch", 5) != 0) {
        mock_reply_error(w, req, conn, 400,
                         "Expected multipart/form-data with purpose=batch "
                         "and a file.",
                         NULL, 0);
        return;
    }
    struct mock_buf data = {0};
    if (mock_buf_add(&data, file->data, file->len) != 0) {
        mock_reply_error(w, req, conn, 500, "mock: out of memory", NULL, 0);
        return;
    }
    pthread_mutex_lock(&mu);
    struct mfile *f = file_add("batch", file->filename, &data);
    json_t *j = f ? file_json(f) : NULL;
    pthread_mutex_unlock(&mu);
    free(data.p);
    mock_stats_add(&w->app->stats.files_uploaded, 1);
    mock_reply(w, req, conn, j ? 200 : 500, mock_json_evbuffer(j), latency_ms);
}

static void content(struct mock_worker *w, struct evhttp_request *req,
                    struct mock_conn *conn, const char *id)
{
    struct evbuffer *out = evbuffer_new();
    pthread_mutex_lock(&mu);
    const struct mfile *f = file_find(id);
    if (f && out)
        evbuffer_add(out, f->data.p ? f->data.p : "", f->data.len);
    pthread_mutex_unlock(&mu);
    if (!f) {
        if (out)
            evbuffer_free(out);
        mock_reply_error(w, req, conn, 404, "No such File object.", "id", 0);
        return;
    }
    mock_stats_add(&w->app->stats.file_contents, 1);
    mock_set_header(req, "Content-Type", "application/jsonl");
    mock_reply(w, req, conn, 200, out, 0);
}

/* Splits the input file into lines; false when it has none. */
static bool split_lines(struct mbatch *b, const struct mfile *f)
{
    size_t cap = 16;
    b->off = malloc(cap * sizeof *b->off);
    b->len = malloc(cap * sizeof *b->len);
    for (size_t at = 0; b->off && b->len && at < f->data.len;) {
        const char *nl = memchr(f->data.p + at, '\n', f->data.len - at);
        size_t end = nl ? (size_t)(nl - f->data.p) : f->data.len;
        if (end > at) {
            if (b->total == cap) {
                cap *= 2;
                size_t *o = realloc(b->off, cap * sizeof *o);
                if (o)
                    b->off = o;
                size_t *l = realloc(b->len, cap * sizeof *l);
                if (l)
                    b->len = l;
                if (!o || !l)
                    return false;
            }
            b->off[b->total] = at;
            b->len[b->total++] = end - at;
        }
        at = end + 1;
    }
    return b->total > 0;
}

static void create(struct mock_worker *w, struct evhttp_request *req,
                   struct mock_conn *conn, long latency_ms)
{
    char err[300];
    json_t *in = mock_read_body(req, err, sizeof err);
    const char *fid = json_string_value(json_object_get(in, "input_file_id"));
    const char *ep = json_string_value(json_object_get(in, "endpoint"));
    const char *win =
        json_string_value(json_object_get(in, "completion_window"));
    json_t *meta = json_object_get(in, "metadata");
    const char *st = json_string_value(json_object_get(meta, "mock_status"));
    const char *dl = json_string_value(json_object_get(meta, "mock_delay_ms"));
    const char *cl =
        json_string_value(json_object_get(meta, "mock_create_latency_ms"));
    if (cl)
        latency_ms = atol(cl);
    if (!in || !fid || !ep || !win || strcmp(win, "24h") != 0) {
        json_decref(in);
        mock_reply_error(w, req, conn, 400,
                         in ? "input_file_id, endpoint and completion_window "
                              "'24h' are required."
                            : err,
                         NULL, 0);
        return;
    }
    int refuse = st ? atoi(st) : 0;
    if (refuse >= 400 && refuse <= 599) { /* metadata.mock_status */
        json_decref(in);
        mock_reply_error(w, req, conn, refuse, "Mock injected error.", NULL, 0);
        return;
    }
    struct mbatch *b = calloc(1, sizeof *b);
    json_t *j = NULL;
    pthread_mutex_lock(&mu);
    const struct mfile *f = file_find(fid);
    if (b && f && split_lines(b, f)) {
        snprintf(b->id, sizeof b->id, "batch_mock_%lu", ++next_num);
        snprintf(b->input_file_id, sizeof b->input_file_id, "%s", fid);
        snprintf(b->endpoint, sizeof b->endpoint, "%s", ep);
        snprintf(b->window, sizeof b->window, "%s", win);
        snprintf(b->status, sizeof b->status, "validating");
        b->metadata = json_is_object(meta) ? json_incref(meta) : NULL;
        b->start_ms = now_ms();
        b->created_at = (long)(b->start_ms / 1000);
        b->delay_ms = dl ? atoll(dl) : 300;
        b->next = batches;
        batches = b;
        j = batch_json(b);
        b = NULL;
    }
    pthread_mutex_unlock(&mu);
    if (b) {
        free(b->off);
        free(b->len);
        free(b);
    }
    json_decref(in);
    if (!j) {
        mock_reply_error(w, req, conn, f ? 400 : 404,
                         f ? "The input file has no lines."
                           : "No such File object.",
                         "input_file_id", 0);
        return;
    }
    mock_stats_add(&w->app->stats.batches_created, 1);
    mock_reply(w, req, conn, 200, mock_json_evbuffer(j), latency_ms);
}

static void retrieve(struct mock_worker *w, struct evhttp_request *req,
                     struct mock_conn *conn, const char *id, bool cancel)
{
    json_t *j = NULL;
    bool refused = false;
    pthread_mutex_lock(&mu);
    struct mbatch *b = batch_find(id);
    if (b && cancel) {
        if (strcmp(b->status, "validating") == 0 ||
            strcmp(b->status, "in_progress") == 0) {
            snprintf(b->status, sizeof b->status, "cancelling");
            b->cancelling_at = (long)(now_ms() / 1000);
        } else if (strcmp(b->status, "cancelling") != 0) {
            refused = true;
        }
    } else if (b) {
        advance(w, b);
    }
    if (b && !refused)
        j = batch_json(b);
    pthread_mutex_unlock(&mu);
    mock_stats_add(cancel ? &w->app->stats.batch_cancels
                          : &w->app->stats.batch_retrievals,
                   1);
    if (!b)
        mock_reply_error(w, req, conn, 404, "No such Batch object.", "id", 0);
    else if (refused)
        mock_reply_error(w, req, conn, 409,
                         "Cannot cancel a batch that is already finished.",
                         NULL, 0);
    else
        mock_reply(w, req, conn, 200, mock_json_evbuffer(j), 0);
}

/* GET /v1/files?purpose=P and GET /v1/batches: newest first, all of
 * them (the mock keeps few). */
static void list(struct mock_worker *w, struct evhttp_request *req,
                 struct mock_conn *conn, bool of_files)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq args = {0};
    const char *purpose = NULL;
    if (q && evhttp_parse_query_str(q, &args) == 0)
        purpose = evhttp_find_header(&args, "purpose");
    json_t *data = json_array();
    pthread_mutex_lock(&mu);
    if (of_files) {
        for (const struct mfile *f = files; f; f = f->next)
            if (!purpose || strcmp(purpose, f->purpose) == 0)
                json_array_append_new(data, file_json(f));
    } else {
        for (const struct mbatch *b = batches; b; b = b->next)
            json_array_append_new(data, batch_json(b));
    }
    pthread_mutex_unlock(&mu);
    evhttp_clear_headers(&args);
    mock_stats_add(
        of_files ? &w->app->stats.file_lists : &w->app->stats.batch_lists, 1);
    mock_reply(w, req, conn, 200,
               mock_json_evbuffer(json_pack("{s:s,s:o,s:b}", "object", "list",
                                            "data", data, "has_more", 0)),
               0);
}

bool mock_batches_handle(struct mock_worker *w, struct evhttp_request *req,
                         struct mock_conn *conn, const char *rest)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    char id[64];
    const char *tail = NULL;
    bool is_files = strncmp(rest, "/files", 6) == 0;
    bool is_batches = strncmp(rest, "/batches", 8) == 0;
    if (!is_files && !is_batches)
        return false;
    const char *after = rest + (is_files ? 6 : 8);
    if (after[0] != '\0' && after[0] != '/')
        return false;
    id[0] = '\0';
    if (after[0] == '/') {
        const char *slash = strchr(after + 1, '/');
        size_t n = slash ? (size_t)(slash - after - 1) : strlen(after + 1);
        if (n == 0 || n >= sizeof id)
            return false;
        memcpy(id, after + 1, n);
        id[n] = '\0';
        tail = slash ? slash : "";
    }
    long latency_ms = 0;
    if (injected(w, req, conn, &latency_ms))
        return true;
    if (is_files && !id[0] && m == EVHTTP_REQ_POST)
        upload(w, req, conn, latency_ms);
    else if (!id[0] && m == EVHTTP_REQ_GET)
        list(w, req, conn, is_files);
    else if (is_files && id[0] && strcmp(tail, "/content") == 0 &&
             m == EVHTTP_REQ_GET)
        content(w, req, conn, id);
    else if (is_batches && !id[0] && m == EVHTTP_REQ_POST)
        create(w, req, conn, latency_ms);
    else if (is_batches && id[0] && !tail[0] && m == EVHTTP_REQ_GET)
        retrieve(w, req, conn, id, false);
    else if (is_batches && id[0] && strcmp(tail, "/cancel") == 0 &&
             m == EVHTTP_REQ_POST)
        retrieve(w, req, conn, id, true);
    else
        return false;
    return true;
}
