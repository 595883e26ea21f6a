/* Group commit for the ledger: the request path queues rows, one writer
 * thread per ledger commits whatever is queued in one transaction and
 * wakes the requests waiting for their reservation to be durable. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ct_ledger_internal.h"
#include "sluice/host.h"

enum { OP_RESERVE = 0, OP_SETTLE = 1 };

struct op {
    struct op *next;
    int kind;
    int64_t id;
    struct ct_ledger_row row; /* texts point into text[] */
    const struct sluice_host *h;
    uint64_t ticket;
    const char *state; /* static strings */
    uint64_t prompt, cached, completion, cost;
    int64_t now_ms;
    char text[];
};

static size_t add_text(struct op *o, size_t at, struct ct_text *t)
{
    size_t n = t->len > 255 ? 255 : t->len;
    if (n)
        memcpy(o->text + at, t->ptr, n);
    o->text[at + n] = '\0';
    t->ptr = o->text + at;
    t->len = n;
    return at + n + 1;
}

/* Under q_mu: appends and returns the sequence the op will commit in. */
static uint64_t push(struct ct_ledger *l, struct op *o)
{
    pthread_mutex_lock(&l->q_mu);
    if (l->q_tail)
        l->q_tail->next = o;
    else
        l->q_head = o;
    l->q_tail = o;
    uint64_t seq = l->q_seq + 1; /* the batch after the one in flight */
    pthread_cond_signal(&l->q_cv);
    pthread_mutex_unlock(&l->q_mu);
    return seq;
}

uint64_t ct_ledger_reserve_async(struct ct_ledger *l,
                                 const struct ct_ledger_row *row, int64_t *id,
                                 const struct sluice_host *h, uint64_t ticket)
{
    struct ct_text *t;
    size_t cap = 7 * 256;
    struct op *o = calloc(1, sizeof *o + cap);
    if (!o)
        return 0;
    o->kind = OP_RESERVE;
    o->id = atomic_fetch_add(&l->next_id, 1);
    o->row = *row;
    size_t at = 0;
    struct ct_text *texts[] = {
        &o->row.request_id, &o->row.tenant, &o->row.user,    &o->row.key,
        &o->row.feature,    &o->row.model,  &o->row.upstream};
    for (size_t i = 0; i < 7; i++) {
        t = texts[i];
        at = add_text(o, at, t);
    }
    o->h = h;
    o->ticket = ticket;
    *id = o->id;
    return push(l, o);
}

void ct_ledger_settle_async(struct ct_ledger *l, int64_t id, const char *state,
                            const char *model, uint64_t prompt, uint64_t cached,
                            uint64_t completion, uint64_t cost, int64_t now_ms)
{
    struct op *o = calloc(1, sizeof *o + 256);
    if (!o) {
        atomic_fetch_add(&l->write_errors, 1);
        return;
    }
    o->kind = OP_SETTLE;
    o->id = id;
    o->state = state;
    struct ct_text m = {model, strlen(model)};
    add_text(o, 0, &m);
    o->row.model = m;
    o->prompt = prompt;
    o->cached = cached;
    o->completion = completion;
    o->cost = cost;
    o->now_ms = now_ms;
    push(l, o);
}

bool ct_ledger_committed(struct ct_ledger *l, uint64_t seq)
{
    return atomic_load(&l->committed) >= seq;
}

uint64_t ct_ledger_write_errors(struct ct_ledger *l)
{
    return atomic_load(&l->write_errors);
}

static void apply(struct ct_ledger *l, struct op *o)
{
    int rc;
    if (o->kind == OP_RESERVE)
        rc = ct_ledger_insert_locked(l, o->id, &o->row);
    else
        rc = ct_ledger_update_locked(l, o->id, o->state, o->row.model.ptr,
                                     o->prompt, o->cached, o->completion,
                                     o->cost, o->now_ms);
    if (rc)
        atomic_fetch_add(&l->write_errors, 1);
}

void *ct_ledger_writer(void *arg)
{
    struct ct_ledger *l = arg;
    pthread_mutex_lock(&l->q_mu);
    for (;;) {
        while (!l->q_head && !l->q_stop)
            pthread_cond_wait(&l->q_cv, &l->q_mu);
        if (!l->q_head && l->q_stop)
            break;
        struct op *batch = l->q_head;
        l->q_head = l->q_tail = NULL;
        uint64_t seq = ++l->q_seq;
        pthread_mutex_unlock(&l->q_mu);

        pthread_mutex_lock(&l->mu);
        bool tx = ct_ledger_exec_locked(l, "BEGIN") == 0;
        for (struct op *o = batch; o; o = o->next)
            apply(l, o);
        if (tx && ct_ledger_exec_locked(l, "COMMIT"))
            atomic_fetch_add(&l->write_errors, 1);
        pthread_mutex_unlock(&l->mu);

        atomic_store(&l->committed, seq);
        for (struct op *o = batch, *next; o; o = next) {
            next = o->next;
            if (o->h)
                o->h->wake(o->h, o->ticket);
            free(o);
        }
        pthread_mutex_lock(&l->q_mu);
        pthread_cond_broadcast(&l->q_done);
    }
    pthread_mutex_unlock(&l->q_mu);
    return NULL;
}

void ct_ledger_flush(struct ct_ledger *l)
{
    pthread_mutex_lock(&l->q_mu);
    uint64_t want = l->q_head ? l->q_seq + 1 : l->q_seq;
    while (atomic_load(&l->committed) < want)
        pthread_cond_wait(&l->q_done, &l->q_mu);
    pthread_mutex_unlock(&l->q_mu);
}
