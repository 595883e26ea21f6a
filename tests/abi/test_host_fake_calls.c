/* embed_probe on the fake host: the SDK 1.1 call a plugin makes while its
 * request is suspended, driven by hand. The fake host records the call;
 * the test answers it, which must wake the request; the resumed hook then
 * shows the answer. This is how a plugin that calls an upstream (a
 * semantic cache) is unit-tested without a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <sluice/testing.h>

const struct sluice_plugin *sluice_plugin_v1(void);

struct run {
    struct sluice_test_host *t;
    const struct sluice_plugin *p;
    void *config, *self, *state;
    struct sluice_req *r;
};

static void open_run(struct run *run)
{
    char err[256];
    struct sluice_error perr;
    memset(run, 0, sizeof *run);
    run->t = sluice_test_host_new();
    run->p = sluice_plugin_v1();
    run->config = calloc(1, run->p->config_size);
    assert_int_equal(sluice_test_config(run->p, "{\"dimensions\":3}",
                                        run->config, err, sizeof err),
                     0);
    memset(&perr, 0, sizeof perr);
    assert_int_equal(run->p->create(sluice_test_host(run->t), run->config,
                                    (struct sluice_str){"{}", 2}, &run->self,
                                    &perr),
                     SLUICE_OK);
    run->state = calloc(1, run->p->req_state_size);
    run->r = sluice_test_req_new(
        run->t, "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"hi\"}]}");
}

static void close_run(struct run *run)
{
    run->p->on_cleanup(run->self, run->r, run->state);
    sluice_test_req_free(run->r);
    free(run->state);
    run->p->destroy(run->self);
    free(run->config);
    sluice_test_host_free(run->t);
}

static void test_call_answered_wakes_and_resumes(void **unused)
{
    struct run run;
    (void)unused;
    open_run(&run);
    assert_int_equal(run.p->on_request(run.self, run.r, run.state),
                     SLUICE_SUSPEND);
    assert_int_equal(sluice_test_calls_pending(run.t), 1);
    assert_string_equal(sluice_test_call_upstream(run.t, 0), "mock");
    assert_string_equal(sluice_test_call_path(run.t, 0), "/v1/embeddings");
    assert_string_equal(sluice_test_call_body(run.t, 0),
                        "{\"model\":\"text-embedding-3-small\","
                        "\"dimensions\":3,\"input\":[\"gpt-4o\"]}");
    assert_int_equal(sluice_test_wakes(run.r), 0);

    sluice_test_call_finish(run.t, 0, 200, SLUICE_OUTCOME_OK,
                            "{\"object\":\"list\",\"data\":[{\"embedding\":"
                            "[0.5,-0.25,0.125]}]}");
    assert_int_equal(sluice_test_calls_pending(run.t), 0);
    assert_int_equal(sluice_test_wakes(run.r), 1);

    sluice_test_req_mark_resumed(run.r);
    assert_int_equal(run.p->on_request(run.self, run.r, run.state),
                     SLUICE_CONTINUE);
    assert_string_equal(sluice_test_resp_added_header(run.r, "x-embed-status"),
                        "200");
    assert_string_equal(sluice_test_resp_added_header(run.r, "x-embed-dims"),
                        "3");
    close_run(&run);
}

/* A spurious re-entry before the answer suspends again. */
static void test_spurious_resume_waits_again(void **unused)
{
    struct run run;
    (void)unused;
    open_run(&run);
    assert_int_equal(run.p->on_request(run.self, run.r, run.state),
                     SLUICE_SUSPEND);
    sluice_test_req_mark_resumed(run.r);
    assert_int_equal(run.p->on_request(run.self, run.r, run.state),
                     SLUICE_SUSPEND);
    assert_int_equal(sluice_test_calls_pending(run.t), 1);
    sluice_test_call_finish(run.t, 0, 503, SLUICE_OUTCOME_HTTP_ERROR,
                            "{\"error\":{}}");
    assert_int_equal(run.p->on_request(run.self, run.r, run.state),
                     SLUICE_CONTINUE);
    assert_string_equal(sluice_test_resp_added_header(run.r, "x-embed-status"),
                        "503");
    assert_string_equal(sluice_test_resp_added_header(run.r, "x-embed-outcome"),
                        "2");
    close_run(&run);
}

/* The plugin cancels its own call: gone from the fake host, no callback. */
static void test_cancelled_call_is_gone(void **unused)
{
    struct run run;
    (void)unused;
    open_run(&run);
    sluice_test_req_set_header(run.r, "x-probe-cancel", "1");
    assert_int_equal(run.p->on_request(run.self, run.r, run.state),
                     SLUICE_CONTINUE);
    assert_string_equal(sluice_test_resp_added_header(run.r, "x-embed-cancel"),
                        "0,3");
    assert_int_equal(sluice_test_calls_pending(run.t), 0);
    assert_int_equal(sluice_test_wakes(run.r), 0);
    close_run(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_answered_wakes_and_resumes),
        cmocka_unit_test(test_spurious_resume_waits_again),
        cmocka_unit_test(test_cancelled_call_is_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
