/* The Files and Batches API of the mock provider, enough for a gateway
 * that forwards batches: POST /v1/files (multipart, purpose=batch), GET
 * /v1/files/{id}/content, POST /v1/batches, GET /v1/batches/{id}, POST
 * /v1/batches/{id}/cancel. Files and batches live in memory. A batch runs
 * its lines with the mock's own answers, spread over its delay (metadata
 * "mock_delay_ms", default 300): each retrieval runs the lines whose time
 * has come, so request_counts grow while it is in_progress. */
#ifndef SLUICE_MOCK_BATCHES_H
#define SLUICE_MOCK_BATCHES_H

#include <stdbool.h>

struct evhttp_request;
struct mock_conn;
struct mock_worker;

/* Answers the request when `rest` (the path after the optional /v1) is a
 * files or batches path; false otherwise. */
bool mock_batches_handle(struct mock_worker *w, struct evhttp_request *req,
                         struct mock_conn *conn, const char *rest);

#endif
