/* sliding_window unit tests: window edges on a fake clock, exact
 * Retry-After, the approximate counter's bounds, waits, memory bounds,
 * and the Redis scripts against a private redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <event2/event.h>
#include <signal.h>

#include "../common/rl_map.h"
#include "../common/rl_test_plugin.h"
#include "../common/rl_test_redis.h"
#include "sliding_window.h"

#define S 1000000000ull

static struct treq *reuse;

/* Sends one request on a reused request object (fast, for many keys). */
static enum sluice_action send_req(struct tp *x, const char *key)
{
    if (!reuse)
        reuse = treq_new(x, NULL);
    if (key)
        sluice_test_req_set_header(reuse->r, "x-k", key);
    memset(reuse->st, 0, x->p->req_state_size);
    return treq_run(x, reuse);
}

static void done_reuse(struct tp *x)
{
    if (reuse)
        treq_end(x, reuse);
    reuse = NULL;
}

static void test_exact_window_edges(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"limit\": 3, \"window_s\": 10}");
    for (int i = 0; i < 3; i++)
        assert_int_equal(tp_once(&x, NULL), SLUICE_CONTINUE);
    struct treq *q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_retry_after_ms(q->r), 10000);
    assert_string_equal(hdr(q, "Retry-After"), "10");
    assert_string_equal(hdr(q, "x-ratelimit-remaining-requests"), "0");
    assert_string_equal(hdr(q, "x-ratelimit-reset-requests"), "10s");
    treq_end(&x, q);
    /* 1 ns before the window has passed: still full. */
    sluice_test_clock_advance_ns(x.t, 10 * S - 1);
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_retry_after_ms(q->r), 1);
    treq_end(&x, q);
    /* Exactly at T the oldest has left. */
    sluice_test_clock_advance_ns(x.t, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tp_once(&x, NULL), SLUICE_CONTINUE);
    assert_int_equal(tp_once(&x, NULL), SLUICE_RESPOND);
    tp_free(&x);

    /* Staggered: 0 s, 2 s, 4 s; the 4th waits for the 0 s one exactly. */
    tp_init(&x, "{\"limit\": 3, \"window_s\": 10}");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tp_once(&x, NULL), SLUICE_CONTINUE);
        sluice_test_clock_advance_ms(x.t, 2000);
    }
    sluice_test_clock_advance_ms(x.t, 3000); /* t = 9 s */
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_retry_after_ms(q->r), 1000);
    assert_string_equal(hdr(q, "x-ratelimit-reset-requests"), "5s");
    treq_end(&x, q);
    sluice_test_clock_advance_ms(x.t, 1000); /* t = 10 s */
    assert_int_equal(tp_once(&x, NULL), SLUICE_CONTINUE);
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_retry_after_ms(q->r), 2000);
    treq_end(&x, q);
    tp_free(&x);
}

/* Random arrivals: every admission leaves at most N in its window, and
 * every refusal happens with exactly N already there (nothing wasted). */
static void test_exact_property(void **state)
{
    struct tp x;
    enum { N = 7, W_MS = 1000, STEPS = 20000 };
    static uint64_t admitted[STEPS];
    size_t n = 0;
    (void)state;
    tp_init(&x, "{\"limit\": 7, \"window_s\": 1}");
    sluice_test_seed(x.t, 7);
    for (int i = 0; i < STEPS; i++) {
        sluice_test_clock_advance_ms(x.t, x.h->random_u64(x.h) % 300);
        uint64_t now = x.h->now_ns(x.h);
        size_t in_window = 0;
        for (size_t k = n; k-- > 0 && admitted[k] + W_MS * 1000000ull > now;)
            in_window++;
        if (send_req(&x, NULL) == SLUICE_CONTINUE) {
            assert_true(in_window < N);
            admitted[n++] = now;
        } else {
            assert_int_equal(in_window, N);
            /* Retry-After: when the oldest of those N leaves. */
            uint64_t oldest = admitted[n - N];
            uint64_t want = oldest + W_MS * 1000000ull - now;
            assert_int_equal(sluice_test_reject_retry_after_ms(reuse->r),
                             (want + 999999) / 1000000);
        }
    }
    assert_true(n > STEPS / 10);
    done_reuse(&x);
    tp_free(&x);
}

static void test_approximate_bounds(void **state)
{
    struct tp x;
    enum { N = 100 };
    (void)state;
    tp_init(&x, "{\"limit\": 100, \"window_s\": 10, \"approximate\": true}");
    /* Steady overload (50 / s against 10 / s): per fixed window, at most
     * N; over many windows, N per window on average. */
    uint64_t per_window[60] = {0};
    uint64_t start = x.h->now_ns(x.h) / (10 * S);
    for (int i = 0; i < 30000; i++) {
        uint64_t w = x.h->now_ns(x.h) / (10 * S) - start;
        if (send_req(&x, NULL) == SLUICE_CONTINUE && w < 60)
            per_window[w]++;
        sluice_test_clock_advance_ms(x.t, 20);
    }
    uint64_t total = 0;
    for (int w = 0; w < 60; w++) {
        assert_true(per_window[w] <= N);
        if (w >= 2 && w < 58)
            total += per_window[w];
    }
    assert_in_range(total, 56 * N - N, 56 * N + N);

    /* Retry-After is exact for the estimate: 1 ns early is still too
     * early, at the stated time it passes. */
    for (int i = 0; i < 50; i++) {
        if (send_req(&x, NULL) == SLUICE_CONTINUE) {
            sluice_test_clock_advance_ms(x.t, 37);
            continue;
        }
        struct sw_req *st = reuse->st;
        uint64_t wait = st->dec.wait_ns;
        sluice_test_clock_advance_ns(x.t, wait - 1);
        assert_int_equal(send_req(&x, NULL), SLUICE_RESPOND);
        sluice_test_clock_advance_ns(x.t, 1);
        assert_int_equal(send_req(&x, NULL), SLUICE_CONTINUE);
    }
    done_reuse(&x);
    tp_free(&x);

    /* Bursty worst case: the estimate never lets a rolling window hold
     * more than 2N (it is an estimate; exact mode holds N). */
    tp_init(&x, "{\"limit\": 10, \"window_s\": 10, \"approximate\": true}");
    static uint64_t times[4000];
    size_t n = 0;
    sluice_test_seed(x.t, 3);
    for (int i = 0; i < 4000; i++) {
        sluice_test_clock_advance_ms(x.t, x.h->random_u64(x.h) % 400);
        uint64_t now = x.h->now_ns(x.h);
        if (send_req(&x, NULL) == SLUICE_CONTINUE) {
            size_t in_window = 1;
            for (size_t k = n; k-- > 0 && times[k] + 10 * S > now;)
                in_window++;
            assert_true(in_window <= 20);
            times[n++] = now;
        }
    }
    done_reuse(&x);
    tp_free(&x);
}

static void test_wait_mode(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"limit\": 2, \"window_s\": 1, \"mode\": \"wait\", "
                "\"max_wait_ms\": 1500}");
    struct treq *q[7];
    for (int i = 0; i < 7; i++)
        q[i] = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q[0]), SLUICE_CONTINUE);
    sluice_test_clock_advance_ms(x.t, 100);
    assert_int_equal(treq_run(&x, q[1]), SLUICE_CONTINUE);
    /* Full: the next two reserve the slots at 1.0 s and 1.1 s. */
    assert_int_equal(treq_run(&x, q[2]), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(q[2]->r), 900);
    assert_int_equal(treq_run(&x, q[3]), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(q[3]->r), 1000);
    /* The one after would start at 2.0 s: past max_wait. */
    assert_int_equal(treq_run(&x, q[4]), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_retry_after_ms(q[4]->r), 1900);
    /* q[3] ends while it waits (a retry whose deadline passed: the answer
     * is final). Its slot is free again for q[5] from on_response, before
     * on_log, which runs after the client has the answer. */
    if (x.p->on_response)
        x.p->on_response(x.self, q[3]->r, q[3]->st);
    assert_int_equal(treq_run(&x, q[5]), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(q[5]->r), 1000);
    /* on_log gives nothing back twice: q[6] would start at 2.0 s. */
    treq_end(&x, q[3]);
    assert_int_equal(treq_run(&x, q[6]), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_retry_after_ms(q[6]->r), 1900);
    sluice_test_clock_advance_ms(x.t, 900);
    assert_int_equal(treq_resume(&x, q[2]), SLUICE_CONTINUE);
    sluice_test_clock_advance_ms(x.t, 100);
    assert_int_equal(treq_resume(&x, q[5]), SLUICE_CONTINUE);
    for (int i = 0; i < 7; i++)
        if (i != 3)
            treq_end(&x, q[i]);
    assert_int_equal(
        sluice_test_metric(x.t, "sluice_sliding_window_allowed_total"), 4);
    tp_free(&x);

    /* Approximate: wait, then ask again. */
    tp_init(&x, "{\"limit\": 2, \"window_s\": 1, \"approximate\": true, "
                "\"mode\": \"wait\", \"max_wait_ms\": 5000}");
    assert_int_equal(tp_once(&x, NULL), SLUICE_CONTINUE);
    assert_int_equal(tp_once(&x, NULL), SLUICE_CONTINUE);
    struct treq *w = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, w), SLUICE_SUSPEND);
    uint64_t delay = sluice_test_resume_after_ms(w->r);
    assert_true(delay > 0 && delay <= 2000);
    sluice_test_clock_advance_ms(x.t, delay);
    assert_int_equal(treq_resume(&x, w), SLUICE_CONTINUE);
    treq_end(&x, w);
    tp_free(&x);
}

static void test_tiers_and_override(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"limit\": 5, \"scope\": \"{user}\", \"tiers\": "
                "{\"free\": {\"limit\": 1}}}");
    int n[3] = {0};
    for (int i = 0; i < 10; i++) {
        struct treq *q = treq_new(&x, NULL);
        sluice_test_req_set_identity(q->r, "t", "a", "free", "");
        n[0] += treq_run(&x, q) == SLUICE_CONTINUE;
        treq_end(&x, q);
        q = treq_new(&x, NULL);
        sluice_test_req_set_identity(q->r, "t", "b", "paid", "");
        n[1] += treq_run(&x, q) == SLUICE_CONTINUE;
        treq_end(&x, q);
        q = treq_new(&x, NULL);
        sluice_test_req_set_identity(q->r, "t", "c", "paid", "");
        x.h->var_set(q->r, "ratelimit.sliding_window.limit",
                     (struct sluice_str){"3", 1});
        n[2] += treq_run(&x, q) == SLUICE_CONTINUE;
        treq_end(&x, q);
    }
    assert_int_equal(n[0], 1);
    assert_int_equal(n[1], 5);
    assert_int_equal(n[2], 3);
    tp_free(&x);
}

static void sum_ring(void *arg, const char *key, size_t len, void *value)
{
    const struct sw_ring *ring = value;
    size_t *worst = arg;
    (void)key;
    (void)len;
    if (ring->cap > *worst)
        *worst = ring->cap;
}

static void test_memory_bounds(void **state)
{
    struct tp x;
    char key[32];
    (void)state;
    /* One key hammered: its ring never holds more than N times. */
    tp_init(&x, "{\"limit\": 50, \"window_s\": 60}");
    struct sliding_window *sw = x.self;
    for (int i = 0; i < 5000; i++) {
        send_req(&x, NULL);
        sluice_test_clock_advance_ms(x.t, 3);
    }
    size_t worst = 0;
    rl_map_foreach(sw->map, sum_ring, &worst);
    assert_true(worst <= 50);
    done_reuse(&x);
    tp_free(&x);

    /* Idle keys leave: each key is idle one window after its request. */
    tp_init(&x, "{\"limit\": 5, \"window_s\": 1, \"scope\": "
                "\"{header.x-k}\"}");
    sw = x.self;
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(send_req(&x, key), SLUICE_CONTINUE);
        sluice_test_clock_advance_ms(x.t, 1);
    }
    assert_in_range(rl_map_count(sw->map), 1000, 1100);
    assert_int_equal(rl_map_forced_evictions(sw->map), 0);
    done_reuse(&x);
    tp_free(&x);

    /* A million distinct keys inside one window: the cap holds. */
    tp_init(&x, "{\"limit\": 5, \"window_s\": 3600, \"scope\": "
                "\"{header.x-k}\", \"max_keys\": 10000}");
    sw = x.self;
    size_t peak = 0;
    for (int i = 0; i < 1000000; i++) {
        snprintf(key, sizeof key, "user-%07d", i);
        assert_int_equal(send_req(&x, key), SLUICE_CONTINUE);
        if (rl_map_bytes(sw->map) > peak)
            peak = rl_map_bytes(sw->map);
        sluice_test_clock_advance_ns(x.t, 1000);
    }
    assert_true(rl_map_count(sw->map) <= 10064);
    assert_true(sluice_test_metric(x.t, "sluice_sliding_window_keys") <= 10064);
    /* Entries plus one 4-slot ring (32 bytes) each. */
    printf("sliding_window: %zu keys, peak %zu bytes in entries (+32 per "
           "key in rings)\n",
           rl_map_count(sw->map), peak);
    assert_true(peak + 10064 * 32 < 10064 * 200);
    done_reuse(&x);
    tp_free(&x);

    /* Approximate state is O(1) per key, whatever the limit. */
    tp_init(&x, "{\"limit\": 1000000, \"window_s\": 60, \"approximate\": "
                "true}");
    sw = x.self;
    send_req(&x, NULL);
    size_t one_key = rl_map_bytes(sw->map);
    for (int i = 0; i < 10000; i++)
        send_req(&x, NULL);
    assert_int_equal(rl_map_count(sw->map), 1);
    assert_int_equal(rl_map_bytes(sw->map), one_key);
    done_reuse(&x);
    tp_free(&x);
}

static void expect_error(const char *json, const char *want)
{
    struct tp x;
    char err[256] = "";
    int rc = tp_try(&x, json, err, sizeof err);
    if (rc == 0 || !strstr(err, want))
        fprintf(stderr, "config %s: got \"%s\", want \"%s\"\n", json, err,
                want);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, want));
    tp_free(&x);
}

static void test_config_errors(void **state)
{
    (void)state;
    expect_error("{}", "config.limit: is required");
    expect_error("{\"limit\": 0}", "config.limit: must be > 0");
    expect_error("{\"limit\": 200000}",
                 "limit: exact mode keeps one timestamp per request");
    expect_error("{\"limit\": 5, \"window_s\": 100000}",
                 "config.window_s: must be <= 86400");
    expect_error("{\"limit\": 5, \"tiers\": {\"free\": {\"limit\": 0}}}",
                 "config.tiers.free.limit: must be > 0");
    expect_error("{\"limit\": 5, \"tiers\": {\"free\": {\"rpm\": 1}}}",
                 "config.tiers.free.rpm: unknown key");
    expect_error("{\"limit\": 5, \"tiers\": {\"free\": {}}}",
                 "config.tiers.free.limit: is required");
    expect_error("{\"limit\": 5, \"tiers\": {\"free\": {\"limit\": 200000}}}",
                 "tiers.free.limit: exact mode keeps one timestamp");
    expect_error("{\"limit\": 5, \"scope\": \"{tenant\"}",
                 "scope: unterminated '{'");
    expect_error("{\"limit\": 1000000000, \"approximate\": true, "
                 "\"window_s\": 86400, \"backend\": \"redis\"}",
                 "limit: too large for exact Redis arithmetic");
}

/* ---- Redis ---- */

static struct event_base *base;
static struct rl_test_redis server;

static void *test_event_base(const struct sluice_host *h, unsigned worker)
{
    (void)h;
    (void)worker;
    return base;
}

static void tp_init_redis(struct tp *x, const char *extra)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"backend\": \"redis\", \"redis_url\": \"%s\", "
             "\"redis_timeout_ms\": 500, %s}",
             /* loaded CI: no false timeouts */ server.url, extra);
    tp_init(x, json);
    ((struct sluice_host *)x->h)->event_base = test_event_base;
    assert_int_equal(x->p->thread_init(x->self, 0), 0);
}

static void tp_free_redis(struct tp *x)
{
    x->p->thread_fini(x->self, 0);
    tp_free(x);
}

static bool woken(void *arg)
{
    return sluice_test_wakes(((struct treq *)arg)->r) > 0;
}

static enum sluice_action via_loop(struct tp *x, struct treq *q)
{
    enum sluice_action a = treq_run(x, q);
    if (a != SLUICE_SUSPEND || sluice_test_resume_after_ms(q->r) != UINT64_MAX)
        return a;
    assert_true(rl_test_loop_until(base, woken, q, 2000));
    return treq_resume(x, q);
}

static int redis_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    memset(&server, 0, sizeof server);
    return 0;
}

/* Runs even when the test fails: no server left behind. */
static int redis_teardown(void **state)
{
    (void)state;
    rl_test_redis_cleanup(&server);
    event_base_free(base);
    return 0;
}

static void test_redis(void **state)
{
    struct tp x, y;
    (void)state;
    if (!rl_test_redis_available()) {
        printf("SKIP sliding_window redis test: redis-server is not "
               "installed\n");
        return;
    }
    assert_int_equal(rl_test_redis_start(&server), 0);

    /* Exact: N in the window, shared by two instances, exact wait. */
    tp_init_redis(&x, "\"limit\": 4, \"window_s\": 3600");
    tp_init_redis(&y, "\"limit\": 4, \"window_s\": 3600");
    int admitted = 0;
    for (int i = 0; i < 6; i++) {
        struct treq *q = treq_new(i % 2 ? &x : &y, NULL);
        admitted += via_loop(i % 2 ? &x : &y, q) == SLUICE_CONTINUE;
        if (i == 5) {
            assert_int_equal(sluice_test_reject_status(q->r), 429);
            assert_in_range(sluice_test_reject_retry_after_ms(q->r), 3590000,
                            3600000);
            assert_string_equal(hdr(q, "Retry-After"), "3600");
        }
        treq_end(i % 2 ? &x : &y, q);
    }
    assert_int_equal(admitted, 4);
    tp_free_redis(&x);
    tp_free_redis(&y);

    /* Exact wait through Redis: reserve, leave, the slot comes back. */
    tp_init_redis(&x, "\"limit\": 1, \"window_s\": 2, \"mode\": \"wait\", "
                      "\"scope\": \"w\"");
    struct treq *a = treq_new(&x, NULL), *b = treq_new(&x, NULL),
                *c = treq_new(&x, NULL);
    assert_int_equal(via_loop(&x, a), SLUICE_CONTINUE);
    assert_int_equal(via_loop(&x, b), SLUICE_SUSPEND);
    assert_in_range(sluice_test_resume_after_ms(b->r), 1900, 2000);
    treq_end(&x, b); /* releases its slot in Redis */
    rl_test_loop_for(base, 30);
    assert_int_equal(via_loop(&x, c), SLUICE_SUSPEND);
    assert_in_range(sluice_test_resume_after_ms(c->r), 1800, 2000);
    assert_int_equal(treq_resume(&x, c), SLUICE_CONTINUE);
    treq_end(&x, a);
    treq_end(&x, c);
    tp_free_redis(&x);

    /* Approximate through Redis. */
    tp_init_redis(&x, "\"limit\": 3, \"window_s\": 3600, \"approximate\": "
                      "true");
    admitted = 0;
    for (int i = 0; i < 5; i++) {
        struct treq *q = treq_new(&x, NULL);
        admitted += via_loop(&x, q) == SLUICE_CONTINUE;
        treq_end(&x, q);
    }
    if (admitted != 3 ||
        sluice_test_metric(
            x.t, "sluice_sliding_window_fallback_decisions_total") > 0)
        fprintf(stderr, "log: %s fallbacks %g\n", sluice_test_log(x.t),
                sluice_test_metric(
                    x.t, "sluice_sliding_window_fallback_decisions_total"));
    assert_int_equal(admitted, 3);

    /* Killed: fail open to the local share; restarted: shared again. */
    rl_test_redis_kill(&server);
    rl_test_loop_for(base, 20);
    struct treq *q = treq_new(&x, NULL);
    enum sluice_action act = via_loop(&x, q);
    if (act != SLUICE_CONTINUE)
        fprintf(stderr, "refused: %d %s\n", sluice_test_reject_status(q->r),
                sluice_test_reject_message(q->r));
    assert_int_equal(act, SLUICE_CONTINUE);
    assert_string_equal(hdr(q, "x-sluice-ratelimit-mode"), "local-fallback");
    treq_end(&x, q);
    assert_int_equal(rl_test_redis_start(&server), 0);
    struct sliding_window *sw = x.self;
    for (int i = 0; i < 500 && !rl_backend_all_up(&sw->be); i++)
        rl_test_loop_for(base, 10);
    assert_true(rl_backend_all_up(&sw->be));
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_SUSPEND); /* via Redis */
    assert_true(rl_test_loop_until(base, woken, q, 2000));
    assert_int_equal(treq_resume(&x, q), SLUICE_CONTINUE);
    treq_end(&x, q);
    tp_free_redis(&x);
}

int main(void)
{
    if (getenv("RL_TEST_FILTER"))
        cmocka_set_test_filter(getenv("RL_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_window_edges),
        cmocka_unit_test(test_exact_property),
        cmocka_unit_test(test_approximate_bounds),
        cmocka_unit_test(test_wait_mode),
        cmocka_unit_test(test_tiers_and_override),
        cmocka_unit_test(test_memory_bounds),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test_setup_teardown(test_redis, redis_setup,
                                        redis_teardown),
    };
    return cmocka_run_group_tests_name("sliding_window", tests, NULL, NULL);
}
