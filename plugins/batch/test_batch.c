/* Unit tests of the batch plugin's parts that hold its guarantees: the
 * upload check (errors name the line), the SQLite line states (a stored
 * result is final; only another process's in-flight lines are sent
 * again), the atomic file store, and the config table on the fake host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <sluice/testing.h>

#include "batch.h"
#include "batch_db.h"
#include "batch_jsonl.h"
#include "batch_store.h"

/* ---- JSONL check ---- */

static bool only_mini(void *arg, const char *model)
{
    (void)arg;
    return strcmp(model, "gpt-4o-mini") == 0;
}

#define LINE(id, model)                                                        \
    "{\"custom_id\":\"" id "\",\"method\":\"POST\",\"url\":"                   \
    "\"/v1/chat/completions\",\"body\":{\"model\":\"" model "\"}}\n"

static int check(const char *text, struct jsonl_check *c)
{
    return batch_jsonl_check(text, strlen(text), 100, only_mini, NULL, true, c);
}

static void test_jsonl_valid_with_blank_lines(void **s)
{
    (void)s;
    struct jsonl_check c;
    const char *f = LINE("a", "gpt-4o-mini") "\n  \n" LINE("b", "gpt-4o-mini");
    assert_int_equal(check(f, &c), 0);
    assert_int_equal(c.lines, 2);
    assert_string_equal(c.url, "/v1/chat/completions");
    assert_int_equal(f[c.at[1].off], '{');
    assert_memory_equal(f + c.at[1].off + 14, "b", 1);
    free(c.at);
}

static void test_jsonl_errors_name_the_line(void **s)
{
    (void)s;
    struct jsonl_check c;
    /* Blank line 2 still counts: the number is the file's line number. */
    const char *bad = LINE("a", "gpt-4o-mini") "\n{\"custom_id\": \"b\",\n";
    assert_int_equal(check(bad, &c), -1);
    assert_non_null(strstr(c.error, "line 3: is not valid JSON"));

    assert_int_equal(check(LINE("a", "gpt-4o-mini") LINE("b", "gpt-9"), &c),
                     -1);
    assert_string_equal(c.error,
                        "line 2: model 'gpt-9' is not served by any upstream");

    assert_int_equal(
        check(LINE("a", "gpt-4o-mini") LINE("a", "gpt-4o-mini"), &c), -1);
    assert_string_equal(c.error, "line 2: custom_id 'a' is used twice");

    const char *mixed =
        LINE("a", "gpt-4o-mini") "{\"custom_id\":\"b\",\"method\":\"POST\","
                                 "\"url\":\"/v1/embeddings\","
                                 "\"body\":{\"model\":\"gpt-4o-mini\"}}\n";
    assert_int_equal(check(mixed, &c), -1);
    assert_string_equal(c.error,
                        "line 2: every line of a batch must use the same url");

    const char *get = "{\"custom_id\":\"a\",\"method\":\"GET\",\"url\":"
                      "\"/v1/chat/completions\",\"body\":{}}";
    assert_int_equal(check(get, &c), -1);
    assert_string_equal(c.error, "line 1: method must be \"POST\"");

    const char *stream = "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":"
                         "\"/v1/chat/completions\",\"body\":{\"model\":"
                         "\"gpt-4o-mini\",\"stream\":true}}";
    assert_int_equal(check(stream, &c), -1);
    assert_string_equal(c.error,
                        "line 1: body.stream must not be true in a batch");

    assert_int_equal(check("\n\n", &c), -1);
    assert_string_equal(c.error, "the file has no requests");
}

static void test_jsonl_line_cap(void **s)
{
    (void)s;
    struct jsonl_check c;
    const char *f = LINE("a", "m") LINE("b", "m") LINE("c", "m");
    assert_int_equal(batch_jsonl_check(f, strlen(f), 2, NULL, NULL, false, &c),
                     -1);
    assert_string_equal(c.error, "the file has more than 2 requests");
    assert_int_equal(batch_jsonl_check(f, strlen(f), 3, NULL, NULL, false, &c),
                     0);
}

/* ---- SQLite states ---- */

static char dir[256];

static struct batch_db *db_with_lines(size_t n)
{
    snprintf(dir, sizeof dir, "/tmp/test_batch_XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[300], err[200];
    snprintf(path, sizeof path, "%s/batch.db", dir);
    struct batch_db *db = batch_db_open(path, err, sizeof err);
    assert_non_null(db);
    struct batch_row row = {.id = "batch_1",
                            .tenant = "t",
                            .status = "validating",
                            .endpoint = "/v1/embeddings",
                            .completion_window = "24h",
                            .input_file_id = "file-1",
                            .created_at = 1,
                            .expires_at = 100};
    assert_int_equal(batch_db_batch_insert(db, &row), 0);
    struct batch_line_in in[8];
    char ids[8][32];
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "c%zu", i);
        in[i] = (struct batch_line_in){ids[i], strlen(ids[i]), "{}", 2};
    }
    assert_int_equal(batch_db_lines_insert(db, "batch_1", in, n, 5), 0);
    return db;
}

static void db_done(struct batch_db *db)
{
    char cmd[300];
    batch_db_close(db);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_claim_then_result_is_final(void **s)
{
    (void)s;
    struct batch_db *db = db_with_lines(3);
    struct batch_row row;
    assert_int_equal(batch_db_batch_get(db, "batch_1", "t", &row), 0);
    assert_string_equal(row.status, "in_progress");
    assert_int_equal(row.total, 3);
    assert_int_equal(row.in_progress_at, 5);
    batch_row_clear(&row);

    struct batch_line l[4];
    assert_int_equal(batch_db_claim(db, "batch_1", 0, 42, l, 2), 2);
    assert_int_equal(l[0].idx, 0);
    assert_int_equal(l[0].attempts, 1);
    assert_string_equal(l[1].custom_id, "c1");
    batch_line_clear(&l[0]);
    batch_line_clear(&l[1]);
    /* Claimed lines are not handed out twice. */
    assert_int_equal(batch_db_claim(db, "batch_1", 0, 42, l, 4), 1);
    assert_int_equal(l[0].idx, 2);
    batch_line_clear(&l[0]);

    assert_int_equal(batch_db_line_result(db, "batch_1", 0, LINE_DONE, 200,
                                          "r0", "{\"x\":0}", 3, 4),
                     0);
    /* A second answer for a stored line changes nothing. */
    assert_int_equal(batch_db_line_result(db, "batch_1", 0, LINE_FAILED, 500,
                                          "r0b", "{\"x\":1}", 0, 0),
                     0);
    struct line_counts c;
    batch_db_line_counts(db, "batch_1", &c);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.failed, 0);
    assert_int_equal(c.inflight, 2);

    /* A restart of the same process id recovers nothing; another pid's
     * in-flight lines go back to pending, the stored one stays done. */
    assert_int_equal(batch_db_recover(db, 42), 0);
    assert_int_equal(batch_db_recover(db, 43), 2);
    batch_db_line_counts(db, "batch_1", &c);
    assert_int_equal(c.pending, 2);
    assert_int_equal(c.done, 1);
    assert_int_equal(batch_db_claim(db, "batch_1", 0, 43, l, 4), 2);
    assert_int_equal(l[0].idx, 1);
    assert_int_equal(l[0].attempts, 2);
    batch_line_clear(&l[0]);
    batch_line_clear(&l[1]);
    db_done(db);
}

static void test_retry_waits_and_refund(void **s)
{
    (void)s;
    struct batch_db *db = db_with_lines(1);
    struct batch_line l[1];
    assert_int_equal(batch_db_claim(db, "batch_1", 0, 1, l, 1), 1);
    batch_line_clear(&l[0]);
    assert_int_equal(batch_db_line_retry(db, "batch_1", 0, 1000, "503", false),
                     0);
    assert_int_equal(batch_db_claim(db, "batch_1", 999, 1, l, 1), 0);
    assert_int_equal(batch_db_claim(db, "batch_1", 1000, 1, l, 1), 1);
    assert_int_equal(l[0].attempts, 2);
    batch_line_clear(&l[0]);
    /* A 429 from the gateway's limits does not use up an attempt. */
    assert_int_equal(batch_db_line_retry(db, "batch_1", 0, 0, "429", true), 0);
    assert_int_equal(batch_db_claim(db, "batch_1", 0, 1, l, 1), 1);
    assert_int_equal(l[0].attempts, 2);
    batch_line_clear(&l[0]);
    db_done(db);
}

static int collect(void *arg, int64_t idx, const char *custom_id, int state,
                   int status, const char *request_id, const char *result)
{
    char *out = arg;
    (void)status;
    (void)request_id;
    (void)result;
    sprintf(out + strlen(out), "%lld:%s:%d ", (long long)idx, custom_id, state);
    return 0;
}

static void test_abandon_and_order(void **s)
{
    (void)s;
    struct batch_db *db = db_with_lines(4);
    struct batch_line l[1];
    assert_int_equal(batch_db_claim(db, "batch_1", 0, 1, l, 1), 1);
    batch_line_clear(&l[0]);
    assert_int_equal(
        batch_db_line_result(db, "batch_1", 0, LINE_DONE, 200, "r", "{}", 0, 0),
        0);
    assert_int_equal(batch_db_claim(db, "batch_1", 0, 1, l, 1), 1);
    batch_line_clear(&l[0]);
    /* Cancel: pending lines fail, the one in flight is left to finish. */
    assert_int_equal(batch_db_lines_abandon(db, "batch_1", "{\"e\":1}"), 0);
    struct line_counts c;
    batch_db_line_counts(db, "batch_1", &c);
    assert_int_equal(c.pending, 0);
    assert_int_equal(c.inflight, 1);
    assert_int_equal(c.failed, 2);
    char out[200] = "";
    assert_int_equal(batch_db_lines_each(db, "batch_1", collect, out), 0);
    assert_string_equal(out, "0:c0:2 2:c2:3 3:c3:3 ");
    db_done(db);
}

static void test_tenant_and_list(void **s)
{
    (void)s;
    struct batch_db *db = db_with_lines(1);
    struct batch_row row;
    assert_int_equal(batch_db_batch_get(db, "batch_1", "other", &row), 1);
    struct batch_file_row f = {.id = "file-a",
                               .tenant = "t",
                               .purpose = "batch",
                               .filename = "a",
                               .bytes = 10};
    assert_int_equal(batch_db_file_insert(db, &f), 0);
    struct batch_file_row g;
    assert_int_equal(batch_db_file_get(db, "file-a", "other", &g), 1);
    assert_int_equal(batch_db_file_delete(db, "file-a", "other"), 1);
    assert_int_equal(batch_db_file_get(db, "file-a", "t", &g), 0);
    assert_int_equal(batch_db_bytes_stored(db), 10);

    struct batch_row b2 = {.id = "batch_2",
                           .tenant = "t",
                           .status = "validating",
                           .endpoint = "/v1/embeddings",
                           .completion_window = "24h",
                           .input_file_id = "file-1"};
    assert_int_equal(batch_db_batch_insert(db, &b2), 0);
    struct batch_row rows[2];
    int more = 0;
    assert_int_equal(batch_db_batch_list(db, "t", NULL, rows, 1, &more), 1);
    assert_string_equal(rows[0].id, "batch_2");
    assert_int_equal(more, 1);
    batch_row_clear(&rows[0]);
    assert_int_equal(batch_db_batch_list(db, "t", "batch_2", rows, 1, &more),
                     1);
    assert_string_equal(rows[0].id, "batch_1");
    assert_int_equal(more, 0);
    batch_row_clear(&rows[0]);
    /* Status moves only from the expected state. */
    assert_int_equal(
        batch_db_batch_move(db, "batch_2", "in_progress", "cancelling", 9), 1);
    assert_int_equal(
        batch_db_batch_move(db, "batch_2", "validating", "cancelling", 9), 0);
    assert_int_equal(batch_db_batch_get(db, "batch_2", "t", &row), 0);
    assert_string_equal(row.status, "cancelling");
    assert_int_equal(row.cancelling_at, 9);
    batch_row_clear(&row);
    db_done(db);
}

/* ---- file store ---- */

static void test_store_atomic(void **s)
{
    (void)s;
    char d[] = "/tmp/test_batch_store_XXXXXX";
    assert_non_null(mkdtemp(d));
    assert_int_equal(batch_store_init(d), 0);
    assert_int_equal(batch_store_write(d, "file-x", "abc\n", 4), 0);
    size_t len = 0;
    char *got = batch_store_read(d, "file-x", &len);
    assert_int_equal(len, 4);
    assert_string_equal(got, "abc\n");
    free(got);
    char tmp[300];
    struct stat st;
    snprintf(tmp, sizeof tmp, "%s/files/file-x.tmp", d);
    assert_int_not_equal(stat(tmp, &st), 0);
    assert_int_equal(batch_store_remove(d, "file-x"), 0);
    assert_null(batch_store_read(d, "file-x", &len));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    assert_int_equal(system(cmd), 0);
}

/* ---- the config table, as the core validates it ---- */

const struct sluice_plugin *sluice_plugin_v1(void);

static void test_config_errors_and_sdk_check(void **s)
{
    (void)s;
    const struct sluice_plugin *p = sluice_plugin_v1();
    struct sluice_test_host *t = sluice_test_host_new();
    assert_null(sluice_test_open(t, p, "{}"));
    assert_non_null(strstr(sluice_test_open_error(t), "dir"));
    assert_null(
        sluice_test_open(t, p, "{\"dir\": \"/tmp\", \"concurrency\": 0}"));
    assert_non_null(strstr(sluice_test_open_error(t), "config.concurrency"));
    assert_null(sluice_test_open(t, p,
                                 "{\"dir\": \"/tmp\", \"max_storage_bytes\": "
                                 "\"lots\"}"));
    assert_non_null(strstr(sluice_test_open_error(t), "max_storage_bytes"));
    /* A host without routes and self_submit (SDK 1.0) is refused with a
     * sentence, not a crash. */
    sluice_test_host_pretend_1_0(t);
    assert_null(sluice_test_open(t, p, "{\"dir\": \"/tmp\"}"));
    assert_non_null(strstr(sluice_test_open_error(t), "SDK 1.1"));
    sluice_test_host_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonl_valid_with_blank_lines),
        cmocka_unit_test(test_jsonl_errors_name_the_line),
        cmocka_unit_test(test_jsonl_line_cap),
        cmocka_unit_test(test_claim_then_result_is_final),
        cmocka_unit_test(test_retry_waits_and_refund),
        cmocka_unit_test(test_abandon_and_order),
        cmocka_unit_test(test_tenant_and_list),
        cmocka_unit_test(test_store_atomic),
        cmocka_unit_test(test_config_errors_and_sdk_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
