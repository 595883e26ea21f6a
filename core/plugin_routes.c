/* Plugin routes: registration in create(), one table per generation,
 * matching, and running a route's handler (see plugin_routes.h). */
#include "plugin_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_server.h"
#include "http/multipart.h"
#include "log.h"
#include "request.h"
#include "respond.h"
#include "runtime.h"
#include "worker.h"

#define ROUTE_MAX_PATH 200

struct plugin_route {
    char method[16];
    char path[ROUTE_MAX_PATH + 1];
    size_t path_len;
    bool prefix; /* path ends in '/': matches everything below it */
    sluice_route_fn handler;
    void *arg;
    const struct instance *inst;
};

struct plugin_routes {
    size_t n;
    struct plugin_route items[]; /* longest path first */
};

/* What a route request carries besides the common request fields; in the
 * request arena. */
struct route_call {
    const struct plugin_route *rt;
    const char *query; /* NULL when the URL had none */
    void *state;       /* the plugin's req_state_size bytes, or NULL */
};

/* Endpoints the gateway answers itself (gateway.c, admin.c). A plugin
 * route may not cover any of them, whatever the method: the built-in one
 * would answer first and the plugin's never run. */
static const char *const builtin_paths[] = {
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/models",
    "/healthz",
    "/metrics",
    "/admin/",
};

/* Registered in create() on the main thread; build moves them into the
 * generation. Main thread only, so no lock. */
static struct plugin_route *pending;
static size_t pending_n, pending_cap;

static bool valid_method(const char *m)
{
    size_t n = m ? strlen(m) : 0;
    if (n == 0 || n >= sizeof((struct plugin_route *)0)->method)
        return false;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 'A' || m[i] > 'Z')
            return false;
    return true;
}

/* Absolute, no query or fragment, no "." or ".." segments, only the
 * characters OpenAI-style paths use. */
static bool valid_path(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > ROUTE_MAX_PATH || p[0] != '/' || strstr(p, "//") ||
        strstr(p, "/./") || strstr(p, "/../"))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '/' || c == '-' || c == '_' ||
              c == '.' || c == '~'))
            return false;
    }
    return true;
}

static int route_add(const struct sluice_host *h, const char *method,
                     const char *path, sluice_route_fn handler, void *arg)
{
    if (worker_current())
        return SLUICE_EPHASE; /* create() runs on the main thread */
    if (!valid_method(method) || !valid_path(path) || !handler)
        return SLUICE_EINVAL;
    if (pending_n == pending_cap) {
        size_t cap = pending_cap ? pending_cap * 2 : 8;
        struct plugin_route *grown = realloc(pending, cap * sizeof *grown);
        if (!grown)
            return SLUICE_ENOMEM;
        pending = grown;
        pending_cap = cap;
    }
    struct plugin_route *rt = &pending[pending_n++];
    memset(rt, 0, sizeof *rt);
    snprintf(rt->method, sizeof rt->method, "%s", method);
    rt->path_len = strlen(path);
    memcpy(rt->path, path, rt->path_len + 1);
    rt->prefix = path[rt->path_len - 1] == '/';
    rt->handler = handler;
    rt->arg = arg;
    rt->inst = ((const struct instance_host *)h)->inst;
    return SLUICE_OK;
}

static bool covers(const struct plugin_route *rt, const char *path)
{
    if (rt->prefix)
        return strncmp(path, rt->path, rt->path_len) == 0;
    return strcmp(path, rt->path) == 0;
}

/* Some request path could match both. */
static bool overlap(const struct plugin_route *a, const struct plugin_route *b)
{
    return strcmp(a->path, b->path) == 0 || (a->prefix && covers(a, b->path)) ||
           (b->prefix && covers(b, a->path));
}

static bool belongs(const struct plugin_route *rt, const struct generation *g)
{
    return rt->inst >= g->inst && rt->inst < g->inst + g->count;
}

/* Moves g's routes out of the pending list into `out` (NULL: drops
 * them); returns how many there were. */
static size_t take_pending(const struct generation *g, struct plugin_route *out)
{
    size_t kept = 0, taken = 0;
    for (size_t i = 0; i < pending_n; i++) {
        if (!belongs(&pending[i], g))
            pending[kept++] = pending[i];
        else if (out)
            out[taken++] = pending[i];
        else
            taken++;
    }
    pending_n = kept;
    return taken;
}

static int conflict(const struct plugin_routes *t, char *err, size_t errlen)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct plugin_route *a = &t->items[i];
        for (size_t b = 0; b < sizeof builtin_paths / sizeof *builtin_paths;
             b++) {
            struct plugin_route builtin = {.prefix = true};
            snprintf(builtin.path, sizeof builtin.path, "%s", builtin_paths[b]);
            builtin.path_len = strlen(builtin.path);
            builtin.prefix = builtin.path[builtin.path_len - 1] == '/';
            if (overlap(a, &builtin)) {
                snprintf(err, errlen,
                         "pipeline[%zu] (%s): the route %s %s covers the "
                         "built-in endpoint %s",
                         a->inst->index, a->inst->name, a->method, a->path,
                         builtin.path);
                return -1;
            }
        }
        for (size_t j = i + 1; j < t->n; j++) {
            const struct plugin_route *b = &t->items[j];
            if (strcmp(a->method, b->method) != 0 || !overlap(a, b))
                continue;
            /* One instance may nest its own prefixes; never two
             * instances, and never the same route twice. */
            if (a->inst == b->inst && strcmp(a->path, b->path) != 0)
                continue;
            /* Name the later instance: the one that came to the party. */
            const struct plugin_route *late =
                a->inst->index > b->inst->index ? a : b;
            const struct plugin_route *early = late == a ? b : a;
            snprintf(err, errlen,
                     "pipeline[%zu] (%s): the route %s %s overlaps the route "
                     "%s %s of pipeline[%zu] (%s)",
                     late->inst->index, late->inst->name, late->method,
                     late->path, early->method, early->path, early->inst->index,
                     early->inst->name);
            return -1;
        }
    }
    return 0;
}

static int longest_first(const void *a, const void *b)
{
    const struct plugin_route *x = a, *y = b;
    if (x->path_len != y->path_len)
        return x->path_len < y->path_len ? 1 : -1;
    int c = strcmp(x->path, y->path);
    return c ? c : strcmp(x->method, y->method); /* Allow: in order */
}

int plugin_routes_build(struct generation *g, char *err, size_t errlen)
{
    size_t n = 0;
    for (size_t i = 0; i < pending_n; i++)
        n += belongs(&pending[i], g);
    if (n == 0)
        return 0;
    struct plugin_routes *t = malloc(sizeof *t + n * sizeof t->items[0]);
    if (!t) {
        take_pending(g, NULL);
        snprintf(err, errlen, "out of memory for plugin routes");
        return -1;
    }
    t->n = take_pending(g, t->items);
    qsort(t->items, t->n, sizeof t->items[0], longest_first);
    if (conflict(t, err, errlen)) {
        free(t);
        return -1;
    }
    g->routes = t;
    return 0;
}

void plugin_routes_free(struct generation *g)
{
    take_pending(g, NULL);
    free(g->routes);
    g->routes = NULL;
}

enum route_match plugin_routes_match(const struct plugin_routes *t,
                                     const char *method, const char *path,
                                     const struct plugin_route **out,
                                     char *allow, size_t allow_cap)
{
    const struct plugin_route *first = NULL;
    for (size_t i = 0; t && i < t->n; i++) {
        const struct plugin_route *rt = &t->items[i];
        if (!covers(rt, path))
            continue;
        if (strcmp(rt->method, method) == 0) {
            *out = rt;
            return ROUTE_FOUND;
        }
        if (!first)
            first = rt;
    }
    if (!first)
        return ROUTE_NONE;
    /* Allow: the methods of the most specific path that matched. */
    size_t at = (size_t)snprintf(allow, allow_cap, "Allow:");
    const char *sep = " ";
    for (size_t i = 0; i < t->n && at < allow_cap; i++) {
        if (strcmp(t->items[i].path, first->path) != 0)
            continue;
        at += (size_t)snprintf(allow + at, allow_cap - at, "%s%s", sep,
                               t->items[i].method);
        sep = ", ";
    }
    if (at < allow_cap)
        snprintf(allow + at, allow_cap - at, "\r\n");
    return ROUTE_WRONG_METHOD;
}

const char *plugin_route_path(const struct plugin_route *rt)
{
    return rt->path;
}

/* ---- running a route request ---- */

void plugin_route_start(struct sluice_req *r, const struct plugin_route *rt)
{
    struct route_call *rc = arena_alloc(&r->arena, sizeof *rc);
    const char *query = http_query(r->ex);
    size_t state_size = rt->inst->desc->req_state_size;
    if (rc) {
        rc->rt = rt;
        rc->query =
            query ? arena_strndup(&r->arena, query, strlen(query)) : NULL;
        rc->state = state_size ? arena_alloc(&r->arena, state_size) : NULL;
    }
    if (!rc || !r->endpoint || (query && !rc->query) ||
        (state_size && !rc->state)) {
        respond_set_error(r, 503, "api_error", NULL,
                          "The gateway is out of memory.", NULL, 0);
        respond_send_local(r);
        return;
    }
    r->route = rc;
    /* Not copied (uploads are large): the body lives in the exchange, and
     * the handler only runs while the client is still there. No pipeline
     * plugin's on_log sees a route request. */
    size_t len = 0;
    r->body = (char *)http_body(r->ex, &len);
    r->body_len = len;
    plugin_route_run(r);
}

void plugin_route_run(struct sluice_req *r)
{
    const struct plugin_route *rt = r->route->rt;
    r->in_hook = true;
    enum sluice_action act = rt->handler(rt->arg, r, r->route->state);
    r->in_hook = false;
    if (act == SLUICE_SUSPEND) {
        if (worker_suspend(r->w, r))
            return;
        if (r->resume_timer)
            evtimer_del(r->resume_timer);
        respond_set_error(r, 503, "api_error", NULL,
                          "The gateway is out of memory.", NULL, 0);
    } else if (act != SLUICE_RESPOND || !r->has_local_response) {
        log_msg(LOG_ERROR, "routes",
                "plugin instance '%s': the handler of %s %s returned "
                "without an answer",
                rt->inst->name, rt->method, rt->path);
        respond_set_error(r, 500, "api_error", NULL, "a gateway plugin failed",
                          NULL, 0);
    }
    respond_send_local(r);
}

/* ---- host members ---- */

static struct sluice_str span(const char *p, size_t len)
{
    struct sluice_str s = {p, p ? len : 0};
    return s;
}

static struct sluice_str req_method(const struct sluice_req *r)
{
    const char *m = r->route ? r->route->rt->method : "POST";
    return span(m, strlen(m));
}

static struct sluice_str req_query(const struct sluice_req *r)
{
    const char *q =
        r->route ? r->route->query : (r->ex ? http_query(r->ex) : NULL);
    return span(q, q ? strlen(q) : 0);
}

static struct sluice_str from_span(struct multipart_span s)
{
    return span(s.ptr, s.len);
}

static int multipart_parse(const struct sluice_host *h,
                           struct sluice_str content_type,
                           struct sluice_str body,
                           struct sluice_form_part *parts, size_t max_parts,
                           size_t *n_parts, const char **error)
{
    const char *ignored;
    struct multipart_reader rd;
    struct multipart_part p;
    (void)h;
    if (!error)
        error = &ignored;
    *error = NULL;
    *n_parts = 0;
    if (!multipart_open(&rd, content_type.ptr, content_type.len, body.ptr,
                        body.len, error))
        return SLUICE_EINVAL;
    int rc;
    while ((rc = multipart_next(&rd, &p, error)) > 0) {
        if (*n_parts == max_parts) {
            *error = "the form has too many parts";
            return SLUICE_ETOOBIG;
        }
        parts[*n_parts].name = from_span(p.name);
        parts[*n_parts].filename = from_span(p.filename);
        parts[*n_parts].content_type = from_span(p.content_type);
        parts[*n_parts].data = from_span(p.data);
        (*n_parts)++;
    }
    return rc < 0 ? SLUICE_EINVAL : SLUICE_OK;
}

void plugin_routes_host_fill(struct sluice_host *h)
{
    h->route_add = route_add;
    h->req_method = req_method;
    h->req_query = req_query;
    h->multipart_parse = multipart_parse;
}
