/* token_bucket against a real redis-server: exact admissions through the
 * script, sharing between instances, deadlines, fail open / closed,
 * recovery. Each test starts its own server on a free port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <signal.h>

#include "../common/rl_redis.h"
#include "../common/rl_test_plugin.h"
#include "../common/rl_test_redis.h"
#include "token_bucket.h"

int run_redis_tests(void);

static struct event_base *base;
static struct rl_test_redis server;

static void *test_event_base(const struct sluice_host *h, unsigned worker)
{
    (void)h;
    (void)worker;
    return base;
}

/* The fake host has no event loop: lend it ours. */
static void tp_init_redis(struct tp *x, const char *extra)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"backend\": \"redis\", \"redis_url\": \"%s\", "
             "\"redis_timeout_ms\": 500, %s}",
             /* loaded CI: no false timeouts */ server.url, extra);
    tp_init(x, json);
    ((struct sluice_host *)x->h)->event_base = test_event_base;
    /* create() ran before the swap; thread_init reads it now. */
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

/* Runs on_request, and if it waits on Redis, the loop until it is woken,
 * then on_request again (what the core does). */
static enum sluice_action run_via_loop(struct tp *x, struct treq *q,
                                       bool *suspended)
{
    enum sluice_action a = treq_run(x, q);
    *suspended = false;
    if (a != SLUICE_SUSPEND || sluice_test_resume_after_ms(q->r) != UINT64_MAX)
        return a;
    *suspended = true;
    assert_true(rl_test_loop_until(base, woken, q, 2000));
    return treq_resume(x, q);
}

static enum sluice_action once_via_loop(struct tp *x, bool *suspended,
                                        struct treq **keep)
{
    struct treq *q = treq_new(x, NULL);
    enum sluice_action a = run_via_loop(x, q, suspended);
    if (keep)
        *keep = q;
    else
        treq_end(x, q);
    return a;
}

static bool all_up(void *arg)
{
    struct tp *x = arg;
    struct token_bucket *tb = x->self;
    return rl_backend_all_up(&tb->be) && rl_redis_up(tb->be.w[0].client);
}

static int setup(void **state)
{
    (void)state;
    base = event_base_new();
    memset(&server, 0, sizeof server);
    return rl_test_redis_start(&server);
}

static int teardown(void **state)
{
    (void)state;
    rl_test_redis_cleanup(&server);
    event_base_free(base);
    return 0;
}

static void test_redis_exact_and_shared(void **state)
{
    struct tp a, b;
    bool susp;
    (void)state;
    tp_init_redis(&a, "\"requests_per_period\": 5, \"period_s\": 3600");
    tp_init_redis(&b, "\"requests_per_period\": 5, \"period_s\": 3600");
    int admitted = 0;
    for (int i = 0; i < 4; i++) {
        struct treq *q;
        admitted += once_via_loop(&a, &susp, &q) == SLUICE_CONTINUE;
        if (!susp)
            fprintf(stderr, "not suspended; log: %s\n", sluice_test_log(a.t));
        assert_true(susp);
        char want[8];
        snprintf(want, sizeof want, "%d", 4 - i);
        assert_string_equal(hdr(q, "x-ratelimit-remaining-requests"), want);
        treq_end(&a, q);
    }
    /* The second instance shares the key: one left, then nothing. */
    for (int i = 0; i < 4; i++)
        admitted += once_via_loop(&b, &susp, NULL) == SLUICE_CONTINUE;
    assert_int_equal(admitted, 5);
    struct treq *q;
    assert_int_equal(once_via_loop(&a, &susp, &q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(q->r), 429);
    assert_in_range(sluice_test_reject_retry_after_ms(q->r), 715000, 720000);
    assert_string_equal(hdr(q, "Retry-After"), "720");
    assert_string_equal(hdr(q, "x-ratelimit-limit-requests"), "5");
    treq_end(&a, q);
    assert_int_equal(sluice_test_metric(a.t, "sluice_token_bucket_redis_"
                                             "errors_total"),
                     0);
    tp_free_redis(&a);
    tp_free_redis(&b);
}

static void test_redis_tokens_reconcile_and_wait(void **state)
{
    struct tp x;
    bool susp;
    (void)state;
    rl_test_redis_command(&server, "FLUSHALL");
    tp_init_redis(&x, "\"tokens_per_period\": 100000, \"period_s\": 3600,"
                      "\"default_max_tokens\": 1000");
    struct treq *q;
    assert_int_equal(once_via_loop(&x, &susp, &q), SLUICE_CONTINUE);
    uint64_t cost = x.h->req_input_tokens(q->r) + 1000;
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)(100000 - cost));
    assert_string_equal(hdr(q, "x-ratelimit-remaining-tokens"), want);
    sluice_test_req_set_usage(q->r, 10, 20, 0);
    treq_respond(&x, q, 200, SLUICE_OUTCOME_OK);
    treq_end(&x, q);
    rl_test_loop_for(base, 50); /* the refund is fire and forget */
    assert_int_equal(once_via_loop(&x, &susp, &q), SLUICE_CONTINUE);
    /* 30 used, this one reserved: remaining = 100000 - 30 - cost,
     * give or take the refill of a few ms at 27.7 tokens/s. */
    uint64_t left = strtoull(hdr(q, "x-ratelimit-remaining-tokens"), NULL, 10);
    assert_in_range(left, 100000 - 30 - cost, 100000 - 30 - cost + 3);
    treq_end(&x, q);
    tp_free_redis(&x);

    /* Wait mode through Redis: the script reserves the slot. */
    rl_test_redis_command(&server, "FLUSHALL");
    tp_init_redis(&x, "\"requests_per_period\": 1, \"period_s\": 2, "
                      "\"mode\": \"wait\", \"max_wait_ms\": 5000");
    assert_int_equal(once_via_loop(&x, &susp, NULL), SLUICE_CONTINUE);
    q = treq_new(&x, NULL);
    assert_int_equal(run_via_loop(&x, q, &susp), SLUICE_SUSPEND);
    assert_in_range(sluice_test_resume_after_ms(q->r), 1900, 2000);
    assert_int_equal(treq_resume(&x, q), SLUICE_CONTINUE);
    treq_end(&x, q);
    tp_free_redis(&x);
}

static void test_redis_timeout_then_recovery(void **state)
{
    struct tp x;
    bool susp;
    struct treq *q;
    (void)state;
    rl_test_redis_command(&server, "FLUSHALL");
    tp_init_redis(&x,
                  "\"requests_per_period\": 10, \"period_s\": 3600, "
                  "\"local_fallback_divisor\": 2, \"redis_timeout_ms\": 20");
    assert_true(rl_test_loop_until(base, all_up, &x, 2000));
    rl_test_redis_freeze(&server, true);
    /* Each of the first RL_REDIS_TRIP calls waits out its 20 ms deadline
     * and is decided locally; then Redis counts as down. */
    for (int i = 0; i < RL_REDIS_TRIP; i++) {
        assert_int_equal(once_via_loop(&x, &susp, &q), SLUICE_CONTINUE);
        assert_true(susp);
        assert_string_equal(hdr(q, "x-sluice-ratelimit-mode"),
                            "local-fallback");
        assert_string_equal(hdr(q, "x-ratelimit-limit-requests"), "5");
        treq_end(&x, q);
    }
    rl_test_loop_for(base, 5);
    assert_non_null(strstr(sluice_test_log(x.t), "unreachable"));
    /* Down: no more waiting, the local share (10 / 2) decides. */
    int admitted = RL_REDIS_TRIP;
    for (int i = 0; i < 5; i++) {
        admitted += once_via_loop(&x, &susp, NULL) == SLUICE_CONTINUE;
        assert_false(susp);
    }
    assert_int_equal(admitted, 5);
    assert_int_equal(
        sluice_test_metric(x.t, "sluice_token_bucket_redis_errors_total"),
        RL_REDIS_TRIP);
    assert_int_equal(
        sluice_test_metric(x.t, "sluice_token_bucket_fallback_decisions_total"),
        RL_REDIS_TRIP + 5);
    assert_int_equal(sluice_test_metric(x.t, "sluice_token_bucket_redis_up"),
                     0);
    /* Thawed: the client reconnects on its own and shared limits resume. */
    rl_test_redis_freeze(&server, false);
    assert_true(rl_test_loop_until(base, all_up, &x, 5000));
    assert_non_null(strstr(sluice_test_log(x.t), "reachable again"));
    assert_int_equal(sluice_test_metric(x.t, "sluice_token_bucket_redis_up"),
                     1);
    assert_int_equal(once_via_loop(&x, &susp, &q), SLUICE_CONTINUE);
    assert_true(susp);
    assert_string_equal(hdr(q, "x-sluice-ratelimit-mode"), "(none)");
    treq_end(&x, q);
    tp_free_redis(&x);
}

static void test_redis_killed_open_and_closed(void **state)
{
    struct tp open_, closed;
    bool susp;
    struct treq *q;
    (void)state;
    rl_test_redis_command(&server, "FLUSHALL");
    tp_init_redis(&open_, "\"requests_per_period\": 3, \"period_s\": 3600");
    tp_init_redis(&closed, "\"requests_per_period\": 3, \"period_s\": 3600, "
                           "\"on_redis_error\": \"closed\", "
                           "\"scope\": \"{tenant}\"");
    assert_true(rl_test_loop_until(base, all_up, &open_, 2000));
    assert_true(rl_test_loop_until(base, all_up, &closed, 2000));
    assert_int_equal(once_via_loop(&open_, &susp, NULL), SLUICE_CONTINUE);
    rl_test_redis_kill(&server);
    rl_test_loop_for(base, 20); /* both clients see the connection drop */

    assert_int_equal(once_via_loop(&open_, &susp, &q), SLUICE_CONTINUE);
    assert_false(susp);
    assert_string_equal(hdr(q, "x-sluice-ratelimit-mode"), "local-fallback");
    treq_end(&open_, q);
    assert_int_equal(once_via_loop(&closed, &susp, &q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(q->r), 503);
    assert_string_equal(hdr(q, "Retry-After"), "1");
    treq_end(&closed, q);
    assert_non_null(strstr(sluice_test_log(closed.t), "failing closed"));

    /* Back on the same port: both resume on their own. */
    assert_int_equal(rl_test_redis_start(&server), 0);
    assert_true(rl_test_loop_until(base, all_up, &open_, 5000));
    assert_true(rl_test_loop_until(base, all_up, &closed, 5000));
    int admitted = 0;
    for (int i = 0; i < 5; i++) {
        admitted += once_via_loop(&closed, &susp, NULL) == SLUICE_CONTINUE;
        assert_true(susp);
    }
    assert_int_equal(admitted, 3); /* the restarted server starts empty */
    tp_free_redis(&open_);
    tp_free_redis(&closed);
}

static void test_redis_error_reply_logged(void **state)
{
    struct tp x;
    bool susp;
    struct treq *q;
    (void)state;
    /* Something else owns the key (a string): WRONGTYPE from the script.
     * The decision falls back, and the reason reaches the log. */
    rl_test_redis_command(&server, "FLUSHALL");
    rl_test_redis_command(&server,
                          "SET sluice:token_bucket:60s:global:{global} x");
    tp_init_redis(&x, "\"requests_per_period\": 5");
    assert_int_equal(once_via_loop(&x, &susp, &q), SLUICE_CONTINUE);
    assert_true(susp);
    assert_string_equal(hdr(q, "x-sluice-ratelimit-mode"), "local-fallback");
    treq_end(&x, q);
    assert_non_null(strstr(sluice_test_log(x.t), "redis call failed: "
                                                 "WRONGTYPE"));
    assert_int_equal(
        sluice_test_metric(x.t, "sluice_token_bucket_redis_errors_total"), 1);
    /* An error reply is not an outage: Redis stays up. */
    assert_int_equal(sluice_test_metric(x.t, "sluice_token_bucket_redis_up"),
                     1);
    tp_free_redis(&x);
}

/* ---- the client module on its own ---- */

static const char *const echo_script[] = {
    "return {tonumber(ARGV[1]) + 1, KEYS[1]}"};

struct echo {
    int calls;
    enum rl_redis_result res;
    long long value;
};

static void on_echo(void *arg, enum rl_redis_result res,
                    const struct redisReply *reply)
{
    struct echo *e = arg;
    e->calls++;
    e->res = res;
    e->value = rl_redis_int(reply, 0);
}

static bool echoed(void *arg)
{
    return ((struct echo *)arg)->calls > 0;
}

struct states {
    int downs, ups;
};

static void on_state(void *arg, bool up, const char *why)
{
    struct states *s = arg;
    (void)why;
    if (up)
        s->ups++;
    else
        s->downs++;
}

static void test_client_noscript_and_unreachable(void **state)
{
    struct rl_redis_config cfg = {.timeout_ms = 200};
    char err[64];
    struct states st = {0};
    (void)state;
    assert_int_equal(rl_redis_parse_url(server.url, &cfg, err, sizeof err), 0);
    struct rl_redis *c =
        rl_redis_new(base, &cfg, echo_script, 1, on_state, &st);
    const char *argv[] = {"k", "41"};
    size_t len[] = {1, 2};
    struct echo e = {0};
    assert_non_null(rl_redis_eval(c, 0, 1, 2, argv, len, on_echo, &e));
    assert_int_equal(e.calls, 0); /* never called from inside eval */
    assert_true(rl_test_loop_until(base, echoed, &e, 2000));
    assert_int_equal(e.res, RL_REDIS_OK);
    assert_int_equal(e.value, 42);
    /* The server forgets its scripts: NOSCRIPT, then EVAL, same answer. */
    rl_test_redis_command(&server, "SCRIPT FLUSH");
    e = (struct echo){0};
    assert_non_null(rl_redis_eval(c, 0, 1, 2, argv, len, on_echo, &e));
    assert_true(rl_test_loop_until(base, echoed, &e, 2000));
    assert_int_equal(e.res, RL_REDIS_OK);
    assert_int_equal(e.value, 42);
    /* A cancelled call never calls back. */
    e = (struct echo){0};
    rl_redis_cancel(rl_redis_eval(c, 0, 1, 2, argv, len, on_echo, &e));
    rl_test_loop_for(base, 50);
    assert_int_equal(e.calls, 0);
    assert_int_equal(st.downs, 0);
    rl_redis_free(c);

    /* Nothing listens: reported down, calls refused at once (until the
     * next attempt, 5 s away here). */
    cfg.port = 1;
    cfg.backoff_min_ms = cfg.backoff_max_ms = 5000;
    c = rl_redis_new(base, &cfg, echo_script, 1, on_state, &st);
    rl_test_loop_for(base, 30);
    assert_int_equal(st.downs, 1);
    assert_false(rl_redis_ready(c));
    assert_null(rl_redis_eval(c, 0, 1, 2, argv, len, on_echo, &e));
    rl_redis_free(c);

    assert_int_equal(
        rl_redis_parse_url("redis://:pw@[::1]:7000/3", &cfg, err, sizeof err),
        0);
    assert_string_equal(cfg.host, "::1");
    assert_int_equal(cfg.port, 7000);
    assert_int_equal(cfg.db, 3);
    assert_string_equal(cfg.password, "pw");
    assert_int_equal(rl_redis_parse_url("10.0.0.1", &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.port, 6379);
}

int run_redis_tests(void)
{
    if (!rl_test_redis_available()) {
        printf("SKIP token_bucket redis tests: redis-server is not "
               "installed\n");
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_noscript_and_unreachable),
        cmocka_unit_test(test_redis_exact_and_shared),
        cmocka_unit_test(test_redis_tokens_reconcile_and_wait),
        cmocka_unit_test(test_redis_timeout_then_recovery),
        cmocka_unit_test(test_redis_killed_open_and_closed),
        cmocka_unit_test(test_redis_error_reply_logged),
    };
    return cmocka_run_group_tests_name("token_bucket_redis", tests, setup,
                                       teardown);
}
