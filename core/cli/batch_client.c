/* `sluice batch` (see batch_client.h): options, the send loop on curl's
 * multi interface, retries, pacing, progress and checkpoints. */
#include "cli/batch_client.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/batch_checkpoint.h"
#include "cli/batch_dry_run.h"
#include "cli/batch_input.h"
#include "cli/batch_prices.h"
#include "cli/batch_progress.h"

static const char usage[] =
    "usage: sluice batch [options] INPUT.jsonl\n"
    "Runs an OpenAI batch file (lines of custom_id, method, url, body)\n"
    "against an OpenAI-compatible endpoint and writes one result line per\n"
    "request, as the Batch API's output file does.\n"
    "  -o, --output FILE     results (FILE.partial and FILE.checkpoint while\n"
    "                        running; resume by running the same command)\n"
    "  --base-url URL        default $OPENAI_BASE_URL or "
    "http://127.0.0.1:8080/v1\n"
    "  --api-key KEY         default $OPENAI_API_KEY\n"
    "  --concurrency N       requests in flight (default 8)\n"
    "  --rpm N, --tpm N      requests / tokens per minute (0: no limit)\n"
    "  --max-attempts N      tries for 429/5xx/network errors (default 4)\n"
    "  --order input|finish  result order (default input)\n"
    "  --prices FILE         price table shaped like cost_tracker's\n"
    "                        prices/openai.json (default: that table)\n"
    "  --assume-output N     output tokens of lines without max_tokens, for\n"
    "                        the estimate and --tpm (default 0)\n"
    "  --dry-run [--json]    estimate tokens and cost per model, send "
    "nothing\n"
    "  --restart             ignore an existing checkpoint\n"
    "  --progress auto|bar|plain|none   (auto: a bar on a terminal)\n"
    "Exit: 0 done (failed lines are in the output with their error),\n"
    "1 error, 130 interrupted (checkpoint written).\n";

struct opts {
    const char *input, *output, *base_url, *api_key, *prices;
    long concurrency, rpm, tpm, max_attempts;
    uint64_t assume_output;
    bool dry_run, json, restart, order_finish;
    enum progress_mode progress;
};

enum line_state { PENDING = 0, RUNNING = 1, WAITING = 2, FINAL = 3 };

struct job {
    struct job *prev, *next; /* the jobs in flight */
    size_t idx;
    CURL *easy;
    struct curl_slist *hdrs;
    char *buf;
    size_t len, cap;
};

struct run {
    const struct opts *o;
    bool io_error; /* a result could not be written: stop */
    struct batch_input in;
    struct batch_prices *prices;
    unsigned char *state;
    int *attempts;
    double *not_before; /* WAITING: when the retry may go */
    size_t cursor;      /* next PENDING candidate */
    size_t inflight, final_count;
    size_t waiting; /* lines in WAITING: the retry scan is skipped at 0 */
    FILE *partial;
    char partial_path[4096], ckpt_path[4096];
    struct batch_ckpt ck;
    double next_req, next_tok; /* pacing: earliest next start */
    double started;
    uint64_t done_here;
    CURLM *multi;
    struct job *jobs;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    struct job *j = arg;
    size_t add = sz * n;
    if (j->len + add + 1 > j->cap) {
        size_t nc = (j->len + add + 1) * 2;
        char *nb = realloc(j->buf, nc);
        if (!nb)
            return 0;
        j->buf = nb;
        j->cap = nc;
    }
    memcpy(j->buf + j->len, p, add);
    j->len += add;
    j->buf[j->len] = '\0';
    return add;
}

/* ---- results ---- */

/* Appends the line's result to OUT.partial; it becomes final. */
static int record(struct run *r, size_t idx, long status, json_t *body,
                  json_t *error)
{
    const struct batch_in_line *l = &r->in.lines[idx];
    char id[40];
    snprintf(id, sizeof id, "line-%zu", idx);
    json_t *resp = status ? json_pack("{s:i,s:O}", "status_code", (int)status,
                                      "body", body ? body : json_null())
                          : json_null();
    json_t *o =
        json_pack("{s:s,s:s,s:o,s:o}", "id", id, "custom_id", l->custom_id,
                  "response", resp, "error", error ? error : json_null());
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!text || fprintf(r->partial, "%s\n", text) < 0) {
        free(text);
        r->io_error = true;
        return -1;
    }
    r->ck.partial_bytes += strlen(text) + 1;
    free(text);
    r->state[idx] = FINAL;
    r->final_count++;
    r->done_here++;
    if (error)
        r->ck.failed++;
    else
        r->ck.done++;
    json_t *u = json_object_get(body, "usage");
    uint64_t pt =
        (uint64_t)json_integer_value(json_object_get(u, "prompt_tokens"));
    uint64_t ct =
        (uint64_t)json_integer_value(json_object_get(u, "completion_tokens"));
    r->ck.prompt_tokens += pt;
    r->ck.completion_tokens += ct;
    struct batch_price pr;
    if (r->prices && batch_prices_find(r->prices, l->model, &pr))
        r->ck.spend_usd +=
            ((double)pt * pr.input + (double)ct * pr.output) / 1e6;
    return 0;
}

static void job_free(struct run *r, struct job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        r->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    curl_multi_remove_handle(r->multi, j->easy);
    curl_easy_cleanup(j->easy);
    curl_slist_free_all(j->hdrs);
    free(j->buf);
    free(j);
}

static bool retryable(long status)
{
    return status == 0 || status == 408 || status == 409 || status == 429 ||
           status >= 500;
}

static void finished(struct run *r, struct job *j, CURLcode cc)
{
    long status = 0;
    curl_off_t retry_after = 0;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(j->easy, CURLINFO_RETRY_AFTER, &retry_after);
    }
    r->inflight--;
    json_t *body = j->buf ? json_loads(j->buf, 0, NULL) : NULL;
    if (!body && j->len)
        body = json_stringn(j->buf, j->len);
    int a = r->attempts[j->idx];
    if (status >= 200 && status < 300) {
        record(r, j->idx, status, body, NULL);
    } else if (retryable(status) && a < r->o->max_attempts && !interrupted) {
        double d = fmin(30.0, 0.5 * pow(2, a - 1));
        d = d / 2 + d / 2 * ((double)rand() / RAND_MAX);
        if ((double)retry_after > d)
            d = (double)retry_after;
        r->state[j->idx] = WAITING;
        r->not_before[j->idx] = now_s() + d;
        r->waiting++;
    } else if (retryable(status) && interrupted) {
        r->state[j->idx] = PENDING; /* not final: sent again on resume */
        if (j->idx < r->cursor)
            r->cursor = j->idx;
    } else {
        char msg[300];
        const char *m = json_string_value(
            json_object_get(json_object_get(body, "error"), "message"));
        snprintf(msg, sizeof msg, "%s (status %ld, %d attempt%s)",
                 m                ? m
                 : cc != CURLE_OK ? curl_easy_strerror(cc)
                                  : "failed",
                 status, a, a == 1 ? "" : "s");
        record(r, j->idx, status, body,
               json_pack("{s:s,s:s}", "code",
                         status ? "request_failed" : "no_response", "message",
                         msg));
    }
    json_decref(body);
    job_free(r, j);
}

/* ---- sending ---- */

static bool paced(struct run *r, size_t idx, double now)
{
    const struct batch_in_line *l = &r->in.lines[idx];
    if (r->o->rpm > 0 && now < r->next_req)
        return false;
    uint64_t tok =
        l->input_tokens + (l->max_output ? l->max_output : r->o->assume_output);
    if (r->o->tpm > 0 && now < r->next_tok)
        return false;
    if (r->o->rpm > 0)
        r->next_req = fmax(r->next_req, now) + 60.0 / (double)r->o->rpm;
    if (r->o->tpm > 0)
        r->next_tok =
            fmax(r->next_tok, now) + 60.0 * (double)tok / (double)r->o->tpm;
    return true;
}

static int start(struct run *r, size_t idx)
{
    struct job *j = calloc(1, sizeof *j);
    const struct batch_in_line *l = &r->in.lines[idx];
    char url[4096];
    size_t bl = strlen(r->o->base_url);
    while (bl > 0 && r->o->base_url[bl - 1] == '/')
        bl--;
    snprintf(url, sizeof url, "%.*s%s", (int)bl, r->o->base_url, l->path);
    if (!j || !(j->easy = curl_easy_init())) {
        free(j);
        return -1;
    }
    j->idx = idx;
    j->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (r->o->api_key && r->o->api_key[0]) {
        char auth[1024];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->o->api_key);
        j->hdrs = curl_slist_append(j->hdrs, auth);
    }
    curl_easy_setopt(j->easy, CURLOPT_URL, url);
    curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->hdrs);
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, l->body);
    curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
    curl_easy_setopt(j->easy, CURLOPT_TIMEOUT, 600L);
    curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
    curl_multi_add_handle(r->multi, j->easy);
    j->next = r->jobs;
    if (r->jobs)
        r->jobs->prev = j;
    r->jobs = j;
    r->attempts[idx]++;
    r->state[idx] = RUNNING;
    r->inflight++;
    return 0;
}

/* The next line allowed to go now, or SIZE_MAX. */
static size_t next_line(struct run *r, double now)
{
    for (size_t i = 0; r->waiting > 0 && i < r->in.count; i++)
        if (r->state[i] == WAITING && r->not_before[i] <= now) {
            r->waiting--;
            return i;
        }
    while (r->cursor < r->in.count && r->state[r->cursor] != PENDING)
        r->cursor++;
    return r->cursor < r->in.count ? r->cursor : SIZE_MAX;
}

/* ---- checkpoints, resume, the final file ---- */

static int checkpoint(struct run *r)
{
    if (batch_ckpt_write(r->ckpt_path, r->partial, &r->ck) != 0) {
        fprintf(stderr, "sluice batch: cannot write %s\n", r->ckpt_path);
        return -1;
    }
    return 0;
}

/* Index of a result line ("id":"line-N"), or SIZE_MAX. */
static size_t result_index(json_t *o, size_t count)
{
    const char *id = json_string_value(json_object_get(o, "id"));
    if (!id || strncmp(id, "line-", 5) != 0)
        return SIZE_MAX;
    char *end;
    unsigned long long v = strtoull(id + 5, &end, 10);
    return *end == '\0' && v < count ? (size_t)v : SIZE_MAX;
}

static int resume(struct run *r)
{
    struct batch_ckpt ck;
    int rc = r->o->restart ? 1 : batch_ckpt_read(r->ckpt_path, &ck);
    if (rc < 0) {
        fprintf(stderr,
                "sluice batch: %s is unreadable (--restart starts "
                "over)\n",
                r->ckpt_path);
        return -1;
    }
    if (rc == 0 && ck.input_hash != r->in.hash) {
        fprintf(stderr,
                "sluice batch: %s belongs to another input file "
                "(--restart starts over)\n",
                r->ckpt_path);
        return -1;
    }
    if (rc == 1) {
        memset(&r->ck, 0, sizeof r->ck);
        r->ck.input_hash = r->in.hash;
        r->partial = fopen(r->partial_path, "w");
        return r->partial ? checkpoint(r) : -1;
    }
    /* Results past the checkpoint may be torn: cut them off. */
    if (truncate(r->partial_path, (off_t)ck.partial_bytes) != 0) {
        fprintf(stderr, "sluice batch: cannot truncate %s\n", r->partial_path);
        return -1;
    }
    r->ck = ck;
    FILE *f = fopen(r->partial_path, "r");
    char *buf = NULL;
    size_t cap = 0;
    while (f && getline(&buf, &cap, f) > 0) {
        json_t *o = json_loads(buf, 0, NULL);
        size_t i = result_index(o, r->in.count);
        if (i != SIZE_MAX && r->state[i] != FINAL) {
            r->state[i] = FINAL;
            r->final_count++;
        }
        json_decref(o);
    }
    free(buf);
    if (f)
        fclose(f);
    r->partial = fopen(r->partial_path, "a");
    fprintf(stderr, "sluice batch: resuming: %zu of %zu lines already done\n",
            r->final_count, r->in.count);
    return r->partial ? 0 : -1;
}

static int write_final(struct run *r)
{
    if (fflush(r->partial) != 0 || fsync(fileno(r->partial)) != 0)
        return -1;
    fclose(r->partial);
    r->partial = NULL;
    int rc = 0;
    if (r->o->order_finish) {
        rc = rename(r->partial_path, r->o->output);
    } else {
        char **rows = calloc(r->in.count, sizeof *rows);
        FILE *f = fopen(r->partial_path, "r");
        char *buf = NULL, tmp[4096];
        size_t cap = 0;
        ssize_t n;
        while (rows && f && (n = getline(&buf, &cap, f)) > 0) {
            json_t *o = json_loads(buf, 0, NULL);
            size_t i = result_index(o, r->in.count);
            json_decref(o);
            if (i != SIZE_MAX && !rows[i])
                rows[i] = strdup(buf);
        }
        free(buf);
        if (f)
            fclose(f);
        snprintf(tmp, sizeof tmp, "%s.tmp", r->o->output);
        FILE *out = rows ? fopen(tmp, "w") : NULL;
        for (size_t i = 0; out && i < r->in.count; i++)
            if (rows[i] && fputs(rows[i], out) < 0)
                rc = -1;
        if (!out || fflush(out) != 0 || fsync(fileno(out)) != 0)
            rc = -1;
        if (out && fclose(out) != 0)
            rc = -1;
        for (size_t i = 0; rows && i < r->in.count; i++)
            free(rows[i]);
        free(rows);
        if (rc == 0)
            rc = rename(tmp, r->o->output);
        if (rc == 0)
            unlink(r->partial_path);
    }
    if (rc == 0)
        unlink(r->ckpt_path);
    return rc;
}

/* ---- the loop ---- */

static void show(struct run *r, bool last)
{
    struct progress_view v = {
        .total = r->in.count,
        .done = r->final_count,
        .failed = r->ck.failed,
        .inflight = r->inflight,
        .elapsed_s = now_s() - r->started,
        .done_here = r->done_here,
        .spend_usd = r->ck.spend_usd,
    };
    progress_show(r->o->progress, &v, last);
}

static int run_all(struct run *r)
{
    double last_ckpt = now_s(), last_show = 0;
    int stopping_reported = 0;
    while (r->final_count < r->in.count || r->inflight > 0) {
        double now = now_s();
        if (interrupted >= 2)
            break; /* abandon what is in flight: resent on resume */
        if (r->io_error) {
            fprintf(stderr, "sluice batch: cannot write %s\n", r->partial_path);
            return -1;
        }
        if (!interrupted) {
            while (r->inflight < (size_t)r->o->concurrency) {
                size_t i = next_line(r, now);
                if (i == SIZE_MAX || !paced(r, i, now))
                    break;
                if (start(r, i) != 0)
                    return -1;
            }
        } else if (!stopping_reported) {
            stopping_reported = 1;
            fprintf(stderr,
                    "\nsluice batch: interrupted; waiting for %zu "
                    "requests in flight (^C again to leave them)\n",
                    r->inflight);
        }
        if (interrupted && r->inflight == 0)
            break;
        int running = 0;
        curl_multi_perform(r->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(r->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct job *j = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            finished(r, j, m->data.result);
        }
        now = now_s();
        if (now - last_ckpt >= 1.0) {
            if (checkpoint(r) != 0)
                return -1;
            last_ckpt = now;
        }
        if (now - last_show >= progress_interval(r->o->progress)) {
            show(r, false);
            last_show = now;
        }
        curl_multi_poll(r->multi, NULL, 0, 50, NULL);
    }
    show(r, true);
    return 0;
}

static int parse(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"output", required_argument, NULL, 'o'},
        {"base-url", required_argument, NULL, 'b'},
        {"api-key", required_argument, NULL, 'k'},
        {"concurrency", required_argument, NULL, 'c'},
        {"rpm", required_argument, NULL, 'r'},
        {"tpm", required_argument, NULL, 't'},
        {"max-attempts", required_argument, NULL, 'a'},
        {"order", required_argument, NULL, 'O'},
        {"prices", required_argument, NULL, 'p'},
        {"assume-output", required_argument, NULL, 'A'},
        {"dry-run", no_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"restart", no_argument, NULL, 'R'},
        {"progress", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *env_url = getenv("OPENAI_BASE_URL");
    *o = (struct opts){
        .base_url =
            env_url && env_url[0] ? env_url : "http://127.0.0.1:8080/v1",
        .api_key = getenv("OPENAI_API_KEY"),
        .concurrency = 8,
        .max_attempts = 4,
        .progress = isatty(2) ? PROGRESS_BAR : PROGRESS_PLAIN,
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", longs, NULL)) != -1) {
        switch (c) {
        case 'o':
            o->output = optarg;
            break;
        case 'b':
            o->base_url = optarg;
            break;
        case 'k':
            o->api_key = optarg;
            break;
        case 'c':
            o->concurrency = atol(optarg);
            break;
        case 'r':
            o->rpm = atol(optarg);
            break;
        case 't':
            o->tpm = atol(optarg);
            break;
        case 'a':
            o->max_attempts = atol(optarg);
            break;
        case 'p':
            o->prices = optarg;
            break;
        case 'A':
            o->assume_output = strtoull(optarg, NULL, 10);
            break;
        case 'd':
            o->dry_run = true;
            break;
        case 'j':
            o->json = true;
            break;
        case 'R':
            o->restart = true;
            break;
        case 'O':
            if (strcmp(optarg, "finish") != 0 && strcmp(optarg, "input") != 0)
                return -1;
            o->order_finish = strcmp(optarg, "finish") == 0;
            break;
        case 'P':
            if (progress_mode_parse(optarg, &o->progress) != 0)
                return -1;
            break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (optind != argc - 1 || o->concurrency < 1 || o->concurrency > 4096 ||
        o->rpm < 0 || o->tpm < 0 || o->max_attempts < 1 ||
        (!o->dry_run && !o->output))
        return -1;
    o->input = argv[optind];
    return 0;
}

int batch_client_main(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o) != 0) {
        fputs(usage, stderr);
        return 2;
    }
    char err[512];
    struct run r = {.o = &o};
    if (batch_input_load(o.input, &r.in, err, sizeof err) != 0) {
        fprintf(stderr, "sluice batch: %s\n", err);
        return 1;
    }
    r.prices = batch_prices_load(o.prices, err, sizeof err);
    if (!r.prices && o.prices) {
        fprintf(stderr, "sluice batch: %s\n", err);
        batch_input_free(&r.in);
        return 1;
    }
    if (o.dry_run) {
        int rc = batch_dry_run(&r.in, r.prices, o.assume_output, o.json);
        batch_prices_free(r.prices);
        batch_input_free(&r.in);
        return rc;
    }
    snprintf(r.partial_path, sizeof r.partial_path, "%s.partial", o.output);
    snprintf(r.ckpt_path, sizeof r.ckpt_path, "%s.checkpoint", o.output);
    r.state = calloc(r.in.count, 1);
    r.attempts = calloc(r.in.count, sizeof *r.attempts);
    r.not_before = calloc(r.in.count, sizeof *r.not_before);
    int rc = 1;
    /* Before the first checkpoint exists, so ^C always leaves a pair. */
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (r.state && r.attempts && r.not_before && resume(&r) == 0 &&
        curl_global_init(CURL_GLOBAL_DEFAULT) == 0) {
        r.multi = curl_multi_init();
        r.started = now_s();
        if (r.multi && run_all(&r) == 0) {
            if (r.final_count == r.in.count) {
                rc = write_final(&r) == 0 ? 0 : 1;
                if (rc == 0)
                    fprintf(stderr,
                            "sluice batch: %zu lines: %llu ok, %llu failed; "
                            "%llu+%llu tokens; $%.6f; results in %s\n",
                            r.in.count, (unsigned long long)r.ck.done,
                            (unsigned long long)r.ck.failed,
                            (unsigned long long)r.ck.prompt_tokens,
                            (unsigned long long)r.ck.completion_tokens,
                            r.ck.spend_usd, o.output);
            } else {
                checkpoint(&r);
                fprintf(stderr,
                        "sluice batch: stopped with %zu of %zu lines done; "
                        "run the same command to resume\n",
                        r.final_count, r.in.count);
                rc = 130;
            }
        }
        /* Requests still out (a second ^C) are dropped: not recorded. */
        while (r.jobs)
            job_free(&r, r.jobs);
        if (r.multi)
            curl_multi_cleanup(r.multi);
        curl_global_cleanup();
    }
    if (r.partial)
        fclose(r.partial);
    free(r.state);
    free(r.attempts);
    free(r.not_before);
    batch_prices_free(r.prices);
    batch_input_free(&r.in);
    return rc;
}
