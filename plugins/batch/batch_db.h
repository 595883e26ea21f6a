/* SQLite state of the batch plugin: files, batches and one row per line.
 * One connection behind SQLite's own mutex (FULLMUTEX), WAL journal,
 * synchronous=NORMAL: a commit survives the process being killed (kill -9);
 * a power cut may roll back the last commits, whose lines are then sent
 * again. Every call is one statement or one transaction: a line counts as
 * done only once its result row is committed. */
#ifndef BATCH_DB_H
#define BATCH_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct batch_db;

enum line_state {
    LINE_PENDING = 0,
    LINE_INFLIGHT = 1, /* sent; the result is not stored yet */
    LINE_DONE = 2,     /* 2xx result stored: goes to the output file */
    LINE_FAILED = 3,   /* final error stored: goes to the error file */
};

struct batch_file_row {
    char id[40];
    char tenant[128];
    char purpose[32];
    char filename[256];
    int64_t bytes;
    int64_t created_at;
};

struct batch_row {
    char id[40];
    char tenant[128], user[128], tier[128], key[128];
    char input_file_id[40];
    char endpoint[40];
    char completion_window[16];
    char status[16];
    char output_file_id[40], error_file_id[40];
    int64_t created_at, in_progress_at, finalizing_at, completed_at, failed_at,
        expired_at, cancelling_at, cancelled_at, expires_at; /* 0: null */
    char *metadata; /* JSON text or NULL; free with batch_row_clear */
    char *errors;   /* JSON text or NULL */
    int64_t total, completed, failed;
    int64_t prompt_tokens, completion_tokens;
};
void batch_row_clear(struct batch_row *b);

/* A line taken for sending (batch_db_claim). */
struct batch_line {
    int64_t idx;
    int attempts; /* including this one */
    char custom_id[128];
    char *body; /* malloc'd JSON */
};

struct batch_db *batch_db_open(const char *path, char *err, size_t errlen);
void batch_db_close(struct batch_db *db);

/* Lines left in flight by a previous process (pid differs) go back to
 * pending: their result was never stored, so they may be sent again.
 * Returns how many. */
int64_t batch_db_recover(struct batch_db *db, int64_t pid);

/* ---- files ---- */
int batch_db_file_insert(struct batch_db *db, const struct batch_file_row *f);
/* 0 found, 1 not found (or another tenant's: same answer), -1 error. */
int batch_db_file_get(struct batch_db *db, const char *id, const char *tenant,
                      struct batch_file_row *out);
int batch_db_file_delete(struct batch_db *db, const char *id,
                         const char *tenant);
int64_t batch_db_bytes_stored(struct batch_db *db);
/* Files of a tenant, newest first, after `after` (NULL: from the top). */
int batch_db_file_list(struct batch_db *db, const char *tenant,
                       struct batch_file_row *out, int max);

/* ---- batches ---- */
int batch_db_batch_insert(struct batch_db *db, const struct batch_row *b);
int batch_db_batch_get(struct batch_db *db, const char *id, const char *tenant,
                       struct batch_row *out);
/* The batch row without the line counts (cheap: the runner's tick). */
int batch_db_batch_state(struct batch_db *db, const char *id,
                         struct batch_row *out);
/* Newest first; `after` is a batch id (exclusive) or NULL. Fills up to
 * max rows, returns how many, sets *more when there are others. */
int batch_db_batch_list(struct batch_db *db, const char *tenant,
                        const char *after, struct batch_row *out, int max,
                        int *more);
/* Ids of batches in one of the runner's states (validating, in_progress,
 * finalizing, cancelling), oldest first. */
int batch_db_batch_active(struct batch_db *db, char (*ids)[40], int max);
/* Moves a batch to `status`, stamping `<status>_at` (when it has one) with
 * now_s; only when the current status is `from` (NULL: any). 0 done,
 * 1 not in `from`, -1 error. */
int batch_db_batch_move(struct batch_db *db, const char *id, const char *from,
                        const char *status, int64_t now_s);
int batch_db_batch_fail(struct batch_db *db, const char *id,
                        const char *errors_json, int64_t now_s);
/* Inserts the lines (custom_id, body) and moves validating -> in_progress
 * in one transaction. */
struct batch_line_in {
    const char *custom_id;
    size_t custom_id_len;
    const char *body;
    size_t body_len;
};
int batch_db_lines_insert(struct batch_db *db, const char *batch_id,
                          const struct batch_line_in *lines, size_t n,
                          int64_t now_s);
/* Final move with the result files, in one transaction. */
int batch_db_batch_finish(struct batch_db *db, const char *id,
                          const char *status, const char *output_file_id,
                          const char *error_file_id, int64_t now_s);

/* ---- lines ---- */
/* Takes up to max pending lines due at now_ms, marks them in flight (owned
 * by pid, attempts + 1), commits, and returns them. */
int batch_db_claim(struct batch_db *db, const char *batch_id, int64_t now_ms,
                   int64_t pid, struct batch_line *out, int max);
void batch_line_clear(struct batch_line *l);
/* Commits the final result of a line (LINE_DONE or LINE_FAILED) with its
 * token usage; only if it is still in flight. */
int batch_db_line_result(struct batch_db *db, const char *batch_id, int64_t idx,
                         enum line_state st, int status, const char *request_id,
                         const char *result_json, int64_t prompt_tokens,
                         int64_t completion_tokens);
/* Several final results in one transaction (the writer thread's group
 * commit); each as batch_db_line_result. 0 all committed, -1 none. */
struct batch_line_result {
    struct batch_line_result *next;
    char batch_id[40];
    int64_t idx;
    enum line_state state;
    int status;
    char request_id[64];
    char *result_json; /* malloc'd */
    int64_t prompt_tokens, completion_tokens;
};
int batch_db_line_results(struct batch_db *db,
                          const struct batch_line_result *list);
/* Back to pending, due at next_ms (a retry); refund: the attempt does
 * not count (the gateway's own limits said "later"). */
int batch_db_line_retry(struct batch_db *db, const char *batch_id, int64_t idx,
                        int64_t next_ms, const char *last_error, bool refund);
/* Lines still pending become failed with `error_json` (expired,
 * cancelled): they go to the error file. */
int batch_db_lines_abandon(struct batch_db *db, const char *batch_id,
                           const char *error_json);
struct line_counts {
    int64_t pending, inflight, done, failed;
};
int batch_db_line_counts(struct batch_db *db, const char *batch_id,
                         struct line_counts *c);
/* Calls fn for each finished line in input order. */
typedef int (*batch_line_fn)(void *arg, int64_t idx, const char *custom_id,
                             int state, int status, const char *request_id,
                             const char *result_json);
int batch_db_lines_each(struct batch_db *db, const char *batch_id,
                        batch_line_fn fn, void *arg);

/* ---- forwarded batches (batch_forward.c) ----
 * A batch sent to its upstream's own Batch API: the provider's file and
 * batch ids are committed as soon as they are known, so a restart polls
 * the same provider batch and never uploads again. */
struct batch_forward_row {
    char upstream[64];
    char file_id[96];  /* provider file id; "" before the upload answered */
    char batch_id[96]; /* provider batch id; "" before creation answered */
    char status[16];   /* the provider's last status */
    char output_id[96], error_id[96];
    int64_t completed, failed;
    bool cancel_sent;
    /* The upload / creation was sent at least once: after a restart the
     * provider's list is searched for it before sending it again. */
    bool upload_sent, create_sent;
};
/* Marks the batch as forwarded to `upstream` with `total` lines. */
int batch_db_forward_start(struct batch_db *db, const char *batch_id,
                           const char *upstream, int64_t total);
/* 0 found, 1 not forwarded, -1 error. */
int batch_db_forward_get(struct batch_db *db, const char *batch_id,
                         struct batch_forward_row *out);
int batch_db_forward_file(struct batch_db *db, const char *batch_id,
                          const char *provider_file_id);
/* Stores the provider batch id, status, counts, file ids and cancel_sent
 * (and the batch's total when > 0), in one transaction. */
int batch_db_forward_mirror(struct batch_db *db, const char *batch_id,
                            const struct batch_forward_row *f, int64_t total);
int batch_db_forward_usage(struct batch_db *db, const char *batch_id,
                           int64_t prompt_tokens, int64_t completion_tokens);
/* One call to the provider at a time per batch, across the instances of a
 * reload: `me` is "<pid>:<instance>". Taken when free, already ours, or
 * held by another process (gone: one process per dir). 0 taken, 1 held
 * by another instance of this process, -1 error. Released once the
 * call's answer is stored. */
int batch_db_forward_claim(struct batch_db *db, const char *batch_id,
                           const char *me, const char *my_pid);
int batch_db_forward_release(struct batch_db *db, const char *batch_id,
                             const char *me);
/* Commits that the upload (create false) or the creation is about to be
 * sent. */
int batch_db_forward_sent(struct batch_db *db, const char *batch_id,
                          bool create);

#endif
