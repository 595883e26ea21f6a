/* sliding_window: at most N requests in any rolling window per key, exact
 * (a ring of admission times) or approximate (two weighted counters),
 * local or shared through Redis. See README.md. */
#include "sliding_window.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rl_duration.h"

#define NS_PER_MS 1000000ull

enum { SCRIPT_EXACT = 0, SCRIPT_APPROX = 1 };
static const char *const sw_scripts[] = {sw_redis_exact_script,
                                         sw_redis_approx_script};

static uint64_t ceil_ms(uint64_t ns)
{
    return ns / NS_PER_MS + (ns % NS_PER_MS != 0);
}

static uint64_t effective_limit(const struct sliding_window *sw,
                                const struct sw_req *st)
{
    return st->via == SW_VIA_FALLBACK ? rl_backend_share(&sw->be, st->limit)
                                      : st->limit;
}

static void note_map_growth(struct sliding_window *sw)
{
    const struct sluice_host *h = sw->h;
    h->gauge_set(sw->m_keys, (double)rl_map_count(sw->map));
    uint64_t now = rl_map_forced_evictions(sw->map);
    uint64_t seen = atomic_load(&sw->evictions_seen);
    while (now > seen)
        if (atomic_compare_exchange_weak(&sw->evictions_seen, &seen, now)) {
            h->counter_add(sw->m_evicted, now - seen);
            break;
        }
}

/* ---- local ---- */

static void take_local(struct sliding_window *sw, struct sw_req *st,
                       uint64_t now, uint64_t allowance)
{
    struct rl_map_slot slot;
    uint64_t limit = effective_limit(sw, st);

    if (!rl_map_lock(sw->map, st->key, st->key_len, now, true, &slot)) {
        memset(&st->dec, 0, sizeof st->dec);
        st->dec.verdict = SW_ALLOW; /* out of memory: admit */
        return;
    }
    uint64_t idle;
    if (sw->cfg.approximate) {
        sw_approx_take(slot.value, limit, sw->window_ns, now, allowance,
                       &st->dec);
        idle = sw_approx_idle_at(slot.value, sw->window_ns);
    } else {
        sw_exact_take(slot.value, limit, sw->window_ns, now, allowance,
                      &st->dec);
        idle = sw_exact_idle_at(slot.value, sw->window_ns);
    }
    rl_map_unlock(&slot, idle);
    if (slot.created)
        note_map_growth(sw);
}

/* ---- Redis ---- */

static void on_redis_reply(void *arg, enum rl_redis_result res,
                           const redisReply *reply)
{
    struct sw_req *st = arg;
    st->call = NULL;
    st->redis_res = (uint8_t)res;
    if (res == RL_REDIS_OK && !sw_redis_parse(reply, &st->dec))
        st->redis_res = RL_REDIS_ERROR;
    st->sw->h->wake(st->sw->h, st->ticket);
}

static struct rl_redis_call *redis_call(struct sliding_window *sw,
                                        struct sluice_req *r, struct sw_req *st,
                                        bool release, uint64_t allowance,
                                        bool reply)
{
    struct rl_redis *c = rl_backend_client(&sw->be, sw->h->req_worker(r));
    struct sw_redis_args a;
    const char *argv[SW_REDIS_ARGS + 1];
    size_t len[SW_REDIS_ARGS + 1];
    char key[512];
    struct rl_redis_call *call = NULL;

    if (c) {
        len[0] = rl_backend_redis_key(&sw->be, st->key, st->key_len, key,
                                      sizeof key);
        argv[0] = key;
        sw_redis_args(&a, release, st->limit, sw->window_ns, allowance,
                      st->dec.slot);
        memcpy(argv + 1, a.argv, sizeof a.argv);
        memcpy(len + 1, a.len, sizeof a.len);
        call =
            rl_redis_eval(c, sw->cfg.approximate ? SCRIPT_APPROX : SCRIPT_EXACT,
                          1, SW_REDIS_ARGS + 1, argv, len,
                          reply ? on_redis_reply : NULL, reply ? st : NULL);
    }
    if (!call && (c || !reply))
        rl_backend_count_error(&sw->be, sw->h->req_worker(r));
    return call;
}

/* ---- answering ---- */

static void add_headers(struct sliding_window *sw, struct sluice_req *r,
                        const struct sw_req *st)
{
    const struct sluice_host *h = sw->h;
    char val[32];
    size_t n;

    if (st->via == SW_VIA_FALLBACK)
        h->resp_add_header(r, "x-sluice-ratelimit-mode",
                           (struct sluice_str){"local-fallback", 14});
    if (!sw->cfg.headers)
        return;
    n = rl_format_u64(effective_limit(sw, st), val);
    h->resp_add_header(r, "x-ratelimit-limit-requests",
                       (struct sluice_str){val, n});
    n = rl_format_u64(st->dec.remaining, val);
    h->resp_add_header(r, "x-ratelimit-remaining-requests",
                       (struct sluice_str){val, n});
    n = rl_duration_format(st->dec.reset_ns, val, sizeof val);
    h->resp_add_header(r, "x-ratelimit-reset-requests",
                       (struct sluice_str){val, n});
}

static enum sluice_action act(struct sliding_window *sw, struct sluice_req *r,
                              struct sw_req *st)
{
    const struct sluice_host *h = sw->h;
    const struct sw_decision *d = &st->dec;
    char msg[200], wait[32];

    switch (d->verdict) {
    case SW_ALLOW:
        st->phase = SW_PH_DONE;
        h->counter_add(sw->m_allowed, 1);
        add_headers(sw, r, st);
        return SLUICE_CONTINUE;
    case SW_WAIT:
        st->phase = SW_PH_WAITING;
        st->reserved = !sw->cfg.approximate;
        h->counter_add(sw->m_waited, 1);
        h->resume_after(r, ceil_ms(d->wait_ns));
        return SLUICE_SUSPEND;
    case SW_DENY:
        break;
    }
    st->phase = SW_PH_DONE;
    h->counter_add(sw->m_rejected, 1);
    add_headers(sw, r, st);
    rl_duration_format(d->wait_ns, wait, sizeof wait);
    snprintf(msg, sizeof msg,
             "Rate limit reached for requests: %llu per %llds%s. Please try "
             "again in %s.",
             (unsigned long long)effective_limit(sw, st),
             (long long)sw->cfg.window_s,
             sw->cfg.approximate ? " (estimated)" : "", wait);
    return h->reject(r, 429, "requests", "rate_limit_exceeded", msg,
                     ceil_ms(d->wait_ns));
}

static uint64_t allowance(const struct sliding_window *sw,
                          const struct sw_req *st, uint64_t now)
{
    uint64_t spent = now - st->first_ns;
    return sw->max_wait_ns > spent ? sw->max_wait_ns - spent : 0;
}

static enum sluice_action degraded(struct sliding_window *sw,
                                   struct sluice_req *r, struct sw_req *st,
                                   uint64_t now)
{
    const struct sluice_host *h = sw->h;
    if (rl_backend_fail_closed(&sw->be)) {
        st->phase = SW_PH_DONE;
        h->counter_add(sw->m_rejected, 1);
        return h->reject(r, 503, "service_unavailable",
                         "rate_limiter_unavailable",
                         "The rate limiter's store is unreachable.",
                         RL_FAIL_CLOSED_RETRY_MS);
    }
    rl_backend_count_fallback(&sw->be);
    st->via = SW_VIA_FALLBACK;
    take_local(sw, st, now, allowance(sw, st, now));
    return act(sw, r, st);
}

static enum sluice_action decide(struct sliding_window *sw,
                                 struct sluice_req *r, struct sw_req *st,
                                 uint64_t now)
{
    const struct sluice_host *h = sw->h;
    if (!rl_backend_is_redis(&sw->be)) {
        st->via = SW_VIA_LOCAL;
        take_local(sw, st, now, allowance(sw, st, now));
        return act(sw, r, st);
    }
    st->ticket = h->wake_token(r);
    st->call = redis_call(sw, r, st, false, allowance(sw, st, now), true);
    if (st->call) {
        st->phase = SW_PH_REDIS;
        return SLUICE_SUSPEND;
    }
    return degraded(sw, r, st, now);
}

/* ---- hooks ---- */

static enum sluice_action sw_on_request(void *self, struct sluice_req *r,
                                        void *state)
{
    struct sliding_window *sw = self;
    struct sw_req *st = state;
    const struct sluice_host *h = sw->h;
    uint64_t now = h->now_ns(h);

    switch (st->phase) {
    case SW_PH_NEW:
        break;
    case SW_PH_WAITING:
        if (st->reserved) { /* exact: the reserved slot has come */
            st->reserved = false;
            st->phase = SW_PH_DONE;
            h->counter_add(sw->m_allowed, 1);
            add_headers(sw, r, st);
            return SLUICE_CONTINUE;
        }
        /* approximate: ask again with what is left of max_wait */
        return st->via == SW_VIA_FALLBACK ? degraded(sw, r, st, now)
                                          : decide(sw, r, st, now);
    case SW_PH_REDIS:
        if (st->call) {
            st->ticket = h->wake_token(r);
            return SLUICE_SUSPEND;
        }
        if (st->redis_res != RL_REDIS_OK) {
            rl_backend_count_error(&sw->be, h->req_worker(r));
            return degraded(sw, r, st, now);
        }
        st->via = SW_VIA_REDIS;
        return act(sw, r, st);
    default:
        return SLUICE_CONTINUE;
    }
    st->sw = sw;
    st->first_ns = now;
    st->limit = sw_limit_for(sw, r);
    struct sluice_str tier = h->var_get(r, sw->var_tier);
    st->key_len = (uint16_t)rl_key_render(&sw->scope, h, r, tier, st->key,
                                          sizeof st->key);
    return decide(sw, r, st, now);
}

/* A retry or fallback is another call to a provider: it counts in the
 * window of the upstream it goes to, waiting or refused like a new
 * request. */
static enum sluice_action sw_on_attempt(void *self, struct sluice_req *r,
                                        void *state)
{
    struct sw_req *st = state;
    if (st->phase == SW_PH_DONE)
        *st = (struct sw_req){.phase = SW_PH_NEW};
    return sw_on_request(self, r, state);
}

/* Gone while waiting for its reserved slot: give the slot back, once. */
static void give_back_reserved(struct sliding_window *sw, struct sluice_req *r,
                               struct sw_req *st)
{
    if (!st->reserved)
        return;
    st->reserved = false;
    if (st->via == SW_VIA_REDIS) {
        redis_call(sw, r, st, true, 0, false);
        return;
    }
    struct rl_map_slot slot;
    uint64_t now = sw->h->now_ns(sw->h);
    if (rl_map_lock(sw->map, st->key, st->key_len, now, false, &slot)) {
        sw_exact_release(slot.value, st->dec.slot);
        rl_map_unlock(&slot, sw_exact_idle_at(slot.value, sw->window_ns));
    }
}

/* A request (or retry) that ended while waiting: its slot goes back here,
 * before the client has the answer, so a request sent right after it
 * finds the slot; on_log covers requests that end without a response. */
static void sw_on_response(void *self, struct sluice_req *r, void *state)
{
    give_back_reserved(self, r, state);
}

static void sw_on_log(void *self, struct sluice_req *r, void *state)
{
    struct sw_req *st = state;

    if (st->call) {
        rl_redis_cancel(st->call);
        st->call = NULL;
    }
    give_back_reserved(self, r, st);
}

/* ---- lifetime ---- */

static void sw_destroy(void *self);

static int sw_create(const struct sluice_host *h, const void *config,
                     struct sluice_str raw_json, void **self,
                     struct sluice_error *err)
{
    struct sliding_window *sw = calloc(1, sizeof *sw);
    char why[200];

    if (!sw) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return SLUICE_ENOMEM;
    }
    sw->h = h;
    memcpy(&sw->cfg, config, sizeof sw->cfg);
    if (rl_key_compile(&sw->scope, sw->cfg.scope, why, sizeof why)) {
        snprintf(err->message, sizeof err->message, "scope: %s", why);
        goto fail;
    }
    /* Instances with the same algorithm, window and scope share keys. */
    char kind[48];
    snprintf(kind, sizeof kind, "sliding_window:%s:%llds",
             sw->cfg.approximate ? "approx" : "exact",
             (long long)sw->cfg.window_s);
    if (rl_backend_init(&sw->be, h, "sliding_window", kind, sw->cfg.scope,
                        &sw->cfg.store, sw_scripts, 2, err))
        goto fail;
    if (sw_setup(sw, err))
        goto fail;
    struct rl_map_config mc = {
        .value_size = sw->cfg.approximate ? sizeof(struct sw_counter)
                                          : sizeof(struct sw_ring),
        .max_keys = (size_t)sw->cfg.max_keys,
        .seed = h->random_u64(h),
        .value_fini = sw->cfg.approximate ? NULL : sw_ring_fini,
    };
    sw->map = rl_map_new(&mc);
    if (!sw->map) {
        snprintf(err->message, sizeof err->message, "out of memory");
        goto fail;
    }
    sw->m_allowed = h->counter(h, "sluice_sliding_window_allowed_total",
                               "requests admitted (at once or after a wait)");
    sw->m_rejected = h->counter(h, "sluice_sliding_window_rejected_total",
                                "requests refused (429, or 503 fail-closed)");
    sw->m_waited = h->counter(h, "sluice_sliding_window_waited_total",
                              "requests held for a slot (wait mode)");
    sw->m_keys = h->gauge(h, "sluice_sliding_window_keys",
                          "keys held in memory (local state or fallback)");
    sw->m_evicted = h->counter(h, "sluice_sliding_window_evicted_total",
                               "keys dropped before idle to respect max_keys");
    *self = sw;
    return SLUICE_OK;
fail:
    sw_destroy(sw);
    return SLUICE_EINVAL;
}

static void sw_destroy(void *self)
{
    struct sliding_window *sw = self;
    if (!sw)
        return;
    rl_backend_fini(&sw->be);
    rl_map_free(sw->map);
    sw_free_tiers(sw);
    rl_key_free(&sw->scope);
    free(sw);
}

static int sw_thread_init(void *self, unsigned worker)
{
    struct sliding_window *sw = self;
    return rl_backend_thread_init(&sw->be, worker);
}

static void sw_thread_fini(void *self, unsigned worker)
{
    struct sliding_window *sw = self;
    rl_backend_thread_fini(&sw->be, worker);
}

static size_t sw_status_json(void *self, char *buf, size_t cap)
{
    struct sliding_window *sw = self;
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "backend",
        rl_backend_is_redis(&sw->be) ? "redis" : "local", "scope",
        sw->cfg.scope, "algorithm",
        sw->cfg.approximate ? "approximate" : "exact", "limit",
        (json_int_t)sw->cfg.limit, "window_s", (json_int_t)sw->cfg.window_s,
        "keys", (json_int_t)rl_map_count(sw->map), "memory_bytes",
        (json_int_t)rl_map_bytes(sw->map), "evicted",
        (json_int_t)rl_map_forced_evictions(sw->map), "redis_up",
        rl_backend_all_up(&sw->be));
    size_t n = o ? json_dumpb(o, buf, cap, JSON_COMPACT) : 0;
    json_decref(o);
    return n;
}

static const struct sluice_plugin sliding_window_plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "sliding_window",
    .version = "1.0.0",
    .summary = "at most N requests in any rolling window per key, exact or "
               "approximate, local or shared through Redis",
    .config = sw_config_fields,
    .config_size = sizeof(struct sw_config),
    .req_state_size = sizeof(struct sw_req),
    .create = sw_create,
    .destroy = sw_destroy,
    .thread_init = sw_thread_init,
    .thread_fini = sw_thread_fini,
    .on_request = sw_on_request,
    .on_response = sw_on_response,
    .on_log = sw_on_log,
    .on_attempt = sw_on_attempt,
    .status_json = sw_status_json,
};

SLUICE_PLUGIN_EXPORT(sliding_window_plugin)
