/* The ledger's insides, shared by ct_ledger.c (SQLite) and
 * ct_ledger_queue.c (group commit). */
#ifndef CT_LEDGER_INTERNAL_H
#define CT_LEDGER_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "ct_ledger.h"

struct op;

struct ct_ledger {
    sqlite3 *db;
    pthread_mutex_t mu; /* the connection and its statements */
    sqlite3_stmt *ins, *upd;
    /* Checkpoints (the only fsyncs with synchronous=NORMAL) run on a
     * thread of their own, off the request path. */
    sqlite3 *ckpt_db;
    pthread_t ckpt;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
    bool ckpt_running, stop;
    /* Group commit: the queue, its writer, the batches committed. */
    pthread_t writer;
    bool writer_running;
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv, q_done;
    struct op *q_head, *q_tail;
    uint64_t q_seq; /* batches taken by the writer */
    bool q_stop;
    _Atomic uint64_t committed; /* batches committed */
    _Atomic int64_t next_id;
    _Atomic uint64_t write_errors;
};

/* With l->mu held. 0 or -1. */
int ct_ledger_insert_locked(struct ct_ledger *l, int64_t id,
                            const struct ct_ledger_row *row);
int ct_ledger_update_locked(struct ct_ledger *l, int64_t id, const char *state,
                            const char *model, uint64_t prompt, uint64_t cached,
                            uint64_t completion, uint64_t cost, int64_t now_ms);
int ct_ledger_exec_locked(struct ct_ledger *l, const char *sql);
void *ct_ledger_writer(void *arg);

#endif
