/* The batch runner's result writer: a thread that commits line results
 * handed to it, all that are waiting in one transaction, so the worker
 * that runs the batch never waits for a commit, a WAL append or a
 * checkpoint. A result counts as stored once committed; one still queued
 * at a kill -9 leaves its line in flight, sent again after the restart
 * (as a line whose answer had not arrived). Stopping commits everything
 * queued first. */
#ifndef BATCH_WRITER_H
#define BATCH_WRITER_H

#include <stdint.h>

#include "batch_db.h"

struct batch_writer;

struct batch_writer *batch_writer_start(struct batch_db *db);
/* Takes r (malloc'd, with its result_json) whatever happens. */
void batch_writer_put(struct batch_writer *w, struct batch_line_result *r);
/* Results whose commit failed so far (their lines stay in flight until a
 * restart sends them again). Any thread. */
int64_t batch_writer_failed(struct batch_writer *w);
/* Commits what is queued, ends the thread, frees. NULL is fine. */
void batch_writer_stop(struct batch_writer *w);

#endif
