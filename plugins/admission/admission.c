/* admission: per-upstream concurrency cap with a bounded priority queue,
 * fair across tenants within a priority (wfq.c).
 *
 * A request takes a free slot and goes on, or waits in its upstream's
 * queue: on_request returns SUSPEND with resume_after(queue_timeout) as
 * the deadline. When a slot frees (on_log of a request that held one, which
 * runs exactly once however the request ended, or a failed attempt in
 * on_upstream_response, so a retry's backoff holds no slot), the next
 * waiter is popped, marked granted (the slot passes to it directly) and
 * woken with wake().
 * On re-entry the waiter finds itself granted and goes on, or past its
 * deadline and leaves with 504. The core re-enters on the wake or on the
 * timer, whichever comes first; both orders are handled under the lane
 * lock. When the queue is full, a more urgent request sheds the queued
 * request that would be served last at a less urgent level; else a
 * request from a tenant under its fair share of its level displaces the
 * newest request of the tenant furthest over its share (wfq_fair_victim);
 * otherwise it is refused with an estimated wait.
 *
 * Locking: lanes_lock (rwlock) guards the upstream table (lanes are never
 * freed before destroy); each lane has a mutex; stats_lock (taken inside a
 * lane lock) keeps the summed gauges consistent. wake() is called with no
 * lock held.
 */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/keymap.h"
#include "sluice/host.h"
#include "sluice/plugin.h"
#include "wfq.h"

#define NS_PER_MS 1000000ull
#define EWMA_ALPHA 0.2
#define DEFAULT_SERVICE_MS 1000.0 /* until a slot hold time was measured */
#define MAX_UPSTREAM_NAME 64

static const char *const prio_names[WFQ_LEVELS] = {"critical", "realtime",
                                                   "standard", "batch", "low"};

struct admission_config {
    int64_t max_concurrency;
    int64_t max_queue;
    int64_t queue_timeout_ms;
    int64_t queue_full_status;
    bool shed_lower_priority;
    int64_t max_upstreams;
    struct sluice_cfg_map tenant_weights;  /* of double */
    struct sluice_cfg_map upstream_limits; /* of struct limits_cfg */
};

/* One upstream_limits entry; -1: not set (the instance-wide value). */
struct limits_cfg {
    int64_t max_concurrency;
    int64_t max_queue;
};

struct lane_limits {
    char name[MAX_UPSTREAM_NAME];
    uint32_t max_concurrency;
    uint32_t max_queue;
};

enum waiter_state { WAITING, GRANTED, SHED };

/* One queued request; owned by the plugin, pointed to by the request's
 * state. Other threads touch it only under the lane lock while queued. */
struct waiter {
    struct wfq_item item;
    sluice_wake_t ticket;
    uint64_t enqueued_ns;
    uint64_t deadline_ns;
    enum waiter_state state;
};

struct lane {
    struct keymap_node node;
    pthread_mutex_t lock;
    struct wfq queue;
    uint32_t in_flight; /* slots taken, including granted-not-yet-resumed */
    uint32_t max_concurrency;
    uint32_t max_queue;
    double ewma_hold_ms; /* < 0 until the first slot was released */
    uint64_t admitted, rejected, timeouts, shed, displaced;
    size_t name_len;
    char name[];
};

struct tenant_weight {
    struct keymap_node node;
    uint32_t weight; /* thousandths, as wfq wants it */
    char tenant[];
};

struct admission {
    const struct sluice_host *host;
    uint32_t max_concurrency, max_queue;
    uint64_t queue_timeout_ms;
    int full_status;
    bool shed_lower;
    size_t max_upstreams;
    struct lane_limits *limits; /* per-upstream overrides */
    size_t limit_count;
    struct keymap weights; /* read-only after create */

    pthread_rwlock_t lanes_lock;
    struct keymap lanes;

    pthread_mutex_t stats_lock;
    size_t depth[WFQ_LEVELS];
    uint64_t in_flight;

    struct sluice_metric *m_depth[WFQ_LEVELS], *m_wait[WFQ_LEVELS],
        *m_in_flight, *m_admitted, *m_queued, *m_rejected, *m_timeouts,
        *m_cancelled, *m_shed, *m_displaced, *m_untracked;
};

struct admission_req {
    struct lane *lane;
    struct waiter *waiter; /* while queued, or granted and not resumed */
    uint64_t slot_since_ns;
    bool holds_slot;
};

/* ---- config ---- */

static const struct sluice_cfg_field weight_elem = {
    .type = SLUICE_CFG_DOUBLE,
    .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
    .min = 0.001,
    .max = 1000};

static const struct sluice_cfg_field limits_keys[] = {
    {.name = "max_concurrency",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX | SLUICE_CFG_MARK_UNSET,
     .min = 1,
     .max = 1000000,
     .offset = offsetof(struct limits_cfg, max_concurrency),
     .help = "requests in flight to this upstream"},
    {.name = "max_queue",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX | SLUICE_CFG_MARK_UNSET,
     .min = 0,
     .max = 1000000,
     .offset = offsetof(struct limits_cfg, max_queue),
     .help = "requests waiting for this upstream"},
    {0},
};
static const struct sluice_cfg_field limits_elem = {
    .type = SLUICE_CFG_OBJECT,
    .fields = limits_keys,
    .size = sizeof(struct limits_cfg)};

#define FIELD(n) offsetof(struct admission_config, n)
static const struct sluice_cfg_field admission_fields[] = {
    {.name = "max_concurrency",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "64",
     .min = 1,
     .max = 1000000,
     .offset = FIELD(max_concurrency),
     .help = "requests in flight per upstream"},
    {.name = "max_queue",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "1000",
     .max = 1000000,
     .offset = FIELD(max_queue),
     .help = "requests waiting per upstream (0: no queue)"},
    {.name = "queue_timeout_ms",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "30000",
     .min = 1,
     .max = 3600000,
     .offset = FIELD(queue_timeout_ms),
     .help = "longest wait for a slot before a 504"},
    {.name = "queue_full_status",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "429",
     .min = 429,
     .max = 503,
     .offset = FIELD(queue_full_status),
     .help = "status when the queue is full: 429 or 503"},
    {.name = "shed_lower_priority",
     .type = SLUICE_CFG_BOOL,
     .default_value = "true",
     .offset = FIELD(shed_lower_priority),
     .help =
         "when full, a more urgent request evicts the last less urgent one"},
    {.name = "max_upstreams",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "256",
     .min = 1,
     .max = 65536,
     .offset = FIELD(max_upstreams),
     .help = "upstreams tracked at most; more pass unlimited"},
    {.name = "tenant_weights",
     .type = SLUICE_CFG_MAP,
     .offset = FIELD(tenant_weights),
     .help = "{\"tenant\": weight} for fair queuing; others weigh 1",
     .elem = &weight_elem},
    {.name = "upstream_limits",
     .type = SLUICE_CFG_MAP,
     .offset = FIELD(upstream_limits),
     .help = "{\"upstream\": {\"max_concurrency\": n, \"max_queue\": n}} "
             "overrides",
     .elem = &limits_elem},
    {0},
};
#undef FIELD

static int cfg_error(struct sluice_error *err, const char *fmt, const char *a)
{
    snprintf(err->message, sizeof err->message, fmt, a);
    return -1;
}

/* Validated by the core: names and weights in 0.001..1000. */
static int read_weights(struct admission *a, const struct admission_config *c,
                        struct sluice_error *err)
{
    const struct sluice_cfg_map *m = &c->tenant_weights;

    if (keymap_init(&a->weights, m->count))
        return cfg_error(err, "%s", "out of memory");
    for (size_t i = 0; i < m->count; i++) {
        const char *tenant = m->keys[i];
        double w = *SLUICE_CFG_VALUE(*m, double, i);
        size_t len = strlen(tenant);
        struct tenant_weight *tw = calloc(1, sizeof *tw + len + 1);
        if (!tw)
            return cfg_error(err, "%s", "out of memory");
        memcpy(tw->tenant, tenant, len);
        tw->weight = (uint32_t)llround(w * WFQ_WEIGHT_ONE);
        tw->node.key = tw->tenant;
        tw->node.key_len = len;
        tw->node.hash = keymap_hash(tenant, len);
        keymap_insert(&a->weights, &tw->node);
    }
    return 0;
}

static int read_limits(struct admission *a, const struct admission_config *c,
                       struct sluice_error *err)
{
    const struct sluice_cfg_map *m = &c->upstream_limits;

    if (!m->count)
        return 0;
    a->limits = calloc(m->count + 1, sizeof *a->limits);
    if (!a->limits)
        return cfg_error(err, "%s", "out of memory");
    for (size_t i = 0; i < m->count; i++) {
        const char *name = m->keys[i];
        const struct limits_cfg *v = SLUICE_CFG_VALUE(*m, struct limits_cfg, i);
        struct lane_limits *l = &a->limits[a->limit_count];
        if (strlen(name) >= sizeof l->name)
            return cfg_error(err, "upstream_limits.%.64s: name too long", name);
        snprintf(l->name, sizeof l->name, "%s", name);
        l->max_concurrency = v->max_concurrency >= 0
                                 ? (uint32_t)v->max_concurrency
                                 : a->max_concurrency;
        l->max_queue =
            v->max_queue >= 0 ? (uint32_t)v->max_queue : a->max_queue;
        a->limit_count++;
    }
    return 0;
}

/* ---- gauges summed over upstreams ---- */

/* Called with the lane lock held; stats_lock keeps gauge writes ordered. */
static void depth_add(struct admission *a, int level, int delta)
{
    pthread_mutex_lock(&a->stats_lock);
    a->depth[level] += (size_t)(ptrdiff_t)delta;
    a->host->gauge_set(a->m_depth[level], (double)a->depth[level]);
    pthread_mutex_unlock(&a->stats_lock);
}

static void in_flight_add(struct admission *a, int delta)
{
    pthread_mutex_lock(&a->stats_lock);
    a->in_flight += (uint64_t)(int64_t)delta;
    a->host->gauge_set(a->m_in_flight, (double)a->in_flight);
    pthread_mutex_unlock(&a->stats_lock);
}

/* ---- lanes ---- */

static struct lane *lane_create(struct admission *a, struct sluice_str name,
                                uint64_t hash)
{
    struct lane *l;

    if (a->lanes.count >= a->max_upstreams)
        return NULL;
    l = calloc(1, sizeof *l + name.len + 1);
    if (!l)
        return NULL;
    if (wfq_init(&l->queue, 16)) {
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    memcpy(l->name, name.ptr, name.len);
    l->name_len = name.len;
    l->max_concurrency = a->max_concurrency;
    l->max_queue = a->max_queue;
    l->ewma_hold_ms = -1;
    for (size_t i = 0; i < a->limit_count; i++) {
        if (strlen(a->limits[i].name) == name.len &&
            memcmp(a->limits[i].name, name.ptr, name.len) == 0) {
            l->max_concurrency = a->limits[i].max_concurrency;
            l->max_queue = a->limits[i].max_queue;
        }
    }
    l->node.key = l->name;
    l->node.key_len = name.len;
    l->node.hash = hash;
    keymap_insert(&a->lanes, &l->node);
    return l;
}

static struct lane *lane_get(struct admission *a, struct sluice_str name)
{
    uint64_t hash = keymap_hash(name.ptr, name.len);
    struct keymap_node *n;

    pthread_rwlock_rdlock(&a->lanes_lock);
    n = keymap_find(&a->lanes, name.ptr, name.len, hash);
    pthread_rwlock_unlock(&a->lanes_lock);
    if (n)
        return keymap_entry(n, struct lane, node);

    struct lane *l = NULL;
    pthread_rwlock_wrlock(&a->lanes_lock);
    n = keymap_find(&a->lanes, name.ptr, name.len, hash);
    l = n ? keymap_entry(n, struct lane, node) : lane_create(a, name, hash);
    pthread_rwlock_unlock(&a->lanes_lock);
    return l;
}

static uint32_t tenant_weight(const struct admission *a, struct sluice_str t)
{
    struct keymap_node *n =
        keymap_find(&a->weights, t.ptr, t.len, keymap_hash(t.ptr, t.len));
    return n ? keymap_entry(n, struct tenant_weight, node)->weight
             : WFQ_WEIGHT_ONE;
}

/* Wait before a new request at `level` would get a slot: everything ahead
 * of it times the recent slot hold time, spread over the slots. */
static uint64_t estimate_wait_ms(const struct lane *l, int level)
{
    double hold = l->ewma_hold_ms >= 0 ? l->ewma_hold_ms : DEFAULT_SERVICE_MS;
    double ahead = (double)wfq_depth_upto(&l->queue, level) + 1;
    double ms = ceil(ahead * hold / l->max_concurrency);
    return ms < 1 ? 1 : (uint64_t)ms;
}

/* Frees one slot (lane lock held) and hands it to the next waiter, whose
 * ticket is returned for waking once the lock is dropped (0: none). */
static sluice_wake_t release_slot(struct admission *a, struct lane *l,
                                  uint64_t now)
{
    struct wfq_item *it = wfq_pop(&l->queue);

    if (!it) {
        l->in_flight--;
        in_flight_add(a, -1);
        return 0;
    }
    struct waiter *w = keymap_entry(it, struct waiter, item);
    w->state = GRANTED; /* the slot passes over: in_flight stays */
    depth_add(a, it->level, -1);
    a->host->observe(a->m_wait[it->level],
                     (double)(now - w->enqueued_ns) / 1e9);
    return w->ticket;
}

static void wake(struct admission *a, sluice_wake_t ticket)
{
    if (ticket)
        a->host->wake(a->host, ticket);
}

/* ---- request path ---- */

/* With the lane locked: takes a free slot (and unlocks) or returns false
 * with the lock still held. */
static bool take_free_slot(struct admission *a, struct lane *l,
                           struct admission_req *st, int level, uint64_t now)
{
    if (l->in_flight >= l->max_concurrency)
        return false;
    l->in_flight++;
    l->admitted++;
    in_flight_add(a, 1);
    pthread_mutex_unlock(&l->lock);
    st->holds_slot = true;
    st->slot_since_ns = now;
    a->host->counter_add(a->m_admitted, 1);
    a->host->observe(a->m_wait[level], 0);
    return true;
}

static enum sluice_action refuse_full(struct admission *a, struct sluice_req *r,
                                      uint64_t wait_ms, const char *upstream,
                                      size_t len)
{
    char msg[160];
    snprintf(msg, sizeof msg,
             "too many requests queued for upstream %.*s; retry in about "
             "%llu ms",
             (int)len, upstream, (unsigned long long)wait_ms);
    a->host->counter_add(a->m_rejected, 1);
    return a->host->reject(r, a->full_status,
                           a->full_status == 429 ? "rate_limit_error"
                                                 : "api_error",
                           "queue_full", msg, wait_ms);
}

/* Takes a queued request out to be answered queue_full when it resumes
 * (lane lock held); returns its ticket for waking. */
static sluice_wake_t evict(struct admission *a, struct lane *l,
                           struct wfq_item *it)
{
    struct waiter *w = keymap_entry(it, struct waiter, item);
    depth_add(a, it->level, -1);
    wfq_remove(&l->queue, it);
    w->state = SHED;
    return w->ticket;
}

/* Queue full: evict the request that would be served last at the least
 * urgent level below `level`, if any (lane lock held). */
static sluice_wake_t shed_one(struct admission *a, struct lane *l, int level)
{
    for (int lv = WFQ_LEVELS - 1; lv > level; lv--) {
        struct wfq_item *it = wfq_last(&l->queue, lv);
        if (!it)
            continue;
        l->shed++;
        a->host->counter_add(a->m_shed, 1);
        return evict(a, l, it);
    }
    return 0;
}

/* Queue full and nothing less urgent to shed: a tenant under its fair
 * share of the places its level holds (everything but the other levels'
 * requests) displaces the newest request of the tenant furthest over its
 * share (lane lock held). */
static sluice_wake_t displace_one(struct admission *a, struct lane *l,
                                  int level, struct sluice_str tenant,
                                  uint32_t weight)
{
    size_t others = l->queue.depth - wfq_depth(&l->queue, level);
    size_t room = l->max_queue > others ? l->max_queue - others : 0;
    struct wfq_item *it =
        wfq_fair_victim(&l->queue, level, tenant.ptr, tenant.len, weight, room);
    if (!it)
        return 0;
    l->displaced++;
    a->host->counter_add(a->m_displaced, 1);
    return evict(a, l, it);
}

static enum sluice_action enqueue(struct admission *a, struct sluice_req *r,
                                  struct admission_req *st, struct lane *l,
                                  int level, uint64_t now)
{
    const struct sluice_host *h = a->host;
    struct sluice_str tenant = h->req_identity(r, SLUICE_ID_TENANT);
    struct waiter *w = calloc(1, sizeof *w);
    sluice_wake_t shed = 0;

    if (!tenant.len)
        tenant = (struct sluice_str){"default", 7};
    uint32_t weight = tenant_weight(a, tenant);
    if (!w)
        return h->reject(r, 503, "api_error", "admission_error",
                         "out of memory while queueing", 0);
    w->ticket = h->wake_token(r); /* before anyone can pop and wake it */
    w->enqueued_ns = now;
    w->deadline_ns = now + a->queue_timeout_ms * NS_PER_MS;

    pthread_mutex_lock(&l->lock);
    if (take_free_slot(a, l, st, level, now)) { /* freed since we looked */
        free(w);
        return SLUICE_CONTINUE;
    }
    if (l->queue.depth >= l->max_queue &&
        !(a->shed_lower && (shed = shed_one(a, l, level))) &&
        !(shed = displace_one(a, l, level, tenant, weight))) {
        uint64_t wait_ms = estimate_wait_ms(l, level);
        l->rejected++;
        pthread_mutex_unlock(&l->lock);
        free(w);
        return refuse_full(a, r, wait_ms, l->name, l->name_len);
    }
    if (wfq_push(&l->queue, &w->item, level, tenant.ptr, tenant.len, weight)) {
        pthread_mutex_unlock(&l->lock);
        wake(a, shed);
        free(w);
        return h->reject(r, 503, "api_error", "admission_error",
                         "out of memory while queueing", 0);
    }
    depth_add(a, level, 1);
    pthread_mutex_unlock(&l->lock);
    wake(a, shed);

    st->waiter = w;
    h->counter_add(a->m_queued, 1);
    h->resume_after(r, a->queue_timeout_ms);
    return SLUICE_SUSPEND;
}

/* Back after a wake or the deadline timer, in either order. */
static enum sluice_action resume(struct admission *a, struct sluice_req *r,
                                 struct admission_req *st)
{
    const struct sluice_host *h = a->host;
    struct lane *l = st->lane;
    struct waiter *w = st->waiter;
    uint64_t now = h->now_ns(h);
    int level = w->item.level;

    pthread_mutex_lock(&l->lock);
    switch (w->state) {
    case GRANTED:
        l->admitted++;
        pthread_mutex_unlock(&l->lock);
        st->waiter = NULL;
        free(w);
        st->holds_slot = true;
        st->slot_since_ns = now;
        h->counter_add(a->m_admitted, 1);
        return SLUICE_CONTINUE;
    case SHED: {
        uint64_t wait_ms = estimate_wait_ms(l, level);
        l->rejected++;
        pthread_mutex_unlock(&l->lock);
        st->waiter = NULL;
        free(w);
        return refuse_full(a, r, wait_ms, l->name, l->name_len);
    }
    case WAITING:
        break;
    }
    if (now < w->deadline_ns) {
        /* Woken early for another reason: keep waiting. */
        uint64_t left = (w->deadline_ns - now + NS_PER_MS - 1) / NS_PER_MS;
        pthread_mutex_unlock(&l->lock);
        h->resume_after(r, left);
        return SLUICE_SUSPEND;
    }
    wfq_remove(&l->queue, &w->item);
    depth_add(a, level, -1);
    l->timeouts++;
    pthread_mutex_unlock(&l->lock);
    h->observe(a->m_wait[level], (double)(now - w->enqueued_ns) / 1e9);
    st->waiter = NULL;
    free(w);
    h->counter_add(a->m_timeouts, 1);

    char msg[160];
    snprintf(msg, sizeof msg,
             "no capacity on upstream %.*s within %llu ms; try again later",
             (int)l->name_len, l->name,
             (unsigned long long)a->queue_timeout_ms);
    return h->reject(r, 504, "timeout_error", "queue_timeout", msg, 0);
}

static int priority_level(enum sluice_priority p)
{
    return (unsigned)p < WFQ_LEVELS ? (int)p : SLUICE_PRIO_STANDARD;
}

static enum sluice_action admission_on_request(void *self, struct sluice_req *r,
                                               void *state)
{
    struct admission *a = self;
    struct admission_req *st = state;
    const struct sluice_host *h = a->host;

    /* Our own state tells re-entry apart: req_resumed() may also be true
     * because an earlier plugin suspended this request. */
    if (st->waiter)
        return resume(a, r, st);
    if (st->lane)
        return SLUICE_CONTINUE;

    struct sluice_str up = h->req_upstream(r);
    if (!up.len)
        return SLUICE_CONTINUE;
    struct lane *l = lane_get(a, up);
    if (!l) {
        h->counter_add(a->m_untracked, 1);
        return SLUICE_CONTINUE;
    }
    st->lane = l;
    int level = priority_level(h->req_priority(r));
    uint64_t now = h->now_ns(h);

    pthread_mutex_lock(&l->lock);
    if (take_free_slot(a, l, st, level, now))
        return SLUICE_CONTINUE;
    pthread_mutex_unlock(&l->lock);
    return enqueue(a, r, st, l, level, now);
}

/* Gives back what the request holds on its lane: its slot (passed to the
 * next waiter) or its place in the queue. */
static void leave_lane(struct admission *a, struct admission_req *st)
{
    struct lane *l = st->lane;
    struct waiter *w = st->waiter;
    sluice_wake_t next = 0;
    uint64_t now = a->host->now_ns(a->host);

    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    if (w) {
        if (w->state == GRANTED) {
            next = release_slot(a, l, now); /* granted, never used */
        } else if (w->state == WAITING) {
            wfq_remove(&l->queue, &w->item);
            depth_add(a, w->item.level, -1);
            a->host->counter_add(a->m_cancelled, 1);
        }
    }
    if (st->holds_slot) {
        double held = (double)(now - st->slot_since_ns) / 1e6;
        l->ewma_hold_ms =
            l->ewma_hold_ms < 0
                ? held
                : l->ewma_hold_ms + EWMA_ALPHA * (held - l->ewma_hold_ms);
        next = release_slot(a, l, now);
    }
    pthread_mutex_unlock(&l->lock);
    free(w);
    st->waiter = NULL;
    st->holds_slot = false;
    st->lane = NULL;
    wake(a, next);
}

static void admission_on_log(void *self, struct sluice_req *r, void *state)
{
    (void)r;
    leave_lane(self, state);
}

/* A failed attempt gives its slot back at once: the upstream is no longer
 * working on it, and a retry waiting out its backoff must not keep other
 * requests (another tenant's, interactive ones behind failing batch
 * lines) from the upstream. The retry queues again in on_attempt. */
static enum sluice_action
admission_on_upstream_response(void *self, struct sluice_req *r, void *state)
{
    struct admission *a = self;
    struct admission_req *st = state;
    int status = a->host->resp_status(r);
    if (st->holds_slot && (status == 0 || status >= 400))
        leave_lane(a, st);
    return SLUICE_CONTINUE;
}

/* A retry or fallback takes a slot of the upstream it goes to (queueing
 * for one if need be); a fallback first gives back the old upstream's. */
static enum sluice_action admission_on_attempt(void *self, struct sluice_req *r,
                                               void *state)
{
    struct admission_req *st = state;
    struct sluice_str up = ((struct admission *)self)->host->req_upstream(r);
    if (st->lane && !st->waiter &&
        (up.len != st->lane->name_len ||
         memcmp(up.ptr, st->lane->name, up.len) != 0))
        leave_lane(self, st);
    return admission_on_request(self, r, state);
}

/* ---- status ---- */

static void status_one(struct keymap_node *node, void *arg)
{
    struct lane *l = keymap_entry(node, struct lane, node);
    json_t *queued = json_object();

    pthread_mutex_lock(&l->lock);
    for (int i = 0; i < WFQ_LEVELS; i++)
        json_object_set_new(queued, prio_names[i],
                            json_integer((json_int_t)wfq_depth(&l->queue, i)));
    json_t *o = json_pack(
        "{s:s%, s:I, s:I, s:I, s:o, s:f, s:I, s:I, s:I, s:I, s:I}", "upstream",
        l->name, l->name_len, "in_flight", (json_int_t)l->in_flight,
        "max_concurrency", (json_int_t)l->max_concurrency, "max_queue",
        (json_int_t)l->max_queue, "queued", queued, "ewma_hold_ms",
        l->ewma_hold_ms < 0 ? 0.0 : l->ewma_hold_ms, "admitted_total",
        (json_int_t)l->admitted, "rejected_total", (json_int_t)l->rejected,
        "timeouts_total", (json_int_t)l->timeouts, "shed_total",
        (json_int_t)l->shed, "displaced_total", (json_int_t)l->displaced);
    pthread_mutex_unlock(&l->lock);
    json_array_append_new(arg, o);
}

static size_t admission_status_json(void *self, char *buf, size_t cap)
{
    struct admission *a = self;
    json_t *lanes = json_array();

    pthread_rwlock_rdlock(&a->lanes_lock);
    keymap_each(&a->lanes, status_one, lanes);
    pthread_rwlock_unlock(&a->lanes_lock);
    json_t *root = json_pack("{s:o}", "upstreams", lanes);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    int n = snprintf(buf, cap, "%s", text ? text : "null");
    free(text);
    json_decref(root);
    return n > 0 ? (size_t)n : 0;
}

/* ---- lifetime ---- */

static int always(struct keymap_node *node, void *arg)
{
    (void)node;
    (void)arg;
    return 1;
}

static void lane_free(struct keymap_node *node, void *arg)
{
    struct lane *l = keymap_entry(node, struct lane, node);
    (void)arg;
    wfq_fini(&l->queue);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static void weight_free(struct keymap_node *node, void *arg)
{
    (void)arg;
    free(keymap_entry(node, struct tenant_weight, node));
}

static void admission_destroy(void *self)
{
    struct admission *a = self;
    if (!a)
        return;
    if (a->lanes.buckets)
        keymap_remove_if(&a->lanes, always, lane_free, NULL);
    keymap_fini(&a->lanes);
    if (a->weights.buckets)
        keymap_remove_if(&a->weights, always, weight_free, NULL);
    keymap_fini(&a->weights);
    pthread_rwlock_destroy(&a->lanes_lock);
    pthread_mutex_destroy(&a->stats_lock);
    free(a->limits);
    free(a);
}

static void make_metrics(struct admission *a)
{
    static const double wait_bounds[] = {
        0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    static const char *const by_priority[] = {"priority"};
    const struct sluice_host *h = a->host;

    /* Per-priority series, resolved once: the hot path updates handles. A
     * 1.0 core has no labelled metrics; these stay NULL (ignored) there. */
    if (SLUICE_HOST_HAS(h, metric_with)) {
        struct sluice_metric_vec *depth =
            h->gauge_vec(h, "sluice_admission_queue_depth",
                         "requests queued, by priority (summed over upstreams)",
                         by_priority, 1, WFQ_LEVELS);
        struct sluice_metric_vec *wait = h->histogram_vec(
            h, "sluice_admission_wait_seconds", "wait for a slot, by priority",
            by_priority, 1, WFQ_LEVELS, wait_bounds,
            sizeof wait_bounds / sizeof *wait_bounds);
        for (int i = 0; i < WFQ_LEVELS; i++) {
            a->m_depth[i] = h->metric_with(depth, &prio_names[i]);
            h->gauge_set(a->m_depth[i], 0);
            a->m_wait[i] = h->metric_with(wait, &prio_names[i]);
        }
    }
    a->m_in_flight = h->gauge(h, "sluice_admission_in_flight",
                              "slots taken over all upstreams");
    h->gauge_set(a->m_in_flight, 0);
    a->m_admitted = h->counter(h, "sluice_admission_admitted_total",
                               "requests given a slot");
    a->m_queued = h->counter(h, "sluice_admission_queued_total",
                             "requests that had to wait");
    a->m_rejected = h->counter(h, "sluice_admission_rejected_total",
                               "requests refused: queue full");
    a->m_timeouts = h->counter(h, "sluice_admission_timeouts_total",
                               "requests that waited past queue_timeout_ms");
    a->m_cancelled = h->counter(h, "sluice_admission_cancelled_total",
                                "queued requests that ended while waiting");
    a->m_shed = h->counter(h, "sluice_admission_shed_total",
                           "queued requests evicted by more urgent ones");
    a->m_displaced =
        h->counter(h, "sluice_admission_displaced_total",
                   "queued requests displaced by a tenant under its fair "
                   "share");
    a->m_untracked = h->counter(h, "sluice_admission_untracked_total",
                                "requests passed unlimited (upstream table "
                                "full)");
}

static int admission_create(const struct sluice_host *host, const void *config,
                            struct sluice_str raw_json, void **self,
                            struct sluice_error *err)
{
    const struct admission_config *c = config;
    struct admission *a = calloc(1, sizeof *a);

    if (!a)
        return cfg_error(err, "%s", "out of memory");
    a->host = host;
    a->max_concurrency = (uint32_t)c->max_concurrency;
    a->max_queue = (uint32_t)c->max_queue;
    a->queue_timeout_ms = (uint64_t)c->queue_timeout_ms;
    a->full_status = (int)c->queue_full_status;
    a->shed_lower = c->shed_lower_priority;
    a->max_upstreams = (size_t)c->max_upstreams;
    pthread_rwlock_init(&a->lanes_lock, NULL);
    pthread_mutex_init(&a->stats_lock, NULL);

    if (a->full_status != 429 && a->full_status != 503) {
        cfg_error(err, "%s", "queue_full_status: must be 429 or 503");
        goto fail;
    }
    if (keymap_init(&a->lanes, a->max_upstreams)) {
        cfg_error(err, "%s", "out of memory");
        goto fail;
    }
    if (read_weights(a, c, err) || read_limits(a, c, err))
        goto fail;
    make_metrics(a);
    *self = a;
    return 0;
fail:
    admission_destroy(a);
    return -1;
}

static const struct sluice_plugin admission_plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "admission",
    .version = "1.0.0",
    .summary = "per-upstream concurrency cap with a priority queue fair "
               "across tenants",
    .config = admission_fields,
    .config_size = sizeof(struct admission_config),
    .req_state_size = sizeof(struct admission_req),
    .create = admission_create,
    .destroy = admission_destroy,
    .on_request = admission_on_request,
    .on_upstream_response = admission_on_upstream_response,
    .on_log = admission_on_log,
    .on_attempt = admission_on_attempt,
    .status_json = admission_status_json,
};

SLUICE_PLUGIN_EXPORT(admission_plugin)
