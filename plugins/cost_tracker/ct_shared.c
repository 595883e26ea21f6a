/* Ledgers shared by the instances of one process: a reload creates the new
 * instance before the old one is destroyed, so both write through one
 * connection, and only the first open of a file in this process recovers
 * rows orphaned by an earlier process (never a live instance's). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cost_tracker.h"

struct shared {
    struct shared *next;
    char *path;
    struct ct_ledger *l;
    unsigned refs;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct shared *list;
static char recovered[16][256]; /* files recovered in this process */
static size_t n_recovered;

static bool was_recovered(const char *path)
{
    for (size_t i = 0; i < n_recovered; i++)
        if (!strcmp(recovered[i], path))
            return true;
    return false;
}

struct ct_ledger *ct_shared_ledger(const char *path, int64_t *orphaned,
                                   char *err, size_t errlen)
{
    struct ct_ledger *l = NULL;
    *orphaned = 0;
    pthread_mutex_lock(&mu);
    for (struct shared *s = list; s; s = s->next)
        if (!strcmp(s->path, path)) {
            s->refs++;
            l = s->l;
            goto out;
        }
    struct shared *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    s->l = ct_ledger_open(path, err, errlen);
    if (!s->l) {
        free(s->path);
        free(s);
        goto out;
    }
    if (!was_recovered(path)) {
        *orphaned = ct_ledger_recover(s->l);
        if (n_recovered < 16 && strlen(path) < 256)
            strcpy(recovered[n_recovered++], path);
    }
    s->refs = 1;
    s->next = list;
    list = s;
    l = s->l;
out:
    pthread_mutex_unlock(&mu);
    return l;
}

void ct_shared_ledger_put(struct ct_ledger *l)
{
    pthread_mutex_lock(&mu);
    for (struct shared **p = &list; *p; p = &(*p)->next)
        if ((*p)->l == l) {
            struct shared *s = *p;
            if (--s->refs == 0) {
                *p = s->next;
                ct_ledger_close(s->l);
                free(s->path);
                free(s);
            }
            break;
        }
    pthread_mutex_unlock(&mu);
}
