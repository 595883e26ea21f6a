/* The upstream exchange of one request: building the call, forwarding the
 * answer (whole or as an SSE stream with backpressure), usage accounting,
 * retries with backoff and the fallback chain. */
#ifndef SLUICE_PROXY_H
#define SLUICE_PROXY_H

struct sluice_req;

/* Starts (or restarts, for a retry) the upstream call. */
void proxy_start(struct sluice_req *r);
/* Answers with the last attempt's result (its upstream answer, or the
 * local error for a failed call), for a retry that cannot go after all. */
void proxy_answer_last(struct sluice_req *r);
/* The client disconnected: cancel whatever is in flight and finish. */
void proxy_client_gone(struct sluice_req *r);

#endif
