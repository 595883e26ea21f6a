/* route_probe: a test plugin for the SDK 1.1 routes, multipart uploads and
 * self-submitted requests, driven by tests/integration/test_plugin_routes.py.
 *
 *   POST /v1/files        multipart upload (purpose + file): answers what
 *                         it read, the caller's identity and the JSONL's
 *                         line count; 400 with the parser's sentence when
 *                         the form is malformed
 *   GET  /v1/files/       suspends once (5 ms), then answers the method,
 *                         path and query it saw
 *   POST /probe/self?n=N&tenant=T
 *                         submits the request body to /v1/chat/completions
 *                         N times, one after the other (the next from the
 *                         previous one's callback), at batch priority as
 *                         tenant T, waits, and answers each status,
 *                         request id, Retry-After and body
 *
 * Config: "extra_route": "METHOD /path" registers one more route (answered
 * like GET /v1/files/), to provoke route conflicts.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/host.h>
#include <sluice/plugin.h>

#define MAX_SELF 8

struct probe_config {
    const char *extra_route;
};

static const struct sluice_cfg_field probe_keys[] = {
    {
        .name = "extra_route",
        .type = SLUICE_CFG_STRING,
        .offset = offsetof(struct probe_config, extra_route),
        .help = "\"METHOD /path\": one more route",
    },
    {0},
};

struct probe {
    const struct sluice_host *host;
};

/* One POST /probe/self: the self-submitted requests and their results.
 * Owned by the callbacks until the last one, then by the route request. */
struct self_job {
    const struct sluice_host *host;
    sluice_wake_t ticket;
    char body[2048];
    size_t body_len;
    char tenant[64];
    char key_copy[64];
    int n, submitted, finished;
    struct {
        int status;
        uint64_t retry_after_ms;
        char id[40];
        char body[600];
    } res[MAX_SELF];
};

struct req_state {
    bool waited; /* GET /v1/files/: suspended once already */
    struct self_job *job;
};

/* ---- JSON output by hand (the plugin only includes the SDK) ---- */

struct out {
    char buf[8192];
    size_t at;
};

static void put(struct out *o, const char *s, size_t len)
{
    if (o->at + len < sizeof o->buf) {
        memcpy(o->buf + o->at, s, len);
        o->at += len;
    }
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_str(struct out *o, struct sluice_str s)
{
    put(o, "\"", 1);
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(o, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(o, esc, 6);
        } else {
            put(o, (const char *)&c, 1);
        }
    }
    put(o, "\"", 1);
}

static struct sluice_str str(const char *s)
{
    struct sluice_str v = {s, s ? strlen(s) : 0};
    return v;
}

static void put_num(struct out *o, unsigned long long v)
{
    char n[24];
    put(o, n, (size_t)snprintf(n, sizeof n, "%llu", v));
}

static enum sluice_action answer(const struct sluice_host *h,
                                 struct sluice_req *r, int status,
                                 struct out *o)
{
    struct sluice_str body = {o->buf, o->at};
    return h->respond(r, status, "application/json", body);
}

/* ---- POST /v1/files ---- */

static bool is(struct sluice_str s, const char *word)
{
    return s.len == strlen(word) && memcmp(s.ptr, word, s.len) == 0;
}

static enum sluice_action upload(void *arg, struct sluice_req *r, void *state)
{
    const struct probe *p = arg;
    const struct sluice_host *h = p->host;
    struct sluice_form_part parts[4];
    size_t n = 0;
    const char *error = NULL;
    (void)state;
    int rc = h->multipart_parse(h, h->req_header(r, "content-type"),
                                h->req_body(r), parts, 4, &n, &error);
    if (rc != SLUICE_OK)
        return h->reject(r, 400, "invalid_request_error",
                         rc == SLUICE_ETOOBIG ? "too_many_parts"
                                              : "invalid_multipart",
                         error, 0);
    const struct sluice_form_part *purpose = NULL, *file = NULL;
    for (size_t i = 0; i < n; i++) {
        if (is(parts[i].name, "purpose"))
            purpose = &parts[i];
        else if (is(parts[i].name, "file"))
            file = &parts[i];
    }
    if (!purpose || !file)
        return h->reject(r, 400, "invalid_request_error", NULL,
                         "the form needs 'purpose' and 'file'", 0);
    size_t lines = 0;
    for (size_t i = 0; i < file->data.len; i++)
        lines += file->data.ptr[i] == '\n';
    if (file->data.len && file->data.ptr[file->data.len - 1] != '\n')
        lines++;
    struct out o = {.at = 0};
    puts_(&o, "{\"object\":\"file\",\"purpose\":");
    put_str(&o, purpose->data);
    puts_(&o, ",\"filename\":");
    put_str(&o, file->filename);
    puts_(&o, ",\"content_type\":");
    put_str(&o, file->content_type);
    puts_(&o, ",\"bytes\":");
    put_num(&o, file->data.len);
    puts_(&o, ",\"lines\":");
    put_num(&o, lines);
    puts_(&o, ",\"tenant\":");
    put_str(&o, h->req_identity(r, SLUICE_ID_TENANT));
    puts_(&o, ",\"key\":");
    put_str(&o, h->req_identity(r, SLUICE_ID_KEY));
    puts_(&o, "}");
    return answer(h, r, 200, &o);
}

/* ---- GET /v1/files/ (and extra_route): answered after a suspension ---- */

static enum sluice_action echo_later(void *arg, struct sluice_req *r,
                                     void *state)
{
    const struct probe *p = arg;
    const struct sluice_host *h = p->host;
    struct req_state *st = state;
    if (!st->waited) {
        st->waited = true;
        h->resume_after(r, 5);
        return SLUICE_SUSPEND;
    }
    struct out o = {.at = 0};
    puts_(&o, "{\"method\":");
    put_str(&o, h->req_method(r));
    puts_(&o, ",\"path\":");
    put_str(&o, h->req_endpoint(r));
    puts_(&o, ",\"query\":");
    put_str(&o, h->req_query(r));
    puts_(&o, ",\"resumed\":");
    puts_(&o, h->req_resumed(r) ? "true" : "false");
    puts_(&o, "}");
    return answer(h, r, 200, &o);
}

/* ---- POST /probe/self ---- */

/* Value of `name` in a query string "a=1&b=2" (no decoding needed here). */
static struct sluice_str query_param(struct sluice_str q, const char *name)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < q.len;) {
        size_t end = i;
        while (end < q.len && q.ptr[end] != '&')
            end++;
        if (end - i > nlen && memcmp(q.ptr + i, name, nlen) == 0 &&
            q.ptr[i + nlen] == '=') {
            struct sluice_str v = {q.ptr + i + nlen + 1, end - i - nlen - 1};
            return v;
        }
        i = end + 1;
    }
    struct sluice_str none = {NULL, 0};
    return none;
}

static void self_done(void *arg, const struct sluice_self_result *res);

static int submit_next(struct self_job *job)
{
    const struct sluice_host *h = job->host;
    struct sluice_self_request req = {
        .endpoint = "/v1/chat/completions",
        .body = {job->body, job->body_len},
        .priority = SLUICE_PRIO_BATCH,
    };
    char id[40];
    snprintf(id, sizeof id, "probe-self-%d", job->submitted);
    req.identity[SLUICE_ID_TENANT] = str(job->tenant);
    req.identity[SLUICE_ID_USER] = str("probe-user");
    req.identity[SLUICE_ID_KEY] = str(job->key_copy);
    req.request_id = str(id);
    int rc = h->self_submit(h, &req, self_done, job);
    if (rc == SLUICE_OK)
        job->submitted++;
    return rc;
}

static void self_done(void *arg, const struct sluice_self_result *res)
{
    struct self_job *job = arg;
    int i = job->finished++;
    job->res[i].status = res->status;
    job->res[i].retry_after_ms = res->retry_after_ms;
    snprintf(job->res[i].id, sizeof job->res[i].id, "%.*s",
             (int)res->request_id.len, res->request_id.ptr);
    snprintf(job->res[i].body, sizeof job->res[i].body, "%.*s",
             (int)res->body.len, res->body.ptr ? res->body.ptr : "");
    if (job->submitted < job->n && submit_next(job) == SLUICE_OK)
        return;
    job->host->wake(job->host, job->ticket);
}

static enum sluice_action self_route(void *arg, struct sluice_req *r,
                                     void *state)
{
    const struct probe *p = arg;
    const struct sluice_host *h = p->host;
    struct req_state *st = state;
    struct self_job *job = st->job;

    if (!job) {
        struct sluice_str q = h->req_query(r);
        struct sluice_str n = query_param(q, "n");
        struct sluice_str tenant = query_param(q, "tenant");
        struct sluice_str body = h->req_body(r);
        int count = n.len == 1 ? n.ptr[0] - '0' : 0;
        if (count < 1 || count > MAX_SELF || body.len >= sizeof job->body)
            return h->reject(r, 400, "invalid_request_error", NULL,
                             "need ?n=1..8 and a body under 2 KiB", 0);
        job = calloc(1, sizeof *job);
        if (!job)
            return h->reject(r, 503, "api_error", NULL, "out of memory", 0);
        job->host = h;
        job->n = count;
        memcpy(job->body, body.ptr, body.len);
        job->body_len = body.len;
        snprintf(job->tenant, sizeof job->tenant, "%.*s", (int)tenant.len,
                 tenant.ptr ? tenant.ptr : "");
        struct sluice_str key = h->req_identity(r, SLUICE_ID_KEY);
        snprintf(job->key_copy, sizeof job->key_copy, "%.*s", (int)key.len,
                 key.ptr ? key.ptr : "");
        job->ticket = h->wake_token(r);
        int rc = submit_next(job);
        if (rc != SLUICE_OK) {
            free(job);
            return h->reject(r, 500, "api_error", NULL,
                             "self_submit refused the request", 0);
        }
        st->job = job;
        return SLUICE_SUSPEND;
    }
    if (job->finished < job->submitted)
        return SLUICE_SUSPEND; /* spurious wake: not all answers are in */
    struct out o = {.at = 0};
    puts_(&o, "{\"results\":[");
    for (int i = 0; i < job->finished; i++) {
        puts_(&o, i ? ",{\"status\":" : "{\"status\":");
        put_num(&o, (unsigned long long)job->res[i].status);
        puts_(&o, ",\"id\":");
        put_str(&o, str(job->res[i].id));
        puts_(&o, ",\"retry_after_ms\":");
        put_num(&o, job->res[i].retry_after_ms);
        puts_(&o, ",\"body\":");
        put_str(&o, str(job->res[i].body));
        puts_(&o, "}");
    }
    puts_(&o, "]}");
    free(job);
    st->job = NULL;
    return answer(h, r, 200, &o);
}

/* ---- lifecycle ---- */

static int probe_create(const struct sluice_host *h, const void *config,
                        struct sluice_str raw_json, void **self,
                        struct sluice_error *err)
{
    const struct probe_config *cfg = config;
    (void)raw_json;
    if (!SLUICE_HOST_HAS(h, route_add) || !SLUICE_HOST_HAS(h, self_submit)) {
        snprintf(err->message, sizeof err->message,
                 "needs a host with routes and self_submit (SDK 1.1)");
        return SLUICE_EINVAL;
    }
    struct probe *p = calloc(1, sizeof *p);
    if (!p)
        return SLUICE_ENOMEM;
    p->host = h;
    int rc = h->route_add(h, "POST", "/v1/files", upload, p);
    if (rc == SLUICE_OK)
        rc = h->route_add(h, "GET", "/v1/files/", echo_later, p);
    if (rc == SLUICE_OK)
        rc = h->route_add(h, "POST", "/probe/self", self_route, p);
    if (rc == SLUICE_OK && cfg->extra_route && cfg->extra_route[0]) {
        char method[16];
        const char *sp = strchr(cfg->extra_route, ' ');
        size_t mlen = sp ? (size_t)(sp - cfg->extra_route) : 0;
        if (!sp || mlen >= sizeof method) {
            rc = SLUICE_EINVAL;
        } else {
            memcpy(method, cfg->extra_route, mlen);
            method[mlen] = '\0';
            rc = h->route_add(h, method, sp + 1, echo_later, p);
        }
    }
    if (rc != SLUICE_OK) {
        snprintf(err->message, sizeof err->message,
                 "route_add refused a route (%d)", rc);
        free(p);
        return rc;
    }
    *self = p;
    return SLUICE_OK;
}

static void probe_destroy(void *self)
{
    free(self);
}

static const struct sluice_plugin route_probe = {
    SLUICE_PLUGIN_HEADER,
    .name = "route_probe",
    .version = "1.0.0",
    .summary = "test plugin: routes, multipart uploads, self requests",
    .config = probe_keys,
    .config_size = sizeof(struct probe_config),
    .req_state_size = sizeof(struct req_state),
    .create = probe_create,
    .destroy = probe_destroy,
};

SLUICE_PLUGIN_EXPORT(route_probe)
