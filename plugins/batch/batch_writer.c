/* See batch_writer.h. One mutex + condition variable guard the queue;
 * the thread takes the whole queue at once and commits it outside the
 * lock, so producers only ever wait for a pointer swap. It lets results
 * gather for up to LINGER_MS (or GROUP of them) before a commit: one
 * commit writes each touched page to the WAL once for the whole group. */
#include "batch_writer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

enum { GROUP = 64, LINGER_MS = 5 };

struct batch_writer {
    struct batch_db *db;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct batch_line_result *head, **tail; /* guarded by mu */
    int queued;                             /* guarded by mu */
    bool stop;                              /* guarded by mu */
    atomic_int_fast64_t failed;
};

static void free_list(struct batch_line_result *r)
{
    while (r) {
        struct batch_line_result *next = r->next;
        free(r->result_json);
        free(r);
        r = next;
    }
}

static void *writer_main(void *arg)
{
    struct batch_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head)
            break; /* stopping with nothing left */
        if (!w->stop && w->queued < GROUP) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += LINGER_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            while (!w->stop && w->queued < GROUP &&
                   pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0)
                ;
        }
        struct batch_line_result *list = w->head;
        w->head = NULL;
        w->tail = &w->head;
        w->queued = 0;
        pthread_mutex_unlock(&w->mu);
        if (batch_db_line_results(w->db, list) != 0) {
            int64_t n = 0;
            for (struct batch_line_result *r = list; r; r = r->next)
                n++;
            atomic_fetch_add(&w->failed, n);
        }
        free_list(list);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

struct batch_writer *batch_writer_start(struct batch_db *db)
{
    struct batch_writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->db = db;
    w->tail = &w->head;
    atomic_init(&w->failed, 0);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

void batch_writer_put(struct batch_writer *w, struct batch_line_result *r)
{
    r->next = NULL;
    pthread_mutex_lock(&w->mu);
    bool was_empty = !w->head;
    *w->tail = r;
    w->tail = &r->next;
    w->queued++;
    if (was_empty || w->queued == GROUP)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int64_t batch_writer_failed(struct batch_writer *w)
{
    return (int64_t)atomic_load(&w->failed);
}

void batch_writer_stop(struct batch_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
