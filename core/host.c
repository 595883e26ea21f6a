/* The host table: what plugins may see and do, implemented over the core's
 * request object. Each instance gets its own copy, so log lines and metric
 * labels carry the instance name without the plugin passing it. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>

#include "config/config.h"
#include "health.h"
#include "host_metrics.h"
#include "host_rules.h"
#include "host_services.h"
#include "host_streams.h"
#include "http/http_server.h"
#include "log.h"
#include "pipeline.h"
#include "plugin_routes.h"
#include "request.h"
#include "respond.h"
#include "runtime.h"
#include "self_request.h"
#include "worker.h"

static struct instance *INST(const struct sluice_host *h)
{
    return ((const struct instance_host *)h)->inst;
}

static struct sluice_str S(const char *p, size_t len) {
    struct sluice_str s = {len ? p : NULL, len};
    return s;
}

static struct sluice_str
SZ(const char *p) {
    return S(p, p ? strlen(p) : 0);
}

/* ---- time, randomness, logs ---- */

static uint64_t
h_now_ns(const struct sluice_host *h)
{
    (void)h;
    return worker_now_ns();
}

static int64_t h_wall_ms(const struct sluice_host *h)
{
    struct timespec ts;
    (void)h;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t h_random(const struct sluice_host *h)
{
    static _Thread_local uint64_t state;
    struct worker *w = worker_current();
    uint64_t *s = w ? &w->rng : &state;
    (void)h;
    if (*s == 0)
        *s = worker_now_ns() | 1;
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void h_log(const struct sluice_host *h, enum sluice_log_level level,
                  const char *fmt, ...)
{
    char component[80];
    va_list ap;
    snprintf(component, sizeof component, "plugin:%s", INST(h)->name);
    va_start(ap, fmt);
    log_vmsg((enum log_level)level, component, fmt, ap);
    va_end(ap);
}

/* ---- metrics: every plugin metric carries instance="NAME" ---- */

static void instance_label(const struct sluice_host *h, char *buf, size_t cap)
{
    snprintf(buf, cap, "instance=\"%s\"", INST(h)->name);
}

static struct sluice_metric *h_counter(const struct sluice_host *h,
                                       const char *name, const char *help)
{
    char labels[96];
    instance_label(h, labels, sizeof labels);
    return (struct sluice_metric *)metrics_counter(g_runtime.metrics, name,
                                                   help, labels);
}

static struct sluice_metric *h_gauge(const struct sluice_host *h,
                                     const char *name, const char *help)
{
    char labels[96];
    instance_label(h, labels, sizeof labels);
    return (struct sluice_metric *)metrics_gauge(g_runtime.metrics, name, help,
                                                 labels);
}

static struct sluice_metric *h_histogram(const struct sluice_host *h,
                                         const char *name, const char *help,
                                         const double *bounds, size_t n)
{
    char labels[96];
    instance_label(h, labels, sizeof labels);
    return (struct sluice_metric *)metrics_histogram(g_runtime.metrics, name,
                                                     help, labels, bounds, n);
}

static void h_counter_add(struct sluice_metric *m, uint64_t v)
{
    if (m)
        metric_add((struct metric *)m, v);
}

static void h_gauge_set(struct sluice_metric *m, double v)
{
    if (m)
        metric_set((struct metric *)m, v);
}

static void h_observe(struct sluice_metric *m, double v)
{
    if (m)
        metric_observe((struct metric *)m, v);
}

static void h_health_set(const struct sluice_host *h, const char *name,
                         double value)
{
    (void)h;
    health_set(name, value);
}

/* ---- request reads ---- */

static struct sluice_str r_id(const struct sluice_req *r)
{
    return SZ(r->id);
}

static struct sluice_str r_endpoint(const struct sluice_req *r)
{
    return SZ(r->endpoint);
}

static struct sluice_str r_header(const struct sluice_req *r, const char *name)
{
    size_t len = 0;
    /* The client's key is a secret: plugins get its hash (req_identity). */
    if (!host_rule_header_readable(name))
        return S(NULL, 0);
    const char *v = r->ex ? http_header(r->ex, name, &len) : NULL;
    return S(v, v ? len : 0);
}

static struct sluice_str r_identity(const struct sluice_req *r,
                                    enum sluice_identity which)
{
    if ((unsigned)which > SLUICE_ID_KEY)
        return S(NULL, 0);
    return SZ(r->identity[which]);
}

static struct sluice_str r_model(const struct sluice_req *r)
{
    return S(r->api.model, r->api.model_len);
}

static bool r_stream(const struct sluice_req *r)
{
    return r->api.stream;
}

static struct sluice_str r_body(const struct sluice_req *r)
{
    return S(r->body, r->body_len);
}

static const void *r_json(const struct sluice_req *r)
{
    /* const in the SDK's signature; the tree is a cache the request owns */
    return request_json((struct sluice_req *)r);
}

static uint64_t r_input_tokens(const struct sluice_req *r)
{
    /* const in the SDK's signature; the count is a cache the request owns */
    return request_input_tokens((struct sluice_req *)r);
}

static uint64_t r_max_tokens(const struct sluice_req *r)
{
    return r->api.max_tokens;
}

static enum sluice_priority r_priority(const struct sluice_req *r)
{
    return r->priority;
}

static struct sluice_str r_upstream(const struct sluice_req *r)
{
    return r->upstream ? SZ(r->upstream->name) : S(NULL, 0);
}

static struct sluice_str r_target_model(const struct sluice_req *r)
{
    size_t len;
    const char *m = request_target_model(r, &len);
    return S(m, len);
}

/* ---- routing (request phase only) ---- */

static bool in_request_phase(const struct sluice_req *r)
{
    return r->phase == PHASE_REQUEST;
}

static int set_model(struct sluice_req *r, struct sluice_str model)
{
    if (!in_request_phase(r))
        return host_rule_routing(false);
    if (host_rule_model(model))
        return SLUICE_EINVAL;
    r->target_model = arena_strndup(&r->arena, model.ptr, model.len);
    r->body_dirty = true;
    return r->target_model ? SLUICE_OK : SLUICE_ENOMEM;
}

static int set_upstream(struct sluice_req *r, struct sluice_str name)
{
    if (!in_request_phase(r))
        return SLUICE_EPHASE;
    const struct upstream_config *u =
        config_upstream(r->gen->cfg, name.ptr, name.len);
    if (!u)
        return SLUICE_ENOENT;
    r->upstream = u;
    return SLUICE_OK;
}

static int set_max_tokens(struct sluice_req *r, uint64_t max_tokens)
{
    if (!in_request_phase(r))
        return SLUICE_EPHASE;
    if (max_tokens == 0)
        return SLUICE_EINVAL;
    r->api.max_tokens = max_tokens;
    r->max_tokens_set = true;
    r->body_dirty = true;
    return SLUICE_OK;
}

static int set_upstream_header(struct sluice_req *r, const char *name,
                               struct sluice_str value)
{
    if (!in_request_phase(r))
        return SLUICE_EPHASE;
    /* The provider key is the core's business; never let a header
     * injection replace or leak it. */
    if (host_rule_upstream_header(name, value))
        return SLUICE_EINVAL;
    return kv_set(r, &r->upstream_headers, name, value.ptr, value.len);
}

static int set_priority(struct sluice_req *r, enum sluice_priority p)
{
    if (!in_request_phase(r))
        return SLUICE_EPHASE;
    if (host_rule_priority(p))
        return SLUICE_EINVAL;
    r->priority = p;
    return SLUICE_OK;
}

/* ---- the upstream's answer ---- */

static int resp_status(const struct sluice_req *r)
{
    return r->resp_status;
}

static struct sluice_str resp_header(const struct sluice_req *r,
                                     const char *name)
{
    size_t len = 0;
    const char *v = request_resp_header(r, name, &len);
    return S(v, v ? len : 0);
}

static struct sluice_usage resp_usage(const struct sluice_req *r)
{
    return r->usage;
}

static struct sluice_str resp_body(const struct sluice_req *r)
{
    if (!r->resp_body || r->stream_to_client)
        return S(NULL, 0);
    size_t len = evbuffer_get_length(r->resp_body);
    const char *p =
        (const char *)evbuffer_pullup(((struct sluice_req *)r)->resp_body, -1);
    return S(p, len);
}

static enum sluice_outcome resp_outcome(const struct sluice_req *r)
{
    return r->outcome;
}

static size_t attempt_count(const struct sluice_req *r)
{
    return r->attempt_count;
}

static bool attempt_at(const struct sluice_req *r, size_t i,
                       struct sluice_attempt *out)
{
    memset(out, 0, sizeof *out);
    if (i >= r->attempt_count)
        return false;
    const struct attempt_record *a = &r->attempts[i];
    out->upstream = SZ(a->upstream ? a->upstream->name : NULL);
    out->model = SZ(a->model);
    out->status = a->status;
    out->outcome = a->outcome;
    out->duration_ns =
        a->ended_ns > a->started_ns ? a->ended_ns - a->started_ns : 0;
    return true;
}

static int resp_add_header(struct sluice_req *r, const char *name,
                           struct sluice_str value)
{
    static atomic_bool warned;
    if (r->client_headers_sent) {
        /* A plugin that ignores the code would lose the header silently
         * (on_response of a stream): say it once. */
        if (!atomic_exchange(&warned, true))
            log_msg(LOG_WARN, "plugin",
                    "%s: header '%.64s' added after the response headers "
                    "were sent (SLUICE_EPHASE); on streams add headers in "
                    "on_upstream_response",
                    r->id, name);
        return SLUICE_EPHASE;
    }
    if (host_rule_client_header(name, value))
        return SLUICE_EINVAL;
    return kv_set(r, &r->client_headers, name, value.ptr, value.len);
}

/* ---- answering ---- */

static enum sluice_action do_reject(struct sluice_req *r, int status,
                                    const char *type, const char *code,
                                    const char *message, uint64_t retry_ms)
{
    status = host_rule_reject_status(status);
    respond_set_error(r, status, type, code, message, NULL, retry_ms);
    return SLUICE_RESPOND;
}

static enum sluice_action do_respond(struct sluice_req *r, int status,
                                     const char *content_type,
                                     struct sluice_str body)
{
    if (host_streams_respond(r, status, content_type, body))
        return SLUICE_RESPOND; /* a stream: true request, as SSE */
    respond_set_body(r, status,
                     content_type ? content_type : "application/json",
                     body.ptr ? body.ptr : "", body.len);
    return SLUICE_RESPOND;
}

/* ---- suspension ---- */

static void resume_after(struct sluice_req *r, uint64_t ms)
{
    if (in_request_phase(r))
        pipeline_resume_after(r, ms);
}

static sluice_wake_t wake_token(struct sluice_req *r)
{
    return r->ticket;
}

static void wake(const struct sluice_host *h, sluice_wake_t ticket)
{
    (void)h;
    worker_wake(ticket);
}

static bool req_resumed(const struct sluice_req *r)
{
    return r->resumed;
}

/* ---- request scope ---- */

static void *req_alloc(struct sluice_req *r, size_t size)
{
    return arena_alloc(&r->arena, size);
}

static int var_set(struct sluice_req *r, const char *name,
                   struct sluice_str value)
{
    if (host_rule_var(name, value))
        return SLUICE_EINVAL; /* vars end up in headers and logs */
    return kv_set(r, &r->vars, name, value.ptr, value.len);
}

static struct sluice_str var_get(const struct sluice_req *r, const char *name)
{
    size_t len = 0;
    const char *v = kv_get(&r->vars, name, &len);
    return S(v, v ? len : 0);
}

static void *event_base_of(const struct sluice_host *h, unsigned worker)
{
    (void)h;
    if (worker >= g_runtime.worker_count || !g_runtime.workers[worker])
        return NULL;
    return g_runtime.workers[worker]->base;
}

static unsigned worker_count(const struct sluice_host *h)
{
    (void)h;
    return g_runtime.worker_count;
}

static unsigned req_worker(const struct sluice_req *r)
{
    return r->w->index;
}

void host_init(struct instance_host *ih, struct instance *inst,
               const struct config *cfg)
{
    struct sluice_host *h = &ih->pub;
    memset(ih, 0, sizeof *ih);
    ih->inst = inst;
    /* NULL out of memory: the 1.1 services then answer SLUICE_ENOMEM. */
    ih->services = host_services_new(inst, cfg);
    h->abi_major = SLUICE_ABI_MAJOR;
    h->abi_minor = SLUICE_ABI_MINOR;
    h->struct_size = sizeof *h;
    h->now_ns = h_now_ns;
    h->wall_ms = h_wall_ms;
    h->random_u64 = h_random;
    h->log = h_log;
    h->counter = h_counter;
    h->gauge = h_gauge;
    h->histogram = h_histogram;
    h->counter_add = h_counter_add;
    h->gauge_set = h_gauge_set;
    h->observe = h_observe;
    h->health_set = h_health_set;
    h->req_id = r_id;
    h->req_endpoint = r_endpoint;
    h->req_header = r_header;
    h->req_identity = r_identity;
    h->req_model = r_model;
    h->req_stream = r_stream;
    h->req_body = r_body;
    h->req_json = r_json;
    h->req_input_tokens = r_input_tokens;
    h->req_max_tokens = r_max_tokens;
    h->req_priority = r_priority;
    h->req_upstream = r_upstream;
    h->req_target_model = r_target_model;
    h->upstream_set_model = set_model;
    h->upstream_set_name = set_upstream;
    h->upstream_set_header = set_upstream_header;
    h->set_priority = set_priority;
    h->upstream_set_max_tokens = set_max_tokens;
    h->resp_status = resp_status;
    h->resp_header = resp_header;
    h->resp_usage = resp_usage;
    h->resp_body = resp_body;
    h->resp_outcome = resp_outcome;
    h->resp_attempt_count = attempt_count;
    h->resp_attempt = attempt_at;
    h->resp_add_header = resp_add_header;
    h->reject = do_reject;
    h->respond = do_respond;
    h->resume_after = resume_after;
    h->wake_token = wake_token;
    h->wake = wake;
    h->req_resumed = req_resumed;
    h->req_alloc = req_alloc;
    h->var_set = var_set;
    h->var_get = var_get;
    h->event_base = event_base_of;
    h->worker_count = worker_count;
    h->req_worker = req_worker;
    host_metrics_fill(h);
    host_streams_init(h);
    host_services_fill(h);
    plugin_routes_host_fill(h);
    self_request_host_fill(h);
}

void host_fini(struct instance_host *ih)
{
    host_services_free(ih->services);
    ih->services = NULL;
}
