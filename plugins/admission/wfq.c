#include "wfq.h"

#include <stdlib.h>
#include <string.h>

struct wfq_flow {
    struct keymap_node node;
    struct wfq_item *head, *tail;
    uint64_t last_finish; /* finish tag of the tenant's newest queued item */
    size_t heap_pos;
    char tenant[];
};

int wfq_init(struct wfq *q, size_t expected_tenants)
{
    memset(q, 0, sizeof *q);
    for (int i = 0; i < WFQ_LEVELS; i++) {
        if (keymap_init(&q->level[i].flows, expected_tenants)) {
            wfq_fini(q);
            return -1;
        }
    }
    return 0;
}

static void drop_flow(struct keymap_node *node, void *arg)
{
    (void)arg;
    free(keymap_entry(node, struct wfq_flow, node));
}

static int any(struct keymap_node *node, void *arg)
{
    (void)node;
    (void)arg;
    return 1;
}

void wfq_fini(struct wfq *q)
{
    for (int i = 0; i < WFQ_LEVELS; i++) {
        struct wfq_level *l = &q->level[i];
        if (l->flows.buckets)
            keymap_remove_if(&l->flows, any, drop_flow, NULL);
        keymap_fini(&l->flows);
        free(l->heap);
        l->heap = NULL;
    }
}

/* ---- the heap of flows, keyed by their head item ---- */

static bool before(const struct wfq_flow *a, const struct wfq_flow *b)
{
    if (a->head->finish != b->head->finish)
        return a->head->finish < b->head->finish;
    return a->head->seq < b->head->seq;
}

static void heap_set(struct wfq_level *l, size_t pos, struct wfq_flow *f)
{
    l->heap[pos] = f;
    f->heap_pos = pos;
}

static void sift_up(struct wfq_level *l, size_t pos)
{
    struct wfq_flow *f = l->heap[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!before(f, l->heap[parent]))
            break;
        heap_set(l, pos, l->heap[parent]);
        pos = parent;
    }
    heap_set(l, pos, f);
}

static void sift_down(struct wfq_level *l, size_t pos)
{
    struct wfq_flow *f = l->heap[pos];
    for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= l->heap_len)
            break;
        if (child + 1 < l->heap_len &&
            before(l->heap[child + 1], l->heap[child]))
            child++;
        if (!before(l->heap[child], f))
            break;
        heap_set(l, pos, l->heap[child]);
        pos = child;
    }
    heap_set(l, pos, f);
}

static void heap_remove(struct wfq_level *l, size_t pos)
{
    struct wfq_flow *last = l->heap[--l->heap_len];
    if (pos == l->heap_len)
        return;
    heap_set(l, pos, last);
    sift_down(l, pos);
    sift_up(l, last->heap_pos);
}

static int heap_reserve(struct wfq_level *l)
{
    if (l->heap_len < l->heap_cap)
        return 0;
    size_t cap = l->heap_cap ? l->heap_cap * 2 : 16;
    struct wfq_flow **grown = realloc(l->heap, cap * sizeof *grown);
    if (!grown)
        return -1;
    l->heap = grown;
    l->heap_cap = cap;
    return 0;
}

/* ---- items ---- */

int wfq_push(struct wfq *q, struct wfq_item *it, int level, const char *tenant,
             size_t tenant_len, uint64_t cost)
{
    struct wfq_level *l = &q->level[level];
    uint64_t hash = keymap_hash(tenant, tenant_len);
    struct keymap_node *n = keymap_find(&l->flows, tenant, tenant_len, hash);
    struct wfq_flow *f;

    if (n) {
        f = keymap_entry(n, struct wfq_flow, node);
    } else {
        if (heap_reserve(l))
            return -1;
        f = calloc(1, sizeof *f + tenant_len + 1);
        if (!f)
            return -1;
        memcpy(f->tenant, tenant, tenant_len);
        f->node.key = f->tenant;
        f->node.key_len = tenant_len;
        f->node.hash = hash;
        keymap_insert(&l->flows, &f->node);
    }

    uint64_t start = l->vtime > f->last_finish ? l->vtime : f->last_finish;
    it->finish = start + (cost ? cost : 1);
    it->seq = ++q->seq;
    it->level = level;
    it->flow = f;
    it->next = NULL;
    it->prev = f->tail;
    f->last_finish = it->finish;
    if (f->tail) {
        f->tail->next = it;
        f->tail = it;
    } else {
        f->head = f->tail = it;
        heap_set(l, l->heap_len++, f);
        sift_up(l, f->heap_pos);
    }
    l->depth++;
    q->depth++;
    return 0;
}

void wfq_remove(struct wfq *q, struct wfq_item *it)
{
    struct wfq_level *l = &q->level[it->level];
    struct wfq_flow *f = it->flow;
    bool was_head = f->head == it;

    if (it->prev)
        it->prev->next = it->next;
    else
        f->head = it->next;
    if (it->next) {
        it->next->prev = it->prev;
    } else {
        f->tail = it->prev;
        /* A cancelled tail must not push the tenant's later arrivals back. */
        f->last_finish = f->tail ? f->tail->finish : 0;
    }
    it->prev = it->next = NULL;
    it->flow = NULL;
    l->depth--;
    q->depth--;

    if (!f->head) {
        /* Idle tenant: dropping its flow forgets nothing, since its last
         * finish tag is at most the virtual time once it was served. */
        heap_remove(l, f->heap_pos);
        keymap_remove(&l->flows, &f->node);
        free(f);
    } else if (was_head) {
        sift_down(l, f->heap_pos);
    }
}

struct wfq_item *wfq_pop(struct wfq *q)
{
    for (int i = 0; i < WFQ_LEVELS; i++) {
        struct wfq_level *l = &q->level[i];
        if (!l->heap_len)
            continue;
        struct wfq_item *it = l->heap[0]->head;
        if (it->finish > l->vtime)
            l->vtime = it->finish;
        wfq_remove(q, it);
        return it;
    }
    return NULL;
}

size_t wfq_depth_upto(const struct wfq *q, int level)
{
    size_t n = 0;
    for (int i = 0; i <= level && i < WFQ_LEVELS; i++)
        n += q->level[i].depth;
    return n;
}

struct wfq_item *wfq_last(const struct wfq *q, int level)
{
    const struct wfq_level *l = &q->level[level];
    struct wfq_item *last = NULL;

    for (size_t i = 0; i < l->heap_len; i++) {
        struct wfq_item *t = l->heap[i]->tail;
        if (!last || t->finish > last->finish ||
            (t->finish == last->finish && t->seq > last->seq))
            last = t;
    }
    return last;
}
