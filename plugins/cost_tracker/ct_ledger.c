/* SQLite ledger: prepared statements on one connection behind a mutex;
 * the writer thread of ct_ledger_queue.c uses the same connection. */
#include "ct_ledger_internal.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CKPT_EVERY_MS 500

static void *checkpointer(void *arg)
{
    struct ct_ledger *l = arg;
    pthread_mutex_lock(&l->ckpt_mu);
    while (!l->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += CKPT_EVERY_MS * 1000000l;
        ts.tv_sec += ts.tv_nsec / 1000000000l;
        ts.tv_nsec %= 1000000000l;
        pthread_cond_timedwait(&l->ckpt_cv, &l->ckpt_mu, &ts);
        pthread_mutex_unlock(&l->ckpt_mu);
        sqlite3_wal_checkpoint_v2(l->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                  NULL, NULL);
        pthread_mutex_lock(&l->ckpt_mu);
    }
    pthread_mutex_unlock(&l->ckpt_mu);
    return NULL;
}

static void start_checkpointer(struct ct_ledger *l, const char *path)
{
    if (sqlite3_open_v2(path, &l->ckpt_db, SQLITE_OPEN_READWRITE, NULL) !=
            SQLITE_OK ||
        sqlite3_busy_timeout(l->ckpt_db, 1000) != SQLITE_OK ||
        sqlite3_exec(l->db, "PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL) !=
            SQLITE_OK)
        return; /* SQLite's own checkpoints on commit stay on */
    pthread_mutex_init(&l->ckpt_mu, NULL);
    pthread_cond_init(&l->ckpt_cv, NULL);
    l->ckpt_running = pthread_create(&l->ckpt, NULL, checkpointer, l) == 0;
    if (!l->ckpt_running) {
        sqlite3_exec(l->db, "PRAGMA wal_autocheckpoint=1000", NULL, NULL, NULL);
        pthread_cond_destroy(&l->ckpt_cv);
        pthread_mutex_destroy(&l->ckpt_mu);
    }
}

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS ledger("
    " id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, request_id TEXT,"
    " tenant TEXT, user TEXT, key TEXT, feature TEXT, model TEXT,"
    " upstream TEXT, streamed INTEGER, state TEXT NOT NULL,"
    " reserved_pico INTEGER NOT NULL, prompt_tokens INTEGER,"
    " cached_tokens INTEGER, completion_tokens INTEGER,"
    " cost_pico INTEGER NOT NULL DEFAULT 0, settled_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS ledger_ts ON ledger(ts_ms);"
    "CREATE INDEX IF NOT EXISTS ledger_state ON ledger(state);";

static int64_t clamp64(uint64_t v)
{
    return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

struct ct_ledger *ct_ledger_open(const char *path, char *err, size_t errlen)
{
    struct ct_ledger *l = calloc(1, sizeof *l);
    char *msg = NULL;

    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&l->mu, NULL);
    if (sqlite3_open_v2(path, &l->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(l->db, 5000) != SQLITE_OK ||
        sqlite3_exec(l->db, schema, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_prepare_v2(
            l->db,
            "INSERT INTO ledger(ts_ms,request_id,tenant,user,key,feature,"
            "model,upstream,streamed,state,reserved_pico,id) "
            "VALUES(?,?,?,?,?,?,?,?,?,'reserved',?,?)",
            -1, &l->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(l->db,
                           "UPDATE ledger SET state=?,model=?,prompt_tokens=?,"
                           "cached_tokens=?,completion_tokens=?,cost_pico=?,"
                           "settled_ms=? WHERE id=? AND state='reserved'",
                           -1, &l->upd, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "ledger %s: %s", path,
                 msg ? msg : sqlite3_errmsg(l->db));
        sqlite3_free(msg);
        ct_ledger_close(l);
        return NULL;
    }
    start_checkpointer(l, path);
    sqlite3_stmt *mx = NULL;
    int64_t next = 1;
    if (sqlite3_prepare_v2(l->db, "SELECT coalesce(max(id),0)+1 FROM ledger",
                           -1, &mx, NULL) == SQLITE_OK &&
        sqlite3_step(mx) == SQLITE_ROW)
        next = sqlite3_column_int64(mx, 0);
    sqlite3_finalize(mx);
    atomic_store(&l->next_id, next);
    pthread_mutex_init(&l->q_mu, NULL);
    pthread_cond_init(&l->q_cv, NULL);
    pthread_cond_init(&l->q_done, NULL);
    l->writer_running =
        pthread_create(&l->writer, NULL, ct_ledger_writer, l) == 0;
    if (!l->writer_running) {
        snprintf(err, errlen, "ledger %s: cannot start its writer thread",
                 path);
        ct_ledger_close(l);
        return NULL;
    }
    return l;
}

void ct_ledger_close(struct ct_ledger *l)
{
    if (!l)
        return;
    if (l->writer_running) { /* commits what is queued, then ends */
        pthread_mutex_lock(&l->q_mu);
        l->q_stop = true;
        pthread_cond_signal(&l->q_cv);
        pthread_mutex_unlock(&l->q_mu);
        pthread_join(l->writer, NULL);
        pthread_cond_destroy(&l->q_cv);
        pthread_cond_destroy(&l->q_done);
        pthread_mutex_destroy(&l->q_mu);
    }
    if (l->ckpt_running) {
        pthread_mutex_lock(&l->ckpt_mu);
        l->stop = true;
        pthread_cond_signal(&l->ckpt_cv);
        pthread_mutex_unlock(&l->ckpt_mu);
        pthread_join(l->ckpt, NULL);
        pthread_cond_destroy(&l->ckpt_cv);
        pthread_mutex_destroy(&l->ckpt_mu);
    }
    sqlite3_close(l->ckpt_db);
    sqlite3_finalize(l->ins);
    sqlite3_finalize(l->upd);
    pthread_mutex_destroy(&l->mu);
    sqlite3_close(l->db);
    free(l);
}

static void bind_text(sqlite3_stmt *s, int i, struct ct_text t)
{
    sqlite3_bind_text(s, i, t.ptr ? t.ptr : "", (int)t.len, SQLITE_TRANSIENT);
}

int ct_ledger_insert_locked(struct ct_ledger *l, int64_t id,
                            const struct ct_ledger_row *row)
{
    sqlite3_stmt *s = l->ins;
    sqlite3_bind_int64(s, 1, row->ts_ms);
    bind_text(s, 2, row->request_id);
    bind_text(s, 3, row->tenant);
    bind_text(s, 4, row->user);
    bind_text(s, 5, row->key);
    bind_text(s, 6, row->feature);
    bind_text(s, 7, row->model);
    bind_text(s, 8, row->upstream);
    sqlite3_bind_int(s, 9, row->streamed);
    sqlite3_bind_int64(s, 10, clamp64(row->reserved));
    sqlite3_bind_int64(s, 11, id);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
    sqlite3_reset(s);
    return rc;
}

int ct_ledger_update_locked(struct ct_ledger *l, int64_t id, const char *state,
                            const char *model, uint64_t prompt, uint64_t cached,
                            uint64_t completion, uint64_t cost, int64_t now_ms)
{
    sqlite3_stmt *s = l->upd;
    sqlite3_bind_text(s, 1, state, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, clamp64(prompt));
    sqlite3_bind_int64(s, 4, clamp64(cached));
    sqlite3_bind_int64(s, 5, clamp64(completion));
    sqlite3_bind_int64(s, 6, clamp64(cost));
    sqlite3_bind_int64(s, 7, now_ms);
    sqlite3_bind_int64(s, 8, id);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
    sqlite3_reset(s);
    return rc;
}

int ct_ledger_exec_locked(struct ct_ledger *l, const char *sql)
{
    return sqlite3_exec(l->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int64_t ct_ledger_reserve(struct ct_ledger *l, const struct ct_ledger_row *row)
{
    int64_t id = atomic_fetch_add(&l->next_id, 1);
    pthread_mutex_lock(&l->mu);
    int rc = ct_ledger_insert_locked(l, id, row);
    pthread_mutex_unlock(&l->mu);
    return rc ? 0 : id;
}

int ct_ledger_settle(struct ct_ledger *l, int64_t id, const char *state,
                     const char *model, uint64_t prompt, uint64_t cached,
                     uint64_t completion, uint64_t cost, int64_t now_ms)
{
    pthread_mutex_lock(&l->mu);
    int rc = ct_ledger_update_locked(l, id, state, model, prompt, cached,
                                     completion, cost, now_ms);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int64_t ct_ledger_recover(struct ct_ledger *l)
{
    int64_t n = -1;
    pthread_mutex_lock(&l->mu);
    if (sqlite3_exec(l->db,
                     "UPDATE ledger SET state='orphaned',cost_pico="
                     "reserved_pico WHERE state='reserved'",
                     NULL, NULL, NULL) == SQLITE_OK)
        n = sqlite3_changes(l->db);
    pthread_mutex_unlock(&l->mu);
    return n;
}

static const char *col(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : "";
}

int ct_ledger_scan(struct ct_ledger *l, int64_t since_ms,
                   void (*fn)(void *arg, int64_t ts_ms, const char *tenant,
                              const char *user, const char *key,
                              const char *feature, uint64_t cost),
                   void *arg)
{
    sqlite3_stmt *s = NULL;
    int rc = -1;
    pthread_mutex_lock(&l->mu);
    if (sqlite3_prepare_v2(l->db,
                           "SELECT ts_ms,tenant,user,key,feature,cost_pico "
                           "FROM ledger WHERE ts_ms>=? AND cost_pico>0",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, since_ms);
        int step;
        while ((step = sqlite3_step(s)) == SQLITE_ROW)
            fn(arg, sqlite3_column_int64(s, 0), col(s, 1), col(s, 2), col(s, 3),
               col(s, 4), (uint64_t)sqlite3_column_int64(s, 5));
        rc = step == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&l->mu);
    return rc;
}
