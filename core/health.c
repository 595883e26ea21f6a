/* The gateway health map: a fixed table of name → double.
 *
 * Entries are only ever added, never removed or renamed, so a reader needs
 * no lock: an entry's name is written before the entry is published (a
 * release store of its index into the hash slot and of the entry count),
 * and its value is a 64-bit atomic holding the bits of a double. Writers
 * take a mutex so two of them cannot claim the same entry. */
#include "health.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define HEALTH_CAPACITY 1024
#define HEALTH_SLOTS 2048 /* hash slots: twice the entries, short probes */
#define HEALTH_NAME_MAX 128

struct health_entry {
    char name[HEALTH_NAME_MAX];
    uint32_t hash;
    _Atomic uint64_t value_bits;
};

static struct health_entry entries[HEALTH_CAPACITY];
/* entry index + 1; 0 = empty slot */
static _Atomic uint32_t slots[HEALTH_SLOTS];
static _Atomic uint32_t entry_count;
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool warned_full;
static atomic_bool warned_bad_name;

static uint32_t hash_name(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

/* Lock-free: the acquire load of a slot makes the entry's name visible. */
static struct health_entry *find(const char *name, uint32_t hash)
{
    for (uint32_t i = 0; i < HEALTH_SLOTS; i++) {
        uint32_t slot = (hash + i) & (HEALTH_SLOTS - 1);
        uint32_t idx = atomic_load_explicit(&slots[slot], memory_order_acquire);
        if (idx == 0)
            return NULL;
        struct health_entry *e = &entries[idx - 1];
        if (e->hash == hash && strcmp(e->name, name) == 0)
            return e;
    }
    return NULL;
}

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Called with write_lock held. NULL when the table is full. */
static struct health_entry *add(const char *name, uint32_t hash, double value)
{
    uint32_t n = atomic_load_explicit(&entry_count, memory_order_relaxed);
    if (n == HEALTH_CAPACITY)
        return NULL;
    struct health_entry *e = &entries[n];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->hash = hash;
    atomic_store_explicit(&e->value_bits, double_bits(value),
                          memory_order_relaxed);
    uint32_t slot = hash & (HEALTH_SLOTS - 1);
    while (atomic_load_explicit(&slots[slot], memory_order_relaxed))
        slot = (slot + 1) & (HEALTH_SLOTS - 1);
    /* Publish: readers that see the index (or the count) see the name. */
    atomic_store_explicit(&entry_count, n + 1, memory_order_release);
    atomic_store_explicit(&slots[slot], n + 1, memory_order_release);
    return e;
}

void health_set(const char *name, double value)
{
    if (!name || !name[0] || strlen(name) >= HEALTH_NAME_MAX) {
        /* Once: a plugin doing this per request must not flood the log. */
        if (!atomic_exchange(&warned_bad_name, true))
            log_msg(LOG_WARN, "health",
                    "ignoring an empty health name or one of %d bytes or "
                    "more (reported once)",
                    HEALTH_NAME_MAX);
        return;
    }
    uint32_t hash = hash_name(name);
    struct health_entry *e = find(name, hash);
    if (e) { /* the common case: an update needs no lock */
        atomic_store_explicit(&e->value_bits, double_bits(value),
                              memory_order_relaxed);
        return;
    }
    pthread_mutex_lock(&write_lock);
    e = find(name, hash); /* another writer may have added it meanwhile */
    if (e)
        atomic_store_explicit(&e->value_bits, double_bits(value),
                              memory_order_relaxed);
    else if (!add(name, hash, value) && !atomic_exchange(&warned_full, true))
        log_msg(LOG_WARN, "health",
                "health map full (%d names); ignoring '%s' and later names",
                HEALTH_CAPACITY, name);
    pthread_mutex_unlock(&write_lock);
}

bool health_get(const char *name, double *value)
{
    if (!name)
        return false;
    struct health_entry *e = find(name, hash_name(name));
    if (!e)
        return false;
    if (value)
        *value = bits_double(
            atomic_load_explicit(&e->value_bits, memory_order_relaxed));
    return true;
}

/* ---- JSON rendering with snprintf semantics ---- */

struct out {
    char *buf;
    size_t cap, len; /* len counts what would have been written */
};

static void out_put(struct out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void out_puts(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static void out_json_string(struct out *o, const char *s)
{
    out_put(o, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            out_put(o, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            out_puts(o, esc);
        } else {
            out_put(o, (const char *)p, 1);
        }
    }
    out_put(o, "\"", 1);
}

/* JSON has no NaN or infinities; those become null. */
static void out_json_number(struct out *o, double v)
{
    char num[40];
    if (!isfinite(v)) {
        out_puts(o, "null");
        return;
    }
    snprintf(num, sizeof num, "%.15g", v);
    if (strtod(num, NULL) != v)
        snprintf(num, sizeof num, "%.17g", v);
    out_puts(o, num);
}

size_t health_json(char *buf, size_t cap)
{
    struct out o = {.buf = buf, .cap = cap, .len = 0};
    uint32_t n = atomic_load_explicit(&entry_count, memory_order_acquire);

    out_put(&o, "{", 1);
    for (uint32_t i = 0; i < n; i++) {
        const struct health_entry *e = &entries[i];
        if (i)
            out_put(&o, ",", 1);
        out_json_string(&o, e->name);
        out_put(&o, ":", 1);
        out_json_number(&o, bits_double(atomic_load_explicit(
                                &e->value_bits, memory_order_relaxed)));
    }
    out_put(&o, "}", 1);
    if (cap > 0)
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    return o.len;
}
