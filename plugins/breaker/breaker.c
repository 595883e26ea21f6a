/* breaker: a circuit breaker per upstream (or per upstream and model).
 *
 * on_request asks the key's state machine (breaker_fsm.c) whether the
 * request may go; while the key is open it runs the configured fallback
 * (another upstream/model, a static answer) or rejects with 503 and
 * Retry-After = remaining cool-down. on_response judges every upstream
 * attempt of the request (retries and the core's fallbacks make several)
 * and feeds the state machines. Health values let the Lua policy and the
 * core's fallback chain see which upstreams are down.
 *
 * Locking: `map_lock` (rwlock) guards the key table; each key has its own
 * mutex for its state machine. Order: map_lock, then a key, then
 * stats_lock. A request that went ahead keeps a pointer to its key and
 * counts in `in_flight`, which keeps the key from being evicted.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/keymap.h"
#include "breaker_fsm.h"
#include "sluice/host.h"
#include "sluice/plugin.h"
#include "status_set.h"

#define NS_PER_MS 1000000ull
#define MAX_KEY 256
#define HALF_OPEN_RETRY_MS 1000 /* Retry-After hint while probes are busy */
#define EVICT_SCAN_EVERY_NS (1000 * NS_PER_MS)

enum { SCOPE_UPSTREAM = 0, SCOPE_UPSTREAM_MODEL = 1 };

struct breaker_config {
    int scope;
    int64_t consecutive_failures;
    int64_t window_s;
    double failure_rate;
    int64_t min_volume;
    int64_t recovery_timeout_ms;
    int64_t half_open_max_calls;
    int64_t success_threshold;
    bool failure_on_timeout;
    bool failure_on_connect_error;
    bool failure_on_truncated;
    const char *fallback_upstream;
    const char *fallback_model;
    int64_t max_keys;
    int64_t idle_evict_s;
    struct sluice_cfg_list failure_statuses; /* of const char * */
    const char *static_response;             /* JSON text or NULL */
};

struct breaker_entry {
    struct keymap_node node;
    pthread_mutex_t lock;
    struct breaker_fsm fsm;
    uint32_t in_flight; /* requests holding a pointer to this entry */
    uint64_t last_used_ns;
    size_t upstream_len; /* the key starts with the upstream name */
    size_t key_len;
    char key[];
};

struct breaker {
    const struct sluice_host *host;
    struct breaker_limits limits;
    struct status_set failure_statuses;
    bool scope_model;
    bool failure_on_timeout, failure_on_connect_error, failure_on_truncated;
    const char *fallback_upstream; /* NULL: keep the upstream */
    const char *fallback_model;    /* NULL: keep the model */
    char *static_body;             /* NULL: no static fallback */
    size_t static_len;
    size_t max_keys;
    uint64_t idle_ns;

    pthread_rwlock_t map_lock;
    struct keymap keys;
    uint64_t last_evict_scan_ns; /* under map_lock (write) */

    /* Earliest cool-down end among open keys, so requests only sweep the
     * table when some key is due to go half-open. */
    _Atomic uint64_t next_due_ns;
    pthread_mutex_t sweep_lock;

    pthread_mutex_t stats_lock;
    uint32_t n_open, n_half_open;

    struct sluice_metric *m_transitions, *m_opened, *m_rejected, *m_fallbacks,
        *m_untracked, *m_failures, *m_state, *m_open_keys, *m_half_open_keys;
};

/* Per request. */
struct breaker_req {
    struct breaker_entry *entry; /* the key this request counts against */
    uint32_t generation;
    bool probe;
    bool judged;
    bool held_seen;     /* an attempt on the held key was judged */
    size_t judged_upto; /* attempts [0, judged_upto) are judged */
};

/* ---- config ---- */

static const char *const scope_choices[] = {"upstream", "upstream_model", NULL};

/* "5xx", "500-504" or a code (429 is taken as "429"). */
static const struct sluice_cfg_field status_token = {
    .type = SLUICE_CFG_STRING, .flags = SLUICE_CFG_NUMBER_AS_TEXT};

#define FIELD(n) offsetof(struct breaker_config, n)
static const struct sluice_cfg_field breaker_fields[] = {
    {.name = "scope",
     .type = SLUICE_CFG_ENUM,
     .default_value = "\"upstream\"",
     .choices = scope_choices,
     .offset = FIELD(scope),
     .help = "one breaker per upstream, or per upstream and model"},
    {.name = "consecutive_failures",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "5",
     .max = 1000000,
     .offset = FIELD(consecutive_failures),
     .help = "failures in a row that open the breaker (0: off)"},
    {.name = "window_s",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "30",
     .min = 1,
     .max = 3600,
     .offset = FIELD(window_s),
     .help = "rolling window for the failure rate, seconds"},
    {.name = "failure_rate",
     .type = SLUICE_CFG_DOUBLE,
     .flags =
         SLUICE_CFG_HAS_MIN | SLUICE_CFG_MIN_EXCLUSIVE | SLUICE_CFG_HAS_MAX,
     .default_value = "0.5",
     .max = 1,
     .offset = FIELD(failure_rate),
     .help = "failed share of the window that opens the breaker"},
    {.name = "min_volume",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "20",
     .min = 1,
     .max = 1000000000,
     .offset = FIELD(min_volume),
     .help = "requests in the window before the rate counts"},
    {.name = "recovery_timeout_ms",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "30000",
     .min = 1,
     .max = 86400000,
     .offset = FIELD(recovery_timeout_ms),
     .help = "cool-down before half-open probes"},
    {.name = "half_open_max_calls",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "1",
     .min = 1,
     .max = 10000,
     .offset = FIELD(half_open_max_calls),
     .help = "probes in flight at once in half-open"},
    {.name = "success_threshold",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "2",
     .min = 1,
     .max = 10000,
     .offset = FIELD(success_threshold),
     .help = "probe successes that close the breaker"},
    {.name = "failure_statuses",
     .type = SLUICE_CFG_ARRAY,
     .flags = SLUICE_CFG_ONE_OR_MANY,
     .default_value = "\"5xx\"",
     .offset = FIELD(failure_statuses),
     .help = "statuses counted as failures: \"5xx,429\" or [\"5xx\", 429]",
     .elem = &status_token},
    {.name = "failure_on_timeout",
     .type = SLUICE_CFG_BOOL,
     .default_value = "true",
     .offset = FIELD(failure_on_timeout),
     .help = "upstream timeouts count as failures"},
    {.name = "failure_on_connect_error",
     .type = SLUICE_CFG_BOOL,
     .default_value = "true",
     .offset = FIELD(failure_on_connect_error),
     .help = "refused/reset/unreachable counts as a failure"},
    {.name = "failure_on_truncated",
     .type = SLUICE_CFG_BOOL,
     .default_value = "true",
     .offset = FIELD(failure_on_truncated),
     .help = "a stream cut before its final event counts as a failure"},
    {.name = "fallback_upstream",
     .type = SLUICE_CFG_STRING,
     .offset = FIELD(fallback_upstream),
     .help = "upstream to use while open"},
    {.name = "fallback_model",
     .type = SLUICE_CFG_STRING,
     .offset = FIELD(fallback_model),
     .help = "model to use while open"},
    {.name = "static_response",
     .type = SLUICE_CFG_JSON_TEXT,
     .flags = SLUICE_CFG_JSON_IN_STRING,
     .offset = FIELD(static_response),
     .help =
         "JSON answer (200) served while open when no fallback can take it"},
    {.name = "max_keys",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "1024",
     .min = 1,
     .max = 1000000,
     .offset = FIELD(max_keys),
     .help = "breaker keys tracked at most; more pass untracked"},
    {.name = "idle_evict_s",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "600",
     .max = 86400 * 30,
     .offset = FIELD(idle_evict_s),
     .help = "closed keys idle this long may be evicted to make room"},
    {0},
};
#undef FIELD

/* The core checked the shapes (a token list, JSON text); what is left is
 * the meaning of each status token. */
static int read_options(struct breaker *b, const struct breaker_config *c,
                        struct sluice_error *err)
{
    if (status_set_parse(&b->failure_statuses,
                         (const char *const *)c->failure_statuses.items,
                         c->failure_statuses.count, err->message,
                         sizeof err->message))
        return -1;
    if (c->static_response) {
        b->static_body = strdup(c->static_response);
        if (!b->static_body) {
            snprintf(err->message, sizeof err->message, "out of memory");
            return -1;
        }
        b->static_len = strlen(b->static_body);
    }
    return 0;
}

/* ---- keys ---- */

static size_t make_key(const struct breaker *b, char *buf,
                       struct sluice_str upstream, struct sluice_str model)
{
    if (!upstream.len)
        return 0;
    if (!b->scope_model) {
        if (upstream.len >= MAX_KEY)
            return 0;
        memcpy(buf, upstream.ptr, upstream.len);
        return upstream.len;
    }
    int n = snprintf(buf, MAX_KEY, "%.*s/%.*s", (int)upstream.len, upstream.ptr,
                     (int)model.len, model.ptr ? model.ptr : "");
    return n > 0 && n < MAX_KEY ? (size_t)n : 0;
}

static struct sluice_str cstr(const char *s)
{
    struct sluice_str out = {s, s ? strlen(s) : 0};
    return out;
}

/* ---- publishing state changes ---- */

static void publish_health(struct breaker *b, const struct breaker_entry *e)
{
    const struct sluice_host *h = b->host;
    enum breaker_state s = e->fsm.state;
    char name[MAX_KEY + 64];

    snprintf(name, sizeof name, "breaker.%.*s.open", (int)e->key_len, e->key);
    h->health_set(h, name, s == BREAKER_OPEN);
    snprintf(name, sizeof name, "breaker.%.*s.state", (int)e->key_len, e->key);
    h->health_set(h, name, (double)s);
    if (!b->scope_model) {
        /* The core's fallback chain skips upstreams marked down. */
        snprintf(name, sizeof name, "upstream.%.*s.down", (int)e->upstream_len,
                 e->key);
        h->health_set(h, name, s == BREAKER_OPEN);
    }
}

static void due_lower(struct breaker *b, uint64_t t)
{
    uint64_t cur = atomic_load(&b->next_due_ns);
    while (t < cur && !atomic_compare_exchange_weak(&b->next_due_ns, &cur, t))
        ;
}

static uint32_t *state_count(struct breaker *b, enum breaker_state s)
{
    return s == BREAKER_OPEN        ? &b->n_open
           : s == BREAKER_HALF_OPEN ? &b->n_half_open
                                    : NULL;
}

/* Called with e->lock held, so one key's lines and health stay in order. */
static void publish_change(struct breaker *b, const struct breaker_entry *e,
                           const struct breaker_change *c)
{
    const struct sluice_host *h = b->host;

    if (!c->changed)
        return;
    h->log(h, c->to == BREAKER_OPEN ? SLUICE_LOG_WARN : SLUICE_LOG_INFO,
           "breaker %.*s: %s -> %s (%s)", (int)e->key_len, e->key,
           breaker_state_name(c->from), breaker_state_name(c->to), c->reason);
    h->counter_add(b->m_transitions, 1);
    if (c->to == BREAKER_OPEN) {
        h->counter_add(b->m_opened, 1);
        due_lower(b, e->fsm.open_until_ns);
    }
    publish_health(b, e);

    pthread_mutex_lock(&b->stats_lock);
    uint32_t *from = state_count(b, c->from), *to = state_count(b, c->to);
    if (from && *from)
        (*from)--;
    if (to)
        (*to)++;
    h->gauge_set(b->m_open_keys, b->n_open);
    h->gauge_set(b->m_half_open_keys, b->n_half_open);
    h->gauge_set(b->m_state, b->n_open        ? BREAKER_OPEN
                             : b->n_half_open ? BREAKER_HALF_OPEN
                                              : BREAKER_CLOSED);
    pthread_mutex_unlock(&b->stats_lock);
}

/* ---- the key table ---- */

struct evict_args {
    uint64_t now, idle_ns;
};

static int evictable(struct keymap_node *node, void *arg)
{
    struct breaker_entry *e = keymap_entry(node, struct breaker_entry, node);
    const struct evict_args *a = arg;
    /* Tracked requests never touch an entry without holding in_flight,
     * and no one can look it up while we hold the map for writing. */
    pthread_mutex_lock(&e->lock);
    int idle = e->fsm.state == BREAKER_CLOSED && e->in_flight == 0 &&
               a->now - e->last_used_ns >= a->idle_ns;
    pthread_mutex_unlock(&e->lock);
    return idle;
}

static void entry_free(struct keymap_node *node, void *arg)
{
    struct breaker_entry *e = keymap_entry(node, struct breaker_entry, node);
    (void)arg;
    pthread_mutex_destroy(&e->lock);
    free(e);
}

/* Map held for writing. NULL when the table is full of live keys. */
static struct breaker_entry *entry_create(struct breaker *b, const char *key,
                                          size_t len, size_t upstream_len,
                                          uint64_t hash, uint64_t now)
{
    if (b->keys.count >= b->max_keys) {
        if (now - b->last_evict_scan_ns < EVICT_SCAN_EVERY_NS &&
            b->last_evict_scan_ns)
            return NULL;
        b->last_evict_scan_ns = now;
        struct evict_args args = {now, b->idle_ns};
        keymap_remove_if(&b->keys, evictable, entry_free, &args);
        if (b->keys.count >= b->max_keys)
            return NULL;
    }
    struct breaker_entry *e = calloc(1, sizeof *e + len + 1);
    if (!e)
        return NULL;
    pthread_mutex_init(&e->lock, NULL);
    breaker_fsm_init(&e->fsm, &b->limits);
    memcpy(e->key, key, len);
    e->key_len = len;
    e->upstream_len = upstream_len;
    e->last_used_ns = now;
    e->node.key = e->key;
    e->node.key_len = len;
    e->node.hash = hash;
    keymap_insert(&b->keys, &e->node);
    publish_health(b, e);
    return e;
}

/* Finds or creates the key and returns it locked, with the map still held
 * (so it cannot be evicted); release with entry_unlock_map(). */
static struct breaker_entry *entry_lock(struct breaker *b, const char *key,
                                        size_t len, size_t upstream_len,
                                        uint64_t now)
{
    uint64_t hash = keymap_hash(key, len);
    struct keymap_node *n;

    pthread_rwlock_rdlock(&b->map_lock);
    n = keymap_find(&b->keys, key, len, hash);
    if (!n) {
        pthread_rwlock_unlock(&b->map_lock);
        pthread_rwlock_wrlock(&b->map_lock);
        n = keymap_find(&b->keys, key, len, hash);
        if (!n) {
            struct breaker_entry *e =
                entry_create(b, key, len, upstream_len, hash, now);
            if (!e) {
                pthread_rwlock_unlock(&b->map_lock);
                return NULL;
            }
            n = &e->node;
        }
    }
    struct breaker_entry *e = keymap_entry(n, struct breaker_entry, node);
    pthread_mutex_lock(&e->lock);
    e->last_used_ns = now;
    return e;
}

static void entry_unlock_map(struct breaker *b, struct breaker_entry *e)
{
    pthread_mutex_unlock(&e->lock);
    pthread_rwlock_unlock(&b->map_lock);
}

/* Moves every key whose cool-down is over to half-open, so health shows
 * it (and the core routes to it again) even when no request asks for it. */
struct sweep_args {
    struct breaker *b;
    uint64_t now;
};

static void sweep_one(struct keymap_node *node, void *arg)
{
    const struct sweep_args *a = arg;
    struct breaker *b = a->b;
    struct breaker_entry *e = keymap_entry(node, struct breaker_entry, node);
    struct breaker_change c;

    pthread_mutex_lock(&e->lock);
    if (breaker_fsm_tick(&e->fsm, &b->limits, a->now, &c))
        publish_change(b, e, &c);
    else if (e->fsm.state == BREAKER_OPEN)
        due_lower(b, e->fsm.open_until_ns);
    pthread_mutex_unlock(&e->lock);
}

static void sweep_due(struct breaker *b, uint64_t now)
{
    if (now < atomic_load(&b->next_due_ns))
        return;
    if (pthread_mutex_trylock(&b->sweep_lock) != 0)
        return; /* another thread is at it */
    /* Reset first: keys opening meanwhile lower it again themselves. */
    atomic_store(&b->next_due_ns, UINT64_MAX);
    struct sweep_args args = {b, now};
    pthread_rwlock_rdlock(&b->map_lock);
    keymap_each(&b->keys, sweep_one, &args);
    pthread_rwlock_unlock(&b->map_lock);
    pthread_mutex_unlock(&b->sweep_lock);
}

/* ---- judging outcomes ---- */

static enum breaker_result classify(const struct breaker *b, int status,
                                    enum sluice_outcome outcome)
{
    switch (outcome) {
    case SLUICE_OUTCOME_OK:
        return BREAKER_SUCCESS;
    case SLUICE_OUTCOME_HTTP_ERROR:
        /* A 400 says the upstream is up; only listed statuses count. */
        return status_set_has(&b->failure_statuses, status) ? BREAKER_FAILURE
                                                            : BREAKER_SUCCESS;
    case SLUICE_OUTCOME_CONNECT_ERROR:
        return b->failure_on_connect_error ? BREAKER_FAILURE : BREAKER_NEUTRAL;
    case SLUICE_OUTCOME_TIMEOUT:
        return b->failure_on_timeout ? BREAKER_FAILURE : BREAKER_NEUTRAL;
    case SLUICE_OUTCOME_TRUNCATED:
        return b->failure_on_truncated ? BREAKER_FAILURE : BREAKER_NEUTRAL;
    case SLUICE_OUTCOME_NONE:
    case SLUICE_OUTCOME_CLIENT_GONE:
        break;
    }
    return BREAKER_NEUTRAL;
}

static void record_on(struct breaker *b, struct breaker_entry *e, uint64_t now,
                      enum breaker_result res, bool probe, uint32_t gen)
{
    struct breaker_change c;

    breaker_fsm_record(&e->fsm, &b->limits, now, res, probe, gen, &c);
    e->last_used_ns = now;
    if (res == BREAKER_FAILURE)
        b->host->counter_add(b->m_failures, 1);
    publish_change(b, e, &c);
}

/* One attempt against a key this request does not hold. */
static void record_other(struct breaker *b, const char *key, size_t len,
                         size_t upstream_len, uint64_t now,
                         enum breaker_result res)
{
    struct breaker_entry *e = entry_lock(b, key, len, upstream_len, now);
    if (!e)
        return;
    record_on(b, e, now, res, false, 0);
    entry_unlock_map(b, e);
}

static void judge_attempt(struct breaker *b, struct breaker_req *st,
                          uint64_t now, struct sluice_attempt *a,
                          bool *held_seen)
{
    char key[MAX_KEY];
    size_t len = make_key(b, key, a->upstream, a->model);
    enum breaker_result res = classify(b, a->status, a->outcome);
    struct breaker_entry *e = st->entry;

    if (!len || res == BREAKER_NEUTRAL)
        return;
    if (e && len == e->key_len && memcmp(key, e->key, len) == 0) {
        pthread_mutex_lock(&e->lock);
        /* Only the first attempt on the held key is the probe; a retry on
         * the same key is an ordinary observation. */
        record_on(b, e, now, res, st->probe && !*held_seen, st->generation);
        pthread_mutex_unlock(&e->lock);
        *held_seen = true;
    } else {
        record_other(b, key, len, a->upstream.len, now, res);
    }
}

/* Lets go of the held key; a probe without a verdict frees its slot. */
static void release_held(struct breaker *b, struct breaker_req *st,
                         uint64_t now, bool verdict_given)
{
    struct breaker_entry *e = st->entry;

    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    if (!verdict_given)
        record_on(b, e, now, BREAKER_NEUTRAL, st->probe, st->generation);
    e->in_flight--;
    pthread_mutex_unlock(&e->lock);
    st->entry = NULL; /* may be evicted from here on */
}

/* Judges every upstream attempt once, then lets go of the held key. */
static void judge(struct breaker *b, struct sluice_req *r,
                  struct breaker_req *st)
{
    const struct sluice_host *h = b->host;
    uint64_t now = h->now_ns(h);
    bool held_seen = false;

    if (st->judged)
        return;
    st->judged = true;
    held_seen = st->held_seen;
    if (SLUICE_HOST_HAS(h, resp_attempt) &&
        SLUICE_HOST_HAS(h, resp_attempt_count)) {
        size_t n = h->resp_attempt_count(r);
        for (size_t i = st->judged_upto; i < n; i++) {
            struct sluice_attempt a;
            if (h->resp_attempt(r, i, &a))
                judge_attempt(b, st, now, &a, &held_seen);
        }
        st->judged_upto = n;
    } else {
        struct sluice_attempt a = {
            .upstream = h->req_upstream(r),
            .model = h->req_target_model(r),
            .status = h->resp_status(r),
            .outcome = h->resp_outcome(r),
        };
        judge_attempt(b, st, now, &a, &held_seen);
    }
    release_held(b, st, now, held_seen);
}

/* ---- request path ---- */

/* Tries `key`; on PASS/PROBE the request now holds it. */
static bool try_admit(struct breaker *b, struct breaker_req *st,
                      const char *key, size_t len, size_t upstream_len,
                      uint64_t now, uint64_t *retry_ms, bool *tracked)
{
    struct breaker_change c;
    uint32_t gen = 0;
    struct breaker_entry *e = entry_lock(b, key, len, upstream_len, now);

    *retry_ms = 0;
    *tracked = e != NULL;
    if (!e)
        return false;
    enum breaker_verdict v =
        breaker_fsm_admit(&e->fsm, &b->limits, now, &gen, retry_ms, &c);
    publish_change(b, e, &c);
    if (v != BREAKER_DENY) {
        e->in_flight++;
        st->entry = e;
        st->probe = v == BREAKER_PROBE;
        st->generation = gen;
    } else if (*retry_ms == 0) {
        *retry_ms = HALF_OPEN_RETRY_MS;
    }
    entry_unlock_map(b, e);
    return v != BREAKER_DENY;
}

/* The fallback upstream/model, if configured and not itself open. */
static bool fallback_route(struct breaker *b, struct sluice_req *r,
                           struct breaker_req *st, uint64_t now)
{
    const struct sluice_host *h = b->host;
    struct sluice_str up =
        b->fallback_upstream ? cstr(b->fallback_upstream) : h->req_upstream(r);
    struct sluice_str model =
        b->fallback_model ? cstr(b->fallback_model) : h->req_target_model(r);
    char key[MAX_KEY];
    uint64_t retry_ms;
    bool tracked;
    size_t len = make_key(b, key, up, model);

    if (!b->fallback_upstream && !b->fallback_model)
        return false;
    if (!len || !try_admit(b, st, key, len, up.len, now, &retry_ms, &tracked))
        return false;
    int rc = SLUICE_OK;
    if (b->fallback_upstream)
        rc = h->upstream_set_name(r, up);
    if (rc == SLUICE_OK && b->fallback_model)
        rc = h->upstream_set_model(r, model);
    if (rc != SLUICE_OK) {
        h->log(h, SLUICE_LOG_WARN,
               "breaker: fallback %.*s/%.*s refused by the core (%d)",
               (int)up.len, up.ptr ? up.ptr : "", (int)model.len,
               model.ptr ? model.ptr : "", rc);
        release_held(b, st, now, false);
        return false;
    }
    return true;
}

static enum sluice_action breaker_on_request(void *self, struct sluice_req *r,
                                             void *state)
{
    struct breaker *b = self;
    struct breaker_req *st = state;
    const struct sluice_host *h = b->host;
    struct sluice_str up = h->req_upstream(r);
    char key[MAX_KEY];
    uint64_t retry_ms;
    bool tracked;

    if (st->entry)
        return SLUICE_CONTINUE; /* called again: already let through */
    uint64_t now = h->now_ns(h);
    sweep_due(b, now);
    size_t len = make_key(b, key, up, h->req_target_model(r));
    if (!len)
        return SLUICE_CONTINUE;
    if (try_admit(b, st, key, len, up.len, now, &retry_ms, &tracked))
        return SLUICE_CONTINUE;
    if (!tracked) {
        h->counter_add(b->m_untracked, 1);
        return SLUICE_CONTINUE; /* table full: fail open */
    }

    struct sluice_str tag = cstr("breaker");
    if (fallback_route(b, r, st, now)) {
        h->var_set(r, "sluice.fallback", tag);
        h->counter_add(b->m_fallbacks, 1);
        return SLUICE_CONTINUE;
    }
    if (b->static_body) {
        struct sluice_str body = {b->static_body, b->static_len};
        h->var_set(r, "sluice.fallback", tag);
        h->counter_add(b->m_fallbacks, 1);
        return h->respond(r, 200, "application/json", body);
    }
    char msg[MAX_KEY + 96];
    snprintf(msg, sizeof msg,
             "upstream %.*s is unavailable (circuit open); retry later",
             (int)len, key);
    h->counter_add(b->m_rejected, 1);
    return h->reject(r, 503, "api_error", "upstream_unavailable", msg,
                     retry_ms);
}

/* Runs as each attempt ends. Failures are judged at once, so a breaker
 * that opens mid-request stops the core's retries into it; a success waits
 * for on_response, when its outcome (complete or cut) is final. */
static enum sluice_action
breaker_on_upstream_response(void *self, struct sluice_req *r, void *state)
{
    struct breaker *b = self;
    struct breaker_req *st = state;
    const struct sluice_host *h = b->host;

    if (st->judged || !SLUICE_HOST_HAS(h, resp_attempt) ||
        !SLUICE_HOST_HAS(h, resp_attempt_count))
        return SLUICE_CONTINUE;
    uint64_t now = h->now_ns(h);
    size_t n = h->resp_attempt_count(r);
    for (size_t i = st->judged_upto; i < n; i++) {
        struct sluice_attempt a;
        if (!h->resp_attempt(r, i, &a))
            break;
        bool last = i + 1 == n;
        if (last && classify(b, a.status, a.outcome) != BREAKER_FAILURE)
            break;
        judge_attempt(b, st, now, &a, &st->held_seen);
        st->judged_upto = i + 1;
    }
    return SLUICE_CONTINUE;
}

static void breaker_on_response(void *self, struct sluice_req *r, void *state)
{
    judge(self, r, state);
}

static void breaker_on_log(void *self, struct sluice_req *r, void *state)
{
    judge(self, r, state); /* no-op when on_response already judged */
}

/* A retry or fallback into another circuit (upstream, or upstream and
 * model) asks that circuit as a new request would: an open one refuses (or
 * runs the configured fallback), a half-open one lets it through only as
 * one of its probes. The circuit held so far is judged on the attempts
 * made under it and let go first. A retry into the held circuit goes on
 * under it. */
static enum sluice_action breaker_on_attempt(void *self, struct sluice_req *r,
                                             void *state)
{
    struct breaker *b = self;
    struct breaker_req *st = state;
    const struct sluice_host *h = b->host;
    struct breaker_entry *e = st->entry;
    char key[MAX_KEY];
    size_t len = make_key(b, key, h->req_upstream(r), h->req_target_model(r));

    if (!len || (e && len == e->key_len && memcmp(key, e->key, len) == 0))
        return SLUICE_CONTINUE;
    if (e) {
        judge(b, r, st); /* the attempts so far; releases the held key */
        st->judged = false;
        st->held_seen = false;
        st->probe = false;
    }
    return breaker_on_request(self, r, state);
}

/* ---- status ---- */

static void status_one(struct keymap_node *node, void *arg)
{
    struct breaker_entry *e = keymap_entry(node, struct breaker_entry, node);
    json_t **ctx = arg; /* [0]: array, [1]: holds now as an integer */
    uint64_t now = (uint64_t)json_integer_value(ctx[1]);
    uint64_t total, failed;

    pthread_mutex_lock(&e->lock);
    breaker_fsm_window(&e->fsm, now, &total, &failed);
    json_t *o = json_pack(
        "{s:s%, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "key", e->key,
        e->key_len, "state", breaker_state_name(e->fsm.state),
        "consecutive_failures", (json_int_t)e->fsm.consecutive,
        "window_requests", (json_int_t)total, "window_failures",
        (json_int_t)failed, "failures_total", (json_int_t)e->fsm.failures_total,
        "successes_total", (json_int_t)e->fsm.successes_total,
        "remaining_cooldown_ms",
        (json_int_t)breaker_fsm_remaining_ms(&e->fsm, now), "probes_in_flight",
        (json_int_t)e->fsm.probes_in_flight, "half_open_successes",
        (json_int_t)e->fsm.half_open_successes);
    pthread_mutex_unlock(&e->lock);
    json_array_append_new(ctx[0], o);
}

static size_t breaker_status_json(void *self, char *buf, size_t cap)
{
    struct breaker *b = self;
    json_t *ctx[2] = {json_array(),
                      json_integer((json_int_t)b->host->now_ns(b->host))};

    pthread_rwlock_rdlock(&b->map_lock);
    keymap_each(&b->keys, status_one, ctx);
    pthread_rwlock_unlock(&b->map_lock);
    json_t *root = json_pack("{s:s, s:o}", "scope",
                             b->scope_model ? "upstream_model" : "upstream",
                             "keys", ctx[0]);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    int n = snprintf(buf, cap, "%s", text ? text : "null");
    free(text);
    json_decref(root);
    json_decref(ctx[1]);
    return n > 0 ? (size_t)n : 0;
}

/* ---- lifetime ---- */

static int always(struct keymap_node *node, void *arg)
{
    (void)node;
    (void)arg;
    return 1;
}

static void breaker_destroy(void *self)
{
    struct breaker *b = self;
    if (!b)
        return;
    if (b->keys.buckets) {
        keymap_remove_if(&b->keys, always, entry_free, NULL);
        keymap_fini(&b->keys);
    }
    pthread_rwlock_destroy(&b->map_lock);
    pthread_mutex_destroy(&b->sweep_lock);
    pthread_mutex_destroy(&b->stats_lock);
    free(b->static_body);
    free(b);
}

static void make_metrics(struct breaker *b)
{
    const struct sluice_host *h = b->host;
    b->m_transitions = h->counter(h, "sluice_breaker_transitions_total",
                                  "breaker state changes");
    b->m_opened = h->counter(h, "sluice_breaker_opened_total",
                             "times a breaker key opened");
    b->m_rejected = h->counter(h, "sluice_breaker_rejected_total",
                               "requests refused with 503 while open");
    b->m_fallbacks = h->counter(h, "sluice_breaker_fallbacks_total",
                                "requests served by a fallback while open");
    b->m_untracked = h->counter(h, "sluice_breaker_untracked_total",
                                "requests passed untracked (key table full)");
    b->m_failures = h->counter(h, "sluice_breaker_failures_total",
                               "upstream attempts judged as failures");
    b->m_state = h->gauge(h, "sluice_breaker_state",
                          "1 if any key is open, else 2 if any is "
                          "half-open, else 0");
    b->m_open_keys =
        h->gauge(h, "sluice_breaker_open_keys", "breaker keys now open");
    b->m_half_open_keys = h->gauge(h, "sluice_breaker_half_open_keys",
                                   "breaker keys now half-open");
    h->gauge_set(b->m_state, 0);
    h->gauge_set(b->m_open_keys, 0);
    h->gauge_set(b->m_half_open_keys, 0);
}

static int breaker_create(const struct sluice_host *host, const void *config,
                          struct sluice_str raw_json, void **self,
                          struct sluice_error *err)
{
    const struct breaker_config *c = config;
    struct breaker *b = calloc(1, sizeof *b);

    if (!b) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    b->host = host;
    b->scope_model = c->scope == SCOPE_UPSTREAM_MODEL;
    b->limits = (struct breaker_limits){
        .consecutive_failures = (uint32_t)c->consecutive_failures,
        .window_ns = (uint64_t)c->window_s * 1000000000ull,
        .failure_rate = c->failure_rate,
        .min_volume = (uint32_t)c->min_volume,
        .recovery_ns = (uint64_t)c->recovery_timeout_ms * NS_PER_MS,
        .half_open_max_calls = (uint32_t)c->half_open_max_calls,
        .success_threshold = (uint32_t)c->success_threshold,
    };
    b->failure_on_timeout = c->failure_on_timeout;
    b->failure_on_connect_error = c->failure_on_connect_error;
    b->failure_on_truncated = c->failure_on_truncated;
    b->fallback_upstream = c->fallback_upstream && *c->fallback_upstream
                               ? c->fallback_upstream
                               : NULL;
    b->fallback_model =
        c->fallback_model && *c->fallback_model ? c->fallback_model : NULL;
    b->max_keys = (size_t)c->max_keys;
    b->idle_ns = (uint64_t)c->idle_evict_s * 1000000000ull;
    atomic_init(&b->next_due_ns, UINT64_MAX);
    pthread_rwlock_init(&b->map_lock, NULL);
    pthread_mutex_init(&b->sweep_lock, NULL);
    pthread_mutex_init(&b->stats_lock, NULL);

    if (b->fallback_model && !b->fallback_upstream && !b->scope_model) {
        /* With scope "upstream" the whole upstream counts as down, so
         * another model on it would go straight back to the outage. */
        snprintf(err->message, sizeof err->message,
                 "fallback_model: needs fallback_upstream or scope "
                 "\"upstream_model\"");
        goto fail;
    }
    if (read_options(b, c, err))
        goto fail;
    if (keymap_init(&b->keys, b->max_keys)) {
        snprintf(err->message, sizeof err->message, "out of memory");
        goto fail;
    }
    make_metrics(b);
    *self = b;
    return 0;
fail:
    breaker_destroy(b);
    return -1;
}

static const struct sluice_plugin breaker_plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "breaker",
    .version = "1.0.0",
    .summary = "circuit breaker per upstream (or upstream and model) with "
               "fallbacks",
    .config = breaker_fields,
    .config_size = sizeof(struct breaker_config),
    .req_state_size = sizeof(struct breaker_req),
    .create = breaker_create,
    .destroy = breaker_destroy,
    .on_request = breaker_on_request,
    .on_upstream_response = breaker_on_upstream_response,
    .on_response = breaker_on_response,
    .on_log = breaker_on_log,
    .on_attempt = breaker_on_attempt,
    .status_json = breaker_status_json,
};

SLUICE_PLUGIN_EXPORT(breaker_plugin)
