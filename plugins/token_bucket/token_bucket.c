/* token_bucket: requests and tokens per period, per key, exact (GCRA in
 * fixed point), local or shared through Redis. See README.md. */
#include "token_bucket.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rl_duration.h"

#define NS_PER_MS 1000000ull

static const char *const tb_scripts[] = {tb_redis_script};
static const char *const dim_name[TB_DIMS] = {"requests", "tokens"};

static uint64_t ceil_ms(uint64_t ns)
{
    return ns / NS_PER_MS + (ns % NS_PER_MS != 0);
}

/* ---- metrics ---- */

static void note_map_growth(struct token_bucket *tb)
{
    const struct sluice_host *h = tb->h;
    h->gauge_set(tb->m_keys, (double)rl_map_count(tb->map));
    uint64_t now = rl_map_forced_evictions(tb->map);
    uint64_t seen = atomic_load(&tb->evictions_seen);
    while (now > seen)
        if (atomic_compare_exchange_weak(&tb->evictions_seen, &seen, now)) {
            h->counter_add(tb->m_evicted, now - seen);
            break;
        }
}

/* ---- Redis ---- */

static void on_redis_reply(void *arg, enum rl_redis_result res,
                           const redisReply *reply)
{
    struct tb_req *st = arg;
    st->call = NULL;
    st->redis_res = (uint8_t)res;
    if (res == RL_REDIS_OK && !tb_redis_parse(reply, &st->dec))
        st->redis_res = RL_REDIS_ERROR;
    st->tb->h->wake(st->tb->h, st->ticket);
}

/* Runs the script for the request's key; fn NULL: fire and forget.
 * Returns the call, or NULL (counted) when Redis cannot take it. */
static struct rl_redis_call *
redis_call(struct token_bucket *tb, struct sluice_req *r, struct tb_req *st,
           enum tb_redis_op op, const struct tb_limits *l, uint64_t wait_ns,
           int64_t requests, int64_t tokens, bool reply)
{
    struct rl_redis *c = rl_backend_client(&tb->be, tb->h->req_worker(r));
    struct tb_redis_args a;
    const char *argv[TB_REDIS_ARGS + 1];
    size_t len[TB_REDIS_ARGS + 1];
    char key[512];
    struct rl_redis_call *call = NULL;

    if (c) {
        len[0] = rl_backend_redis_key(&tb->be, st->key, st->key_len, key,
                                      sizeof key);
        argv[0] = key;
        size_t n = tb_redis_args(&a, op, l, tb->max_wait_ns, wait_ns, requests,
                                 tokens);
        memcpy(argv + 1, a.argv, n * sizeof *argv);
        memcpy(len + 1, a.len, n * sizeof *len);
        call = rl_redis_eval(c, 0, 1, n + 1, argv, len,
                             reply ? on_redis_reply : NULL, reply ? st : NULL);
    }
    if (!call && (c || !reply))
        rl_backend_count_error(&tb->be, tb->h->req_worker(r));
    return call;
}

/* ---- local decisions ---- */

static void take_local(struct token_bucket *tb, const struct tb_limits *l,
                       struct tb_req *st, uint64_t now, uint64_t wait_ns)
{
    struct rl_map_slot slot;
    if (!rl_map_lock(tb->map, st->key, st->key_len, now, true, &slot)) {
        /* Out of memory: admit rather than refuse everyone. */
        memset(&st->dec, 0, sizeof st->dec);
        st->dec.verdict = TB_ALLOW;
        return;
    }
    tb_take(slot.value, l, now, st->tokens, wait_ns, &st->dec);
    rl_map_unlock(&slot, tb_idle_at(slot.value));
    if (slot.created)
        note_map_growth(tb);
}

/* Refunds or debits after the fact, on whatever decided the request. */
static void adjust(struct token_bucket *tb, struct tb_req *st,
                   struct sluice_req *r, int64_t requests, int64_t tokens)
{
    const struct sluice_host *h = tb->h;
    const struct tb_limits *l =
        st->via == TB_VIA_FALLBACK ? &st->pair->fb : &st->pair->lim;
    /* Keep Redis arithmetic within its bounds: one bucket's worth. */
    int64_t cap = (int64_t)(l->burst[TB_TOKENS] + l->limit[TB_TOKENS]);
    if (tokens > cap)
        tokens = cap;
    if (tokens < -cap)
        tokens = -cap;

    if (st->via == TB_VIA_REDIS) {
        redis_call(tb, r, st, TB_OP_ADJUST, l, 0, requests, tokens, false);
        return;
    }
    struct rl_map_slot slot;
    uint64_t now = h->now_ns(h);
    if (!rl_map_lock(tb->map, st->key, st->key_len, now, tokens > 0, &slot))
        return; /* evicted: a refund to a full bucket changes nothing */
    tb_adjust(slot.value, l, now, requests, tokens);
    rl_map_unlock(&slot, tb_idle_at(slot.value));
}

/* ---- answering ---- */

static const char *const hdr_names[TB_DIMS][3] = {
    {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
     "x-ratelimit-reset-requests"},
    {"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
     "x-ratelimit-reset-tokens"},
};

static void add_headers(struct token_bucket *tb, struct sluice_req *r,
                        const struct tb_req *st)
{
    const struct sluice_host *h = tb->h;
    const struct tb_limits *l =
        st->via == TB_VIA_FALLBACK ? &st->pair->fb : &st->pair->lim;
    char val[32];

    if (st->via == TB_VIA_FALLBACK)
        h->resp_add_header(r, "x-sluice-ratelimit-mode",
                           (struct sluice_str){"local-fallback", 14});
    if (!tb->cfg.headers)
        return;
    for (int i = 0; i < TB_DIMS; i++) {
        if (!l->limit[i])
            continue;
        size_t n = rl_format_u64(l->limit[i], val);
        h->resp_add_header(r, hdr_names[i][0], (struct sluice_str){val, n});
        n = rl_format_u64(st->dec.remaining[i], val);
        h->resp_add_header(r, hdr_names[i][1], (struct sluice_str){val, n});
        n = rl_duration_format(st->dec.reset_ns[i], val, sizeof val);
        h->resp_add_header(r, hdr_names[i][2], (struct sluice_str){val, n});
    }
}

static enum sluice_action act(struct token_bucket *tb, struct sluice_req *r,
                              struct tb_req *st)
{
    const struct sluice_host *h = tb->h;
    const struct tb_limits *l =
        st->via == TB_VIA_FALLBACK ? &st->pair->fb : &st->pair->lim;
    const struct tb_decision *d = &st->dec;
    char msg[200];

    switch (d->verdict) {
    case TB_ALLOW:
        st->charged = true;
        st->phase = TB_PH_DONE;
        h->counter_add(tb->m_allowed, 1);
        add_headers(tb, r, st);
        return SLUICE_CONTINUE;
    case TB_WAIT:
        st->charged = true;
        st->phase = TB_PH_WAITING;
        h->counter_add(tb->m_waited, 1);
        h->resume_after(r, ceil_ms(d->wait_ns));
        return SLUICE_SUSPEND;
    case TB_TOO_BIG:
        st->phase = TB_PH_DONE;
        h->counter_add(tb->m_rejected, 1);
        snprintf(msg, sizeof msg,
                 "Request too large for %s: needs %llu, the limit allows at "
                 "most %llu at once.",
                 dim_name[d->binding],
                 (unsigned long long)(d->binding == TB_TOKENS ? st->tokens : 1),
                 (unsigned long long)l->burst[d->binding]);
        return h->reject(r, 429, dim_name[d->binding], "rate_limit_exceeded",
                         msg, 0);
    case TB_DENY:
        break;
    }
    st->phase = TB_PH_DONE;
    h->counter_add(tb->m_rejected, 1);
    add_headers(tb, r, st);
    char wait[32];
    rl_duration_format(d->wait_ns, wait, sizeof wait);
    snprintf(msg, sizeof msg,
             "Rate limit reached for %s: limit %llu per %llds. Please try "
             "again in %s.",
             dim_name[d->binding], (unsigned long long)l->limit[d->binding],
             (long long)tb->cfg.period_s, wait);
    return h->reject(r, 429, dim_name[d->binding], "rate_limit_exceeded", msg,
                     ceil_ms(d->wait_ns));
}

static uint64_t wait_budget(const struct token_bucket *tb,
                            const struct tb_req *st, uint64_t now)
{
    uint64_t spent = now - st->first_ns;
    return tb->max_wait_ns > spent ? tb->max_wait_ns - spent : 0;
}

/* Redis is down or late: fail open to the local share, or closed. */
static enum sluice_action degraded(struct token_bucket *tb,
                                   struct sluice_req *r, struct tb_req *st,
                                   uint64_t now)
{
    const struct sluice_host *h = tb->h;
    if (rl_backend_fail_closed(&tb->be)) {
        st->phase = TB_PH_DONE;
        h->counter_add(tb->m_rejected, 1);
        return h->reject(r, 503, "service_unavailable",
                         "rate_limiter_unavailable",
                         "The rate limiter's store is unreachable.",
                         RL_FAIL_CLOSED_RETRY_MS);
    }
    rl_backend_count_fallback(&tb->be);
    st->via = TB_VIA_FALLBACK;
    take_local(tb, &st->pair->fb, st, now, wait_budget(tb, st, now));
    return act(tb, r, st);
}

static enum sluice_action decide(struct token_bucket *tb, struct sluice_req *r,
                                 struct tb_req *st, uint64_t now)
{
    const struct sluice_host *h = tb->h;
    uint64_t wait_ns = wait_budget(tb, st, now);

    if (!rl_backend_is_redis(&tb->be)) {
        st->via = TB_VIA_LOCAL;
        take_local(tb, &st->pair->lim, st, now, wait_ns);
        return act(tb, r, st);
    }
    st->ticket = h->wake_token(r);
    st->call = redis_call(tb, r, st, TB_OP_TAKE, &st->pair->lim, wait_ns, 1,
                          (int64_t)st->tokens, true);
    if (st->call) {
        st->phase = TB_PH_REDIS;
        return SLUICE_SUSPEND;
    }
    return degraded(tb, r, st, now);
}

/* ---- hooks ---- */

static enum sluice_action tb_on_request(void *self, struct sluice_req *r,
                                        void *state)
{
    struct token_bucket *tb = self;
    struct tb_req *st = state;
    const struct sluice_host *h = tb->h;
    uint64_t now = h->now_ns(h);

    switch (st->phase) {
    case TB_PH_NEW:
        break;
    case TB_PH_WAITING: /* the reserved slot has come */
        st->phase = TB_PH_DONE;
        h->counter_add(tb->m_allowed, 1);
        add_headers(tb, r, st);
        return SLUICE_CONTINUE;
    case TB_PH_REDIS:
        if (st->call) { /* woken early: keep waiting for the reply */
            st->ticket = h->wake_token(r);
            return SLUICE_SUSPEND;
        }
        if (st->redis_res != RL_REDIS_OK) {
            rl_backend_count_error(&tb->be, h->req_worker(r));
            return degraded(tb, r, st, now);
        }
        st->via = TB_VIA_REDIS;
        return act(tb, r, st);
    default:
        return SLUICE_CONTINUE;
    }

    st->tb = tb;
    st->first_ns = now;
    st->pair = tb_limits_for(tb, r);
    struct sluice_str tier = h->var_get(r, tb->var_names[TB_VAR_TIER]);
    st->key_len = (uint16_t)rl_key_render(&tb->scope, h, r, tier, st->key,
                                          sizeof st->key);
    if (st->pair->lim.limit[TB_TOKENS]) {
        uint64_t max = h->req_max_tokens(r);
        st->tokens = h->req_input_tokens(r) +
                     (max ? max : (uint64_t)tb->cfg.default_max_tokens);
    }
    return decide(tb, r, st, now);
}

static void pause_key(struct token_bucket *tb, struct sluice_req *r,
                      struct tb_req *st)
{
    const struct sluice_host *h = tb->h;
    uint64_t pause_ns;
    uint64_t ms;

    if (rl_parse_u64(h->resp_header(r, "retry-after-ms"), &ms))
        pause_ns = ms * NS_PER_MS;
    else if (!rl_retry_after_parse(h->resp_header(r, "retry-after"),
                                   h->wall_ms(h), &pause_ns))
        pause_ns = (uint64_t)tb->cfg.upstream_429_pause_ms * NS_PER_MS;
    if (!pause_ns)
        return;
    st->paused = true;
    h->counter_add(tb->m_pauses, 1);
    const struct tb_limits *l =
        st->via == TB_VIA_FALLBACK ? &st->pair->fb : &st->pair->lim;
    if (st->via == TB_VIA_REDIS) {
        redis_call(tb, r, st, TB_OP_PAUSE, l, pause_ns, 0, 0, false);
        return;
    }
    struct rl_map_slot slot;
    uint64_t now = h->now_ns(h);
    if (!rl_map_lock(tb->map, st->key, st->key_len, now, true, &slot))
        return;
    tb_pause(slot.value, l, now, pause_ns);
    rl_map_unlock(&slot, tb_idle_at(slot.value));
}

static enum sluice_action
tb_on_upstream_response(void *self, struct sluice_req *r, void *state)
{
    struct token_bucket *tb = self;
    struct tb_req *st = state;
    if (tb->cfg.pause_on_upstream_429 && st->charged && !st->paused &&
        tb->h->resp_status(r) == 429)
        pause_key(tb, r, st);
    return SLUICE_CONTINUE;
}

/* Replaces the admission estimate with what the provider reports. */
static void settle(struct token_bucket *tb, struct sluice_req *r,
                   struct tb_req *st)
{
    const struct sluice_host *h = tb->h;
    if (!st->charged || st->settled)
        return;
    st->settled = true;
    if (!st->pair->lim.limit[TB_TOKENS])
        return;
    struct sluice_usage u = h->resp_usage(r);
    uint64_t actual;
    if (u.known) {
        actual = u.total_tokens ? u.total_tokens
                                : u.prompt_tokens + u.completion_tokens;
    } else {
        switch (h->resp_outcome(r)) {
        case SLUICE_OUTCOME_NONE:          /* rejected later, cached */
        case SLUICE_OUTCOME_CONNECT_ERROR: /* never reached the provider */
        case SLUICE_OUTCOME_HTTP_ERROR:    /* refused: nothing generated */
            actual = 0;
            break;
        default: /* cut or timed out without usage: keep the estimate */
            return;
        }
    }
    int64_t delta = (int64_t)actual - (int64_t)st->tokens;
    if (!delta)
        return;
    if (delta < 0)
        h->counter_add(tb->m_refunded, (uint64_t)-delta);
    else
        h->counter_add(tb->m_debited, (uint64_t)delta);
    adjust(tb, st, r, 0, delta);
}

/* A retry (or request) still waiting for its reserved slot never went
 * out: the slot goes back, once. */
static void give_back_waiting(struct token_bucket *tb, struct sluice_req *r,
                              struct tb_req *st)
{
    if (!st->charged || st->settled)
        return;
    st->settled = true;
    adjust(tb, st, r, -1, -(int64_t)st->tokens);
}

static void tb_on_response(void *self, struct sluice_req *r, void *state)
{
    struct token_bucket *tb = self;
    struct tb_req *st = state;
    if (st->phase == TB_PH_WAITING) {
        /* Here rather than in on_log, which runs after the client has the
         * answer: a request sent right after it finds the slot free. */
        give_back_waiting(tb, r, st);
        return;
    }
    if (tb->cfg.pause_on_upstream_429 && st->charged && !st->paused &&
        tb->h->resp_status(r) == 429)
        pause_key(tb, r, st);
    settle(tb, r, st);
}

/* A retry or fallback is another call to a provider: it takes a request
 * (and its token estimate) again, from the bucket of the upstream it goes
 * to, waiting or refused like a new request. The failed attempt's token
 * estimate is settled first (refunded when nothing was generated). */
static enum sluice_action tb_on_attempt(void *self, struct sluice_req *r,
                                        void *state)
{
    struct tb_req *st = state;
    if (st->phase == TB_PH_DONE && st->charged) {
        settle(self, r, st);
        *st = (struct tb_req){.phase = TB_PH_NEW};
    }
    return tb_on_request(self, r, state);
}

static void tb_on_log(void *self, struct sluice_req *r, void *state)
{
    struct token_bucket *tb = self;
    struct tb_req *st = state;

    if (st->call) { /* gone while Redis was deciding */
        rl_redis_cancel(st->call);
        st->call = NULL;
    }
    if (st->phase == TB_PH_WAITING) {
        give_back_waiting(tb, r, st); /* gone while waiting */
        return;
    }
    settle(tb, r, st);
}

/* ---- lifetime ---- */

static void tb_destroy(void *self);

static int tb_create(const struct sluice_host *h, const void *config,
                     struct sluice_str raw_json, void **self,
                     struct sluice_error *err)
{
    struct token_bucket *tb = calloc(1, sizeof *tb);
    char why[200];

    if (!tb) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return SLUICE_ENOMEM;
    }
    tb->h = h;
    memcpy(&tb->cfg, config, sizeof tb->cfg);
    if (rl_key_compile(&tb->scope, tb->cfg.scope, why, sizeof why)) {
        snprintf(err->message, sizeof err->message, "scope: %s", why);
        goto fail;
    }
    /* Instances with the same scope and period share Redis keys. */
    char kind[48];
    snprintf(kind, sizeof kind, "token_bucket:%llds",
             (long long)tb->cfg.period_s);
    if (rl_backend_init(&tb->be, h, "token_bucket", kind, tb->cfg.scope,
                        &tb->cfg.store, tb_scripts, 1, err))
        goto fail;
    if (tb_setup_limits(tb, err))
        goto fail;
    struct rl_map_config mc = {
        .value_size = sizeof(struct tb_state),
        .max_keys = (size_t)tb->cfg.max_keys,
        .seed = h->random_u64(h),
    };
    tb->map = rl_map_new(&mc);
    if (!tb->map) {
        snprintf(err->message, sizeof err->message, "out of memory");
        goto fail;
    }
    tb->m_allowed = h->counter(h, "sluice_token_bucket_allowed_total",
                               "requests admitted (at once or after a wait)");
    tb->m_rejected = h->counter(h, "sluice_token_bucket_rejected_total",
                                "requests refused (429, or 503 fail-closed)");
    tb->m_waited = h->counter(h, "sluice_token_bucket_waited_total",
                              "requests held for a reserved slot (wait mode)");
    tb->m_keys = h->gauge(h, "sluice_token_bucket_keys",
                          "keys held in memory (local state or fallback)");
    tb->m_evicted = h->counter(h, "sluice_token_bucket_evicted_total",
                               "keys dropped before idle to respect max_keys");
    tb->m_refunded = h->counter(h, "sluice_token_bucket_tokens_refunded_total",
                                "tokens given back after actual usage");
    tb->m_debited = h->counter(h, "sluice_token_bucket_tokens_debited_total",
                               "tokens charged beyond the admission estimate");
    tb->m_pauses = h->counter(h, "sluice_token_bucket_upstream_pauses_total",
                              "keys paused after an upstream 429");
    *self = tb;
    return SLUICE_OK;
fail:
    tb_destroy(tb);
    return SLUICE_EINVAL;
}

static void tb_destroy(void *self)
{
    struct token_bucket *tb = self;
    if (!tb)
        return;
    rl_backend_fini(&tb->be);
    rl_map_free(tb->map);
    tb_free_tiers(tb);
    rl_key_free(&tb->scope);
    free(tb);
}

static int tb_thread_init(void *self, unsigned worker)
{
    struct token_bucket *tb = self;
    return rl_backend_thread_init(&tb->be, worker);
}

static void tb_thread_fini(void *self, unsigned worker)
{
    struct token_bucket *tb = self;
    rl_backend_thread_fini(&tb->be, worker);
}

static size_t tb_status_json(void *self, char *buf, size_t cap)
{
    struct token_bucket *tb = self;
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:b, s:I, s:I, s:I}", "backend",
                  rl_backend_is_redis(&tb->be) ? "redis" : "local", "scope",
                  tb->cfg.scope, "keys", (json_int_t)rl_map_count(tb->map),
                  "memory_bytes", (json_int_t)rl_map_bytes(tb->map), "evicted",
                  (json_int_t)rl_map_forced_evictions(tb->map), "redis_up",
                  rl_backend_all_up(&tb->be), "requests_per_period",
                  (json_int_t)tb->base.limit[TB_REQUESTS], "tokens_per_period",
                  (json_int_t)tb->base.limit[TB_TOKENS], "period_s",
                  (json_int_t)tb->cfg.period_s);
    size_t n = o ? json_dumpb(o, buf, cap, JSON_COMPACT) : 0;
    json_decref(o);
    return n;
}

static const struct sluice_plugin token_bucket_plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "token_bucket",
    .version = "1.0.0",
    .summary = "requests and tokens per period per key, exact, local or "
               "shared through Redis",
    .config = tb_config_fields,
    .config_size = sizeof(struct tb_config),
    .req_state_size = sizeof(struct tb_req),
    .create = tb_create,
    .destroy = tb_destroy,
    .thread_init = tb_thread_init,
    .thread_fini = tb_thread_fini,
    .on_request = tb_on_request,
    .on_upstream_response = tb_on_upstream_response,
    .on_response = tb_on_response,
    .on_log = tb_on_log,
    .on_attempt = tb_on_attempt,
    .status_json = tb_status_json,
};

SLUICE_PLUGIN_EXPORT(token_bucket_plugin)
