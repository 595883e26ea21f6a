#include "mock_control.h"

#include <string.h>

void mock_control_init(struct mock_control *c)
{
    memset(&c->faults, 0, sizeof(c->faults));
    c->remaining = -1;
    atomic_init(&c->active, false);
    pthread_mutex_init(&c->mu, NULL);
}

void mock_control_destroy(struct mock_control *c)
{
    pthread_mutex_destroy(&c->mu);
}

void mock_control_set(struct mock_control *c, const struct mock_faults *f,
                      long count)
{
    pthread_mutex_lock(&c->mu);
    c->faults = *f;
    c->remaining = count < 0 ? -1 : count;
    atomic_store(&c->active, f->set != 0 && count != 0);
    pthread_mutex_unlock(&c->mu);
}

void mock_control_clear(struct mock_control *c)
{
    struct mock_faults none = {0};
    mock_control_set(c, &none, -1);
}

void mock_control_apply(struct mock_control *c, struct mock_faults *f)
{
    if (!atomic_load_explicit(&c->active, memory_order_acquire))
        return;
    pthread_mutex_lock(&c->mu);
    if (c->faults.set && c->remaining != 0) {
        mock_faults_overlay(f, &c->faults);
        if (c->remaining > 0 && --c->remaining == 0) {
            memset(&c->faults, 0, sizeof(c->faults));
            atomic_store(&c->active, false);
        }
    }
    pthread_mutex_unlock(&c->mu);
}

json_t *mock_control_json(struct mock_control *c)
{
    pthread_mutex_lock(&c->mu);
    json_t *o = json_pack(
        "{s:o, s:o}", "faults", mock_faults_json(&c->faults), "remaining",
        c->remaining < 0 ? json_null() : json_integer(c->remaining));
    pthread_mutex_unlock(&c->mu);
    return o;
}
