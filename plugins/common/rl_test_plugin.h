/* Tests only: drive a limiter plugin through the SDK's fake host.
 * Include after <cmocka.h>. */
#ifndef RL_TEST_PLUGIN_H
#define RL_TEST_PLUGIN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/testing.h"

const struct sluice_plugin *sluice_plugin_v1(void);

/* A valid chat body (the fake host keeps dangling fields for invalid
 * ones). */
#define RL_TEST_BODY                                                           \
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

struct tp {
    struct sluice_test_host *t;
    const struct sluice_host *h;
    const struct sluice_plugin *p;
    void *self; /* destroyed with the host */
};

struct treq {
    struct sluice_req *r;
    void *st;
    enum sluice_action act;
};

/* Opens the plugin like the core; returns -1 with the error text in err. */
static inline int tp_try(struct tp *x, const char *json, char *err,
                         size_t errlen)
{
    x->t = sluice_test_host_new();
    x->h = sluice_test_host(x->t);
    x->p = sluice_plugin_v1();
    x->self = sluice_test_open(x->t, x->p, json);
    if (!x->self) {
        snprintf(err, errlen, "%s", sluice_test_open_error(x->t));
        return -1;
    }
    return 0;
}

static inline void tp_free(struct tp *x)
{
    sluice_test_host_free(x->t);
}

static inline void tp_init(struct tp *x, const char *json)
{
    char err[256];
    if (tp_try(x, json, err, sizeof err)) {
        fprintf(stderr, "create failed: %s\n", err);
        fail();
    }
}

static inline struct treq *treq_new(struct tp *x, const char *body)
{
    struct treq *q = calloc(1, sizeof *q);
    q->r = sluice_test_req_new(x->t, body ? body : RL_TEST_BODY);
    q->st = calloc(1, x->p->req_state_size ? x->p->req_state_size : 1);
    return q;
}

static inline enum sluice_action treq_run(struct tp *x, struct treq *q)
{
    q->act = x->p->on_request(x->self, q->r, q->st);
    return q->act;
}

/* Marks the request resumed (what the core does) and runs it again. */
static inline enum sluice_action treq_resume(struct tp *x, struct treq *q)
{
    sluice_test_req_mark_resumed(q->r);
    return treq_run(x, q);
}

/* Simulates the upstream answer and runs the response hooks. */
static inline void treq_respond(struct tp *x, struct treq *q, int status,
                                enum sluice_outcome outcome)
{
    sluice_test_req_set_response(q->r, status, outcome);
    if (x->p->on_upstream_response)
        x->p->on_upstream_response(x->self, q->r, q->st);
    if (x->p->on_response)
        x->p->on_response(x->self, q->r, q->st);
}

static inline void treq_end(struct tp *x, struct treq *q)
{
    if (x->p->on_log)
        x->p->on_log(x->self, q->r, q->st);
    sluice_test_req_free(q->r);
    free(q->st);
    free(q);
}

/* One request start to end; returns what on_request said. */
static inline enum sluice_action tp_once(struct tp *x, const char *body)
{
    struct treq *q = treq_new(x, body);
    enum sluice_action a = treq_run(x, q);
    treq_end(x, q);
    return a;
}

static inline const char *hdr(struct treq *q, const char *name)
{
    const char *v = sluice_test_resp_added_header(q->r, name);
    return v ? v : "(none)";
}

#endif
