/* Entry points from the HTTP server: route the request to the API flow or
 * to an admin endpoint. */
#ifndef SLUICE_GATEWAY_H
#define SLUICE_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

struct http_exchange;

/* The API listener (also serves admin endpoints when no admin_listen). */
void gateway_on_request(struct http_exchange *ex, void *worker);
/* The separate admin listener. */
void gateway_on_admin_request(struct http_exchange *ex, void *worker);

/* "host:0" + port → "host:port" (for binding every worker to the port the
 * first one got). */
void gateway_addr_with_port(char *out, size_t cap, const char *addr,
                            uint16_t port);

/* Priority names ("critical".."low") ↔ enum sluice_priority; -1 unknown. */
int gateway_priority_parse(const char *s, size_t len);
const char *gateway_priority_name(int p);

#endif
