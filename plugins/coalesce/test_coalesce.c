/* Unit tests for the coalesce plugin on the SDK's fake host. The test plays
 * the core: the leader's upstream answer is set on its request before
 * on_response; followers are re-entered once woken or past their deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coalesce_key.h"
#include "sluice/testing.h"

const struct sluice_plugin *sluice_plugin_v1(void);

#define BODY_T0                                                                \
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"           \
    "\"hi\"}],\"temperature\":0}"
#define MSG "[{\"role\":\"user\",\"content\":\"hi\"}]"
#define ANSWER                                                                 \
    "{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":\"hey\"}}]}"

struct fx {
    struct sluice_test_host *t;
    const struct sluice_host *h;
    const struct sluice_plugin *p;
    void *self;
};

struct rq {
    struct sluice_req *r;
    void *state;
};

static void fx_open(struct fx *f, const char *json)
{
    f->t = sluice_test_host_new();
    f->h = sluice_test_host(f->t);
    f->p = sluice_plugin_v1();
    f->self = sluice_test_open(f->t, f->p, json);
    if (!f->self)
        fail_msg("%s", sluice_test_open_error(f->t));
}

/* The host destroys the instance. */
static void fx_close(struct fx *f)
{
    sluice_test_host_free(f->t);
}

static double metric(struct fx *f, const char *name)
{
    return sluice_test_metric(f->t, name);
}

static struct rq rq_body(struct fx *f, const char *body, const char *tenant)
{
    struct rq q;
    q.r = sluice_test_req_new(f->t, body);
    sluice_test_req_set_identity(q.r, tenant, "u", "", "");
    q.state = calloc(1, f->p->req_state_size);
    return q;
}

static struct rq rq_t0(struct fx *f)
{
    return rq_body(f, BODY_T0, "acme");
}

static enum sluice_action go(struct fx *f, struct rq *q)
{
    return f->p->on_request(f->self, q->r, q->state);
}

static enum sluice_action again(struct fx *f, struct rq *q)
{
    sluice_test_req_mark_resumed(q->r);
    return go(f, q);
}

/* The leader's upstream call ends with this answer. */
static void answer(struct fx *f, struct rq *q, int status,
                   enum sluice_outcome outcome, const char *body)
{
    sluice_test_req_set_response(q->r, status, outcome);
    if (body)
        sluice_test_req_set_resp_body(q->r, body);
    f->p->on_response(f->self, q->r, q->state);
}

static void end(struct fx *f, struct rq *q)
{
    f->p->on_log(f->self, q->r, q->state);
    sluice_test_req_free(q->r);
    free(q->state);
    q->r = NULL;
}

static void expect_served(struct rq *q)
{
    assert_int_equal(sluice_test_reject_status(q->r), 200);
    assert_string_equal(sluice_test_response_body(q->r), ANSWER);
    assert_string_equal(
        sluice_test_resp_added_header(q->r, "x-sluice-coalesced"), "1");
}

/* Two requests: do they share one call? */
static bool coalesced(struct fx *f, struct rq *a, struct rq *b)
{
    assert_int_equal(go(f, a), SLUICE_CONTINUE);
    enum sluice_action second = go(f, b);
    if (second == SLUICE_SUSPEND) {
        answer(f, a, 200, SLUICE_OUTCOME_OK, ANSWER);
        assert_int_equal(again(f, b), SLUICE_RESPOND);
        expect_served(b);
    } else {
        assert_int_equal(second, SLUICE_CONTINUE);
        answer(f, a, 200, SLUICE_OUTCOME_OK, ANSWER);
        answer(f, b, 200, SLUICE_OUTCOME_OK, ANSWER);
    }
    end(f, a);
    end(f, b);
    return second == SLUICE_SUSPEND;
}

/* ---- leader and followers ---- */

static void test_leader_and_follower(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_wait_ms\":20000}");
    struct rq lead = rq_t0(&f), fol = rq_t0(&f);
    assert_int_equal(go(&f, &lead), SLUICE_CONTINUE);
    assert_int_equal(go(&f, &fol), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(fol.r), 20000);
    assert_true(metric(&f, "sluice_coalesce_flights") == 1);
    char buf[256];
    f.p->status_json(f.self, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"waiting_followers\":1"));
    answer(&f, &lead, 200, SLUICE_OUTCOME_OK, ANSWER);
    assert_int_equal(sluice_test_wakes(fol.r), 1);
    end(&f, &lead); /* the flight goes; the follower keeps its copy */
    assert_true(metric(&f, "sluice_coalesce_flights") == 0);
    assert_int_equal(again(&f, &fol), SLUICE_RESPOND);
    expect_served(&fol);
    assert_memory_equal(f.h->var_get(fol.r, "sluice.coalesced").ptr, "1", 1);
    end(&f, &fol);
    assert_true(metric(&f, "sluice_coalesce_leaders_total") == 1);
    assert_true(metric(&f, "sluice_coalesce_followers_total") == 1);
    assert_true(metric(&f, "sluice_coalesce_fallthrough_total") == 0);
    fx_close(&f);
}

static void test_hundred_identical(void **unused)
{
    enum { N = 100 };
    struct fx f;
    struct rq q[N];
    (void)unused;
    fx_open(&f, "{}");
    for (int i = 0; i < N; i++) {
        q[i] = rq_t0(&f);
        assert_int_equal(go(&f, &q[i]), i ? SLUICE_SUSPEND : SLUICE_CONTINUE);
    }
    answer(&f, &q[0], 200, SLUICE_OUTCOME_OK, ANSWER);
    for (int i = 1; i < N; i++) {
        assert_int_equal(sluice_test_wakes(q[i].r), 1);
        assert_int_equal(again(&f, &q[i]), SLUICE_RESPOND);
        expect_served(&q[i]);
    }
    for (int i = 0; i < N; i++)
        end(&f, &q[i]);
    assert_true(metric(&f, "sluice_coalesce_leaders_total") == 1);
    assert_true(metric(&f, "sluice_coalesce_followers_total") == 99);
    fx_close(&f);
}

static void test_answer_served_to_late_arrivals(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    struct rq lead = rq_t0(&f);
    assert_int_equal(go(&f, &lead), SLUICE_CONTINUE);
    answer(&f, &lead, 200, SLUICE_OUTCOME_OK, ANSWER);
    struct rq late = rq_t0(&f); /* before the leader's on_log */
    assert_int_equal(go(&f, &late), SLUICE_RESPOND);
    expect_served(&late);
    end(&f, &lead);
    struct rq after = rq_t0(&f); /* the flight is gone: a new leader */
    assert_int_equal(go(&f, &after), SLUICE_CONTINUE);
    end(&f, &after);
    end(&f, &late);
    assert_true(metric(&f, "sluice_coalesce_leaders_total") == 2);
    fx_close(&f);
}

/* ---- what is coalesced ---- */

static void test_tenants_apart(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    struct rq a = rq_body(&f, BODY_T0, "a"), b = rq_body(&f, BODY_T0, "b");
    assert_false(coalesced(&f, &a, &b));
    a = rq_body(&f, BODY_T0, "a");
    b = rq_body(&f, BODY_T0, "a");
    sluice_test_req_set_identity(b.r, "a", "other-user", "", "");
    assert_true(coalesced(&f, &a, &b)); /* same tenant, scope "tenant" */
    fx_close(&f);

    fx_open(&f, "{\"scope\":\"user\"}");
    a = rq_body(&f, BODY_T0, "a");
    b = rq_body(&f, BODY_T0, "a");
    sluice_test_req_set_identity(b.r, "a", "other-user", "", "");
    assert_false(coalesced(&f, &a, &b));
    fx_close(&f);

    fx_open(&f, "{\"scope\":\"global\"}");
    a = rq_body(&f, BODY_T0, "a");
    b = rq_body(&f, BODY_T0, "b");
    assert_true(coalesced(&f, &a, &b));
    fx_close(&f);
}

static void test_temperature_rules(void **unused)
{
    static const char *warm =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"hi\"}],\"temperature\":0.7}";
    static const char *unset =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"hi\"}]}";
    static const char *zero_real =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"hi\"}],\"temperature\":0.0}";
    struct fx f;
    struct rq a, b;
    (void)unused;

    fx_open(&f, "{}");
    a = rq_body(&f, warm, "t");
    b = rq_body(&f, warm, "t");
    assert_int_equal(go(&f, &a), SLUICE_CONTINUE);
    assert_int_equal(go(&f, &b), SLUICE_CONTINUE);
    end(&f, &a);
    end(&f, &b);
    a = rq_body(&f, unset, "t");
    b = rq_body(&f, unset, "t");
    assert_int_equal(go(&f, &a), SLUICE_CONTINUE);
    assert_int_equal(go(&f, &b), SLUICE_CONTINUE);
    end(&f, &a);
    end(&f, &b);
    assert_true(metric(&f, "sluice_coalesce_leaders_total") == 0);
    a = rq_body(&f, BODY_T0, "t");
    b = rq_body(&f, zero_real, "t"); /* 0.0 is 0 */
    assert_true(coalesced(&f, &a, &b));
    /* Embeddings are deterministic: no temperature needed. */
    a = rq_body(&f, "{\"model\":\"e\",\"input\":\"hello\"}", "t");
    b = rq_body(&f, "{\"input\":\"hello\",\"model\":\"e\"}", "t");
    sluice_test_req_set_endpoint(a.r, "/v1/embeddings");
    sluice_test_req_set_endpoint(b.r, "/v1/embeddings");
    /* The fake host decodes every body as chat and leaves req_model
     * dangling when that fails; a routed model sidesteps it. */
    f.h->upstream_set_model(a.r, (struct sluice_str){"e", 1});
    f.h->upstream_set_model(b.r, (struct sluice_str){"e", 1});
    assert_true(coalesced(&f, &a, &b));
    fx_close(&f);

    fx_open(&f, "{\"enabled_when\":\"always\"}");
    a = rq_body(&f, warm, "t");
    b = rq_body(&f, warm, "t");
    assert_true(coalesced(&f, &a, &b));
    fx_close(&f);
}

static void test_streams_never(void **unused)
{
    static const char *stream =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"hi\"}],\"temperature\":0,\"stream\":true}";
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"enabled_when\":\"always\"}");
    struct rq a = rq_body(&f, stream, "t"), b = rq_body(&f, stream, "t");
    assert_int_equal(go(&f, &a), SLUICE_CONTINUE);
    assert_int_equal(go(&f, &b), SLUICE_CONTINUE);
    end(&f, &a);
    end(&f, &b);
    assert_true(metric(&f, "sluice_coalesce_leaders_total") == 0);
    fx_close(&f);
}

static void test_normalised_body(void **unused)
{
    struct fx f;
    struct rq a, b;
    (void)unused;
    fx_open(&f, "{}");
    /* Key order, "user", explicit stream:false and the client's model
     * name (same routed target) do not matter. */
    a = rq_body(&f,
                "{\"model\":\"alias\",\"temperature\":0,\"user\":\"x\","
                "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                "t");
    b = rq_body(&f,
                "{\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}],"
                "\"stream\":false,\"temperature\":0,\"model\":\"m\","
                "\"user\":\"y\"}",
                "t");
    f.h->upstream_set_model(a.r, (struct sluice_str){"m", 1});
    assert_true(coalesced(&f, &a, &b));
    /* Anything else that shapes the output does. */
    a = rq_t0(&f);
    b = rq_body(&f,
                "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"hi\"}],\"temperature\":0,\"n\":2}",
                "acme");
    assert_false(coalesced(&f, &a, &b));
    a = rq_t0(&f);
    b = rq_body(&f,
                "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"hi!\"}],\"temperature\":0}",
                "acme");
    assert_false(coalesced(&f, &a, &b));
    a = rq_t0(&f); /* another target model */
    b = rq_t0(&f);
    f.h->upstream_set_model(b.r, (struct sluice_str){"m2", 2});
    assert_false(coalesced(&f, &a, &b));
    fx_close(&f);

    fx_open(&f, "{\"ignore_fields\":[\"metadata\"]}");
    a = rq_body(&f,
                "{\"model\":\"m\",\"temperature\":0,\"metadata\":{\"a\":1},"
                "\"messages\":" MSG "}",
                "t");
    b = rq_body(&f,
                "{\"model\":\"m\",\"temperature\":0,\"metadata\":{\"a\":2},"
                "\"messages\":" MSG "}",
                "t");
    assert_true(coalesced(&f, &a, &b));
    a = rq_body(&f,
                "{\"model\":\"m\",\"temperature\":0,\"user\":\"1\","
                "\"messages\":" MSG "}",
                "t"); /* "user" counts once the list is replaced */
    b = rq_body(&f,
                "{\"model\":\"m\",\"temperature\":0,\"user\":\"2\","
                "\"messages\":" MSG "}",
                "t");
    assert_false(coalesced(&f, &a, &b));
    fx_close(&f);
}

static void test_key_function(void **unused)
{
    struct coalesce_key_rules rules = {.seed = 7};
    unsigned char k1[16], k2[16];
    struct coalesce_part s = {"t", 1}, m = {"m", 1}, e = {"/e", 2};
    (void)unused;

    json_t *a = json_loads("{\"x\":{\"b\":1,\"a\":[1,2]},\"y\":1.0}", 0, NULL);
    json_t *b = json_loads("{\"y\":1,\"x\":{\"a\":[1,2],\"b\":1}}", 0, NULL);
    json_t *c = json_loads("{\"y\":1,\"x\":{\"a\":[2,1],\"b\":1}}", 0, NULL);
    assert_int_equal(coalesce_key_make(&rules, s, m, e, a, k1), 0);
    assert_int_equal(coalesce_key_make(&rules, s, m, e, b, k2), 0);
    assert_memory_equal(k1, k2, 16);
    assert_int_equal(coalesce_key_make(&rules, s, m, e, c, k2), 0);
    assert_memory_not_equal(k1, k2, 16);
    /* Length prefixes keep the parts apart. */
    struct coalesce_part s2 = {"tm", 2}, m2 = {"", 0};
    assert_int_equal(coalesce_key_make(&rules, s2, m2, e, a, k2), 0);
    assert_memory_not_equal(k1, k2, 16);
    rules.seed = 8;
    assert_int_equal(coalesce_key_make(&rules, s, m, e, a, k2), 0);
    assert_memory_not_equal(k1, k2, 16);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

/* ---- failure, deadlines, caps, cancellation ---- */

static void test_leader_failure_releases_followers(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    struct rq lead = rq_t0(&f), f1 = rq_t0(&f), f2 = rq_t0(&f);
    assert_int_equal(go(&f, &lead), SLUICE_CONTINUE);
    assert_int_equal(go(&f, &f1), SLUICE_SUSPEND);
    assert_int_equal(go(&f, &f2), SLUICE_SUSPEND);
    answer(&f, &lead, 503, SLUICE_OUTCOME_HTTP_ERROR, "{\"error\":{}}");
    assert_int_equal(sluice_test_wakes(f1.r), 1);
    assert_int_equal(again(&f, &f1), SLUICE_CONTINUE); /* own call */
    /* Arriving after the failure, before the leader's on_log. */
    struct rq late = rq_t0(&f);
    assert_int_equal(go(&f, &late), SLUICE_CONTINUE);
    end(&f, &lead);
    assert_int_equal(again(&f, &f2), SLUICE_CONTINUE);
    assert_true(metric(&f, "sluice_coalesce_fallthrough_total") == 3);
    end(&f, &f1);
    end(&f, &f2);
    end(&f, &late);
    fx_close(&f);
}

static void test_leader_without_answer_releases(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    struct rq lead = rq_t0(&f), fol = rq_t0(&f);
    assert_int_equal(go(&f, &lead), SLUICE_CONTINUE);
    assert_int_equal(go(&f, &fol), SLUICE_SUSPEND);
    /* A later plugin refused the leader: no upstream call, no body. */
    end(&f, &lead);
    assert_int_equal(sluice_test_wakes(fol.r), 1);
    assert_int_equal(again(&f, &fol), SLUICE_CONTINUE);
    end(&f, &fol);
    fx_close(&f);

    fx_open(&f, "{}");
    lead = rq_t0(&f);
    fol = rq_t0(&f);
    assert_int_equal(go(&f, &lead), SLUICE_CONTINUE);
    assert_int_equal(go(&f, &fol), SLUICE_SUSPEND);
    answer(&f, &lead, 200, SLUICE_OUTCOME_OK, ""); /* no body (a stream) */
    assert_int_equal(again(&f, &fol), SLUICE_CONTINUE);
    end(&f, &fol);
    end(&f, &lead);
    fx_close(&f);
}

static void test_follower_deadline(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_wait_ms\":1000}");
    struct rq lead = rq_t0(&f), fol = rq_t0(&f);
    assert_int_equal(go(&f, &lead), SLUICE_CONTINUE);
    assert_int_equal(go(&f, &fol), SLUICE_SUSPEND);
    sluice_test_clock_advance_ms(f.t, 300);
    assert_int_equal(again(&f, &fol), SLUICE_SUSPEND); /* early: wait on */
    assert_int_equal(sluice_test_resume_after_ms(fol.r), 700);
    sluice_test_clock_advance_ms(f.t, 700);
    assert_int_equal(again(&f, &fol), SLUICE_CONTINUE);
    answer(&f, &lead, 200, SLUICE_OUTCOME_OK, ANSWER);
    assert_int_equal(sluice_test_wakes(fol.r), 0); /* no longer waiting */
    end(&f, &fol);
    end(&f, &lead);
    assert_true(metric(&f, "sluice_coalesce_fallthrough_total") == 1);
    fx_close(&f);
}

static void test_waiter_cap(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_waiters\":2}");
    struct rq lead = rq_t0(&f), f1 = rq_t0(&f), f2 = rq_t0(&f), f3 = rq_t0(&f);
    assert_int_equal(go(&f, &lead), SLUICE_CONTINUE);
    assert_int_equal(go(&f, &f1), SLUICE_SUSPEND);
    assert_int_equal(go(&f, &f2), SLUICE_SUSPEND);
    assert_int_equal(go(&f, &f3), SLUICE_CONTINUE);
    assert_true(metric(&f, "sluice_coalesce_fallthrough_total") == 1);
    answer(&f, &lead, 200, SLUICE_OUTCOME_OK, ANSWER);
    assert_int_equal(again(&f, &f1), SLUICE_RESPOND);
    assert_int_equal(again(&f, &f2), SLUICE_RESPOND);
    end(&f, &lead);
    end(&f, &f1);
    end(&f, &f2);
    end(&f, &f3);
    fx_close(&f);
}

static void test_flight_cap(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_flights\":1}");
    struct rq a = rq_t0(&f), b = rq_body(&f, BODY_T0, "other");
    assert_int_equal(go(&f, &a), SLUICE_CONTINUE);
    assert_int_equal(go(&f, &b), SLUICE_CONTINUE); /* not tracked */
    assert_true(metric(&f, "sluice_coalesce_leaders_total") == 1);
    end(&f, &a);
    end(&f, &b);
    fx_close(&f);
}

static void test_cancelled_followers(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    struct rq lead = rq_t0(&f), gone = rq_t0(&f), woken = rq_t0(&f),
              stays = rq_t0(&f);
    assert_int_equal(go(&f, &lead), SLUICE_CONTINUE);
    assert_int_equal(go(&f, &gone), SLUICE_SUSPEND);
    assert_int_equal(go(&f, &woken), SLUICE_SUSPEND);
    assert_int_equal(go(&f, &stays), SLUICE_SUSPEND);
    end(&f, &gone); /* left while waiting */
    answer(&f, &lead, 200, SLUICE_OUTCOME_OK, ANSWER);
    end(&f, &woken); /* answered, but gone before it resumed */
    end(&f, &lead);
    assert_int_equal(again(&f, &stays), SLUICE_RESPOND);
    expect_served(&stays);
    end(&f, &stays);
    fx_close(&f); /* ASan: no answer or cell leaked */
}

static void expect_refused(const char *json, const char *want)
{
    struct sluice_test_host *t = sluice_test_host_new();

    assert_null(sluice_test_open(t, sluice_plugin_v1(), json));
    if (strcmp(sluice_test_open_error(t), want) != 0)
        fail_msg("%s: got \"%s\", want \"%s\"", json, sluice_test_open_error(t),
                 want);
    sluice_test_host_free(t);
}

static void test_config_errors(void **unused)
{
    char many[512];
    int n = snprintf(many, sizeof many, "{\"ignore_fields\":[");
    (void)unused;

    for (int i = 0; i <= COALESCE_MAX_IGNORED; i++)
        n += snprintf(many + n, sizeof many - (size_t)n, "%s\"f%d\"",
                      i ? "," : "", i);
    snprintf(many + n, sizeof many - (size_t)n, "]}");
    expect_refused("{\"ignore_fields\":\"user\"}",
                   "config.ignore_fields: must be an array");
    expect_refused("{\"ignore_fields\":[\"user\",1]}",
                   "config.ignore_fields[1]: must be a string");
    expect_refused(many, "config.ignore_fields: must have at most 32 elements");
    expect_refused("{\"enabled_when\":\"sometimes\"}",
                   "config.enabled_when: must be one of \"temperature_zero\", "
                   "\"always\"");
}

/* ---- threads (run under TSan) ---- */

struct stress_worker {
    struct fx *f;
    unsigned seed;
    int served, alone;
};

static unsigned next_rand(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void own_call(struct fx *f, struct rq *q, unsigned x)
{
    if (x % 5 == 0)
        answer(f, q, 503, SLUICE_OUTCOME_HTTP_ERROR, "{}");
    else
        answer(f, q, 200, SLUICE_OUTCOME_OK, ANSWER);
}

static void *stress_run(void *arg)
{
    struct stress_worker *w = arg;
    struct fx *f = w->f;

    for (int i = 0; i < 3000; i++) {
        unsigned x = next_rand(&w->seed);
        struct rq q = rq_body(f, BODY_T0, x & 1 ? "a" : "b");
        enum sluice_action a = go(f, &q);
        if (a == SLUICE_SUSPEND) {
            while (sluice_test_wakes(q.r) == 0)
                sched_yield();
            a = again(f, &q);
        }
        if (a == SLUICE_RESPOND) {
            assert_string_equal(sluice_test_response_body(q.r), ANSWER);
            w->served++;
        } else {
            assert_int_equal(a, SLUICE_CONTINUE);
            if ((x >> 4) % 3 == 0)
                sched_yield(); /* let followers pile up */
            own_call(f, &q, x >> 8);
            w->alone++;
        }
        end(f, &q);
    }
    return NULL;
}

static void test_threads(void **unused)
{
    enum { THREADS = 6 };
    struct fx f;
    struct stress_worker w[THREADS];
    pthread_t th[THREADS];
    int served = 0;
    (void)unused;

    fx_open(&f, "{}");
    for (int i = 0; i < THREADS; i++) {
        w[i] =
            (struct stress_worker){&f, 2654435761u * (unsigned)(i + 1), 0, 0};
        pthread_create(&th[i], NULL, stress_run, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        served += w[i].served;
    }
    print_message("served from a shared call: %d of %d\n", served,
                  THREADS * 3000);
    assert_true(metric(&f, "sluice_coalesce_flights") == 0);
    assert_true(metric(&f, "sluice_coalesce_followers_total") == served);
    char buf[256];
    f.p->status_json(f.self, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"flights\":0,\"waiting_followers\":0"));
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leader_and_follower),
        cmocka_unit_test(test_hundred_identical),
        cmocka_unit_test(test_answer_served_to_late_arrivals),
        cmocka_unit_test(test_tenants_apart),
        cmocka_unit_test(test_temperature_rules),
        cmocka_unit_test(test_streams_never),
        cmocka_unit_test(test_normalised_body),
        cmocka_unit_test(test_key_function),
        cmocka_unit_test(test_leader_failure_releases_followers),
        cmocka_unit_test(test_leader_without_answer_releases),
        cmocka_unit_test(test_follower_deadline),
        cmocka_unit_test(test_waiter_cap),
        cmocka_unit_test(test_flight_cap),
        cmocka_unit_test(test_cancelled_followers),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
