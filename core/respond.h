/* Answers to the client that do not come from the upstream: errors built
 * by the core or a plugin (always OpenAI-shaped), cache hits and static
 * responses. */
#ifndef SLUICE_RESPOND_H
#define SLUICE_RESPOND_H

#include <stddef.h>
#include <stdint.h>

#include "request_end.h" /* callers that answer also end the request */
#include "sluice/plugin.h"

struct sluice_req;
struct http_exchange;

/* Records a local error response (not sent yet). code/param may be NULL;
 * retry_after_ms > 0 adds Retry-After in whole seconds, rounded up. */
void respond_set_error(struct sluice_req *r, int status, const char *type,
                       const char *code, const char *message, const char *param,
                       uint64_t retry_after_ms);
void respond_set_body(struct sluice_req *r, int status,
                      const char *content_type, const char *body, size_t len);
/* Sends the recorded local response, then finishes the request. */
void respond_send_local(struct sluice_req *r);

/* An error for requests that never became a request object (bad route,
 * method): sends directly on the exchange. */
void respond_plain_error(struct http_exchange *ex, int status,
                         const char *message, const char *param,
                         const char *extra_headers);

/* Appends the response headers the gateway adds for the client
 * (x-request-id, x-sluice-*, plugin headers) as "Name: value\r\n" lines. */
size_t respond_client_headers(struct sluice_req *r, char *buf, size_t cap);

#endif
