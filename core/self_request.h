/* Requests the gateway makes to itself (SDK 1.1 self_submit): a request
 * object with no client connection. It runs the same path as a client's
 * (policy, pipeline, routing, upstream) with r->ex NULL and r->self set;
 * nothing on that path writes to a client without an exchange, so the
 * answer is read back from the request when it ends (the local answer the
 * core or a plugin set, else the upstream's buffered one) and handed to
 * the submitter's callback instead of a socket: a "virtual exchange" of
 * one call at the end of the request.
 */
#ifndef SLUICE_SELF_REQUEST_H
#define SLUICE_SELF_REQUEST_H

#include "sluice/host.h"

struct sluice_req;

/* From request_finish, after the log hooks and before the access log
 * line: sets r->final_status and calls the submitter's callback. A no-op
 * for client requests. */
void self_request_end(struct sluice_req *r);

/* The self_submit member of the host table. */
void self_request_host_fill(struct sluice_host *h);

#endif
