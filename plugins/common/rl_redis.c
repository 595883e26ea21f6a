#include "rl_redis.h"

#include <errno.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SCRIPTS 8

enum conn_state { ST_DOWN, ST_CONNECTING, ST_UP };

struct rl_redis {
    struct event_base *base;
    struct rl_redis_config cfg;
    redisAsyncContext *ac;
    enum conn_state state;
    bool reported_up;
    bool freeing;
    uint32_t backoff_ms;
    uint32_t timeouts_in_row;
    struct event *retry_timer;   /* reconnect after backoff */
    struct event *connect_timer; /* connect + first reply deadline */
    struct event *teardown_ev;   /* drop the connection outside hiredis */
    char teardown_why[96];
    const char *const *scripts;
    size_t nscripts;
    char sha[MAX_SCRIPTS][41];
    rl_redis_state_fn state_fn;
    void *state_arg;
    char last_error[128]; /* the latest error reply, for logs */
};

struct rl_redis_call {
    struct rl_redis *client;
    struct event *timer;
    rl_redis_reply_fn fn;
    void *arg;
    size_t script;
    bool notified; /* fn ran, timed out or was cancelled */
    bool pending;  /* hiredis still owes us a callback */
    bool retried;  /* NOSCRIPT retry done */
    size_t argc;   /* full command: EVALSHA sha nkeys args... */
    const char **argv;
    size_t *argvlen;
};

static void connect_now(struct rl_redis *c);

/* ---- URL ---- */

int rl_redis_parse_url(const char *url, struct rl_redis_config *cfg, char *err,
                       size_t errlen)
{
    const char *p = url, *at, *host, *host_end, *port = NULL;
    size_t n;

    cfg->port = 6379;
    cfg->db = 0;
    cfg->password[0] = '\0';
    if (!url || !*url) {
        snprintf(err, errlen, "is empty");
        return -1;
    }
    if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    else if (strstr(p, "://")) {
        snprintf(err, errlen, "only redis:// URLs are supported");
        return -1;
    }
    at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        n = (size_t)(at - pw);
        if (n >= sizeof cfg->password) {
            snprintf(err, errlen, "password too long");
            return -1;
        }
        memcpy(cfg->password, pw, n);
        cfg->password[n] = '\0';
        p = at + 1;
    }
    if (*p == '[') {
        host = p + 1;
        host_end = strchr(host, ']');
        if (!host_end) {
            snprintf(err, errlen, "unterminated '[' in host");
            return -1;
        }
        p = host_end + 1;
    } else {
        host = p;
        host_end = p + strcspn(p, ":/");
        p = host_end;
    }
    if (*p == ':')
        port = ++p;
    p += strcspn(p, "/");
    n = (size_t)(host_end - host);
    if (n == 0 || n >= sizeof cfg->host) {
        snprintf(err, errlen, "missing or too long host");
        return -1;
    }
    memcpy(cfg->host, host, n);
    cfg->host[n] = '\0';
    if (port) {
        char *end;
        long v = strtol(port, &end, 10);
        if (end == port || (*end && *end != '/') || v < 1 || v > 65535) {
            snprintf(err, errlen, "bad port");
            return -1;
        }
        cfg->port = (int)v;
    }
    if (*p == '/' && p[1]) {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (*end || v < 0 || v > 65535) {
            snprintf(err, errlen, "bad database number");
            return -1;
        }
        cfg->db = (int)v;
    }
    return 0;
}

/* ---- state ---- */

static void report(struct rl_redis *c, bool up, const char *why)
{
    if (c->reported_up == up)
        return;
    c->reported_up = up;
    if (c->state_fn)
        c->state_fn(c->state_arg, up, why);
}

static void schedule_retry(struct rl_redis *c)
{
    struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
    evtimer_add(c->retry_timer, &tv);
    c->backoff_ms = c->backoff_ms * 2 > c->cfg.backoff_max_ms
                        ? c->cfg.backoff_max_ms
                        : c->backoff_ms * 2;
}

static void mark_down(struct rl_redis *c, const char *why)
{
    c->state = ST_DOWN;
    c->timeouts_in_row = 0;
    evtimer_del(c->connect_timer);
    report(c, false, why);
    if (!c->freeing)
        schedule_retry(c);
}

static void mark_up(struct rl_redis *c)
{
    if (c->state == ST_UP)
        return;
    c->state = ST_UP;
    c->backoff_ms = c->cfg.backoff_min_ms;
    evtimer_del(c->connect_timer);
    report(c, true, "connected");
}

/* Drops the connection; always from a libevent callback of our own, never
 * from inside hiredis (its callbacks may still be on the stack). */
static void teardown(struct rl_redis *c, const char *why)
{
    snprintf(c->teardown_why, sizeof c->teardown_why, "%s", why);
    event_active(c->teardown_ev, EV_TIMEOUT, 0);
}

static void on_teardown(evutil_socket_t fd, short what, void *arg)
{
    struct rl_redis *c = arg;
    (void)fd;
    (void)what;
    if (c->state == ST_DOWN)
        return;
    redisAsyncContext *ac = c->ac;
    c->ac = NULL; /* on_disconnect must not treat this as news */
    mark_down(c, c->teardown_why);
    if (ac)
        redisAsyncFree(ac);
}

static void on_connect_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    teardown(arg, "connect timed out");
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_now(arg);
}

/* ---- hiredis callbacks ---- */

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct rl_redis *c = ac->data;
    if (!c || c->ac != ac)
        return;
    if (status != REDIS_OK) {
        char why[96];
        snprintf(why, sizeof why, "connect failed: %s", ac->errstr);
        c->ac = NULL; /* hiredis frees it after this callback */
        mark_down(c, why);
    }
    /* Up only once the server answers (see on_reply). */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rl_redis *c = ac->data;
    (void)status;
    if (!c || c->ac != ac)
        return; /* we dropped it ourselves */
    char why[96];
    snprintf(why, sizeof why, "connection lost: %s",
             ac->errstr[0] ? ac->errstr : "closed by server");
    c->ac = NULL;
    mark_down(c, why);
}

static void on_load_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rl_redis *c = ac->data;
    redisReply *reply = r;
    size_t i = (size_t)(uintptr_t)privdata;
    if (!c || c->freeing || !reply)
        return;
    mark_up(c);
    c->timeouts_in_row = 0;
    if (reply->type == REDIS_REPLY_STRING && reply->len == 40 &&
        i < c->nscripts) {
        memcpy(c->sha[i], reply->str, 40);
        c->sha[i][40] = '\0';
    }
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rl_redis *c = ac->data;
    redisReply *reply = r;
    (void)privdata;
    if (!c || c->freeing || !reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[96];
        snprintf(why, sizeof why, "setup failed: %.60s", reply->str);
        teardown(c, why);
    }
}

static void connect_now(struct rl_redis *c)
{
    redisAsyncContext *ac = redisAsyncConnect(c->cfg.host, c->cfg.port);
    char why[96];

    if (!ac || ac->err) {
        snprintf(why, sizeof why, "connect failed: %s",
                 ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        mark_down(c, why);
        return;
    }
    ac->data = c;
    if (redisLibeventAttach(ac, c->base) != REDIS_OK) {
        redisAsyncFree(ac);
        mark_down(c, "cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    c->state = ST_CONNECTING;
    c->timeouts_in_row = 0;
    struct timeval tv = {c->cfg.connect_timeout_ms / 1000,
                         (c->cfg.connect_timeout_ms % 1000) * 1000};
    evtimer_add(c->connect_timer, &tv);
    /* Queued until the socket connects; replies arrive in this order. */
    if (c->cfg.password[0])
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", c->cfg.password);
    if (c->cfg.db)
        redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", c->cfg.db);
    for (size_t i = 0; i < c->nscripts; i++)
        redisAsyncCommand(ac, on_load_reply, (void *)(uintptr_t)i,
                          "SCRIPT LOAD %s", c->scripts[i]);
}

/* ---- calls ---- */

static void call_free(struct rl_redis_call *call)
{
    if (call->timer)
        event_free(call->timer);
    free(call);
}

static void notify(struct rl_redis_call *call, enum rl_redis_result res,
                   const redisReply *reply)
{
    if (call->notified)
        return;
    call->notified = true;
    if (call->timer) {
        event_free(call->timer);
        call->timer = NULL;
    }
    if (call->fn)
        call->fn(call->arg, res, reply);
}

static int send_call(struct rl_redis_call *call, bool as_eval);

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rl_redis_call *call = privdata;
    struct rl_redis *c = call->client;
    redisReply *reply = r;
    (void)ac;

    call->pending = false;
    if (c->freeing) {
        call_free(call);
        return;
    }
    if (reply) {
        mark_up(c);
        c->timeouts_in_row = 0;
    }
    if (reply && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && !call->retried &&
        !call->notified) {
        call->retried = true;
        if (send_call(call, true) == 0)
            return; /* same deadline keeps running */
    }
    if (reply && reply->type == REDIS_REPLY_ERROR)
        snprintf(c->last_error, sizeof c->last_error, "%s", reply->str);
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        notify(call, RL_REDIS_ERROR, NULL);
    else
        notify(call, RL_REDIS_OK, reply);
    call_free(call);
}

static void on_call_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct rl_redis_call *call = arg;
    struct rl_redis *c = call->client;
    (void)fd;
    (void)what;
    notify(call, RL_REDIS_TIMEOUT, NULL);
    if (++c->timeouts_in_row >= RL_REDIS_TRIP && c->state != ST_DOWN)
        teardown(c, "calls timed out");
    if (!call->pending)
        call_free(call);
}

static int send_call(struct rl_redis_call *call, bool as_eval)
{
    struct rl_redis *c = call->client;
    if (!c->ac)
        return -1;
    const char *sha = c->sha[call->script];
    if (as_eval || !sha[0]) {
        call->argv[0] = "EVAL";
        call->argv[1] = c->scripts[call->script];
    } else {
        call->argv[0] = "EVALSHA";
        call->argv[1] = sha;
    }
    call->argvlen[0] = strlen(call->argv[0]);
    call->argvlen[1] = strlen(call->argv[1]);
    if (redisAsyncCommandArgv(c->ac, on_reply, call, (int)call->argc,
                              call->argv, call->argvlen) != REDIS_OK)
        return -1;
    call->pending = true;
    return 0;
}

struct rl_redis_call *rl_redis_eval(struct rl_redis *c, size_t script,
                                    size_t nkeys, size_t argc,
                                    const char *const *argv,
                                    const size_t *argvlen, rl_redis_reply_fn fn,
                                    void *arg)
{
    if (!c || c->state == ST_DOWN || !c->ac || script >= c->nscripts)
        return NULL;
    /* One block: the call, the argument vectors and a copy of the
     * arguments (a NOSCRIPT retry resends them). */
    size_t total = argc + 3, bytes = 0;
    char nk[24];
    int nkl = snprintf(nk, sizeof nk, "%zu", nkeys);
    for (size_t i = 0; i < argc; i++)
        bytes += argvlen[i];
    struct rl_redis_call *call =
        calloc(1, sizeof *call + total * (sizeof(char *) + sizeof(size_t)) +
                      bytes + (size_t)nkl + 1);
    if (!call)
        return NULL;
    call->argv = (const char **)(call + 1);
    call->argvlen = (size_t *)(call->argv + total);
    char *data = (char *)(call->argvlen + total);
    memcpy(data, nk, (size_t)nkl + 1);
    call->argv[2] = data;
    call->argvlen[2] = (size_t)nkl;
    data += nkl + 1;
    for (size_t i = 0; i < argc; i++) {
        memcpy(data, argv[i], argvlen[i]);
        call->argv[3 + i] = data;
        call->argvlen[3 + i] = argvlen[i];
        data += argvlen[i];
    }
    call->argc = total;
    call->client = c;
    call->script = script;
    call->fn = fn;
    call->arg = arg;
    call->timer = evtimer_new(c->base, on_call_deadline, call);
    if (!call->timer || send_call(call, false) != 0) {
        call_free(call);
        return NULL;
    }
    struct timeval tv = {c->cfg.timeout_ms / 1000,
                         (c->cfg.timeout_ms % 1000) * 1000};
    evtimer_add(call->timer, &tv);
    return call;
}

void rl_redis_cancel(struct rl_redis_call *call)
{
    if (!call || call->notified)
        return;
    call->notified = true;
    if (call->timer) {
        event_free(call->timer);
        call->timer = NULL;
    }
    /* Freed when hiredis hands the reply back (or drops the context). */
}

/* ---- lifetime ---- */

struct rl_redis *rl_redis_new(struct event_base *base,
                              const struct rl_redis_config *cfg,
                              const char *const *scripts, size_t nscripts,
                              rl_redis_state_fn state_fn, void *state_arg)
{
    if (!base || nscripts > MAX_SCRIPTS)
        return NULL;
    struct rl_redis *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->base = base;
    c->cfg = *cfg;
    if (!c->cfg.timeout_ms)
        c->cfg.timeout_ms = 20;
    if (!c->cfg.connect_timeout_ms)
        c->cfg.connect_timeout_ms = 1000;
    if (!c->cfg.backoff_min_ms)
        c->cfg.backoff_min_ms = 50;
    if (c->cfg.backoff_max_ms < c->cfg.backoff_min_ms)
        c->cfg.backoff_max_ms = c->cfg.backoff_min_ms;
    c->backoff_ms = c->cfg.backoff_min_ms;
    c->scripts = scripts;
    c->nscripts = nscripts;
    c->state_fn = state_fn;
    c->state_arg = state_arg;
    c->reported_up = true;
    c->retry_timer = evtimer_new(base, on_retry, c);
    c->connect_timer = evtimer_new(base, on_connect_deadline, c);
    c->teardown_ev = event_new(base, -1, 0, on_teardown, c);
    if (!c->retry_timer || !c->connect_timer || !c->teardown_ev) {
        rl_redis_free(c);
        return NULL;
    }
    connect_now(c);
    return c;
}

void rl_redis_free(struct rl_redis *c)
{
    if (!c)
        return;
    c->freeing = true;
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac); /* pending calls come back and are freed */
    }
    if (c->retry_timer)
        event_free(c->retry_timer);
    if (c->connect_timer)
        event_free(c->connect_timer);
    if (c->teardown_ev)
        event_free(c->teardown_ev);
    free(c);
}

bool rl_redis_ready(const struct rl_redis *c)
{
    return c && c->state != ST_DOWN && c->ac;
}

const char *rl_redis_take_error(struct rl_redis *c, char *buf, size_t cap)
{
    if (!c || !c->last_error[0])
        return NULL;
    snprintf(buf, cap, "%s", c->last_error);
    c->last_error[0] = '\0';
    return buf;
}

bool rl_redis_up(const struct rl_redis *c)
{
    return c && c->state == ST_UP;
}

long long rl_redis_int(const struct redisReply *reply, size_t i)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || i >= reply->elements)
        return 0;
    const redisReply *e = reply->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        return strtoll(e->str, NULL, 10);
    return 0;
}
