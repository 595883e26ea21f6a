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
#include "batch_forward_wire.h"
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

/* ---- forwarding: the pure parts ---- */

static void test_forward_status_mapping(void **s)
{
    (void)s;
    static const char *const cases[][3] = {
        /* provider, local, shown locally */
        {"validating", "validating", "validating"},
        {"in_progress", "validating", "in_progress"},
        {"finalizing", "in_progress", "finalizing"},
        /* ended at the provider: finalizing until its files are here */
        {"completed", "in_progress", "finalizing"},
        {"expired", "in_progress", "finalizing"},
        {"cancelled", "in_progress", "finalizing"},
        /* a local cancel is not undone by a poll that predates it */
        {"in_progress", "cancelling", "cancelling"},
        {"validating", "cancelling", "cancelling"},
        {"completed", "cancelling", "cancelling"},
        {"cancelling", "in_progress", "cancelling"},
        {"failed", "in_progress", "failed"},
        {"failed", "cancelling", "failed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = batch_forward_local_status(cases[i][0], cases[i][1]);
        assert_non_null(got);
        assert_string_equal(got, cases[i][2]);
    }
    assert_null(batch_forward_local_status("paused", "in_progress"));
    assert_true(batch_forward_ended("completed"));
    assert_true(batch_forward_ended("expired"));
    assert_true(batch_forward_ended("cancelled"));
    assert_false(batch_forward_ended("cancelling"));
    assert_false(batch_forward_ended("failed"));
}

static void test_forward_multipart_body(void **s)
{
    (void)s;
    char ctype[128];
    size_t len = 0;
    /* The data holds the first boundary the nonce gives: another one. */
    const char *data = "{\"a\":\"--sluice-batch-0000000000000001\"}\n";
    char *body = batch_forward_multipart(1, "batch_x.jsonl", data, strlen(data),
                                         ctype, sizeof ctype, &len);
    assert_non_null(body);
    const char *bnd = strstr(ctype, "boundary=");
    assert_non_null(bnd);
    bnd += 9;
    assert_string_not_equal(bnd, "sluice-batch-0000000000000001");
    assert_null(memmem(data, strlen(data), bnd, strlen(bnd)));
    char want[512];
    int n = snprintf(want, sizeof want,
                     "--%s\r\nContent-Disposition: form-data; "
                     "name=\"purpose\"\r\n\r\nbatch\r\n--%s\r\n"
                     "Content-Disposition: form-data; name=\"file\"; "
                     "filename=\"batch_x.jsonl\"\r\nContent-Type: "
                     "application/jsonl\r\n\r\n%s\r\n--%s--\r\n",
                     bnd, bnd, data, bnd);
    assert_int_equal(len, (size_t)n);
    assert_memory_equal(body, want, len);
    free(body);
}

static void test_forward_reads_provider_answers(void **s)
{
    (void)s;
    const char *b =
        "{\"id\":\"batch_p1\",\"status\":\"in_progress\",\"output_file_id\""
        ":null,\"error_file_id\":\"file-e\",\"request_counts\":{\"total\":"
        "7,\"completed\":3,\"failed\":1}}";
    struct batch_forward_row f = {0};
    int64_t total = 0;
    assert_true(batch_forward_read_batch(b, strlen(b), &f, &total));
    assert_string_equal(f.batch_id, "batch_p1");
    assert_string_equal(f.status, "in_progress");
    assert_string_equal(f.output_id, "");
    assert_string_equal(f.error_id, "file-e");
    assert_int_equal(f.completed, 3);
    assert_int_equal(f.failed, 1);
    assert_int_equal(total, 7);
    assert_false(batch_forward_read_batch("{\"error\":{}}", 12, &f, &total));

    char id[96];
    const char *up = "{\"id\":\"file-abc\",\"object\":\"file\"}";
    assert_true(batch_forward_read_id(up, strlen(up), id, sizeof id));
    assert_string_equal(id, "file-abc");
    /* An id that would change the path of the next call is refused. */
    const char *evil = "{\"id\":\"../admin\"}";
    assert_false(batch_forward_read_id(evil, strlen(evil), id, sizeof id));

    char why[300];
    const char *e = "{\"error\":{\"message\":\"bad file\"}}";
    batch_forward_reason("batch creation", "openai", 400, e, strlen(e), why,
                         sizeof why);
    assert_string_equal(why, "upstream 'openai' refused the batch creation "
                             "(status 400): bad file");
    batch_forward_reason("batch creation", "openai", 0, NULL, 0, why,
                         sizeof why);
    assert_string_equal(why,
                        "upstream 'openai' did not answer the batch creation");

    /* Finding a lost upload or creation in the provider's lists. */
    const char *files = "{\"data\":[{\"id\":\"file-1\",\"filename\":"
                        "\"batch_b.jsonl\"},{\"id\":\"file-2\",\"filename\":"
                        "\"batch_a.jsonl\"}]}";
    assert_true(batch_forward_find_file(files, strlen(files), "batch_a.jsonl",
                                        id, sizeof id));
    assert_string_equal(id, "file-2");
    assert_false(batch_forward_find_file(files, strlen(files), "batch_c.jsonl",
                                         id, sizeof id));
    const char *list =
        "{\"data\":[{\"id\":\"p1\",\"status\":\"completed\",\"metadata\":{"
        "\"sluice_batch_id\":\"batch_b\"}},{\"id\":\"p2\",\"status\":"
        "\"in_progress\",\"metadata\":{\"sluice_batch_id\":\"batch_a\"}}]}";
    char *one = batch_forward_find_batch(list, strlen(list), "batch_a");
    assert_non_null(one);
    assert_true(batch_forward_read_batch(one, strlen(one), &f, &total));
    assert_string_equal(f.batch_id, "p2");
    free(one);
    assert_null(batch_forward_find_batch(list, strlen(list), "batch_c"));

    const char *out = "{\"response\":{\"body\":{\"usage\":{\"prompt_tokens\":5,"
                      "\"completion_tokens\":2}}}}\n"
                      "{\"response\":{\"body\":{\"usage\":{\"input_tokens\":1,"
                      "\"output_tokens\":1}}}}\n";
    int64_t pt = 0, ct = 0;
    batch_forward_usage(out, strlen(out), &pt, &ct);
    assert_int_equal(pt, 6);
    assert_int_equal(ct, 3);
}

/* A forwarded batch has no lines: its counts and usage are the
 * provider's, stored with its ids; the file id is set once. */
static void test_forward_db_counts_and_ids(void **s)
{
    (void)s;
    struct batch_db *db = db_with_lines(0);
    assert_int_equal(batch_db_forward_start(db, "batch_1", "prov", 4), 0);
    struct batch_forward_row f;
    assert_int_equal(batch_db_forward_get(db, "batch_1", &f), 0);
    assert_string_equal(f.upstream, "prov");
    assert_string_equal(f.file_id, "");
    assert_int_equal(batch_db_forward_get(db, "batch_2", &f), 1);
    assert_int_equal(batch_db_forward_file(db, "batch_1", "file-p"), 0);
    assert_int_equal(batch_db_forward_file(db, "batch_1", "file-q"), 0);
    assert_int_equal(batch_db_forward_get(db, "batch_1", &f), 0);
    assert_string_equal(f.file_id, "file-p");
    snprintf(f.batch_id, sizeof f.batch_id, "batch_p");
    snprintf(f.status, sizeof f.status, "in_progress");
    f.completed = 2;
    f.failed = 1;
    assert_int_equal(batch_db_forward_mirror(db, "batch_1", &f, 0), 0);
    assert_int_equal(batch_db_forward_usage(db, "batch_1", 10, 4), 0);
    struct batch_row row;
    assert_int_equal(batch_db_batch_get(db, "batch_1", "t", &row), 0);
    assert_int_equal(row.total, 4);
    assert_int_equal(row.completed, 2);
    assert_int_equal(row.failed, 1);
    assert_int_equal(row.prompt_tokens, 10);
    assert_int_equal(row.completion_tokens, 4);
    batch_row_clear(&row);
    struct batch_forward_row g;
    assert_int_equal(batch_db_forward_get(db, "batch_1", &g), 0);
    assert_string_equal(g.batch_id, "batch_p");
    assert_string_equal(g.file_id, "file-p");
    assert_false(g.cancel_sent);

    /* One call at a time: another instance of this process waits, a
     * claim left by another process (gone) is taken over. */
    assert_int_equal(batch_db_forward_claim(db, "batch_1", "7:a", "7"), 0);
    assert_int_equal(batch_db_forward_claim(db, "batch_1", "7:a", "7"), 0);
    assert_int_equal(batch_db_forward_claim(db, "batch_1", "7:b", "7"), 1);
    assert_int_equal(batch_db_forward_release(db, "batch_1", "7:b"), 0);
    assert_int_equal(batch_db_forward_claim(db, "batch_1", "7:b", "7"), 1);
    assert_int_equal(batch_db_forward_claim(db, "batch_1", "71:c", "71"), 0);
    assert_int_equal(batch_db_forward_claim(db, "batch_1", "7:b", "7"), 0);
    assert_int_equal(batch_db_forward_release(db, "batch_1", "7:b"), 0);
    assert_int_equal(batch_db_forward_claim(db, "batch_1", "7:a", "7"), 0);
    db_done(db);
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
        cmocka_unit_test(test_forward_status_mapping),
        cmocka_unit_test(test_forward_multipart_body),
        cmocka_unit_test(test_forward_reads_provider_answers),
        cmocka_unit_test(test_forward_db_counts_and_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
