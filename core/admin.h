/* Operational endpoints: /healthz, /metrics, /admin/status, /v1/models. */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include <stdbool.h>

struct http_exchange;
struct worker;

/* Serves the request if its path is an admin endpoint; returns false when
 * the path is not one. */
bool admin_handle(struct http_exchange *ex, struct worker *w);
void admin_models(struct http_exchange *ex, struct worker *w);

#endif
