/* Retries and the fallback chain of one request: whether an ended attempt
 * may go again, after how long (backoff with full jitter, honouring
 * Retry-After) and where (the same upstream or the next usable step of the
 * model's fallback chain). */
#ifndef SLUICE_RETRY_H
#define SLUICE_RETRY_H

#include <stdbool.h>

struct sluice_req;

/* An upstream answer with this status may be tried again (retry.on_status,
 * by default 408, 409, 429, 500, 502, 503, 504). */
bool retry_status_retryable(const struct sluice_req *r, int status);
/* Schedules the next attempt when `retryable`, nothing reached the client
 * and attempts and deadline remain; false when the caller must answer. */
bool retry_schedule(struct sluice_req *r, bool retryable);
/* A retry waits in a pacing plugin (on_attempt suspended): if the retry
 * deadline passes first, the client gets the last attempt's answer. */
void retry_bound_pacing(struct sluice_req *r);
/* Drops a scheduled attempt (the client went away) or the deadline of a
 * paced retry (it may go now). */
void retry_cancel(struct sluice_req *r);

#endif
