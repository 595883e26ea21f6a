/* ABI tests: the loader, used the way the gateway uses it, against plugins
 * built wrong on purpose (tests/abi/plugins/). Each must be refused with a
 * message that names the file and says what is wrong, word for word. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin_loader.h"

#define ERR_LEN 1536

static void plugin_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s.so", ABI_PLUGIN_DIR, name);
}

/* Loads plugin `name` into a fresh set; it must fail with exactly the
 * message `expect_fmt`, where %s is the plugin's path. */
static void assert_refused(const char *name, const char *expect_fmt, ...)
{
    char path[512], expect[ERR_LEN], err[ERR_LEN] = "";
    va_list ap;

    plugin_path(path, sizeof path, name);
    va_start(ap, expect_fmt);
    vsnprintf(expect, sizeof expect, expect_fmt, ap);
    va_end(ap);
    struct plugin_set *set = plugin_set_new();
    assert_non_null(set);
    assert_null(plugin_set_load(set, path, err, sizeof err));
    assert_string_equal(err, expect);
    plugin_set_free(set);
}

static void test_wrong_major(void **state)
{
    char path[512];
    (void)state;
    plugin_path(path, sizeof path, "wrong_major");
    assert_refused("wrong_major",
                   "%s: built for ABI major 2, this core is "
                   "ABI 1.%d",
                   path, SLUICE_ABI_MINOR);
}

static void test_newer_minor(void **state)
{
    char path[512];
    (void)state;
    plugin_path(path, sizeof path, "newer_minor");
    assert_refused("newer_minor", "%s: needs core >= 1.%d (this core is 1.%d)",
                   path, SLUICE_ABI_MINOR + 1, SLUICE_ABI_MINOR);
}

static void test_short_struct(void **state)
{
    char path[512];
    (void)state;
    plugin_path(path, sizeof path, "short_struct");
    assert_refused("short_struct",
                   "%s: descriptor too short (16 bytes, ABI 1.0 needs at "
                   "least %zu)",
                   path, offsetof(struct sluice_plugin, status_json));
}

static void test_missing_symbol(void **state)
{
    char path[512];
    (void)state;
    plugin_path(path, sizeof path, "missing_symbol");
    assert_refused("missing_symbol",
                   "%s: not a sluice plugin (no sluice_plugin_v1 symbol)",
                   path);
}

static void test_abi0(void **state)
{
    char path[512];
    (void)state;
    plugin_path(path, sizeof path, "abi0");
    assert_refused("abi0", "%s: built for ABI 0; this core needs ABI 1", path);
}

static void test_null_entry(void **state)
{
    char path[512];
    (void)state;
    plugin_path(path, sizeof path, "null_entry");
    assert_refused("null_entry", "%s: sluice_plugin_v1() returned NULL", path);
}

static void test_bad_config_table(void **state)
{
    char path[512];
    (void)state;
    plugin_path(path, sizeof path, "bad_config_table");
    assert_refused("bad_config_table",
                   "%s: config key 'burst': offset 64 + size 8 is beyond "
                   "config_size 8",
                   path);
}

static void test_duplicate_name(void **state)
{
    char a[512], b[512], expect[ERR_LEN], err[ERR_LEN] = "";
    (void)state;

    plugin_path(a, sizeof a, "dup_a");
    plugin_path(b, sizeof b, "dup_b");
    struct plugin_set *set = plugin_set_new();
    const struct loaded_plugin *first =
        plugin_set_load(set, a, err, sizeof err);
    assert_non_null(first);
    assert_string_equal(first->desc.name, "dup");
    assert_null(plugin_set_load(set, b, err, sizeof err));
    snprintf(expect, sizeof expect,
             "%s: plugin name 'dup' already loaded from %s", b, a);
    assert_string_equal(err, expect);
    /* The refusal left the set as it was. */
    assert_ptr_equal(plugin_set_load(set, a, err, sizeof err), first);
    plugin_set_free(set);
}

/* An older, shorter 1.0 descriptor loads; the hook it cannot know about
 * reads as NULL. */
static void test_good_min_loads(void **state)
{
    char path[512], err[ERR_LEN] = "";
    (void)state;

    plugin_path(path, sizeof path, "good_min");
    struct plugin_set *set = plugin_set_new();
    const struct loaded_plugin *lp =
        plugin_set_load(set, path, err, sizeof err);
    assert_non_null(lp);
    assert_string_equal(err, "");
    assert_string_equal(lp->path, path);
    assert_non_null(lp->dl);
    assert_string_equal(lp->desc.name, "good_min");
    assert_string_equal(lp->desc.version, "1.0.0");
    assert_int_equal(lp->desc.struct_size,
                     offsetof(struct sluice_plugin, status_json));
    assert_non_null(lp->desc.on_request);
    assert_null(lp->desc.create);
    assert_null(lp->desc.status_json);
    plugin_set_free(set);
}

/* A plugin built against the frozen SDK 1.0 headers (tests/abi/sdk-1.0)
 * loads on this 1.1 core: its descriptor is exactly the 1.0 size, and the
 * hooks 1.1 appended (on_cleanup first) read as NULL. */
static void test_sdk_1_0_binary_loads(void **state)
{
    char path[512], err[ERR_LEN] = "";
    (void)state;

    plugin_path(path, sizeof path, "compat_v10");
    struct plugin_set *set = plugin_set_new();
    const struct loaded_plugin *lp =
        plugin_set_load(set, path, err, sizeof err);
    assert_non_null(lp);
    assert_string_equal(err, "");
    assert_string_equal(lp->desc.name, "compat_v10");
    assert_int_equal(lp->desc.abi_minor, 0);
    assert_int_equal(lp->desc.struct_size,
                     offsetof(struct sluice_plugin, on_cleanup));
    assert_non_null(lp->desc.on_request);
    assert_non_null(lp->desc.on_log);
    assert_null(lp->desc.on_cleanup);
    plugin_set_free(set);
}

/* The same file twice, by the same or another spelling, is one entry. */
static void test_same_file_twice(void **state)
{
    char path[512], other[600], err[ERR_LEN] = "";
    (void)state;

    plugin_path(path, sizeof path, "good_min");
    snprintf(other, sizeof other, "%s/./good_min.so", ABI_PLUGIN_DIR);
    struct plugin_set *set = plugin_set_new();
    const struct loaded_plugin *lp =
        plugin_set_load(set, path, err, sizeof err);
    assert_non_null(lp);
    assert_ptr_equal(plugin_set_load(set, path, err, sizeof err), lp);
    assert_ptr_equal(plugin_set_load(set, other, err, sizeof err), lp);
    plugin_set_free(set);
}

static void test_missing_file(void **state)
{
    char path[512], err[ERR_LEN] = "", prefix[600];
    (void)state;

    plugin_path(path, sizeof path, "does_not_exist");
    struct plugin_set *set = plugin_set_new();
    assert_null(plugin_set_load(set, path, err, sizeof err));
    snprintf(prefix, sizeof prefix, "%s: cannot load: ", path);
    assert_memory_equal(err, prefix, strlen(prefix));
    assert_non_null(strstr(err, "No such file"));
    plugin_set_free(set);
}

static void test_not_a_shared_object(void **state)
{
    char path[] = "/tmp/sluice_abi_XXXXXX";
    char err[ERR_LEN] = "", prefix[600];
    (void)state;

    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not ELF\n", 8), 8);
    close(fd);
    struct plugin_set *set = plugin_set_new();
    assert_null(plugin_set_load(set, path, err, sizeof err));
    snprintf(prefix, sizeof prefix, "%s: cannot load: ", path);
    assert_memory_equal(err, prefix, strlen(prefix));
    plugin_set_free(set);
    unlink(path);
}

/* The reference plugin passes every check, config table included. */
static void test_noop_loads(void **state)
{
    char err[ERR_LEN] = "";
    (void)state;

    struct plugin_set *set = plugin_set_new();
    const struct loaded_plugin *lp =
        plugin_set_load(set, NOOP_PLUGIN, err, sizeof err);
    if (!lp)
        fail_msg("%s", err);
    assert_string_equal(lp->desc.name, "noop");
    assert_non_null(lp->desc.config);
    assert_string_equal(lp->desc.config[0].name, "count_requests");
    assert_non_null(lp->desc.on_request);
    assert_non_null(lp->desc.on_log);
    plugin_set_free(set);
}

/* ---- descriptor checks on in-memory descriptors ---- */

struct test_config {
    int64_t rpm;
    double share;
    int scope;
    const char *key;
};

static const char *const scopes[] = {"global", "user", NULL};

static int fake_create(const struct sluice_host *h, const void *config,
                       struct sluice_str raw, void **self,
                       struct sluice_error *err)
{
    (void)h, (void)config, (void)raw, (void)self, (void)err;
    return 0;
}

static struct sluice_plugin base_descriptor(void)
{
    struct sluice_plugin d = {
        SLUICE_PLUGIN_HEADER,
        .name = "mem",
        .config_size = sizeof(struct test_config),
        .create = fake_create,
    };
    return d;
}

/* Checks descriptor d with the one-field table {f, {0}}; returns the error
 * text ("" when accepted). */
static const char *check_field(struct sluice_cfg_field f)
{
    static char err[ERR_LEN];
    struct sluice_cfg_field table[2] = {f, {0}};
    struct sluice_plugin d = base_descriptor(), out;

    d.config = table;
    err[0] = '\0';
    plugin_check_descriptor("mem.so", &d, &out, err, sizeof err);
    return err;
}

static void test_descriptor_names(void **state)
{
    struct sluice_plugin d = base_descriptor(), out;
    char err[ERR_LEN];
    (void)state;

    assert_int_equal(plugin_check_descriptor("x.so", &d, &out, err, sizeof err),
                     0);
    assert_string_equal(out.name, "mem");

    d.name = NULL;
    assert_int_equal(plugin_check_descriptor("x.so", &d, &out, err, sizeof err),
                     -1);
    assert_string_equal(err, "x.so: descriptor has no name");
    d.name = "";
    plugin_check_descriptor("x.so", &d, &out, err, sizeof err);
    assert_string_equal(err, "x.so: descriptor has no name");
    d.name = "Token-Bucket";
    plugin_check_descriptor("x.so", &d, &out, err, sizeof err);
    assert_string_equal(err, "x.so: plugin name 'Token-Bucket' is invalid "
                             "(use 1 to 63 of a-z, 0-9 and _)");
}

static void test_descriptor_config_needs_create(void **state)
{
    struct sluice_plugin d = base_descriptor(), out;
    char err[ERR_LEN];
    (void)state;

    d.create = NULL;
    assert_int_equal(plugin_check_descriptor("x.so", &d, &out, err, sizeof err),
                     -1);
    assert_string_equal(err, "x.so: declares a config struct (32 bytes) but "
                             "no create() to receive it");
}

static void test_descriptor_longer_struct_is_cut(void **state)
{
    /* A descriptor larger than this core knows (a plugin that appended
     * bytes) is accepted; only known fields are copied. */
    struct {
        struct sluice_plugin d;
        char extra[16];
    } big = {.d = base_descriptor()};
    struct sluice_plugin out;
    char err[ERR_LEN];
    (void)state;

    big.d.struct_size = sizeof big;
    assert_int_equal(
        plugin_check_descriptor("x.so", &big.d, &out, err, sizeof err), 0);
}

static void test_descriptor_absurd_size_refused(void **state)
{
    /* 0xFFFFFFFF is no newer ABI, it is a broken descriptor (issue 8). */
    struct sluice_plugin d = base_descriptor();
    struct sluice_plugin out;
    char err[ERR_LEN];
    (void)state;

    d.struct_size = 0xFFFFFFFFu;
    assert_int_equal(plugin_check_descriptor("x.so", &d, &out, err, sizeof err),
                     -1);
    assert_string_equal(err, "x.so: descriptor size 4294967295 is implausible "
                             "(at most 4096 bytes)");
}

static void test_config_field_checks(void **state)
{
    (void)state;
    struct sluice_cfg_field ok = {
        .name = "rpm",
        .type = SLUICE_CFG_INT,
        .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_MIN_EXCLUSIVE,
        .default_value = "60",
        .offset = offsetof(struct test_config, rpm),
    };
    assert_string_equal(check_field(ok), "");

    struct sluice_cfg_field f = ok;
    f.name = NULL;
    assert_string_equal(check_field(f), "mem.so: config key #0 has no name");

    f = ok;
    f.name = "max-rpm";
    assert_string_equal(check_field(f),
                        "mem.so: config key 'max-rpm': invalid key name (use "
                        "letters, digits and _)");

    f = ok;
    f.type = (enum sluice_cfg_type)42;
    assert_string_equal(check_field(f),
                        "mem.so: config key 'rpm': unknown type 42");

    f = ok;
    f.offset = 1;
    assert_string_equal(check_field(f),
                        "mem.so: config key 'rpm': offset 1 is not aligned "
                        "to 8");

    f = ok;
    f.offset = (size_t)-4; /* offset + size must not wrap around */
    assert_non_null(strstr(check_field(f), "is beyond config_size 32"));

    f = ok;
    f.default_value = "sixty";
    assert_string_equal(check_field(f), "mem.so: config key 'rpm': default "
                                        "is not valid JSON");
    f.default_value = "0"; /* min 0 exclusive */
    assert_string_equal(check_field(f), "mem.so: config key 'rpm': default "
                                        "is out of bounds");

    f = ok;
    f.flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX;
    f.min = 10;
    f.max = 1;
    f.default_value = NULL;
    assert_string_equal(check_field(f), "mem.so: config key 'rpm': min is "
                                        "greater than max");

    f = ok;
    f.flags = 1u << 9;
    assert_string_equal(check_field(f),
                        "mem.so: config key 'rpm': unknown flags 0x200");
}

static void test_config_enum_and_string(void **state)
{
    (void)state;
    struct sluice_cfg_field e = {
        .name = "scope",
        .type = SLUICE_CFG_ENUM,
        .default_value = "\"user\"",
        .choices = scopes,
        .offset = offsetof(struct test_config, scope),
    };
    assert_string_equal(check_field(e), "");
    e.default_value = "\"tenant\"";
    assert_string_equal(check_field(e), "mem.so: config key 'scope': default "
                                        "is not one of the choices");
    e.default_value = NULL;
    e.choices = NULL;
    assert_string_equal(check_field(e),
                        "mem.so: config key 'scope': enum has no choices");

    struct sluice_cfg_field s = {
        .name = "key",
        .type = SLUICE_CFG_STRING,
        .flags = SLUICE_CFG_HAS_MAX,
        .offset = offsetof(struct test_config, key),
    };
    assert_string_equal(check_field(s), "mem.so: config key 'key': bounds on "
                                        "a key that is not a number");

    /* JSON keys take no room in the struct: any offset will do. */
    struct sluice_cfg_field j = {
        .name = "rules", .type = SLUICE_CFG_JSON, .offset = 4096};
    assert_string_equal(check_field(j), "");
}

static void test_config_duplicate_key(void **state)
{
    struct sluice_cfg_field table[] = {
        {.name = "rpm",
         .type = SLUICE_CFG_INT,
         .offset = offsetof(struct test_config, rpm)},
        {.name = "rpm",
         .type = SLUICE_CFG_DOUBLE,
         .offset = offsetof(struct test_config, share)},
        {0},
    };
    struct sluice_plugin d = base_descriptor(), out;
    char err[ERR_LEN];
    (void)state;

    d.config = table;
    assert_int_equal(plugin_check_descriptor("x.so", &d, &out, err, sizeof err),
                     -1);
    assert_string_equal(err, "x.so: config key 'rpm': declared twice");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrong_major),
        cmocka_unit_test(test_newer_minor),
        cmocka_unit_test(test_short_struct),
        cmocka_unit_test(test_missing_symbol),
        cmocka_unit_test(test_abi0),
        cmocka_unit_test(test_null_entry),
        cmocka_unit_test(test_bad_config_table),
        cmocka_unit_test(test_duplicate_name),
        cmocka_unit_test(test_good_min_loads),
        cmocka_unit_test(test_sdk_1_0_binary_loads),
        cmocka_unit_test(test_same_file_twice),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_not_a_shared_object),
        cmocka_unit_test(test_noop_loads),
        cmocka_unit_test(test_descriptor_names),
        cmocka_unit_test(test_descriptor_config_needs_create),
        cmocka_unit_test(test_descriptor_longer_struct_is_cut),
        cmocka_unit_test(test_descriptor_absurd_size_refused),
        cmocka_unit_test(test_config_field_checks),
        cmocka_unit_test(test_config_enum_and_string),
        cmocka_unit_test(test_config_duplicate_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
