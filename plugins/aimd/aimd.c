/* aimd: an adaptive concurrency and/or rate limit per upstream (or
 * upstream + model) that learns the provider's capacity from 429 / 503 /
 * timeouts and its x-ratelimit headers; requests over the limit wait in a
 * bounded queue. See README.md. */
#include "aimd.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rl_duration.h"

#define NS_PER_MS 1000000ull
#define TICK_MS 10
#define WAKE_BATCH 32

#define OFF(f) offsetof(struct aimd_config, f)
#define RANGE (SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX)
#define POSITIVE_RANGE (RANGE | SLUICE_CFG_MIN_EXCLUSIVE)

static const char *const limit_by_choices[] = {"concurrency", "rate", "both",
                                               NULL};

static const struct sluice_cfg_field aimd_config_fields[] = {
    {.name = "scope",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"{upstream}\"",
     .offset = OFF(scope),
     .help =
         "what shares one limit: {upstream}, {upstream}:{target_model}, ..."},
    {.name = "limit_by",
     .type = SLUICE_CFG_ENUM,
     .default_value = "\"concurrency\"",
     .choices = limit_by_choices,
     .offset = OFF(limit_by),
     .help =
         "concurrency (requests in flight), rate (starts per second) or both"},
    {.name = "initial_concurrency",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "10",
     .min = 1,
     .max = 100000,
     .offset = OFF(initial_concurrency),
     .help = "starting concurrency limit"},
    {.name = "min_concurrency",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "1",
     .min = 1,
     .max = 100000,
     .offset = OFF(min_concurrency),
     .help = "the concurrency limit never drops below this"},
    {.name = "max_concurrency",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "1000",
     .min = 1,
     .max = 100000,
     .offset = OFF(max_concurrency),
     .help = "the concurrency limit never grows above this"},
    {.name = "initial_rate",
     .type = SLUICE_CFG_DOUBLE,
     .flags = POSITIVE_RANGE,
     .default_value = "10",
     .max = 1e6,
     .offset = OFF(initial_rate),
     .help = "starting rate, requests per second"},
    {.name = "min_rate",
     .type = SLUICE_CFG_DOUBLE,
     .flags = POSITIVE_RANGE,
     .default_value = "0.1",
     .max = 1e6,
     .offset = OFF(min_rate),
     .help = "the rate never drops below this"},
    {.name = "max_rate",
     .type = SLUICE_CFG_DOUBLE,
     .flags = POSITIVE_RANGE,
     .default_value = "1000",
     .max = 1e6,
     .offset = OFF(max_rate),
     .help = "the rate never grows above this"},
    {.name = "increase",
     .type = SLUICE_CFG_DOUBLE,
     .flags = POSITIVE_RANGE,
     .default_value = "1",
     .max = 1e6,
     .offset = OFF(increase),
     .help = "additive step: per round trip (concurrency), per second (rate)"},
    {.name = "decrease_factor",
     .type = SLUICE_CFG_DOUBLE,
     .flags = POSITIVE_RANGE,
     .default_value = "0.9",
     .max = 0.99,
     .offset = OFF(decrease_factor),
     .help = "multiplier applied on 429 / 503 / timeout (once per round)"},
    {.name = "max_queue",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "1000",
     .max = 1000000,
     .offset = OFF(max_queue),
     .help = "requests that may wait per key; beyond: refused"},
    {.name = "max_wait_ms",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "30000",
     .max = 3600000,
     .offset = OFF(max_wait_ms),
     .help = "longest wait in the queue or for a start time"},
    {.name = "reject_status",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "429",
     .min = 429,
     .max = 503,
     .offset = OFF(reject_status),
     .help = "status when the queue is full or the wait too "
             "long: 429 or 503"},
    {.name = "use_provider_headers",
     .type = SLUICE_CFG_BOOL,
     .default_value = "true",
     .offset = OFF(use_provider_headers),
     .help = "slow down on x-ratelimit-remaining-* / -reset-* before a 429"},
    {.name = "provider_low_water",
     .type = SLUICE_CFG_DOUBLE,
     .flags = RANGE,
     .default_value = "0.1",
     .max = 1,
     .offset = OFF(provider_low_water),
     .help = "pace to the provider's refill once remaining < this share of its "
             "limit"},
    {.name = "idle_forget_s",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "600",
     .min = 1,
     .max = 86400,
     .offset = OFF(idle_forget_s),
     .help = "a key idle this long restarts from the initial "
             "limit"},
    {.name = "max_keys",
     .type = SLUICE_CFG_INT,
     .flags = RANGE,
     .default_value = "10000",
     .min = 1,
     .max = 10000000,
     .offset = OFF(max_keys),
     .help = "most keys held in memory"},
    {0},
};

static uint64_t ceil_ms(uint64_t ns)
{
    return ns / NS_PER_MS + (ns % NS_PER_MS != 0);
}

static void grant(struct aimd_req *st)
{
    st->holds_slot = true; /* under the key's lock */
}

static void wake_all(struct aimd *a, const sluice_wake_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a->h->wake(a->h, t[i]);
}

static uint64_t idle_at(const struct aimd *a, const struct aimd_key *k)
{
    if (!aimd_key_quiet(k))
        return RL_MAP_PINNED;
    return k->last_active_ns + (uint64_t)a->cfg.idle_forget_s * 1000000000ull;
}

static bool lock_key(struct aimd *a, const struct aimd_req *st, uint64_t now,
                     struct rl_map_slot *slot)
{
    if (!rl_map_lock(a->map, st->key, st->key_len, now, true, slot))
        return false;
    struct aimd_key *k = slot->value;
    if (slot->created || !k->ready) {
        aimd_key_init(k, &a->p);
        k->last_active_ns = now;
    }
    return true;
}

/* Publishes a key's learned limit for the admin page and Lua policies. */
static void publish(struct aimd *a, const struct aimd_req *st,
                    const struct aimd_key *k)
{
    const struct sluice_host *h = a->h;
    char name[RL_KEY_MAX + 32];
    if (a->p.by_concurrency) {
        snprintf(name, sizeof name, "aimd.%.*s.limit", (int)st->key_len,
                 st->key);
        h->health_set(h, name, k->limit);
    }
    if (a->p.by_rate) {
        snprintf(name, sizeof name, "aimd.%.*s.rate", (int)st->key_len,
                 st->key);
        h->health_set(h, name, k->rate);
    }
}

/* Releases the request's slot, lets waiters in, unlocks. */
static void release_and_unlock(struct aimd *a, struct aimd_req *st,
                               struct rl_map_slot *slot, uint64_t now)
{
    struct aimd_key *k = slot->value;
    sluice_wake_t tickets[WAKE_BATCH];
    size_t n;

    if (st->holds_slot) {
        st->holds_slot = false;
        k->in_flight--;
    }
    k->last_active_ns = now;
    n = aimd_dispatch(k, &a->p, now, grant, tickets, WAKE_BATCH);
    rl_map_unlock(slot, idle_at(a, k));
    wake_all(a, tickets, n); /* more, if any, go on the next release/tick */
}

static uint64_t retry_estimate(const struct aimd *a, const struct aimd_key *k,
                               uint64_t now)
{
    uint64_t est =
        aimd_interval(k, &a->p, now) * ((uint64_t)k->q_len + k->paced + 1);
    if (k->pause_until_ns > now && k->pause_until_ns - now > est)
        est = k->pause_until_ns - now;
    return est ? est : 1000 * NS_PER_MS;
}

static enum sluice_action refuse(struct aimd *a, struct sluice_req *r,
                                 struct aimd_req *st, const char *why,
                                 uint64_t retry_ns)
{
    const struct sluice_host *h = a->h;
    char msg[160];
    st->phase = AIMD_PH_DONE;
    h->counter_add(a->m_rejected, 1);
    snprintf(msg, sizeof msg, "The upstream is at its learned capacity: %s.",
             why);
    return h->reject(r, (int)a->cfg.reject_status,
                     a->cfg.reject_status == 503 ? "service_unavailable"
                                                 : "requests",
                     "upstream_capacity", msg, ceil_ms(retry_ns));
}

/* The request holds its concurrency slot (if any); now its start time. */
static enum sluice_action pace_and_unlock(struct aimd *a, struct sluice_req *r,
                                          struct aimd_req *st,
                                          struct rl_map_slot *slot,
                                          uint64_t now)
{
    const struct sluice_host *h = a->h;
    struct aimd_key *k = slot->value;
    uint64_t start = aimd_next_start(k, &a->p, now);

    if (start <= now) {
        aimd_commit_start(k, &a->p, now, now);
        st->epoch = k->epoch;
        st->phase = AIMD_PH_ADMITTED;
        rl_map_unlock(slot, idle_at(a, k));
        h->counter_add(a->m_allowed, 1);
        return SLUICE_CONTINUE;
    }
    uint64_t wait = start - now;
    uint64_t left = st->deadline_ns > now ? st->deadline_ns - now : 0;
    if (wait <= left && k->paced < a->p.max_queue) {
        aimd_commit_start(k, &a->p, now, start);
        k->paced++;
        st->epoch = k->epoch;
        st->waited = true;
        st->phase = AIMD_PH_PACED;
        rl_map_unlock(slot, RL_MAP_PINNED);
        h->counter_add(a->m_paced, 1);
        h->resume_after(r, ceil_ms(wait));
        return SLUICE_SUSPEND;
    }
    release_and_unlock(a, st, slot, now);
    return refuse(a, r, st, "no start time within max_wait_ms", wait);
}

static enum sluice_action aimd_on_request(void *self, struct sluice_req *r,
                                          void *state)
{
    struct aimd *a = self;
    struct aimd_req *st = state;
    const struct sluice_host *h = a->h;
    uint64_t now = h->now_ns(h);
    struct rl_map_slot slot;
    struct aimd_key *k;

    switch (st->phase) {
    case AIMD_PH_NEW:
        break;
    case AIMD_PH_QUEUED:
        if (!lock_key(a, st, now, &slot))
            return SLUICE_CONTINUE;
        k = slot.value;
        if (st->holds_slot) /* a finishing request handed us its slot */
            return pace_and_unlock(a, r, st, &slot, now);
        if (now >= st->deadline_ns) {
            aimd_queue_remove(k, st);
            uint64_t est = retry_estimate(a, k, now);
            rl_map_unlock(&slot, idle_at(a, k));
            return refuse(a, r, st, "waited max_wait_ms for a slot", est);
        }
        st->ticket = h->wake_token(r); /* woken early: wait on */
        for (uint32_t i = 0; i < k->q_len; i++) {
            struct aimd_waiter *w = &k->q[(k->q_head + i) % k->q_cap];
            if (w->req == st)
                w->ticket = st->ticket;
        }
        rl_map_unlock(&slot, RL_MAP_PINNED);
        return SLUICE_SUSPEND;
    case AIMD_PH_PACED:
        if (lock_key(a, st, now, &slot)) {
            k = slot.value;
            if (k->pause_until_ns > now) {
                /* A Retry-After pause began after this start was promised:
                 * nothing starts before it ends. */
                uint64_t wait = k->pause_until_ns - now;
                if (now + wait <= st->deadline_ns) {
                    rl_map_unlock(&slot, RL_MAP_PINNED);
                    h->resume_after(r, ceil_ms(wait));
                    return SLUICE_SUSPEND;
                }
                k->paced--;
                release_and_unlock(a, st, &slot, now);
                return refuse(a, r, st, "paused by the provider", wait);
            }
            k->paced--;
            rl_map_unlock(&slot, idle_at(a, k));
        }
        st->phase = AIMD_PH_ADMITTED;
        h->counter_add(a->m_allowed, 1);
        return SLUICE_CONTINUE;
    default:
        return SLUICE_CONTINUE;
    }

    st->key_len = (uint16_t)rl_key_render(
        &a->scope, h, r, (struct sluice_str){0}, st->key, sizeof st->key);
    st->deadline_ns = now + a->max_wait_ns;
    if (!lock_key(a, st, now, &slot))
        return SLUICE_CONTINUE; /* out of memory: do not block traffic */
    k = slot.value;
    if (aimd_can_start(k, &a->p, now)) {
        k->in_flight++;
        st->holds_slot = true;
        return pace_and_unlock(a, r, st, &slot, now);
    }
    st->ticket = h->wake_token(r);
    struct aimd_waiter w = {st, st->ticket, st->deadline_ns, h->req_worker(r),
                            false};
    if (a->max_wait_ns && aimd_queue_push(k, &w, a->p.max_queue)) {
        st->phase = AIMD_PH_QUEUED;
        st->waited = true;
        rl_map_unlock(&slot, RL_MAP_PINNED);
        h->counter_add(a->m_queued, 1);
        return SLUICE_SUSPEND;
    }
    uint64_t est = retry_estimate(a, k, now);
    rl_map_unlock(&slot, idle_at(a, k));
    return refuse(a, r, st, "the queue is full", est);
}

/* ---- feedback ---- */

static uint64_t retry_after_of(const struct sluice_host *h,
                               const struct sluice_req *r)
{
    uint64_t v;
    if (rl_parse_u64(h->resp_header(r, "retry-after-ms"), &v))
        return v * NS_PER_MS;
    if (rl_retry_after_parse(h->resp_header(r, "retry-after"), h->wall_ms(h),
                             &v))
        return v;
    return 0;
}

static bool header_u64(const struct sluice_host *h, const struct sluice_req *r,
                       const char *name, uint64_t *out)
{
    return rl_parse_u64(h->resp_header(r, name), out);
}

static bool provider_hints(struct aimd *a, const struct sluice_req *r,
                           struct aimd_key *k, uint64_t now)
{
    const struct sluice_host *h = a->h;
    uint64_t lim, rem, reset;
    bool slowed = false;

    if (header_u64(h, r, "x-ratelimit-remaining-requests", &rem) &&
        rl_duration_parse(h->resp_header(r, "x-ratelimit-reset-requests"),
                          &reset)) {
        if (!header_u64(h, r, "x-ratelimit-limit-requests", &lim))
            lim = 0;
        slowed |= aimd_provider_hint(k, &a->p, now, lim, rem, reset, 1);
    }
    if (header_u64(h, r, "x-ratelimit-remaining-tokens", &rem) &&
        rl_duration_parse(h->resp_header(r, "x-ratelimit-reset-tokens"),
                          &reset) &&
        k->avg_tokens > 0) {
        if (!header_u64(h, r, "x-ratelimit-limit-tokens", &lim))
            lim = 0;
        slowed |=
            aimd_provider_hint(k, &a->p, now, lim, rem, reset, k->avg_tokens);
    }
    return slowed;
}

static void settle(struct aimd *a, struct sluice_req *r, struct aimd_req *st,
                   bool upstream_done)
{
    const struct sluice_host *h = a->h;
    uint64_t now = h->now_ns(h);
    struct rl_map_slot slot;

    if (st->settled || st->phase != AIMD_PH_ADMITTED)
        return;
    st->settled = true;
    if (!lock_key(a, st, now, &slot))
        return;
    struct aimd_key *k = slot.value;
    if (upstream_done) {
        int status = h->resp_status(r);
        enum sluice_outcome out = h->resp_outcome(r);
        struct sluice_usage u = h->resp_usage(r);
        if (u.known && u.total_tokens)
            k->avg_tokens = k->avg_tokens > 0 ? 0.8 * k->avg_tokens +
                                                    0.2 * (double)u.total_tokens
                                              : (double)u.total_tokens;
        if (status == 429 || status == 503 || out == SLUICE_OUTCOME_TIMEOUT) {
            if (aimd_overload(k, &a->p, st->epoch, now, retry_after_of(h, r)))
                h->counter_add(a->m_decreases, 1);
        } else if (out == SLUICE_OUTCOME_OK && status >= 200 && status < 300) {
            uint64_t iv = aimd_interval(k, &a->p, now);
            bool busy = st->waited ||
                        (a->p.by_concurrency &&
                         2 * (uint64_t)k->in_flight >= aimd_cap(k, &a->p)) ||
                        (a->p.by_rate && now < k->next_start_ns + iv);
            aimd_success(k, &a->p, busy);
        }
        if (a->cfg.use_provider_headers && provider_hints(a, r, k, now))
            h->counter_add(a->m_slowdowns, 1);
        publish(a, st, k);
        if (a->p.by_concurrency)
            h->gauge_set(a->g_limit, k->limit);
        if (a->p.by_rate)
            h->gauge_set(a->g_rate, k->rate);
    }
    release_and_unlock(a, st, &slot, now);
}

static void aimd_on_response(void *self, struct sluice_req *r, void *state)
{
    settle(self, r, state, true);
}

/* An attempt that failed: an error status, or no answer at all. */
static bool attempt_failed(const struct sluice_host *h,
                           const struct sluice_req *r)
{
    int status = h->resp_status(r);
    return status == 0 || status >= 400;
}

/* As each attempt ends: a failed one is judged and gives its slot back at
 * once, not when a retry starts (after its backoff or Retry-After) or the
 * request ends. An overload signal then lowers the limit for the requests
 * paced meanwhile, and a retry waiting out its backoff holds no slot (as
 * in admission). */
static enum sluice_action
aimd_on_upstream_response(void *self, struct sluice_req *r, void *state)
{
    struct aimd *a = self;
    if (attempt_failed(a->h, r))
        settle(a, r, state, true);
    return SLUICE_CONTINUE;
}

/* A retry or fallback: the failed attempt is judged (if it was not yet)
 * and gives its slot back, then the next attempt waits for a slot and a
 * start time of its own upstream like a new request. Re-entered after a
 * suspension, like on_request. */
static enum sluice_action aimd_on_attempt(void *self, struct sluice_req *r,
                                          void *state)
{
    struct aimd_req *st = state;
    if (st->phase == AIMD_PH_ADMITTED) {
        settle(self, r, st, true);
        *st = (struct aimd_req){.phase = AIMD_PH_NEW};
    }
    return aimd_on_request(self, r, state);
}

static void aimd_on_log(void *self, struct sluice_req *r, void *state)
{
    struct aimd *a = self;
    struct aimd_req *st = state;
    uint64_t now = a->h->now_ns(a->h);
    struct rl_map_slot slot;

    switch (st->phase) {
    case AIMD_PH_ADMITTED: /* no on_response: nothing to learn from */
        settle(a, r, st, false);
        return;
    case AIMD_PH_QUEUED: /* gone while queued (client left) */
    case AIMD_PH_PACED:  /* gone while waiting for its start time */
        if (!lock_key(a, st, now, &slot))
            return;
        if (st->phase == AIMD_PH_QUEUED)
            aimd_queue_remove(slot.value, st);
        else
            ((struct aimd_key *)slot.value)->paced--;
        st->phase = AIMD_PH_DONE;
        release_and_unlock(a, st, &slot, now); /* a granted slot, if any */
        return;
    default:
        return;
    }
}

/* ---- the reaper ---- */

struct tick_ctx {
    struct aimd *a;
    unsigned worker;
    uint64_t now;
    sluice_wake_t tickets[256];
    size_t n;
    double limit, rate;
    uint64_t in_flight, waiting;
};

static void tick_key(void *arg, const char *key, size_t len, void *value)
{
    struct tick_ctx *c = arg;
    struct aimd_key *k = value;
    (void)key;
    (void)len;
    if (!k->ready)
        return;
    size_t room = sizeof c->tickets / sizeof c->tickets[0] - c->n;
    c->n += aimd_expired(k, c->now, c->worker, c->tickets + c->n, room);
    room = sizeof c->tickets / sizeof c->tickets[0] - c->n;
    c->n += aimd_dispatch(k, &c->a->p, c->now, grant, c->tickets + c->n, room);
    c->limit += k->limit;
    c->rate += k->rate;
    c->in_flight += k->in_flight;
    c->waiting += k->q_len + k->paced;
}

void aimd_tick(struct aimd *a, unsigned worker)
{
    const struct sluice_host *h = a->h;
    struct tick_ctx c = {.a = a, .worker = worker, .now = h->now_ns(h)};
    rl_map_foreach(a->map, tick_key, &c);
    wake_all(a, c.tickets, c.n);
    if (worker == 0) {
        h->gauge_set(a->g_in_flight, (double)c.in_flight);
        h->gauge_set(a->g_waiting, (double)c.waiting);
        if (a->p.by_concurrency)
            h->gauge_set(a->g_limit, c.limit);
        if (a->p.by_rate)
            h->gauge_set(a->g_rate, c.rate);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct aimd_worker *w = arg;
    (void)fd;
    (void)what;
    aimd_tick(w->a, w->index);
}

static int aimd_thread_init(void *self, unsigned worker)
{
    struct aimd *a = self;
    if (worker >= a->workers)
        return 0;
    struct event_base *base = a->h->event_base(a->h, worker);
    if (!base)
        return 0; /* no loop (tests): aimd_tick is driven by hand */
    struct aimd_worker *w = &a->w[worker];
    w->timer = event_new(base, -1, EV_PERSIST, on_timer, w);
    struct timeval tv = {0, TICK_MS * 1000};
    if (!w->timer || event_add(w->timer, &tv) != 0) {
        a->h->log(a->h, SLUICE_LOG_ERROR, "cannot start the queue timer");
        return SLUICE_ENOMEM;
    }
    return 0;
}

static void aimd_thread_fini(void *self, unsigned worker)
{
    struct aimd *a = self;
    if (worker < a->workers && a->w[worker].timer) {
        event_free(a->w[worker].timer);
        a->w[worker].timer = NULL;
    }
}

/* ---- lifetime ---- */

static void aimd_destroy(void *self);

static int fail(struct sluice_error *err, const char *msg)
{
    snprintf(err->message, sizeof err->message, "%s", msg);
    return -1;
}

static int validate(const struct aimd_config *c, struct sluice_error *err)
{
    if (c->min_concurrency > c->max_concurrency)
        return fail(err, "min_concurrency: must be <= max_concurrency");
    if (c->initial_concurrency < c->min_concurrency ||
        c->initial_concurrency > c->max_concurrency)
        return fail(err, "initial_concurrency: must be within "
                         "[min_concurrency, max_concurrency]");
    if (c->min_rate > c->max_rate)
        return fail(err, "min_rate: must be <= max_rate");
    if (c->initial_rate < c->min_rate || c->initial_rate > c->max_rate)
        return fail(err, "initial_rate: must be within [min_rate, max_rate]");
    if (c->reject_status != 429 && c->reject_status != 503)
        return fail(err, "reject_status: must be 429 or 503");
    return 0;
}

static int aimd_create(const struct sluice_host *h, const void *config,
                       struct sluice_str raw_json, void **self,
                       struct sluice_error *err)
{
    struct aimd *a = calloc(1, sizeof *a);
    char why[200];
    (void)raw_json;

    if (!a)
        return fail(err, "out of memory"), SLUICE_ENOMEM;
    a->h = h;
    memcpy(&a->cfg, config, sizeof a->cfg);
    if (validate(&a->cfg, err))
        goto fail;
    if (rl_key_compile(&a->scope, a->cfg.scope, why, sizeof why)) {
        snprintf(err->message, sizeof err->message, "scope: %s", why);
        goto fail;
    }
    a->p = (struct aimd_params){
        .by_concurrency = a->cfg.limit_by != AIMD_RATE,
        .by_rate = a->cfg.limit_by != AIMD_CONCURRENCY,
        .init_limit = (double)a->cfg.initial_concurrency,
        .min_limit = (double)a->cfg.min_concurrency,
        .max_limit = (double)a->cfg.max_concurrency,
        .init_rate = a->cfg.initial_rate,
        .min_rate = a->cfg.min_rate,
        .max_rate = a->cfg.max_rate,
        .increase = a->cfg.increase,
        .factor = a->cfg.decrease_factor,
        .low_water = a->cfg.provider_low_water,
        .max_queue = (uint32_t)a->cfg.max_queue,
    };
    a->max_wait_ns = (uint64_t)a->cfg.max_wait_ms * NS_PER_MS;
    struct rl_map_config mc = {
        .value_size = sizeof(struct aimd_key),
        .max_keys = (size_t)a->cfg.max_keys,
        .seed = h->random_u64(h),
        .value_fini = aimd_key_fini,
    };
    a->map = rl_map_new(&mc);
    a->workers = h->worker_count(h) ? h->worker_count(h) : 1;
    a->w = calloc(a->workers, sizeof *a->w);
    if (!a->map || !a->w) {
        fail(err, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < a->workers; i++)
        a->w[i] = (struct aimd_worker){a, i, NULL};
    a->m_allowed = h->counter(h, "sluice_aimd_allowed_total",
                              "requests sent on (at once or after waiting)");
    a->m_queued = h->counter(h, "sluice_aimd_queued_total",
                             "requests that waited for a concurrency slot");
    a->m_paced = h->counter(h, "sluice_aimd_paced_total",
                            "requests that waited for a start time");
    a->m_rejected = h->counter(h, "sluice_aimd_rejected_total",
                               "requests refused: queue full or waited "
                               "max_wait_ms");
    a->m_decreases = h->counter(h, "sluice_aimd_decreases_total",
                                "multiplicative decreases (429/503/timeout)");
    a->m_slowdowns = h->counter(h, "sluice_aimd_provider_slowdowns_total",
                                "responses whose x-ratelimit headers slowed "
                                "admissions");
    a->g_limit = h->gauge(h, "sluice_aimd_concurrency_limit",
                          "learned concurrency limit (sum over keys)");
    a->g_rate = h->gauge(h, "sluice_aimd_rate",
                         "learned rate, requests/s (sum over keys)");
    a->g_in_flight =
        h->gauge(h, "sluice_aimd_in_flight", "requests in flight (all keys)");
    a->g_waiting = h->gauge(h, "sluice_aimd_waiting",
                            "requests queued or paced (all keys)");
    if (a->p.by_concurrency)
        h->gauge_set(a->g_limit, a->p.init_limit);
    if (a->p.by_rate)
        h->gauge_set(a->g_rate, a->p.init_rate);
    *self = a;
    return SLUICE_OK;
fail:
    aimd_destroy(a);
    return SLUICE_EINVAL;
}

static void aimd_destroy(void *self)
{
    struct aimd *a = self;
    if (!a)
        return;
    rl_map_free(a->map);
    free(a->w);
    rl_key_free(&a->scope);
    free(a);
}

struct status_ctx {
    json_t *keys;
    uint64_t now;
};

static void status_key(void *arg, const char *key, size_t len, void *value)
{
    struct status_ctx *c = arg;
    const struct aimd_key *k = value;
    if (!k->ready)
        return;
    json_t *o =
        json_pack("{s:s%, s:f, s:f, s:I, s:I, s:I, s:I}", "key", key, len,
                  "limit", k->limit, "rate", k->rate, "in_flight",
                  (json_int_t)k->in_flight, "queued", (json_int_t)k->q_len,
                  "paced", (json_int_t)k->paced, "paused_ms",
                  (json_int_t)(k->pause_until_ns > c->now
                                   ? (k->pause_until_ns - c->now) / NS_PER_MS
                                   : 0));
    if (o)
        json_array_append_new(c->keys, o);
}

static size_t aimd_status_json(void *self, char *buf, size_t cap)
{
    struct aimd *a = self;
    struct status_ctx c = {json_array(), a->h->now_ns(a->h)};
    rl_map_foreach(a->map, status_key, &c);
    json_t *o = json_pack("{s:s, s:s, s:o}", "scope", a->cfg.scope, "limit_by",
                          limit_by_choices[a->cfg.limit_by], "keys", c.keys);
    size_t n = o ? json_dumpb(o, buf, cap, JSON_COMPACT) : 0;
    json_decref(o);
    return n;
}

static const struct sluice_plugin aimd_plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "aimd",
    .version = "1.0.0",
    .summary = "adaptive concurrency / rate limit per upstream, learned from "
               "429s, timeouts and x-ratelimit headers, with a bounded queue",
    .config = aimd_config_fields,
    .config_size = sizeof(struct aimd_config),
    .req_state_size = sizeof(struct aimd_req),
    .create = aimd_create,
    .destroy = aimd_destroy,
    .thread_init = aimd_thread_init,
    .thread_fini = aimd_thread_fini,
    .on_request = aimd_on_request,
    .on_response = aimd_on_response,
    .on_upstream_response = aimd_on_upstream_response,
    .on_attempt = aimd_on_attempt,
    .on_log = aimd_on_log,
    .status_json = aimd_status_json,
};

SLUICE_PLUGIN_EXPORT(aimd_plugin)
