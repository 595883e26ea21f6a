#include "rl_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const rl_backend_choices[] = {"local", "redis", NULL};
const char *const rl_fail_choices[] = {"open", "closed", NULL};

static struct sluice_metric *metric(struct rl_backend *b, bool gauge,
                                    const char *what, const char *help)
{
    char name[96];
    snprintf(name, sizeof name, "sluice_%s_%s", b->plugin, what);
    return gauge ? b->host->gauge(b->host, name, help)
                 : b->host->counter(b->host, name, help);
}

int rl_backend_init(struct rl_backend *b, const struct sluice_host *h,
                    const char *plugin, const char *kind, const char *scope,
                    const struct rl_backend_cfg *cfg,
                    const char *const *scripts, size_t nscripts,
                    struct sluice_error *err)
{
    char why[160];

    memset(b, 0, sizeof *b);
    b->host = h;
    snprintf(b->plugin, sizeof b->plugin, "%s", plugin);
    b->cfg = *cfg;
    b->scripts = scripts;
    b->nscripts = nscripts;
    if (!rl_backend_is_redis(b))
        return 0;
    if (rl_redis_parse_url(cfg->redis_url, &b->redis, why, sizeof why)) {
        snprintf(err->message, sizeof err->message, "redis_url: %s", why);
        return -1;
    }
    b->redis.timeout_ms = (uint32_t)cfg->redis_timeout_ms;
    /* A connect may take longer than one decision, but not forever. */
    b->redis.connect_timeout_ms =
        b->redis.timeout_ms * 10 < 500 ? 500 : b->redis.timeout_ms * 10;
    b->redis.backoff_min_ms = 50;
    b->redis.backoff_max_ms = 2000;
    if (cfg->redis_key_prefix && cfg->redis_key_prefix[0]) {
        snprintf(b->key_prefix, sizeof b->key_prefix, "%s",
                 cfg->redis_key_prefix);
    } else {
        /* Braces would make a hash tag of the template: use parentheses. */
        int n = snprintf(b->key_prefix, sizeof b->key_prefix,
                         "sluice:%s:%s:", kind, scope);
        for (int i = 0; i < n && i < (int)sizeof b->key_prefix; i++) {
            if (b->key_prefix[i] == '{')
                b->key_prefix[i] = '(';
            else if (b->key_prefix[i] == '}')
                b->key_prefix[i] = ')';
        }
    }
    if (strchr(b->key_prefix, '{') || strchr(b->key_prefix, '}')) {
        snprintf(err->message, sizeof err->message,
                 "redis_key_prefix: must not contain '{' or '}'");
        return -1;
    }
    b->key_prefix_len = strlen(b->key_prefix);
    b->workers = h->worker_count(h);
    if (b->workers == 0)
        b->workers = 1;
    b->w = calloc(b->workers, sizeof *b->w);
    if (!b->w) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    for (unsigned i = 0; i < b->workers; i++) {
        b->w[i].b = b;
        b->w[i].index = i;
    }
    b->m_errors = metric(b, false, "redis_errors_total",
                         "Redis calls that failed or missed their deadline");
    b->m_fallbacks = metric(b, false, "fallback_decisions_total",
                            "decisions taken locally because Redis was down");
    b->m_up = metric(b, true, "redis_up",
                     "1 while every worker reaches Redis, else 0");
    h->gauge_set(b->m_up, 1);
    return 0;
}

void rl_backend_fini(struct rl_backend *b)
{
    if (b->w)
        for (unsigned i = 0; i < b->workers; i++)
            rl_redis_free(b->w[i].client);
    free(b->w);
    b->w = NULL;
}

static void on_state(void *arg, bool up, const char *why)
{
    struct rl_backend_worker *w = arg;
    struct rl_backend *b = w->b;
    const struct sluice_host *h = b->host;

    if (up == !w->counted_down)
        return;
    w->counted_down = !up;
    if (!up) {
        if (atomic_fetch_add(&b->down, 1) == 0) {
            h->log(h, SLUICE_LOG_WARN, "redis %s:%d unreachable (%s): %s",
                   b->redis.host, b->redis.port, why,
                   rl_backend_fail_closed(b) ? "failing closed (503)"
                                             : "failing open to local limits");
            h->gauge_set(b->m_up, 0);
        }
    } else if (atomic_fetch_sub(&b->down, 1) == 1) {
        h->log(h, SLUICE_LOG_INFO,
               "redis %s:%d reachable again: shared "
               "limits resumed",
               b->redis.host, b->redis.port);
        h->gauge_set(b->m_up, 1);
    }
}

int rl_backend_thread_init(struct rl_backend *b, unsigned worker)
{
    const struct sluice_host *h = b->host;
    if (!rl_backend_is_redis(b) || worker >= b->workers)
        return 0;
    struct rl_backend_worker *w = &b->w[worker];
    struct event_base *base = h->event_base(h, worker);
    if (!base) {
        on_state(w, false, "no event loop on this worker");
        return 0;
    }
    w->client =
        rl_redis_new(base, &b->redis, b->scripts, b->nscripts, on_state, w);
    if (!w->client)
        on_state(w, false, "cannot create the client");
    return 0;
}

void rl_backend_thread_fini(struct rl_backend *b, unsigned worker)
{
    if (!rl_backend_is_redis(b) || worker >= b->workers)
        return;
    rl_redis_free(b->w[worker].client);
    b->w[worker].client = NULL;
}

struct rl_redis *rl_backend_client(struct rl_backend *b, unsigned worker)
{
    if (worker >= b->workers || !b->w)
        return NULL;
    struct rl_redis *c = b->w[worker].client;
    return rl_redis_ready(c) ? c : NULL;
}

size_t rl_backend_redis_key(const struct rl_backend *b, const char *key,
                            size_t len, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s{%.*s}", b->key_prefix, (int)len, key);
    return n < 0 ? 0 : ((size_t)n >= cap ? cap - 1 : (size_t)n);
}

void rl_backend_count_error(struct rl_backend *b, unsigned worker)
{
    const struct sluice_host *h = b->host;
    char why[128];

    h->counter_add(b->m_errors, 1);
    if (worker >= b->workers ||
        !rl_redis_take_error(b->w[worker].client, why, sizeof why))
        return;
    uint64_t now = h->now_ns(h), last = atomic_load(&b->last_error_log_ns);
    if ((last && now - last < 10000000000ull) ||
        !atomic_compare_exchange_strong(&b->last_error_log_ns, &last, now))
        return;
    h->log(h, SLUICE_LOG_WARN, "redis call failed: %s", why);
}

void rl_backend_count_fallback(struct rl_backend *b)
{
    b->host->counter_add(b->m_fallbacks, 1);
}

bool rl_backend_all_up(struct rl_backend *b)
{
    return atomic_load(&b->down) == 0;
}

uint64_t rl_backend_share(const struct rl_backend *b, uint64_t limit)
{
    uint64_t div = b->cfg.local_fallback_divisor > 1
                       ? (uint64_t)b->cfg.local_fallback_divisor
                       : 1;
    uint64_t v = limit / div;
    return v ? v : 1;
}
