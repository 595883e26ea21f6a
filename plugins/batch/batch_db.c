/* SQLite state of the batch plugin (see batch_db.h). Statements are
 * prepared once per connection and kept (parsing one cost more than
 * running it). The plugin mutex (recursive) is held from taking a cached
 * statement to resetting it, so one statement is never shared by two
 * threads, and around each multi-statement transaction so it is atomic
 * against the other threads. */
#include "batch_db.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STMT_CACHE = 64 };

struct cached_stmt {
    uint64_t hash;
    char *sql;
    sqlite3_stmt *s;
};

struct batch_db {
    sqlite3 *db;
    pthread_mutex_t mu; /* recursive */
    struct cached_stmt cache[STMT_CACHE];
    int n_cache;
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS files("
    " id TEXT PRIMARY KEY, tenant TEXT NOT NULL, purpose TEXT NOT NULL,"
    " filename TEXT NOT NULL, bytes INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS batches("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,"
    " tenant TEXT NOT NULL, user TEXT, tier TEXT, key TEXT,"
    " input_file_id TEXT NOT NULL, endpoint TEXT NOT NULL,"
    " completion_window TEXT NOT NULL, status TEXT NOT NULL,"
    " output_file_id TEXT, error_file_id TEXT,"
    " created_at INTEGER, in_progress_at INTEGER, finalizing_at INTEGER,"
    " completed_at INTEGER, failed_at INTEGER, expired_at INTEGER,"
    " cancelling_at INTEGER, cancelled_at INTEGER, expires_at INTEGER,"
    " metadata TEXT, errors TEXT, total INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS lines("
    " batch_id TEXT NOT NULL, idx INTEGER NOT NULL,"
    " custom_id TEXT NOT NULL, body TEXT NOT NULL,"
    " state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
    " next_ms INTEGER NOT NULL DEFAULT 0, owner_pid INTEGER,"
    " status INTEGER, request_id TEXT, result TEXT, last_error TEXT,"
    " prompt_tokens INTEGER DEFAULT 0, completion_tokens INTEGER DEFAULT 0,"
    " PRIMARY KEY(batch_id, idx));"
    /* The claim walks a batch's pending lines in idx order and skips the
     * ones not due yet (retries in backoff, few) inside the index: no
     * sort of every pending line per claim. The token columns make the
     * counts and sums of a batch's GET read the index, not each row. */
    "DROP INDEX IF EXISTS lines_due;"
    "CREATE INDEX IF NOT EXISTS lines_pending ON lines(batch_id, state, idx,"
    " next_ms, prompt_tokens, completion_tokens);"
    "CREATE TABLE IF NOT EXISTS forwards("
    " batch_id TEXT PRIMARY KEY, upstream TEXT NOT NULL,"
    " provider_file_id TEXT, provider_batch_id TEXT, provider_status TEXT,"
    " completed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,"
    " provider_output_id TEXT, provider_error_id TEXT,"
    " cancel_sent INTEGER NOT NULL DEFAULT 0,"
    " prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    " completion_tokens INTEGER NOT NULL DEFAULT 0, call_owner TEXT,"
    " upload_sent INTEGER NOT NULL DEFAULT 0,"
    " create_sent INTEGER NOT NULL DEFAULT 0);";

struct batch_db *batch_db_open(const char *path, char *err, size_t errlen)
{
    struct batch_db *d = calloc(1, sizeof *d);
    char *msg = NULL;
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&d->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    if (sqlite3_open_v2(path, &d->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(d->db, 5000) != SQLITE_OK ||
        sqlite3_exec(d->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path,
                 msg ? msg : sqlite3_errmsg(d->db));
        sqlite3_free(msg);
        batch_db_close(d);
        return NULL;
    }
    return d;
}

void batch_db_close(struct batch_db *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n_cache; i++) {
        sqlite3_finalize(d->cache[i].s);
        free(d->cache[i].sql);
    }
    sqlite3_close(d->db);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

static uint64_t sql_hash(const char *sql)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

/* The connection's statement for `sql`, prepared on first use. Takes the
 * plugin mutex; done() (or run()) resets the statement and releases it.
 * NULL (mutex not held) when it does not prepare. */
static sqlite3_stmt *prep(struct batch_db *d, const char *sql)
{
    uint64_t h = sql_hash(sql);
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->n_cache; i++)
        if (d->cache[i].hash == h && strcmp(d->cache[i].sql, sql) == 0)
            return d->cache[i].s;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v3(d->db, sql, -1,
                           d->n_cache < STMT_CACHE ? SQLITE_PREPARE_PERSISTENT
                                                   : 0,
                           &s, NULL) != SQLITE_OK) {
        pthread_mutex_unlock(&d->mu);
        return NULL;
    }
    char *copy = d->n_cache < STMT_CACHE ? strdup(sql) : NULL;
    if (copy)
        d->cache[d->n_cache++] = (struct cached_stmt){h, copy, s};
    return s;
}

/* Gives a statement from prep() back: reset for its next use (or
 * finalized when the cache was full), mutex released. */
static void done(struct batch_db *d, sqlite3_stmt *s)
{
    if (!s)
        return;
    bool cached = false;
    for (int i = d->n_cache - 1; i >= 0 && !cached; i--)
        cached = d->cache[i].s == s;
    if (cached) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    } else {
        sqlite3_finalize(s);
    }
    pthread_mutex_unlock(&d->mu);
}

static void bind_texts(sqlite3_stmt *s, int from, const char *const *v, int n)
{
    for (int i = 0; i < n; i++) {
        if (v[i])
            sqlite3_bind_text(s, from + i, v[i], -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(s, from + i);
    }
}

/* Runs a statement from prep() and gives it back; 0 ok, -1 error.
 * sqlite3_changes() stays readable while the caller holds the mutex. */
static int run(struct batch_db *d, sqlite3_stmt *s)
{
    if (!s)
        return -1;
    int rc = sqlite3_step(s);
    done(d, s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static int exec(struct batch_db *d, const char *sql)
{
    return sqlite3_exec(d->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static void col_copy(sqlite3_stmt *s, int c, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, c);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static char *col_dup(sqlite3_stmt *s, int c)
{
    const unsigned char *t = sqlite3_column_text(s, c);
    return t ? strdup((const char *)t) : NULL;
}

int64_t batch_db_recover(struct batch_db *d, int64_t pid)
{
    sqlite3_stmt *s = prep(d, "UPDATE lines SET state=0 WHERE state=1 AND "
                              "(owner_pid IS NULL OR owner_pid<>?)");
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, pid);
    pthread_mutex_lock(&d->mu);
    int rc = run(d, s);
    int64_t n = rc == 0 ? sqlite3_changes(d->db) : -1;
    pthread_mutex_unlock(&d->mu);
    return n;
}

/* ---- files ---- */

int batch_db_file_insert(struct batch_db *d, const struct batch_file_row *f)
{
    sqlite3_stmt *s = prep(d, "INSERT OR REPLACE INTO files(id,tenant,purpose,"
                              "filename,bytes,created_at) VALUES(?,?,?,?,?,?)");
    if (!s)
        return -1;
    const char *t[] = {f->id, f->tenant, f->purpose, f->filename};
    bind_texts(s, 1, t, 4);
    sqlite3_bind_int64(s, 5, f->bytes);
    sqlite3_bind_int64(s, 6, f->created_at);
    return run(d, s);
}

static void file_from_row(sqlite3_stmt *s, struct batch_file_row *out)
{
    col_copy(s, 0, out->id, sizeof out->id);
    col_copy(s, 1, out->tenant, sizeof out->tenant);
    col_copy(s, 2, out->purpose, sizeof out->purpose);
    col_copy(s, 3, out->filename, sizeof out->filename);
    out->bytes = sqlite3_column_int64(s, 4);
    out->created_at = sqlite3_column_int64(s, 5);
}

int batch_db_file_get(struct batch_db *d, const char *id, const char *tenant,
                      struct batch_file_row *out)
{
    sqlite3_stmt *s = prep(d, "SELECT id,tenant,purpose,filename,bytes,"
                              "created_at FROM files WHERE id=? AND tenant=?");
    if (!s)
        return -1;
    const char *t[] = {id, tenant};
    bind_texts(s, 1, t, 2);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        file_from_row(s, out);
    done(d, s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

int batch_db_file_delete(struct batch_db *d, const char *id, const char *tenant)
{
    sqlite3_stmt *s = prep(d, "DELETE FROM files WHERE id=? AND tenant=?");
    if (!s)
        return -1;
    const char *t[] = {id, tenant};
    bind_texts(s, 1, t, 2);
    pthread_mutex_lock(&d->mu);
    int rc = run(d, s);
    int changed = sqlite3_changes(d->db);
    pthread_mutex_unlock(&d->mu);
    return rc < 0 ? -1 : changed ? 0 : 1;
}

int64_t batch_db_bytes_stored(struct batch_db *d)
{
    sqlite3_stmt *s = prep(d, "SELECT COALESCE(SUM(bytes),0) FROM files");
    if (!s)
        return -1;
    int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    done(d, s);
    return v;
}

int batch_db_file_list(struct batch_db *d, const char *tenant,
                       struct batch_file_row *out, int max)
{
    sqlite3_stmt *s = prep(d, "SELECT id,tenant,purpose,filename,bytes,"
                              "created_at FROM files WHERE tenant=? "
                              "ORDER BY created_at DESC, id LIMIT ?");
    if (!s)
        return -1;
    bind_texts(s, 1, &tenant, 1);
    sqlite3_bind_int(s, 2, max);
    int n = 0;
    while (n < max && sqlite3_step(s) == SQLITE_ROW)
        file_from_row(s, &out[n++]);
    done(d, s);
    return n;
}

/* ---- batches ---- */

void batch_row_clear(struct batch_row *b)
{
    free(b->metadata);
    free(b->errors);
    b->metadata = b->errors = NULL;
}

int batch_db_batch_insert(struct batch_db *d, const struct batch_row *b)
{
    sqlite3_stmt *s = prep(
        d, "INSERT INTO batches(id,tenant,user,tier,key,input_file_id,"
           "endpoint,completion_window,status,metadata,created_at,expires_at)"
           " VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
    if (!s)
        return -1;
    const char *t[] = {
        b->id,     b->tenant,        b->user,     b->tier,
        b->key,    b->input_file_id, b->endpoint, b->completion_window,
        b->status, b->metadata};
    bind_texts(s, 1, t, 10);
    sqlite3_bind_int64(s, 11, b->created_at);
    sqlite3_bind_int64(s, 12, b->expires_at);
    return run(d, s);
}

/* A forwarded batch has no lines: its counts are the provider's. */
#define FWD_COL(c)                                                             \
    "COALESCE((SELECT f." c " FROM forwards f WHERE f.batch_id=b.id),0)"
#define BATCH_COLS                                                             \
    "b.id,b.tenant,b.user,b.tier,b.key,b.input_file_id,b.endpoint,"            \
    "b.completion_window,b.status,b.output_file_id,b.error_file_id,"           \
    "b.created_at,b.in_progress_at,b.finalizing_at,b.completed_at,"            \
    "b.failed_at,b.expired_at,b.cancelling_at,b.cancelled_at,b.expires_at,"    \
    "b.metadata,b.errors,b.total,"                                             \
    "(SELECT COUNT(*) FROM lines l WHERE l.batch_id=b.id AND l.state=2)"       \
    "+" FWD_COL(                                                               \
        "completed") ","                                                       \
                     "(SELECT COUNT(*) FROM lines l WHERE l.batch_id=b.id "    \
                     "AND l.state=3)"                                          \
                     "+" FWD_COL(                                              \
                         "failed") ","                                         \
                                   "(SELECT COALESCE(SUM(prompt_tokens),0) "   \
                                   "FROM lines l WHERE "                       \
                                   "l.batch_id=b.id)+" FWD_COL(                \
                                       "prompt_tokens") ","                    \
                                                        "(SELECT "             \
                                                        "COALESCE(SUM("        \
                                                        "completion_tokens),"  \
                                                        "0) FROM lines l "     \
                                                        "WHERE "               \
                                                        "l.batch_id=b.id)"     \
                                                        "+" FWD_COL(           \
                                                            "completion_"      \
                                                            "tokens")

static void batch_from_row(sqlite3_stmt *s, struct batch_row *b)
{
    memset(b, 0, sizeof *b);
    col_copy(s, 0, b->id, sizeof b->id);
    col_copy(s, 1, b->tenant, sizeof b->tenant);
    col_copy(s, 2, b->user, sizeof b->user);
    col_copy(s, 3, b->tier, sizeof b->tier);
    col_copy(s, 4, b->key, sizeof b->key);
    col_copy(s, 5, b->input_file_id, sizeof b->input_file_id);
    col_copy(s, 6, b->endpoint, sizeof b->endpoint);
    col_copy(s, 7, b->completion_window, sizeof b->completion_window);
    col_copy(s, 8, b->status, sizeof b->status);
    col_copy(s, 9, b->output_file_id, sizeof b->output_file_id);
    col_copy(s, 10, b->error_file_id, sizeof b->error_file_id);
    int64_t *ts[] = {&b->created_at,    &b->in_progress_at, &b->finalizing_at,
                     &b->completed_at,  &b->failed_at,      &b->expired_at,
                     &b->cancelling_at, &b->cancelled_at,   &b->expires_at};
    for (int i = 0; i < 9; i++)
        *ts[i] = sqlite3_column_int64(s, 11 + i);
    b->metadata = col_dup(s, 20);
    b->errors = col_dup(s, 21);
    b->total = sqlite3_column_int64(s, 22);
    b->completed = sqlite3_column_int64(s, 23);
    b->failed = sqlite3_column_int64(s, 24);
    b->prompt_tokens = sqlite3_column_int64(s, 25);
    b->completion_tokens = sqlite3_column_int64(s, 26);
}

#define BATCH_COLS_LIGHT                                                       \
    "b.id,b.tenant,b.user,b.tier,b.key,b.input_file_id,b.endpoint,"            \
    "b.completion_window,b.status,b.output_file_id,b.error_file_id,"           \
    "b.created_at,b.in_progress_at,b.finalizing_at,b.completed_at,"            \
    "b.failed_at,b.expired_at,b.cancelling_at,b.cancelled_at,b.expires_at,"    \
    "NULL,NULL,b.total,0,0,0,0"

int batch_db_batch_state(struct batch_db *d, const char *id,
                         struct batch_row *out)
{
    sqlite3_stmt *s =
        prep(d, "SELECT " BATCH_COLS_LIGHT " FROM batches b WHERE b.id=?");
    if (!s)
        return -1;
    bind_texts(s, 1, &id, 1);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        batch_from_row(s, out);
    done(d, s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

int batch_db_batch_get(struct batch_db *d, const char *id, const char *tenant,
                       struct batch_row *out)
{
    sqlite3_stmt *s =
        prep(d, tenant ? "SELECT " BATCH_COLS
                         " FROM batches b WHERE b.id=? AND b.tenant=?"
                       : "SELECT " BATCH_COLS " FROM batches b WHERE b.id=?");
    if (!s)
        return -1;
    const char *t[] = {id, tenant};
    bind_texts(s, 1, t, tenant ? 2 : 1);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        batch_from_row(s, out);
    done(d, s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

int batch_db_batch_list(struct batch_db *d, const char *tenant,
                        const char *after, struct batch_row *out, int max,
                        int *more)
{
    sqlite3_stmt *s = prep(
        d, "SELECT " BATCH_COLS " FROM batches b WHERE b.tenant=?1 AND "
           "(?2 IS NULL OR b.seq < (SELECT seq FROM batches WHERE id=?2 AND "
           "tenant=?1)) ORDER BY b.seq DESC LIMIT ?3");
    if (!s)
        return -1;
    const char *t[] = {tenant, after};
    bind_texts(s, 1, t, 2);
    sqlite3_bind_int(s, 3, max + 1);
    int n = 0;
    *more = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (n == max) {
            *more = 1;
            break;
        }
        batch_from_row(s, &out[n++]);
    }
    done(d, s);
    return n;
}

int batch_db_batch_active(struct batch_db *d, char (*ids)[40], int max)
{
    sqlite3_stmt *s = prep(
        d, "SELECT id FROM batches WHERE status IN ('validating',"
           "'in_progress','finalizing','cancelling') ORDER BY seq LIMIT ?");
    if (!s)
        return -1;
    sqlite3_bind_int(s, 1, max);
    int n = 0;
    while (n < max && sqlite3_step(s) == SQLITE_ROW)
        col_copy(s, 0, ids[n++], 40);
    done(d, s);
    return n;
}

/* The timestamp column of a status, or NULL (validating has none). */
static const char *stamp_col(const char *status)
{
    static const char *const known[] = {
        "in_progress", "finalizing", "completed", "failed",
        "expired",     "cancelling", "cancelled", NULL};
    for (int i = 0; known[i]; i++)
        if (strcmp(status, known[i]) == 0)
            return known[i];
    return NULL;
}

int batch_db_batch_move(struct batch_db *d, const char *id, const char *from,
                        const char *status, int64_t now_s)
{
    char sql[200];
    const char *col = stamp_col(status);
    snprintf(sql, sizeof sql,
             "UPDATE batches SET status=?1%s%s%s WHERE id=?2 AND "
             "(?3 IS NULL OR status=?3)",
             col ? ", " : "", col ? col : "", col ? "_at=?4" : "");
    sqlite3_stmt *s = prep(d, sql);
    if (!s)
        return -1;
    const char *t[] = {status, id, from};
    bind_texts(s, 1, t, 3);
    if (col)
        sqlite3_bind_int64(s, 4, now_s);
    pthread_mutex_lock(&d->mu);
    int rc = run(d, s);
    int changed = sqlite3_changes(d->db);
    pthread_mutex_unlock(&d->mu);
    return rc < 0 ? -1 : changed ? 0 : 1;
}

int batch_db_batch_fail(struct batch_db *d, const char *id,
                        const char *errors_json, int64_t now_s)
{
    sqlite3_stmt *s = prep(d, "UPDATE batches SET status='failed',"
                              "failed_at=?,errors=? WHERE id=?");
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, now_s);
    const char *t[] = {errors_json, id};
    bind_texts(s, 2, t, 2);
    return run(d, s);
}

int batch_db_lines_insert(struct batch_db *d, const char *batch_id,
                          const struct batch_line_in *lines, size_t n,
                          int64_t now_s)
{
    int rc = 0;
    pthread_mutex_lock(&d->mu);
    if (exec(d, "BEGIN IMMEDIATE") != 0) {
        pthread_mutex_unlock(&d->mu);
        return -1;
    }
    /* A restart during validating inserts again: start from nothing. */
    sqlite3_stmt *del = prep(d, "DELETE FROM lines WHERE batch_id=?");
    if (del) {
        bind_texts(del, 1, &batch_id, 1);
        rc = run(d, del);
    } else {
        rc = -1;
    }
    sqlite3_stmt *s = rc ? NULL
                         : prep(d, "INSERT INTO lines(batch_id,idx,custom_id,"
                                   "body) VALUES(?,?,?,?)");
    for (size_t i = 0; s && rc == 0 && i < n; i++) {
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, batch_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (int64_t)i);
        sqlite3_bind_text(s, 3, lines[i].custom_id, (int)lines[i].custom_id_len,
                          SQLITE_STATIC);
        sqlite3_bind_text(s, 4, lines[i].body, (int)lines[i].body_len,
                          SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = -1;
    }
    if (s)
        done(d, s);
    else
        rc = -1;
    if (rc == 0) {
        sqlite3_stmt *u = prep(d, "UPDATE batches SET status='in_progress',"
                                  "in_progress_at=?,total=? WHERE id=? AND "
                                  "status='validating'");
        if (u) {
            sqlite3_bind_int64(u, 1, now_s);
            sqlite3_bind_int64(u, 2, (int64_t)n);
            bind_texts(u, 3, &batch_id, 1);
        }
        rc = run(d, u);
    }
    rc = exec(d, rc == 0 ? "COMMIT" : "ROLLBACK") == 0 ? rc : -1;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int batch_db_batch_finish(struct batch_db *d, const char *id,
                          const char *status, const char *output_file_id,
                          const char *error_file_id, int64_t now_s)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "UPDATE batches SET status=?1,%s_at=?2,output_file_id=?3,"
             "error_file_id=?4 WHERE id=?5",
             stamp_col(status) ? stamp_col(status) : "completed");
    sqlite3_stmt *s = prep(d, sql);
    if (!s)
        return -1;
    sqlite3_bind_text(s, 1, status, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, now_s);
    const char *t[] = {output_file_id, error_file_id, id};
    bind_texts(s, 3, t, 3);
    return run(d, s);
}

/* ---- lines ---- */

void batch_line_clear(struct batch_line *l)
{
    free(l->body);
    l->body = NULL;
}

int batch_db_claim(struct batch_db *d, const char *batch_id, int64_t now_ms,
                   int64_t pid, struct batch_line *out, int max)
{
    int n = 0, rc = 0;
    pthread_mutex_lock(&d->mu);
    if (exec(d, "BEGIN IMMEDIATE") != 0) {
        pthread_mutex_unlock(&d->mu);
        return -1;
    }
    sqlite3_stmt *s = prep(d, "SELECT idx,attempts,custom_id,body FROM lines "
                              "WHERE batch_id=? AND state=0 AND next_ms<=? "
                              "ORDER BY idx LIMIT ?");
    sqlite3_stmt *u = prep(d, "UPDATE lines SET state=1,attempts=attempts+1,"
                              "owner_pid=? WHERE batch_id=? AND idx=?");
    if (!s || !u) {
        rc = -1;
    } else {
        bind_texts(s, 1, &batch_id, 1);
        sqlite3_bind_int64(s, 2, now_ms);
        sqlite3_bind_int(s, 3, max);
        while (n < max && sqlite3_step(s) == SQLITE_ROW) {
            struct batch_line *l = &out[n];
            l->idx = sqlite3_column_int64(s, 0);
            l->attempts = sqlite3_column_int(s, 1) + 1;
            col_copy(s, 2, l->custom_id, sizeof l->custom_id);
            l->body = col_dup(s, 3);
            n++;
        }
        for (int i = 0; i < n && rc == 0; i++) {
            sqlite3_reset(u);
            sqlite3_bind_int64(u, 1, pid);
            sqlite3_bind_text(u, 2, batch_id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(u, 3, out[i].idx);
            if (sqlite3_step(u) != SQLITE_DONE)
                rc = -1;
        }
    }
    done(d, s);
    done(d, u);
    if (exec(d, rc == 0 ? "COMMIT" : "ROLLBACK") != 0)
        rc = -1;
    pthread_mutex_unlock(&d->mu);
    if (rc != 0) {
        for (int i = 0; i < n; i++)
            batch_line_clear(&out[i]);
        return -1;
    }
    return n;
}

static const char result_sql[] =
    "UPDATE lines SET state=?,status=?,request_id=?,result=?,"
    "prompt_tokens=?,completion_tokens=? WHERE batch_id=? AND idx=? "
    "AND state=1";

int batch_db_line_results(struct batch_db *d,
                          const struct batch_line_result *list)
{
    pthread_mutex_lock(&d->mu);
    int rc = exec(d, "BEGIN IMMEDIATE");
    for (const struct batch_line_result *r = list; r && rc == 0; r = r->next)
        rc = batch_db_line_result(d, r->batch_id, r->idx, r->state, r->status,
                                  r->request_id, r->result_json,
                                  r->prompt_tokens, r->completion_tokens);
    if (exec(d, rc == 0 ? "COMMIT" : "ROLLBACK") != 0)
        rc = -1;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int batch_db_line_result(struct batch_db *d, const char *batch_id, int64_t idx,
                         enum line_state st, int status, const char *request_id,
                         const char *result_json, int64_t prompt_tokens,
                         int64_t completion_tokens)
{
    sqlite3_stmt *s = prep(d, result_sql);
    if (!s)
        return -1;
    sqlite3_bind_int(s, 1, (int)st);
    sqlite3_bind_int(s, 2, status);
    const char *t[] = {request_id, result_json};
    bind_texts(s, 3, t, 2);
    sqlite3_bind_int64(s, 5, prompt_tokens);
    sqlite3_bind_int64(s, 6, completion_tokens);
    bind_texts(s, 7, &batch_id, 1);
    sqlite3_bind_int64(s, 8, idx);
    return run(d, s);
}

int batch_db_line_retry(struct batch_db *d, const char *batch_id, int64_t idx,
                        int64_t next_ms, const char *last_error, bool refund)
{
    sqlite3_stmt *s = prep(d, refund ? "UPDATE lines SET state=0,next_ms=?,"
                                       "last_error=?,attempts=attempts-1 "
                                       "WHERE batch_id=? AND idx=? AND state=1"
                                     : "UPDATE lines SET state=0,next_ms=?,"
                                       "last_error=? WHERE batch_id=? AND "
                                       "idx=? AND state=1");
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, next_ms);
    const char *t[] = {last_error, batch_id};
    bind_texts(s, 2, t, 2);
    sqlite3_bind_int64(s, 4, idx);
    return run(d, s);
}

int batch_db_lines_abandon(struct batch_db *d, const char *batch_id,
                           const char *error_json)
{
    sqlite3_stmt *s = prep(d, "UPDATE lines SET state=3,status=0,result=? "
                              "WHERE batch_id=? AND state=0");
    if (!s)
        return -1;
    const char *t[] = {error_json, batch_id};
    bind_texts(s, 1, t, 2);
    return run(d, s);
}

int batch_db_line_counts(struct batch_db *d, const char *batch_id,
                         struct line_counts *c)
{
    memset(c, 0, sizeof *c);
    sqlite3_stmt *s = prep(d, "SELECT state,COUNT(*) FROM lines WHERE "
                              "batch_id=? GROUP BY state");
    if (!s)
        return -1;
    bind_texts(s, 1, &batch_id, 1);
    while (sqlite3_step(s) == SQLITE_ROW) {
        int64_t v = sqlite3_column_int64(s, 1);
        switch (sqlite3_column_int(s, 0)) {
        case LINE_PENDING:
            c->pending = v;
            break;
        case LINE_INFLIGHT:
            c->inflight = v;
            break;
        case LINE_DONE:
            c->done = v;
            break;
        default:
            c->failed = v;
            break;
        }
    }
    done(d, s);
    return 0;
}

int batch_db_lines_each(struct batch_db *d, const char *batch_id,
                        batch_line_fn fn, void *arg)
{
    sqlite3_stmt *s = prep(d, "SELECT idx,custom_id,state,status,request_id,"
                              "result FROM lines WHERE batch_id=? AND state>=2 "
                              "ORDER BY idx");
    if (!s)
        return -1;
    bind_texts(s, 1, &batch_id, 1);
    int rc = 0;
    while (rc == 0 && sqlite3_step(s) == SQLITE_ROW)
        rc = fn(arg, sqlite3_column_int64(s, 0),
                (const char *)sqlite3_column_text(s, 1),
                sqlite3_column_int(s, 2), sqlite3_column_int(s, 3),
                (const char *)sqlite3_column_text(s, 4),
                (const char *)sqlite3_column_text(s, 5));
    done(d, s);
    return rc;
}

/* ---- forwarded batches ---- */

int batch_db_forward_start(struct batch_db *d, const char *batch_id,
                           const char *upstream, int64_t total)
{
    pthread_mutex_lock(&d->mu);
    int rc = exec(d, "BEGIN IMMEDIATE");
    sqlite3_stmt *s = rc ? NULL
                         : prep(d, "INSERT OR IGNORE INTO forwards(batch_id,"
                                   "upstream) VALUES(?,?)");
    const char *t[] = {batch_id, upstream};
    if (s)
        bind_texts(s, 1, t, 2);
    rc = rc ? rc : run(d, s);
    s = rc ? NULL : prep(d, "UPDATE batches SET total=? WHERE id=?");
    if (s) {
        sqlite3_bind_int64(s, 1, total);
        sqlite3_bind_text(s, 2, batch_id, -1, SQLITE_TRANSIENT);
    }
    rc = rc ? rc : run(d, s);
    exec(d, rc ? "ROLLBACK" : "COMMIT");
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int batch_db_forward_get(struct batch_db *d, const char *batch_id,
                         struct batch_forward_row *out)
{
    sqlite3_stmt *s =
        prep(d, "SELECT upstream,provider_file_id,provider_batch_id,"
                "provider_status,completed,failed,provider_output_id,"
                "provider_error_id,cancel_sent,upload_sent,create_sent FROM "
                "forwards WHERE batch_id=?");
    if (!s)
        return -1;
    sqlite3_bind_text(s, 1, batch_id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        col_copy(s, 0, out->upstream, sizeof out->upstream);
        col_copy(s, 1, out->file_id, sizeof out->file_id);
        col_copy(s, 2, out->batch_id, sizeof out->batch_id);
        col_copy(s, 3, out->status, sizeof out->status);
        out->completed = sqlite3_column_int64(s, 4);
        out->failed = sqlite3_column_int64(s, 5);
        col_copy(s, 6, out->output_id, sizeof out->output_id);
        col_copy(s, 7, out->error_id, sizeof out->error_id);
        out->cancel_sent = sqlite3_column_int(s, 8) != 0;
        out->upload_sent = sqlite3_column_int(s, 9) != 0;
        out->create_sent = sqlite3_column_int(s, 10) != 0;
    }
    done(d, s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

int batch_db_forward_file(struct batch_db *d, const char *batch_id,
                          const char *provider_file_id)
{
    sqlite3_stmt *s = prep(d, "UPDATE forwards SET provider_file_id=? WHERE "
                              "batch_id=? AND provider_file_id IS NULL");
    if (!s)
        return -1;
    const char *t[] = {provider_file_id, batch_id};
    bind_texts(s, 1, t, 2);
    return run(d, s);
}

int batch_db_forward_mirror(struct batch_db *d, const char *batch_id,
                            const struct batch_forward_row *f, int64_t total)
{
    pthread_mutex_lock(&d->mu);
    int rc = exec(d, "BEGIN IMMEDIATE");
    sqlite3_stmt *s =
        rc ? NULL
           : prep(d, "UPDATE forwards SET provider_batch_id=?1,"
                     "provider_status=?2,provider_output_id=?3,"
                     "provider_error_id=?4,completed=?5,failed=?6,"
                     "cancel_sent=?7 WHERE batch_id=?8");
    if (s) {
        const char *t[] = {f->batch_id, f->status, f->output_id, f->error_id};
        for (int i = 0; i < 4; i++)
            if (t[i][0])
                sqlite3_bind_text(s, i + 1, t[i], -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 5, f->completed);
        sqlite3_bind_int64(s, 6, f->failed);
        sqlite3_bind_int(s, 7, f->cancel_sent);
        sqlite3_bind_text(s, 8, batch_id, -1, SQLITE_TRANSIENT);
    }
    rc = rc ? rc : run(d, s);
    s = rc || total <= 0 ? NULL
                         : prep(d, "UPDATE batches SET total=? WHERE id=?");
    if (s) {
        sqlite3_bind_int64(s, 1, total);
        sqlite3_bind_text(s, 2, batch_id, -1, SQLITE_TRANSIENT);
        rc = run(d, s);
    }
    exec(d, rc ? "ROLLBACK" : "COMMIT");
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int batch_db_forward_usage(struct batch_db *d, const char *batch_id,
                           int64_t prompt_tokens, int64_t completion_tokens)
{
    sqlite3_stmt *s = prep(d, "UPDATE forwards SET prompt_tokens=?,"
                              "completion_tokens=? WHERE batch_id=?");
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, prompt_tokens);
    sqlite3_bind_int64(s, 2, completion_tokens);
    sqlite3_bind_text(s, 3, batch_id, -1, SQLITE_TRANSIENT);
    return run(d, s);
}

int batch_db_forward_claim(struct batch_db *d, const char *batch_id,
                           const char *me, const char *my_pid)
{
    /* Free, ours, or left by another process (one process per dir: it
     * is gone). Another instance of this process (a reload) keeps it. */
    sqlite3_stmt *s =
        prep(d, "UPDATE forwards SET call_owner=?1 WHERE batch_id=?2 AND "
                "(call_owner IS NULL OR call_owner=?1 OR "
                "substr(call_owner,1,length(?3)+1)<>?3||':')");
    if (!s)
        return -1;
    const char *t[] = {me, batch_id, my_pid};
    bind_texts(s, 1, t, 3);
    pthread_mutex_lock(&d->mu);
    int rc = run(d, s);
    int changed = sqlite3_changes(d->db);
    pthread_mutex_unlock(&d->mu);
    return rc < 0 ? -1 : changed ? 0 : 1;
}

int batch_db_forward_release(struct batch_db *d, const char *batch_id,
                             const char *me)
{
    sqlite3_stmt *s = prep(d, "UPDATE forwards SET call_owner=NULL WHERE "
                              "batch_id=? AND call_owner=?");
    if (!s)
        return -1;
    const char *t[] = {batch_id, me};
    bind_texts(s, 1, t, 2);
    return run(d, s);
}

int batch_db_forward_sent(struct batch_db *d, const char *batch_id, bool create)
{
    sqlite3_stmt *s = prep(d, create ? "UPDATE forwards SET create_sent=1 "
                                       "WHERE batch_id=?"
                                     : "UPDATE forwards SET upload_sent=1 "
                                       "WHERE batch_id=?");
    if (!s)
        return -1;
    sqlite3_bind_text(s, 1, batch_id, -1, SQLITE_TRANSIENT);
    return run(d, s);
}
