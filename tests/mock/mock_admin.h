/* The control plane under /mock/: GET /mock/stats, GET|POST /mock/config,
 * POST /mock/reset. These requests bypass every counter except
 * `control`, so tests read clean numbers. */
#ifndef SLUICE_MOCK_ADMIN_H
#define SLUICE_MOCK_ADMIN_H

struct evhttp_request;
struct mock_worker;

void mock_admin_handle(struct mock_worker *w, struct evhttp_request *req,
                       const char *path);

#endif
