#include "wfq.h"

#include <stdlib.h>
#include <string.h>

struct wfq_flow {
    struct keymap_node node;
    struct wfq_item *head, *tail;
    uint64_t last_finish; /* finish tag of the tenant's newest queued item */
    size_t heap_pos;
    size_t count;    /* items queued */
    uint32_t weight; /* in thousandths */
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

static uint32_t clamp_weight(uint32_t w)
{
    return w < 1 ? 1 : w > WFQ_WEIGHT_MAX ? WFQ_WEIGHT_MAX : w;
}

static struct wfq_flow *find_flow(const struct wfq_level *l, const char *tenant,
                                  size_t tenant_len, uint64_t hash)
{
    struct keymap_node *n = keymap_find(&l->flows, tenant, tenant_len, hash);
    return n ? keymap_entry(n, struct wfq_flow, node) : NULL;
}

int wfq_push(struct wfq *q, struct wfq_item *it, int level, const char *tenant,
             size_t tenant_len, uint32_t weight)
{
    struct wfq_level *l = &q->level[level];
    uint64_t hash = keymap_hash(tenant, tenant_len);
    struct wfq_flow *f = find_flow(l, tenant, tenant_len, hash);

    if (!f) {
        if (heap_reserve(l))
            return -1;
        f = calloc(1, sizeof *f + tenant_len + 1);
        if (!f)
            return -1;
        memcpy(f->tenant, tenant, tenant_len);
        f->node.key = f->tenant;
        f->node.key_len = tenant_len;
        f->node.hash = hash;
        f->weight = clamp_weight(weight);
        keymap_insert(&l->flows, &f->node);
        l->weight_sum += f->weight;
    }

    uint64_t start = l->vtime > f->last_finish ? l->vtime : f->last_finish;
    it->finish = start + WFQ_UNIT * WFQ_WEIGHT_ONE / f->weight;
    it->seq = ++q->seq;
    it->level = level;
    it->flow = f;
    it->next = NULL;
    it->prev = f->tail;
    f->last_finish = it->finish;
    f->count++;
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
    f->count--;
    l->depth--;
    q->depth--;

    if (!f->head) {
        /* Idle tenant: dropping its flow forgets nothing, since its last
         * finish tag is at most the virtual time once it was served. */
        heap_remove(l, f->heap_pos);
        keymap_remove(&l->flows, &f->node);
        l->weight_sum -= f->weight;
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

/* Shares are compared multiplied by the weight sum W, so that everything
 * stays in exact integers: items x W against room x weight. With at most
 * 10^6 items and W <= tenants x 10^6 the products fit in 64 bits. */
struct wfq_item *wfq_fair_victim(const struct wfq *q, int level,
                                 const char *tenant, size_t tenant_len,
                                 uint32_t weight, size_t room)
{
    const struct wfq_level *l = &q->level[level];
    const struct wfq_flow *self =
        find_flow(l, tenant, tenant_len, keymap_hash(tenant, tenant_len));
    uint64_t w_self = self ? self->weight : clamp_weight(weight);
    uint64_t total = l->weight_sum + (self ? 0 : w_self);
    uint64_t mine = self ? self->count : 0;

    if ((mine + 1) * total > (uint64_t)room * w_self)
        return NULL; /* one more would put the newcomer over its share */

    struct wfq_item *victim = NULL;
    int64_t worst = 0;
    for (size_t i = 0; i < l->heap_len; i++) {
        const struct wfq_flow *f = l->heap[i];
        int64_t over =
            (int64_t)(f->count * total) - (int64_t)((uint64_t)room * f->weight);
        if (over > worst ||
            (over == worst && victim && f->tail->seq > victim->seq)) {
            worst = over;
            victim = f->tail;
        }
    }
    return victim;
}
