/* aimd unit tests on the fake host: additive increase, multiplicative
 * decrease and their bounds, rate pacing, provider-header slow-down, the
 * bounded queue, wake on release, max_wait, cancellation, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "../common/rl_test_plugin.h"
#include "aimd.h"

static struct aimd_key *key_of(struct tp *x, const char *key)
{
    struct aimd *a = x->self;
    struct rl_map_slot slot;
    if (!rl_map_lock(a->map, key, strlen(key), x->h->now_ns(x->h), false,
                     &slot))
        return NULL;
    struct aimd_key *k = slot.value;
    rl_map_unlock(&slot, RL_MAP_PINNED);
    return k; /* read while no other thread runs */
}

static void finish(struct tp *x, struct treq *q, int status)
{
    treq_respond(x, q, status,
                 status == 200 ? SLUICE_OUTCOME_OK
                 : status      ? SLUICE_OUTCOME_HTTP_ERROR
                               : SLUICE_OUTCOME_TIMEOUT);
    treq_end(x, q);
}

static void test_increase_decrease_bounds(void **state)
{
    struct tp x;
    struct treq *q[8];
    (void)state;
    tp_init(&x, "{\"initial_concurrency\": 4, \"min_concurrency\": 2, "
                "\"max_concurrency\": 6, \"increase\": 1, "
                "\"decrease_factor\": 0.5}");
    /* Saturated use: each success adds 1/limit (1 per round trip). */
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 4; i++) {
            q[i] = treq_new(&x, NULL);
            assert_int_equal(treq_run(&x, q[i]), SLUICE_CONTINUE);
        }
        for (int i = 0; i < 4; i++)
            finish(&x, q[i], 200);
    }
    struct aimd_key *k = key_of(&x, "default");
    assert_true(k->limit == 6.0); /* capped at max */
    assert_int_equal(aimd_cap(k, &((struct aimd *)x.self)->p), 6);
    assert_int_equal(sluice_test_health(x.t, "aimd.default.limit"), 6);
    assert_int_equal(sluice_test_metric(x.t, "sluice_aimd_concurrency_limit"),
                     6);

    /* Two 429s from the same round: one cut (6 -> 3). */
    q[0] = treq_new(&x, NULL);
    q[1] = treq_new(&x, NULL);
    treq_run(&x, q[0]);
    treq_run(&x, q[1]);
    finish(&x, q[0], 429);
    finish(&x, q[1], 429);
    assert_true(k->limit == 3.0);
    assert_int_equal(sluice_test_metric(x.t, "sluice_aimd_decreases_total"), 1);
    /* Later rounds' 503 and timeout cut again, but not below min. */
    for (int i = 0; i < 3; i++) {
        q[0] = treq_new(&x, NULL);
        assert_int_equal(treq_run(&x, q[0]), SLUICE_CONTINUE);
        finish(&x, q[0], i == 0 ? 503 : 0);
    }
    assert_true(k->limit == 2.0);
    tp_free(&x);

    /* An idle limit does not drift up: one request at a time never uses
     * half of a limit of 6. */
    tp_init(&x, "{\"initial_concurrency\": 6, \"max_concurrency\": 50}");
    for (int i = 0; i < 100; i++) {
        q[0] = treq_new(&x, NULL);
        treq_run(&x, q[0]);
        finish(&x, q[0], 200);
    }
    assert_true(key_of(&x, "default")->limit == 6.0);
    tp_free(&x);
}

static void test_rate_pacing(void **state)
{
    struct tp x;
    struct treq *q[4];
    (void)state;
    tp_init(&x, "{\"limit_by\": \"rate\", \"initial_rate\": 10, "
                "\"min_rate\": 5, \"max_rate\": 20, \"decrease_factor\": "
                "0.5}");
    for (int i = 0; i < 4; i++)
        q[i] = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q[0]), SLUICE_CONTINUE);
    assert_int_equal(treq_run(&x, q[1]), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(q[1]->r), 100);
    assert_int_equal(treq_run(&x, q[2]), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(q[2]->r), 200);
    sluice_test_clock_advance_ms(x.t, 100);
    assert_int_equal(treq_resume(&x, q[1]), SLUICE_CONTINUE);
    /* A 429 halves the rate (10 -> 5). */
    finish(&x, q[0], 429);
    struct aimd_key *k = key_of(&x, "default");
    assert_true(k->rate == 5.0);
    /* Starts already promised keep their spacing: q[3] gets the 300 ms
     * start reserved after q[2]; from there on, 200 ms apart. */
    assert_int_equal(treq_run(&x, q[3]), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(q[3]->r), 200);
    assert_int_equal(k->next_start_ns - x.h->now_ns(x.h), 400 * 1000000ull);
    finish(&x, q[1], 429); /* same round as q[0]: no second cut */
    assert_true(k->rate == 5.0);
    sluice_test_clock_advance_ms(x.t, 100);
    assert_int_equal(treq_resume(&x, q[2]), SLUICE_CONTINUE);
    finish(&x, q[2], 429);
    sluice_test_clock_advance_ms(x.t, 100);
    assert_int_equal(treq_resume(&x, q[3]), SLUICE_CONTINUE);
    finish(&x, q[3], 429);
    assert_true(k->rate == 5.0); /* min */
    /* Growth at full use: +increase (1 req/s) per second, up to max. */
    for (int i = 0; i < 200; i++) {
        struct treq *w = treq_new(&x, NULL);
        if (treq_run(&x, w) == SLUICE_SUSPEND) {
            sluice_test_clock_advance_ms(x.t,
                                         sluice_test_resume_after_ms(w->r));
            assert_int_equal(treq_resume(&x, w), SLUICE_CONTINUE);
        }
        finish(&x, w, 200);
    }
    assert_true(k->rate == 20.0); /* max */
    assert_int_equal(sluice_test_health(x.t, "aimd.default.rate"), 20);
    tp_free(&x);
}

static void set_limits(struct treq *q, const char *limit, const char *left,
                       const char *reset)
{
    sluice_test_req_set_resp_header(q->r, "x-ratelimit-limit-requests", limit);
    sluice_test_req_set_resp_header(q->r, "x-ratelimit-remaining-requests",
                                    left);
    sluice_test_req_set_resp_header(q->r, "x-ratelimit-reset-requests", reset);
}

static void test_provider_headers(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"initial_concurrency\": 100, \"provider_low_water\": "
                "0.1}");
    /* Plenty left: no pacing. */
    struct treq *q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    set_limits(q, "100", "50", "30s");
    finish(&x, q, 200);
    assert_int_equal(tp_once(&x, NULL), SLUICE_CONTINUE);
    assert_int_equal(tp_once(&x, NULL), SLUICE_CONTINUE);
    /* 5 of 100 left, full in 6 s: the provider refills one request every
     * 6 s / 95 = 63.16 ms; starts are spread at that pace. */
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    set_limits(q, "100", "5", "6s");
    finish(&x, q, 200);
    assert_int_equal(
        sluice_test_metric(x.t, "sluice_aimd_provider_slowdowns_total"), 1);
    struct treq *a = treq_new(&x, NULL), *b = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, a), SLUICE_CONTINUE);
    assert_int_equal(treq_run(&x, b), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(b->r), 64);
    sluice_test_clock_advance_ms(x.t, 64);
    assert_int_equal(treq_resume(&x, b), SLUICE_CONTINUE);
    /* Nothing left ("1m0s", OpenAI style): pause until the next slot. */
    set_limits(a, "60", "0", "1m0s");
    finish(&x, a, 200);
    finish(&x, b, 200);
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_SUSPEND); /* queued: paused */
    sluice_test_clock_advance_ms(x.t, 999);
    aimd_tick(x.self, 0);
    assert_int_equal(sluice_test_wakes(q->r), 0);
    sluice_test_clock_advance_ms(x.t, 1);
    aimd_tick(x.self, 0); /* the pause is over: the reaper lets it in */
    assert_int_equal(sluice_test_wakes(q->r), 1);
    assert_int_equal(treq_resume(&x, q), SLUICE_CONTINUE);
    finish(&x, q, 200);
    /* A 429's Retry-After pauses too. */
    sluice_test_clock_advance_ms(x.t, 60000);
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    sluice_test_req_set_resp_header(q->r, "retry-after", "2");
    finish(&x, q, 429);
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_SUSPEND);
    sluice_test_clock_advance_ms(x.t, 2000);
    aimd_tick(x.self, 0);
    assert_int_equal(treq_resume(&x, q), SLUICE_CONTINUE);
    finish(&x, q, 200);
    tp_free(&x);
}

static void test_queue_bound_and_wake(void **state)
{
    struct tp x;
    struct treq *q[5];
    (void)state;
    tp_init(&x, "{\"initial_concurrency\": 1, \"max_concurrency\": 1, "
                "\"max_queue\": 2, \"max_wait_ms\": 5000}");
    for (int i = 0; i < 5; i++)
        q[i] = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q[0]), SLUICE_CONTINUE);
    assert_int_equal(treq_run(&x, q[1]), SLUICE_SUSPEND);
    assert_int_equal(treq_run(&x, q[2]), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(q[1]->r), UINT64_MAX);
    /* Full queue: refused now, with a Retry-After. */
    assert_int_equal(treq_run(&x, q[3]), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(q[3]->r), 429);
    assert_string_equal(hdr(q[3], "Retry-After"), "1");
    treq_end(&x, q[3]);
    assert_int_equal(sluice_test_metric(x.t, "sluice_aimd_queued_total"), 2);
    aimd_tick(x.self, 0);
    assert_int_equal(sluice_test_metric(x.t, "sluice_aimd_waiting"), 2);
    assert_int_equal(sluice_test_metric(x.t, "sluice_aimd_in_flight"), 1);

    /* q[0] finishes: its slot goes straight to q[1], which is woken. */
    finish(&x, q[0], 200);
    assert_int_equal(sluice_test_wakes(q[1]->r), 1);
    assert_int_equal(sluice_test_wakes(q[2]->r), 0);
    assert_int_equal(treq_resume(&x, q[1]), SLUICE_CONTINUE);
    /* A waiter that leaves (client gone) is dropped from the queue. */
    assert_int_equal(treq_run(&x, q[4]), SLUICE_SUSPEND);
    treq_end(&x, q[2]);
    finish(&x, q[1], 200);
    assert_int_equal(sluice_test_wakes(q[4]->r), 1);
    assert_int_equal(treq_resume(&x, q[4]), SLUICE_CONTINUE);
    finish(&x, q[4], 200);
    struct aimd_key *k = key_of(&x, "default");
    assert_int_equal(k->in_flight, 0);
    assert_int_equal(k->q_len, 0);
    tp_free(&x);

    /* 503 is configurable; max_queue 0 refuses at once. */
    tp_init(&x, "{\"initial_concurrency\": 1, \"max_concurrency\": 1, "
                "\"max_queue\": 0, \"reject_status\": 503}");
    q[0] = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q[0]), SLUICE_CONTINUE);
    q[1] = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q[1]), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(q[1]->r), 503);
    treq_end(&x, q[1]);
    finish(&x, q[0], 200);
    tp_free(&x);
}

static void test_max_wait(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"initial_concurrency\": 1, \"max_concurrency\": 1, "
                "\"max_wait_ms\": 1000}");
    struct treq *a = treq_new(&x, NULL), *b = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, a), SLUICE_CONTINUE);
    assert_int_equal(treq_run(&x, b), SLUICE_SUSPEND);
    sluice_test_clock_advance_ms(x.t, 999);
    aimd_tick(x.self, 0);
    assert_int_equal(sluice_test_wakes(b->r), 0);
    sluice_test_clock_advance_ms(x.t, 1);
    aimd_tick(x.self, 0);
    assert_int_equal(sluice_test_wakes(b->r), 1);
    aimd_tick(x.self, 0); /* told once */
    assert_int_equal(sluice_test_wakes(b->r), 1);
    assert_int_equal(treq_resume(&x, b), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(b->r), 429);
    assert_non_null(strstr(sluice_test_reject_message(b->r), "max_wait_ms"));
    treq_end(&x, b);
    finish(&x, a, 200);
    assert_int_equal(key_of(&x, "default")->q_len, 0);
    tp_free(&x);

    /* Rate pacing beyond max_wait: refused with the exact wait. */
    tp_init(&x, "{\"limit_by\": \"rate\", \"initial_rate\": 1, "
                "\"min_rate\": 1, \"max_wait_ms\": 1500}");
    a = treq_new(&x, NULL);
    b = treq_new(&x, NULL);
    struct treq *c = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, a), SLUICE_CONTINUE);
    assert_int_equal(treq_run(&x, b), SLUICE_SUSPEND);
    assert_int_equal(treq_run(&x, c), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_retry_after_ms(c->r), 2000);
    treq_end(&x, c);
    treq_end(&x, b); /* leaves while paced */
    finish(&x, a, 200);
    assert_int_equal(key_of(&x, "default")->paced, 0);
    assert_int_equal(key_of(&x, "default")->in_flight, 0);
    tp_free(&x);
}

/* A start promised before a Retry-After pause began waits for the pause
 * to end (or is refused past max_wait), like a new request would. */
static void test_pause_holds_promised_starts(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"limit_by\": \"rate\", \"initial_rate\": 10, "
                "\"max_wait_ms\": 5000}");
    struct treq *a = treq_new(&x, NULL), *b = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, a), SLUICE_CONTINUE);
    assert_int_equal(treq_run(&x, b), SLUICE_SUSPEND); /* start in 100 ms */
    sluice_test_req_set_resp_header(a->r, "retry-after", "2");
    finish(&x, a, 429); /* pauses the key for 2 s */
    sluice_test_clock_advance_ms(x.t, 100);
    assert_int_equal(treq_resume(&x, b), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(b->r), 1900);
    sluice_test_clock_advance_ms(x.t, 1900);
    assert_int_equal(treq_resume(&x, b), SLUICE_CONTINUE);
    finish(&x, b, 200);
    tp_free(&x);

    /* A pause past max_wait: refused, nothing left held. */
    tp_init(&x, "{\"limit_by\": \"rate\", \"initial_rate\": 10, "
                "\"max_wait_ms\": 1000}");
    a = treq_new(&x, NULL);
    b = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, a), SLUICE_CONTINUE);
    assert_int_equal(treq_run(&x, b), SLUICE_SUSPEND);
    sluice_test_req_set_resp_header(a->r, "retry-after", "5");
    finish(&x, a, 429);
    sluice_test_clock_advance_ms(x.t, 100);
    assert_int_equal(treq_resume(&x, b), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(b->r), 429);
    treq_end(&x, b);
    assert_int_equal(key_of(&x, "default")->paced, 0);
    tp_free(&x);
}

/* A retry (on_attempt): the failed attempt's 429 is judged when it ends,
 * and the next attempt needs a start time of its own. */
static void test_each_attempt_paced(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"limit_by\": \"both\", \"initial_rate\": 10, "
                "\"min_rate\": 1, \"decrease_factor\": 0.5, "
                "\"initial_concurrency\": 1, \"max_concurrency\": 1}");
    struct treq *q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    sluice_test_req_set_response(q->r, 429, SLUICE_OUTCOME_HTTP_ERROR);
    assert_int_equal(x.p->on_upstream_response(x.self, q->r, q->st),
                     SLUICE_CONTINUE);
    struct aimd_key *k = key_of(&x, "default");
    assert_true(k->rate == 5.0);       /* cut as the attempt ended */
    assert_int_equal(k->in_flight, 0); /* and its slot given back */
    /* The core runs on_attempt under on_request's rules. */
    sluice_test_req_set_phase(q->r, SLUICE_TEST_PHASE_REQUEST);
    assert_int_equal(x.p->on_attempt(x.self, q->r, q->st), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(q->r), 100);
    assert_int_equal(k->in_flight, 1); /* the retry holds the slot */
    sluice_test_clock_advance_ms(x.t, 100);
    assert_int_equal(x.p->on_attempt(x.self, q->r, q->st), SLUICE_CONTINUE);
    finish(&x, q, 200);
    assert_int_equal(k->in_flight, 0);
    assert_int_equal(k->paced, 0);
    assert_int_equal(sluice_test_metric(x.t, "sluice_aimd_allowed_total"), 2);
    tp_free(&x);
}

/* Any failed attempt (not only an overload) gives its concurrency slot
 * back as it ends: a retry waiting out its backoff holds none, and a 500
 * does not lower the limit. */
static void test_failed_attempt_frees_slot(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"initial_concurrency\": 1, \"max_concurrency\": 1}");
    struct treq *q = treq_new(&x, NULL), *other = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    struct aimd_key *k = key_of(&x, "default");
    double limit = k->limit;
    sluice_test_req_set_response(q->r, 500, SLUICE_OUTCOME_HTTP_ERROR);
    assert_int_equal(x.p->on_upstream_response(x.self, q->r, q->st),
                     SLUICE_CONTINUE);
    assert_int_equal(k->in_flight, 0);
    assert_true(k->limit == limit);
    /* The slot is free for another request during the backoff. */
    assert_int_equal(treq_run(&x, other), SLUICE_CONTINUE);
    finish(&x, other, 200);
    /* A success keeps its slot until the answer is over. */
    sluice_test_req_set_phase(q->r, SLUICE_TEST_PHASE_REQUEST);
    assert_int_equal(x.p->on_attempt(x.self, q->r, q->st), SLUICE_CONTINUE);
    sluice_test_req_set_response(q->r, 200, SLUICE_OUTCOME_OK);
    x.p->on_upstream_response(x.self, q->r, q->st);
    assert_int_equal(k->in_flight, 1);
    finish(&x, q, 200);
    assert_int_equal(k->in_flight, 0);
    tp_free(&x);
}

static void test_scope_and_status(void **state)
{
    struct tp x;
    char buf[1024];
    (void)state;
    tp_init(&x, "{\"scope\": \"{upstream}:{target_model}\", "
                "\"initial_concurrency\": 1, \"max_concurrency\": 1}");
    struct treq *a = treq_new(&x, NULL), *b = treq_new(&x, NULL);
    sluice_test_req_set_upstream(a->r, "openai");
    sluice_test_req_set_upstream(b->r, "azure");
    assert_int_equal(treq_run(&x, a), SLUICE_CONTINUE);
    assert_int_equal(treq_run(&x, b), SLUICE_CONTINUE); /* another key */
    size_t n = x.p->status_json(x.self, buf, sizeof buf);
    assert_true(n > 0 && n < sizeof buf);
    assert_non_null(strstr(buf, "\"key\":\"openai:m\""));
    assert_non_null(strstr(buf, "\"in_flight\":1"));
    assert_non_null(strstr(buf, "\"limit\":1"));
    assert_int_equal(x.p->status_json(x.self, buf, 8), n);
    finish(&x, a, 200);
    finish(&x, b, 200);
    tp_free(&x);
}

struct worker_arg {
    struct tp *x;
    _Atomic int *in_flight, *peak;
    int done;
};

static void *worker(void *arg)
{
    struct worker_arg *w = arg;
    for (int i = 0; i < 300; i++) {
        struct treq *q = treq_new(w->x, NULL);
        enum sluice_action a = treq_run(w->x, q);
        while (a == SLUICE_SUSPEND) {
            while (sluice_test_wakes(q->r) == 0)
                aimd_tick(w->x->self, 0); /* another thread frees a slot */
            a = treq_resume(w->x, q);
        }
        if (a == SLUICE_CONTINUE) {
            int now = atomic_fetch_add(w->in_flight, 1) + 1;
            int peak = atomic_load(w->peak);
            while (now > peak &&
                   !atomic_compare_exchange_weak(w->peak, &peak, now))
                ;
            atomic_fetch_sub(w->in_flight, 1);
            w->done++;
            finish(w->x, q, 200);
        } else {
            treq_end(w->x, q);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct tp x;
    pthread_t th[4];
    struct worker_arg w[4];
    _Atomic int in_flight = 0, peak = 0;
    (void)state;
    /* A fixed limit of 3 holds across threads and everyone gets through
     * (slots handed from thread to thread). */
    tp_init(&x, "{\"initial_concurrency\": 3, \"min_concurrency\": 3, "
                "\"max_concurrency\": 3, \"max_wait_ms\": 600000}");
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker_arg){&x, &in_flight, &peak, 0};
        pthread_create(&th[i], NULL, worker, &w[i]);
    }
    int done = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        done += w[i].done;
    }
    assert_int_equal(done, 1200);
    assert_true(peak <= 3);
    assert_int_equal(key_of(&x, "default")->in_flight, 0);
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
    expect_error("{\"min_concurrency\": 10, \"max_concurrency\": 5}",
                 "min_concurrency: must be <= max_concurrency");
    expect_error("{\"initial_concurrency\": 2000}",
                 "initial_concurrency: must be within");
    expect_error("{\"decrease_factor\": 1.5}",
                 "config.decrease_factor: must be <= 0.99");
    expect_error("{\"reject_status\": 500}",
                 "reject_status: must be 429 or 503");
    expect_error("{\"limit_by\": \"tokens\"}",
                 "config.limit_by: must be one of");
    expect_error("{\"initial_rate\": 0}", "config.initial_rate: must be > 0");
    expect_error("{\"scope\": \"{up}\"}", "scope: unknown placeholder {up}");
}

int main(void)
{
    if (getenv("RL_TEST_FILTER"))
        cmocka_set_test_filter(getenv("RL_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_increase_decrease_bounds),
        cmocka_unit_test(test_rate_pacing),
        cmocka_unit_test(test_provider_headers),
        cmocka_unit_test(test_queue_bound_and_wake),
        cmocka_unit_test(test_max_wait),
        cmocka_unit_test(test_pause_holds_promised_starts),
        cmocka_unit_test(test_each_attempt_paced),
        cmocka_unit_test(test_failed_attempt_frees_slot),
        cmocka_unit_test(test_scope_and_status),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests_name("aimd", tests, NULL, NULL);
}
