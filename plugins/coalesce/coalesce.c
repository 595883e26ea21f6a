/* coalesce: identical in-flight requests share one upstream call (single
 * flight), streamed ones included.
 *
 * The first request with a given key (coalesce_key.c) becomes the leader
 * of a flight and goes on. Identical requests that arrive while the flight
 * is open become followers: each leaves a mailbox (a cell) on the flight,
 * takes a wake ticket and suspends with a safety deadline (max_wait_ms).
 * When the leader's upstream answer is complete (on_response), a
 * successful body is stored once, reference-counted, handed to every cell,
 * and the followers are woken; each then serves it with respond() and
 * "x-sluice-coalesced: 1". If the leader fails (no 2xx body, or it ended
 * without an upstream answer), followers are released to make their own
 * upstream calls, as they are when their deadline passes first. Requests
 * arriving after the answer but before the leader's on_log are served the
 * stored answer at once. The flight is removed in the leader's on_log.
 *
 * Locking: one mutex guards the flight table, flights and cells. Cells and
 * answers are owned by the plugin, not by request state, since the leader
 * writes them from its own thread; a follower frees its cell itself (on
 * re-entry or in on_log). wake() is called with the mutex released.
 *
 * Streams (SDK 1.1): the leader streams live to its own client while the
 * core assembles the stream (the descriptor sets whole_streams); its
 * on_response stores the assembled chat.completion like any answer, and
 * respond() replays it to each streamed follower as SSE. Followers thus
 * get the whole stream at once when the leader's ends, never a cut one.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/keymap.h"
#include "coalesce_key.h"
#include "sluice/host.h"
#include "sluice/plugin.h"

#define NS_PER_MS 1000000ull

enum { WHEN_TEMPERATURE_ZERO = 0, WHEN_ALWAYS = 1 };
enum { SCOPE_TENANT = 0, SCOPE_USER = 1, SCOPE_GLOBAL = 2 };

struct coalesce_config {
    int enabled_when;
    int scope;
    int64_t max_wait_ms;
    int64_t max_waiters;
    int64_t max_flights;
    struct sluice_cfg_list ignore_fields; /* of const char * */
};

/* The leader's answer, shared read-only by everyone it is served to. */
struct answer {
    atomic_uint refs;
    int status;
    size_t len;
    char body[];
};

enum cell_state { CELL_WAITING, CELL_ANSWERED, CELL_RELEASED };

struct flight;

/* A follower's mailbox. */
struct cell {
    struct cell *prev, *next; /* on the flight while waiting */
    struct flight *flight;    /* NULL once settled or detached */
    sluice_wake_t ticket;
    uint64_t deadline_ns;
    enum cell_state state;
    struct answer *answer; /* CELL_ANSWERED: a reference */
};

enum flight_state { FLIGHT_PENDING, FLIGHT_DONE, FLIGHT_FAILED };

struct flight {
    struct keymap_node node;
    unsigned char key[COALESCE_KEY_BYTES];
    enum flight_state state;
    struct answer *answer; /* FLIGHT_DONE */
    struct cell *cells;
    size_t waiting;
};

struct coalesce {
    const struct sluice_host *host;
    int enabled_when, scope;
    uint64_t max_wait_ms;
    size_t max_waiters, max_flights;
    bool streams; /* the host assembles streams (1.1 resp_whole_body) */
    struct coalesce_key_rules rules;

    pthread_mutex_t lock;
    struct keymap flights;

    struct sluice_metric *m_leaders, *m_followers, *m_fallthrough, *m_flights;
};

struct coalesce_req {
    struct flight *led;    /* this request leads it */
    struct cell *cell;     /* this request follows (waiting or woken) */
    struct answer *served; /* served to this request; kept until on_log
                              since respond() may not copy the body */
};

/* ---- config ---- */

static const char *const when_choices[] = {"temperature_zero", "always", NULL};
static const char *const scope_choices[] = {"tenant", "user", "global", NULL};

static const struct sluice_cfg_field field_name = {.type = SLUICE_CFG_STRING};

#define FIELD(n) offsetof(struct coalesce_config, n)
static const struct sluice_cfg_field coalesce_fields[] = {
    {.name = "enabled_when",
     .type = SLUICE_CFG_ENUM,
     .default_value = "\"temperature_zero\"",
     .choices = when_choices,
     .offset = FIELD(enabled_when),
     .help = "coalesce only temperature-0 requests (and embeddings), or all"},
    {.name = "scope",
     .type = SLUICE_CFG_ENUM,
     .default_value = "\"tenant\"",
     .choices = scope_choices,
     .offset = FIELD(scope),
     .help = "who may share an answer: same tenant, same user, anyone"},
    {.name = "max_wait_ms",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "60000",
     .min = 1,
     .max = 3600000,
     .offset = FIELD(max_wait_ms),
     .help = "a follower waits this long, then makes its own call"},
    {.name = "max_waiters",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "1000",
     .min = 1,
     .max = 1000000,
     .offset = FIELD(max_waiters),
     .help = "followers per flight; more make their own calls"},
    {.name = "max_flights",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .default_value = "10000",
     .min = 1,
     .max = 10000000,
     .offset = FIELD(max_flights),
     .help = "distinct requests tracked at once; more are not coalesced"},
    {.name = "ignore_fields",
     .type = SLUICE_CFG_ARRAY,
     .default_value = "[\"user\",\"stream_options\"]",
     .offset = FIELD(ignore_fields),
     .help = "top-level body fields left out of the key",
     .elem = &field_name,
     .max_items = COALESCE_MAX_IGNORED},
    {0},
};
#undef FIELD

/* The strings live in the core's copy of the config, as long as the
 * instance. */
static void read_ignore_list(struct coalesce *c,
                             const struct coalesce_config *cfg)
{
    for (size_t i = 0; i < cfg->ignore_fields.count; i++)
        c->rules.ignored[c->rules.ignored_count++] =
            *SLUICE_CFG_ITEM(cfg->ignore_fields, const char *, i);
}

/* ---- answers and cells ---- */

static struct answer *answer_new(int status, struct sluice_str body)
{
    struct answer *a = malloc(sizeof *a + body.len + 1);
    if (!a)
        return NULL;
    atomic_init(&a->refs, 1);
    a->status = status;
    a->len = body.len;
    memcpy(a->body, body.ptr, body.len);
    a->body[body.len] = '\0';
    return a;
}

static struct answer *answer_ref(struct answer *a)
{
    if (a)
        atomic_fetch_add(&a->refs, 1);
    return a;
}

static void answer_unref(struct answer *a)
{
    if (a && atomic_fetch_sub(&a->refs, 1) == 1)
        free(a);
}

static void cell_unlink(struct cell *cell)
{
    struct flight *f = cell->flight;
    if (cell->prev)
        cell->prev->next = cell->next;
    else
        f->cells = cell->next;
    if (cell->next)
        cell->next->prev = cell->prev;
    cell->prev = cell->next = NULL;
    cell->flight = NULL;
    f->waiting--;
}

/* Tickets to wake once the lock is released. */
struct wake_list {
    sluice_wake_t *tickets;
    size_t n;
};

/* Hands the outcome to every waiting follower (lock held). */
static void settle(struct coalesce *c, struct flight *f, struct answer *ans,
                   struct wake_list *wl)
{
    wl->n = 0;
    wl->tickets = f->waiting ? malloc(f->waiting * sizeof *wl->tickets) : NULL;
    while (f->cells) {
        struct cell *cell = f->cells;
        cell_unlink(cell);
        cell->state = ans ? CELL_ANSWERED : CELL_RELEASED;
        cell->answer = answer_ref(ans);
        if (wl->tickets)
            wl->tickets[wl->n++] = cell->ticket;
        else
            c->host->wake(c->host, cell->ticket); /* no memory: wake here */
    }
}

static void wake_all(struct coalesce *c, struct wake_list *wl)
{
    for (size_t i = 0; i < wl->n; i++)
        c->host->wake(c->host, wl->tickets[i]);
    free(wl->tickets);
}

/* ---- request path ---- */

static bool is_endpoint(struct sluice_str ep, const char *path)
{
    size_t n = strlen(path);
    return ep.len == n && memcmp(ep.ptr, path, n) == 0;
}

static bool streamable(const struct sluice_host *h, struct sluice_req *r)
{
    struct sluice_str ep = h->req_endpoint(r);
    return is_endpoint(ep, "/v1/chat/completions") ||
           is_endpoint(ep, "/v1/completions");
}

static bool eligible(const struct coalesce *c, struct sluice_req *r,
                     const json_t *body)
{
    const struct sluice_host *h = c->host;

    if (!body)
        return false;
    /* Streams only where the host can give their whole answer, and
     * only for chat and completions (whose answers it assembles). */
    if (h->req_stream(r) && !(c->streams && streamable(h, r)))
        return false;
    if (c->enabled_when == WHEN_ALWAYS)
        return true;
    struct sluice_str ep = h->req_endpoint(r);
    /* Embeddings are deterministic whatever the temperature. */
    if (is_endpoint(ep, "/v1/embeddings"))
        return true;
    return coalesce_temperature_zero(body);
}

static int make_key(const struct coalesce *c, struct sluice_req *r,
                    const json_t *body, unsigned char key[])
{
    const struct sluice_host *h = c->host;
    char scope[512];
    int n = 0;

    if (c->scope != SCOPE_GLOBAL) {
        struct sluice_str t = h->req_identity(r, SLUICE_ID_TENANT);
        struct sluice_str u = h->req_identity(r, SLUICE_ID_USER);
        n = snprintf(scope, sizeof scope, "%.*s", (int)t.len,
                     t.ptr ? t.ptr : "");
        if (c->scope == SCOPE_USER && n >= 0 && (size_t)n < sizeof scope)
            n += snprintf(scope + n, sizeof scope - (size_t)n, "%c%.*s", 0,
                          (int)u.len, u.ptr ? u.ptr : "");
        if (n < 0 || (size_t)n >= sizeof scope)
            return -1;
    }
    struct sluice_str m = h->req_target_model(r);
    struct sluice_str ep = h->req_endpoint(r);
    return coalesce_key_make(&c->rules,
                             (struct coalesce_part){scope, (size_t)n},
                             (struct coalesce_part){m.ptr, m.len},
                             (struct coalesce_part){ep.ptr, ep.len}, body, key);
}

static enum sluice_action serve(struct coalesce *c, struct sluice_req *r,
                                struct coalesce_req *st, struct answer *ans)
{
    const struct sluice_host *h = c->host;
    struct sluice_str one = {"1", 1};
    struct sluice_str body = {ans->body, ans->len};

    st->served = ans;
    h->counter_add(c->m_followers, 1);
    h->resp_add_header(r, "x-sluice-coalesced", one);
    h->var_set(r, "sluice.coalesced", one);
    return h->respond(r, ans->status, "application/json", body);
}

static enum sluice_action go_alone(struct coalesce *c)
{
    c->host->counter_add(c->m_fallthrough, 1);
    return SLUICE_CONTINUE;
}

/* Back after the leader's wake or the deadline timer, in either order. */
static enum sluice_action follower_resume(struct coalesce *c,
                                          struct sluice_req *r,
                                          struct coalesce_req *st)
{
    const struct sluice_host *h = c->host;
    struct cell *cell = st->cell;
    uint64_t now = h->now_ns(h);

    pthread_mutex_lock(&c->lock);
    if (cell->state == CELL_WAITING && now < cell->deadline_ns) {
        uint64_t left = (cell->deadline_ns - now + NS_PER_MS - 1) / NS_PER_MS;
        pthread_mutex_unlock(&c->lock);
        h->resume_after(r, left); /* early resume: keep waiting */
        return SLUICE_SUSPEND;
    }
    if (cell->state == CELL_WAITING)
        cell_unlink(cell); /* waited long enough */
    enum cell_state state = cell->state;
    struct answer *ans = cell->answer;
    pthread_mutex_unlock(&c->lock);

    st->cell = NULL;
    free(cell);
    if (state == CELL_ANSWERED)
        return serve(c, r, st, ans);
    return go_alone(c);
}

static enum sluice_action join(struct coalesce *c, struct sluice_req *r,
                               struct coalesce_req *st, struct flight *f)
{
    const struct sluice_host *h = c->host;
    struct cell *cell;

    switch (f->state) {
    case FLIGHT_DONE: {
        struct answer *ans = answer_ref(f->answer);
        pthread_mutex_unlock(&c->lock);
        return serve(c, r, st, ans);
    }
    case FLIGHT_FAILED:
        pthread_mutex_unlock(&c->lock);
        return go_alone(c);
    case FLIGHT_PENDING:
        break;
    }
    if (f->waiting >= c->max_waiters || !(cell = calloc(1, sizeof *cell))) {
        pthread_mutex_unlock(&c->lock);
        return go_alone(c);
    }
    cell->ticket = h->wake_token(r);
    cell->deadline_ns = h->now_ns(h) + c->max_wait_ms * NS_PER_MS;
    cell->flight = f;
    cell->next = f->cells;
    if (f->cells)
        f->cells->prev = cell;
    f->cells = cell;
    f->waiting++;
    pthread_mutex_unlock(&c->lock);

    st->cell = cell;
    h->resume_after(r, c->max_wait_ms);
    return SLUICE_SUSPEND;
}

static enum sluice_action coalesce_on_request(void *self, struct sluice_req *r,
                                              void *state)
{
    struct coalesce *c = self;
    struct coalesce_req *st = state;
    const json_t *body = c->host->req_json(r);
    unsigned char key[COALESCE_KEY_BYTES];

    if (st->cell)
        return follower_resume(c, r, st);
    if (st->led || st->served || !eligible(c, r, body) ||
        make_key(c, r, body, key))
        return SLUICE_CONTINUE;

    uint64_t hash = keymap_hash(key, sizeof key);
    pthread_mutex_lock(&c->lock);
    struct keymap_node *n = keymap_find(&c->flights, key, sizeof key, hash);
    if (n)
        return join(c, r, st, keymap_entry(n, struct flight, node));

    struct flight *f = NULL;
    if (c->flights.count < c->max_flights)
        f = calloc(1, sizeof *f);
    if (!f) {
        pthread_mutex_unlock(&c->lock);
        return go_alone(c);
    }
    memcpy(f->key, key, sizeof key);
    f->node.key = f->key;
    f->node.key_len = sizeof f->key;
    f->node.hash = hash;
    keymap_insert(&c->flights, &f->node);
    c->host->gauge_set(c->m_flights, (double)c->flights.count);
    pthread_mutex_unlock(&c->lock);

    st->led = f;
    c->host->counter_add(c->m_leaders, 1);
    return SLUICE_CONTINUE;
}

/* The leader's upstream exchange is over: share the answer or release. */
static void coalesce_on_response(void *self, struct sluice_req *r, void *state)
{
    struct coalesce *c = self;
    struct coalesce_req *st = state;
    const struct sluice_host *h = c->host;
    struct flight *f = st->led;
    struct wake_list wl;

    if (!f)
        return;
    int status = h->resp_status(r);
    /* For a stream: the chat.completion assembled from it, empty when
     * it was cut (the followers are then released). */
    struct sluice_str body =
        c->streams ? h->resp_whole_body(r) : h->resp_body(r);
    struct answer *ans = NULL;
    if (h->resp_outcome(r) == SLUICE_OUTCOME_OK && status >= 200 &&
        status < 300 && body.len)
        ans = answer_new(status, body);

    pthread_mutex_lock(&c->lock);
    if (f->state != FLIGHT_PENDING) { /* called twice: keep the first */
        pthread_mutex_unlock(&c->lock);
        answer_unref(ans);
        return;
    }
    f->state = ans ? FLIGHT_DONE : FLIGHT_FAILED;
    f->answer = ans;
    settle(c, f, ans, &wl);
    pthread_mutex_unlock(&c->lock);
    wake_all(c, &wl);
}

static void coalesce_on_log(void *self, struct sluice_req *r, void *state)
{
    struct coalesce *c = self;
    struct coalesce_req *st = state;
    struct flight *f = st->led;
    struct cell *cell = st->cell;
    struct wake_list wl = {NULL, 0};
    struct answer *cell_answer = NULL;

    (void)r;
    if (!f && !cell && !st->served)
        return;
    pthread_mutex_lock(&c->lock);
    if (f) {
        if (f->state == FLIGHT_PENDING) { /* ended without an answer */
            f->state = FLIGHT_FAILED;
            settle(c, f, NULL, &wl);
        }
        keymap_remove(&c->flights, &f->node);
        c->host->gauge_set(c->m_flights, (double)c->flights.count);
    }
    if (cell) { /* a follower that ended while waiting or before resuming */
        if (cell->flight)
            cell_unlink(cell);
        cell_answer = cell->answer;
    }
    pthread_mutex_unlock(&c->lock);
    wake_all(c, &wl);
    if (f) {
        answer_unref(f->answer);
        free(f);
    }
    answer_unref(cell_answer);
    free(cell);
    answer_unref(st->served);
    st->led = NULL;
    st->cell = NULL;
    st->served = NULL;
}

/* ---- status and lifetime ---- */

static void count_waiting(struct keymap_node *node, void *arg)
{
    *(size_t *)arg += keymap_entry(node, struct flight, node)->waiting;
}

static size_t coalesce_status_json(void *self, char *buf, size_t cap)
{
    struct coalesce *c = self;
    size_t waiting = 0, flights;

    pthread_mutex_lock(&c->lock);
    flights = c->flights.count;
    keymap_each(&c->flights, count_waiting, &waiting);
    pthread_mutex_unlock(&c->lock);
    int n = snprintf(buf, cap,
                     "{\"flights\":%zu,\"waiting_followers\":%zu,"
                     "\"max_flights\":%zu,\"max_waiters\":%zu}",
                     flights, waiting, c->max_flights, c->max_waiters);
    return n > 0 ? (size_t)n : 0;
}

static void coalesce_destroy(void *self)
{
    struct coalesce *c = self;
    if (!c)
        return;
    /* No request can reach the instance now, so no flight is left. */
    keymap_fini(&c->flights);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static int coalesce_create(const struct sluice_host *host, const void *config,
                           struct sluice_str raw_json, void **self,
                           struct sluice_error *err)
{
    const struct coalesce_config *cfg = config;
    struct coalesce *c = calloc(1, sizeof *c);

    if (!c) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    c->host = host;
    c->enabled_when = cfg->enabled_when;
    c->scope = cfg->scope;
    c->max_wait_ms = (uint64_t)cfg->max_wait_ms;
    c->max_waiters = (size_t)cfg->max_waiters;
    c->max_flights = (size_t)cfg->max_flights;
    c->streams = SLUICE_HOST_HAS(host, resp_whole_body);
    /* A per-instance seed: keys cannot be precomputed from outside. */
    c->rules.seed = host->random_u64(host);
    pthread_mutex_init(&c->lock, NULL);
    read_ignore_list(c, cfg);
    if (keymap_init(&c->flights,
                    c->max_flights < 4096 ? c->max_flights : 4096)) {
        snprintf(err->message, sizeof err->message, "out of memory");
        goto fail;
    }
    c->m_leaders = host->counter(host, "sluice_coalesce_leaders_total",
                                 "requests that made the shared call");
    c->m_followers = host->counter(host, "sluice_coalesce_followers_total",
                                   "requests answered from a shared call");
    c->m_fallthrough =
        host->counter(host, "sluice_coalesce_fallthrough_total",
                      "would-be followers that made their own call");
    c->m_flights = host->gauge(host, "sluice_coalesce_flights",
                               "distinct requests in flight");
    host->gauge_set(c->m_flights, 0);
    *self = c;
    return 0;
fail:
    coalesce_destroy(c);
    return -1;
}

static const struct sluice_plugin coalesce_plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "coalesce",
    .version = "1.1.0",
    .summary = "identical in-flight requests share one upstream call",
    .config = coalesce_fields,
    .config_size = sizeof(struct coalesce_config),
    .req_state_size = sizeof(struct coalesce_req),
    .create = coalesce_create,
    .destroy = coalesce_destroy,
    .on_request = coalesce_on_request,
    .on_response = coalesce_on_response,
    .on_log = coalesce_on_log,
    .status_json = coalesce_status_json,
    .whole_streams = true,
};

SLUICE_PLUGIN_EXPORT(coalesce_plugin)
