/* Plugin routes: what route_add accepts, how a request path is matched
 * (exact, '/' prefix, longest first, 405 with Allow), and which overlaps
 * refuse a config. Runs on the main thread, as create() does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugin_routes.h"
#include "runtime.h"

static enum sluice_action handler(void *arg, struct sluice_req *r, void *state)
{
    (void)arg;
    (void)r;
    (void)state;
    return SLUICE_RESPOND;
}

static const struct sluice_plugin desc = {.name = "probe"};

static struct generation *gen_new(size_t n)
{
    struct generation *g = calloc(1, sizeof *g);
    g->inst = calloc(n, sizeof *g->inst);
    g->count = n;
    for (size_t i = 0; i < n; i++) {
        struct instance *inst = &g->inst[i];
        snprintf(inst->name, sizeof inst->name, "p%zu", i);
        inst->index = i;
        inst->desc = &desc;
        inst->host.inst = inst;
        plugin_routes_host_fill(&inst->host.pub);
    }
    return g;
}

static void gen_free(struct generation *g)
{
    plugin_routes_free(g);
    free(g->inst);
    free(g);
}

static int add(struct generation *g, size_t i, const char *method,
               const char *path)
{
    const struct sluice_host *h = &g->inst[i].host.pub;
    return h->route_add(h, method, path, handler, &g->inst[i]);
}

/* The match, and in *found the registered path that answered. */
static enum route_match match(struct generation *g, const char *method,
                              const char *path, const char **found, char *allow)
{
    const struct plugin_route *rt = NULL;
    allow[0] = '\0';
    enum route_match m =
        plugin_routes_match(g->routes, method, path, &rt, allow, 96);
    *found = m == ROUTE_FOUND ? plugin_route_path(rt) : NULL;
    return m;
}

static void test_bad_registrations(void **state)
{
    (void)state;
    struct generation *g = gen_new(1);
    assert_int_equal(add(g, 0, "get", "/v1/x"), SLUICE_EINVAL);
    assert_int_equal(add(g, 0, "", "/v1/x"), SLUICE_EINVAL);
    assert_int_equal(add(g, 0, "GET", "v1/x"), SLUICE_EINVAL);
    assert_int_equal(add(g, 0, "GET", "/v1/x?y=1"), SLUICE_EINVAL);
    assert_int_equal(add(g, 0, "GET", "/v1//x"), SLUICE_EINVAL);
    assert_int_equal(add(g, 0, "GET", "/v1/../admin/"), SLUICE_EINVAL);
    assert_int_equal(add(g, 0, "GET", "/v1/a b"), SLUICE_EINVAL);
    assert_int_equal(add(g, 0, "GET", ""), SLUICE_EINVAL);
    char err[256] = "";
    assert_int_equal(plugin_routes_build(g, err, sizeof err), 0);
    assert_null(g->routes); /* nothing was registered */
    gen_free(g);
}

static void test_matching(void **state)
{
    (void)state;
    struct generation *g = gen_new(1);
    assert_int_equal(add(g, 0, "POST", "/v1/files"), SLUICE_OK);
    assert_int_equal(add(g, 0, "GET", "/v1/files/"), SLUICE_OK);
    assert_int_equal(add(g, 0, "DELETE", "/v1/files/"), SLUICE_OK);
    /* One instance may nest its own prefixes. */
    assert_int_equal(add(g, 0, "POST", "/v1/files/x/"), SLUICE_OK);
    char err[256] = "";
    assert_int_equal(plugin_routes_build(g, err, sizeof err), 0);
    assert_non_null(g->routes);

    const char *found;
    char allow[96];
    assert_int_equal(match(g, "POST", "/v1/files", &found, allow), ROUTE_FOUND);
    assert_string_equal(found, "/v1/files");
    assert_int_equal(match(g, "GET", "/v1/files/file-1/content", &found, allow),
                     ROUTE_FOUND);
    assert_string_equal(found, "/v1/files/");
    assert_int_equal(match(g, "POST", "/v1/files/x/y", &found, allow),
                     ROUTE_FOUND);
    assert_string_equal(found, "/v1/files/x/"); /* the longest wins */
    /* An exact route does not cover what follows it. */
    assert_int_equal(match(g, "POST", "/v1/filesx", &found, allow), ROUTE_NONE);
    assert_int_equal(match(g, "GET", "/v1/other", &found, allow), ROUTE_NONE);
    /* The path is routed, the method is not: Allow names the methods of
     * the most specific matching path. */
    assert_int_equal(match(g, "PUT", "/v1/files/abc", &found, allow),
                     ROUTE_WRONG_METHOD);
    assert_string_equal(allow, "Allow: DELETE, GET\r\n");
    assert_int_equal(match(g, "GET", "/v1/files", &found, allow),
                     ROUTE_WRONG_METHOD);
    assert_string_equal(allow, "Allow: POST\r\n");
    /* The nested prefix has POST only, but GET falls back to the shorter
     * one. */
    assert_int_equal(match(g, "GET", "/v1/files/x/y", &found, allow),
                     ROUTE_FOUND);
    assert_string_equal(found, "/v1/files/");
    gen_free(g);
}

static void test_overlaps_between_instances_refused(void **state)
{
    (void)state;
    struct generation *g = gen_new(2);
    assert_int_equal(add(g, 0, "GET", "/v1/batches/"), SLUICE_OK);
    assert_int_equal(add(g, 1, "POST", "/v1/batches/x"), SLUICE_OK);
    assert_int_equal(add(g, 1, "GET", "/v1/batches/x/cancel"), SLUICE_OK);
    char err[256] = "";
    assert_int_equal(plugin_routes_build(g, err, sizeof err), -1);
    assert_non_null(strstr(err, "(p1): the route GET /v1/batches/x/cancel "
                                "overlaps the route GET /v1/batches/ of "
                                "pipeline[0] (p0)"));
    assert_null(g->routes);
    gen_free(g);

    /* The refused build left nothing behind for the next one. */
    g = gen_new(1);
    assert_int_equal(plugin_routes_build(g, err, sizeof err), 0);
    assert_null(g->routes);
    gen_free(g);

    /* Same path, different methods, different instances: fine. */
    g = gen_new(2);
    assert_int_equal(add(g, 0, "GET", "/v1/batches"), SLUICE_OK);
    assert_int_equal(add(g, 1, "POST", "/v1/batches"), SLUICE_OK);
    assert_int_equal(plugin_routes_build(g, err, sizeof err), 0);
    gen_free(g);

    /* The same route twice from one instance is a mistake too. */
    g = gen_new(1);
    assert_int_equal(add(g, 0, "GET", "/v1/batches"), SLUICE_OK);
    assert_int_equal(add(g, 0, "GET", "/v1/batches"), SLUICE_OK);
    assert_int_equal(plugin_routes_build(g, err, sizeof err), -1);
    gen_free(g);
}

static void test_builtin_endpoints_cannot_be_covered(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "/v1/chat/completions", "/v1/",   "/", "/v1/models", "/metrics",
        "/admin/reload",        "/admin/"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct generation *g = gen_new(1);
        char err[256] = "";
        assert_int_equal(add(g, 0, "GET", bad[i]), SLUICE_OK);
        assert_int_equal(plugin_routes_build(g, err, sizeof err), -1);
        assert_non_null(strstr(err, "covers the built-in endpoint"));
        gen_free(g);
    }
    /* Below a built-in path is free: /v1/models/{id} is not built in. */
    struct generation *g = gen_new(1);
    char err[256] = "";
    assert_int_equal(add(g, 0, "GET", "/v1/models/"), SLUICE_OK);
    assert_int_equal(plugin_routes_build(g, err, sizeof err), 0);
    gen_free(g);
}

/* A generation destroyed before its build (a later instance's create()
 * failed) takes its pending routes with it. */
static void test_pending_dropped_with_a_failed_generation(void **state)
{
    (void)state;
    struct generation *g = gen_new(1);
    assert_int_equal(add(g, 0, "GET", "/v1/files/"), SLUICE_OK);
    gen_free(g);
    g = gen_new(1);
    char err[256] = "";
    assert_int_equal(plugin_routes_build(g, err, sizeof err), 0);
    assert_null(g->routes);
    gen_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_registrations),
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_overlaps_between_instances_refused),
        cmocka_unit_test(test_builtin_endpoints_cannot_be_covered),
        cmocka_unit_test(test_pending_dropped_with_a_failed_generation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
