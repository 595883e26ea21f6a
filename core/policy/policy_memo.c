/* The decision tree of a pure policy: see policy_memo.h. */
#include "policy_memo.h"

#include "policy_decision.h"

#include <stdlib.h>
#include <string.h>

/* Bounds: a path longer than this, or an answer or argument longer than
 * VALUE_MAX, is not stored (the call still runs and answers). */
#define MAX_READS 32
#define VALUE_MAX 256
/* The tree lives in chunks; at MAX_CHUNKS (or EDGE_SLOTS / 2 edges) it is
 * emptied and regrown, so a script whose answers never repeat (it reads
 * input_tokens, say) costs a bounded amount of memory. */
#define CHUNK_BYTES (16u << 10)
#define MAX_CHUNKS 16
/* After this many fillings the paths do not repeat within the cap, and
 * recording costs more than reuse saves: reuse is turned off. */
#define MAX_RESETS 4
/* Every WINDOW calls, reuse must have answered a quarter of them, or it
 * is turned off: a script whose calls mostly run anyway (they read the
 * clock, say) would pay for recording and checking and gain nothing. */
#define WINDOW 4096
/* Distinct decisions kept for sharing: many paths end in the same one
 * (nil, say), and a decision is ~2 KiB. */
#define SHARED_DECISIONS 32
/* All edges of the tree in one open-addressing table, so that a question
 * with a thousand different answers (one per user, say) is one probe, not
 * a walk. At half full the tree starts over, like at the chunk cap. */
#define EDGE_SLOTS 4096

/* What a node asks of the request: the fields of policy_req_view. */
enum memo_field {
    MF_MODEL,
    MF_ENDPOINT,
    MF_TENANT,
    MF_USER,
    MF_TIER,
    MF_STREAM,
    MF_MESSAGE_COUNT,
    MF_MESSAGE_BYTES,
    MF_INPUT_TOKENS,
    MF_MAX_TOKENS,
    MF_PRIORITY,
    MF_HEADER,
    MF_VAR,
};

/* One answer, as bytes: text as is, numbers and booleans in their own
 * bytes (kind tells them apart), and "absent" as nil. */
struct answer {
    const char *bytes;
    size_t len;
    bool nil;
    char own[8]; /* bytes of a number or boolean */
};

struct memo_node;

/* An answer to a node's question, found through the memo's edge table. */
struct memo_edge {
    const struct memo_node *from;
    struct memo_node *to; /* NULL until a path through it is stored */
    bool nil;
    uint32_t len;
    const char *bytes;
};

/* A question (field and, for header and var, its name) or, at the end of
 * a path, a decision. */
struct memo_node {
    bool leaf;
    uint8_t field;
    uint16_t arg_len;
    const char *arg;
    struct policy_decision *decision;
};

struct chunk {
    struct chunk *next;
    size_t used;
    _Alignas(max_align_t) char data[CHUNK_BYTES];
};

/* One read of the call being recorded; text points into trace_bytes. */
struct trace_read {
    uint8_t field;
    bool nil;
    uint16_t arg_len;
    uint16_t len;
    const char *arg;
    const char *bytes;
};

struct policy_memo {
    struct memo_node *root;
    struct chunk *chunks;
    size_t chunk_count;
    struct memo_edge *edges[EDGE_SLOTS];
    size_t edge_count;
    struct policy_decision *shared[SHARED_DECISIONS];
    size_t shared_count;
    struct policy_memo_stats stats;
    const char *why_off; /* set when disabled */
    uint32_t window_hits, window_runs;

    /* The call being recorded. */
    const struct policy_req_view *real;
    struct policy_req_view recording;
    struct trace_read reads[MAX_READS];
    size_t read_count;
    char trace_bytes[MAX_READS * 2 * (VALUE_MAX + 1)];
    size_t trace_used;
    bool spoiled;
};

/* ---- asking the request ---- */

static const char *text_or_nil(const char *(*get)(void *, size_t *), void *ctx,
                               size_t *len)
{
    return get != NULL ? get(ctx, len) : NULL;
}

static void answer_count(uint64_t (*get)(void *), void *ctx, struct answer *a)
{
    if (get == NULL)
        return;
    uint64_t n = get(ctx);
    memcpy(a->own, &n, sizeof n);
    a->bytes = a->own;
    a->len = sizeof n;
    a->nil = false;
}

/* The answer the view gives to one question, exactly as the script would
 * see it through policy_view.c. */
static void ask(const struct policy_req_view *v, uint8_t field, const char *arg,
                struct answer *a)
{
    a->bytes = NULL;
    a->len = 0;
    a->nil = true;
    const char *s = NULL;
    size_t len = 0;
    switch ((enum memo_field)field) {
    case MF_MODEL:
        s = text_or_nil(v->model, v->ctx, &len);
        break;
    case MF_ENDPOINT:
        s = text_or_nil(v->endpoint, v->ctx, &len);
        break;
    case MF_TENANT:
        s = text_or_nil(v->tenant, v->ctx, &len);
        break;
    case MF_USER:
        s = text_or_nil(v->user, v->ctx, &len);
        break;
    case MF_TIER:
        s = text_or_nil(v->tier, v->ctx, &len);
        break;
    case MF_HEADER:
        s = v->header != NULL ? v->header(v->ctx, arg, &len) : NULL;
        break;
    case MF_VAR:
        s = v->var != NULL ? v->var(v->ctx, arg, &len) : NULL;
        break;
    case MF_PRIORITY:
        s = v->priority != NULL ? v->priority(v->ctx) : NULL;
        len = s != NULL ? strlen(s) : 0;
        break;
    case MF_STREAM:
        if (v->stream != NULL) {
            a->own[0] = (char)v->stream(v->ctx);
            s = a->own;
            len = 1;
        }
        break;
    case MF_MESSAGE_COUNT:
        answer_count(v->message_count, v->ctx, a);
        return;
    case MF_MESSAGE_BYTES:
        answer_count(v->message_bytes, v->ctx, a);
        return;
    case MF_INPUT_TOKENS:
        answer_count(v->input_tokens, v->ctx, a);
        return;
    case MF_MAX_TOKENS:
        answer_count(v->max_tokens, v->ctx, a);
        return;
    }
    if (s != NULL) {
        a->bytes = s;
        a->len = len;
        a->nil = false;
    }
}

/* ---- the tree's memory ---- */

static void free_chunks(struct policy_memo *m)
{
    while (m->chunks != NULL) {
        struct chunk *next = m->chunks->next;
        free(m->chunks);
        m->chunks = next;
    }
    m->chunk_count = 0;
    m->root = NULL;
    m->shared_count = 0;
    memset(m->edges, 0, sizeof m->edges);
    m->edge_count = 0;
}

/* NULL at the cap (or out of memory). */
static void *take(struct policy_memo *m, size_t size)
{
    size = (size + _Alignof(max_align_t) - 1) &
           ~(size_t)(_Alignof(max_align_t) - 1);
    struct chunk *c = m->chunks;
    if (c == NULL || c->used + size > CHUNK_BYTES) {
        if (m->chunk_count >= MAX_CHUNKS || size > CHUNK_BYTES)
            return NULL;
        c = malloc(sizeof *c);
        if (c == NULL)
            return NULL;
        c->next = m->chunks;
        c->used = 0;
        m->chunks = c;
        m->chunk_count++;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

/* NUL-terminated too: a header or var name is passed on as a C string. */
static const char *copy_bytes(struct policy_memo *m, const char *s, size_t len)
{
    char *d = take(m, len + 1);
    if (d != NULL) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* ---- edges ---- */

static size_t edge_hash(const struct memo_node *from, bool nil,
                        const char *bytes, size_t len)
{
    uint64_t h = (uint64_t)(uintptr_t)from * 0x9E3779B97F4A7C15ull;
    h ^= nil ? 0xA5A5A5A5u : len;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)bytes[i]) * 0x100000001B3ull;
    return (size_t)(h ^ h >> 32);
}

/* The slot holding from's edge for this answer, or the empty slot where
 * it would go. */
static struct memo_edge **edge_slot(struct policy_memo *m,
                                    const struct memo_node *from, bool nil,
                                    const char *bytes, size_t len)
{
    size_t i = edge_hash(from, nil, bytes, len) & (EDGE_SLOTS - 1);
    for (;; i = (i + 1) & (EDGE_SLOTS - 1)) {
        struct memo_edge *e = m->edges[i];
        if (e == NULL ||
            (e->from == from && e->nil == nil &&
             (nil || (e->len == len && memcmp(e->bytes, bytes, len) == 0))))
            return &m->edges[i];
    }
}

/* ---- lifecycle and lookup ---- */

struct policy_memo *policy_memo_new(void)
{
    return calloc(1, sizeof(struct policy_memo));
}

void policy_memo_free(struct policy_memo *m)
{
    if (m == NULL)
        return;
    free_chunks(m);
    free(m);
}

const struct policy_decision *
policy_memo_find(struct policy_memo *m, const struct policy_req_view *req)
{
    /* A disabled memo has no tree (policy_memo_disable empties it). */
    const struct memo_node *n = m->root;
    while (n != NULL && !n->leaf) {
        struct answer a;
        ask(req, n->field, n->arg, &a);
        const struct memo_edge *e = *edge_slot(m, n, a.nil, a.bytes, a.len);
        if (e == NULL)
            return NULL;
        n = e->to;
    }
    return n != NULL ? n->decision : NULL;
}

void policy_memo_count_hit(struct policy_memo *m)
{
    m->stats.hits++;
    m->window_hits++;
}

bool policy_memo_worth_running(struct policy_memo *m)
{
    if (++m->window_runs + m->window_hits < WINDOW)
        return true;
    bool worth = m->window_runs <= 3 * m->window_hits;
    m->window_runs = m->window_hits = 0;
    return worth;
}

/* ---- recording ---- */

static struct policy_memo *memo_of(void *ctx)
{
    return ctx;
}

static char *trace_copy(struct policy_memo *m, const char *s, size_t len)
{
    char *d = m->trace_bytes + m->trace_used;
    memcpy(d, s, len);
    d[len] = '\0';
    m->trace_used += len + 1;
    return d;
}

/* Asks the real view and notes the question and its answer. */
static void recorded_ask(struct policy_memo *m, uint8_t field, const char *arg,
                         struct answer *a)
{
    ask(m->real, field, arg, a);
    size_t arg_len = arg != NULL ? strlen(arg) : 0;
    if (m->spoiled || m->read_count == MAX_READS || arg_len > VALUE_MAX ||
        a->len > VALUE_MAX) {
        m->spoiled = true;
        return;
    }
    struct trace_read *r = &m->reads[m->read_count++];
    r->field = field;
    r->nil = a->nil;
    r->arg_len = (uint16_t)arg_len;
    r->len = (uint16_t)a->len;
    r->arg = trace_copy(m, arg != NULL ? arg : "", arg_len);
    r->bytes = trace_copy(m, a->bytes != NULL ? a->bytes : "", a->len);
}

static const char *rec_text(void *ctx, uint8_t field, const char *arg,
                            size_t *len)
{
    struct answer a;
    recorded_ask(memo_of(ctx), field, arg, &a);
    *len = a.len;
    return a.nil ? NULL : a.bytes;
}

static uint64_t rec_count(void *ctx, uint8_t field)
{
    struct answer a;
    uint64_t n = 0;
    recorded_ask(memo_of(ctx), field, NULL, &a);
    if (!a.nil)
        memcpy(&n, a.bytes, sizeof n);
    return n;
}

static const char *rec_model(void *ctx, size_t *len)
{
    return rec_text(ctx, MF_MODEL, NULL, len);
}

static const char *rec_endpoint(void *ctx, size_t *len)
{
    return rec_text(ctx, MF_ENDPOINT, NULL, len);
}

static const char *rec_tenant(void *ctx, size_t *len)
{
    return rec_text(ctx, MF_TENANT, NULL, len);
}

static const char *rec_user(void *ctx, size_t *len)
{
    return rec_text(ctx, MF_USER, NULL, len);
}

static const char *rec_tier(void *ctx, size_t *len)
{
    return rec_text(ctx, MF_TIER, NULL, len);
}

static const char *rec_header(void *ctx, const char *name, size_t *len)
{
    return rec_text(ctx, MF_HEADER, name, len);
}

static const char *rec_var(void *ctx, const char *name, size_t *len)
{
    return rec_text(ctx, MF_VAR, name, len);
}

/* The priority view returns a NUL-terminated name: the answer points at
 * the real view's string, so it is one. */
static const char *rec_priority(void *ctx)
{
    size_t len;
    return rec_text(ctx, MF_PRIORITY, NULL, &len);
}

static bool rec_stream(void *ctx)
{
    struct answer a;
    recorded_ask(memo_of(ctx), MF_STREAM, NULL, &a);
    return !a.nil && a.bytes[0] != 0;
}

static uint64_t rec_message_count(void *ctx)
{
    return rec_count(ctx, MF_MESSAGE_COUNT);
}

static uint64_t rec_message_bytes(void *ctx)
{
    return rec_count(ctx, MF_MESSAGE_BYTES);
}

static uint64_t rec_input_tokens(void *ctx)
{
    return rec_count(ctx, MF_INPUT_TOKENS);
}

static uint64_t rec_max_tokens(void *ctx)
{
    return rec_count(ctx, MF_MAX_TOKENS);
}

/* The whole body is too big a key: a call that reads it is not stored. */
static const char *rec_body(void *ctx, size_t *len)
{
    struct policy_memo *m = memo_of(ctx);
    m->spoiled = true;
    return text_or_nil(m->real->body, m->real->ctx, len);
}

/* A field the real view lacks stays NULL, so the script sees what it would
 * have seen without the memo. */
#define FORWARD(field, fn) (req->field != NULL ? (fn) : NULL)

const struct policy_req_view *
policy_memo_record(struct policy_memo *m, const struct policy_req_view *req)
{
    m->real = req;
    m->read_count = 0;
    m->trace_used = 0;
    m->spoiled = m->stats.disabled;
    m->recording = (struct policy_req_view){
        .ctx = m,
        .model = FORWARD(model, rec_model),
        .endpoint = FORWARD(endpoint, rec_endpoint),
        .tenant = FORWARD(tenant, rec_tenant),
        .user = FORWARD(user, rec_user),
        .tier = FORWARD(tier, rec_tier),
        .header = FORWARD(header, rec_header),
        .stream = FORWARD(stream, rec_stream),
        .message_count = FORWARD(message_count, rec_message_count),
        .message_bytes = FORWARD(message_bytes, rec_message_bytes),
        .input_tokens = FORWARD(input_tokens, rec_input_tokens),
        .max_tokens = FORWARD(max_tokens, rec_max_tokens),
        .priority = FORWARD(priority, rec_priority),
        .body = FORWARD(body, rec_body),
        .var = FORWARD(var, rec_var),
    };
    return &m->recording;
}
#undef FORWARD

void policy_memo_spoil(struct policy_memo *m)
{
    m->spoiled = true;
}

/* ---- storing a path ---- */

static struct memo_node *new_node(struct policy_memo *m)
{
    struct memo_node *n = take(m, sizeof *n);
    if (n != NULL)
        memset(n, 0, sizeof *n);
    return n;
}

static bool same_question(const struct memo_node *n, const struct trace_read *r)
{
    return n->field == r->field && n->arg_len == r->arg_len &&
           memcmp(n->arg, r->arg, r->arg_len) == 0;
}

/* Finds or adds the edge for r's answer under n. */
static struct memo_edge *edge_for(struct policy_memo *m, struct memo_node *n,
                                  const struct trace_read *r)
{
    struct memo_edge **slot = edge_slot(m, n, r->nil, r->bytes, r->len);
    if (*slot != NULL)
        return *slot;
    if ((m->edge_count + 1) * 2 > EDGE_SLOTS)
        return NULL;
    struct memo_edge *e = take(m, sizeof *e);
    const char *bytes = copy_bytes(m, r->bytes, r->len);
    if (e == NULL || bytes == NULL)
        return NULL;
    *e = (struct memo_edge){
        .from = n, .nil = r->nil, .len = r->len, .bytes = bytes};
    *slot = e;
    m->edge_count++;
    return e;
}

/* d as kept in the tree: an equal one already kept, or a new copy. */
static struct policy_decision *keep_decision(struct policy_memo *m,
                                             const struct policy_decision *d)
{
    for (size_t i = 0; i < m->shared_count; i++)
        if (policy_decision_equal(m->shared[i], d))
            return m->shared[i];
    struct policy_decision *copy = take(m, sizeof *copy);
    if (copy == NULL)
        return NULL;
    policy_decision_copy(copy, d); /* every field but reused */
    copy->reused = false;
    if (m->shared_count < SHARED_DECISIONS)
        m->shared[m->shared_count++] = copy;
    return copy;
}

/* Walks and extends the tree along the recorded path. 1 stored, 0 out of
 * memory, -1 the path contradicts the tree. */
static int add_path(struct policy_memo *m, const struct policy_decision *d)
{
    struct memo_node **at = &m->root;
    for (size_t i = 0; i < m->read_count; i++) {
        const struct trace_read *r = &m->reads[i];
        if (*at == NULL) {
            struct memo_node *n = new_node(m);
            const char *arg = copy_bytes(m, r->arg, r->arg_len);
            if (n == NULL || arg == NULL)
                return 0;
            n->field = r->field;
            n->arg = arg;
            n->arg_len = r->arg_len;
            *at = n;
        } else if ((*at)->leaf || !same_question(*at, r)) {
            return -1; /* same answers so far, yet a different question */
        }
        struct memo_edge *e = edge_for(m, *at, r);
        if (e == NULL)
            return 0;
        at = &e->to;
    }
    if (*at != NULL)
        return (*at)->leaf && policy_decision_equal((*at)->decision, d) ? 1
                                                                        : -1;
    struct memo_node *leaf = new_node(m);
    struct policy_decision *kept = leaf != NULL ? keep_decision(m, d) : NULL;
    if (kept == NULL)
        return 0;
    leaf->leaf = true;
    leaf->decision = kept;
    *at = leaf;
    return 1;
}

void policy_memo_disable(struct policy_memo *m, const char *why)
{
    if (m->stats.disabled)
        return;
    free_chunks(m);
    m->stats.disabled = true;
    m->why_off = why;
}

bool policy_memo_enabled(const struct policy_memo *m)
{
    return !m->stats.disabled;
}

const char *policy_memo_why_off(const struct policy_memo *m)
{
    return m->why_off;
}

bool policy_memo_store(struct policy_memo *m, const struct policy_decision *d)
{
    if (m->spoiled || m->stats.disabled)
        return !m->stats.disabled;
    int added = add_path(m, d);
    if (added == 0) {
        /* Full: start a new tree. A part-stored path is harmless (its
         * last edge leads nowhere, so it is a miss), but gone anyway. */
        free_chunks(m);
        if (++m->stats.resets == MAX_RESETS) {
            policy_memo_disable(m, "its decisions rarely repeat (they "
                                   "filled the kept tree four times)");
            return false;
        }
        added = add_path(m, d);
    }
    if (added < 0) {
        policy_memo_disable(m, "it answered two requests that read the "
                               "same differently");
        return false;
    }
    if (added > 0)
        m->stats.stored++;
    return true;
}

struct policy_memo_stats policy_memo_stats(const struct policy_memo *m)
{
    return m->stats;
}
