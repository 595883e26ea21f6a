/* Upstream transport on libcurl's multi_socket API and a libevent loop:
 * https:// upstreams (TLS, h2) and http:// ones configured to use curl.
 *
 * Re-entrancy rules (libcurl forbids most multi calls from its callbacks):
 * - the socket and timer callbacks only (re)arm libevent events;
 * - user callbacks that run inside libcurl (on_headers/on_body from the
 *   write callback) may call cancel/start/resume; those that would touch
 *   the multi handle are deferred to a per-call 0 ms event;
 * - on_done always runs outside libcurl, after the handle was removed.
 */
#include "upstream_curl_request.h"
#include "upstream_transport.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Caps what a misbehaving upstream can make us buffer (curl 7.88 has no
 * total limit on response headers). */
#define MAX_RESPONSE_HEADER_BYTES (256 * 1024)
/* Idle connections curl may keep open across all hosts. */
#define MAX_CACHED_CONNECTIONS 1024L
/* Easy handles kept for reuse: curl_easy_init/cleanup cost ~12k
 * instructions per call (callgrind), a reset far less. */
#define SPARE_HANDLES 32
/* Parsed upstream URLs: a gateway talks to a handful of endpoints, and
 * parsing the URL again for every call cost ~16k instructions. */
#define CACHED_URLS 32

struct parsed_url {
    char *url;
    CURLU *handle;
};

/* Per-host cap, enforced here: curl has one MAX_HOST_CONNECTIONS per
 * multi handle, so two upstreams with different caps cannot share it.
 * Counting calls (not connections) also caps h2 streams. */
#define MAX_HOSTS 64

struct host_slot {
    char key[256]; /* scheme://authority */
    uint32_t active;
    struct curl_call *queue, *queue_tail; /* calls over the cap, FIFO */
};

struct sock_watch {
    struct event *ev;
    struct sock_watch *prev, *next;
};

struct upstream_curl {
    struct event_base *base;
    CURLM *multi;
    struct event *curl_timer; /* the single timer curl asks for */
    int in_curl;              /* >0 while a curl call may run callbacks */
    bool closing;             /* upstream_curl_free is running */
    size_t active;            /* calls that still owe an on_done */
    uint64_t connects;
    struct curl_call *calls; /* every call not yet freed */
    struct sock_watch *watches;
    CURL *spare[SPARE_HANDLES];
    size_t n_spare;
    struct parsed_url urls[CACHED_URLS];
    size_t n_urls;
    struct host_slot hosts[MAX_HOSTS];
    size_t n_hosts;
};

struct curl_call {
    struct upstream_call base; /* first: the client casts between them */
    struct upstream_curl *uc;
    struct curl_call *prev, *next;
    CURL *easy;
    struct upstream_request_copy owned; /* body and header list */
    struct upstream_callbacks cb;
    void *arg;
    uint32_t first_byte_ms, idle_ms;
    uint32_t max_host_connections;
    struct host_slot *host; /* NULL: no cap for this call */
    struct curl_call *queue_next;
    bool queued;            /* waiting for a slot under the host's cap */
    bool counted;           /* holds one of host->active */
    struct event *timer;    /* first-byte, then idle timeout */
    struct event *deferred; /* 0 ms: add, resume or cleanup outside curl */

    char **headers; /* "Name: value" of the current response block */
    size_t n_headers, cap_headers, header_bytes;

    bool in_multi;
    bool request_sent;     /* connection ready, request going out */
    bool got_first_byte;   /* any response byte: first-byte timer is over */
    bool headers_complete; /* blank line after a final (>= 200) status */
    bool headers_delivered;
    bool paused;
    bool resume_pending;
    bool in_on_body; /* so a resume from inside on_body is not lost */
    bool cancelled;
    bool ended;     /* on_done delivered or cancelled: no more callbacks */
    bool finished;  /* curl reported the transfer done: handle reusable */
    int in_user_cb; /* a user callback we invoked directly is running */
    const char *abort_reason; /* set when we abort the transfer ourselves */
    char errbuf[CURL_ERROR_SIZE];
};

/* ---- small helpers --------------------------------------------------- */

static struct timeval ms_to_tv(uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static void clear_headers(struct curl_call *c)
{
    for (size_t i = 0; i < c->n_headers; i++)
        free(c->headers[i]);
    c->n_headers = 0;
    c->header_bytes = 0;
}

static bool push_header(struct curl_call *c, const char *s, size_t n)
{
    if (c->header_bytes + n > MAX_RESPONSE_HEADER_BYTES)
        return false;
    if (c->n_headers == c->cap_headers) {
        size_t cap = c->cap_headers ? c->cap_headers * 2 : 16;
        char **h = realloc(c->headers, cap * sizeof(*h));
        if (!h)
            return false;
        c->headers = h;
        c->cap_headers = cap;
    }
    char *copy = strndup(s, n);
    if (!copy)
        return false;
    c->headers[c->n_headers++] = copy;
    c->header_bytes += n;
    return true;
}

/* (Re)arms the call's single timer for the phase it is in. Paused calls
 * have no timer: a slow client is not the upstream's fault. */
static void arm_timer(struct curl_call *c)
{
    uint32_t ms = 0;
    if (!c->paused && !c->ended) {
        if (c->got_first_byte)
            ms = c->idle_ms;
        else if (c->request_sent)
            ms = c->first_byte_ms;
    }
    if (ms == 0) {
        evtimer_del(c->timer);
        return;
    }
    struct timeval tv = ms_to_tv(ms);
    evtimer_add(c->timer, &tv);
}

static void schedule_deferred(struct curl_call *c)
{
    event_active(c->deferred, EV_TIMEOUT, 0);
}

/* ---- call teardown --------------------------------------------------- */

/* Takes the handle out of curl. For a transfer still in progress this
 * closes its connection, which is how the upstream learns we left. */
static void detach_easy(struct curl_call *c)
{
    if (!c->easy)
        return;
    long n = 0;
    if (curl_easy_getinfo(c->easy, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK &&
        n > 0)
        c->uc->connects += (uint64_t)n;
    if (c->in_multi)
        curl_multi_remove_handle(c->uc->multi, c->easy);
    c->in_multi = false;
    struct upstream_curl *uc = c->uc;
    if (c->finished && uc->n_spare < SPARE_HANDLES) {
        curl_easy_reset(c->easy); /* keeps the multi's connection cache */
        uc->spare[uc->n_spare++] = c->easy;
    } else {
        curl_easy_cleanup(c->easy);
    }
    c->easy = NULL;
}

static CURL *take_easy(struct upstream_curl *uc)
{
    if (uc->n_spare)
        return uc->spare[--uc->n_spare];
    return curl_easy_init();
}

/* The parsed form of `url`, cached; NULL lets curl parse it itself. */
static CURLU *parsed_url(struct upstream_curl *uc, const char *url)
{
    for (size_t i = 0; i < uc->n_urls; i++)
        if (strcmp(uc->urls[i].url, url) == 0)
            return uc->urls[i].handle;
    if (uc->n_urls == CACHED_URLS)
        return NULL;
    CURLU *h = curl_url();
    char *copy = strdup(url);
    if (!h || !copy || curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK) {
        curl_url_cleanup(h);
        free(copy);
        return NULL;
    }
    uc->urls[uc->n_urls].url = copy;
    uc->urls[uc->n_urls].handle = h;
    uc->n_urls++;
    return h;
}

static void mark_ended(struct curl_call *c)
{
    if (c->ended)
        return;
    c->ended = true;
    c->uc->active--;
}

static void release_host_slot(struct curl_call *c);

static void call_free(struct curl_call *c)
{
    struct upstream_curl *uc = c->uc;
    detach_easy(c);
    release_host_slot(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        uc->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->timer)
        event_free(c->timer);
    if (c->deferred)
        event_free(c->deferred);
    clear_headers(c);
    free(c->headers);
    upstream_request_copy_free(&c->owned);
    free(c);
}

/* Ends the call with on_done and frees it. Only outside curl. */
static void complete(struct curl_call *c, enum upstream_result result,
                     const char *detail)
{
    detach_easy(c); /* first, so on_done may start a call on this conn */
    mark_ended(c);
    evtimer_del(c->timer);
    if (c->cb.on_done)
        c->cb.on_done(&c->base, c->arg, result, detail);
    call_free(c);
}

/* ---- delivering to the user ------------------------------------------ */

static void deliver_headers(struct curl_call *c)
{
    long status = 0;
    c->headers_delivered = true;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    if (c->cb.on_headers) {
        c->in_user_cb++;
        c->cb.on_headers(&c->base, c->arg, (int)status,
                         (const char *const *)c->headers, c->n_headers);
        c->in_user_cb--;
    }
}

static enum upstream_result classify(const struct curl_call *c, CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return UPSTREAM_DONE;
    case CURLE_OPERATION_TIMEDOUT: /* connect timeout */
        return UPSTREAM_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return UPSTREAM_CONNECT_ERROR;
    default:
        /* RECV_ERROR, SEND_ERROR, GOT_NOTHING, PARTIAL_FILE, HTTP2...:
         * a reset before any response byte is a connect-level failure
         * (the caller may retry); after it the response is broken. */
        return c->got_first_byte ? UPSTREAM_BROKEN : UPSTREAM_CONNECT_ERROR;
    }
}

/* A transfer curl reports as finished (from the info_read loop). */
static void finish_transfer(struct curl_call *c, CURLcode rc)
{
    c->finished = true;
    if (c->cancelled) {
        call_free(c);
        return;
    }
    enum upstream_result result = classify(c, rc);
    char detail[CURL_ERROR_SIZE + 64];
    if (rc == CURLE_OK)
        snprintf(detail, sizeof(detail), "ok");
    else if (c->abort_reason)
        snprintf(detail, sizeof(detail), "%s", c->abort_reason);
    else /* curl's text names host and port at most, never headers */
        snprintf(detail, sizeof(detail), "%s",
                 c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));

    if (!c->headers_delivered &&
        (result == UPSTREAM_DONE || c->headers_complete)) {
        deliver_headers(c);
        if (c->cancelled) {
            call_free(c);
            return;
        }
    }
    complete(c, result, detail);
}

static void drain_finished(struct upstream_curl *uc)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(uc->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURLcode rc = msg->data.result; /* msg dies with the handle */
        char *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv)
            finish_transfer((struct curl_call *)priv, rc);
    }
}

/* ---- curl callbacks (run inside curl: never call the multi API) ------ */

static int on_prereq(void *arg, char *primary_ip, char *local_ip,
                     int primary_port, int local_port)
{
    struct curl_call *c = arg;
    c->request_sent = true;
    arm_timer(c);
    return CURL_PREREQFUNC_OK;
}

static size_t on_header_line(char *buf, size_t size, size_t nitems, void *arg)
{
    struct curl_call *c = arg;
    size_t len = size * nitems;
    if (c->cancelled)
        return 0;
    c->got_first_byte = true;
    arm_timer(c); /* first byte seen: from now on the idle timeout */
    if (c->headers_complete)
        return len; /* trailers, or anything after the final header block */

    size_t n = len;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A new status line (after a 1xx, or a proxy CONNECT): start over. */
        clear_headers(c);
        return len;
    }
    if (n == 0) { /* end of a header block: final unless 1xx */
        long status = 0;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        c->headers_complete = status >= 200;
        return len;
    }
    if (!push_header(c, buf, n)) {
        c->abort_reason = "response headers too large";
        return 0;
    }
    return len;
}

static size_t on_body_bytes(char *data, size_t size, size_t nmemb, void *arg)
{
    struct curl_call *c = arg;
    size_t len = size * nmemb;
    if (c->cancelled || c->ended)
        return CURL_WRITEFUNC_ERROR;
    if (c->paused)
        return CURL_WRITEFUNC_PAUSE;
    c->got_first_byte = true;
    arm_timer(c);
    if (!c->headers_delivered) {
        deliver_headers(c);
        if (c->cancelled)
            return CURL_WRITEFUNC_ERROR;
    }
    if (len == 0 || !c->cb.on_body)
        return len;
    c->in_on_body = true;
    bool consumed = c->cb.on_body(&c->base, c->arg, data, len);
    c->in_on_body = false;
    if (c->cancelled)
        return CURL_WRITEFUNC_ERROR;
    if (!consumed) {
        /* Nothing of this piece counts as consumed: curl keeps it and
         * delivers it again after curl_easy_pause(CONT) (which a resume
         * requested inside on_body will do). */
        c->paused = true;
        arm_timer(c);
        return CURL_WRITEFUNC_PAUSE;
    }
    /* Consumed, even if on_body also called upstream_call_pause(): that
     * pause already reached curl through curl_easy_pause(). */
    return len;
}

static void on_socket_ready(evutil_socket_t fd, short what, void *arg);

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *arg,
                          void *socketp)
{
    struct upstream_curl *uc = arg;
    struct sock_watch *w = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (w) {
            event_free(w->ev);
            if (w->prev)
                w->prev->next = w->next;
            else
                uc->watches = w->next;
            if (w->next)
                w->next->prev = w->prev;
            free(w);
        }
        return 0;
    }
    short events = EV_PERSIST;
    if (what & CURL_POLL_IN)
        events |= EV_READ;
    if (what & CURL_POLL_OUT)
        events |= EV_WRITE;

    if (!w) {
        w = calloc(1, sizeof(*w));
        if (!w)
            return -1;
        w->ev = event_new(uc->base, s, events, on_socket_ready, uc);
        if (!w->ev) {
            free(w);
            return -1;
        }
        w->next = uc->watches;
        if (w->next)
            w->next->prev = w;
        uc->watches = w;
        curl_multi_assign(uc->multi, s, w); /* allowed here, by design */
    } else if (event_get_events(w->ev) != events) {
        event_del(w->ev);
        event_assign(w->ev, uc->base, s, events, on_socket_ready, uc);
    }
    if (events & (EV_READ | EV_WRITE))
        event_add(w->ev, NULL);
    else
        event_del(w->ev);
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *arg)
{
    struct upstream_curl *uc = arg;
    if (timeout_ms < 0) {
        evtimer_del(uc->curl_timer);
        return 0;
    }
    /* Only arm: calling curl from here returns CURLM_RECURSIVE_API_CALL. */
    struct timeval tv = {.tv_sec = timeout_ms / 1000,
                         .tv_usec = (timeout_ms % 1000) * 1000};
    evtimer_add(uc->curl_timer, &tv);
    return 0;
}

/* ---- libevent callbacks (outside curl) -------------------------------- */

static void drive(struct upstream_curl *uc, curl_socket_t fd, int flags)
{
    int running;
    uc->in_curl++;
    curl_multi_socket_action(uc->multi, fd, flags, &running);
    uc->in_curl--;
    drain_finished(uc);
}

static void on_socket_ready(evutil_socket_t fd, short what, void *arg)
{
    int flags = 0;
    if (what & EV_READ)
        flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        flags |= CURL_CSELECT_OUT;
    drive(arg, fd, flags);
}

static void on_curl_timer_fired(evutil_socket_t fd, short what, void *arg)
{
    drive(arg, CURL_SOCKET_TIMEOUT, 0);
}

static void on_call_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct curl_call *c = arg;
    char detail[96];
    if (c->got_first_byte)
        snprintf(detail, sizeof(detail), "idle timeout: no data for %u ms",
                 (unsigned)c->idle_ms);
    else
        snprintf(detail, sizeof(detail),
                 "first byte timeout: no response within %u ms",
                 (unsigned)c->first_byte_ms);
    complete(c, UPSTREAM_TIMEOUT, detail);
}

static bool add_to_multi(struct curl_call *c)
{
    if (curl_multi_add_handle(c->uc->multi, c->easy) != CURLM_OK)
        return false;
    c->in_multi = true;
    return true;
}

/* ---- per-host cap ------------------------------------------------------ */

static struct host_slot *host_slot_for(struct upstream_curl *uc,
                                       const char *url)
{
    const char *auth = strstr(url, "://");
    size_t len = auth ? (size_t)(auth + 3 - url) + strcspn(auth + 3, "/?#")
                      : strlen(url);
    if (len >= sizeof uc->hosts[0].key)
        return NULL;
    for (size_t i = 0; i < uc->n_hosts; i++)
        if (strlen(uc->hosts[i].key) == len &&
            strncasecmp(uc->hosts[i].key, url, len) == 0)
            return &uc->hosts[i];
    if (uc->n_hosts == MAX_HOSTS)
        return NULL;
    struct host_slot *h = &uc->hosts[uc->n_hosts++];
    memcpy(h->key, url, len);
    h->key[len] = '\0';
    return h;
}

/* True when the call may go now; otherwise it waits in the host's queue,
 * with the first-byte timeout as its deadline. */
static bool take_host_slot(struct curl_call *c)
{
    struct host_slot *h = c->host;
    if (!h || h->active < c->max_host_connections) {
        if (h) {
            h->active++;
            c->counted = true;
        }
        return true;
    }
    c->queued = true;
    if (h->queue_tail)
        h->queue_tail->queue_next = c;
    else
        h->queue = c;
    h->queue_tail = c;
    if (c->first_byte_ms) {
        struct timeval tv = ms_to_tv(c->first_byte_ms);
        evtimer_add(c->timer, &tv);
    }
    return false;
}

static void release_host_slot(struct curl_call *c)
{
    struct host_slot *h = c->host;
    if (!h)
        return;
    if (c->queued) {
        struct curl_call **p = &h->queue, *prev = NULL;
        while (*p && *p != c) {
            prev = *p;
            p = &(*p)->queue_next;
        }
        if (*p)
            *p = c->queue_next;
        if (h->queue_tail == c)
            h->queue_tail = prev;
        c->queued = false;
        return;
    }
    if (!c->counted)
        return;
    c->counted = false;
    h->active--;
    struct curl_call *next = h->queue;
    if (!next || c->uc->closing)
        return;
    h->queue = next->queue_next;
    if (!h->queue)
        h->queue_tail = NULL;
    next->queued = false;
    next->queue_next = NULL;
    h->active++;
    next->counted = true;
    evtimer_del(next->timer);
    schedule_deferred(next); /* joins the multi from a fresh event */
}

static void resume_now(struct curl_call *c)
{
    struct upstream_curl *uc = c->uc;
    c->resume_pending = false;
    if (!c->paused)
        return;
    c->paused = false;
    arm_timer(c);
    if (!c->in_multi)
        return;
    /* May call on_body synchronously with the data held back. */
    uc->in_curl++;
    curl_easy_pause(c->easy, CURLPAUSE_CONT);
    uc->in_curl--;
    drain_finished(uc);
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
    struct curl_call *c = arg;
    if (c->cancelled) {
        call_free(c);
        return;
    }
    if (c->queued)
        return; /* a resume before it even started */
    if (!c->in_multi && !add_to_multi(c)) {
        complete(c, UPSTREAM_CONNECT_ERROR, "could not start the transfer");
        return;
    }
    if (c->resume_pending)
        resume_now(c); /* may free c: nothing after this */
}

/* ---- public API -------------------------------------------------------- */

struct upstream_curl *upstream_curl_new(struct event_base *base)
{
    struct upstream_curl *uc = calloc(1, sizeof(*uc));
    if (!uc)
        return NULL;
    uc->base = base;
    uc->multi = curl_multi_init();
    uc->curl_timer = evtimer_new(base, on_curl_timer_fired, uc);
    if (!uc->multi || !uc->curl_timer) {
        upstream_curl_free(uc);
        return NULL;
    }
    curl_multi_setopt(uc->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(uc->multi, CURLMOPT_SOCKETDATA, uc);
    curl_multi_setopt(uc->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(uc->multi, CURLMOPT_TIMERDATA, uc);
    curl_multi_setopt(uc->multi, CURLMOPT_MAXCONNECTS, MAX_CACHED_CONNECTIONS);
    return uc;
}

/* Not from inside one of this client's callbacks: the loop that invoked
 * the callback still uses the client afterwards. */
void upstream_curl_free(struct upstream_curl *uc)
{
    if (!uc)
        return;
    uc->closing = true;
    while (uc->calls) {
        uc->calls->cancelled = true;
        mark_ended(uc->calls);
        call_free(uc->calls);
    }
    if (uc->multi)
        curl_multi_cleanup(uc->multi); /* may still report POLL_REMOVE */
    while (uc->watches) {              /* any socket curl forgot to remove */
        struct sock_watch *w = uc->watches;
        uc->watches = w->next;
        event_free(w->ev);
        free(w);
    }
    if (uc->curl_timer)
        event_free(uc->curl_timer);
    while (uc->n_spare)
        curl_easy_cleanup(uc->spare[--uc->n_spare]);
    for (size_t i = 0; i < uc->n_urls; i++) {
        curl_url_cleanup(uc->urls[i].handle);
        free(uc->urls[i].url);
    }
    free(uc);
}

static void curl_call_pause(struct upstream_call *base);
static void curl_call_resume(struct upstream_call *base);
static void curl_call_cancel(struct upstream_call *base);

static const struct upstream_call_ops curl_ops = {
    .pause = curl_call_pause,
    .resume = curl_call_resume,
    .cancel = curl_call_cancel,
};

static int on_curl_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
    (void)arg;
    if (purpose == CURLSOCKTYPE_IPCXN)
        upstream_socket_prepare(fd);
    return CURL_SOCKOPT_OK;
}

/* Everything that ties the easy handle to this call. */
static void set_call_callbacks(struct curl_call *c)
{
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header_line);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body_bytes);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, c);
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_curl_sockopt);
}

struct upstream_call *upstream_curl_start(struct upstream_curl *uc,
                                          const struct upstream_request *req,
                                          const struct upstream_callbacks *cb,
                                          void *arg)
{
    if (!uc || !req || !req->url || !cb)
        return NULL;
    struct curl_call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->base.ops = &curl_ops;
    c->uc = uc;
    c->cb = *cb;
    c->arg = arg;
    c->first_byte_ms = req->first_byte_timeout_ms;
    c->idle_ms = req->idle_timeout_ms;
    c->max_host_connections = req->max_host_connections;
    if (c->max_host_connections)
        c->host = host_slot_for(uc, req->url);
    c->next = uc->calls;
    if (c->next)
        c->next->prev = c;
    uc->calls = c;
    uc->active++;

    c->easy = take_easy(uc);
    c->timer = evtimer_new(uc->base, on_call_timeout, c);
    c->deferred = event_new(uc->base, -1, 0, on_deferred, c);
    if (!c->easy || !c->timer || !c->deferred ||
        !upstream_request_apply(c->easy, req, parsed_url(uc, req->url),
                                &c->owned))
        goto fail;
    set_call_callbacks(c);

    if (!take_host_slot(c))
        return &c->base;
    if (uc->in_curl) {
        /* Started from a callback inside curl: adding now would fail
         * with CURLM_RECURSIVE_API_CALL. */
        schedule_deferred(c);
        return &c->base;
    }
    if (!add_to_multi(c))
        goto fail;
    return &c->base;
fail:
    mark_ended(c);
    call_free(c);
    return NULL;
}

static void curl_call_pause(struct upstream_call *base)
{
    struct curl_call *c = (struct curl_call *)base;
    if (!c || c->ended)
        return;
    c->resume_pending = false;
    if (c->paused)
        return;
    c->paused = true;
    arm_timer(c);
    /* Pausing never calls back, so it is safe even inside curl. Before
     * the connection exists curl refuses; on_body_bytes then pauses. */
    if (c->in_multi)
        curl_easy_pause(c->easy, CURLPAUSE_RECV);
}

static void curl_call_resume(struct upstream_call *base)
{
    struct curl_call *c = (struct curl_call *)base;
    if (!c || c->ended || !(c->paused || c->in_on_body))
        return;
    /* Always from a fresh event: curl_easy_pause(CONT) may run on_body
     * synchronously, which must not happen inside a curl callback. */
    c->resume_pending = true;
    schedule_deferred(c);
}

static void curl_call_cancel(struct upstream_call *base)
{
    struct curl_call *c = (struct curl_call *)base;
    if (!c || c->ended)
        return;
    c->cancelled = true;
    mark_ended(c);
    evtimer_del(c->timer);
    if (c->uc->in_curl || c->in_user_cb) {
        /* Inside curl (or our own dispatch): the write callback now
         * returns an error, and cleanup happens from the info_read loop
         * or the deferred event, whichever comes first. */
        schedule_deferred(c);
        return;
    }
    call_free(c);
}

size_t upstream_curl_active(const struct upstream_curl *uc)
{
    return uc ? uc->active : 0;
}

uint64_t upstream_curl_connects(const struct upstream_curl *uc)
{
    return uc ? uc->connects : 0;
}
