/* Threads sharing one batch_db (the workers, the admin thread and the
 * result writer do): the connection keeps its prepared statements, so
 * each must be held by one thread from bind to reset. Four threads claim
 * and store lines, read counts and batch rows at once; every line ends
 * done exactly once with its own result. The writer thread commits every
 * result handed to it by the time it is stopped. Runs under TSan (label
 * concurrency). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "batch_db.h"
#include "batch_writer.h"

enum { LINES = 400, THREADS = 4 };

static struct batch_db *db;

static void *worker(void *arg)
{
    intptr_t me = (intptr_t)arg;
    for (;;) {
        struct batch_line l[2];
        int n = batch_db_claim(db, "batch_t", 0, 7, l, 2);
        if (n <= 0)
            return (void *)(intptr_t)n;
        for (int i = 0; i < n; i++) {
            char result[64], rid[32];
            snprintf(result, sizeof result, "{\"line\":%lld}",
                     (long long)l[i].idx);
            snprintf(rid, sizeof rid, "t%d", (int)me);
            if (batch_db_line_result(db, "batch_t", l[i].idx, LINE_DONE, 200,
                                     rid, result, 1, 2) != 0)
                return (void *)-1;
            batch_line_clear(&l[i]);
        }
        struct line_counts c;
        struct batch_row row;
        if (batch_db_line_counts(db, "batch_t", &c) != 0 ||
            batch_db_batch_get(db, "batch_t", "t", &row) != 0)
            return (void *)-1;
        batch_row_clear(&row);
    }
}

static int check_line(void *arg, int64_t idx, const char *custom_id, int state,
                      int status, const char *request_id, const char *result)
{
    int *seen = arg;
    char want[64], cid[32];
    snprintf(want, sizeof want, "{\"line\":%lld}", (long long)idx);
    snprintf(cid, sizeof cid, "c%lld", (long long)idx);
    (void)request_id;
    if (idx < 0 || idx >= LINES || state != LINE_DONE || status != 200 ||
        strcmp(result, want) != 0 || strcmp(custom_id, cid) != 0)
        return -1;
    seen[idx]++;
    return 0;
}

static char dir[64];

static void open_with_lines(void)
{
    char path[96], err[200];
    snprintf(dir, sizeof dir, "/tmp/batch-db-threads-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/b.db", dir);
    db = batch_db_open(path, err, sizeof err);
    assert_non_null(db);
    struct batch_row row = {.id = "batch_t",
                            .tenant = "t",
                            .status = "validating",
                            .endpoint = "/v1/embeddings",
                            .completion_window = "24h",
                            .input_file_id = "file-1"};
    assert_int_equal(batch_db_batch_insert(db, &row), 0);
    static struct batch_line_in in[LINES];
    static char ids[LINES][16];
    for (int i = 0; i < LINES; i++) {
        snprintf(ids[i], sizeof ids[i], "c%d", i);
        in[i] = (struct batch_line_in){ids[i], strlen(ids[i]), "{}", 2};
    }
    assert_int_equal(batch_db_lines_insert(db, "batch_t", in, LINES, 1), 0);
}

static void close_and_remove(void)
{
    batch_db_close(db);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_threads_share_statements(void **s)
{
    (void)s;
    open_with_lines();
    struct batch_row row;
    pthread_t t[THREADS];
    for (intptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)i), 0);
    for (int i = 0; i < THREADS; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_int_equal((intptr_t)rc, 0);
    }
    int seen[LINES] = {0};
    assert_int_equal(batch_db_lines_each(db, "batch_t", check_line, seen), 0);
    for (int i = 0; i < LINES; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(batch_db_batch_get(db, "batch_t", "t", &row), 0);
    assert_int_equal(row.completed, LINES);
    assert_int_equal(row.prompt_tokens, LINES);
    assert_int_equal(row.completion_tokens, 2 * LINES);
    batch_row_clear(&row);
    close_and_remove();
}

/* The runner's side: every line claimed, then all results handed to the
 * writer while another connection holds the database's write lock, so
 * they are still queued (the writer stuck in its first commit) when the
 * lock goes and the writer is stopped at once. Stopping commits every one:
 * a clean shutdown loses no answer. */
static void test_writer_commits_everything_by_stop(void **s)
{
    (void)s;
    open_with_lines();
    struct batch_writer *w = batch_writer_start(db);
    assert_non_null(w);
    struct batch_line l[LINES];
    assert_int_equal(batch_db_claim(db, "batch_t", 0, 7, l, LINES), LINES);
    char path[96];
    snprintf(path, sizeof path, "%s/b.db", dir);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
    {
        int n = LINES;
        for (int i = 0; i < n; i++) {
            struct batch_line_result *r = calloc(1, sizeof *r);
            assert_non_null(r);
            snprintf(r->batch_id, sizeof r->batch_id, "batch_t");
            r->idx = l[i].idx;
            r->state = LINE_DONE;
            r->status = 200;
            snprintf(r->request_id, sizeof r->request_id, "w");
            r->result_json = malloc(64);
            snprintf(r->result_json, 64, "{\"line\":%lld}",
                     (long long)l[i].idx);
            r->prompt_tokens = 1;
            r->completion_tokens = 2;
            batch_writer_put(w, r);
            batch_line_clear(&l[i]);
        }
    }
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(other);
    batch_writer_stop(w);
    int seen[LINES] = {0};
    assert_int_equal(batch_db_lines_each(db, "batch_t", check_line, seen), 0);
    for (int i = 0; i < LINES; i++)
        assert_int_equal(seen[i], 1);
    struct line_counts c;
    assert_int_equal(batch_db_line_counts(db, "batch_t", &c), 0);
    assert_int_equal(c.inflight, 0);
    assert_int_equal(c.done, LINES);
    close_and_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_share_statements),
        cmocka_unit_test(test_writer_commits_everything_by_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
