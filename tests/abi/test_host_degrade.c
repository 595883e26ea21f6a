/* A plugin using SDK 1.1 members (timer_probe) on the fake host: with the
 * 1.1 table it reads health through health_get; when the fake host
 * pretends to be a 1.0 core it must see that (SLUICE_HOST_HAS), create
 * without timers and keep serving, degraded, instead of calling NULL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <sluice/testing.h>

const struct sluice_plugin *sluice_plugin_v1(void);

struct probe_run {
    struct sluice_test_host *t;
    const struct sluice_plugin *p;
    void *config, *self;
};

static void probe_open(struct probe_run *run, bool pretend_1_0)
{
    char err[256];
    struct sluice_error perr;
    memset(run, 0, sizeof *run);
    run->t = sluice_test_host_new();
    assert_non_null(run->t);
    if (pretend_1_0)
        sluice_test_host_pretend_1_0(run->t);
    run->p = sluice_plugin_v1();
    run->config = calloc(1, run->p->config_size);
    assert_int_equal(
        sluice_test_config(run->p, "{}", run->config, err, sizeof err), 0);
    memset(&perr, 0, sizeof perr);
    assert_int_equal(run->p->create(sluice_test_host(run->t), run->config,
                                    (struct sluice_str){"{}", 2}, &run->self,
                                    &perr),
                     SLUICE_OK);
}

static void probe_close(struct probe_run *run)
{
    run->p->destroy(run->self);
    free(run->config);
    sluice_test_host_free(run->t);
}

static void test_reads_health_on_a_1_1_host(void **state)
{
    struct probe_run run;
    (void)state;
    probe_open(&run, false);
    const struct sluice_host *h = sluice_test_host(run.t);
    assert_int_equal(h->abi_minor, SLUICE_ABI_MINOR);
    assert_true(SLUICE_HOST_HAS(h, health_get));
    h->health_set(h, "timer_probe.models_status", 200);
    struct sluice_req *r = sluice_test_req_new(run.t, "{\"model\":\"m\"}");
    assert_int_equal(run.p->on_request(run.self, r, NULL), SLUICE_CONTINUE);
    assert_string_equal(sluice_test_resp_added_header(r, "x-models-status"),
                        "200");
    assert_null(sluice_test_resp_added_header(r, "x-probe-degraded"));
    sluice_test_req_free(r);
    probe_close(&run);
}

static void test_degrades_on_a_1_0_host(void **state)
{
    struct probe_run run;
    (void)state;
    probe_open(&run, true); /* create() must not touch timer_start */
    const struct sluice_host *h = sluice_test_host(run.t);
    assert_int_equal(h->abi_minor, 0);
    assert_int_equal(h->struct_size,
                     offsetof(struct sluice_host, call_upstream));
    assert_false(SLUICE_HOST_HAS(h, health_get));
    assert_false(SLUICE_HOST_HAS(h, timer_start));
    h->health_set(h, "timer_probe.models_status", 200); /* 1.0 member */
    struct sluice_req *r = sluice_test_req_new(run.t, "{\"model\":\"m\"}");
    assert_int_equal(run.p->on_request(run.self, r, NULL), SLUICE_CONTINUE);
    assert_string_equal(sluice_test_resp_added_header(r, "x-probe-degraded"),
                        "1");
    assert_null(sluice_test_resp_added_header(r, "x-models-status"));
    sluice_test_req_free(r);
    probe_close(&run);
}

/* The timers and the call outside requests, driven by the fake host: due
 * timers run at the fake clock, the self-cancelling one stops at its
 * limit, the one cancelled in create() never runs, and the /v1/models
 * answer reaches health_get. */
static void test_timers_on_the_fake_host(void **state)
{
    struct probe_run run;
    (void)state;
    probe_open(&run, false);
    struct sluice_test_host *t = run.t;
    assert_int_equal(sluice_test_timers_run(t, 0), 2); /* tick, models */
    assert_int_equal(sluice_test_calls_pending(t), 1);
    assert_string_equal(sluice_test_call_path(t, 0), "/v1/models");
    assert_null(sluice_test_call_body(t, 0)); /* a GET */
    sluice_test_call_finish(t, 0, 200, SLUICE_OUTCOME_OK,
                            "{\"object\":\"list\",\"data\":[]}");
    for (int i = 0; i < 5; i++) {
        sluice_test_clock_advance_ms(t, 1);
        sluice_test_timers_run(t, 0);
    }
    assert_true(sluice_test_metric(t, "sluice_timer_probe_limited_total") ==
                3.0);
    sluice_test_clock_advance_ms(t, 20);
    assert_int_equal(sluice_test_timers_run(t, 0), 1); /* the tick only */
    assert_true(sluice_test_metric(t, "sluice_timer_probe_ticks_total") == 2.0);
    assert_true(sluice_test_metric(t, "sluice_timer_probe_ghosts_total") ==
                0.0);
    struct sluice_req *r = sluice_test_req_new(t, "{\"model\":\"m\"}");
    assert_int_equal(run.p->on_request(run.self, r, NULL), SLUICE_CONTINUE);
    assert_string_equal(sluice_test_resp_added_header(r, "x-models-status"),
                        "200");
    sluice_test_req_free(r);
    probe_close(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_health_on_a_1_1_host),
        cmocka_unit_test(test_degrades_on_a_1_0_host),
        cmocka_unit_test(test_timers_on_the_fake_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
