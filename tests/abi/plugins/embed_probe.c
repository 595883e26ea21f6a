/* embed_probe: a test plugin for host->call_upstream (SDK 1.1). In
 * on_request it asks the upstream named in its config for an embedding of
 * the request's model name, suspends until the answer arrives, then
 * resumes and shows what came back as response headers:
 *
 *   x-embed-status   HTTP status of the call (0: none)
 *   x-embed-outcome  enum sluice_outcome as a number
 *   x-embed-dims     numbers in the first "embedding" array
 *   x-embed-error    call_upstream's return code when it refused
 *
 * The client steers the call through the mock: "x-probe-hang: 1" makes the
 * embeddings call hang (the client then gives up, which must cancel it),
 * "x-probe-status: N" makes it fail with N, "x-probe-cancel: 1" makes the
 * plugin cancel its own call at once (x-embed-cancel: the two return codes
 * of cancelling it twice). Config "inputs"/"dimensions" size the answer.
 * on_cleanup counts every request and whether the call was still open when its
 * state went away, which must never happen. On a 1.0 host it degrades:
 * "x-embed-error: 1.0".
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/host.h>
#include <sluice/plugin.h>

struct embed_config {
    const char *upstream;
    int64_t inputs;
    int64_t dimensions;
};

static const struct sluice_cfg_field embed_keys[] = {
    {
        .name = "upstream",
        .type = SLUICE_CFG_STRING,
        .default_value = "\"mock\"",
        .offset = offsetof(struct embed_config, upstream),
        .help = "upstream asked for the embedding",
    },
    {
        .name = "inputs",
        .type = SLUICE_CFG_INT,
        .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
        .min = 1,
        .max = 2048,
        .default_value = "1",
        .offset = offsetof(struct embed_config, inputs),
        .help = "copies of the input (a big answer tests the size limit)",
    },
    {
        .name = "dimensions",
        .type = SLUICE_CFG_INT,
        .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
        .min = 1,
        .max = 3072,
        .default_value = "256",
        .offset = offsetof(struct embed_config, dimensions),
        .help = "dimensions asked for",
    },
    {0},
};

struct embed {
    const struct sluice_host *host;
    const char *upstream;
    int64_t inputs, dimensions;
    struct sluice_metric *started, *finished, *cancelled, *cleanups,
        *cleanup_open;
};

struct embed_state {
    struct embed *p;
    bool started, finished;
    sluice_wake_t ticket;
    int status;
    enum sluice_outcome outcome;
    size_t dims;
};

static int embed_create(const struct sluice_host *h, const void *config,
                        struct sluice_str raw_json, void **self,
                        struct sluice_error *err)
{
    const struct embed_config *cfg = config;
    struct embed *p = calloc(1, sizeof *p);
    (void)raw_json;
    (void)err;
    if (!p)
        return SLUICE_ENOMEM;
    p->host = h;
    p->upstream = cfg->upstream;
    p->inputs = cfg->inputs;
    p->dimensions = cfg->dimensions;
    p->started = h->counter(h, "sluice_embed_probe_calls_total",
                            "Embedding calls started.");
    p->finished = h->counter(h, "sluice_embed_probe_answers_total",
                             "Embedding calls that completed.");
    p->cancelled = h->counter(h, "sluice_embed_probe_cancelled_total",
                              "Embedding calls cancelled by the core.");
    p->cleanups =
        h->counter(h, "sluice_embed_probe_cleanups_total", "on_cleanup calls.");
    p->cleanup_open = h->counter(h, "sluice_embed_probe_cleanup_open_total",
                                 "on_cleanup calls with the call still open.");
    *self = p;
    return SLUICE_OK;
}

static void embed_destroy(void *self)
{
    free(self);
}

/* Numbers in the first "embedding":[...] of the answer. */
static size_t count_dims(struct sluice_str body)
{
    static const char key[] = "\"embedding\":[";
    if (!body.ptr)
        return 0;
    const char *end = body.ptr + body.len;
    const char *p = body.ptr;
    for (; p + sizeof key - 1 <= end; p++)
        if (memcmp(p, key, sizeof key - 1) == 0)
            break;
    if (p + sizeof key - 1 > end)
        return 0;
    p += sizeof key - 1;
    size_t n = 0;
    bool in_number = false;
    for (; p < end && *p != ']'; p++) {
        bool part = *p != ',' && *p != ' ';
        if (part && !in_number)
            n++;
        in_number = part;
    }
    return n;
}

static void on_answer(void *arg, const struct sluice_call_result *res)
{
    struct embed_state *st = arg;
    struct embed *p = st->p;
    const struct sluice_host *h = p->host;
    st->finished = true;
    st->status = res->status;
    st->outcome = res->outcome;
    st->dims = count_dims(res->body);
    if (res->outcome == SLUICE_OUTCOME_CLIENT_GONE) {
        h->counter_add(p->cancelled, 1); /* the request is ending */
        return;
    }
    h->counter_add(p->finished, 1);
    h->wake(h, st->ticket);
}

static void add_number(const struct sluice_host *h, struct sluice_req *r,
                       const char *name, long long v)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", v);
    h->resp_add_header(r, name, (struct sluice_str){buf, (size_t)n});
}

static enum sluice_action start_call(struct embed *p, struct sluice_req *r,
                                     struct embed_state *st)
{
    const struct sluice_host *h = p->host;
    if (!SLUICE_HOST_HAS(h, call_upstream)) {
        h->resp_add_header(r, "x-embed-error", (struct sluice_str){"1.0", 3});
        return SLUICE_CONTINUE;
    }
    char hang[64], status[64];
    struct sluice_str model = h->req_model(r);
    int mlen = (int)(model.len > 100 ? 100 : model.len);
    size_t cap = 128 + (size_t)p->inputs * (size_t)(mlen + 3);
    char *body = h->req_alloc(r, cap);
    if (!body)
        return h->reject(r, 500, "api_error", NULL, "out of memory", 0);
    size_t n = (size_t)snprintf(
        body, cap,
        "{\"model\":\"text-embedding-3-small\",\"dimensions\":%lld,"
        "\"input\":[",
        (long long)p->dimensions);
    for (int64_t i = 0; i < p->inputs; i++)
        n += (size_t)snprintf(body + n, cap - n, "%s\"%.*s\"", i ? "," : "",
                              mlen, model.ptr ? model.ptr : "");
    n += (size_t)snprintf(body + n, cap - n, "]}");
    const char *headers[3];
    size_t nh = 0;
    struct sluice_str v = h->req_header(r, "x-probe-hang");
    if (v.len) {
        snprintf(hang, sizeof hang, "x-mock-hang: %.*s", (int)v.len, v.ptr);
        headers[nh++] = hang;
    }
    v = h->req_header(r, "x-probe-status");
    if (v.len) {
        snprintf(status, sizeof status, "x-mock-status: %.*s",
                 (int)(v.len > 8 ? 8 : v.len), v.ptr);
        headers[nh++] = status;
    }
    headers[nh] = NULL;
    st->p = p;
    st->ticket = h->wake_token(r);
    sluice_call_t call;
    int rc = h->call_upstream(h, r, p->upstream, "/v1/embeddings",
                              (struct sluice_str){body, n}, headers, on_answer,
                              st, &call);
    if (rc != SLUICE_OK) {
        add_number(h, r, "x-embed-error", rc);
        return SLUICE_CONTINUE;
    }
    if (h->req_header(r, "x-probe-cancel").len) {
        /* Changed our mind: the callback must never run, a second cancel
         * finds nothing. */
        char codes[32];
        int first = h->call_cancel(h, call);
        int again = h->call_cancel(h, call);
        int len = snprintf(codes, sizeof codes, "%d,%d", first, again);
        h->resp_add_header(r, "x-embed-cancel",
                           (struct sluice_str){codes, (size_t)len});
        return SLUICE_CONTINUE;
    }
    st->started = true;
    h->counter_add(p->started, 1);
    return SLUICE_SUSPEND;
}

static enum sluice_action embed_on_request(void *self, struct sluice_req *r,
                                           void *state)
{
    struct embed *p = self;
    struct embed_state *st = state;
    const struct sluice_host *h = p->host;
    if (!st->started)
        return start_call(p, r, st);
    if (!st->finished)
        return SLUICE_SUSPEND; /* a spurious wake: keep waiting */
    add_number(h, r, "x-embed-status", st->status);
    add_number(h, r, "x-embed-outcome", st->outcome);
    add_number(h, r, "x-embed-dims", (long long)st->dims);
    return SLUICE_CONTINUE;
}

static void embed_on_cleanup(void *self, struct sluice_req *r, void *state)
{
    struct embed *p = self;
    struct embed_state *st = state;
    (void)r;
    p->host->counter_add(p->cleanups, 1);
    if (st && st->started && !st->finished)
        p->host->counter_add(p->cleanup_open, 1);
}

static const struct sluice_plugin embed_probe = {
    SLUICE_PLUGIN_HEADER,
    .name = "embed_probe",
    .version = "1.1.0",
    .summary = "test: an embeddings call while the request is suspended",
    .config = embed_keys,
    .config_size = sizeof(struct embed_config),
    .req_state_size = sizeof(struct embed_state),
    .create = embed_create,
    .destroy = embed_destroy,
    .on_request = embed_on_request,
    .on_cleanup = embed_on_cleanup,
};

SLUICE_PLUGIN_EXPORT(embed_probe)
