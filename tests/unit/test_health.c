/* Health map: set/get, JSON rendering, concurrent writers and readers.
 * The map is process-wide, so tests use distinct names and run in the
 * order listed in main() (the golden JSON test first, the fill-up last).
 *
 * Also the logger (core/log.c), which health.c logs through: line format,
 * level filter, and access-log lines that stay whole under concurrency. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "health.h"
#include "log.h"

/* Renders the whole map into a malloc'd string. */
static char *render_all(void)
{
    size_t need = health_json(NULL, 0);
    char *buf = malloc(need + 1);
    assert_non_null(buf);
    assert_int_equal(health_json(buf, need + 1), need);
    assert_int_equal(strlen(buf), need);
    return buf;
}

static json_t *parse_all(void)
{
    char *text = render_all();
    json_error_t jerr;
    json_t *obj = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj)
        fail_msg("invalid JSON (%s): %s", jerr.text, text);
    free(text);
    assert_true(json_is_object(obj));
    return obj;
}

static void test_empty_then_golden_json(void **state)
{
    char buf[256];
    (void)state;

    assert_int_equal(health_json(buf, sizeof buf), 2);
    assert_string_equal(buf, "{}");

    health_set("breaker.mock.open", 1);
    health_set("upstream.mock.down", 0);
    health_set("budget.used", 0.25);
    health_set("quote\"back\\slash\x01", -2.5);
    health_set("queue.depth", NAN); /* JSON has no NaN */
    health_set("breaker.mock.open", 0);
    size_t n = health_json(buf, sizeof buf);
    const char *expect = "{\"breaker.mock.open\":0,\"upstream.mock.down\":0,"
                         "\"budget.used\":0.25,"
                         "\"quote\\\"back\\\\slash\\u0001\":-2.5,"
                         "\"queue.depth\":null}";
    assert_string_equal(buf, expect);
    assert_int_equal(n, strlen(expect));
}

static void test_set_get(void **state)
{
    double v = -1;
    (void)state;

    assert_false(health_get("never.set", &v));
    assert_true(v == -1);
    health_set("sg.a", 3.5);
    assert_true(health_get("sg.a", &v));
    assert_true(v == 3.5);
    health_set("sg.a", -7);
    assert_true(health_get("sg.a", &v));
    assert_true(v == -7);
    assert_true(health_get("sg.a", NULL));
    assert_false(health_get(NULL, &v));

    /* Empty and over-long names are refused, not truncated. */
    char long_name[200];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    health_set(long_name, 1);
    health_set("", 1);
    health_set(NULL, 1);
    assert_false(health_get(long_name, &v));
    assert_false(health_get("", &v));
}

/* snprintf semantics: the full length comes back, the output is cut and
 * still terminated. */
static void test_json_truncation(void **state)
{
    char small[8];
    (void)state;

    size_t full = health_json(NULL, 0);
    assert_true(full > sizeof small);
    memset(small, '#', sizeof small);
    assert_int_equal(health_json(small, sizeof small), full);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, "{\"breake", sizeof small - 1);
}

/* ---- concurrency ---- */

#define WRITERS 4
#define READERS 2
#define NAMES 100
#define ROUNDS 200

static void *writer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    char name[64];
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < NAMES; i++) {
            /* Shared names: every writer races to add the same entry. */
            snprintf(name, sizeof name, "race.%d", i);
            health_set(name, round);
            /* Own names: the last value each writer set must stick. */
            snprintf(name, sizeof name, "own.%u.%d", id, i);
            health_set(name, round * 1000 + i);
        }
    }
    return NULL;
}

static void *reader(void *arg)
{
    char buf[8192];
    double v;
    (void)arg;
    for (int round = 0; round < ROUNDS; round++) {
        health_get("race.7", &v);
        health_get("own.1.3", &v);
        health_json(buf, sizeof buf);
    }
    return NULL;
}

static void test_concurrent_writers_and_readers(void **state)
{
    pthread_t threads[WRITERS + READERS];
    (void)state;

    for (unsigned i = 0; i < WRITERS; i++)
        assert_int_equal(
            pthread_create(&threads[i], NULL, writer, (void *)(uintptr_t)i), 0);
    for (unsigned i = 0; i < READERS; i++)
        assert_int_equal(
            pthread_create(&threads[WRITERS + i], NULL, reader, NULL), 0);
    for (unsigned i = 0; i < WRITERS + READERS; i++)
        pthread_join(threads[i], NULL);

    double v;
    char name[64];
    for (unsigned id = 0; id < WRITERS; id++) {
        for (int i = 0; i < NAMES; i++) {
            snprintf(name, sizeof name, "own.%u.%d", id, i);
            assert_true(health_get(name, &v));
            assert_true(v == (ROUNDS - 1) * 1000 + i);
        }
    }
    /* Each raced name exists exactly once (the parser rejects duplicate
     * keys) with a value one of the writers set last. */
    json_t *obj = parse_all();
    for (int i = 0; i < NAMES; i++) {
        snprintf(name, sizeof name, "race.%d", i);
        json_t *val = json_object_get(obj, name);
        assert_non_null(val);
        assert_true(json_number_value(val) == ROUNDS - 1);
    }
    json_decref(obj);
}

/* Last: fills the map. Names beyond capacity are dropped, earlier ones
 * keep working. */
static void test_capacity(void **state)
{
    char name[64];
    double v;
    (void)state;

    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "fill.%d", i);
        health_set(name, i);
    }
    assert_true(health_get("sg.a", &v));
    json_t *obj = parse_all();
    assert_int_equal(json_object_size(obj), 1024);
    json_decref(obj);
    assert_false(health_get("fill.1999", &v));
    health_set("sg.a", 11); /* updates still work when full */
    assert_true(health_get("sg.a", &v));
    assert_true(v == 11);
}

/* ---- logging ---- */

static void test_log_levels(void **state)
{
    (void)state;
    assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
    assert_int_equal(log_level_parse("WARN"), LOG_WARN);
    assert_int_equal(log_level_parse("warning"), LOG_WARN);
    assert_int_equal(log_level_parse("error"), LOG_ERROR);
    assert_int_equal(log_level_parse("verbose"), LOG_INFO);
    assert_int_equal(log_level_parse(NULL), LOG_INFO);
    log_set_level(LOG_WARN);
    assert_true(log_enabled(LOG_ERROR));
    assert_true(log_enabled(LOG_WARN));
    assert_false(log_enabled(LOG_INFO));
    log_set_level(LOG_INFO);
}

/* Runs fn with stderr sent to a temporary file; returns what it wrote. */
static char *capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/sluice_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, text, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    return text;
}

static void log_some_lines(void)
{
    log_msg(LOG_WARN, "upstream", "mock: %d failures\nforged line", 3);
    log_msg(LOG_DEBUG, "upstream", "filtered out at level info");
    log_msg(LOG_ERROR, NULL, "no component");
}

static void test_log_line_format(void **state)
{
    (void)state;
    char *text = capture_stderr(log_some_lines);
    /* Each line opens with 24 characters of UTC time,
     * 2024-05-01T12:00:00.123Z; the newline from the message is escaped,
     * and the DEBUG line is filtered out. */
    const char *second = strchr(text, '\n');
    assert_non_null(second);
    second++;
    assert_true(strlen(text) > 24 && text[4] == '-' && text[10] == 'T' &&
                text[19] == '.' && text[23] == 'Z');
    const char *first = " WARN [upstream] mock: 3 failures\\nforged line\n";
    assert_memory_equal(text + 24, first, strlen(first));
    assert_string_equal(second + 24, " ERROR [core] no component\n");
    free(text);
}

static void log_a_long_line(void)
{
    char big[10000];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_msg(LOG_INFO, "big", "%s", big);
}

static void test_log_long_line_is_cut(void **state)
{
    (void)state;
    char *text = capture_stderr(log_a_long_line);
    size_t len = strlen(text);
    assert_true(len < 4200);
    assert_memory_equal(text + len - 4, "...\n", 4);
    assert_ptr_equal(strchr(text, '\n'), text + len - 1); /* one line */
    free(text);
}

#define LOG_THREADS 4
#define LOG_LINES 2000

static void *access_writer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    char line[4096];
    for (int i = 0; i < LOG_LINES; i++) {
        /* lengths vary up to ~3 KB, so lines cross page boundaries */
        int pad = (int)((i * 131u + id * 17u) % 3000u);
        int n = snprintf(line, sizeof line,
                         "{\"t\":%u,\"i\":%d,\"pad\":\"%*s\"}", id, i, pad, "");
        access_log_write(line, (size_t)n);
    }
    return NULL;
}

/* Counts the lines of `path`, failing on any that is not whole. */
static int count_whole_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    static char line[8192];
    int lines = 0;
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        unsigned t;
        int i, used = 0;
        size_t len = strlen(line);
        assert_true(len > 0 && line[len - 1] == '\n');
        if (sscanf(line, "{\"t\":%u,\"i\":%d,\"pad\":\"%n", &t, &i, &used) !=
                2 ||
            used == 0)
            fail_msg("torn line: %.80s", line);
        int pad = (int)((i * 131u + t * 17u) % 3000u);
        assert_int_equal(len, (size_t)used + (size_t)pad + 3);
        assert_memory_equal(line + len - 3, "\"}\n", 3);
        lines++;
    }
    fclose(f);
    return lines;
}

static void test_access_log_lines_stay_whole(void **state)
{
    char first[] = "/tmp/sluice_access_XXXXXX";
    char second[] = "/tmp/sluice_access_XXXXXX";
    pthread_t threads[LOG_THREADS];
    (void)state;

    close(mkstemp(first));
    close(mkstemp(second));
    assert_int_equal(access_log_open(first), 0);
    for (unsigned i = 0; i < LOG_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, access_writer,
                                        (void *)(uintptr_t)i),
                         0);
    /* Rotation while writers run: each line lands whole in one file. */
    usleep(1000);
    assert_int_equal(access_log_open(second), 0);
    for (unsigned i = 0; i < LOG_THREADS; i++)
        pthread_join(threads[i], NULL);

    /* A path that cannot be opened is refused; the old log stays. */
    assert_int_equal(access_log_open("/nonexistent/dir/access.log"), -1);
    access_log_write("{\"t\":0,\"i\":0,\"pad\":\"\"}", 22);
    access_log_close();
    access_log_write("{\"dropped\":true}", 16); /* off: goes nowhere */

    int total = count_whole_lines(first) + count_whole_lines(second);
    assert_int_equal(total, LOG_THREADS * LOG_LINES + 1);
    unlink(first);
    unlink(second);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_then_golden_json),
        cmocka_unit_test(test_set_get),
        cmocka_unit_test(test_json_truncation),
        cmocka_unit_test(test_concurrent_writers_and_readers),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_log_line_format),
        cmocka_unit_test(test_log_long_line_is_cut),
        cmocka_unit_test(test_access_log_lines_stay_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
