/* The end of every request: on_response (if an upstream call happened and
 * it was not reported yet), on_log for every plugin reached, access log,
 * metrics, free. */
#ifndef SLUICE_REQUEST_END_H
#define SLUICE_REQUEST_END_H

struct sluice_req;

/* Ends the request. Safe to call once everything async is finished; while
 * a plugin call is in progress (r->busy) the end is deferred to it. */
void request_finish(struct sluice_req *r);

/* Counts the request in the metrics (once; request_finish does it if
 * nobody did before). Whoever sends the end of an answer calls it first,
 * so that a scrape right after the answer includes it. */
void request_count(struct sluice_req *r);

#endif
