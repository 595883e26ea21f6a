/* The fake host's SDK 1.1 upstream calls and timers. Nothing runs by
 * itself: calls are recorded until the test answers them
 * (sluice_test_call_finish), timers run when the test asks
 * (sluice_test_timers_run) at the fake clock. State is kept per host in a
 * small registry, so testing.c only attaches and detaches it. */
/* Built with hidden visibility: only the sluice_test_* API is exported. */
#pragma GCC visibility push(default)
#include "sluice/testing.h"
#pragma GCC visibility pop

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "testing_services.h"

struct fake_call {
    sluice_call_t id;
    char *upstream, *path, *body; /* body NULL: a GET */
    sluice_call_fn done;
    void *arg;
};

struct fake_timer {
    sluice_timer_t id;
    unsigned worker;
    uint64_t due_ns, period_ns;
    sluice_timer_fn fn;
    void *arg;
};

struct fake_services {
    const struct sluice_host *h;
    struct fake_services *next;
    uint64_t next_id;
    struct fake_call *calls;
    size_t ncalls, call_cap;
    struct fake_timer *timers;
    size_t ntimers, timer_cap;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_services *registry;

static struct fake_services *of(const struct sluice_host *h)
{
    pthread_mutex_lock(&registry_lock);
    struct fake_services *s = registry;
    while (s && s->h != h)
        s = s->next;
    pthread_mutex_unlock(&registry_lock);
    return s;
}

static bool grow(void **items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 8;
    void *p = realloc(*items, c * size);
    if (!p)
        return false;
    *items = p;
    *cap = c;
    return true;
}

static bool header_ok(const char *h)
{
    const char *colon = strchr(h, ':');
    return colon && colon != h && !strpbrk(h, "\r\n") &&
           !((size_t)(colon - h) == 13 &&
             strncasecmp(h, "authorization", 13) == 0);
}

static int call_upstream(const struct sluice_host *h, struct sluice_req *r,
                         const char *upstream, const char *path,
                         struct sluice_str body, const char *const *headers,
                         sluice_call_fn done, void *arg, sluice_call_t *out)
{
    struct fake_services *s = of(h);
    (void)r;
    if (out)
        *out = 0;
    if (!s)
        return SLUICE_ENOMEM;
    if (!done || !upstream || !path || path[0] != '/')
        return SLUICE_EINVAL;
    for (size_t i = 0; headers && headers[i]; i++)
        if (!header_ok(headers[i]))
            return SLUICE_EINVAL;
    if (!grow((void **)&s->calls, &s->call_cap, s->ncalls, sizeof *s->calls))
        return SLUICE_ENOMEM;
    struct fake_call *c = &s->calls[s->ncalls];
    memset(c, 0, sizeof *c);
    c->upstream = strdup(upstream);
    c->path = strdup(path);
    if (body.ptr && (c->body = malloc(body.len + 1))) {
        memcpy(c->body, body.ptr, body.len);
        c->body[body.len] = '\0';
    }
    if (!c->upstream || !c->path || (body.ptr && !c->body)) {
        free(c->upstream);
        free(c->path);
        free(c->body);
        return SLUICE_ENOMEM;
    }
    c->id = ++s->next_id;
    c->done = done;
    c->arg = arg;
    s->ncalls++;
    if (out)
        *out = c->id;
    return SLUICE_OK;
}

static void drop_call(struct fake_services *s, size_t i)
{
    free(s->calls[i].upstream);
    free(s->calls[i].path);
    free(s->calls[i].body);
    memmove(&s->calls[i], &s->calls[i + 1],
            (s->ncalls - i - 1) * sizeof *s->calls);
    s->ncalls--;
}

static int call_cancel(const struct sluice_host *h, sluice_call_t id)
{
    struct fake_services *s = of(h);
    for (size_t i = 0; s && i < s->ncalls; i++) {
        if (s->calls[i].id == id) {
            drop_call(s, i);
            return SLUICE_OK;
        }
    }
    return SLUICE_ENOENT;
}

static int add_timer(struct fake_services *s, sluice_timer_t id,
                     unsigned worker, uint64_t delay_ms, uint64_t period_ms,
                     sluice_timer_fn fn, void *arg)
{
    if (!grow((void **)&s->timers, &s->timer_cap, s->ntimers,
              sizeof *s->timers))
        return SLUICE_ENOMEM;
    s->timers[s->ntimers++] = (struct fake_timer){
        .id = id,
        .worker = worker,
        .due_ns = s->h->now_ns(s->h) + delay_ms * 1000000ull,
        .period_ns = period_ms * 1000000ull,
        .fn = fn,
        .arg = arg,
    };
    return SLUICE_OK;
}

static int timer_start(const struct sluice_host *h, unsigned worker,
                       uint64_t delay_ms, uint64_t period_ms,
                       sluice_timer_fn fn, void *arg, sluice_timer_t *out)
{
    struct fake_services *s = of(h);
    unsigned n = h->worker_count(h);
    if (out)
        *out = 0;
    if (!s)
        return SLUICE_ENOMEM;
    if (!fn || (worker != SLUICE_WORKER_ALL && worker >= n))
        return SLUICE_EINVAL;
    sluice_timer_t id = ++s->next_id;
    for (unsigned w = 0; w < n; w++) {
        if (worker != SLUICE_WORKER_ALL && w != worker)
            continue;
        int rc = add_timer(s, id, w, delay_ms, period_ms, fn, arg);
        if (rc != SLUICE_OK)
            return rc;
    }
    if (out)
        *out = id;
    return SLUICE_OK;
}

/* Every worker's copy: the fake host has no threads to tell apart. */
static int timer_cancel(const struct sluice_host *h, sluice_timer_t id)
{
    struct fake_services *s = of(h);
    int rc = SLUICE_ENOENT;
    for (size_t i = 0; s && i < s->ntimers;) {
        if (s->timers[i].id == id) {
            s->timers[i] = s->timers[--s->ntimers];
            rc = SLUICE_OK;
        } else {
            i++;
        }
    }
    return rc;
}

void sluice_testing_services_attach(struct sluice_host *h)
{
    struct fake_services *s = calloc(1, sizeof *s);
    if (!s)
        return; /* the members stay NULL: SLUICE_HOST_HAS says no */
    s->h = h;
    pthread_mutex_lock(&registry_lock);
    s->next = registry;
    registry = s;
    pthread_mutex_unlock(&registry_lock);
    h->call_upstream = call_upstream;
    h->call_cancel = call_cancel;
    h->timer_start = timer_start;
    h->timer_cancel = timer_cancel;
}

void sluice_testing_services_detach(const struct sluice_host *h)
{
    pthread_mutex_lock(&registry_lock);
    struct fake_services **p = &registry;
    while (*p && (*p)->h != h)
        p = &(*p)->next;
    struct fake_services *s = *p;
    if (s)
        *p = s->next;
    pthread_mutex_unlock(&registry_lock);
    if (!s)
        return;
    while (s->ncalls)
        drop_call(s, s->ncalls - 1);
    free(s->calls);
    free(s->timers);
    free(s);
}

/* ---- the test's side (sluice/testing.h) ---- */

static struct fake_call *pending(struct sluice_test_host *t, size_t i)
{
    struct fake_services *s = of(sluice_test_host(t));
    return s && i < s->ncalls ? &s->calls[i] : NULL;
}

size_t sluice_test_calls_pending(struct sluice_test_host *t)
{
    struct fake_services *s = of(sluice_test_host(t));
    return s ? s->ncalls : 0;
}

const char *sluice_test_call_upstream(struct sluice_test_host *t, size_t i)
{
    struct fake_call *c = pending(t, i);
    return c ? c->upstream : NULL;
}

const char *sluice_test_call_path(struct sluice_test_host *t, size_t i)
{
    struct fake_call *c = pending(t, i);
    return c ? c->path : NULL;
}

const char *sluice_test_call_body(struct sluice_test_host *t, size_t i)
{
    struct fake_call *c = pending(t, i);
    return c ? c->body : NULL;
}

void sluice_test_call_finish(struct sluice_test_host *t, size_t i, int status,
                             enum sluice_outcome outcome, const char *body)
{
    struct fake_services *s = of(sluice_test_host(t));
    if (!s || i >= s->ncalls)
        return;
    struct fake_call c = s->calls[i];
    s->calls[i].upstream = s->calls[i].path = s->calls[i].body = NULL;
    drop_call(s, i); /* first: the callback may start another call */
    struct sluice_call_result res = {
        .status = status,
        .outcome = outcome,
        .body = {body, body ? strlen(body) : 0},
    };
    c.done(c.arg, &res);
    free(c.upstream);
    free(c.path);
    free(c.body);
}

unsigned sluice_test_timers_run(struct sluice_test_host *t, unsigned worker)
{
    const struct sluice_host *h = sluice_test_host(t);
    struct fake_services *s = of(h);
    unsigned ran = 0;
    if (!s)
        return 0;
    /* Each due timer once: ids due now, collected before any runs (a
     * callback may start or cancel timers). */
    uint64_t now = h->now_ns(h);
    size_t n = 0;
    sluice_timer_t *due = malloc((s->ntimers + 1) * sizeof *due);
    if (!due)
        return 0;
    for (size_t i = 0; i < s->ntimers; i++)
        if (s->timers[i].worker == worker && s->timers[i].due_ns <= now)
            due[n++] = s->timers[i].id;
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < s->ntimers; i++) {
            struct fake_timer *tm = &s->timers[i];
            if (tm->id != due[k] || tm->worker != worker || tm->due_ns > now)
                continue;
            struct fake_timer copy = *tm;
            if (copy.period_ns)
                tm->due_ns = now + copy.period_ns;
            else
                s->timers[i] = s->timers[--s->ntimers];
            copy.fn(copy.arg, worker);
            ran++;
            break;
        }
    }
    free(due);
    return ran;
}
