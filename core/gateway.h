/* Entry points from the HTTP server: route the request to the API flow or
 * to an admin endpoint. */
#ifndef SLUICE_GATEWAY_H
#define SLUICE_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "api_request.h"

struct http_exchange;
struct sluice_req;

/* The API listener (also serves admin endpoints when no admin_listen). */
void gateway_on_request(struct http_exchange *ex, void *worker);
/* The separate admin listener. */
void gateway_on_admin_request(struct http_exchange *ex, void *worker);

/* The built-in API endpoint for path (its static string) and its kind, or
 * NULL. */
const char *gateway_api_endpoint(const char *path, enum api_kind *kind);
/* Runs an API request whose kind, id and identity are set: decodes and
 * validates the body (copied into the arena unless it is r->body), routes
 * the model, then the policy and the pipeline. Client requests and the
 * ones the gateway makes to itself (self_request.c) both start here. */
void gateway_api_start(struct sluice_req *r, const char *body, size_t body_len);

/* "host:0" + port → "host:port" (for binding every worker to the port the
 * first one got). */
void gateway_addr_with_port(char *out, size_t cap, const char *addr,
                            uint16_t port);

/* Priority names ("critical".."low") ↔ enum sluice_priority; -1 unknown. */
int gateway_priority_parse(const char *s, size_t len);
const char *gateway_priority_name(int p);

#endif
