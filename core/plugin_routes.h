/* Routes that plugins answer themselves (SDK 1.1 route_add): registered in
 * create(), gathered into one table per generation at load (overlaps with
 * another instance or a built-in endpoint refuse the config), matched by
 * the gateway after its built-in endpoints. A route request is a normal
 * request object (id, identity, access log, metrics) that skips the policy
 * and the pipeline: the route's handler answers it, possibly after
 * suspending like an on_request hook.
 */
#ifndef SLUICE_PLUGIN_ROUTES_H
#define SLUICE_PLUGIN_ROUTES_H

#include <stddef.h>

#include "sluice/host.h"

struct generation;
struct plugin_route;
struct plugin_routes;
struct sluice_req;

/* Main thread, at the end of generation_build: moves the routes the
 * generation's instances registered into g->routes. -1 with err set when
 * two overlap or one shadows a built-in endpoint. */
int plugin_routes_build(struct generation *g, char *err, size_t errlen);
/* Main thread, when the generation is destroyed (also after a failed
 * build): frees g->routes and drops routes its instances left pending. */
void plugin_routes_free(struct generation *g);

enum route_match {
    ROUTE_NONE = 0,        /* no plugin route for this path */
    ROUTE_FOUND = 1,       /* *out is the route to run */
    ROUTE_WRONG_METHOD = 2 /* the path is routed, not for this method;
                              allow holds "Allow: ...\r\n" */
};
/* Worker thread. t may be NULL (no routes). */
enum route_match plugin_routes_match(const struct plugin_routes *t,
                                     const char *method, const char *path,
                                     const struct plugin_route **out,
                                     char *allow, size_t allow_cap);

/* The path the route was registered with ("/v1/files/"). */
const char *plugin_route_path(const struct plugin_route *rt);

/* Runs the route's handler for r (identified, id assigned, still bound to
 * its exchange); on resume the pipeline calls plugin_route_run again. */
void plugin_route_start(struct sluice_req *r, const struct plugin_route *rt);
void plugin_route_run(struct sluice_req *r);

/* The route/multipart members of the host table. */
void plugin_routes_host_fill(struct sluice_host *h);

#endif
