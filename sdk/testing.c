/* The fake host: an in-memory implementation of struct sluice_host for
 * plugin unit tests. Time only moves when the test says so. */
/* The library is built with hidden visibility: only the API below is
 * exported (see sdk/CMakeLists.txt). */
#pragma GCC visibility push(default)
#include "sluice/testing.h"
#pragma GCC visibility pop

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/api_request.h"
#include "../core/config/plugin_config.h"
#include "../core/host_rules.h"
#include "../core/http/openai_error.h"
#include "testing_services.h"

#define REQ_MAGIC 0x5e57e57u
#define MAX_KV 32

struct kv {
    char name[64];
    char value[256];
};

struct kv_list {
    size_t n;
    struct kv items[MAX_KV];
};

struct sluice_metric {
    struct sluice_metric *next;
    char name[128];
    _Atomic uint64_t count; /* counter total, histogram observations */
    _Atomic uint64_t gauge; /* bits of a double */
    bool is_gauge;
};

struct health_entry {
    struct health_entry *next;
    char name[128];
    double value;
};

struct live_req {
    struct live_req *next;
    struct sluice_req *r;
};

struct sluice_test_host {
    struct sluice_host host;
    uint64_t now_ns;
    int64_t wall_ms;
    uint64_t rng;
    uint64_t next_ticket;
    struct sluice_metric *metrics;
    struct health_entry *health;
    pthread_mutex_t lock; /* metrics list, health, wake bookkeeping */
    char *log;
    size_t log_len;
    const char *const *upstreams;
    struct live_req *live;
    struct test_instance *instances; /* sluice_test_open, newest first */
    char open_error[512];
};

struct alloc_block {
    struct alloc_block *next;
    max_align_t data[];
};

struct sluice_req {
    uint32_t magic;
    struct sluice_test_host *t;
    char *body;
    size_t body_len;
    json_t *json;
    struct api_request api;
    char endpoint[64];
    char identity[4][128];
    char upstream[64];
    char target_model[128];
    char id[32];
    enum sluice_priority priority;
    unsigned worker;
    struct kv_list headers, upstream_headers, resp_headers, added_headers, vars;
    int resp_status;
    enum sluice_outcome outcome;
    struct sluice_usage usage;
    int reject_status;
    uint64_t reject_retry_ms;
    char reject_type[64];
    char reject_message[256];
    char *response_body;
    char *upstream_body;
    size_t upstream_body_len;
    uint64_t resume_after_ms;
    bool resumed;
    enum sluice_test_phase phase; /* which host calls are allowed */
    uint64_t max_tokens_set;      /* upstream_set_max_tokens, 0: not called */
    sluice_wake_t ticket;
    _Atomic unsigned wakes;
    struct alloc_block *blocks;
    size_t attempt_n;
    struct {
        char upstream[64];
        char model[128];
        int status;
        enum sluice_outcome outcome;
    } attempts[8];
};

static void close_all(struct sluice_test_host *t);

static struct sluice_test_host *T(const struct sluice_host *h)
{
    return (struct sluice_test_host *)h; /* host is the first member */
}

static struct sluice_str str_of(const char *s)
{
    struct sluice_str out = {s, s ? strlen(s) : 0};
    if (s && !*s)
        out.ptr = NULL;
    return out;
}

static void kv_set(struct kv_list *l, const char *name, const char *value,
                   size_t value_len)
{
    size_t i;
    for (i = 0; i < l->n; i++)
        if (strcasecmp(l->items[i].name, name) == 0)
            break;
    if (i == l->n) {
        if (l->n == MAX_KV)
            return;
        l->n++;
    }
    snprintf(l->items[i].name, sizeof l->items[i].name, "%s", name);
    if (value_len >= sizeof l->items[i].value)
        value_len = sizeof l->items[i].value - 1;
    memcpy(l->items[i].value, value, value_len);
    l->items[i].value[value_len] = '\0';
}

static const char *kv_get(const struct kv_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcasecmp(l->items[i].name, name) == 0)
            return l->items[i].value;
    return NULL;
}

/* ---- time, randomness, logs ---- */

static uint64_t h_now_ns(const struct sluice_host *h)
{
    return T(h)->now_ns;
}

static int64_t h_wall_ms(const struct sluice_host *h)
{
    return T(h)->wall_ms;
}

static uint64_t h_random(const struct sluice_host *h)
{
    /* splitmix64: deterministic for a given seed. */
    uint64_t z = (T(h)->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void h_log(const struct sluice_host *h, enum sluice_log_level level,
                  const char *fmt, ...)
{
    struct sluice_test_host *t = T(h);
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    (void)level;
    pthread_mutex_lock(&t->lock);
    size_t n = strlen(line);
    char *grown = realloc(t->log, t->log_len + n + 2);
    if (grown) {
        t->log = grown;
        memcpy(t->log + t->log_len, line, n);
        t->log_len += n;
        t->log[t->log_len++] = '\n';
        t->log[t->log_len] = '\0';
    }
    pthread_mutex_unlock(&t->lock);
}

/* ---- metrics and health ---- */

static struct sluice_metric *new_metric(const struct sluice_host *h,
                                        const char *name, bool is_gauge)
{
    struct sluice_test_host *t = T(h);
    struct sluice_metric *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    snprintf(m->name, sizeof m->name, "%s", name);
    m->is_gauge = is_gauge;
    pthread_mutex_lock(&t->lock);
    m->next = t->metrics;
    t->metrics = m;
    pthread_mutex_unlock(&t->lock);
    return m;
}

static struct sluice_metric *h_counter(const struct sluice_host *h,
                                       const char *name, const char *help)
{
    (void)help;
    return new_metric(h, name, false);
}

static struct sluice_metric *h_gauge(const struct sluice_host *h,
                                     const char *name, const char *help)
{
    (void)help;
    return new_metric(h, name, true);
}

static struct sluice_metric *h_histogram(const struct sluice_host *h,
                                         const char *name, const char *help,
                                         const double *bounds, size_t n)
{
    (void)help;
    (void)bounds;
    (void)n;
    return new_metric(h, name, false);
}

static void h_counter_add(struct sluice_metric *m, uint64_t v)
{
    if (m)
        atomic_fetch_add(&m->count, v);
}

static void h_gauge_set(struct sluice_metric *m, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    if (m)
        atomic_store(&m->gauge, bits);
}

static void h_observe(struct sluice_metric *m, double v)
{
    (void)v;
    if (m)
        atomic_fetch_add(&m->count, 1);
}

/* 1.1 labelled metrics. A series is a plain fake metric named like its
 * Prometheus sample, `name{a="x",b="y"}` (values as given, no cap: the
 * core enforces that), read with sluice_test_metric(). The vec sits in the
 * metrics list with an empty name, so it is freed with the metrics. */
struct sluice_metric_vec {
    struct sluice_metric listed; /* first */
    const struct sluice_host *h;
    char name[64], labels[4][32];
    size_t n_labels;
    bool is_gauge;
};

static struct sluice_metric_vec *new_vec(const struct sluice_host *h,
                                         const char *name,
                                         const char *const *labels,
                                         size_t n_labels, bool is_gauge)
{
    struct sluice_test_host *t = T(h);
    struct sluice_metric_vec *v;
    if (!name || !labels || n_labels < 1 || n_labels > 4 ||
        !(v = calloc(1, sizeof *v)))
        return NULL;
    v->h = h;
    v->n_labels = n_labels;
    v->is_gauge = is_gauge;
    snprintf(v->name, sizeof v->name, "%s", name);
    for (size_t i = 0; i < n_labels; i++)
        snprintf(v->labels[i], sizeof v->labels[i], "%s", labels[i]);
    pthread_mutex_lock(&t->lock);
    v->listed.next = t->metrics;
    t->metrics = &v->listed;
    pthread_mutex_unlock(&t->lock);
    return v;
}

static struct sluice_metric_vec *
h_counter_vec(const struct sluice_host *h, const char *name, const char *help,
              const char *const *labels, size_t n_labels, size_t max_values)
{
    (void)help;
    (void)max_values;
    return new_vec(h, name, labels, n_labels, false);
}

static struct sluice_metric_vec *h_gauge_vec(const struct sluice_host *h,
                                             const char *name, const char *help,
                                             const char *const *labels,
                                             size_t n_labels, size_t max_values)
{
    (void)help;
    (void)max_values;
    return new_vec(h, name, labels, n_labels, true);
}

static struct sluice_metric_vec *
h_histogram_vec(const struct sluice_host *h, const char *name, const char *help,
                const char *const *labels, size_t n_labels, size_t max_values,
                const double *bounds, size_t n_bounds)
{
    (void)help;
    (void)max_values;
    (void)bounds;
    (void)n_bounds;
    return new_vec(h, name, labels, n_labels, false);
}

static struct sluice_metric *h_metric_with(struct sluice_metric_vec *v,
                                           const char *const *values)
{
    char key[128];
    size_t n = 0;
    if (!v)
        return NULL;
    n += (size_t)snprintf(key, sizeof key, "%s{", v->name);
    for (size_t i = 0; i < v->n_labels && n < sizeof key; i++)
        n += (size_t)snprintf(key + n, sizeof key - n, "%s%s=\"%s\"",
                              i ? "," : "", v->labels[i],
                              values && values[i] ? values[i] : "");
    if (n < sizeof key)
        snprintf(key + n, sizeof key - n, "}");
    struct sluice_test_host *t = T(v->h);
    struct sluice_metric *m;
    pthread_mutex_lock(&t->lock); /* find or add in one go: threads race */
    for (m = t->metrics; m && strcmp(m->name, key) != 0; m = m->next)
        ;
    if (!m && (m = calloc(1, sizeof *m))) {
        snprintf(m->name, sizeof m->name, "%s", key);
        m->is_gauge = v->is_gauge;
        m->next = t->metrics;
        t->metrics = m;
    }
    pthread_mutex_unlock(&t->lock);
    return m;
}

static void h_health_set(const struct sluice_host *h, const char *name,
                         double value)
{
    struct sluice_test_host *t = T(h);
    struct health_entry *e;

    pthread_mutex_lock(&t->lock);
    for (e = t->health; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            break;
    if (!e && (e = calloc(1, sizeof *e))) {
        snprintf(e->name, sizeof e->name, "%s", name);
        e->next = t->health;
        t->health = e;
    }
    if (e)
        e->value = value;
    pthread_mutex_unlock(&t->lock);
}

/* 1.1 health_get: reads the map health_set writes (NaN reads as unset). */
static int h_health_get(const struct sluice_host *h, const char *name,
                        double *value)
{
    double v = sluice_test_health(T(h), name);
    if (!value || isnan(v))
        return value ? SLUICE_ENOENT : SLUICE_EINVAL;
    *value = v;
    return SLUICE_OK;
}

/* ---- request reads ---- */

static struct sluice_str r_id(const struct sluice_req *r)
{
    return str_of(r->id);
}

static struct sluice_str r_endpoint(const struct sluice_req *r)
{
    return str_of(r->endpoint);
}

static struct sluice_str r_header(const struct sluice_req *r, const char *n)
{
    if (!host_rule_header_readable(n))
        return str_of(NULL);
    return str_of(kv_get(&r->headers, n));
}

static struct sluice_str r_identity(const struct sluice_req *r,
                                    enum sluice_identity which)
{
    if ((unsigned)which > SLUICE_ID_KEY)
        return str_of(NULL);
    return str_of(r->identity[which]);
}

static struct sluice_str r_model(const struct sluice_req *r)
{
    struct sluice_str s = {r->api.model, r->api.model_len};
    return s;
}

static bool r_stream(const struct sluice_req *r)
{
    return r->api.stream;
}

static struct sluice_str r_body(const struct sluice_req *r)
{
    struct sluice_str s = {r->body, r->body_len};
    return s;
}

static const void *r_json(const struct sluice_req *r)
{
    /* Parsed on first use, as the gateway does (core/request.c). */
    struct sluice_req *m = (struct sluice_req *)r;
    if (!m->json)
        m->json = json_loadb(m->body, m->body_len, 0, NULL);
    return m->json;
}

static uint64_t r_input_tokens(const struct sluice_req *r)
{
    return r->api.input_tokens;
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
    return str_of(r->upstream);
}

static struct sluice_str r_target_model(const struct sluice_req *r)
{
    if (r->target_model[0])
        return str_of(r->target_model);
    return r_model(r);
}

/* ---- routing ---- */

static bool in_request_phase(const struct sluice_req *r)
{
    return r->phase == SLUICE_TEST_PHASE_REQUEST;
}

static int set_model(struct sluice_req *r, struct sluice_str model)
{
    if (!in_request_phase(r))
        return host_rule_routing(false);
    if (host_rule_model(model) || model.len >= sizeof r->target_model)
        return SLUICE_EINVAL;
    memcpy(r->target_model, model.ptr, model.len);
    r->target_model[model.len] = '\0';
    return SLUICE_OK;
}

static int set_max_tokens(struct sluice_req *r, uint64_t max_tokens)
{
    if (!in_request_phase(r))
        return SLUICE_EPHASE;
    if (max_tokens == 0)
        return SLUICE_EINVAL;
    r->api.max_tokens = r->max_tokens_set = max_tokens;
    return SLUICE_OK;
}

static int set_upstream(struct sluice_req *r, struct sluice_str name)
{
    const char *const *ups = r->t->upstreams;
    if (!in_request_phase(r))
        return host_rule_routing(false);
    if (name.len == 0 || name.len >= sizeof r->upstream)
        return SLUICE_EINVAL;
    if (ups) {
        bool found = false;
        for (size_t i = 0; ups[i]; i++)
            if (strlen(ups[i]) == name.len &&
                memcmp(ups[i], name.ptr, name.len) == 0)
                found = true;
        if (!found)
            return SLUICE_ENOENT;
    }
    memcpy(r->upstream, name.ptr, name.len);
    r->upstream[name.len] = '\0';
    return SLUICE_OK;
}

static int set_up_header(struct sluice_req *r, const char *name,
                         struct sluice_str value)
{
    if (!in_request_phase(r))
        return host_rule_routing(false);
    if (host_rule_upstream_header(name, value))
        return SLUICE_EINVAL;
    kv_set(&r->upstream_headers, name, value.ptr ? value.ptr : "", value.len);
    return SLUICE_OK;
}

static int set_priority(struct sluice_req *r, enum sluice_priority p)
{
    if (!in_request_phase(r))
        return host_rule_routing(false);
    if (host_rule_priority(p))
        return SLUICE_EINVAL;
    r->priority = p;
    return SLUICE_OK;
}

/* ---- upstream answer ---- */

static int resp_status(const struct sluice_req *r)
{
    return r->resp_status;
}

static struct sluice_str resp_header(const struct sluice_req *r,
                                     const char *name)
{
    return str_of(kv_get(&r->resp_headers, name));
}

static struct sluice_usage resp_usage(const struct sluice_req *r)
{
    return r->usage;
}

static struct sluice_str resp_body(const struct sluice_req *r)
{
    struct sluice_str s = {r->upstream_body, r->upstream_body_len};
    return s;
}

static enum sluice_outcome resp_outcome(const struct sluice_req *r)
{
    return r->outcome;
}

static size_t attempt_count(const struct sluice_req *r)
{
    if (r->attempt_n)
        return r->attempt_n;
    return r->resp_status || r->outcome ? 1 : 0;
}

static bool attempt_at(const struct sluice_req *r, size_t i,
                       struct sluice_attempt *out)
{
    memset(out, 0, sizeof *out);
    if (r->attempt_n) {
        if (i >= r->attempt_n)
            return false;
        out->upstream = str_of(r->attempts[i].upstream);
        out->model = str_of(r->attempts[i].model);
        out->status = r->attempts[i].status;
        out->outcome = r->attempts[i].outcome;
        return true;
    }
    if (i != 0 || attempt_count(r) == 0)
        return false;
    out->upstream = str_of(r->upstream);
    out->model = r_target_model(r);
    out->status = r->resp_status;
    out->outcome = r->outcome;
    return true;
}

static int resp_add_header(struct sluice_req *r, const char *name,
                           struct sluice_str value)
{
    if (r->phase >= SLUICE_TEST_PHASE_STREAMING)
        return SLUICE_EPHASE; /* the client has the headers already */
    if (host_rule_client_header(name, value))
        return SLUICE_EINVAL;
    kv_set(&r->added_headers, name, value.ptr ? value.ptr : "", value.len);
    return SLUICE_OK;
}

/* ---- answering ---- */

static enum sluice_action do_reject(struct sluice_req *r, int status,
                                    const char *type, const char *code,
                                    const char *message, uint64_t retry_ms)
{
    /* The core's status clamp and error body. */
    status = host_rule_reject_status(status);
    free(r->response_body);
    r->response_body =
        openai_error_body(status, type, message, NULL, code, NULL);
    r->reject_status = status;
    r->reject_retry_ms = retry_ms;
    snprintf(r->reject_type, sizeof r->reject_type, "%s",
             type ? type : openai_error_type_for(status));
    snprintf(r->reject_message, sizeof r->reject_message, "%s",
             message ? message : "");
    if (retry_ms > 0) {
        char secs[24];
        size_t n = host_rule_retry_after(retry_ms, secs, sizeof secs);
        kv_set(&r->added_headers, "Retry-After", secs, n);
    }
    return SLUICE_RESPOND;
}

static enum sluice_action do_respond(struct sluice_req *r, int status,
                                     const char *content_type,
                                     struct sluice_str body)
{
    free(r->response_body);
    r->response_body = strndup(body.ptr ? body.ptr : "", body.len);
    r->reject_status = status;
    if (content_type)
        kv_set(&r->added_headers, "Content-Type", content_type,
               strlen(content_type));
    return SLUICE_RESPOND;
}

/* ---- suspension ---- */

static void resume_after(struct sluice_req *r, uint64_t ms)
{
    if (in_request_phase(r))
        r->resume_after_ms = ms;
}

static sluice_wake_t wake_token(struct sluice_req *r)
{
    return r->ticket;
}

static void wake(const struct sluice_host *h, sluice_wake_t ticket)
{
    struct sluice_test_host *t = T(h);
    pthread_mutex_lock(&t->lock);
    for (struct live_req *l = t->live; l; l = l->next)
        if (l->r->ticket == ticket)
            atomic_fetch_add(&l->r->wakes, 1);
    pthread_mutex_unlock(&t->lock);
}

static bool req_resumed(const struct sluice_req *r)
{
    return r->resumed;
}

/* ---- request scope ---- */

static void *req_alloc(struct sluice_req *r, size_t size)
{
    struct alloc_block *b = calloc(1, sizeof *b + size);
    if (!b)
        return NULL;
    b->next = r->blocks;
    r->blocks = b;
    return b->data;
}

static int var_set(struct sluice_req *r, const char *name,
                   struct sluice_str value)
{
    if (host_rule_var(name, value))
        return SLUICE_EINVAL;
    if (r->vars.n == MAX_KV && !kv_get(&r->vars, name))
        return SLUICE_ENOMEM;
    kv_set(&r->vars, name, value.ptr ? value.ptr : "", value.len);
    return SLUICE_OK;
}

static struct sluice_str var_get(const struct sluice_req *r, const char *name)
{
    return str_of(kv_get(&r->vars, name));
}

static void *event_base_of(const struct sluice_host *h, unsigned worker)
{
    (void)h;
    (void)worker;
    return NULL; /* no event loop under the fake host */
}

static unsigned worker_count(const struct sluice_host *h)
{
    (void)h;
    return 1;
}

static unsigned req_worker(const struct sluice_req *r)
{
    return r->worker;
}

/* ---- public test API ---- */

struct sluice_test_host *sluice_test_host_new(void)
{
    struct sluice_test_host *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    struct sluice_host *h = &t->host;
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
    h->counter_vec = h_counter_vec; /* 1.1 labelled metrics */
    h->gauge_vec = h_gauge_vec;
    h->histogram_vec = h_histogram_vec;
    h->metric_with = h_metric_with;
    h->health_set = h_health_set;
    h->health_get = h_health_get; /* 1.1 */
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
    h->upstream_set_max_tokens = set_max_tokens;
    h->upstream_set_header = set_up_header;
    h->set_priority = set_priority;
    h->resp_status = resp_status;
    h->resp_header = resp_header;
    h->resp_usage = resp_usage;
    h->resp_body = resp_body;
    h->resp_outcome = resp_outcome;
    h->resp_add_header = resp_add_header;
    h->resp_attempt_count = attempt_count;
    h->resp_attempt = attempt_at;
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
    sluice_testing_services_attach(h); /* 1.1 calls and timers */
    t->now_ns = 1000000000ull;  /* 1 s: leaves room for "earlier" stamps */
    t->wall_ms = 1767225600000; /* 2026-01-01T00:00:00Z */
    t->rng = 42;
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void sluice_test_host_free(struct sluice_test_host *t)
{
    if (!t)
        return;
    sluice_testing_services_detach(&t->host);
    close_all(t);
    while (t->metrics) {
        struct sluice_metric *m = t->metrics;
        t->metrics = m->next;
        free(m);
    }
    while (t->health) {
        struct health_entry *e = t->health;
        t->health = e->next;
        free(e);
    }
    while (t->live) {
        struct live_req *l = t->live;
        t->live = l->next;
        free(l);
    }
    pthread_mutex_destroy(&t->lock);
    free(t->log);
    free(t);
}

const struct sluice_host *sluice_test_host(struct sluice_test_host *t)
{
    return &t->host;
}

void sluice_test_clock_advance_ms(struct sluice_test_host *t, uint64_t ms)
{
    t->now_ns += ms * 1000000ull;
    t->wall_ms += (int64_t)ms;
}

void sluice_test_clock_advance_ns(struct sluice_test_host *t, uint64_t ns)
{
    t->now_ns += ns;
    t->wall_ms = t->wall_ms + (int64_t)(ns / 1000000ull);
}

void sluice_test_clock_set_wall_ms(struct sluice_test_host *t, int64_t ms)
{
    t->wall_ms = ms;
}

void sluice_test_seed(struct sluice_test_host *t, uint64_t seed)
{
    t->rng = seed;
}

/* Config memory of sluice_test_config() calls: STRING fields point into
 * the parsed JSON and lists into the fill's memory, so both live until the
 * process exits (sluice_test_open ties them to the host instead). */
struct kept_config {
    struct kept_config *next;
    json_t *json;
    struct plugin_config_mem *mem;
};

static struct kept_config *kept_configs;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

static void free_kept_configs(void)
{
    while (kept_configs) {
        struct kept_config *k = kept_configs;
        kept_configs = k->next;
        json_decref(k->json);
        plugin_config_mem_free(k->mem);
        free(k);
    }
}

int sluice_test_config(const struct sluice_plugin *p, const char *json,
                       void *config_out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *cfg = json_loads(json ? json : "{}", 0, &jerr);
    struct plugin_config_mem *mem = NULL;
    if (!cfg) {
        snprintf(err, errlen, "config: %s", jerr.text);
        return -1;
    }
    int rc =
        plugin_config_fill(p, cfg, "config", config_out, &mem, err, errlen);
    struct kept_config *k = calloc(1, sizeof *k);
    if (!k)
        abort();
    k->json = cfg;
    k->mem = mem;
    pthread_mutex_lock(&kept_lock);
    if (!kept_configs)
        atexit(free_kept_configs);
    k->next = kept_configs;
    kept_configs = k;
    pthread_mutex_unlock(&kept_lock);
    return rc;
}

/* ---- plugin instances opened from JSON ---- */

struct test_instance {
    struct test_instance *next;
    const struct sluice_plugin *p;
    void *self;
    void *config;
    json_t *json;
    struct plugin_config_mem *mem;
};

static void instance_free(struct test_instance *in)
{
    if (in->self && in->self != in->config && in->p->destroy)
        in->p->destroy(in->self);
    plugin_config_mem_free(in->mem);
    json_decref(in->json);
    free(in->config);
    free(in);
}

void *sluice_test_open(struct sluice_test_host *t,
                       const struct sluice_plugin *p, const char *json)
{
    json_error_t jerr;
    struct test_instance *in = calloc(1, sizeof *in);
    struct sluice_error perr;

    if (!in)
        abort();
    t->open_error[0] = '\0';
    in->p = p;
    in->config = calloc(1, p->config_size ? p->config_size : 1);
    in->json = json_loads(json ? json : "{}", 0, &jerr);
    if (!in->config)
        abort();
    if (!in->json) {
        snprintf(t->open_error, sizeof t->open_error, "config: %s", jerr.text);
        goto fail;
    }
    /* The core's rules, messages and effective config (defaults added). */
    if (plugin_config_fill(p, in->json, "config", in->config, &in->mem,
                           t->open_error, sizeof t->open_error))
        goto fail;
    if (!p->create) {
        in->self = in->config;
    } else {
        char *raw = json_dumps(in->json, JSON_COMPACT);
        struct sluice_str raw_json = {raw ? raw : "{}", raw ? strlen(raw) : 2};
        memset(&perr, 0, sizeof perr);
        int rc = p->create(&t->host, in->config, raw_json, &in->self, &perr);
        free(raw);
        if (rc != SLUICE_OK) {
            snprintf(t->open_error, sizeof t->open_error, "config: %s",
                     perr.message[0] ? perr.message : "plugin create() failed");
            in->self = NULL;
            goto fail;
        }
    }
    in->next = t->instances;
    t->instances = in;
    return in->self;
fail:
    instance_free(in);
    return NULL;
}

static void close_all(struct sluice_test_host *t)
{
    while (t->instances) {
        struct test_instance *in = t->instances;
        t->instances = in->next;
        instance_free(in);
    }
}

const char *sluice_test_open_error(const struct sluice_test_host *t)
{
    return t->open_error;
}

void sluice_test_close(struct sluice_test_host *t, void *self)
{
    for (struct test_instance **pp = &t->instances; *pp; pp = &(*pp)->next) {
        if ((*pp)->self == self) {
            struct test_instance *in = *pp;
            *pp = in->next;
            instance_free(in);
            return;
        }
    }
}

struct sluice_req *sluice_test_req_new(struct sluice_test_host *t,
                                       const char *body)
{
    struct sluice_req *r = calloc(1, sizeof *r);
    struct api_error aerr;
    if (!r)
        abort();
    r->magic = REQ_MAGIC;
    r->t = t;
    r->body = strdup(body ? body : "");
    r->body_len = strlen(r->body);
    snprintf(r->endpoint, sizeof r->endpoint, "/v1/chat/completions");
    snprintf(r->identity[SLUICE_ID_TENANT], sizeof r->identity[0], "default");
    snprintf(r->upstream, sizeof r->upstream, "default");
    r->priority = SLUICE_PRIO_STANDARD;
    r->resume_after_ms = UINT64_MAX;
    /* A body that is not a valid chat request is still usable: the fields
     * stay empty and req_json gives whatever jansson makes of it. */
    api_request_decode(API_CHAT, r->body, r->body_len, &r->api, &aerr);

    pthread_mutex_lock(&t->lock);
    r->ticket = ++t->next_ticket;
    snprintf(r->id, sizeof r->id, "req-%llu", (unsigned long long)r->ticket);
    struct live_req *l = calloc(1, sizeof *l);
    if (l) {
        l->r = r;
        l->next = t->live;
        t->live = l;
    }
    pthread_mutex_unlock(&t->lock);
    return r;
}

void sluice_test_req_free(struct sluice_req *r)
{
    if (!r)
        return;
    struct sluice_test_host *t = r->t;
    pthread_mutex_lock(&t->lock);
    for (struct live_req **pp = &t->live; *pp; pp = &(*pp)->next) {
        if ((*pp)->r == r) {
            struct live_req *dead = *pp;
            *pp = dead->next;
            free(dead);
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    while (r->blocks) {
        struct alloc_block *b = r->blocks;
        r->blocks = b->next;
        free(b);
    }
    json_decref(r->json);
    api_request_release(&r->api);
    free(r->response_body);
    free(r->upstream_body);
    free(r->body);
    r->magic = 0;
    free(r);
}

void sluice_test_req_set_header(struct sluice_req *r, const char *name,
                                const char *value)
{
    kv_set(&r->headers, name, value, strlen(value));
}

void sluice_test_req_set_identity(struct sluice_req *r, const char *tenant,
                                  const char *user, const char *tier,
                                  const char *key)
{
    const char *v[4] = {tenant, user, tier, key};
    for (int i = 0; i < 4; i++)
        snprintf(r->identity[i], sizeof r->identity[i], "%s", v[i] ? v[i] : "");
}

void sluice_test_req_set_endpoint(struct sluice_req *r, const char *path)
{
    snprintf(r->endpoint, sizeof r->endpoint, "%s", path);
}

void sluice_test_req_set_upstream(struct sluice_req *r, const char *name)
{
    snprintf(r->upstream, sizeof r->upstream, "%s", name);
}

void sluice_test_req_set_worker(struct sluice_req *r, unsigned worker)
{
    r->worker = worker;
}

void sluice_test_set_upstreams(struct sluice_test_host *t,
                               const char *const *names)
{
    t->upstreams = names;
}

void sluice_test_req_set_response(struct sluice_req *r, int status,
                                  enum sluice_outcome outcome)
{
    r->resp_status = status;
    r->outcome = outcome;
    if (r->phase == SLUICE_TEST_PHASE_REQUEST)
        r->phase = SLUICE_TEST_PHASE_UPSTREAM;
}

void sluice_test_req_set_phase(struct sluice_req *r,
                               enum sluice_test_phase phase)
{
    r->phase = phase;
}

void sluice_test_req_set_resp_body(struct sluice_req *r, const char *body)
{
    free(r->upstream_body);
    r->upstream_body = strdup(body);
    r->upstream_body_len = strlen(body);
}

void sluice_test_req_add_attempt(struct sluice_req *r, const char *upstream,
                                 const char *model, int status,
                                 enum sluice_outcome outcome)
{
    if (r->attempt_n == 8)
        return;
    size_t i = r->attempt_n++;
    snprintf(r->attempts[i].upstream, sizeof r->attempts[i].upstream, "%s",
             upstream);
    snprintf(r->attempts[i].model, sizeof r->attempts[i].model, "%s",
             model ? model : "");
    r->attempts[i].status = status;
    r->attempts[i].outcome = outcome;
}

void sluice_test_req_set_resp_header(struct sluice_req *r, const char *name,
                                     const char *value)
{
    kv_set(&r->resp_headers, name, value, strlen(value));
}

void sluice_test_req_set_usage(struct sluice_req *r, uint64_t prompt,
                               uint64_t completion, uint64_t cached)
{
    r->usage.known = true;
    r->usage.prompt_tokens = prompt;
    r->usage.completion_tokens = completion;
    r->usage.cached_tokens = cached;
    r->usage.total_tokens = prompt + completion;
}

void sluice_test_req_mark_resumed(struct sluice_req *r)
{
    r->resumed = true;
    r->resume_after_ms = UINT64_MAX;
}

int sluice_test_reject_status(const struct sluice_req *r)
{
    return r->reject_status;
}

uint64_t sluice_test_reject_retry_after_ms(const struct sluice_req *r)
{
    return r->reject_retry_ms;
}

const char *sluice_test_reject_message(const struct sluice_req *r)
{
    return r->reject_message;
}

const char *sluice_test_reject_type(const struct sluice_req *r)
{
    return r->reject_type;
}

const char *sluice_test_response_body(const struct sluice_req *r)
{
    return r->response_body;
}

const char *sluice_test_resp_added_header(const struct sluice_req *r,
                                          const char *name)
{
    return kv_get(&r->added_headers, name);
}

const char *sluice_test_upstream_header(const struct sluice_req *r,
                                        const char *name)
{
    return kv_get(&r->upstream_headers, name);
}

uint64_t sluice_test_upstream_max_tokens(const struct sluice_req *r)
{
    return r->max_tokens_set;
}

uint64_t sluice_test_resume_after_ms(const struct sluice_req *r)
{
    return r->resume_after_ms;
}

unsigned sluice_test_wakes(const struct sluice_req *r)
{
    return atomic_load(&((struct sluice_req *)r)->wakes);
}

double sluice_test_metric(struct sluice_test_host *t, const char *name)
{
    double v = NAN;
    pthread_mutex_lock(&t->lock);
    for (struct sluice_metric *m = t->metrics; m; m = m->next) {
        if (strcmp(m->name, name) == 0) {
            if (m->is_gauge) {
                uint64_t bits = atomic_load(&m->gauge);
                memcpy(&v, &bits, sizeof v);
            } else {
                v = (double)atomic_load(&m->count);
            }
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return v;
}

void sluice_test_host_pretend_1_0(struct sluice_test_host *t)
{
    size_t size_1_0 = offsetof(struct sluice_host, call_upstream);
    t->host.abi_minor = 0;
    t->host.struct_size = (uint32_t)size_1_0;
    memset((char *)&t->host + size_1_0, 0, sizeof t->host - size_1_0);
}

double sluice_test_health(struct sluice_test_host *t, const char *name)
{
    double v = NAN;
    pthread_mutex_lock(&t->lock);
    for (struct health_entry *e = t->health; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            v = e->value;
    pthread_mutex_unlock(&t->lock);
    return v;
}

const char *sluice_test_log(struct sluice_test_host *t)
{
    return t->log ? t->log : "";
}
