/* Global fault configuration set through POST /mock/config: a knob set
 * applied to the next `count` generation requests, or until reset. */
#ifndef SLUICE_MOCK_CONTROL_H
#define SLUICE_MOCK_CONTROL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "mock_faults.h"

struct mock_control {
    pthread_mutex_t mu;
    atomic_bool active; /* lets requests skip the lock when nothing is set */
    struct mock_faults faults;
    long remaining; /* requests left; -1 = until reset */
};

void mock_control_init(struct mock_control *c);
void mock_control_destroy(struct mock_control *c);
/* Replaces the global knobs. count < 0: until reset. */
void mock_control_set(struct mock_control *c, const struct mock_faults *f,
                      long count);
void mock_control_clear(struct mock_control *c);
/* Overlays the global knobs on *f and uses up one of `count`. */
void mock_control_apply(struct mock_control *c, struct mock_faults *f);
/* {"faults": {...}, "remaining": N|null} */
json_t *mock_control_json(struct mock_control *c);

#endif
