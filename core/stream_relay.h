/* Relaying an upstream SSE answer to the client as it arrives: the client's
 * stream head, forwarding as raw bytes (when the usage chunk the gateway
 * asked for must be dropped, the events around it still pass raw; only an
 * event split across reads is re-serialised), backpressure
 * (pause the upstream while the client is slow), usage taken from the
 * stream, and an error event when the stream ends cut. [DONE] is held
 * back until the response hooks and the metrics have run, so that anyone
 * who has seen the end of a stream finds what they recorded. */
#ifndef SLUICE_STREAM_RELAY_H
#define SLUICE_STREAM_RELAY_H

#include <stddef.h>

#include "sluice/host.h"
#include "upstream/upstream_client.h"

struct sluice_req;

/* Sends the stream's status and headers to the client; from now on the
 * answer can no longer be retried or replaced. */
void stream_relay_start(struct sluice_req *r);
/* Forwards upstream bytes (any split) to the client. False when the stream
 * cannot go on (an SSE event over the size cap): the client's stream has
 * been ended with an error event, and the caller must cancel the upstream
 * transfer (else the whole oversized event would still be read). */
bool stream_relay_chunk(struct sluice_req *r, const char *data, size_t len);
/* The upstream stream ended with `res`: records usage and marks a cut
 * stream. Returns the attempt's outcome. The client's stream stays open
 * until stream_relay_close. */
enum sluice_outcome stream_relay_end(struct sluice_req *r,
                                     enum upstream_result res);
/* Ends the client's stream: [DONE] and the last chunk leave. */
void stream_relay_close(struct sluice_req *r);

#endif
