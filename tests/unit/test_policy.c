/* Lua policy engine: sandbox escapes, decision parsing, the lazy request
 * view, the bundled policies, and a microbenchmark (printed only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "policy/policy.h"
#include "policy/policy_sandbox.h"
#include "policy_fakes.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Generous hang guard for "fails fast" checks (ASan builds are slow),
 * in CPU time of this thread: a script the sandbox failed to stop burns
 * CPU, while a busy shared machine only stretches the wall clock. */
#define FAST_MS 3000.0

/* ---- helpers ---- */

static double clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double now_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

static double cpu_ms(void)
{
    return clock_ms(CLOCK_THREAD_CPUTIME_ID);
}

static struct policy *load_path(const char *path)
{
    char err[512] = "";
    struct policy *p =
        policy_load(path, &test_limits, &test_env, err, sizeof err);
    if (p == NULL)
        fail_msg("load %s: %s", path, err);
    return p;
}

static struct policy *load_test_script(const char *file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", POLICY_TEST_DIR, file);
    return load_path(path);
}

static struct policy *load_example(const char *file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", POLICY_EXAMPLES_DIR, file);
    return load_path(path);
}

/* One decide() call on a request whose x-case header is `which`. */
static enum policy_status run_case(struct policy *p, const char *which,
                                   struct policy_decision *d, char *err,
                                   size_t errlen)
{
    struct fake_req r = {.model = "gpt-4o", .headers = {{"x-case", which}}};
    struct policy_req_view v = view_of(&r);
    err[0] = '\0';
    return policy_decide(p, &v, d, err, errlen);
}

static void expect_case_ok(struct policy *p, const char *which,
                           const char *model)
{
    struct policy_decision d;
    char err[512];
    enum policy_status st = run_case(p, which, &d, err, sizeof err);
    if (st != POLICY_OK)
        fail_msg("case %s: %s", which, err);
    if (model != NULL)
        assert_string_equal(d.model, model);
}

/* The case fails with an error containing `needle`, within FAST_MS. */
static void expect_case_error(struct policy *p, const char *which,
                              const char *needle)
{
    struct policy_decision d;
    char err[512];
    double start = cpu_ms();
    enum policy_status st = run_case(p, which, &d, err, sizeof err);
    double took = cpu_ms() - start;
    if (st != POLICY_ERROR)
        fail_msg("case %s: expected an error", which);
    if (needle != NULL && strstr(err, needle) == NULL)
        fail_msg("case %s: error \"%s\" lacks \"%s\"", which, err, needle);
    if (took > FAST_MS)
        fail_msg("case %s: took %.0f ms", which, took);
    print_message("  %-22s %6.1f ms  %s\n", which, took, err);
    assert_false(d.reject);
    assert_int_equal(d.degrade_level, -1);
    /* The state must still answer after any failure. */
    expect_case_ok(p, "ok", "ok");
}

/* ---- load ---- */

static void expect_load_error(const char *file, const char *needle)
{
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/%s", POLICY_TEST_DIR, file);
    double start = cpu_ms();
    struct policy *p =
        policy_load(path, &test_limits, &test_env, err, sizeof err);
    assert_null(p);
    assert_true(cpu_ms() - start < FAST_MS);
    if (strstr(err, needle) == NULL)
        fail_msg("%s: error \"%s\" lacks \"%s\"", file, err, needle);
}

static void test_load_errors(void **state)
{
    (void)state;
    expect_load_error("syntax_error.lua", "syntax_error.lua:4:");
    expect_load_error("toplevel_loop.lua",
                      "toplevel_loop.lua:2: instruction budget");
    expect_load_error("toplevel_error.lua", "toplevel_error.lua:3:");
    expect_load_error("no_decide.lua", "decide(req, ctx)");
    expect_load_error("decide_not_function.lua", "decide(req, ctx)");
    expect_load_error("does_not_exist.lua", "cannot open");
}

static void test_bytecode_refused(void **state)
{
    (void)state;
    /* string.dump output of a valid policy, made in a plain Lua state. */
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    assert_int_equal(luaL_dostring(L, "return string.dump(load('function "
                                      "decide() return nil end'))"),
                     LUA_OK);
    size_t len;
    const char *bytecode = lua_tolstring(L, -1, &len);
    char *path = write_temp(bytecode, len);
    lua_close(L);

    char err[512] = "";
    struct policy *p =
        policy_load(path, &test_limits, &test_env, err, sizeof err);
    unlink(path);
    free(path);
    assert_null(p);
    assert_non_null(strstr(err, "binary chunk"));
}

static void test_script_too_large(void **state)
{
    (void)state;
    size_t len = (1u << 20) + 1;
    char *text = malloc(len);
    memset(text, ' ', len);
    char *path = write_temp(text, len);
    free(text);
    char err[512] = "";
    assert_null(policy_load(path, &test_limits, &test_env, err, sizeof err));
    unlink(path);
    free(path);
    assert_non_null(strstr(err, "larger than"));
}

static void test_memory_limit_too_small(void **state)
{
    (void)state;
    struct policy_limits tiny = test_limits;
    tiny.memory_limit_bytes = 4096;
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/bench.lua", POLICY_TEST_DIR);
    assert_null(policy_load(path, &tiny, &test_env, err, sizeof err));
    assert_non_null(strstr(err, "bytes"));
}

/* ---- sandbox ---- */

static void test_forbidden_globals(void **state)
{
    (void)state;
    struct policy *p = load_test_script("globals.lua");
    expect_case_ok(p, "any", "none");
    policy_free(p);
}

static void test_budget_escapes(void **state)
{
    (void)state;
    struct policy *p = load_test_script("escapes.lua");
    expect_case_ok(p, "ok", "ok");
    expect_case_error(p, "busy_loop", "escapes.lua:11: instruction budget");
    expect_case_error(p, "pcall_swallow", "instruction budget");
    expect_case_error(p, "xpcall_swallow", "instruction budget");
    expect_case_ok(p, "xpcall_works", "false|handled boom:x|true|3");
    /* Big copies cost budget too: 16 bytes allocated = 1 instruction. */
    expect_case_error(p, "copy_loop", "instruction budget");
    expect_case_error(p, "rep_pcall_loop", "instruction budget");
    expect_case_error(p, "find_loop", "instruction budget");
    policy_free(p);
}

static void test_memory_escapes(void **state)
{
    (void)state;
    struct policy *p = load_test_script("escapes.lua");
    size_t baseline = policy_memory_used(p);
    expect_case_error(p, "string_bomb", "memory limit");
    expect_case_error(p, "table_growth", NULL);
    expect_case_error(p, "memory_pcall", NULL);
    expect_case_error(p, "string_bomb", "memory limit");
    /* The state returns to about where it started. */
    assert_true(policy_memory_used(p) < baseline + (256u << 10));
    policy_free(p);
}

static void test_string_escapes(void **state)
{
    (void)state;
    struct policy *p = load_test_script("escapes.lua");
    expect_case_error(p, "huge_rep", "string.rep result");
    expect_case_error(p, "huge_rep_method", "string.rep result");
    expect_case_error(p, "catastrophic_pattern", "pattern too costly");
    expect_case_error(p, "catastrophic_method", "pattern too costly");
    expect_case_error(p, "catastrophic_gmatch", "pattern too costly");
    expect_case_error(p, "catastrophic_gsub", "pattern too costly");
    expect_case_ok(p, "plain_find_long", "100001");
    expect_case_ok(p, "simple_pattern_ok", "gpt:xxx");
    expect_case_error(p, "format_width", "escapes.lua:");
    expect_case_ok(p, "format_long", "  abc");
    policy_free(p);
}

static void test_pattern_work_estimate(void **state)
{
    (void)state;
    const char *bad = ".-.-.-.-b";
    /* The tech-notes case: 120 bytes took 1.7 s with plain Lua. */
    assert_true(policy_pattern_work(bad, strlen(bad), 120, true) > 1e9);
    /* No backtracking: the #subject * #pattern rule. */
    assert_true(policy_pattern_work("^gpt%-4", 7, 100, true) <= 100 * 7);
    assert_true(policy_pattern_work("%a+", 3, 10000, false) <= 10001 * 3);
    /* A trailing quantifier never backtracks, one followed by more does. */
    assert_true(policy_pattern_work("a.*", 3, 1000, true) <= 1001 * 3);
    assert_true(policy_pattern_work("a.*b", 4, 1000, true) > 1000 * 1000);
    assert_true(policy_pattern_work("a*$", 3, 1000, true) > 1000 * 1000);
    assert_true(policy_pattern_work("%b()", 4, 1000, true) > 1000 * 1000);
    /* Malformed patterns are left to Lua to report. */
    assert_true(policy_pattern_work("[a", 2, 10, true) < 1e3);
    assert_true(policy_pattern_work("%", 1, 10, true) < 1e3);
}

static void test_stashed_req(void **state)
{
    (void)state;
    struct policy *p = load_test_script("escapes.lua");
    expect_case_ok(p, "stash", NULL);
    expect_case_error(p, "use_stash", "outside the decide() call");
    expect_case_error(p, "use_stashed_header", "outside the decide() call");
    policy_free(p);
}

static void test_runtime_errors(void **state)
{
    (void)state;
    struct policy *p = load_test_script("escapes.lua");
    expect_case_error(p, "deep_recursion", "escapes.lua:");
    expect_case_error(p, "write_sluice", "sluice is read-only");
    expect_case_error(p, "write_req", "req is read-only");
    expect_case_error(p, "unknown_req_field", "no field 'modle'");
    expect_case_error(p, "error_table", "error object is a table value");
    expect_case_error(p, "error_level0",
                      "escapes.lua:162: raised without a position");
    expect_case_error(p, "return_function", "returned a function");
    expect_case_error(p, "return_huge_table", "bad field '[1]'");
    expect_case_ok(p, "return_sluice", "");
    policy_free(p);
}

/* ---- decisions ---- */

#define DECIDE_TEMPLATE "function decide(req, ctx) return %s end\n"

/* Runs "return <expr>" and returns the status; err gets the message. */
static enum policy_status decide_expr(const char *expr,
                                      struct policy_decision *d, char *err,
                                      size_t errlen, char *path, size_t pathlen)
{
    char script[2048];
    snprintf(script, sizeof script, DECIDE_TEMPLATE, expr);
    struct policy *p = load_text(script, err, errlen, path, pathlen);
    if (p == NULL)
        fail_msg("load of \"%s\": %s", expr, err);
    struct fake_req r = {.model = "gpt-4o"};
    struct policy_req_view v = view_of(&r);
    enum policy_status st = policy_decide(p, &v, d, err, errlen);
    policy_free(p);
    return st;
}

static void decide_ok(const char *expr, struct policy_decision *d)
{
    char err[512], path[256];
    if (decide_expr(expr, d, err, sizeof err, path, sizeof path) != POLICY_OK)
        fail_msg("return %s: %s", expr, err);
}

static void test_decision_fields(void **state)
{
    (void)state;
    struct policy_decision d;

    decide_ok("nil", &d);
    assert_false(d.reject);
    assert_int_equal(d.degrade_level, -1);
    assert_string_equal(d.model, "");
    assert_int_equal(d.tag_count, 0);

    decide_ok("{}", &d);
    assert_int_equal(d.degrade_level, -1);

    decide_ok("{ action = 'reject' }", &d);
    assert_true(d.reject);
    assert_int_equal(d.reject_status, 429);
    assert_int_equal(d.reject_retry_after_s, 0);
    assert_string_equal(d.reject_message, "");

    decide_ok("{ action = 'reject', status = 503, retry_after = 1.2, "
              "message = 'busy', tags = { 'r' } }",
              &d);
    assert_true(d.reject);
    assert_int_equal(d.reject_status, 503);
    assert_int_equal(d.reject_retry_after_s, 2); /* rounded up */
    assert_string_equal(d.reject_message, "busy");
    assert_string_equal(d.tags[0], "r");

    decide_ok("{ action = 'route', upstream = 'backup', model = "
              "'gpt-4o-mini', priority = 'low', tags = { 'a', 'b' } }",
              &d);
    assert_false(d.reject);
    assert_string_equal(d.upstream, "backup");
    assert_string_equal(d.model, "gpt-4o-mini");
    assert_string_equal(d.priority, "low");
    assert_int_equal(d.tag_count, 2);
    assert_string_equal(d.tags[1], "b");

    decide_ok("{ action = 'degrade' }", &d);
    assert_int_equal(d.degrade_level, 1);
    decide_ok("{ action = 'degrade', degrade_level = 3 }", &d);
    assert_int_equal(d.degrade_level, 3);
    decide_ok("{ degrade = 0 }", &d);
    assert_int_equal(d.degrade_level, 0);
    decide_ok("{ degrade = 9.0 }", &d);
    assert_int_equal(d.degrade_level, 9);
    decide_ok("{ tags = {} }", &d);
    assert_int_equal(d.tag_count, 0);

    const char *priorities[] = {"critical", "realtime", "standard", "batch",
                                "low"};
    for (size_t i = 0; i < 5; i++) {
        char expr[64];
        snprintf(expr, sizeof expr, "{ priority = '%s' }", priorities[i]);
        decide_ok(expr, &d);
        assert_string_equal(d.priority, priorities[i]);
    }

    /* Longest accepted values. */
    decide_ok("{ upstream = ('u'):rep(63), model = ('m'):rep(127), "
              "tags = { ('t'):rep(63), 'b', 'c', 'd', 'e', 'f', 'g', 'h' } }",
              &d);
    assert_int_equal(strlen(d.upstream), 63);
    assert_int_equal(strlen(d.model), 127);
    assert_int_equal(d.tag_count, 8);
    assert_int_equal(strlen(d.tags[0]), 63);
    decide_ok("{ action = 'reject', message = ('x'):rep(255), "
              "retry_after = 0 }",
              &d);
    assert_int_equal(strlen(d.reject_message), 255);
    decide_ok("{ model = 'mod\\u{E8}le' }", &d);
    assert_string_equal(d.model, "mod\xc3\xa8le");
}

static void test_bad_returns(void **state)
{
    (void)state;
    static const struct {
        const char *expr;
        const char *field;
    } bad[] = {
        {"{ colour = 'red' }", "colour"},
        {"{ 'positional' }", "[1]"},
        {"{ [true] = 1 }", "[boolean]"},
        {"{ action = 'explode' }", "action"},
        {"{ action = 5 }", "action"},
        {"{ upstream = ('u'):rep(64) }", "upstream"},
        {"{ upstream = '' }", "upstream"},
        {"{ upstream = 'a\\r\\nx-injected: 1' }", "upstream"},
        {"{ model = ('m'):rep(128) }", "model"},
        {"{ model = 42 }", "model"},
        {"{ model = '\\255' }", "model"},
        {"{ model = 'a\\0b' }", "model"},
        {"{ priority = 'urgent' }", "priority"},
        {"{ priority = 1 }", "priority"},
        {"{ degrade = 10 }", "degrade"},
        {"{ degrade = -1 }", "degrade"},
        {"{ degrade_level = 1.5 }", "degrade_level"},
        {"{ degrade = '2' }", "degrade"},
        {"{ degrade = 1, degrade_level = 1 }", "degrade"},
        {"{ tags = 'a' }", "tags"},
        {"{ tags = { 'a', 2 } }", "tags[2]"},
        {"{ tags = { 1, 2, 3, 4, 5, 6, 7, 8, 9 } }", "tags"},
        {"{ tags = { x = 'a' } }", "tags"},
        {"{ tags = { ('t'):rep(64) } }", "tags[1]"},
        {"{ tags = { [1] = 'a', [3] = 'c' } }", "tags[2]"},
        {"{ tags = { '' } }", "tags[1]"},
        {"{ status = 503 }", "status"},
        {"{ retry_after = 5 }", "retry_after"},
        {"{ message = 'x' }", "message"},
        {"{ action = 'reject', status = 200 }", "status"},
        {"{ action = 'reject', status = 600 }", "status"},
        {"{ action = 'reject', status = 429.5 }", "status"},
        {"{ action = 'reject', retry_after = -1 }", "retry_after"},
        {"{ action = 'reject', retry_after = 0/0 }", "retry_after"},
        {"{ action = 'reject', retry_after = 1e12 }", "retry_after"},
        {"{ action = 'reject', retry_after = '5' }", "retry_after"},
        {"{ action = 'reject', message = ('m'):rep(256) }", "message"},
        {"{ action = 'reject', message = 'a\\nb' }", "message"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct policy_decision d;
        char err[512], path[256], want[512];
        enum policy_status st =
            decide_expr(bad[i].expr, &d, err, sizeof err, path, sizeof path);
        snprintf(want, sizeof want,
                 "%s:1: decide() returned bad field '%s': ", path,
                 bad[i].field);
        if (st != POLICY_ERROR || strstr(err, want) == NULL)
            fail_msg("return %s: got \"%s\", want \"%s...\"", bad[i].expr,
                     st == POLICY_OK ? "ok" : err, want);
        assert_int_equal(d.degrade_level, -1);
        assert_false(d.reject);
    }

    static const char *const not_tables[] = {"42", "'route'", "true", "print",
                                             "function() end"};
    for (size_t i = 0; i < 5; i++) {
        struct policy_decision d;
        char err[512], path[256];
        assert_int_equal(
            decide_expr(not_tables[i], &d, err, sizeof err, path, sizeof path),
            POLICY_ERROR);
        assert_non_null(strstr(err, "expected a table or nil"));
    }
}

static void test_ctx_vars(void **state)
{
    (void)state;
    struct policy *p = load_test_script("view.lua");
    struct policy_decision d;
    char err[512];
    assert_int_equal(run_case(p, "vars", &d, err, sizeof err), POLICY_OK);
    assert_int_equal(d.var_count, 3);
    int seen = 0;
    for (size_t i = 0; i < d.var_count; i++) {
        if (strcmp(d.vars[i][0], "route.reason") == 0 &&
            strcmp(d.vars[i][1], "cheap") == 0)
            seen |= 1;
        if (strcmp(d.vars[i][0], "count") == 0 &&
            strcmp(d.vars[i][1], "3") == 0)
            seen |= 2;
        if (strcmp(d.vars[i][0], "ratio") == 0 &&
            strcmp(d.vars[i][1], "0.25") == 0)
            seen |= 4;
    }
    assert_int_equal(seen, 7);
    /* Fresh per call: nothing carries over. */
    assert_int_equal(run_case(p, "no_body", &d, err, sizeof err), POLICY_OK);
    assert_int_equal(d.var_count, 0);
    policy_free(p);

    static const struct {
        const char *body;
        const char *needle;
    } bad[] = {
        {"ctx.vars.x = {}", "bad ctx.vars entry 'x'"},
        {"ctx.vars['bad name'] = 1", "bad ctx.vars entry 'bad name'"},
        {"ctx.vars[1] = 'a'", "bad ctx.vars entry '[1]'"},
        {"for i = 1, 9 do ctx.vars['v' .. i] = i end", "more than 8"},
        {"ctx.vars.x = ('v'):rep(64)", "bad ctx.vars entry 'x'"},
        {"ctx.vars.x = 0/0", "bad ctx.vars entry 'x'"},
        {"ctx.vars = 5", "ctx.vars as a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char script[512];
        snprintf(script, sizeof script, "function decide(req, ctx) %s end\n",
                 bad[i].body);
        p = load_text(script, err, sizeof err, NULL, 0);
        assert_non_null(p);
        struct fake_req r = {0};
        struct policy_req_view v = view_of(&r);
        assert_int_equal(policy_decide(p, &v, &d, err, sizeof err),
                         POLICY_ERROR);
        if (strstr(err, bad[i].needle) == NULL)
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].body, err,
                     bad[i].needle);
        assert_int_equal(d.var_count, 0);
        policy_free(p);
    }
    /* ctx.vars = nil is fine: no vars. */
    p = load_text("function decide(req, ctx) ctx.vars = nil end\n", err,
                  sizeof err, NULL, 0);
    struct fake_req r = {0};
    struct policy_req_view v = view_of(&r);
    assert_int_equal(policy_decide(p, &v, &d, err, sizeof err), POLICY_OK);
    policy_free(p);

    /* ctx.vars is there on first use (made lazily) and each ctx is fresh.
     * A failed expectation raises, so the call fails. */
    p = load_text(
        "local seen = 0\n"
        "function decide(req, ctx)\n"
        "  seen = seen + 1\n"
        "  assert(ctx.mark == nil and next(ctx) == nil)\n"
        "  ctx.mark = true\n"
        "  assert(type(ctx.vars) == 'table' and next(ctx.vars) == nil)\n"
        "  assert(ctx.vars == ctx.vars)\n"
        "  ctx.vars.n = seen\n"
        "end\n",
        err, sizeof err, NULL, 0);
    assert_non_null(p);
    for (int call = 1; call <= 2; call++) {
        if (policy_decide(p, &v, &d, err, sizeof err) != POLICY_OK)
            fail_msg("call %d: %s", call, err);
        assert_int_equal(d.var_count, 1);
        assert_string_equal(d.vars[0][0], "n");
        assert_int_equal(atoi(d.vars[0][1]), call);
    }
    policy_free(p);
}

/* ---- request view and sluice.* ---- */

static void test_view_fields(void **state)
{
    (void)state;
    struct policy *p = load_test_script("view.lua");
    struct fake_req r = {
        .model = "gpt-4o",
        .endpoint = "/v1/chat/completions",
        .tenant = "acme",
        .user = "u1",
        .tier = "pro",
        .priority = "standard",
        .stream = true,
        .message_count = 3,
        .message_bytes = 120,
        .input_tokens = 42,
        .max_tokens = 256,
        .headers = {{"x-case", "fields"}},
    };
    struct policy_req_view v = view_of(&r);
    struct policy_decision d;
    char err[512];
    assert_int_equal(policy_decide(p, &v, &d, err, sizeof err), POLICY_OK);
    assert_string_equal(d.model, "gpt-4o|/v1/chat/completions|acme|u1|pro");
    assert_int_equal(d.tag_count, 6);
    assert_string_equal(d.tags[0], "true");
    assert_string_equal(d.tags[1], "3");
    assert_string_equal(d.tags[2], "120");
    assert_string_equal(d.tags[3], "42");
    assert_string_equal(d.tags[4], "256");
    assert_string_equal(d.tags[5], "standard");
    assert_int_equal(r.body_reads, 0);

    struct fake_req h = {
        .headers = {{"x-case", "headers"}, {"X-Upstream", "backup"}},
        .vars = {{"plugin.note", "from-plugin"}},
    };
    v = view_of(&h);
    assert_int_equal(policy_decide(p, &v, &d, err, sizeof err), POLICY_OK);
    assert_string_equal(d.upstream, "backup");
    assert_string_equal(d.model, "nil");
    assert_string_equal(d.tags[0], "from-plugin");
    assert_string_equal(d.tags[1], "nil");
    policy_free(p);
}

static void test_body_lazy(void **state)
{
    (void)state;
    struct policy *p = load_test_script("view.lua");
    struct fake_req r = {
        .model = "m",
        .headers = {{"x-case", "no_body"}},
        .body = "{\"model\":\"from-body\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"hi\"},null],\"temperature\":0.5,"
                "\"max_tokens\":100,\"stream\":false}",
    };
    struct policy_req_view v = view_of(&r);
    struct policy_decision d;
    char err[512];
    assert_int_equal(policy_decide(p, &v, &d, err, sizeof err), POLICY_OK);
    assert_int_equal(r.body_reads, 0); /* never asked for: never decoded */

    r.headers[0][1] = "body";
    if (policy_decide(p, &v, &d, err, sizeof err) != POLICY_OK)
        fail_msg("%s", err);
    assert_int_equal(r.body_reads, 1); /* read twice, decoded once */
    assert_string_equal(d.model, "from-body");
    assert_string_equal(d.tags[0], "user");
    assert_string_equal(d.tags[1], "2");
    assert_string_equal(d.tags[2], "true"); /* null == sluice.null */
    assert_string_equal(d.tags[3], "0.5");
    assert_string_equal(d.tags[4], "integer");
    assert_string_equal(d.tags[5], "false");

    /* Memoized per call only: the next call decodes its own body. */
    assert_int_equal(policy_decide(p, &v, &d, err, sizeof err), POLICY_OK);
    assert_int_equal(r.body_reads, 2);

    /* Not JSON, or nested beyond the cap: nil or a clean error. */
    r.body = "not json";
    assert_int_equal(policy_decide(p, &v, &d, err, sizeof err), POLICY_ERROR);
    char deep[512] = "";
    for (int i = 0; i < 100; i++)
        strcat(deep, "[");
    for (int i = 0; i < 100; i++)
        strcat(deep, "]");
    r.body = deep;
    assert_int_equal(policy_decide(p, &v, &d, err, sizeof err), POLICY_ERROR);
    assert_non_null(strstr(err, "nested deeper"));
    policy_free(p);
}

static void test_body_memory_cap(void **state)
{
    (void)state;
    /* A body whose Lua form exceeds the cap fails cleanly (and the JSON
     * tree is freed: ASan/LSan would report it otherwise). */
    size_t n = 200000;
    char *body = malloc(n * 4 + 8);
    char *w = body;
    *w++ = '[';
    for (size_t i = 0; i < n; i++, w += 4)
        memcpy(w, "[1],", 4);
    w[-1] = ']';
    *w = '\0';
    struct policy *p = load_test_script("view.lua");
    struct fake_req r = {.headers = {{"x-case", "body"}}, .body = body};
    struct policy_req_view v = view_of(&r);
    struct policy_decision d;
    char err[512];
    assert_int_equal(policy_decide(p, &v, &d, err, sizeof err), POLICY_ERROR);
    assert_non_null(strstr(err, "memory limit"));
    r.headers[0][1] = "no_body";
    r.model = "still-works";
    assert_int_equal(policy_decide(p, &v, &d, err, sizeof err), POLICY_OK);
    assert_string_equal(d.model, "still-works");
    policy_free(p);
    free(body);
}

static void test_body_not_charged_to_budget(void **state)
{
    (void)state;
    /* A 1 MiB prompt costs 64k instructions if charged like a copy; the
     * one decode per call is charged to memory only. */
    size_t n = 1u << 20;
    const char *head = "{\"model\":\"big\",\"messages\":[{\"role\":"
                       "\"user\",\"content\":\"";
    const char *tail = "\"},null],\"temperature\":0.5,\"max_tokens\":1,"
                       "\"stream\":false}";
    char *body = malloc(strlen(head) + n + strlen(tail) + 1);
    strcpy(body, head);
    memset(body + strlen(head), 'x', n);
    strcpy(body + strlen(head) + n, tail);

    struct policy_limits small_budget = test_limits;
    small_budget.instruction_budget = 10000;
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/view.lua", POLICY_TEST_DIR);
    struct policy *p =
        policy_load(path, &small_budget, &test_env, err, sizeof err);
    assert_non_null(p);
    struct fake_req r = {.headers = {{"x-case", "body"}}, .body = body};
    struct policy_req_view v = view_of(&r);
    struct policy_decision d;
    if (policy_decide(p, &v, &d, err, sizeof err) != POLICY_OK)
        fail_msg("%s", err);
    assert_string_equal(d.model, "big");
    policy_free(p);
    free(body);
}

static void test_health_and_clock(void **state)
{
    (void)state;
    test_env_state = (struct fake_env){
        .names = {"breaker.mock.open"}, .values = {1}, .now = 1000.25};
    struct policy *p = load_test_script("view.lua");
    expect_case_ok(p, "health", "1|nil|1000.2");
    test_env_state.now = 2000.5;
    test_env_state.values[0] = 0;
    expect_case_ok(p, "health", "0|nil|2000.5");
    expect_case_ok(p, "log", "");
    policy_free(p);
    test_env_state = (struct fake_env){0};
}

/* ---- bundled policies ---- */

static enum policy_status decide_req(struct policy *p, struct fake_req *r,
                                     struct policy_decision *d)
{
    char err[512];
    struct policy_req_view v = view_of(r);
    enum policy_status st = policy_decide(p, &v, d, err, sizeof err);
    if (st != POLICY_OK)
        fail_msg("%s", err);
    return st;
}

static void test_default_policy(void **state)
{
    (void)state;
    struct policy *p = load_example("default.lua");
    struct policy_decision d;

    struct fake_req plain = {.model = "gpt-4o", .tier = "standard"};
    decide_req(p, &plain, &d);
    assert_string_equal(d.priority, "");
    assert_string_equal(d.model, "");
    assert_false(d.reject);

    struct fake_req asked = {.tier = "standard",
                             .headers = {{"x-priority", "Realtime"}}};
    decide_req(p, &asked, &d);
    assert_string_equal(d.priority, "realtime");

    struct fake_req critical = {.headers = {{"x-priority", "critical"}}};
    decide_req(p, &critical, &d);
    assert_string_equal(d.priority, ""); /* not a client's to take */

    struct fake_req batch = {.tier = "batch"};
    decide_req(p, &batch, &d);
    assert_string_equal(d.priority, "batch");
    policy_free(p);
}

static void test_complexity_routing(void **state)
{
    (void)state;
    struct policy *p = load_example("examples/complexity_routing.lua");
    struct policy_decision d;

    struct fake_req named = {.model = "gpt-4o", .input_tokens = 10};
    decide_req(p, &named, &d);
    assert_string_equal(d.model, "");

    struct fake_req small = {
        .model = "auto",
        .input_tokens = 12,
        .message_count = 1,
        .body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"};
    decide_req(p, &small, &d);
    assert_string_equal(d.model, "gpt-4o-mini");
    assert_string_equal(d.tags[0], "complexity:small");
    assert_int_equal(small.body_reads, 1);

    struct fake_req code = {
        .model = "auto",
        .input_tokens = 80,
        .message_count = 1,
        .body = "{\"messages\":[{\"role\":\"user\",\"content\":\"Please "
                "Refactor this: ```int x;```\"}]}"};
    decide_req(p, &code, &d);
    assert_string_equal(d.model, "gpt-4o");

    struct fake_req longp = {
        .model = "auto", .input_tokens = 9000, .body = "{}"};
    decide_req(p, &longp, &d);
    assert_string_equal(d.model, "gpt-4o");
    assert_string_equal(d.tags[0], "complexity:large");
    assert_int_equal(longp.body_reads, 0); /* settled without the body */
    assert_int_equal(d.var_count, 1);
    assert_string_equal(d.vars[0][1], "long");
    policy_free(p);
}

static void test_degradation_ladder(void **state)
{
    (void)state;
    struct policy *p = load_example("examples/degradation_ladder.lua");
    struct policy_decision d;
    struct fake_req r = {.model = "gpt-4o", .tenant = "acme"};

    test_env_state = (struct fake_env){0};
    decide_req(p, &r, &d);
    assert_int_equal(d.degrade_level, -1);
    assert_false(d.reject);

    test_env_state =
        (struct fake_env){.names = {"budget.acme.used_ratio"}, .values = {0.8}};
    decide_req(p, &r, &d);
    assert_int_equal(d.degrade_level, 1);
    assert_string_equal(d.model, "gpt-4o-mini");
    assert_string_equal(d.upstream, "openai");

    test_env_state = (struct fake_env){
        .names = {"budget.acme.used_ratio", "breaker.openai.open"},
        .values = {0.1, 1}};
    decide_req(p, &r, &d);
    assert_int_equal(d.degrade_level, 2);
    assert_string_equal(d.upstream, "backup");

    test_env_state = (struct fake_env){
        .names = {"breaker.openai.open", "breaker.backup.open"},
        .values = {1, 1}};
    decide_req(p, &r, &d);
    assert_true(d.reject);
    assert_int_equal(d.reject_status, 429);
    assert_int_equal(d.reject_retry_after_s, 30);

    test_env_state =
        (struct fake_env){.names = {"budget.acme.used_ratio"}, .values = {1.0}};
    decide_req(p, &r, &d);
    assert_true(d.reject);
    assert_int_equal(d.reject_status, 429);
    assert_int_equal(d.reject_retry_after_s, 3600);
    test_env_state = (struct fake_env){0};
    policy_free(p);
}

static void test_token_budget(void **state)
{
    (void)state;
    struct policy *p = load_example("examples/token_budget.lua");
    struct policy_decision d;

    struct fake_req fits = {
        .tier = "free", .input_tokens = 1000, .max_tokens = 1000};
    decide_req(p, &fits, &d);
    assert_false(d.reject);
    assert_int_equal(d.var_count, 2);

    struct fake_req over = {.tier = "free", .input_tokens = 3500};
    decide_req(p, &over, &d); /* 3500 + default 1024 > 4096 */
    assert_true(d.reject);
    assert_int_equal(d.reject_status, 400);
    assert_non_null(strstr(d.reject_message, "4524"));

    struct fake_req unknown = {
        .tier = "mystery", .input_tokens = 30000, .max_tokens = 2000};
    decide_req(p, &unknown, &d); /* standard: 32768 */
    assert_false(d.reject);
    policy_free(p);
}

/* ---- cost ---- */

static void test_benchmark(void **state)
{
    (void)state;
    struct policy *p = load_test_script("bench.lua");
    struct fake_req r = {.model = "gpt-4o", .tier = "standard"};
    struct policy_req_view v = view_of(&r);
    struct policy_decision d;
    char err[256];
    const int calls = 200000;

    for (int i = 0; i < 1000; i++)
        assert_int_equal(policy_decide(p, &v, &d, err, sizeof err), POLICY_OK);
    /* CPU time: the wall clock on a shared 2-core box mostly measures
     * the neighbours. */
    double wall = now_ms();
    double cpu = clock_ms(CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < calls; i++)
        policy_decide(p, &v, &d, err, sizeof err);
    double cpu_ns = (clock_ms(CLOCK_THREAD_CPUTIME_ID) - cpu) * 1e6 / calls;
    double wall_ns = (now_ms() - wall) * 1e6 / calls;
    print_message("policy_decide: %.0f ns/call CPU, %.0f ns/call wall (%d "
                  "calls, bench.lua, state %zu bytes)\n",
                  cpu_ns, wall_ns, calls, policy_memory_used(p));
    /* Garbage from each call is collected: the state does not grow. */
    assert_true(policy_memory_used(p) < (1u << 20));
    policy_free(p);
}

/* ---- policies/complexity_router.lua and policies/degradation_ladder.lua
 * (the router plugin's policies, issue 12) ---- */

static const char *decision_var(const struct policy_decision *d,
                                const char *name)
{
    for (size_t i = 0; i < d->var_count; i++)
        if (strcmp(d->vars[i][0], name) == 0)
            return d->vars[i][1];
    return NULL;
}

static void test_complexity_router(void **state)
{
    (void)state;
    struct policy *p = load_example("complexity_router.lua");
    struct policy_decision d;

    struct fake_req named = {.model = "gpt-4o", .input_tokens = 9000};
    decide_req(p, &named, &d);
    assert_string_equal(d.model, "");

    struct fake_req easy = {
        .model = "auto",
        .input_tokens = 12,
        .message_count = 1,
        .body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"};
    decide_req(p, &easy, &d);
    assert_string_equal(d.model, "fast");
    assert_string_equal(decision_var(&d, "complexity.score"), "0");

    /* 2900 tokens (29) plus one marker (15): smart */
    struct fake_req marked = {
        .model = "auto",
        .input_tokens = 2900,
        .message_count = 1,
        .body = "{\"messages\":[{\"role\":\"user\",\"content\":\"Debug "
                "this\"}]}"};
    decide_req(p, &marked, &d);
    assert_string_equal(d.model, "smart");
    assert_string_equal(decision_var(&d, "complexity.score"), "44");

    /* 2900 tokens alone: 29, one under SMART_AT */
    struct fake_req plain = {.model = "auto",
                             .input_tokens = 2900,
                             .message_count = 1,
                             .body = "{\"messages\":[{\"role\":\"user\","
                                     "\"content\":\"tell me\"}]}"};
    decide_req(p, &plain, &d);
    assert_string_equal(d.model, "fast");

    /* long prompt: settled without decoding the body */
    struct fake_req longp = {.model = "auto", .input_tokens = 5000};
    decide_req(p, &longp, &d);
    assert_string_equal(d.model, "smart");
    assert_int_equal(longp.body_reads, 0);

    /* 11 messages (20) + max_tokens > 1000 (10) */
    struct fake_req chat = {
        .model = "auto", .message_count = 11, .max_tokens = 2000, .body = "{}"};
    decide_req(p, &chat, &d);
    assert_string_equal(d.model, "smart");
    policy_free(p);
}

static void ladder_case(struct policy *p, struct fake_req *r,
                        struct fake_env env, struct policy_decision *d)
{
    test_env_state = env;
    decide_req(p, r, d);
    test_env_state = (struct fake_env){0};
}

static void test_degradation_ladder_levels(void **state)
{
    (void)state;
    struct policy *p = load_example("degradation_ladder.lua");
    struct policy_decision d;
    struct fake_req r = {.model = "smart", .tenant = "acme"};

    ladder_case(p, &r, (struct fake_env){0}, &d);
    assert_int_equal(d.degrade_level, -1);

    ladder_case(p, &r,
                (struct fake_env){.names = {"budget.global-month.used_ratio"},
                                  .values = {0.8}},
                &d);
    assert_int_equal(d.degrade_level, 1);
    assert_string_equal(d.model, "fast");
    assert_string_equal(decision_var(&d, "router.max_tokens"), "512");

    ladder_case(
        p, &r,
        (struct fake_env){.names = {"budget.tenant-month.acme.used_ratio"},
                          .values = {0.95}},
        &d);
    assert_int_equal(d.degrade_level, 2);

    ladder_case(
        p, &r,
        (struct fake_env){.names = {"router.in_flight"}, .values = {900}}, &d);
    assert_int_equal(d.degrade_level, 2);

    ladder_case(
        p, &r, (struct fake_env){.names = {"router.rate_429"}, .values = {0.2}},
        &d);
    assert_int_equal(d.degrade_level, 1);

    ladder_case(
        p, &r,
        (struct fake_env){.names = {"breaker.primary.open"}, .values = {1}},
        &d);
    assert_int_equal(d.degrade_level, 1);

    /* every breaker open: static answers, by category */
    struct fake_req billing = {
        .model = "smart",
        .body = "{\"messages\":[{\"role\":\"user\",\"content\":\"Where is my "
                "Invoice?\"}]}"};
    ladder_case(p, &billing,
                (struct fake_env){
                    .names = {"breaker.primary.open", "breaker.secondary.open"},
                    .values = {1, 1}},
                &d);
    assert_int_equal(d.degrade_level, 3);
    assert_string_equal(decision_var(&d, "ladder.category"), "billing");

    /* the highest signal wins */
    ladder_case(p, &r,
                (struct fake_env){.names = {"router.rate_429",
                                            "budget.global-month.used_ratio"},
                                  .values = {0.2, 1.0}},
                &d);
    assert_int_equal(d.degrade_level, 3);
    policy_free(p);
}

/* Editing a threshold changes the decision (what SIGHUP reloads). */
static void test_degradation_ladder_maintenance(void **state)
{
    (void)state;
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/degradation_ladder.lua",
             POLICY_EXAMPLES_DIR);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *flag = strstr(text, "local MAINTENANCE = false");
    assert_non_null(flag);
    memcpy(flag, "local MAINTENANCE = true;", 25);
    struct policy *p = load_text(text, err, sizeof err, NULL, 0);
    assert_non_null(p);
    struct policy_decision d;
    struct fake_req r = {.model = "smart"};
    decide_req(p, &r, &d);
    assert_true(d.reject);
    assert_int_equal(d.reject_status, 503);
    assert_int_equal(d.reject_retry_after_s, 300);
    policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_bytecode_refused),
        cmocka_unit_test(test_script_too_large),
        cmocka_unit_test(test_memory_limit_too_small),
        cmocka_unit_test(test_forbidden_globals),
        cmocka_unit_test(test_budget_escapes),
        cmocka_unit_test(test_memory_escapes),
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_pattern_work_estimate),
        cmocka_unit_test(test_stashed_req),
        cmocka_unit_test(test_runtime_errors),
        cmocka_unit_test(test_decision_fields),
        cmocka_unit_test(test_bad_returns),
        cmocka_unit_test(test_ctx_vars),
        cmocka_unit_test(test_view_fields),
        cmocka_unit_test(test_body_lazy),
        cmocka_unit_test(test_body_memory_cap),
        cmocka_unit_test(test_body_not_charged_to_budget),
        cmocka_unit_test(test_health_and_clock),
        cmocka_unit_test(test_default_policy),
        cmocka_unit_test(test_complexity_routing),
        cmocka_unit_test(test_degradation_ladder),
        cmocka_unit_test(test_token_budget),
        cmocka_unit_test(test_complexity_router),
        cmocka_unit_test(test_degradation_ladder_levels),
        cmocka_unit_test(test_degradation_ladder_maintenance),
        cmocka_unit_test(test_benchmark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
