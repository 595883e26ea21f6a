/* Host services for streams (SDK 1.1): the whole answer of a streamed
 * request (resp_whole_body), and respond() answering a `stream: true`
 * request with SSE. Also the relay's side of the assembly: a per-request
 * stream_whole exists only when some plugin of the request's pipeline set
 * `whole_streams`, so other streams are relayed exactly as before. */
#ifndef SLUICE_HOST_STREAMS_H
#define SLUICE_HOST_STREAMS_H

#include <stdbool.h>

#include "sluice/host.h"

struct sluice_req;
struct stream_whole;

/* The relay, when a 2xx stream starts: an assembly for r, or NULL when no
 * plugin asked for whole answers or the endpoint has no assembled form. */
struct stream_whole *stream_whole_start(const struct sluice_req *r);
/* One SSE event's joined data. */
void stream_whole_event(struct stream_whole *w, const char *data, size_t len);
void stream_whole_free(struct stream_whole *w);

/* Called by respond(): for a `stream: true` chat/completions request and a
 * 2xx complete answer, records the answer as its SSE stream and returns
 * true; false leaves the body to be served as given. */
bool host_streams_respond(struct sluice_req *r, int status,
                          const char *content_type, struct sluice_str body);

/* Fills the 1.1 streams members of the host table. */
void host_streams_init(struct sluice_host *h);

#endif
